"""Per-scope abstract interpretation: what each name holds, which autocast region is active, and
what every call sees.

The interpreter walks statements in order, binding names to `Value`s, joining values where
`if`/`else` paths meet, and entering autocast regions at `with` statements and decorators. Every
call it evaluates leaves a `CallFact` (callee, argument values, active region, result): that is
all the rules read. Calls into functions and classes of the linted files are evaluated in the
caller's context (see `summaries`), across files of the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

import libcst as cst

from mplint.analysis import torch_api as api
from mplint.analysis.project import ModuleIndex
from mplint.analysis.summaries import CallMemo, Definition
from mplint.analysis.values import (
    NUMBER,
    UNKNOWN,
    Kind,
    Origin,
    Precision,
    Region,
    Value,
    combine_params,
    const,
    dotted,
    join,
)
from mplint.tree import NODE_TYPES, TRY_STATEMENTS, Statement, dotted_text, statements, string_value, walk

# Names real snippets use without importing them (bug reports, notebooks); they mean these.
CONVENTIONAL_NAMES = {"torch": "torch", "F": "torch.nn.functional", "nn": "torch.nn", "optim": "torch.optim"}
NO_GRAD_CONTEXTS = frozenset({"torch.no_grad", "torch.inference_mode"})
# Builtins that hand back (a view of) their first argument.
PASSTHROUGH_BUILTINS = frozenset({"list", "tuple", "filter", "iter", "sorted", "reversed", "set"})
MAX_EVALUATED_CALLS = 200_000


@dataclass(frozen=True)
class CallFact:
    """What one evaluation of one call saw."""

    node: cst.Call
    path: str
    function: str | None  # dotted callee name (`torch.nn.functional.log_softmax`), when it is one
    method: str | None  # `receiver.method(...)` on a value that is not a dotted name
    receiver: Value
    args: tuple[Value, ...]
    kwargs: tuple[tuple[str, Value], ...]
    region: Region | None  # the innermost autocast region active at the call
    result: Value
    # The function or method of the linted code the call ran, when it ran one (for per-path rules
    # that follow a training step into its helpers).
    callee: Definition | None = None

    @property
    def op(self) -> str | None:
        return self.method if self.function is None else api.last_part(self.function)

    def arg(self, index: int | None, keyword: str | None = None) -> Value | None:
        """The value passed as positional `index` or as `keyword`, whichever was used."""
        if keyword is not None:
            for name, value in self.kwargs:
                if name == keyword:
                    return value
        if index is not None and index < len(self.args):
            return self.args[index]
        return None

    def input(self) -> Value | None:
        """The tensor an op works on: the receiver of a method call, else the first argument."""
        return self.receiver if self.method is not None else self.arg(0, "input")


@dataclass(frozen=True)
class OperationFact:
    """What one evaluation of an arithmetic operator (`scores + mask * -1e9`) saw."""

    node: cst.BinaryOperation
    path: str
    left: Value
    right: Value
    result: Value


@dataclass(frozen=True)
class LateCast:
    """A module cast to half in place after an optimizer was built over its parameters, then stepped."""

    cast: cst.Call
    path: str
    optimizer: cst.Call
    optimizer_path: str
    precision: Precision


class Scope:
    """Names bound in one function (or module, or class body) evaluation. Attribute paths that the
    code assigns (`self.model = ...`) are tracked as names too (`"self.model"`)."""

    def __init__(self, module: ModuleState, parent: Scope | None = None) -> None:
        self.module = module
        self.parent = parent
        self.names: dict[str, Value] = {}

    def lookup(self, name: str) -> Value | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None


# What reading a file a root imports from gives: its tree, and for a file parsed piece by piece
# the function that parses the top-level statements binding a name.
Loaded = tuple[cst.Module, Callable[[str], list[Statement]] | None]


@dataclass
class ModuleState:
    path: str
    module: cst.Module
    scope: Scope = field(init=False)
    state: str = "pending"  # pending -> running -> done
    # Files a root imports from are not run top to bottom: only the statements that bind the
    # names read from them, each once (reading `Module` from torch/nn/modules/module.py must not
    # execute all of it).
    lazy: bool = False
    # For a file parsed piece by piece: the top-level statements that may bind a name (parsed on
    # demand); None when `module` is the whole file.
    top_level: Callable[[str], list[Statement]] | None = None
    executed: set[int] = field(default_factory=set)
    _bindings: dict[str, list[Statement]] | None = None

    def __post_init__(self) -> None:
        self.scope = Scope(self)

    def binding_statements(self, name: str) -> list[Statement]:
        """Top-level statements (also inside top-level if/try) that may bind `name`."""
        if self.top_level is not None:
            if self._bindings is None:
                self._bindings = {}
            if name not in self._bindings:
                self._bindings[name] = _binders(self.top_level(name)).get(name, [])
            return self._bindings[name]
        if self._bindings is None:
            self._bindings = _binders(statements(self.module))
        return self._bindings.get(name, [])


def _binders(top_level: list[Statement]) -> dict[str, list[Statement]]:
    """The statements among `top_level` (and inside its if/try statements) that bind each name."""
    found: dict[str, list[Statement]] = {}
    pending: list[Statement] = list(reversed(top_level))
    while pending:
        statement = pending.pop()
        if isinstance(statement, _BRANCHING_STATEMENTS):
            pending.extend(reversed(_nested_statements(statement)))
            continue
        for bound in _bound_names(statement):
            found.setdefault(bound, []).append(statement)
    return found


@dataclass(frozen=True)
class Context:
    scope: Scope
    region: Region | None = None
    class_body: Definition | None = None  # the class whose body is being executed (its defs are methods)
    no_grad: bool = False  # inside `torch.no_grad()` / `torch.inference_mode()`: nothing reaches backward


@dataclass
class Frame:
    """One function evaluation: what it returns, and in-place casts waiting for an optimizer step."""

    returns: list[Value] = field(default_factory=list)
    pending_casts: list[LateCast] = field(default_factory=list)


class Interpreter:
    def __init__(self, roots: dict[str, cst.Module], load: Callable[[str], Loaded | None], index: ModuleIndex) -> None:
        self.roots = list(roots)
        self.modules = {path: ModuleState(path, module) for path, module in roots.items()}
        self.load = load
        self.index = index
        self.facts: dict[cst.Call, list[CallFact]] = {}
        self.late_casts: dict[cst.Call, list[LateCast]] = {}
        self.operations: dict[cst.BinaryOperation, list[OperationFact]] = {}
        self.loss_scaling_paths: set[str] = set()
        self.memo = CallMemo()
        self.class_attrs: dict[Definition, dict[str, Value]] = {}
        self.frames: list[Frame] = [Frame()]
        self.default_dtype: dict[str, tuple[Precision, Origin]] = {}
        # argparse options' defaults, per parser (its construction).
        self.option_defaults: dict[object, dict[str, Value]] = {}
        self.evaluated_calls = 0
        # Files whose functions this analysis ran (with its own arguments): rules visit only those.
        self.entered_paths: set[str] = set(roots)

    # ----------------------------------------------------------------------------------- driver
    def run(self) -> None:
        for path in self.roots:
            self.run_module(self.modules[path])
        for path in self.roots:
            for definition in self.definitions(self.modules[path].scope):
                self.evaluate_standalone(definition)

    def module_state(self, path: str) -> ModuleState | None:
        """A file of the run, read on first use when it is not a root."""
        if path not in self.modules:
            loaded = self.load(path)
            if loaded is None:
                return None
            module, top_level = loaded
            self.modules[path] = ModuleState(path, module, lazy=True, top_level=top_level)
        return self.modules[path]

    def run_module(self, state: ModuleState) -> None:
        if state.state != "pending":
            return
        state.state = "running"
        self.exec_block(statements(state.module), Context(state.scope))
        state.state = "done"

    def definitions(self, scope: Scope) -> Iterator[Definition]:
        for value in list(scope.names.values()):
            if value.kind in (Kind.FUNCTION, Kind.CLASS) and isinstance(value.payload, Definition):
                if value.payload.scope is scope:
                    yield value.payload

    def evaluate_standalone(self, definition: Definition) -> None:
        """Analyse a function nobody (visibly) calls, with unknown arguments: its own casts still count."""
        if isinstance(definition.node, cst.ClassDef):
            receiver = self.instance_of(definition, definition.node, ())
            for method in definition.methods.values():
                self.call_definition(method, [], {}, None, receiver=receiver)
            return
        self.call_definition(definition, [], {}, None)

    # ------------------------------------------------------------------------------- statements
    def exec_block(self, body: Sequence[Statement], ctx: Context) -> bool:
        """Execute statements in order; False when the block always leaves (return/raise/continue/break)."""
        for statement in body:
            if not self.exec_statement(statement, ctx):
                return False
        return True

    def exec_statement(self, node: Statement, ctx: Context) -> bool:
        if type(node) in _SMALL_STATEMENTS:
            return self.exec_simple(cast(cst.BaseSmallStatement, node), ctx)  # an exact type test: not narrowed
        if type(node) is cst.If:
            # An elif chain is one many-way branch (not nested ones: generated dispatch code has
            # hundreds of elifs).
            # A test whose value is known in the configuration that runs (`if args.amp:` with
            # `default=True`) takes its branch alone.
            bodies: list[list[Statement]] = []
            branch: cst.If | cst.Else | None = node
            while isinstance(branch, cst.If):
                taken = _truth(self.eval(branch.test, ctx))
                if taken is True:
                    return (
                        self.exec_branches(ctx, None, bodies, statements(branch.body))
                        if bodies
                        else self.exec_block(statements(branch.body), ctx)
                    )
                if taken is None:
                    bodies.append(statements(branch.body))
                branch = branch.orelse
            return (
                self.exec_branches(ctx, None, bodies, statements(branch))
                if bodies
                else self.exec_block(statements(branch), ctx)
            )
        if type(node) is cst.For:
            iterable = self.eval(node.iter, ctx)
            self.assign(node.target, self.element_of(iterable), ctx)
            self.exec_block(statements(node.body), ctx)
            self.exec_block(statements(node.orelse), ctx)
            return True
        if type(node) is cst.While:
            self.eval(node.test, ctx)
            self.exec_block(statements(node.body), ctx)
            self.exec_block(statements(node.orelse), ctx)
            return True
        if type(node) is cst.With:
            return self.exec_with(node, ctx)
        if type(node) is cst.Try or type(node) is cst.TryStar:
            self.exec_block(statements(node.body), ctx)
            for handler in node.handlers:
                if handler.type is not None:
                    self.eval(handler.type, ctx)
                self.exec_block(statements(handler.body), ctx)
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

    def exec_branches(
        self,
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
                outcome[key] if key in outcome else before[key]
                for outcome in outcomes
                if key in outcome or key in before
            ]
            merged = values[0]
            for value in values[1:]:
                merged = join(merged, value)
            names[key] = merged
        return True

    def exec_with(self, node: cst.With, ctx: Context) -> bool:
        region, no_grad = ctx.region, ctx.no_grad
        for item in node.items:
            value = self.eval(item.item, ctx)
            if value.kind is Kind.AUTOCAST and isinstance(value.payload, Region):
                region = value.payload
            no_grad = no_grad or _is_no_grad(value)
            if item.asname is not None:
                self.assign(item.asname.name, value, ctx)
        return self.exec_block(statements(node.body), replace(ctx, region=region, no_grad=no_grad))

    def exec_simple(self, node: cst.BaseSmallStatement, ctx: Context) -> bool:
        if type(node) is cst.Assign:
            value = self.in_region(self.eval(node.value, ctx), ctx)
            for target in node.targets:
                self.assign(target.target, value, ctx)
        elif type(node) is cst.Expr:
            if type(node.value) in _STRING_LITERALS:
                return True  # a docstring: nothing to evaluate (and decoding it is not free)
            value = self.eval(node.value, ctx)
            self.apply_in_place_cast(node.value, value, ctx)
            self.apply_parameter_collection(node.value, ctx)
        elif type(node) is cst.AnnAssign:
            if node.value is not None:
                self.assign(node.target, self.eval(node.value, ctx), ctx)
        elif type(node) is cst.AugAssign:
            combined = self.binary(self.eval(node.target, ctx), self.eval(node.value, ctx), None)
            self.assign(node.target, combined, ctx)
        elif type(node) is cst.Return:
            self.frames[-1].returns.append(self.eval(node.value, ctx) if node.value is not None else const(None))
            return False
        elif type(node) is cst.Raise:
            if node.exc is not None:
                self.eval(node.exc, ctx)
            return False
        elif type(node) in (cst.Continue, cst.Break):
            return False
        elif type(node) is cst.Assert:
            self.eval(node.test, ctx)  # `assert torch.isfinite(loss)`: its calls run like any other
            if node.msg is not None:
                self.eval(node.msg, ctx)
        elif type(node) is cst.Import:
            for alias in node.names:
                self.bind_import(alias, ctx)
        elif type(node) is cst.ImportFrom:
            self.bind_import_from(node, ctx)
        return True

    @staticmethod
    def in_region(value: Value, ctx: Context) -> Value:
        """A value computed inside an autocast region remembers it (for where its gradients come from)."""
        region = ctx.region
        if ctx.no_grad:
            return value.with_(region=None) if value.region is not None else value
        if region is None or region.enabled is False or value.region is not None:
            return value
        return value.with_(region=region) if value.kind in (Kind.ANY, Kind.TENSOR) and value.payload is None else value

    # --------------------------------------------------------------------------------- binding
    def assign(self, target: cst.BaseExpression, value: Value, ctx: Context) -> None:
        if isinstance(target, cst.Name):
            ctx.scope.names[target.value] = self.named(value, target.value)
        elif isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name):
            key = f"{target.value.value}.{target.attr.value}"
            ctx.scope.names[key] = self.named(value, key)
        elif isinstance(target, (cst.Tuple, cst.List)):
            elements = [element.value for element in target.elements]
            for index, element in enumerate(elements):
                self.assign(element, self.unpacked(value, index, len(elements)), ctx)
        elif isinstance(target, cst.Subscript):
            self.eval(target.value, ctx)
            item = self.item_key(target, ctx)
            if item is not None:  # `out["logits"] = out["logits"].float()`: the next read sees the cast
                ctx.scope.names[item] = value

    def item_key(self, node: cst.Subscript, ctx: Context) -> str | None:
        """`out["logits"]` as a name the scope can hold (a name subscripted by one literal key), else None."""
        if (
            not isinstance(node.value, cst.Name)
            or len(node.slice) != 1
            or not isinstance(node.slice[0].slice, cst.Index)
        ):
            return None
        key = self.eval(node.slice[0].slice.value, ctx).const
        return f"{node.value.value}[{key!r}]" if isinstance(key, (str, int)) and not isinstance(key, bool) else None

    @staticmethod
    def named(value: Value, name: str) -> Value:
        """Give a low-precision value's origin the name it is first bound to (for messages); the
        submodules a cast made half with it (`policy.lm_head`) share that name."""
        origin = value.origin
        if origin is None or origin.subject:
            return value
        renamed = replace(origin, subject=name)

        def rename(item: Value) -> Value:
            if item.origin is not None and item.origin.node is origin.node and not item.origin.subject:
                return item.with_(origin=renamed, items=tuple((key, rename(sub)) for key, sub in item.items))
            return item

        return rename(value)

    @staticmethod
    def unpacked(value: Value, index: int, count: int) -> Value:
        if value.kind is Kind.ANY and value.payload is not None and isinstance(value.payload, tuple):
            elements = value.payload
            return elements[index] if index < len(elements) and len(elements) == count else UNKNOWN
        if value.kind in (Kind.TENSOR, Kind.PARAMS):
            # A model output unpacked (`logits, values = model(x)`) holds its precision;
            # `for name, p in model.named_parameters()` binds parameters.
            return value
        return UNKNOWN

    @staticmethod
    def element_of(iterable: Value) -> Value:
        """What a `for` over `iterable` binds: a slice of a tensor, a parameter, a tuple from zip()."""
        if iterable.op == "zip" and isinstance(iterable.payload, tuple):
            return Value(Kind.ANY, payload=iterable.payload)
        return iterable if iterable.kind in (Kind.TENSOR, Kind.PARAMS) else UNKNOWN

    def bind_import(self, alias: cst.ImportAlias, ctx: Context) -> None:
        name = dotted_text(alias.name)
        if alias.asname is not None:
            ctx.scope.names[dotted_text(alias.asname.name)] = dotted(name)
        else:
            head = name.split(".")[0]
            ctx.scope.names[head] = dotted(head)

    def bind_import_from(self, node: cst.ImportFrom, ctx: Context) -> None:
        if isinstance(node.names, cst.ImportStar):
            return
        module = dotted_text(node.module) if node.module is not None else ""
        level = len(node.relative)
        source = self.index.resolve(module, ctx.scope.module.path, level) if module or level else None
        for alias in node.names:
            imported = dotted_text(alias.name)
            local = dotted_text(alias.asname.name) if alias.asname is not None else imported
            fallback = dotted(f"{module}.{imported}") if level == 0 else UNKNOWN
            if source is not None:  # read from the linted file when (if ever) the name is used
                ctx.scope.names[local] = Value(Kind.IMPORT, payload=(source, imported, fallback))
            else:
                ctx.scope.names[local] = fallback

    def imported(self, value: Value) -> Value:
        """What a name imported from a linted file holds, read on first use (re-exports followed)."""
        hops = 0
        while value.kind is Kind.IMPORT and isinstance(value.payload, tuple) and hops < 16:
            path, name, fallback = value.payload
            value = self.exported(path, name) or fallback
            hops += 1
        return UNKNOWN if value.kind is Kind.IMPORT else value

    def exported(self, path: str, name: str) -> Value | None:
        state = self.module_state(path)
        if state is None:
            return None
        if not state.lazy:
            self.run_module(state)
            return state.scope.names.get(name)
        for statement in state.binding_statements(name):
            if id(statement) not in state.executed:
                state.executed.add(id(statement))
                self.exec_statement(statement, Context(state.scope))
        return state.scope.names.get(name)

    def lookup_dotted(self, name: str, importer: str) -> Value | None:
        """A dotted name that refers into a linted file (`utils.logprobs.gather`), if it does."""
        module, _, attr = name.rpartition(".")
        if not module or name.startswith("torch."):
            return None  # torch's own names keep their API meaning, even when torch's sources are linted
        path = self.index.resolve(module, importer)
        return self.exported(path, attr) if path is not None else None

    # ----------------------------------------------------------------------------- definitions
    def define_function(self, node: cst.FunctionDef, ctx: Context) -> None:
        region: Region | None = None
        no_grad = False
        for decorator in node.decorators:
            value = self.eval(decorator.decorator, ctx)
            if value.kind is Kind.AUTOCAST and isinstance(value.payload, Region):
                region = value.payload
            no_grad = no_grad or _is_no_grad(value)
        definition = Definition(
            node, ctx.scope.module.path, ctx.scope, owner=ctx.class_body, region=region, no_grad=no_grad
        )
        if ctx.class_body is not None:
            ctx.class_body.methods[node.name.value] = definition
        ctx.scope.names[node.name.value] = Value(kind=Kind.FUNCTION, payload=definition)

    def define_class(self, node: cst.ClassDef, ctx: Context) -> None:
        bases = [self.eval(base.value, ctx) for base in node.bases]
        is_module = any(
            (base.name is not None and api.is_module_base(base.name))
            or (isinstance(base.payload, Definition) and base.payload.is_module)
            for base in bases
        )
        # `class MemoryEfficientAdamW(torch.optim.AdamW)`, `class Muon(torch.optim.Optimizer)`: an
        # optimizer of the project's own still steps whatever parameters it is handed.
        is_optimizer = any(
            (base.name is not None and (api.is_optimizer(base.name) or base.name in api.OPTIMIZER_BASES))
            or (isinstance(base.payload, Definition) and base.payload.is_optimizer)
            for base in bases
        )
        definition = Definition(node, ctx.scope.module.path, ctx.scope, is_module=is_module, is_optimizer=is_optimizer)
        for base in bases:  # inherited methods, overridden by the class's own below
            if base.kind is Kind.CLASS and isinstance(base.payload, Definition):
                definition.methods.update(base.payload.methods)
        body_scope = Scope(ctx.scope.module, ctx.scope)
        self.exec_block(statements(node.body), Context(body_scope, ctx.region, class_body=definition))
        for name, value in body_scope.names.items():  # dataclass fields and class attributes: their defaults
            if value.kind in (Kind.CONST, Kind.DTYPE):
                definition.constants[name] = value
        ctx.scope.names[node.name.value] = Value(kind=Kind.CLASS, payload=definition)

    def instance_of(self, definition: Definition, node: cst.CSTNode, items: tuple[tuple[str, Value], ...]) -> Value:
        if definition.is_module:
            precision, origin = self.default_dtype.get(definition.path, (Precision.FP32, None))
            return Value(Kind.MODULE, precision, origin=origin, payload=definition, items=items, identity=node)
        return Value(Kind.INSTANCE, payload=definition, items=items, identity=node)

    def attributes_of(self, definition: Definition) -> dict[str, Value]:
        """What `self.<attr>` holds across the class's methods (its `__init__` first)."""
        if definition in self.class_attrs:
            return self.class_attrs[definition]
        self.class_attrs[definition] = {}
        bare = self.instance_of(definition, definition.node, ())
        attrs: dict[str, Value] = {}
        init = definition.method("__init__")
        if init is not None:
            attrs.update(self.call_definition(init, [], {}, None, receiver=bare)[1])
        receiver = bare.with_(items=tuple(sorted(attrs.items())))
        if self.modules[definition.path].lazy:
            self.class_attrs[definition] = attrs
            return attrs  # a class only read from another file: its __init__ tells enough
        for name, method in definition.methods.items():
            if name == "__init__":
                continue
            for attr, value in self.call_definition(method, [], {}, None, receiver=receiver)[1].items():
                attrs[attr] = _join_attribute(attrs[attr], value) if attr in attrs else value
        self.class_attrs[definition] = attrs
        return attrs

    def call_definition(
        self,
        definition: Definition,
        args: list[Value],
        kwargs: dict[str, Value],
        region: Region | None,
        *,
        receiver: Value | None = None,
    ) -> tuple[Value, dict[str, Value]]:
        """Evaluate a function of the linted code in the caller's context; memoised per context."""
        if isinstance(definition.node, cst.ClassDef):
            return UNKNOWN, {}
        region = definition.region or region
        key = (definition, tuple(args), tuple(sorted(kwargs.items())), region, receiver)
        if key in self.memo.results:
            return self.memo.results[key]
        if not self.memo.admits(key) or self.evaluated_calls > MAX_EVALUATED_CALLS:
            return UNKNOWN, {}
        self.evaluated_calls += 1
        self.entered_paths.add(definition.path)
        self.memo.contexts[definition] = self.memo.contexts.get(definition, 0) + 1
        self.memo.in_progress.append(key)
        self.frames.append(Frame())
        scope = Scope(self.modules[definition.path], definition.scope)
        self_name = self.bind_parameters(definition, definition.node.params, scope, args, kwargs, receiver)
        ctx = Context(scope, region, no_grad=definition.no_grad)
        try:
            self.exec_block(statements(definition.node.body), ctx)
        finally:
            frame = self.frames.pop()
            self.memo.in_progress.pop()
        returns = frame.returns
        result = returns[0] if returns else const(None)
        for value in returns[1:]:
            result = join(result, value)
        writes: dict[str, Value] = {}
        if self_name is not None:
            prefix = f"{self_name}."
            writes = {key[len(prefix) :]: value for key, value in scope.names.items() if key.startswith(prefix)}
        outcome = (result, writes)
        self.memo.results[key] = outcome
        return outcome

    def bind_parameters(
        self,
        definition: Definition,
        params: cst.Parameters,
        scope: Scope,
        args: list[Value],
        kwargs: dict[str, Value],
        receiver: Value | None,
    ) -> str | None:
        """Bind a call's arguments to the function's parameters (`params`, those of `definition`);
        returns the name of `self`, if any. A parameter no caller passes takes its default: the
        configuration that runs when nobody asks."""
        positional = [*params.posonly_params, *params.params]
        self_name: str | None = None
        if receiver is not None and positional:
            self_name = positional[0].name.value
            scope.names[self_name] = receiver
            positional = positional[1:]
        for index, param in enumerate(positional):
            scope.names[param.name.value] = (
                args[index] if index < len(args) else self.parameter_value(param, kwargs, definition)
            )
        for param in params.kwonly_params:
            scope.names[param.name.value] = self.parameter_value(param, kwargs, definition)
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                scope.names[star.name.value] = UNKNOWN
        return self_name

    def parameter_value(self, param: cst.Param, kwargs: dict[str, Value], definition: Definition) -> Value:
        """A parameter not passed positionally: its keyword argument, else its default, else unknown."""
        name = param.name.value
        if name in kwargs:
            return kwargs[name]
        if param.default is not None:
            return self.eval(param.default, Context(definition.scope))
        return UNKNOWN

    # ------------------------------------------------------------------------------ expressions
    def eval(self, node: cst.BaseExpression, ctx: Context) -> Value:
        # Exact type tests, cheaper than libcst's ABC isinstance; mypy narrows on `type(node) is T`
        # but not on `type(node) in (...)`, where the casts say what the test established.
        if type(node) is cst.Name:
            return self.eval_name(node.value, ctx)
        if type(node) is cst.Attribute:
            return self.eval_attribute(node, ctx)
        if type(node) is cst.Call:
            return self.eval_call(node, ctx)
        if type(node) in (cst.SimpleString, cst.ConcatenatedString, cst.Integer, cst.Float):
            return _constant(cast("cst.SimpleString | cst.ConcatenatedString | cst.Integer | cst.Float", node))
        if type(node) is cst.Subscript:
            return self.eval_subscript(node, ctx)
        if type(node) is cst.BinaryOperation:
            left, right = self.eval(node.left, ctx), self.eval(node.right, ctx)
            result = self.binary(left, right, node.operator, ctx.region)
            self.note_operation(node, ctx, left, right, result)
            return result
        if type(node) is cst.UnaryOperation:
            operand = self.eval(node.expression, ctx)
            number = operand.const
            if (
                isinstance(node.operator, cst.Minus)
                and isinstance(number, (int, float))
                and not isinstance(number, bool)
            ):
                return const(-number)
            if isinstance(node.operator, cst.Not):
                truth = _truth(operand)
                return const(not truth) if truth is not None else UNKNOWN
            return operand
        if type(node) is cst.IfExp:
            taken = _truth(self.eval(node.test, ctx))
            if taken is not None:  # `torch.bfloat16 if bf16 else "auto"` with `bf16=True` by default
                chosen = self.eval(node.body if taken else node.orelse, ctx)
                other = self.eval(node.orelse if taken else node.body, ctx)
                if other == chosen:
                    return chosen
                condition = _CODE.code_for_node(node.test)
                return chosen.with_(otherwise=(other, condition if taken else f"not ({condition})"))
            return join(self.eval(node.body, ctx), self.eval(node.orelse, ctx))
        if type(node) in (cst.Tuple, cst.List, cst.Set):
            elements = cast("cst.Tuple | cst.List | cst.Set", node).elements
            return self.sequence(tuple(self.eval(element.value, ctx) for element in elements))
        if type(node) is cst.Dict:
            return self.eval_dict(node, ctx)
        if type(node) in (cst.ListComp, cst.GeneratorExp, cst.SetComp, cst.DictComp):
            return self.eval_comprehension(
                cast("cst.ListComp | cst.GeneratorExp | cst.SetComp | cst.DictComp", node), ctx
            )
        if type(node) is cst.BooleanOperation:
            return self.eval_boolean(node, ctx)
        if type(node) is cst.Comparison:
            return self.eval_comparison(node, ctx)
        if type(node) is cst.NamedExpr:
            value = self.eval(node.value, ctx)
            self.assign(node.target, value, ctx)
            return value
        if type(node) is cst.Await:
            return self.eval(node.expression, ctx)
        if type(node) is cst.FormattedString:
            for part in node.parts:  # f"{loss.item():.3f}": the calls inside run
                if isinstance(part, cst.FormattedStringExpression):
                    self.eval(part.expression, ctx)
            return UNKNOWN
        return UNKNOWN

    def eval_comparison(self, node: cst.Comparison, ctx: Context) -> Value:
        """A comparison of known constants (`args.dtype == "float16"`, `"cuda" in args.device`) is
        known in the configuration that runs; anything else is unknown."""
        left = self.eval(node.left, ctx)
        outcome: bool | None = True
        for target in node.comparisons:
            right = self.eval(target.comparator, ctx)
            compared = _compare(target.operator, left.const, right.const) if _known(left) and _known(right) else None
            outcome = None if compared is None or outcome is None else outcome and compared
            left = right
        return const(outcome) if outcome is not None else UNKNOWN

    def eval_boolean(self, node: cst.BooleanOperation, ctx: Context) -> Value:
        """`a and b` / `a or b`: Python's value where the left side's truth is known, else a join."""
        left = self.eval(node.left, ctx)
        truth = _truth(left)
        right = self.eval(node.right, ctx)
        if truth is None:
            return join(left, right)
        decided = truth if isinstance(node.operator, cst.Or) else not truth
        return left if decided else right

    def eval_name(self, name: str, ctx: Context) -> Value:
        if name in _NAMED_CONSTANTS:
            return const(_NAMED_CONSTANTS[name])
        value = ctx.scope.lookup(name)
        if value is None and ctx.scope.module.lazy:
            value = self.exported(ctx.scope.module.path, name)  # a global of a lazily read file
        if value is not None:
            return self.imported(value)
        if name in CONVENTIONAL_NAMES:
            return dotted(CONVENTIONAL_NAMES[name])
        return dotted(name) if name in _BUILTINS else UNKNOWN

    def eval_attribute(self, node: cst.Attribute, ctx: Context) -> Value:
        attr = node.attr.value
        if isinstance(node.value, cst.Name):
            tracked = ctx.scope.lookup(f"{node.value.value}.{attr}")
            if tracked is not None:
                return tracked
        base = self.eval(node.value, ctx)
        return self.attribute_of(base, attr)

    def attribute_of(self, base: Value, attr: str) -> Value:
        if base.kind is Kind.NAME:
            full = f"{base.name}.{attr}"
            precision = api.dtype_of_name(full)
            if precision is not None and full in api.DTYPE_NAMES:
                return Value(Kind.DTYPE, precision)
            return dotted(full)
        if base.kind in (Kind.INSTANCE, Kind.MODULE) and isinstance(base.payload, Definition):
            item = base.item(attr)
            if item is not None:
                return item
            known = self.attributes_of(base.payload).get(attr)
            if known is not None:
                return known
            method = base.payload.method(attr)
            if method is not None:
                return Value(Kind.FUNCTION, payload=method)
            return base.payload.constants.get(attr, UNKNOWN)  # a config class's field default
        if base.kind is Kind.CLASS and isinstance(base.payload, Definition):
            return base.payload.constants.get(attr, UNKNOWN)
        if base.kind is Kind.CONST and attr == "type" and isinstance(base.const, str):
            return const(base.const.split(":")[0])  # `torch.device("cuda:0").type`
        if attr == "dtype" and base.kind in (Kind.TENSOR, Kind.MODULE):
            return Value(Kind.DTYPE, base.precision)
        if base.kind is Kind.MODULE:
            return UNKNOWN if attr in api.MODULE_NON_SUBMODULE_ATTRS else base
        if base.kind is Kind.TENSOR:
            return UNKNOWN if attr in ("shape", "device", "ndim", "is_cuda", "requires_grad") else base
        if base.kind is Kind.DICT and base.op == NAMESPACE:
            return base.item(attr) or UNKNOWN  # `args.amp`: the option's default
        return UNKNOWN

    def eval_subscript(self, node: cst.Subscript, ctx: Context) -> Value:
        base = self.eval(node.value, ctx)
        keys: list[Value] = []
        for element in node.slice:
            index = element.slice
            if isinstance(index, cst.Index):
                keys.append(self.eval(index.value, ctx))
            elif isinstance(index, cst.Slice):  # libcst's only other BaseSlice
                for bound in (index.lower, index.upper, index.step):
                    if bound is not None:
                        self.eval(bound, ctx)
        key = self.item_key(node, ctx)
        tracked = ctx.scope.lookup(key) if key is not None else None
        if tracked is not None:
            return tracked
        if base.kind in (Kind.TENSOR, Kind.PARAMS):
            return base
        if base.kind is Kind.DICT and len(keys) == 1:
            return self.dict_item(base, keys[0])
        if base.kind is Kind.ANY and isinstance(base.payload, tuple) and len(keys) == 1:
            position = keys[0].const
            if isinstance(position, int) and -len(base.payload) <= position < len(base.payload):
                return base.payload[position]
        return UNKNOWN

    @staticmethod
    def dict_item(mapping: Value, key: Value) -> Value:
        choices = key.payload if key.kind is Kind.CONST and isinstance(key.payload, frozenset) else {key.const}
        found = [mapping.item(choice) for choice in choices if isinstance(choice, str)]
        known = [value for value in found if value is not None]
        if not found or len(known) < len(found):
            return UNKNOWN
        result = known[0]
        for value in known[1:]:
            result = join(result, value)
        if key.otherwise is not None and result.otherwise is None:
            # `{"bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]` with `dtype` chosen by a
            # condition: the item it picks otherwise, under the same condition.
            alternative, condition = key.otherwise
            other = Interpreter.dict_item(mapping, alternative)
            if other != result and other != UNKNOWN:
                return result.with_(otherwise=(other, condition))
        return result

    def eval_dict(self, node: cst.Dict, ctx: Context) -> Value:
        items: list[tuple[str, Value]] = []
        for element in node.elements:
            if not isinstance(element, cst.DictElement):  # a `**spread` (StarredDictElement)
                self.eval(element.value, ctx)
                continue
            key = self.eval(element.key, ctx)
            value = self.eval(element.value, ctx)
            if isinstance(key.const, str):
                items.append((key.const, value))
        return Value(Kind.DICT, items=tuple(items))

    def eval_comprehension(
        self, node: cst.ListComp | cst.GeneratorExp | cst.SetComp | cst.DictComp, ctx: Context
    ) -> Value:
        scope = Scope(ctx.scope.module, ctx.scope)
        inner = replace(ctx, scope=scope)
        clause: cst.CompFor | None = node.for_in
        while clause is not None:
            iterable = self.eval(clause.iter, inner)
            self.assign(clause.target, self.element_of(iterable), inner)
            for condition in clause.ifs:
                self.eval(condition.test, inner)
            clause = clause.inner_for_in
        element = self.eval(node.value if isinstance(node, cst.DictComp) else node.elt, inner)
        if element.kind is Kind.DICT:
            element = element.item("params") or UNKNOWN  # one param group per parameter
        if element.kind is Kind.PARAMS:
            return element  # [p for n, p in model.named_parameters() if ...], {n: p for ...}
        return element.with_(op=None) if element.kind is Kind.TENSOR else UNKNOWN

    @staticmethod
    def sequence(elements: tuple[Value, ...]) -> Value:
        """A list/tuple literal: parameter lists and param-group lists are parameters; else a tuple."""
        groups = [element.item("params") if element.kind is Kind.DICT else element for element in elements]
        params = [group for group in groups if group is not None and group.kind is Kind.PARAMS]
        if groups and len(params) == len(groups):
            return combine_params(params)
        return Value(Kind.ANY, payload=elements)

    def binary(
        self, left: Value, right: Value, operator: cst.BaseBinaryOp | None, region: Region | None = None
    ) -> Value:
        if isinstance(operator, cst.MatrixMultiply):
            return self.lowered(_promote(left, right), region)
        if Kind.PARAMS in (left.kind, right.kind):  # params += list(model.parameters())
            return combine_params([value for value in (left, right) if not _is_empty_sequence(value)])
        folded = _fold_numbers(operator, left.const, right.const)
        if folded is not None:
            return const(folded)  # `head_dim ** -0.5`: a scale factor stays a Python number
        return _promote(left, right)

    # ------------------------------------------------------------------------------------ calls
    def eval_call(self, node: cst.Call, ctx: Context) -> Value:
        receiver = UNKNOWN
        method: str | None = None
        function: str | None = None
        callee = UNKNOWN
        if isinstance(node.func, cst.Attribute):
            attr = node.func.attr.value
            base = self.eval(node.func.value, ctx)
            held = self.held_attribute(node.func, base, ctx)
            if base.kind is Kind.NAME:
                function = f"{base.name}.{attr}"
                callee = dotted(function)
            elif held is not None and _is_callable_value(held):
                callee = held  # self.model(x): a module held in an attribute
            else:
                receiver, method = base, attr
        else:
            callee = self.eval(node.func, ctx)
            function = callee.name
        args: list[Value] = []
        kwargs: dict[str, Value] = {}
        for arg in node.args:
            value = self.eval(arg.value, ctx)
            if arg.keyword is not None:
                kwargs[arg.keyword.value] = value
            elif not arg.star:  # a `*spread` or `**spread`: which parameters it fills is unknown
                args.append(value)
        if callee.kind is Kind.SCALER or any(value.kind is Kind.SCALER for value in (*args, *kwargs.values())):
            # `loss_scaler(loss, optimizer)` (timm's NativeScaler), `backward_step(scaler, loss)`:
            # the scaler is used, by code that may scale where this analysis cannot see.
            self.loss_scaling_paths.add(ctx.scope.module.path)
        if function is not None:
            linted = self.lookup_dotted(function, ctx.scope.module.path)
            if linted is not None and linted.kind in (Kind.FUNCTION, Kind.CLASS):
                callee, function = linted, None
        result = self.dispatch(node, ctx, callee, function, receiver, method, args, kwargs)
        if result.region is None and result.kind in (Kind.ANY, Kind.TENSOR):
            # Whatever is computed from a value of an autocast region still carries its gradient path.
            tainted = next((value.region for value in (receiver, *args, *kwargs.values()) if value.region), None)
            if tainted is not None:
                result = result.with_(region=tainted)
        fact = CallFact(
            node,
            ctx.scope.module.path,
            function,
            method,
            receiver,
            tuple(args),
            tuple(kwargs.items()),
            ctx.region,
            result,
            _called_definition(callee, receiver, method),
        )
        facts = self.facts.setdefault(node, [])
        if fact not in facts:
            facts.append(fact)
        return result

    def note_operation(self, node: cst.BinaryOperation, ctx: Context, left: Value, right: Value, result: Value) -> None:
        fact = OperationFact(node, ctx.scope.module.path, left, right, result)
        facts = self.operations.setdefault(node, [])
        if fact not in facts:
            facts.append(fact)

    def held_attribute(self, node: cst.Attribute, base: Value, ctx: Context) -> Value | None:
        """What an attribute holds when the code assigned it (`self.model = ...`), else None."""
        attr = node.attr.value
        if isinstance(node.value, cst.Name):
            tracked = ctx.scope.lookup(f"{node.value.value}.{attr}")
            if tracked is not None:
                return tracked
        if base.kind in (Kind.INSTANCE, Kind.MODULE) and isinstance(base.payload, Definition):
            return base.item(attr) or self.attributes_of(base.payload).get(attr)
        return None

    def dispatch(
        self,
        node: cst.Call,
        ctx: Context,
        callee: Value,
        function: str | None,
        receiver: Value,
        method: str | None,
        args: list[Value],
        kwargs: dict[str, Value],
    ) -> Value:
        if method is not None:
            return self.call_method(node, ctx, receiver, method, args, kwargs)
        if function is not None:
            return self.call_named(node, ctx, function, args, kwargs)
        if callee.kind is Kind.FUNCTION and isinstance(callee.payload, Definition):
            return self.call_definition(callee.payload, args, kwargs, ctx.region)[0]
        if callee.kind is Kind.CLASS and isinstance(callee.payload, Definition):
            return self.construct(node, ctx, callee.payload, args, kwargs)
        if callee.kind in (Kind.MODULE, Kind.ANY) and (
            callee.precision is not Precision.UNKNOWN or callee.kind is Kind.MODULE
        ):
            return self.forward(callee, args, kwargs, ctx)
        if callee == UNKNOWN and isinstance(node.func, cst.Name) and _low_region(ctx.region):
            # `logits = model(tokens)` with `model` a parameter: whatever its weights, a module's
            # output under a low-precision autocast region is in the region's dtype.
            return self.lowered(Value(Kind.TENSOR), ctx.region)
        return UNKNOWN

    def construct(
        self, node: cst.Call, ctx: Context, definition: Definition, args: list[Value], kwargs: dict[str, Value]
    ) -> Value:
        if definition.is_optimizer:
            params = args[0] if args else kwargs.get("params", UNKNOWN)
            return Value(Kind.OPTIMIZER, payload=node, identity=params.identity)
        bare = self.instance_of(definition, node, ())
        init = definition.method("__init__")
        writes: dict[str, Value] = {}
        if init is not None:
            writes = self.call_definition(init, args, kwargs, ctx.region, receiver=bare)[1]
        return self.instance_of(definition, node, tuple(sorted(writes.items())))

    def forward(self, module: Value, args: list[Value], kwargs: dict[str, Value], ctx: Context) -> Value:
        """The output of calling a module: its own precision, lowered by an active autocast region."""
        definition = module.payload if isinstance(module.payload, Definition) else None
        region = ctx.region
        if definition is not None:
            forward = definition.method("forward")
            if forward is not None:
                result = self.call_definition(forward, args, kwargs, region, receiver=module)[0]
                if result.precision is not Precision.UNKNOWN or result.region is not None:
                    return result
                region = forward.region or region
        output = Value(Kind.TENSOR, module.precision, origin=module.origin if module.precision.is_low else None)
        return self.lowered(output, region)

    def lowered(self, value: Value, region: Region | None) -> Value:
        """An op autocast runs in low precision (matmul, linear, a module's forward) inside `region`."""
        value = value.with_(kind=Kind.TENSOR)
        if region is None or region.enabled is False:
            return value
        tainted = value.with_(region=region)
        if region.enabled is None or not region.precision.is_low:
            return tainted.with_(precision=Precision.UNKNOWN, origin=None) if not value.precision.is_low else tainted
        origin = Origin("", f"computed under {region.describe()}", region.path, region.node)
        return tainted.with_(precision=region.precision, origin=origin)

    def call_named(
        self, node: cst.Call, ctx: Context, function: str, args: list[Value], kwargs: dict[str, Value]
    ) -> Value:
        path = ctx.scope.module.path
        leaf = api.last_part(function)
        first = args[0] if args else kwargs.get("input", UNKNOWN)
        if function in api.AUTOCAST_ENTRY_POINTS:
            return self.autocast(node, ctx, function, args, kwargs)
        if function in NO_GRAD_CONTEXTS:
            return dotted(function)
        if function in api.ACCELERATOR_QUERIES:
            return const(True)  # the GPU the training script is written for
        if function in api.LAUNCH_QUERIES:
            return const(False)  # `python train.py`: one process, no process group
        if function == "torch.device" and args and isinstance(args[0].const, str):
            return args[0]  # a device is its string here: `device.type`, `str(device)`
        if function == "str" and args and isinstance(args[0].const, str):
            return args[0]
        if function == "argparse.ArgumentParser":
            return Value(Kind.INSTANCE, op=PARSER, identity=node)
        if kwargs and (function == "types.SimpleNamespace" or "Output" in leaf):
            # Transformers' ModelOutput classes (`CausalLMOutputWithPast(logits=...)`) and namespaces:
            # a record whose fields read back, as `out.logits` and as `out["logits"]`.
            return Value(Kind.DICT, op=NAMESPACE, items=tuple(sorted(kwargs.items())))
        if function in ("torch.set_default_dtype", "torch.set_default_tensor_type") and args:
            precision = self.dtype_value(args[0])
            if precision is not None:
                self.default_dtype[path] = (precision, Origin("", "default dtype set", path, node))
            return UNKNOWN
        if function in api.GRAD_SCALERS or leaf in ("DynamicLossScaler", "NativeScalerWithGradNormCount"):
            # Built is not used: the file scales losses once the scaler scales one, is called, or
            # is handed to code that may (see `note_scaler_use`).
            return Value(Kind.SCALER, identity=node)  # its construction tells two scalers apart
        if _is_loss_scaling_framework(function, kwargs):
            self.loss_scaling_paths.add(path)
            return UNKNOWN
        if api.is_optimizer(function):
            params = first if args else kwargs.get("params", UNKNOWN)
            return Value(Kind.OPTIMIZER, payload=node, identity=params.identity)
        if leaf in ("from_pretrained", "from_config"):
            return self.loaded_model(node, path, kwargs)
        if function in api.MODULE_WRAPPERS:
            return first
        if leaf in ("FullyShardedDataParallel", "FSDP", "fully_shard"):
            return UNKNOWN if "mixed_precision" in kwargs or "mp_policy" in kwargs else first
        if api.is_nn_module_class(function):
            precision, origin = self.default_dtype.get(path, (Precision.FP32, None))
            return Value(Kind.MODULE, precision, origin=origin, identity=node)
        if function.startswith("torch.") and leaf in (
            "randn",
            "rand",
            "zeros",
            "ones",
            "empty",
            "full",
            "tensor",
            "randn_like",
            "zeros_like",
            "ones_like",
            "empty_like",
        ):
            return self.created_tensor(node, path, leaf, args, kwargs)
        if function.startswith("math.") or (
            function in _NUMBER_BUILTINS and not any(_is_tensor_like(arg) for arg in args)
        ):
            folded = (
                _fold_numbers(function, args[0].const, None)
                if len(args) == 1 and function in _FOLDED_FUNCTIONS
                else None
            )
            return const(folded) if folded is not None else NUMBER  # `/ math.sqrt(d_k)`: a Python number
        if function.startswith(("torch.", "F.")) or function in _BUILTINS:
            return self.tensor_op(node, ctx, leaf, function, first, args, kwargs)
        return UNKNOWN

    def call_method(
        self, node: cst.Call, ctx: Context, receiver: Value, method: str, args: list[Value], kwargs: dict[str, Value]
    ) -> Value:
        if receiver.op == PARSER:
            return self.argument_parser(receiver, method, args, kwargs)
        if method in ("scale", "scale_loss") and args and receiver.kind is not Kind.TENSOR:
            self.loss_scaling_paths.add(ctx.scope.module.path)
            return args[0].with_(scaled=True)  # any loss scaler's API, tracked or handed in
        if receiver.kind is Kind.SCALER:
            return UNKNOWN
        if receiver.kind is Kind.OPTIMIZER:
            if method == "step":
                self.commit_late_casts(receiver)
            return UNKNOWN
        if method == "step" and args and args[0].kind is Kind.OPTIMIZER:
            self.commit_late_casts(args[0])  # scaler.step(optimizer) with an untracked scaler
        if receiver.kind is Kind.PARAMS and (method in ("items", "values") or method in api.PRESERVING_OPS):
            return receiver  # param_dict.items(), p.detach(): still those parameters
        if receiver.kind is Kind.DICT:
            key = args[0].const if method == "get" and args else None
            return (receiver.item(key) or UNKNOWN) if isinstance(key, str) else UNKNOWN
        if receiver.kind in (Kind.INSTANCE, Kind.MODULE) and isinstance(receiver.payload, Definition):
            definition = receiver.payload.method(method)
            if definition is not None:
                return self.call_definition(definition, args, kwargs, ctx.region, receiver=receiver)[0]
        target = self.cast_target(method, args, kwargs, receiver)
        if target is not None:
            if target is Precision.UNKNOWN:
                return receiver.with_(precision=Precision.UNKNOWN, origin=None)
            return self.cast(receiver, target, node, ctx)
        if receiver.kind in (Kind.MODULE, Kind.ANY):
            if method in api.PARAMETER_METHODS:
                # A method call (see eval_call): `node.func` is `receiver.method`.
                identity = receiver.identity or _binding_key(cast(cst.Attribute, node.func).value)
                return Value(Kind.PARAMS, receiver.precision, origin=receiver.origin, identity=identity)
            if method in ("forward", "__call__"):
                return self.forward(receiver, args, kwargs, ctx)
            if method in api.MODULE_PASSTHROUGH_METHODS or method == "to":
                return receiver
            if method in api.KNOWN_SUBMODULES and receiver.kind is Kind.MODULE:
                return self.forward(receiver.with_(payload=None, items=()), args, kwargs, ctx)
            if receiver.kind is Kind.MODULE:
                return UNKNOWN
        if receiver.kind is Kind.TENSOR or (receiver.kind is Kind.ANY and receiver.precision is not Precision.UNKNOWN):
            return self.tensor_op(node, ctx, method, None, receiver, args, kwargs)
        if receiver.kind is Kind.ANY and receiver.region is not None:
            return receiver if method in api.PRESERVING_OPS else UNKNOWN
        return UNKNOWN

    def argument_parser(self, parser: Value, method: str, args: list[Value], kwargs: dict[str, Value]) -> Value:
        """argparse: `add_argument` records an option's default; `parse_args()` is the namespace of
        defaults (what runs when the script is started with no options)."""
        defaults = self.option_defaults.setdefault(parser.identity, {})
        if method == "add_argument":
            dest = _option_dest([arg.const for arg in args], kwargs.get("dest", UNKNOWN).const)
            if dest is not None:
                action = kwargs.get("action", UNKNOWN).const
                implied = {"store_true": const(False), "store_false": const(True)}.get(str(action))
                defaults[dest] = kwargs.get("default", implied or const(None))
            return UNKNOWN
        if method in ("parse_args", "parse_known_args"):
            namespace = Value(Kind.DICT, op=NAMESPACE, items=tuple(sorted(defaults.items())))
            return namespace if method == "parse_args" else Value(Kind.ANY, payload=(namespace, UNKNOWN))
        return UNKNOWN

    def cast_target(
        self, method: str, args: list[Value], kwargs: dict[str, Value], receiver: Value
    ) -> Precision | None:
        """The precision `.half()`/`.to(...)`/`.type(...)` casts to; UNKNOWN for an unresolvable dtype."""
        if method in api.CAST_METHODS and not args:
            return api.CAST_METHODS[method]
        if method == "to":
            candidates = [kwargs["dtype"]] if "dtype" in kwargs else args[:2]
            for candidate in candidates:
                precision = self.dtype_value(candidate)
                if precision is not None:
                    return precision
                if candidate.kind is Kind.TENSOR:
                    return candidate.precision  # x.to(other) takes other's dtype
            if "dtype" in kwargs:
                return Precision.UNKNOWN
            return None
        if method == "type" and args:
            return self.dtype_value(args[0]) or Precision.UNKNOWN
        return None

    def cast(self, receiver: Value, precision: Precision, node: cst.Call, ctx: Context) -> Value:
        origin = Origin("", "cast", ctx.scope.module.path, node) if precision.is_low else None
        kind = receiver.kind if receiver.kind in (Kind.MODULE, Kind.TENSOR, Kind.PARAMS, Kind.INSTANCE) else Kind.ANY
        if kind is Kind.INSTANCE:
            kind = Kind.MODULE
        items = tuple(
            (name, self.cast(item, precision, node, ctx) if item.kind is Kind.MODULE else item)
            for name, item in receiver.items
        )
        identity = receiver.identity if receiver.identity is not None else node
        return receiver.with_(kind=kind, precision=precision, origin=origin, items=items, identity=identity, op=None)

    def apply_in_place_cast(self, expression: cst.BaseExpression, value: Value, ctx: Context) -> None:
        """`model.half()` as a statement casts the module in place (a tensor cast there would be a no-op)."""
        if not (isinstance(expression, cst.Call) and isinstance(expression.func, cst.Attribute)):
            return
        target = expression.func.value
        if not isinstance(target, (cst.Name, cst.Attribute)) or value.kind not in (Kind.MODULE, Kind.ANY):
            return
        if value.precision is Precision.UNKNOWN and value.kind is Kind.ANY:
            return
        before = self.eval(target, ctx)
        if before.kind in (Kind.TENSOR, Kind.NAME, Kind.CONST):
            return
        cast = value.with_(kind=Kind.MODULE)
        self.assign(target, cast, ctx)
        identity = before.identity or _binding_key(target)
        # `model.train()`, `.eval()`, `.cuda()` hand the module back as it was: only a change of
        # precision is a cast (a bf16 model put in train mode after its optimizer is no new bug).
        if value.precision.is_low and value.precision is not before.precision and identity is not None:
            self.note_cast_after_optimizer(expression, identity, value.precision, ctx)

    def apply_parameter_collection(self, expression: cst.BaseExpression, ctx: Context) -> None:
        """`params.extend(model.parameters())` / `params.append(p)` makes `params` a parameter list."""
        if not (isinstance(expression, cst.Call) and isinstance(expression.func, cst.Attribute)):
            return
        target = expression.func.value
        if expression.func.attr.value not in ("append", "extend") or not isinstance(target, cst.Name):
            return
        added = [fact.args[0] for fact in self.facts.get(expression, []) if fact.args][-1:]
        if added and added[0].kind is Kind.PARAMS:
            current = self.eval(target, ctx)
            grown = added[0] if _is_empty_sequence(current) else combine_params([current, added[0]])
            self.assign(target, grown, ctx)

    def note_cast_after_optimizer(self, cast: cst.Call, identity: object, precision: Precision, ctx: Context) -> None:
        scope: Scope | None = ctx.scope
        while scope is not None:
            for value in scope.names.values():
                if value.kind is Kind.OPTIMIZER and value.identity == identity and isinstance(value.payload, cst.Call):
                    late = LateCast(
                        cast, ctx.scope.module.path, value.payload, self.path_of_call(value.payload), precision
                    )
                    self.frames[-1].pending_casts.append(late)
            scope = scope.parent

    def commit_late_casts(self, optimizer: Value) -> None:
        for late in self.frames[-1].pending_casts:
            if late.optimizer is optimizer.payload:
                casts = self.late_casts.setdefault(late.cast, [])
                if late not in casts:
                    casts.append(late)

    def path_of_call(self, node: cst.Call) -> str:
        facts = self.facts.get(node)
        return facts[0].path if facts else ""

    # --------------------------------------------------------------------------- torch semantics
    def dtype_value(self, value: Value) -> Precision | None:
        """The precision a dtype-like value names (`torch.bfloat16`, `"bf16"`, `torch.HalfTensor`)."""
        if value.kind is Kind.DTYPE:
            return value.precision
        if value.kind is Kind.NAME:
            return api.dtype_of_name(value.name or "")
        if value.kind is Kind.CONST:
            if isinstance(value.payload, str):
                return api.dtype_of_string(value.payload)
            if isinstance(value.payload, frozenset):
                found = [api.dtype_of_string(choice) for choice in value.payload if isinstance(choice, str)]
                known = [precision for precision in found if precision is not None]
                if found and len(known) == len(found):
                    result = known[0]
                    for precision in known[1:]:
                        result = result.join(precision)
                    return result
        return None

    def autocast(
        self, node: cst.Call, ctx: Context, function: str, args: list[Value], kwargs: dict[str, Value]
    ) -> Value:
        fixed_device, fixed_dtype = api.AUTOCAST_ENTRY_POINTS[function]
        device: str | None = fixed_device
        if fixed_device is None:
            device_arg = kwargs.get("device_type", args[0] if args else UNKNOWN)
            device = self.device_value(device_arg)
        dtype_arg = kwargs.get("dtype", args[1] if fixed_device is None and len(args) > 1 else None)
        if dtype_arg is not None and not (dtype_arg.kind is Kind.CONST and dtype_arg.payload is None):
            precision = self.dtype_value(dtype_arg) or Precision.UNKNOWN
        else:
            precision = fixed_dtype or (
                api.AUTOCAST_DEFAULT_DTYPE.get(device, Precision.UNKNOWN) if device else Precision.UNKNOWN
            )
        otherwise = None
        if dtype_arg is not None and dtype_arg.otherwise is not None:
            alternative, condition = dtype_arg.otherwise
            other = self.dtype_value(alternative)
            if other is not None and other is not precision:
                otherwise = (other, condition)
        enabled_arg = kwargs.get("enabled", args[0] if fixed_device is not None and args else None)
        enabled: bool | None = True
        if enabled_arg is not None:
            enabled = enabled_arg.const if isinstance(enabled_arg.const, bool) else None
        region = Region(device, precision, enabled, ctx.scope.module.path, node, otherwise)
        return Value(Kind.AUTOCAST, payload=region)

    def device_value(self, value: Value) -> str | None:
        text = value.const
        if isinstance(text, str):
            return text.split(":")[0].strip() or None
        return None

    def loaded_model(self, node: cst.Call, path: str, kwargs: dict[str, Value]) -> Value:
        for keyword in ("torch_dtype", "dtype"):
            if keyword in kwargs:
                precision = self.dtype_value(kwargs[keyword])
                if precision is not None and precision.is_low:
                    origin = Origin("", f"loaded in {precision.value}", path, node)
                    return Value(Kind.MODULE, precision, origin=origin, identity=node)
                return Value(Kind.MODULE, precision or Precision.UNKNOWN, identity=node)
        if any(key in kwargs for key in ("load_in_8bit", "load_in_4bit", "quantization_config")):
            return UNKNOWN
        return Value(Kind.MODULE, Precision.UNKNOWN, identity=node)

    def created_tensor(
        self, node: cst.Call, path: str, leaf: str, args: list[Value], kwargs: dict[str, Value]
    ) -> Value:
        if "dtype" in kwargs:
            precision = self.dtype_value(kwargs["dtype"]) or Precision.UNKNOWN
            origin = Origin("", "created", path, node) if precision.is_low else None
            return Value(Kind.TENSOR, precision, origin=origin)
        if leaf.endswith("_like") and args:
            return args[0].with_(op=None) if args[0].kind is Kind.TENSOR else UNKNOWN
        if leaf == "tensor":
            return UNKNOWN  # integer data gives an integer tensor
        precision, origin = self.default_dtype.get(path, (Precision.FP32, None))
        return Value(Kind.TENSOR, precision, origin=origin)

    def tensor_op(
        self,
        node: cst.Call,
        ctx: Context,
        op: str,
        function: str | None,
        tensor: Value,
        args: list[Value],
        kwargs: dict[str, Value],
    ) -> Value:
        """A torch function or tensor method on `tensor`: its output precision under the active region."""
        region = ctx.region
        if function in ("zip", "enumerate"):
            elements = tuple(self.element_of(arg) for arg in args)
            return Value(Kind.ANY, op="zip", payload=(UNKNOWN, *elements) if function == "enumerate" else elements)
        if function in PASSTHROUGH_BUILTINS or (function == "getattr" and len(args) >= 2):
            if function == "getattr" and tensor.kind is Kind.NAME and isinstance(args[1].const, str):
                return self.attribute_of(tensor, args[1].const)
            if function == "filter" and len(args) >= 2:
                return args[1]
            return tensor if tensor.kind in (Kind.PARAMS, Kind.TENSOR) else UNKNOWN
        if function == "dict":
            return Value(Kind.DICT, items=tuple(kwargs.items()))
        if tensor.kind not in (Kind.TENSOR, Kind.ANY) or (
            tensor.kind is Kind.ANY and tensor.precision is Precision.UNKNOWN and tensor.region is None
        ):
            if op in api.AUTOCAST_LOWERED_OPS:
                return self.lowered(Value(Kind.TENSOR), region)
            return UNKNOWN
        tensor = tensor.with_(kind=Kind.TENSOR)
        if op in api.AUTOCAST_LOWERED_OPS:
            other = args[1] if function is not None and len(args) > 1 else (args[0] if args else UNKNOWN)
            return self.lowered(_promote(tensor, other), region)
        dtype = kwargs.get("dtype")
        requested = self.dtype_value(dtype) if dtype is not None else None
        if requested is not None:
            return tensor.with_(precision=requested, origin=None if requested.is_full else tensor.origin, op=op)
        if op in api.SOFTMAX_OPS or op in (
            "cross_entropy",
            "nll_loss",
            "sum",
            "layer_norm",
            "pow",
            "rsqrt",
            "reciprocal",
        ):
            upcasts = api.region_upcasts(region, op)
            if upcasts is None:
                return tensor.with_(precision=Precision.UNKNOWN, origin=None, op=op)
            if upcasts:
                return tensor.with_(precision=Precision.FP32, origin=None, op=op)
            return tensor.with_(op=op)
        if op == "detach":
            return tensor.with_(region=None, scaled=False)  # no gradient flows back through it
        if op in api.PRESERVING_OPS:
            return tensor
        if op in ("backward", "item", "tolist", "numpy", "argmax", "argmin", "long", "int", "bool", "size", "dim"):
            return UNKNOWN
        return tensor.with_(precision=Precision.UNKNOWN, origin=None, op=op) if tensor.region else UNKNOWN


def _called_definition(callee: Value, receiver: Value, method: str | None) -> Definition | None:
    """The linted function a call runs: `helper(...)`, or `obj.method(...)` on an instance of a linted class."""
    if callee.kind is Kind.FUNCTION and isinstance(callee.payload, Definition):
        return callee.payload
    if (
        method is not None
        and receiver.kind in (Kind.INSTANCE, Kind.MODULE)
        and isinstance(receiver.payload, Definition)
    ):
        return receiver.payload.method(method)
    return None


_FOLDED_OPERATORS: dict[type, Callable[[float, float], float]] = {
    cst.Add: lambda a, b: a + b,
    cst.Subtract: lambda a, b: a - b,
    cst.Multiply: lambda a, b: a * b,
    cst.Divide: lambda a, b: a / b,
    cst.Power: lambda a, b: float(a) ** float(b),  # in floats: an int power could be astronomically large
}
_FOLDED_FUNCTIONS: dict[str, Callable[[float], float]] = {
    "math.sqrt": math.sqrt,
    "math.exp": math.exp,
    "math.log": math.log,
    "float": float,
    "abs": abs,
}


def _fold_numbers(operation: object, left: object, right: object) -> float | None:
    """Arithmetic on numeric literals (`64 ** -0.5`, `math.sqrt(64)`); None when not numbers or undefined."""
    numbers = [value for value in (left, right) if isinstance(value, (int, float)) and not isinstance(value, bool)]
    try:
        if isinstance(operation, str) and len(numbers) == 1 and right is None:
            return _FOLDED_FUNCTIONS[operation](numbers[0])
        if type(operation) in _FOLDED_OPERATORS and len(numbers) == 2:
            result = _FOLDED_OPERATORS[type(operation)](numbers[0], numbers[1])
            return result if isinstance(result, (int, float)) else None
    except (ArithmeticError, ValueError):
        return None
    return None


def _constant(node: cst.SimpleString | cst.ConcatenatedString | cst.Integer | cst.Float) -> Value:
    """A literal: str or number; bytes tell nothing here (a none-like constant, as before)."""
    if isinstance(node, (cst.Integer, cst.Float)):
        digits = node.value.replace("_", "")
        try:
            return const(int(digits, 0) if isinstance(node, cst.Integer) else float(digits))
        except ValueError:  # an integer of more digits than Python converts
            return UNKNOWN
    text = string_value(node)
    return const(text) if text is not None else const(None)


# In libcst `True`, `False` and `None` are names.
_NAMED_CONSTANTS: dict[str, object] = {"True": True, "False": False, "None": None}

_UNBOUND = object()  # a name's value before a branch that binds it for the first time

_BRANCHING_STATEMENTS: tuple[type[cst.If], type[cst.Try], type[cst.TryStar]] = (cst.If, *TRY_STATEMENTS)
# Renders an expression as written (a condition named in a message).
_CODE = cst.Module(body=[])
_STRING_LITERALS = (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)
# The concrete small statement types (exact type tests are cheaper than libcst's ABC checks).
_SMALL_STATEMENTS = frozenset(kind for kind in NODE_TYPES if issubclass(kind, cst.BaseSmallStatement))


def _nested_statements(statement: cst.If | cst.Try | cst.TryStar) -> list[Statement]:
    """The statements directly inside a top-level `if`/`try`, every branch of it (elifs included)."""
    if isinstance(statement, cst.If):
        return [
            *statements(statement.body),
            *(
                _nested_statements(statement.orelse)
                if isinstance(statement.orelse, cst.If)
                else statements(statement.orelse)
            ),
        ]
    handlers = [inner for handler in statement.handlers for inner in statements(handler.body)]
    return [*statements(statement.body), *handlers, *statements(statement.orelse), *statements(statement.finalbody)]


def _bound_names(statement: Statement) -> list[str]:
    """The names a top-level statement may bind (def, class, assignment, import)."""
    if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
        return [statement.name.value]
    if isinstance(statement, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
        targets = (
            [target.target for target in statement.targets] if isinstance(statement, cst.Assign) else [statement.target]
        )
        return [node.value for target in targets for node in walk(target) if isinstance(node, cst.Name)]
    if isinstance(statement, cst.Import):
        return [
            dotted_text(alias.asname.name if alias.asname else alias.name).split(".")[0] for alias in statement.names
        ]
    if isinstance(statement, cst.ImportFrom) and not isinstance(statement.names, cst.ImportStar):
        return [dotted_text(alias.asname.name if alias.asname else alias.name) for alias in statement.names]
    return []


def _is_no_grad(value: Value) -> bool:
    """`torch.no_grad()` / `torch.inference_mode()`, as a context manager or a decorator."""
    return value.kind is Kind.NAME and value.name in NO_GRAD_CONTEXTS


def _is_tensor_like(value: Value) -> bool:
    return value.kind is Kind.TENSOR or (value.kind is Kind.ANY and value.precision is not Precision.UNKNOWN)


def _is_empty_sequence(value: Value) -> bool:
    return value.kind is Kind.ANY and value.payload == ()


def _promote(left: Value, right: Value) -> Value:
    """Binary op between a tensor and something: Python scalars keep the tensor's precision."""
    tensor, other = (left, right) if _is_tensor_like(left) else (right, left)
    region = left.region or right.region
    scaled = left.scaled or right.scaled
    if not _is_tensor_like(tensor):
        return Value(Kind.TENSOR, region=region, scaled=scaled) if region or scaled else UNKNOWN
    if other.kind is Kind.CONST:
        precision = tensor.precision
    elif _is_tensor_like(other):
        precision = tensor.precision.promote(other.precision)
    else:
        precision = Precision.UNKNOWN
    origin = (tensor.origin or other.origin) if precision.is_low else None
    return Value(Kind.TENSOR, precision, origin=origin, region=region, scaled=scaled)


def _is_loss_scaling_framework(function: str, kwargs: dict[str, Value]) -> bool:
    """Frameworks that scale the loss themselves when asked for fp16 (or that always manage it)."""
    leaf = api.last_part(function)
    if function.startswith("deepspeed.") and leaf == "initialize":
        return True
    if leaf in ("scale_loss", "NativeScaler", "ApexScaler"):
        return True
    if leaf in ("Accelerator", "Fabric", "Trainer"):
        setting = kwargs.get("mixed_precision", kwargs.get("precision", UNKNOWN)).const
        return setting is not None and str(setting) in ("fp16", "16", "16-mixed")
    return False


def _join_attribute(first: Value, second: Value) -> Value:
    """`self.model = None` in `__init__` and a model assigned in `setup()`: None only means "not yet"."""
    if first.kind is Kind.CONST and first.payload is None:
        return second
    if second.kind is Kind.CONST and second.payload is None:
        return first
    return join(first, second)


def _is_callable_value(value: Value) -> bool:
    return value.kind in (Kind.MODULE, Kind.FUNCTION, Kind.CLASS) or (
        value.kind is Kind.ANY and value.precision is not Precision.UNKNOWN
    )


def _binding_key(expression: cst.BaseExpression) -> str | None:
    """`model` / `self.model`: the name a module is reached by, its identity when nothing better is known."""
    if isinstance(expression, cst.Name):
        return expression.value
    if isinstance(expression, cst.Attribute) and isinstance(expression.value, cst.Name):
        return f"{expression.value.value}.{expression.attr.value}"
    return None


# Builtins that make a Python number of non-tensor arguments.
_NUMBER_BUILTINS = frozenset({"len", "float", "int", "round", "abs", "min", "max", "sum", "pow"})
_BUILTINS = frozenset(
    {
        *PASSTHROUGH_BUILTINS,
        *_NUMBER_BUILTINS,
        "getattr",
        "dict",
        "isinstance",
        "print",
        "range",
        "zip",
        "enumerate",
        "str",
    }
)
# Markers (`Value.op`) of an argparse parser and of the namespace its `parse_args()` returns.
PARSER, NAMESPACE = "argparse.ArgumentParser", "argparse.Namespace"


def _low_region(region: Region | None) -> bool:
    return region is not None and region.enabled is True and region.precision.is_low


def _known(value: Value) -> bool:
    """A constant whose value is known (not a Python number of unknown value)."""
    return value.kind is Kind.CONST and isinstance(value.payload, (bool, int, float, str, type(None)))


_COMPARISONS: dict[type, Callable[[object, object], bool]] = {
    cst.Equal: lambda a, b: a == b,
    cst.NotEqual: lambda a, b: a != b,
    cst.Is: lambda a, b: a is b if a is None or b is None else a == b,
    cst.IsNot: lambda a, b: a is not b if a is None or b is None else a != b,
    cst.In: lambda a, b: isinstance(a, str) and isinstance(b, str) and a in b,
    cst.NotIn: lambda a, b: isinstance(a, str) and isinstance(b, str) and a not in b,
}


def _compare(operator: cst.BaseCompOp, left: object, right: object) -> bool | None:
    """`left <operator> right` for constants: equality, identity and substring tests only."""
    compare = _COMPARISONS.get(type(operator))
    if compare is None or (
        type(operator) in (cst.In, cst.NotIn) and not (isinstance(left, str) and isinstance(right, str))
    ):
        return None
    return compare(left, right)


def _truth(value: Value) -> bool | None:
    """Whether a test is true in the configuration that runs, when its value is a known constant.
    None is not one: `scaler=None` is an optional object a caller passes, not a configuration."""
    if value.kind is Kind.CONST and isinstance(value.payload, (bool, int, float, str)):
        return bool(value.payload)
    return None


def _option_dest(flags: list[object], dest: object) -> str | None:
    """The attribute an argparse option is stored in: `dest=`, else the first long flag
    (`--mixed-precision` -> `mixed_precision`), else the positional name."""
    if isinstance(dest, str):
        return dest
    names = [flag for flag in flags if isinstance(flag, str)]
    chosen = next((name for name in names if name.startswith("--")), names[0] if names else None)
    return chosen.lstrip("-").replace("-", "_") if chosen else None
