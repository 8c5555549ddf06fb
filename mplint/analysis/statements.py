"""The interpreter's statements: a block in order, branches run from the same names and joined where
they fall through (a test known in the configuration that runs takes its branch alone), `with`
entering autocast and no_grad regions, and the small statements (assignments, returns, imports).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, cast

import libcst as cst

from mplint import tree
from mplint.analysis import torch_api as api
from mplint.analysis.bindings import element_of
from mplint.analysis.configuration import (
    DTYPE_TEST,
    NAMESPACE,
    configuration_condition,
    configuration_test,
    truth_value,
)
from mplint.analysis.scopes import Context, Frame
from mplint.analysis.values import UNKNOWN, Kind, Origin, Precision, Region, Value, const, is_tensor_like, join
from mplint.tree import NODE_TYPES, Statement, statements

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter


def exec_block(self: Interpreter, body: Sequence[Statement], ctx: Context) -> bool:
    """Execute statements in order; False when the block always leaves (return/raise/continue/break)."""
    for index, statement in enumerate(body):
        if type(statement) is cst.If:
            self.after_if = (body, index + 1)  # what follows it, for a branch read aside (`exec_if`)
        if not self.exec_statement(statement, ctx):
            return False
    return True


def exec_statement(self: Interpreter, node: Statement, ctx: Context) -> bool:
    if type(node) in _SMALL_STATEMENTS:
        return self.exec_simple(cast(cst.BaseSmallStatement, node), ctx)  # an exact type test: not narrowed
    if type(node) is cst.If:
        return exec_if(self, node, ctx)
    if type(node) is cst.For:
        iterable = self.eval(node.iter, ctx)
        self.assign(node.target, element_of(iterable), ctx)
        self.exec_block(statements(node.body), ctx)
        self.exec_block(statements(node.orelse), ctx)
        self.apply_submodule_casts(node, ctx)
        return True
    if type(node) is cst.While:
        self.eval(node.test, ctx)
        self.exec_block(statements(node.body), ctx)
        self.exec_block(statements(node.orelse), ctx)
        return True
    if type(node) is cst.With:
        return self.exec_with(node, ctx)
    if type(node) is cst.Try or type(node) is cst.TryStar:
        # The handlers are alternatives to the body's end (its `else:`), not what follows it:
        # `try: from torch.amp import autocast / except ImportError: from torch.cuda.amp import
        # autocast` leaves `autocast` as either, not as the fallback.
        self.exec_block(statements(node.body), ctx)
        for handler in node.handlers:
            if handler.type is not None:
                self.eval(handler.type, ctx)
        handlers = [statements(handler.body) for handler in node.handlers]
        if handlers:
            self.exec_branches(ctx, None, handlers, statements(node.orelse))
        else:
            self.exec_block(statements(node.orelse), ctx)
        self.exec_block(statements(node.finalbody), ctx)
        return True
    if type(node) is cst.FunctionDef:
        self.define_function(node, ctx)
        return True
    if type(node) is cst.ClassDef:
        self.define_class(node, ctx)
        return True
    if type(node) is cst.Match:
        self.eval(node.subject, ctx)
        return self.exec_branches(ctx, None, [statements(case.body) for case in node.cases], [])
    return True


# The `Value.op` of what `with helper():` enters when the helper sets torch's default dtype around
# its `yield` (the value's precision and origin are that dtype's).
DEFAULT_DTYPE = "default_dtype"

# A configuration test (as `configuration_test` names it) and whether it holds.
Implied = tuple[str, bool]


def exec_if(self: Interpreter, node: cst.If, ctx: Context) -> bool:
    """An elif chain is one many-way branch (not nested ones: generated dispatch code has hundreds
    of elifs). A test whose value is known in the configuration that runs (`if args.amp:` with
    `default=True`) takes its branch alone; the branches that configuration skips are read aside
    (`exec_aside`), so that a bug behind a non-default option is still reported, as conditional."""
    block, start = self.after_if
    rest = block[start:] if 0 < start <= len(block) and block[start - 1] is node else ()
    bodies: list[list[Statement]] = []
    branch: cst.If | cst.Else | None = node
    while isinstance(branch, cst.If):
        tested = self.eval(branch.test, ctx)
        taken = truth_value(tested)
        # A configuration chose the branch, not a tensor's dtype, nor whether a model was handed in.
        chosen = tested.op != DTYPE_TEST and tested.kind is not Kind.MODULE
        # The test without a `not` around it (`if not train_unet:` tests `train_unet`), so that
        # `if x:` and `if not x:` are one choice.
        test, negated = _test_of(self, ctx, branch.test) if chosen or self.assumed else (None, False)
        assumed = self.assumed.get((id(self.frames[-1]), test)) if self.assumed and test is not None else None
        if assumed is not None:
            # `if use_amp:` again on a path read aside where `use_amp` holds: that path's branch
            # alone (the timm/ConvNeXt step: `if use_amp: with autocast()` ... `if use_amp:
            # loss_scaler(loss, ...)` / `else: loss.backward()`).
            taken, chosen = assumed is not negated, False
        if taken is True:
            if chosen and test is not None:
                skipped = _implied(self, ctx, branch.test, False)
                if not _rerun_instead(self, ctx, branch, _implied(self, ctx, branch.test, True), skipped):
                    for body in _later_bodies(branch.orelse):
                        exec_aside(self, body, ctx, (test, negated), rest, skipped, node)
            return (
                self.exec_branches(ctx, None, bodies, statements(branch.body))
                if bodies
                else self.exec_block(statements(branch.body), ctx)
            )
        if taken is None:
            bodies.append(statements(branch.body))
        elif chosen and test is not None:
            skipped = _implied(self, ctx, branch.test, True)
            if not _rerun_instead(self, ctx, branch, _implied(self, ctx, branch.test, False), skipped):
                exec_aside(self, statements(branch.body), ctx, (test, not negated), rest, skipped, node)
        branch = branch.orelse
    return (
        self.exec_branches(ctx, None, bodies, statements(branch))
        if bodies
        else self.exec_block(statements(branch), ctx)
    )


def _checks_a_choice(test: cst.BaseExpression) -> bool:
    """Whether an assert compares a setting with a value (`args.mixed_precision == "fp16"`, `x in
    ("a", "b")`), rather than requiring one to be given (`args.data_dir is not None`, `args.model`),
    which a default of None fails wherever a command gives it."""
    return isinstance(test, cst.Comparison) and all(
        type(target.operator) in (cst.Equal, cst.NotEqual, cst.In, cst.NotIn) for target in test.comparisons
    )


def path_condition(outer: str | None, test: str, holds: bool) -> str | None:
    """The condition of a path where the configuration test `test` holds (or not), taken in a run
    under the non-default configuration `outer` (or the default one: None)."""
    condition = configuration_condition(test, holds=holds)
    return condition if outer is None else f"{outer} and {condition}"


def _rerun_instead(
    self: Interpreter, ctx: Context, branch: cst.If, taken: tuple[Implied, ...], skipped: tuple[Implied, ...]
) -> bool:
    """Whether the branch the configuration skips at `branch` (where the tests `skipped` implies hold)
    is read by a run of the whole function under it (`call_definition`) rather than aside from here:
    when an earlier `if` of this run that casts, moves or adapts a module (`_mentions_precision`)
    decided one of those tests the other way, since a branch of it may have changed what this one
    reads (d3po's `if config.use_lora: pipeline.unet.to(dtype)` ... `if config.use_lora: ... else:
    trainable_layers = pipeline.unet`). Only on the run's own path, not on one read aside already.
    Past the function's runs such a branch is not read at all: aside, it would see what the earlier
    `if` did. The tests the branch `taken` implies are recorded as decided."""
    if self.condition != self.run_condition:
        return False
    frame = self.frames[-1]
    decided, with_precision = frame.decided, frame.decided_with_precision
    conflict = any(
        (earlier := decided.get(test)) is not None
        and earlier[1] is not branch
        and earlier[0] is not holds
        and test in with_precision
        for test, holds in skipped
    )
    mentions = self.of_tree(ctx.scope.module.path, _mentions_precision, branch)
    for test, holds in taken:
        decided.setdefault(test, (holds, branch))
        if mentions:
            with_precision.add(test)
    if not conflict:
        return False
    # Read aside from here, the branch would see what the earlier `if` did on the other path: run
    # again, or not read at all once the function has had its runs.
    reruns = frame.reruns
    if len(reruns) < MAX_RERUNS or skipped[0][0] in reruns:
        reruns[skipped[0][0]] = skipped
    return True


def _mentions_precision(node: cst.If) -> bool:
    """Whether an `if` names a dtype, a half precision or a change of a module's parameters anywhere
    (`dtype=weight_dtype`, `.half()`, `.to(...)`, `torch.bfloat16`, `text_encoder.add_adapter(...)`):
    what its branches may cast or add."""
    for found in tree.walk(node):
        name = (
            found.value
            if isinstance(found, cst.Name)
            else found.attr.value
            if isinstance(found, cst.Attribute)
            else None
        )
        if name is not None and ("dtype" in name.lower() or name in _PRECISION_NAMES):
            return True
    return False


_PRECISION_NAMES = frozenset(
    {
        "half",
        "bfloat16",
        "float16",
        "bf16",
        "fp16",
        "get_peft_model",
        "prepare_model_for_kbit_training",
        *api.MODULE_CASTS,
        *api.ADAPTER_METHODS,
        *api.TRAINABLE_CASTS,
    }
)


def _implied(self: Interpreter, ctx: Context, test: cst.BaseExpression, holds: bool) -> tuple[Implied, ...]:
    """The configuration tests a path where `test` holds (or not) decides, as `configuration_test`
    names them: the test itself without its `not`s, and the operands of an `a or b` that is false or
    of an `a and b` that is true (fine_tune.py's `if args.learning_rate_te is None or not
    args.train_text_encoder:` is false only where `args.train_text_encoder` is true)."""
    test, negated = _without_nots(test)
    holds = holds is not negated
    name = self.of_tree(ctx.scope.module.path, configuration_test, test)
    found: tuple[Implied, ...] = ((name, holds),) if name is not None else ()
    if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And if holds else cst.Or):
        found += _implied(self, ctx, test.left, holds) + _implied(self, ctx, test.right, holds)
    return found


# Whole-body runs per function evaluation, each under another value of a configuration test.
MAX_RERUNS = 1


def with_attributes(names: dict[str, Value], record: Value, depth: int = 0) -> Value:
    """A record of settings as returned, each record it holds replaced by the latest value of a name
    bound to the same record (`config.train = train = ConfigDict()`, then `train.lr = 3e-4`)."""
    items = dict(record.items)
    for attr, value in record.items:
        if value.kind is not Kind.DICT or value.op != NAMESPACE or value.identity is None:
            continue
        latest = [bound for name, bound in names.items() if "." not in name and bound.identity == value.identity]
        if latest and depth < _DEEPEST_RECORD:
            items[attr] = with_attributes(names, latest[-1], depth + 1)
    return record.with_(items=tuple(sorted(items.items())))


# How deep records of settings nest (`config.train.optimizer.lr`).
_DEEPEST_RECORD = 4


def assumed_truth(self: Interpreter, ctx: Context, test: cst.BaseExpression) -> bool | None:
    """Whether a configuration test holds on the path under way, where that path assumes it (a branch
    read aside, a run under an option): `x if args.pure_bf16 else y` follows the `if` that took it."""
    if not self.assumed:
        return None
    name, negated = _test_of(self, ctx, test)
    holds = self.assumed.get((id(self.frames[-1]), name)) if name is not None else None
    return None if holds is None else holds is not negated


def _test_of(self: Interpreter, ctx: Context, test: cst.BaseExpression) -> tuple[str | None, bool]:
    """The configuration test an `if` reads (`configuration_test`'s name of it) without the `not`s
    around it, and whether they negate it."""
    inner, negated = _without_nots(test)
    return self.of_tree(ctx.scope.module.path, configuration_test, inner), negated


def _without_nots(test: cst.BaseExpression) -> tuple[cst.BaseExpression, bool]:
    """`not not x` as `x`, and whether the `not`s around it negate it."""
    negated = False
    while isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        test, negated = test.expression, not negated
    return test, negated


def exec_aside(
    self: Interpreter,
    body: list[Statement],
    ctx: Context,
    test: tuple[str, bool],
    rest: Sequence[Statement] = (),
    implied: Sequence[Implied] = (),
    chain: cst.If | None = None,
) -> None:
    """Run a branch the default configuration skips for its facts alone (marked with the condition
    that the configuration test named `test[0]` holds or not, `test[1]`): what it binds, returns or
    sets up is dropped, so the default path never sees it. When it binds a low precision or another
    function (`if args.bf16: model = model.to(torch.bfloat16)`, `score_fn = partial(avg_logprob,
    model=model)`), the statements after the `if` in its block (`rest`) run aside with it too, where
    those names are used (not inside another such path), the same test deciding alike there; so do
    they when it keeps a name low that a branch of its `if` (`chain`) assigns (anima_train.py:
    `if args.full_bf16: ... else: dit_weight_dtype = torch.float32`, then `dit.to(dit_weight_dtype)`)."""
    if not body and not rest:
        return
    names = dict(ctx.scope.names)
    frame = self.frames[-1]
    returned, pending, yielded = len(frame.returns), len(frame.pending_casts), len(frame.yielded)
    defaults = len(frame.yielded_defaults)
    # Nested: each non-default condition on the way names the path (MeZO's `args.trainer != "none"`
    # inside `args.train_set_seed is not None`), after a run's own launch configuration
    # (`model.analyze`); only the outermost reads the statements after the `if` aside.
    first = self.condition == self.run_condition
    try:
        with off_path(self, frame, (test, *implied)):
            if self.exec_block(body, ctx) and rest and first:
                if _rebinds_precision(names, ctx.scope.names) or _keeps_low(names, ctx.scope.names, chain):
                    self.exec_block(rest, ctx)
    finally:
        ctx.scope.names.clear()
        ctx.scope.names.update(names)
        del frame.returns[returned:], frame.pending_casts[pending:], frame.yielded[yielded:]
        del frame.yielded_defaults[defaults:]


@contextmanager
def off_path(self: Interpreter, frame: Frame, implied: Sequence[Implied]) -> Iterator[None]:
    """Within, a path the run's configuration does not take: the configuration tests `implied` hold
    as given in `frame`'s function run (the first names the path's condition, after any outer one),
    and what the path does to torch's default dtype and to the files' loss scaling is dropped after it
    (a branch read aside, a re-run of a function under an option)."""
    outer, outer_assumed = self.condition, self.assumed
    default_dtype, scaling = dict(self.default_dtype), set(self.loss_scaling_paths)
    self.condition = path_condition(outer, *implied[0])
    self.assumed = {**outer_assumed, **{(id(frame), test): holds for test, holds in implied}}
    try:
        yield
    finally:
        self.condition, self.assumed = outer, outer_assumed
        self.default_dtype, self.loss_scaling_paths = default_dtype, scaling


def _rebinds_precision(before: dict[str, Value], after: dict[str, Value]) -> bool:
    """Whether a branch bound a name to a low precision or to another function or region, or to an
    object holding a low-precision model (timm's `task = LogitDistillationTask(student_model=model,
    ...)` over a bf16 student, where the default path builds a `ClassificationTask`)."""
    for name, value in after.items():
        if before.get(name) is value:
            continue
        if value.precision.is_low or value.kind in (Kind.FUNCTION, Kind.CLASS, Kind.AUTOCAST) or _holds_low(value):
            if before.get(name) != value:
                return True
    return False


def _holds_low(value: Value) -> bool:
    return value.kind in (Kind.MODULE, Kind.INSTANCE) and any(
        item.kind is Kind.MODULE and item.precision.is_low for _, item in value.items
    )


def _keeps_low(before: dict[str, Value], after: dict[str, Value], chain: cst.If | None) -> bool:
    """Whether a branch left a name bound to a low precision as it was where a branch of its `if`
    chain assigns it (the branch the default path takes may not keep it low)."""
    kept = {name for name, value in before.items() if value.precision.is_low and after.get(name) is value}
    return (
        bool(kept)
        and chain is not None
        and any(
            isinstance(node, cst.AssignTarget) and isinstance(node.target, cst.Name) and node.target.value in kept
            for node in tree.walk(chain)
        )
    )


def _later_bodies(orelse: cst.If | cst.Else | None) -> list[list[Statement]]:
    """The bodies of the `elif`s and `else` after a branch; an empty one where the chain has no
    `else`, the path that skips every branch (`if cfg.use_lora: student = get_peft_model(student)`
    skipped leaves the bf16 student to the optimizer)."""
    bodies = []
    while isinstance(orelse, cst.If):
        bodies.append(statements(orelse.body))
        orelse = orelse.orelse
    bodies.append(statements(orelse.body) if orelse is not None else [])
    return bodies


def exec_branches(
    self: Interpreter,
    ctx: Context,
    test: cst.BaseExpression | None,
    bodies: list[list[Statement]],
    orelse: list[Statement],
) -> bool:
    """Run each branch from the same starting names, then join the names of those that fall
    through; a missing `else` is the path that skips every branch."""
    if test is not None:
        self.eval(test, ctx)
    names = ctx.scope.names
    before = dict(names)
    # What each branch that falls through bound differently (most bind a few names of many).
    outcomes: list[dict[str, Value]] = []
    for body in [*bodies, orelse]:
        if self.exec_block(body, ctx):
            outcomes.append({key: value for key, value in names.items() if before.get(key, _UNBOUND) is not value})
        names.clear()
        names.update(before)
    if not outcomes:
        return False
    for key in {key for outcome in outcomes for key in outcome}:
        # A name one branch binds for the first time keeps that value where the others leave it unbound.
        values = [
            outcome[key] if key in outcome else before[key] for outcome in outcomes if key in outcome or key in before
        ]
        merged = values[0]
        for value in values[1:]:
            merged = join(merged, value)
        names[key] = merged
    return True


def exec_with(self: Interpreter, node: cst.With, ctx: Context) -> bool:
    region, no_grad = ctx.region, ctx.no_grad
    default: tuple[Precision, Origin | None] | None = None
    for item in node.items:
        value = self.eval(item.item, ctx)
        if value.kind is Kind.AUTOCAST and isinstance(value.payload, Region):
            region = value.payload
        if value.op == DEFAULT_DTYPE:
            default = (value.precision, value.origin)
            value = UNKNOWN  # what `as` binds is the helper's yielded object, not a half tensor
        no_grad = no_grad or is_no_grad(value)
        if item.asname is not None:
            self.assign(item.asname.name, value, ctx)
    body = replace(ctx, region=region, no_grad=no_grad)
    if default is None:
        return self.exec_block(statements(node.body), body)
    # `with default_dtype(torch.bfloat16):`: a helper that sets torch's default dtype for its body
    # (and restores it on exit, which its summary has already run).
    path = ctx.scope.module.path
    after = self.default_dtype_at(path, Precision.FP32)
    self.set_default_dtype(path, *default)
    try:
        return self.exec_block(statements(node.body), body)
    finally:
        self.set_default_dtype(path, *after)


def exec_simple(self: Interpreter, node: cst.BaseSmallStatement, ctx: Context) -> bool:
    if type(node) is cst.Assign:
        value = in_region(self.eval(node.value, ctx), ctx)
        for target in node.targets:
            self.assign(target.target, value, ctx)
            stored = target.target
            if isinstance(stored, cst.Attribute) and stored.attr.value == "data" and value.kind in _TENSORS:
                # `param.data = param.to(torch.float32)`: the parameter itself now holds that dtype
                # (diffusers' textual inversion upcasts the embeddings it trains).
                self.assign(stored.value, value, ctx)
    elif type(node) is cst.Expr:
        if type(node.value) in _STRING_LITERALS:
            return True  # a docstring: nothing to evaluate (and decoding it is not free)
        value = self.eval(node.value, ctx)
        if type(node.value) is cst.Yield:
            self.frames[-1].yielded.append(ctx.region)
            self.frames[-1].yielded_defaults.append(self.default_dtype_at(ctx.scope.module.path, Precision.FP32))
        self.apply_in_place_cast(node.value, value, ctx)
        self.apply_parameter_collection(node.value, ctx)
        self.apply_adapters(node.value, ctx)
    elif type(node) is cst.AnnAssign:
        if node.value is not None:
            self.assign(node.target, self.eval(node.value, ctx), ctx)
    elif type(node) is cst.AugAssign:
        updated = self.eval(node.target, ctx)
        combined = self.binary(updated, self.eval(node.value, ctx), None)
        if is_tensor_like(updated) and updated.precision is not Precision.UNKNOWN:
            # `logits /= temperature`: a tensor's in-place op writes into it, in its dtype, whatever
            # the other operand is (an fp32 tensor too).
            combined = combined.with_(precision=updated.precision, origin=updated.origin)
        self.assign(node.target, combined, ctx)
    elif type(node) is cst.Return:
        # What is returned from under `torch.no_grad()` sends no gradient back, as what is assigned there.
        returned = in_region(self.eval(node.value, ctx), ctx) if node.value is not None else const(None)
        if returned.kind is Kind.DICT and returned.op == NAMESPACE:
            returned = with_attributes(ctx.scope.names, returned)  # `return config`
        self.frames[-1].returns.append(returned)
        return False
    elif type(node) is cst.Raise:
        if node.exc is not None:
            self.eval(node.exc, ctx)
        return False
    elif type(node) in (cst.Continue, cst.Break):
        return False
    elif type(node) is cst.Assert:
        tested = self.eval(node.test, ctx)  # `assert torch.isfinite(loss)`: its calls run like any other
        if node.msg is not None:
            self.eval(node.msg, ctx)
        if self.condition != self.run_condition and truth_value(tested) is False and _checks_a_choice(node.test):
            # A path of options the script refuses (`if args.full_fp16: assert args.mixed_precision ==
            # "fp16"` where another precision was given): it ends here.
            return False
    elif type(node) is cst.Import:
        for alias in node.names:
            self.bind_import(alias, ctx)
    elif type(node) is cst.ImportFrom:
        self.bind_import_from(node, ctx)
    return True


def in_region(value: Value, ctx: Context) -> Value:
    """A value computed inside an autocast region remembers it (for where its gradients come from)."""
    region = ctx.region
    if ctx.no_grad:
        return value.with_(region=None) if value.region is not None else value
    if region is None or region.enabled is False or value.region is not None:
        return value
    return value.with_(region=region) if value.kind in (Kind.ANY, Kind.TENSOR) and value.payload is None else value


_UNBOUND = object()  # a name's value before a branch that binds it for the first time


_STRING_LITERALS = (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)
# The concrete small statement types (exact type tests are cheaper than libcst's ABC checks).
_TENSORS = frozenset({Kind.TENSOR, Kind.PARAMS})
_SMALL_STATEMENTS = frozenset(kind for kind in NODE_TYPES if issubclass(kind, cst.BaseSmallStatement))


def is_no_grad(value: Value) -> bool:
    """`torch.no_grad()` / `torch.inference_mode()`, as a context manager or a decorator."""
    return value.kind is Kind.NAME and value.name in api.NO_GRAD_CONTEXTS
