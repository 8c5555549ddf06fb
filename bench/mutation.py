"""Mutation run over the rules: does every condition of every rule have a test that pins it?

For each rule module in `rules/`, every `if`/`elif`/`while` test and every `assert`-free boolean
operand is mutated one at a time (a test negated: `if x:` -> `if not (x):`; a clause dropped:
`a and b` -> `a`, and `b`), the rule's own tests and the fix fixtures run against the mutant, and a
mutant that no test kills survives. Mutants are made with libcst, so every other byte stays.
`if TYPE_CHECKING:` is not mutated: with postponed annotations, what it guards is read by type
checkers only, so negating it changes no behaviour (an equivalent mutant, not a missing test).

The tests run against a rule's mutants are the rule's own module first (so that most mutants die
fast), then everything else that lints with the real rules: all of `tests/rules/` (every rule's
VALID/INVALID examples, the cross-file and precision-model tests) and the fix fixtures. A condition
pinned only by another rule's test module still counts as pinned: it is the suite that must fail.
Tests already red on the unmutated copy are deselected (and named): they would kill every mutant.

    python bench/mutation.py                    # every rule, a table and the survivors
    python bench/mutation.py --rule mp002       # one rule
    python bench/mutation.py --json out.json
    python bench/mutation.py --module mplint/analysis/paths.py   # a module of the analysis instead

A module of the analysis (`--module`, repeatable) is mutated the same way and measured against its
own tests (`tests/analysis/test_<module>.py`, where there is one), `tests/rules/` and the fix fixtures;
no rule is mutated then unless `--rule` asks too. A mutant whose tests hang (a negated loop test)
counts as killed once they run past `--timeout` seconds.

It works on a copy of the committed tree (`git archive HEAD` into `--workdir`, default a
temporary directory), never on the checkout itself. Expect ~3 s per mutant on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import libcst as cst

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    rule: str
    line: int
    kind: str  # "negate" or "drop"
    before: str
    killed: bool


class _Sites(cst.CSTVisitor):
    """Every place a mutation can be made, in order: if/elif/while tests and boolean clauses."""

    METADATA_DEPENDENCIES = (cst.metadata.PositionProvider,)

    def __init__(self) -> None:
        self.sites: list[tuple[str, cst.CSTNode, int]] = []

    def _add(self, kind: str, node: cst.CSTNode) -> None:
        self.sites.append((kind, node, self.get_metadata(cst.metadata.PositionProvider, node).start.line))

    def visit_If(self, node: cst.If) -> None:
        if not (isinstance(node.test, cst.Name) and node.test.value == "TYPE_CHECKING"):
            self._add("negate", node.test)

    def visit_While(self, node: cst.While) -> None:
        self._add("negate", node.test)

    def visit_IfExp(self, node: cst.IfExp) -> None:
        self._add("negate", node.test)

    def visit_BooleanOperation(self, node: cst.BooleanOperation) -> None:
        self._add("drop-left", node)
        self._add("drop-right", node)


class _Mutate(cst.CSTTransformer):
    def __init__(self, target: cst.CSTNode, kind: str) -> None:
        self.target, self.kind = target, kind

    def on_leave(self, original: cst.CSTNode, updated: cst.CSTNode) -> cst.CSTNode:  # type: ignore[override]
        if original is not self.target:
            return updated
        if self.kind == "negate":
            return cst.UnaryOperation(
                operator=cst.Not(), expression=updated.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])  # type: ignore[attr-defined]
            )
        assert isinstance(updated, cst.BooleanOperation)
        kept = updated.right if self.kind == "drop-left" else updated.left
        return kept.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def tests_for(source_file: Path, work: Path) -> list[str]:
    """The module's own tests first (a rule's `tests/rules/test_mp002.py`, an analysis module's
    `tests/analysis/test_summaries.py` where it has one), then every test that runs the real rules
    (pytest collects a module named twice once)."""
    if source_file.parent.name == "rules":
        own = [f"tests/rules/test_{source_file.name.split('_')[0]}.py"]
    else:
        own = [f"tests/analysis/test_{source_file.stem}.py"]
    tests = [*own, "tests/rules", "tests/fixes/test_fixtures.py"]  # own: tests/rules/test_mp002.py
    return [test for test in tests if (work / test).exists()]


def killed(work: Path, tests: list[str], timeout: float) -> bool:
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    environment = {**os.environ, "PYTHONPATH": str(work)}
    try:
        result = subprocess.run(command, cwd=work, env=environment, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return True  # the mutant made the tests hang: detected
    return result.returncode != 0


def red_tests(work: Path, tests: list[str]) -> list[str]:
    """The tests that fail on the unmutated copy, as `--deselect` arguments: a red test would kill
    every mutant. A suite that does not even collect cannot be measured at all."""
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *tests]
    environment = {**os.environ, "PYTHONPATH": str(work)}
    result = subprocess.run(command, cwd=work, env=environment, capture_output=True, timeout=1200, check=False)
    if result.returncode == 0:
        return []
    output = result.stdout.decode(errors="replace")
    failed = re.findall(r"^FAILED (\S+)", output, re.MULTILINE)
    if not failed or re.search(r"^ERROR ", output, re.MULTILINE):
        raise SystemExit(f"the tests fail on the unmutated copy, not only by assertion: {' '.join(tests)}")
    print(f"deselected, red on the unmutated copy: {' '.join(failed)}", file=sys.stderr, flush=True)
    return [argument for nodeid in failed for argument in ("--deselect", nodeid)]


def mutate_rule(rule_file: Path, work: Path, timeout: float = 600) -> list[Mutant]:
    original = rule_file.read_text(encoding="utf-8")
    module = cst.parse_module(original)
    wrapper = cst.metadata.MetadataWrapper(module, unsafe_skip_copy=True)
    sites = _Sites()
    wrapper.visit(sites)
    tests = tests_for(rule_file, work)
    tests += red_tests(work, tests)
    mutants = []
    try:
        for kind, node, line in sites.sites:
            mutated = module.visit(_Mutate(node, kind)).code
            if mutated == original:
                continue
            rule_file.write_text(mutated, encoding="utf-8")
            mutants.append(
                Mutant(rule_file.stem, line, kind, module.code_for_node(node)[:80], killed(work, tests, timeout))
            )
    finally:
        rule_file.write_text(original, encoding="utf-8")
    return mutants


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rule", action="append", help="rule module prefix (mp002); repeatable")
    parser.add_argument(
        "--module", action="append", help="a module of the analysis (mplint/analysis/paths.py); repeatable"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a mutant's tests count as hung")
    parser.add_argument("--workdir", type=Path, help="where the copy of the repository goes")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mplint-mutation-"))
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    # The committed tree (not uncommitted edits): `git archive HEAD`, unpacked.
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    # The copy must be what the tests import (not the editable install): its directory goes first
    # on PYTHONPATH, and `mplint.rules` is the `rules/` folder there, as setuptools maps it.
    (work / "mplint" / "rules").symlink_to(work / "rules", target_is_directory=True)
    rules = sorted((work / "rules").glob("mp[0-9]*.py"))
    if args.rule:
        rules = [path for path in rules if any(path.name.startswith(prefix) for prefix in args.rule)]
    elif args.module:
        rules = []
    for name in args.module or ():
        module_file = work / name
        if not module_file.is_file() or module_file.suffix != ".py":
            raise SystemExit(f"no such module in the committed tree: {name}")
        rules.append(module_file)
    mutants: list[Mutant] = []
    for rule_file in rules:
        found = mutate_rule(rule_file, work, args.timeout)
        mutants += found
        survivors = sum(not mutant.killed for mutant in found)
        print(f"{rule_file.stem}: {len(found)} mutants, {survivors} survived", file=sys.stderr, flush=True)
    total, alive = len(mutants), [mutant for mutant in mutants if not mutant.killed]
    print(f"\n{total} mutants, {total - len(alive)} killed ({(total - len(alive)) / max(total, 1):.1%})")
    for mutant in alive:
        print(f"  survived: {mutant.rule}:{mutant.line} {mutant.kind} `{mutant.before}`")
    if args.json:
        args.json.write_text(json.dumps([asdict(mutant) for mutant in mutants], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
