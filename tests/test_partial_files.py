"""A file a unit only imports names from is parsed by libcst one top-level statement at a time,
as the unit asks for names: findings inside it keep their real lines, and nothing else of it is
parsed (checked by counting the pieces parsed, not by a timer)."""

from __future__ import annotations

import ast
import textwrap

import libcst as cst

from mplint import registry
from mplint.run.engine import Run
from mplint.source import PartialFile
from mplint.text import SourceFile

HELPERS = textwrap.dedent(
    """\
    import torch


    def unused_a(x):
        return x * 2


    def gather_logprobs(logits, labels):
        logp = logits.log_softmax(dim=-1)
        return logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)


    @torch.no_grad()
    def unused_b(x):
        return x + 1


    SCALE = 2; OFFSET = 3
    """
)

TRAIN = textwrap.dedent(
    """\
    import torch
    from helpers import gather_logprobs

    policy = torch.nn.Linear(8, 8).to(torch.bfloat16)
    logp = gather_logprobs(policy(x), labels)
    """
)


def _run(helpers: str = HELPERS) -> Run:
    files = [SourceFile("helpers.py", helpers), SourceFile("train.py", TRAIN)]
    return Run(files, registry.all_rules())


def test_only_the_statements_binding_the_names_read_are_parsed() -> None:
    run = _run()
    findings = run.lint_unit("train.py").findings
    helpers = run.partial["helpers.py"]

    assert isinstance(helpers, PartialFile)
    assert [first for first, _ in helpers.pieces] == [8]  # `def gather_logprobs`, nothing else
    assert [(f.path, f.line, f.column, f.code) for f in findings] == [("helpers.py", 9, 12, "MP001")]


def test_decorators_and_one_line_statements_belong_to_their_piece() -> None:
    helpers = PartialFile(SourceFile("helpers.py", HELPERS), ast.parse(HELPERS))

    [decorated] = helpers.top_level("unused_b")
    [scale, offset] = helpers.top_level("SCALE")

    assert helpers.position(decorated.decorators[0])[0] == 13  # the piece starts at `@torch.no_grad()`
    assert helpers.position(decorated)[0] == 14  # the `def` line, as for a whole file
    assert (helpers.position(scale)[:2], helpers.position(offset)[:2]) == ((18, 1), (18, 12))
    assert helpers.top_level("OFFSET") == [scale, offset]  # parsed once, shared by both names
    assert [first for first, _ in helpers.pieces] == [13, 18]


def test_noqa_in_a_partially_read_helper_is_honoured() -> None:
    quiet = HELPERS.replace("log_softmax(dim=-1)", "log_softmax(dim=-1)  # noqa: MP001")
    assert _run(quiet).lint_unit("train.py").findings == ()


# A root: its top-level code and the functions that may lead to a rule's word are parsed; the rest
# only when a name it binds is looked up.
ROOT = textwrap.dedent(
    """\
    import torch
    import torch.nn.functional as F


    def describe(model):
        return sum(p.numel() for p in model.parameters())


    def as_policy(model):
        return model


    def logprobs(model, tokens):
        logits = as_policy(model)(tokens)
        return F.log_softmax(logits, dim=-1)


    def main():
        model = torch.nn.Linear(8, 8).to(torch.bfloat16)
        print(describe(model))
        return logprobs(model, torch.randn(2, 8))
    """
)


def test_a_root_parses_its_top_level_code_and_what_may_lead_to_a_word() -> None:
    run = Run([SourceFile("train.py", ROOT)], registry.all_rules())
    findings = run.lint_unit("train.py").findings
    root = run.parsed["train.py"]

    assert isinstance(root, PartialFile)
    # The imports, `logprobs` and `main`; `describe` and `as_policy` when `main` and `logprobs`
    # looked them up (they mention no word of their own).
    assert [first for first, _ in root.pieces] == [1, 2, 5, 9, 13, 18]
    assert [(f.line, f.code) for f in findings] == [(15, "MP001")]  # through as_policy(), parsed late


def test_a_function_nobody_calls_that_leads_to_no_word_is_never_parsed() -> None:
    source = ROOT.replace("print(describe(model))", "pass")
    run = Run([SourceFile("train.py", source)], registry.all_rules())
    run.lint_unit("train.py")
    root = run.parsed["train.py"]

    assert isinstance(root, PartialFile)
    assert 5 not in [first for first, _ in root.pieces]  # `describe`


def test_a_root_where_a_rule_reads_the_whole_tree_is_parsed_whole() -> None:
    source = ROOT.replace("import torch\n", "import torch\nfrom torch.cuda.amp import autocast\n", 1)
    run = Run([SourceFile("train.py", source)], registry.all_rules())
    run.lint_unit("train.py")

    assert not run.parsed["train.py"].partial  # MP203 rewrites every use of the import


# A class read for some of its methods: the others keep their bodies unparsed.
POLICY = textwrap.dedent(
    """\
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class Policy(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(8, 8)
            self.temperature = 1.0

        def logprobs(self, tokens):
            logits = self.head(tokens)
            scale = self.temperature
            logits = logits / scale
            return F.log_softmax(logits, dim=-1)

        def describe(self):
            total = 0
            for p in self.parameters():
                total += p.numel()
            return total
    """
)

POLICY_TRAIN = textwrap.dedent(
    """\
    import torch
    from policy import Policy

    policy = Policy().to(torch.bfloat16)
    logp = policy.logprobs(torch.randn(2, 8))
    """
)


def test_a_class_read_in_part_parses_only_the_methods_that_run() -> None:
    files = [SourceFile("policy.py", POLICY), SourceFile("train.py", POLICY_TRAIN)]
    run = Run(files, registry.all_rules())
    findings = run.lint_unit("train.py").findings
    policy = run.partial["policy.py"]

    assert isinstance(policy, PartialFile)
    # The imports the class reads, the class with its long methods' bodies left out (`__init__` is
    # short: whole), and `logprobs` once it ran; `describe`'s body never.
    assert [first for first, _ in policy.pieces] == [2, 3, 6, 12]
    assert [(f.path, f.line, f.column, f.code) for f in findings] == [("policy.py", 16, 16, "MP001")]


def test_a_method_is_parsed_at_its_own_lines_and_columns() -> None:
    policy = PartialFile(SourceFile("policy.py", POLICY), ast.parse(POLICY))
    [cls] = policy.top_level("Policy")
    assert isinstance(cls, cst.ClassDef) and isinstance(cls.body, cst.IndentedBlock)
    stand_in = cls.body.body[1]
    assert isinstance(stand_in, cst.FunctionDef)

    method = policy.full_function(stand_in)

    assert method is not stand_in and policy.full_function(stand_in) is method  # parsed once
    assert cst.Module(body=[method]).code == textwrap.dedent("".join(POLICY.splitlines(True)[11:16]))
    assert policy.position(method)[:2] == (12, 5)
    assert policy.position(method.body.body[-1])[:2] == (16, 9)  # `return F.log_softmax(...)`


def test_a_file_read_in_part_then_linted_as_a_root_has_its_methods_whole() -> None:
    # The trainer is first read by train.py for its class, then linted on its own: MP104 walks
    # every function of a root, methods included.
    trainer = textwrap.dedent(
        """\
        import torch


        class Trainer:
            def __init__(self, model):
                self.model = model
                self.scaler = torch.amp.GradScaler("cuda")
                self.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

            def fit(self, loader):
                for x, y in loader:
                    with torch.autocast("cuda"):
                        loss = self.model(x, y)
                    self.scaler.scale(loss).backward()
                    self.optimizer.step()
                    self.scaler.update()
        """
    )
    train = "from trainer import Trainer\n\nTrainer(model)\n"
    files = [SourceFile("trainer.py", trainer), SourceFile("train.py", train)]
    alone = Run(files, registry.all_rules()).lint_unit("trainer.py").findings
    run = Run(files, registry.all_rules())
    run.lint_unit("train.py")

    after = run.lint_unit("trainer.py").findings

    assert [(f.line, f.code) for f in alone] == [(15, "MP104")]
    assert after == alone

    # Where the plan has told the run its roots, such a file is parsed whole from the first read:
    # its class once, not first without its methods' bodies and then again.
    planned = Run(files, registry.all_rules())
    assert "trainer.py" in planned.plan().units
    planned.lint_unit("train.py")
    read_first = planned.partial["trainer.py"]
    assert isinstance(read_first, PartialFile)
    assert read_first.parsed_characters == len(trainer) - len("\n\n")  # all but the blank lines: the import, the class
    assert planned.lint_unit("trainer.py").findings == alone


def test_a_table_of_data_is_never_parsed() -> None:
    # A generated table (torch's `op_db`, a name mapping) of more than 50,000 characters binds
    # nothing the analysis can tell; the code around it is analysed as usual.
    entries = "".join(f'    "op_{index}": ("aten::op_{index}", {index}),\n' for index in range(2000))
    source = ROOT.replace("\n\ndef describe", f"\n\nOPS = {{\n{entries}}}\n\n\ndef describe", 1)
    run = Run([SourceFile("train.py", source)], registry.all_rules())
    findings = run.lint_unit("train.py").findings
    root = run.parsed["train.py"]

    assert isinstance(root, PartialFile)  # the root was not parsed whole instead
    assert root.top_level("OPS") == []
    assert all(len(piece.code) < 1000 for _, piece in root.pieces)
    assert [f.code for f in findings] == ["MP001"]


def test_a_file_s_syntactic_findings_do_not_depend_on_which_unit_ran_first() -> None:
    # rf-detr's engine.py: a compatibility fallback to the deprecated API, used by a function
    # main.py calls. Whether main.py's unit holds engine.py whole (engine.py's own unit ran first
    # in this process) or in pieces must not change what either unit reports.
    engine = textwrap.dedent(
        """\
        import torch

        try:
            from torch.amp import GradScaler, autocast
            DEPRECATED_AMP = False
        except ImportError:
            from torch.cuda.amp import GradScaler, autocast
            DEPRECATED_AMP = True


        def train_one_epoch(model, loader, optimizer, args):
            if DEPRECATED_AMP:
                scaler = GradScaler(enabled=args.amp)
            else:
                scaler = GradScaler("cuda", enabled=args.amp)
            for x in loader:
                with autocast("cuda", enabled=args.amp):
                    loss = model(x)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
        """
    )
    main = textwrap.dedent(
        """\
        import torch
        from engine import train_one_epoch

        model = torch.nn.Linear(8, 8).cuda()
        train_one_epoch(model, loader, torch.optim.AdamW(model.parameters()), args)
        """
    )
    files = [SourceFile("engine.py", engine), SourceFile("main.py", main)]

    def findings(order: tuple[str, ...]) -> set[tuple[str, int, str]]:
        run = Run(files, registry.all_rules())
        return {(f.path, f.line, f.code) for root in order for f in run.lint_unit(root).findings}

    assert findings(("engine.py", "main.py")) == findings(("main.py", "engine.py")) == findings(("engine.py",))
