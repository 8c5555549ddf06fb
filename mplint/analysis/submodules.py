"""Code that casts each submodule of a model by its class: a loop (`for m in model.modules(): if
isinstance(m, nn.BatchNorm2d): m.float() else: m.half()`) or a function handed to `model.apply`
(CLIP's `convert_weights`: `l.weight.data = l.weight.data.half()` for each Conv and Linear). The cast
each submodule the analysis knows gets, from the class its constructor call gave it (`nn.Conv2d(...)`,
a project's `class Conv(nn.Conv2d)`), and the precision of the tree after it.

`m.half()` casts a submodule with its children: `modules()` visits a module before its children, so
a submodule ends with the cast of its nearest visited ancestor (or itself); `apply` visits them
after, so with the cast of its farthest. A cast of a layer's weight (`l.weight.data = ...`) is its own.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import libcst as cst

from mplint import tree
from mplint.analysis import torch_api as api
from mplint.analysis.casts import upcast_trainable
from mplint.analysis.configuration import truth_value
from mplint.analysis.frameworks import peft
from mplint.analysis.scopes import Context, Scope
from mplint.analysis.summaries import Definition
from mplint.analysis.values import HALF_BUT_NORMS, MIXED, UNKNOWN, Kind, Origin, Precision, Value, is_mixed
from mplint.tree import Statement, statements

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

# A module's class: a class of the linted code, or the dotted name of a torch.nn class.
ModuleClass = Definition | str


class Order(enum.Enum):
    """Which of the casts of a submodule and of its ancestors it ends with."""

    NEAREST = "the nearest ancestor's (or its own): `for m in model.modules()`"
    FARTHEST = "the farthest ancestor's: `model.apply(fn)`, children first"
    OWN = "its own: a cast of its weight, not of its children's"


class Undecided(enum.Enum):
    """The loop may or may not cast a submodule of this class (a test the analysis cannot decide)."""

    UNDECIDED = "undecided"


UNDECIDED = Undecided.UNDECIDED
# What the loop does to one submodule: casts it to a precision, leaves it (None), or cannot be told.
Decision = Precision | Undecided | None


def module_class(module: Value) -> ModuleClass | None:
    """The class a module value was built from, where its constructor call is known."""
    if isinstance(module.payload, (Definition, str)) and module.kind in (Kind.MODULE, Kind.INSTANCE):
        return module.payload
    return None


def module_class_named(value: Value) -> ModuleClass | None:
    """The module class a class expression names (`nn.BatchNorm2d`, a project's `BatchNorm`)."""
    if value.kind is Kind.CLASS and isinstance(value.payload, Definition):
        return value.payload
    name = value.name
    return name if name is not None and api.is_nn_module_class(name) else None


def torch_class(cls: ModuleClass) -> str | None:
    """The torch.nn class `cls` is or derives from (None for a class of no torch.nn base)."""
    return cls if isinstance(cls, str) else cls.torch_class


def is_normalization(cls: ModuleClass) -> bool:
    """A normalization layer (`nn.BatchNorm2d`, `nn.LayerNorm`, a project's `class BatchNorm(nn.BatchNorm2d)`)."""
    name = torch_class(cls)
    return name is not None and "Norm" in api.last_part(name)


def known_children(module: Value) -> bool:
    """Whether the module's submodules are the items the analysis holds: a torch.nn layer has none,
    an instance of a class of the linted code those its `__init__` stored; a container
    (`nn.Sequential(*layers)`) or a module of unknown class may hold any."""
    cls = module_class(module)
    name = torch_class(cls) if cls is not None else None
    if name is None or not api.is_nn_module_class(name):
        return False  # a torchvision model builder's network, say
    leaf = api.last_part(name)
    return leaf not in api.MODULE_CONTAINERS and (isinstance(cls, Definition) or leaf != "Module")


class SubmoduleLoop:
    """The body run for each submodule, bound to `variable` (a loop's body, or the function `apply`
    calls): the cast it gives a submodule of each class. `ctx` is where its names are read."""

    def __init__(self, interpreter: Interpreter, body: Sequence[Statement], variable: str, ctx: Context) -> None:
        self.interpreter = interpreter
        self.body = body
        self.variable = variable
        self.ctx = ctx
        self.decisions: dict[object, Decision] = {}

    def casts(self) -> tuple[list[cst.Call], list[cst.Call]]:
        """The calls of the body that cast the submodule (`m.half()`), and those that cast its weight
        (`l.weight.data = l.weight.data.half()`)."""
        module_casts, weight_casts = [], []
        for found in (node for statement in self.body for node in tree.walk(statement)):
            if type(found) is cst.Call and self.cast_of(found) is not None:
                module_casts.append(found)
            elif type(found) is cst.Assign and type(found.value) is cst.Call and self._weight_cast(found) is not None:
                weight_casts.append(found.value)
        return module_casts, weight_casts

    def decision(self, cls: ModuleClass | None) -> Decision:
        key = cls if cls is not None else UNDECIDED
        if key not in self.decisions:
            self.decisions[key] = self._block(self.body, cls)[0]
        return self.decisions[key]

    def _block(self, body: Sequence[Statement], cls: ModuleClass | None) -> tuple[Decision, bool]:
        """The last cast the statements give a submodule of class `cls`, and whether they leave the
        iteration (`continue`) before the end."""
        decided: Decision = None
        for statement in body:
            if type(statement) in (cst.Continue, cst.Break, cst.Return):
                return decided, True
            if type(statement) is cst.If:
                outcome, left = self._if(statement, cls)
            else:
                outcome, left = self._cast_statement(statement), False
            if outcome is UNDECIDED:
                return UNDECIDED, True
            if outcome is not None:
                decided = outcome
            if left:
                return decided, True
        return decided, False

    def restores_only_norms(self) -> bool:
        """Whether every full-precision cast of the body is of normalization layers alone (`if
        isinstance(m, nn.BatchNorm2d): m.float()`): after it, a module cast half keeps its half
        weights in all its other layers."""
        return self._full_casts_guarded(self.body, guarded=False)

    def _full_casts_guarded(self, body: Sequence[Statement], *, guarded: bool) -> bool:
        for statement in body:
            if type(statement) is cst.If:
                norms = self._tests_norms(statement.test)
                orelse = statement.orelse
                other = [orelse] if type(orelse) is cst.If else statements(orelse)
                if not (
                    self._full_casts_guarded(statements(statement.body), guarded=guarded or norms is True)
                    and self._full_casts_guarded(other, guarded=guarded or norms is False)
                ):
                    return False
            elif not guarded and any(
                isinstance(target, Precision) and target.is_full for target in self._cast_targets(statement)
            ):
                return False
        return True

    def _tests_norms(self, test: cst.BaseExpression) -> bool | None:
        """True for `isinstance(m, <normalization classes>)`, False for its negation, else None."""
        if type(test) is cst.UnaryOperation and type(test.operator) is cst.Not:
            inner = self._tests_norms(test.expression)
            return None if inner is None else not inner
        if type(test) is cst.Call and _is_call_of(test, "isinstance", self.variable):
            elements = _class_elements(test.args[1].value)
            tested = [module_class_named(self.interpreter.eval(element, self.ctx)) for element in elements]
            if tested and all(cls is not None and is_normalization(cls) for cls in tested):
                return True
        return None

    def _if(self, node: cst.If, cls: ModuleClass | None) -> tuple[Decision, bool]:
        taken = self._class_test(node.test, cls)
        orelse = node.orelse
        other = [orelse] if type(orelse) is cst.If else statements(orelse)
        if taken is None:
            casts_here = any(self._casts(part) for part in (node.body, orelse) if part is not None)
            return (UNDECIDED, True) if casts_here else (None, False)
        return self._block(statements(node.body) if taken else other, cls)

    def _cast_statement(self, statement: Statement) -> Decision:
        """A statement `m.half()` (or `m.weight.data = m.weight.data.half()`) casts the submodule; any
        other statement that casts it (nested in a `with`, a `try`) is a cast the analysis cannot place."""
        if type(statement) is cst.Expr and type(statement.value) is cst.Call:
            target = self.cast_of(statement.value)
            if target is not None:
                return target
        if type(statement) is cst.Assign:
            target = self._weight_cast(statement)
            if target is not None:
                return target
        return UNDECIDED if self._casts(statement) else None

    def _casts(self, node: cst.CSTNode) -> bool:
        return bool(self._cast_targets(node))

    def _cast_targets(self, node: cst.CSTNode) -> list[Decision]:
        """What each cast of the submodule (or of its weight) under `node` casts to."""
        targets = []
        for found in tree.walk(node):
            if type(found) is cst.Call:
                targets.append(self.cast_of(found))
            elif type(found) is cst.Assign:
                targets.append(self._weight_cast(found))
        return [target for target in targets if target is not None]

    def _weight_cast(self, assign: cst.Assign) -> Decision:
        """`l.weight.data = l.weight.data.half()` (or `l.weight = ...`): the precision the submodule's
        weight is cast to. Its bias follows it (`if l.bias is not None: l.bias.data = ...`): the
        weight alone tells the analysis the layer's precision."""
        if len(assign.targets) != 1 or type(assign.value) is not cst.Call:
            return None
        target: cst.BaseExpression = assign.targets[0].target
        if type(target) is cst.Attribute and target.attr.value == "data":
            target = target.value
        if not (
            type(target) is cst.Attribute
            and target.attr.value == "weight"
            and type(target.value) is cst.Name
            and target.value.value == self.variable
        ):
            return None
        func = assign.value.func
        return self.target_of(assign.value) if type(func) is cst.Attribute else None

    def cast_of(self, call: cst.Call) -> Decision:
        """The precision `m.half()`/`m.to(torch.float16)` casts the loop's submodule to; UNDECIDED for a
        dtype that cannot be told; None when the call is no cast of the submodule (`m.to(device)`)."""
        func = call.func
        if not (type(func) is cst.Attribute and type(func.value) is cst.Name and func.value.value == self.variable):
            return None
        return self.target_of(call)

    def target_of(self, call: cst.Call) -> Decision:
        """The precision a cast method call (`x.half()`, `x.to(dtype)`) casts to, None for no cast."""
        method = cast(cst.Attribute, call.func).attr.value
        if method in api.CAST_METHODS:
            return api.CAST_METHODS[method] if not call.args else UNDECIDED
        if method not in api.MODULE_CASTS:
            return None
        for arg in call.args:
            if arg.keyword is None or arg.keyword.value == "dtype":
                precision = self.interpreter.dtype_value(self.interpreter.eval(arg.value, self.ctx))
                if precision is not None:
                    return precision
        return None

    def _class_test(self, test: cst.BaseExpression, cls: ModuleClass | None) -> bool | None:
        """`isinstance(m, X)`, `type(m) in (X, Y)`, `not ...`, `... and ...` for a submodule of class `cls`."""
        if type(test) is cst.UnaryOperation and type(test.operator) is cst.Not:
            inner = self._class_test(test.expression, cls)
            return None if inner is None else not inner
        if type(test) is cst.BooleanOperation:
            left, right = self._class_test(test.left, cls), self._class_test(test.right, cls)
            if type(test.operator) is cst.And:
                return False if False in (left, right) else (None if None in (left, right) else True)
            return True if True in (left, right) else (None if None in (left, right) else False)
        if type(test) is cst.Call and _is_call_of(test, "isinstance", self.variable):
            return self._matches(cls, test.args[1].value, exact=False)
        if type(test) is cst.Comparison and len(test.comparisons) == 1:
            compared, (comparison,) = test.left, test.comparisons
            if type(compared) is cst.Call and _is_call_of(compared, "type", self.variable):
                operator = type(comparison.operator)
                matched = self._matches(cls, comparison.comparator, exact=True)
                if operator in (cst.In, cst.Equal, cst.Is):
                    return matched
                if operator in (cst.NotIn, cst.NotEqual, cst.IsNot):
                    return None if matched is None else not matched
        return None

    def _matches(self, cls: ModuleClass | None, classes: cst.BaseExpression, *, exact: bool) -> bool | None:
        """Whether a submodule of class `cls` is an instance (`exact`: of exactly one) of `classes`."""
        if type(classes) in (cst.Tuple, cst.List, cst.Set):
            found = [self._matches(cls, element, exact=exact) for element in _class_elements(classes)]
            return True if True in found else (None if None in found else False)
        if cls is None:
            return None
        return _is_instance(cls, self.interpreter.eval(classes, self.ctx), exact=exact)


def _class_elements(classes: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The classes `isinstance`'s second argument names: a tuple's (list's, set's) elements, or itself."""
    if isinstance(classes, (cst.Tuple, cst.List, cst.Set)):
        return [element.value for element in classes.elements]
    return [classes]


def _is_call_of(call: cst.Call, function: str, variable: str) -> bool:
    func, args = call.func, call.args
    expected = 2 if function == "isinstance" else 1
    return (
        type(func) is cst.Name
        and func.value == function
        and len(args) == expected
        and type(args[0].value) is cst.Name
        and args[0].value.value == variable
    )


def _is_instance(cls: ModuleClass, tested: Value, *, exact: bool) -> bool | None:
    if tested.kind is Kind.CLASS and isinstance(tested.payload, Definition):
        if isinstance(cls, str):
            return False  # a torch.nn class is no subclass of a class of the linted code
        return cls is tested.payload or (not exact and tested.payload in _linted_ancestors(cls))
    name = tested.name
    if name is None or not name.startswith("torch.nn."):
        return None
    leaf = api.last_part(name)
    if leaf.startswith("_"):
        return None  # an abstract base (`_BatchNorm`, `_ConvNd`): which classes derive from it is not listed
    if isinstance(cls, Definition):
        if exact:
            return False
        if leaf == "Module":
            return True
    elif exact:
        return api.last_part(cls) == leaf
    base = torch_class(cls)
    if base is None:
        return False
    # torch's public layers derive from no other public layer but their lazy variants (`LazyConv2d`).
    return leaf == "Module" or api.last_part(base) in (leaf, f"Lazy{leaf}")


def _linted_ancestors(cls: Definition) -> set[Definition]:
    found: set[Definition] = set()
    pending = list(cls.bases)
    while pending:
        base = pending.pop()
        if base not in found:
            found.add(base)
            pending.extend(base.bases)
    return found


def cast_tree(self: Interpreter, loop: SubmoduleLoop, module: Value, order: Order, include_root: bool) -> Value | None:
    """The module after the loop: each submodule it knows in the precision its class is cast to, the
    module half in part (`MIXED`) where they differ. None when the loop's cast of some known
    submodule cannot be told (the caller then treats the whole module as half in part). `order`
    is that of casts of submodules; casts of their weights are each their own."""
    ctx = loop.ctx
    module_casts, weight_casts = loop.casts()
    if module_casts and weight_casts:
        return None
    if weight_casts:
        order = Order.OWN
    # The cast each precision comes from, for the origin a finding names (a half cast first).
    cast_calls: dict[Precision, cst.Call] = {}
    for call in module_casts + weight_casts:
        target = loop.target_of(call)
        if isinstance(target, Precision):
            cast_calls.setdefault(target, call)
    if not cast_calls:
        return None
    half_cast = next((call for target, call in cast_calls.items() if target.is_low), next(iter(cast_calls.values())))

    def resolve(node: Value, inherited: Decision, visited: bool) -> Value | None:
        decided = loop.decision(module_class(node)) if visited else None
        if decided is UNDECIDED:
            return None
        current = inherited if order is Order.FARTHEST and inherited is not None else decided
        if order is Order.NEAREST and decided is None:
            current = inherited
        cast = node
        if isinstance(current, Precision) and current is not node.precision:
            cast = self.cast(node, current, cast_calls.get(current, half_cast), ctx)
        items: list[tuple[str, Value]] = []
        for name, item in node.items:
            if item.kind is Kind.MODULE:
                resolved = resolve(item, None if order is Order.OWN else current, True)
                if resolved is None:
                    return None
                item = resolved
            items.append((name, item))
        parts = [cast.precision, *(item.precision for _, item in items if item.kind is Kind.MODULE)]
        mixed = any(is_mixed(item) for _, item in items) or len(set(parts)) > 1
        if not known_children(node):
            # Children the analysis does not hold may be of any class the loop casts (the Conv2d of an
            # `nn.Sequential(nn.Conv2d(...), nn.BatchNorm2d(...))` that CLIP's `convert_weights` halves).
            choices = [decision for decision in loop.decisions.values() if isinstance(decision, Precision)]
            parts += [*cast_calls, *choices]
            mixed = mixed or len(set(parts)) > 1 or any(decision is UNDECIDED for decision in loop.decisions.values())
        result = cast.with_(items=tuple(items))
        if not mixed:
            return result
        low = next((part for part in parts if part.is_low), None)
        if low is None:
            return result.with_(precision=Precision.UNKNOWN, origin=None, op=None)
        if not cast.precision.is_low:
            origin = Origin("", "cast in part", ctx.scope.module.path, half_cast)
            result = result.with_(precision=low, origin=origin)
        return result.with_(op=HALF_BUT_NORMS if cast.precision.is_low and loop.restores_only_norms() else MIXED)

    # Every class the loop may meet, so that a module holding unknown children knows what they may become.
    for cls in _classes_of(module):
        loop.decision(cls)
    loop.decision(None)
    return resolve(module, None, include_root)


def _lora_layers_cast(self: Interpreter, loop: SubmoduleLoop, ctx: Context) -> Value | None:
    """The adapters of a PEFT model a loop casts (qlora's `get_accelerate_model`: `if
    isinstance(module, LoraLayer): if args.bf16: module = module.to(torch.bfloat16)`), as the
    parameters they are; None where no such cast is certain to run."""
    for statement in loop.body:
        if not (type(statement) is cst.If and type(statement.test) is cst.Call):
            continue
        test = statement.test
        if not (
            _is_call_of(test, "isinstance", loop.variable) and peft.is_adapter_layer(self.eval(test.args[1].value, ctx))
        ):
            continue
        for call in _certain_calls(self, statements(statement.body), ctx):
            target = loop.cast_of(call)
            if isinstance(target, Precision):
                return Value(Kind.PARAMS, target, origin=Origin("LoRA adapters", "cast", ctx.scope.module.path, call))
    return None


def _certain_calls(self: Interpreter, body: Sequence[Statement], ctx: Context) -> list[cst.Call]:
    """The calls of `body` that run whenever it does: in its statements, and in the branches of an
    `if` whose test holds in the configuration that runs (`if args.bf16:`)."""
    found: list[cst.Call] = []
    for statement in body:
        if type(statement) is cst.If:
            if truth_value(self.eval(statement.test, ctx)) is True:
                found += _certain_calls(self, statements(statement.body), ctx)
        elif type(statement) in (cst.Expr, cst.Assign):
            value = cast(cst.Expr | cst.Assign, statement).value
            if type(value) is cst.Call:
                found.append(value)
    return found


def _classes_of(module: Value) -> list[ModuleClass | None]:
    found: list[ModuleClass | None] = []
    pending = [module]
    while pending:
        node = pending.pop()
        found.append(module_class(node))
        pending.extend(item for _, item in node.items if item.kind is Kind.MODULE)
    return found


def apply_submodule_casts(self: Interpreter, node: cst.For, ctx: Context) -> None:
    """`for m in model.modules(): m.half()` casts the model; a loop that casts only some submodules
    (`if isinstance(m, nn.BatchNorm2d): m.float()` after `net.half()`) casts each by its class where
    the analysis knows them, else leaves the model mixed (`MIXED`): some of its parameters are half,
    its output's precision is unknown."""
    iterated = node.iter
    if not (
        isinstance(iterated, cst.Call)
        and isinstance(iterated.func, cst.Attribute)
        and iterated.func.attr.value in (*_SUBMODULE_ITERATORS, *_PARAMETER_ITERATORS)
        and isinstance(iterated.func.value, (cst.Name, cst.Attribute))
    ):
        return
    variable = _submodule_variable(node.target, named=iterated.func.attr.value.startswith("named_"))
    if variable is None:
        return
    if iterated.func.attr.value in _PARAMETER_ITERATORS:
        _apply_parameter_casts(self, node, iterated.func.value, variable, ctx)
        return
    loop = SubmoduleLoop(self, statements(node.body), variable, ctx)
    module_casts, weight_casts = loop.casts()
    casts = module_casts + weight_casts
    if not casts:
        return
    owner = iterated.func.value
    model = self.eval(owner, ctx)
    targets = [loop.target_of(call) for call in casts]
    if not weight_casts and len(set(targets)) == 1 and all(_directly_in(call, node.body) for call in casts):
        if isinstance(targets[0], Precision):
            self.assign(owner, self.cast(model, targets[0], casts[0], ctx), ctx)
            return
    if model.kind not in (Kind.MODULE, Kind.ANY, Kind.INSTANCE):
        return
    adapters = _lora_layers_cast(self, loop, ctx) if model.op in peft.OPS else None
    if adapters is not None:
        self.assign(owner, peft.with_adapters(model, adapters), ctx)
        return
    if _cast_by_class(
        self, loop, owner, model, Order.NEAREST, include_root=iterated.func.attr.value in ("modules", "named_modules")
    ):
        return
    partly = _cast_in_part(loop, model, ctx)
    if partly is not None:
        self.assign(owner, partly, ctx)


def _cast_in_part(loop: SubmoduleLoop, model: Value, ctx: Context) -> Value | None:
    """The model after casts of some of its submodules the analysis cannot place: half in part
    (`MIXED`; half but its normalization layers where the loop restores only those, or casts only to
    half), of unknown dtype where no cast is half and it was not fp32; None where it is left as it was."""
    module_casts, weight_casts = loop.casts()
    casts = module_casts + weight_casts
    if not casts:
        return None  # a loop that only initializes weights (`self.apply(self.init_weights)`)
    targets = [loop.target_of(call) for call in casts]
    half = next((target for target in targets if isinstance(target, Precision) and target.is_low), None)
    if model.precision.is_low:
        return model.with_(op=HALF_BUT_NORMS if loop.restores_only_norms() else MIXED, items=())
    if half is not None:
        # Only half casts (CLIP's `convert_weights`: Linear, Conv and attention weights; norms and
        # embeddings left fp32): the trainable parameters hold the half weights.
        only_half = all(isinstance(target, Precision) and target.is_low for target in targets)
        origin = Origin("", "cast in part", ctx.scope.module.path, casts[targets.index(half)])
        return model.with_(precision=half, origin=origin, op=HALF_BUT_NORMS if only_half else MIXED, items=())
    if model.precision is not Precision.FP32:
        return model.with_(precision=Precision.UNKNOWN, origin=None, items=())
    return None


def apply_function(
    self: Interpreter, node: cst.Call, ctx: Context, module: Value, function: Definition, *, bound: bool
) -> Value:
    """`model.apply(convert_weights)`: the function runs on every submodule and on the model, children
    first. Where the analysis can tell the cast it gives each submodule it knows, the model is cast
    so (in place); else it is handed back as it was. A bound method (`self.apply(self.init_weights)`)
    takes each submodule as its parameter after `self`."""
    whole = function.function  # a method of a class read in part: with its body
    params = whole.params.params if isinstance(whole, cst.FunctionDef) else ()
    params = params[1:] if bound else params
    if not params or module.kind is not Kind.MODULE or not module.items:
        return module
    scope = Scope(self.modules[function.path], function.scope)
    body = statements(cast(cst.FunctionDef, whole).body)
    loop = SubmoduleLoop(self, body, params[0].name.value, Context(scope, ctx.region))
    owner = cast(cst.Attribute, node.func).value
    result = cast_tree(self, loop, module, Order.FARTHEST, include_root=True) or _cast_in_part(loop, module, ctx)
    if result is None:
        return module
    if isinstance(owner, (cst.Name, cst.Attribute)):
        self.assign(owner, result, ctx)
    return result


def _cast_by_class(
    self: Interpreter,
    loop: SubmoduleLoop,
    owner: cst.Name | cst.Attribute,
    model: Value,
    order: Order,
    *,
    include_root: bool,
) -> bool:
    """A loop that casts each submodule by its class, over a module whose submodules the analysis
    holds (as its items, or as `self.<attr>` names in the `__init__` that stores them): each takes
    its cast. False where the cast of one cannot be told."""
    ctx = loop.ctx
    stored = {}
    if isinstance(owner, cst.Name):
        prefix = f"{owner.value}."
        stored = {
            key[len(prefix) :]: value
            for key, value in ctx.scope.names.items()
            if key.startswith(prefix) and "." not in key[len(prefix) :] and value.kind is Kind.MODULE
        }
    if model.kind is not Kind.MODULE or not (model.items or stored):
        return False
    whole = model.with_(items=tuple(sorted({**dict(model.items), **stored}.items())))
    result = cast_tree(self, loop, whole, order, include_root)
    if result is None:
        return False
    self.assign(owner, result, ctx)
    for name in stored:
        ctx.scope.names[f"{cast(cst.Name, owner).value}.{name}"] = result.item(name) or UNKNOWN
    return True


# Methods that iterate over a module's submodules.
_SUBMODULE_ITERATORS = frozenset({"modules", "children", "named_modules", "named_children"})


_PARAMETER_ITERATORS = frozenset({"parameters", "named_parameters"})


def _apply_parameter_casts(
    self: Interpreter, node: cst.For, owner: cst.Name | cst.Attribute, variable: str, ctx: Context
) -> None:
    """`for p in model.parameters(): p.data = p.data.float()` (CLIP's `convert_models_to_fp32`) casts
    every parameter, so the model; under `if p.requires_grad:` (diffusers' LoRA trainers upcasting
    their adapters) only the trainable ones: a half model is then half in part (`MIXED`)."""
    loop = SubmoduleLoop(self, statements(node.body), variable, ctx)
    for statement in loop.body:
        trainable_only = isinstance(statement, cst.If) and _is_trainable_test(statement.test, variable)
        body = statements(statement.body) if isinstance(statement, cst.If) and trainable_only else [statement]
        for assign in body:
            call = _parameter_cast(loop, assign, variable)
            if call is None:
                continue
            if trainable_only:
                upcast_trainable(self, owner, ctx)
            else:
                self.assign(
                    owner, self.cast(self.eval(owner, ctx), cast(Precision, loop.target_of(call)), call, ctx), ctx
                )
            return


def _parameter_cast(loop: SubmoduleLoop, statement: Statement, variable: str) -> cst.Call | None:
    """The cast of `p.data = p.data.float()` / `p.data = p.to(torch.float32)`, where its dtype is known."""
    if type(statement) is not cst.Assign or len(statement.targets) != 1 or type(statement.value) is not cst.Call:
        return None
    target, call = statement.targets[0].target, statement.value
    func = call.func
    if not (_is_data_of(target, variable) and type(func) is cst.Attribute):
        return None
    if not (_is_data_of(func.value, variable) or (type(func.value) is cst.Name and func.value.value == variable)):
        return None
    return call if isinstance(loop.target_of(call), Precision) else None


def _is_trainable_test(test: cst.BaseExpression, variable: str) -> bool:
    """`p.requires_grad` for the loop's parameter `p`."""
    return _is_attribute_of(test, variable, "requires_grad")


def _is_data_of(node: cst.BaseExpression, variable: str) -> bool:
    """`p.data` for the loop's parameter `p`."""
    return _is_attribute_of(node, variable, "data")


def _is_attribute_of(node: cst.BaseExpression, variable: str, attr: str) -> bool:
    return (
        type(node) is cst.Attribute
        and node.attr.value == attr
        and type(node.value) is cst.Name
        and node.value.value == variable
    )


def _submodule_variable(target: cst.BaseAssignTargetExpression, *, named: bool) -> str | None:
    """The name a loop binds each submodule to: `m` of `for m in model.modules()`, `module` of `for
    name, module in model.named_modules()`."""
    if named and type(target) is cst.Tuple and len(target.elements) == 2:
        target = cast(cst.BaseAssignTargetExpression, target.elements[1].value)
    return target.value if type(target) is cst.Name else None


def _directly_in(call: cst.Call, body: cst.BaseSuite) -> bool:
    """Whether `call` is a statement of its own at the top of `body` (run for every submodule)."""
    return any(isinstance(statement, cst.Expr) and statement.value is call for statement in statements(body))
