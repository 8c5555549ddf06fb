"""The precision model's answers, as the rules ask for them."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import libcst as cst

from mplint.analysis import torch_api as api
from mplint.analysis.configuration import configuration_test
from mplint.analysis.facts import (
    CallFact,
    Fact,
    LateCast,
    OperationFact,
    ReplicatedCall,
    conditions_in,
    continues,
    record,
)
from mplint.analysis.frameworks.accelerate_launch import LaunchConfig
from mplint.analysis.interpreter import Interpreter, TreeMemo
from mplint.analysis.launch_options import LaunchOptions
from mplint.analysis.project import ModuleIndex
from mplint.analysis.scopes import Loaded
from mplint.analysis.summaries import Definition
from mplint.analysis.values import Kind, Precision, Region, Value
from mplint.tree import walk


class PrecisionModel:
    """Facts about the linted files, computed once for all rules by running the interpreter."""

    def __init__(self, interpreter: Interpreter) -> None:
        self._interpreter = interpreter
        self._evaluated: dict[str, set[cst.BaseExpression]] | None = None
        self._called: frozenset[str] | None = None
        self._late_by_optimizer: dict[cst.Call, list[LateCast]] | None = None

    def calls(self, node: cst.Call, *, conditional: bool = False) -> Sequence[CallFact]:
        """Every distinct context in which this call was evaluated (its own function, and each
        caller's), those of the default configuration first; with `conditional`, also those on
        branches the default configuration skips (a rule that reports them names the condition)."""
        return _selected(self._interpreter.facts.get(node, ()), conditional)

    def operations(self, node: cst.BinaryOperation, *, conditional: bool = False) -> Sequence[OperationFact]:
        """Every distinct context in which this arithmetic operator was evaluated, with its operands."""
        return _selected(self._interpreter.operations.get(node, ()), conditional)

    def late_casts_at(self, cast: cst.Call) -> Sequence[LateCast]:
        """What the in-place cast `cast` did after optimizers were built over the parameters it cast,
        then stepped (those of the default configuration first)."""
        return sorted(self._interpreter.late_casts.get(cast, ()), key=_conditions)

    def late_casts_of(self, optimizer: cst.Call) -> Sequence[LateCast]:
        """The in-place casts of parameters the optimizer built by `optimizer` was built over, made
        after it and before it stepped (those of the default configuration first)."""
        if self._late_by_optimizer is None:
            self._late_by_optimizer = {}
            for casts in self._interpreter.late_casts.values():
                for late in casts:
                    self._late_by_optimizer.setdefault(late.optimizer, []).append(late)
        return sorted(self._late_by_optimizer.get(optimizer, ()), key=_conditions)

    def evaluated(self, path: str) -> Collection[cst.BaseExpression]:
        """The Call and BinaryOperation nodes of `path` the analysis evaluated (in no order)."""
        if self._evaluated is None:
            by_path: dict[str, set[cst.BaseExpression]] = {}
            for facts in (self._interpreter.facts, self._interpreter.operations):
                for node, seen in facts.items():
                    by_path.setdefault(seen[0].path, set()).add(node)
            self._evaluated = by_path
        return self._evaluated.get(path, ())

    def calls_any(self, functions: Collection[str]) -> bool:
        """Whether the analysis evaluated a call of one of `functions` (dotted names, as facts name
        them) anywhere in the code it ran: a check made in a helper of another file counts."""
        if self._called is None:
            self._called = frozenset(
                fact.function for seen in self._interpreter.facts.values() for fact in seen if fact.function
            )
        return not self._called.isdisjoint(functions)

    def is_test(self, path: str) -> bool:
        """Whether `path` is test code (pytest's names, below the run's root): what it configures
        says nothing about how training runs."""
        return self._interpreter.index.is_test(path)

    def entered(self, path: str) -> bool:
        """Whether the analysis ran code of `path` (a root, or a file whose functions it called)."""
        return path in self._interpreter.entered_paths

    def batch_norms(self, module: Value) -> Sequence[CallFact]:
        """The BatchNorm layers in the module tree `module` (a module, or its parameters) stands for, as
        the linted code builds it: each layer's construction (`nn.BatchNorm2d(c)`, or a torchvision
        model builder whose networks hold them), found through the `__init__` of linted classes (and
        the helpers and submodule classes it calls, `nn.Sequential(*layers)` included), `nn.Sequential`'s
        arguments and the attributes it holds. Empty when its construction is not seen."""
        found: list[CallFact] = []
        pending: list[object] = [module.identity]
        if isinstance(module.payload, Definition):
            pending.append(module.payload)
        pending.extend(item.identity for _, item in module.items if item.kind is Kind.MODULE)
        seen: set[object] = set()
        while pending:
            current = pending.pop()
            if current is None or current in seen:
                continue
            seen.add(current)
            if isinstance(current, Definition):
                pending.extend(self._interpreter.builds.get(current, ()))
                continue
            if not isinstance(current, cst.Call):
                continue
            for fact in self._interpreter.facts.get(current, ()):
                leaf = api.last_part(fact.function or "")
                if leaf in api.BATCH_NORM_CLASSES or api.is_torchvision_model(fact.function or ""):
                    found.append(fact)
                    break
                if leaf in api.MODULE_CONTAINERS:
                    pending.extend(value.identity for value in fact.args if value.kind is Kind.MODULE)
                if isinstance(fact.result.payload, Definition):
                    pending.append(fact.result.payload)
        return found

    def replicated_calls(self, node: cst.Call) -> Sequence[ReplicatedCall]:
        """The evaluations of this call that called an `nn.DataParallel`-wrapped module inside an
        autocast region (those of the default configuration first)."""
        found = self._interpreter.replicated_calls.get(node, ())
        return sorted(found, key=lambda call: call.condition is not None)

    def opens_autocast(self, definition: Definition) -> bool:
        """Whether a function of the linted code enters an autocast region itself: an autocast
        decorator, or an autocast object it builds (`with torch.autocast(...)` in its body)."""
        if definition.region is not None:
            return True
        for node in walk(definition.function):
            if isinstance(node, cst.Call):
                if any(fact.result.kind is Kind.AUTOCAST for fact in self._interpreter.facts.get(node, ())):
                    return True
        return False

    def scaler_enabled(self, construction: cst.Call) -> bool | None:
        """Whether the GradScaler built by `construction` is on: its `enabled=` (True when absent),
        None when that depends on the run or the call is not a GradScaler's construction."""
        for fact in self.calls(construction):
            if fact.function not in api.GRAD_SCALERS:  # the analysis makes every one a Kind.SCALER
                continue
            enabled = fact.arg(None, "enabled")
            if enabled is not None:
                return enabled.const if isinstance(enabled.const, bool) else None
            return True if len(fact.args) <= 1 else None  # more positionals may include `enabled`
        return None

    def scaler_condition(self, construction: cst.Call) -> str | None:
        """The configuration test a GradScaler is enabled by (`enabled=(dtype == "float16")`, as
        written), when it holds in the configuration that runs: another configuration turns the
        scaler off. None for a scaler always on or off, or one enabled by what is no configuration
        (a parameter nobody passes)."""
        enabled = next((arg.value for arg in construction.args if arg.keyword and arg.keyword.value == "enabled"), None)
        if enabled is None or self.scaler_enabled(construction) is not True:
            return None
        if isinstance(enabled, (cst.Comparison, cst.Name, cst.Attribute, cst.BooleanOperation, cst.UnaryOperation)):
            enabled = enabled.with_changes(lpar=(), rpar=())  # `enabled=(dtype == "float16")` named without them
        return configuration_test(enabled)

    def fixed_fp16(self, region: Region) -> bool:
        """Whether a float16 autocast region is float16 whatever the configuration: its entry point's
        default dtype (`torch.cuda.amp.autocast()`) or a dtype written out (`dtype=torch.float16`),
        not one read from a variable (nanoGPT's `dtype=ptdtype` follows its `dtype` setting), and on
        whatever the configuration (EveryDream's `autocast(enabled=args.amp)` is off where its
        `GradScaler(enabled=args.amp)` is)."""
        if region.precision is not Precision.FP16 or region.otherwise is not None or region.enabled is False:
            return False
        node = region.node
        if not isinstance(node, cst.Call) or not any(fact.result.kind is Kind.AUTOCAST for fact in self.calls(node)):
            return False
        written = [arg.value for arg in node.args if arg.keyword is not None and arg.keyword.value == "dtype"]
        written += [arg.value for arg in node.args[1:2] if arg.keyword is None]
        enabled = [arg.value for arg in node.args if arg.keyword is not None and arg.keyword.value == "enabled"]
        if any(not (isinstance(flag, cst.Name) and flag.value == "True") for flag in enabled):
            return False
        return all(isinstance(dtype, cst.Attribute) and dtype.attr.value in ("float16", "half") for dtype in written)

    def under_another_launch(self, fact: Fact) -> bool:
        """Whether `fact` comes from a run under a non-default launch configuration (`analyze`): its
        configuration tests were decided by that launch's values, not by the default ones."""
        interpreter: Interpreter = self._interpreter
        launches = {*interpreter.launch_alternatives, *(condition for _, condition in interpreter.option_alternatives)}
        # A branch that configuration skips too, read aside in its run: "<launch> and <test>".
        return fact.condition is not None and any(continues(fact.condition, run) for run in launches)

    def has_master_weights(self, optimizer: cst.Call, condition: str | None) -> bool:
        """Whether a framework wraps the optimizer built by `optimizer`, on the path of `condition`,
        in one that steps fp32 copies."""
        return self._interpreter.steps_master_weights(optimizer, condition)

    def stepped_with_master_weights(self) -> list[tuple[str, cst.Call]]:
        """The optimizer constructions (with their file) that a framework steps with fp32 master
        weights on this run's default path: what other units say of their half steps is refuted."""
        interpreter: Interpreter = self._interpreter
        return [
            (facts[0].path, optimizer)
            for optimizer, conditions in interpreter.master_weights.items()
            if None in conditions and (facts := interpreter.facts.get(optimizer))
        ]

    @property
    def data_files(self) -> Collection[str]:
        """Data files (framework configs) the analysis read: what the findings depend on besides code."""
        return self._interpreter.data_files

    def scales_loss(self, path: str, condition: str | None = None) -> bool:
        """Whether the file builds a loss scaler, or a framework that scales the loss for it: on the
        default path, or on the path of `condition` (or of a condition it continues)."""
        interpreter: Interpreter = self._interpreter
        if path in interpreter.loss_scaling_paths:
            return True
        return condition is not None and any(
            path == scaling_path and (condition == scaled or condition.startswith(f"{scaled} and "))
            for scaling_path, scaled in interpreter.conditional_loss_scaling
        )


def _selected(facts: Sequence[Fact], conditional: bool) -> Sequence[Fact]:
    """`facts` (default configuration first, then those of the fewest conditions: a finding names
    the plainest path to it), without the conditional ones unless asked for."""
    if not facts or facts[-1].condition is None:
        return facts
    if conditional:
        return sorted(facts, key=_conditions)
    return [fact for fact in facts if fact.condition is None]


def _conditions(fact: CallFact | OperationFact | LateCast) -> int:
    return conditions_in(fact.condition)


def analyze(
    roots: dict[str, Loaded],
    load: Callable[[str], Loaded | None],
    index: ModuleIndex,
    words: frozenset[str] = frozenset(),
    tree_memo: Callable[[str], TreeMemo] | None = None,
    reaches: Callable[[str, str], bool] | None = None,
) -> PrecisionModel:
    """Interpret `roots`; other files of the run (those `index` knows) are parsed through `load`
    only when a root reads a name from them. With `words` (the rules' trigger and sink words), a
    function nobody calls is analysed only if it mentions one, or calls code of the linted files.
    `tree_memo` gives each file's memo of facts of its nodes, when the caller keeps them across units;
    `reaches` tells whether a function of another file may lead to a word (else all are followed)."""
    interpreter = Interpreter(roots, load, index, words, tree_memo, reaches)
    interpreter.run()
    # Another accelerate launch configuration of the repository, or a launch command giving options of
    # precision the others do not: the whole unit again under it, its facts kept as those of a
    # non-default configuration.
    configurations: list[tuple[str, LaunchConfig | None, dict[str, LaunchOptions]]] = [
        (condition, launch, {}) for condition, launch in interpreter.launch_alternatives.items()
    ]
    configurations += [
        (condition, None, {script: options}) for (script, condition), options in interpreter.option_alternatives.items()
    ]
    for condition, launch, options in configurations:
        alternative = Interpreter(roots, load, index, words, tree_memo, reaches)
        alternative.launch_override = launch
        alternative.condition = alternative.run_condition = condition
        alternative.launch_options.update(options)
        alternative.run()
        _absorb(interpreter, alternative)
    return PrecisionModel(interpreter)


def _absorb(interpreter: Interpreter, alternative: Interpreter) -> None:
    """Add the facts of a run under a non-default configuration to those of the default run. An
    optimizer whose steps that configuration's framework gives fp32 master weights has none of its
    facts added: the default run's own verdict on it stands."""
    for node, facts in alternative.facts.items():
        for fact in facts:
            if not alternative.steps_master_weights(node, fact.condition):
                record(interpreter.facts, node, fact)
    for operation, seen in alternative.operations.items():
        for operation_fact in seen:
            record(interpreter.operations, operation, operation_fact)
    for cast, late_casts in alternative.late_casts.items():
        kept = [late for late in late_casts if not alternative.steps_master_weights(late.optimizer, late.condition)]
        interpreter.late_casts.setdefault(cast, []).extend(kept)
    for call, replicated in alternative.replicated_calls.items():
        interpreter.replicated_calls.setdefault(call, []).extend(replicated)
    interpreter.data_files.update(alternative.data_files)
    interpreter.entered_paths.update(alternative.entered_paths)
