from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import libcst as cst

from mplint import tree
from mplint.analysis import torch_api
from mplint.analysis.facts import CallFact, LateCast, conditions_in
from mplint.analysis.frameworks import transformers
from mplint.analysis.values import Kind, Value
from mplint.rule import Rule
from mplint.tree import dotted_text, walk

if TYPE_CHECKING:
    from mplint.run.engine import FileContext


class OptimizerOnHalfParams(Rule):
    """An optimizer updates half-precision parameters, with no fp32 master weights.

    ## What it does
    Finds an optimizer (`torch.optim.*`, bitsandbytes, apex `FusedAdam`, `transformers.AdamW`, ...)
    built over the parameters of a module made bfloat16/float16 (`model.half()`,
    `.to(torch.bfloat16)`, `from_pretrained(..., torch_dtype=torch.bfloat16)`,
    `torch.set_default_dtype(torch.bfloat16)` before the model is built), whether the
    parameters are passed as `model.parameters()`, a `named_parameters()` comprehension, a
    `filter(...)`, param-group dicts or lists built from them, or through helper functions. It
    also reports a module cast to half in place *after* its optimizer was built, then stepped (at
    the optimizer, naming the cast: sd-scripts' `--full_bf16` casts the U-Net once its optimizer
    exists), and a transformers/TRL `Trainer(model=...)` given a model loaded half: the Trainer builds its
    own optimizer over the model's trainable parameters as they are. A factory of the linted code
    that builds an optimizer over parameters it is handed and returns it (`get_optimizer(args,
    params)`, `instantiate_torch_optimizer(name, model.parameters())`) is right for fp32 parameters:
    each call handing it half-precision ones is reported, at that call.

    Not reported: an fp32 model trained under autocast; an optimizer handed to
    `deepspeed.initialize` with fp16 or bf16 on (DeepSpeed steps fp32 masters); FSDP with `MixedPrecision` (shards stay
    fp32); optimizers that compensate (`optimi`'s Kahan summation, `kahan_sum=True`,
    `bf16_stochastic_round=True`); a Trainer whose arguments are not all known (`**config`, TRL's
    `--config` file) or turn DeepSpeed/FSDP on, or that an accelerate configuration may launch; an
    optimizer a function only hands to `prepare()` and never steps, returns or passes on (a sampling
    script loading a training checkpoint).

    ## Why is this bad
    The update `w - lr * step` is rounded to the parameter's precision. With bf16's 8-bit
    mantissa, any update smaller than ~1/256 of the weight is rounded away entirely: at a
    learning rate of 1e-5 most updates vanish and training stalls while the loss looks merely
    slow. The optimizer's state (`exp_avg`, `exp_avg_sq`) is half too and loses its own
    small increments.

    ## Example
    ```python
    model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ```

    ## Fix
    Keep the parameters fp32 and run the forward pass under autocast:
    ```python
    model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(**batch).loss
    ```
    Or keep an fp32 master copy the optimizer updates, copying it back into the bf16 model
    after each step; or use an optimizer with Kahan summation / stochastic rounding
    (`optimi.AdamW`, torchao's `bf16_stochastic_round=True`).
    """

    CODE = "MP003"
    NAME = "optimizer-on-half-params"
    MESSAGE = (
        "{optimizer} over {dtype} parameters ({origin}): no fp32 master weights, small updates round away; "
        "keep the parameters fp32 and use autocast"
    )
    LATE_MESSAGE = (
        "{optimizer} over parameters cast to {dtype} in place after it was built (at {path}:{line}), then stepped: "
        "no fp32 master weights, small updates round away; keep the parameters fp32 and use autocast"
    )
    TRIGGERS = torch_api.LOW_PRECISION_WORDS
    NEEDS_HALF_STEPS = True
    # A Trainer (transformers', TRL's, a subclass) builds its optimizer itself: `RLOOTrainer(model=policy)`.
    SINKS = frozenset({"optim", "Adam", "SGD", ".step(", "Trainer"})
    VALID = (
        """
import torch
model = torch.nn.Linear(8, 8)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
with torch.autocast("cuda", dtype=torch.bfloat16):
    loss = model(torch.randn(2, 8)).sum()
""",
    )
    INVALID = (
        """
import torch
model = torch.nn.Linear(8, 8).half()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
""",
    )

    def __init__(self, context: FileContext) -> None:
        super().__init__(context)
        self._around: dict[cst.Call, cst.FunctionDef | None] = {}
        self._at_sites: dict[tuple[str, cst.Call], tuple[tuple[int, int], str, str | None]] = {}

    def visit_Call(self, node: cst.Call) -> None:
        # Where this optimizer is reported: at the call itself once, or at each call that handed a
        # factory its parameters (one finding per caller).
        reported: set[tuple[str, cst.Call] | None] = set()
        half = [
            (self._handing_call(fact), fact, found)
            for fact in self.precision.calls(node, conditional=True)
            if (found := self._half_params(fact)) is not None
            and not self.precision.has_master_weights(node, fact.condition)
        ]
        function = self._function_around(node) if half else None
        if function is not None and _only_prepared(node, function):
            half = []
        # How many runs built it over half parameters on the default path, per place it is reported.
        runs = Counter(site for site, fact, _ in half if fact.condition is None)
        for site, fact, (optimizer, params) in half:
            if not _first_at(site, reported):
                continue
            origin = self.describe_origin(params.origin, fact.chain)
            message = self.MESSAGE.format(
                optimizer=_built_by(optimizer, site, fact), dtype=params.precision.value, origin=origin
            )
            self._report_at(node, site, message, fact.condition, runs[site])
        # A module cast in place after the optimizer was built over its fp32 parameters: reported where
        # the optimizer is, as a direct finding would be, naming the cast.
        for late in self.precision.late_casts_of(node):
            built = self._fact_cast_in(late)
            site = self._handing_call(built) if built is not None else None
            if not _first_at(site, reported):
                continue
            optimizer = _optimizer_name(self.precision.calls(node))
            message = self.LATE_MESSAGE.format(
                optimizer=_built_by(optimizer, site, built),
                dtype=late.precision.value,
                path=late.path,
                line=self.line_of(late.cast, late.path),
            )
            self._report_at(node, site, message, late.condition, 0)

    def _report_at(
        self, node: cst.Call, site: tuple[str, cst.Call] | None, message: str, condition: str | None, runs: int
    ) -> None:
        if site is None:
            self.report(node, message, condition=condition)
            return
        # A factory builds one of several optimizers (`if optimizer_type == "lion": ...`): its call is
        # reported once the file is read, for the one built on the plainest path, by the most runs
        # (the default one: a run of the caller on its own, not knowing the option, builds them all).
        rank = (conditions_in(condition), -runs)
        best = self._at_sites.get(site)
        if best is None or rank < best[0]:
            self._at_sites[site] = (rank, message, condition)

    def leave_Module(self, original_node: cst.Module) -> None:
        for (path, call), (_, message, condition) in self._at_sites.items():
            self.report(call, message, path=path, condition=condition)

    def _fact_cast_in(self, late: LateCast) -> CallFact | None:
        """The optimizer's construction in the run that cast its parameters: built by the function that
        cast them, or by a helper it called (whose call is then `_handing_call`'s)."""
        depth = len(late.chain)
        for fact in self.precision.calls(late.optimizer, conditional=True):
            if len(fact.chain) <= depth + 1 and fact.chain[:depth] == late.chain:
                if fact.call_sites[:depth] == late.call_sites:
                    return fact
        return None

    def _function_around(self, node: cst.Call) -> cst.FunctionDef | None:
        """The def around an optimizer construction, found once per node (a factory's construction has
        a fact per caller)."""
        if node not in self._around:
            self._around[node] = tree.enclosing_function(node, self.context.parsed.pieces)
        return self._around[node]

    def _half_params(self, fact: CallFact) -> tuple[str, Value] | None:
        """The optimizer a call builds over half-precision parameters, by name, and those parameters."""
        # A project's own optimizer class (`MemoryEfficientAdamW(...)`) is named as the call spells it.
        name = fact.function or dotted_text(fact.node.func)
        own = transformers.own_optimizer_params(fact.result)
        if own is not None:  # `Trainer(model=bf16_model, args=...)` builds its optimizer over them
            builder = torch_api.last_part(name or "Trainer")
            if builder.startswith("create_optimizer"):  # `self.create_optimizer_and_scheduler(...)`
                builder = f"Trainer.{builder}"
            return f"the optimizer {builder} builds", own
        if fact.result.kind is not Kind.OPTIMIZER or fact.callee is not None or not name:
            return None  # a helper of the linted code is reported where it builds the optimizer
        if name.startswith(torch_api.LOW_PRECISION_SAFE_OPTIMIZER_PREFIXES):
            return None
        if any(_is_true(fact.arg(None, flag)) for flag in torch_api.LOW_PRECISION_SAFE_OPTIMIZER_FLAGS):
            return None
        params = fact.result.item("params") or fact.arg(0, "params")
        if params is None or params.kind is not Kind.PARAMS or not params.precision.is_low:
            return None
        return torch_api.last_part(name), params

    def _handing_call(self, fact: CallFact) -> tuple[str, cst.Call] | None:
        """Where an optimizer built by a helper over parameters it was handed is reported: the call
        that handed them (`_handed_by`), or, where that call is itself a factory's handing on what
        its own caller handed it, that caller's (atropos: `create_optimizer(model, config)` returns
        `create_optimizer_for_params([p for p in model.parameters() ...], config)`)."""
        site = self._handed_by(fact)
        for _ in range(_MOST_FACTORY_LEVELS):
            outer_fact = self._fact_of_site(site, fact) if site is not None else None
            if outer_fact is None:
                break
            outer = self._handed_by(outer_fact, through_names=True)
            if outer is None:
                break
            site, fact = outer, outer_fact
        return site

    def _fact_of_site(self, site: tuple[str, cst.Call], fact: CallFact) -> CallFact | None:
        """The fact of the call `site` in the run that built `fact`'s optimizer through it."""
        depth = len(fact.chain) - 1
        for found in self.precision.calls(site[1], conditional=True):
            if found.chain == fact.chain[:depth] and found.call_sites == fact.call_sites[:depth]:
                return found
        return None

    def _handed_by(self, fact: CallFact, *, through_names: bool = False) -> tuple[str, cst.Call] | None:
        """The call that handed a helper the parameters its optimizer is built over (sd-scripts'
        `get_optimizer(args, trainable_params)` builds `optimizer_class(trainable_params, ...)`;
        litgpt's `instantiate_torch_optimizer(optimizer, model.parameters())`), which chose them. None
        where the function around the call built its parameters itself (`through_names`: unless from
        a parameter, into a name, to hand them on to another factory), or the call that ran it is not
        known."""
        if not fact.call_sites or fact.call_sites[-1] is None or not fact.chain:
            return None
        function = self._function_around(fact.node)
        argument = fact.node.args[0].value if fact.node.args and not fact.node.args[0].keyword else None
        argument = tree.keyword_arg(fact.node, "params") or argument
        if function is None or argument is None or not _mentions_parameter(argument, function, through_names):
            return None
        if not _returns(fact.node, function):
            return None  # a training function that steps the optimizer it builds (`def train(model)`)
        path, call = fact.call_sites[-1]
        ran = (caller.callee for caller in self.precision.calls(call, conditional=True))
        if not any(callee is not None and callee.name == fact.chain[-1] for callee in ran):
            return None  # the call under way when the helper ran is not the one that called it
        return path, call


def _mentions_parameter(expression: cst.BaseExpression, function: cst.FunctionDef, through_names: bool) -> bool:
    """Whether an expression reads a parameter of `function` other than its receiver (`model_parameters`,
    `filter(lambda p: p.requires_grad, params)`, `model.parameters()` of a model handed in), itself or,
    `through_names`, through a name the function binds once from such an expression listing
    parameters (`trainable_params = [p for p in model.parameters() if p.requires_grad]`)."""
    parameters = function.params
    names = {param.name.value for param in (*parameters.params, *parameters.kwonly_params)} - {"self", "cls"}
    if any(isinstance(node, cst.Name) and node.value in names for node in walk(expression)):
        return True
    if not through_names or not isinstance(expression, cst.Name):
        return False
    bound = tree.single_assignment(function, expression.value)
    return (
        bound is not None
        and any(isinstance(node, cst.Name) and node.value in names for node in walk(bound))
        and any(isinstance(node, cst.Attribute) and node.attr.value in _PARAMETER_LISTS for node in walk(bound))
    )


# Methods listing a module's parameters: a name bound from one of them chooses parameters.
_PARAMETER_LISTS = frozenset({"parameters", "named_parameters"})


# How many factories handing on what their caller handed them a finding climbs through.
_MOST_FACTORY_LEVELS = 4


def _returns(call: cst.Call, function: cst.FunctionDef) -> bool:
    """Whether `function` returns what `call` makes: in its `return`, or through a name it is bound to
    (`optimizer = optimizer_class(...)` ... `return optimizer_name, optimizer_args, optimizer`)."""
    returned = [node.value for node in walk(function.body) if isinstance(node, cst.Return) and node.value is not None]
    if any(inner is call for value in returned for inner in walk(value)):
        return True
    names = _bound_names(call, function)
    return bool(names) and any(
        isinstance(inner, cst.Name) and inner.value in names for value in returned for inner in walk(value)
    )


def _bound_names(call: cst.Call, function: cst.FunctionDef) -> set[str]:
    """The plain names `function` binds what `call` makes to (`optimizer = AdamW(...)`)."""
    names: set[str] = set()
    for node in walk(function.body):
        if isinstance(node, (cst.Assign, cst.AnnAssign)) and node.value is not None:
            if any(inner is call for inner in walk(node.value)):
                targets = node.targets if isinstance(node, cst.Assign) else [node]
                names.update(target.target.value for target in targets if isinstance(target.target, cst.Name))
    return names


def _only_prepared(call: cst.Call, function: cst.FunctionDef) -> bool:
    """Whether the optimizer `call` builds is bound to names the function reads only to hand it to a
    `prepare` (d3po's sampling script builds one for `accelerator.prepare` to load a checkpoint into):
    nothing steps it, returns it or passes it on, so no weight is ever updated."""
    names = _bound_names(call, function)
    prepared: set[int] = set()  # the names given to `prepare`
    targets: set[int] = set()  # and those bound, by the construction or by `prepare`
    for node in walk(function.body):
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "prepare":
            prepared.update(id(inner) for arg in node.args for inner in walk(arg.value))
        elif isinstance(node, cst.AssignTarget):
            targets.update(id(inner) for inner in walk(node.target))
    read = [node for node in walk(function.body) if isinstance(node, cst.Name) and node.value in names]
    uses = [node for node in read if id(node) not in targets]
    return bool(uses) and all(id(node) in prepared for node in uses)


def _first_at(site: tuple[str, cst.Call] | None, reported: set[tuple[str, cst.Call] | None]) -> bool:
    """Whether nothing was reported yet where `site` says (None: at the optimizer); adds it."""
    if site in reported or (site is not None and None in reported):
        return False
    reported.add(site)
    return True


def _built_by(optimizer: str, site: tuple[str, cst.Call] | None, fact: CallFact | None) -> str:
    """`AdamW (built by `get_optimizer()`)` where a factory's caller is reported."""
    return f"{optimizer} (built by `{fact.chain[-1]}()`)" if site is not None and fact is not None else optimizer


def _optimizer_name(facts: Sequence[CallFact]) -> str:
    names = (fact.function or dotted_text(fact.node.func) for fact in facts)
    return next((torch_api.last_part(name) for name in names if name), "the optimizer")


def _is_true(value: object) -> bool:
    return getattr(value, "payload", None) is True
