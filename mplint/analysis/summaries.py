"""Functions and classes of the linted code, and the memo that makes calls into them cheap.

A call to a function defined in the linted files (in the same file or another one of the run) is
analysed *in the caller's context*: its parameters bound to the caller's argument values and the
caller's autocast region still active (autocast is dynamically scoped). The result is memoised
per (function, arguments, region), which is the function's summary for that context. Depth is
bounded (MAX_CALL_DEPTH), recursion with changing arguments unrolls within that bound, and a call
that is already being evaluated with the same arguments falls back to "unknown".

The interpreter's methods for them are here: `define_function`/`define_class` make a
`Definition` where a `def` or `class` runs, `call_definition` evaluates a call of one (binding its
parameters, their defaults where no caller passes them), and `attributes_of` is what `self.<attr>`
holds across a class's methods.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import libcst as cst

from mplint import tree
from mplint.analysis import registries
from mplint.analysis import torch_api as api
from mplint.analysis.frameworks import hydra
from mplint.analysis.scopes import Context, Frame, Scope
from mplint.analysis.statements import DEFAULT_DTYPE, Implied, is_no_grad, off_path
from mplint.analysis.values import (
    UNKNOWN,
    Kind,
    Origin,
    Precision,
    Region,
    Value,
    alternatives,
    const,
    is_none,
    is_tuple,
    join,
    one_of,
    recast,
)
from mplint.tree import statements

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

# A model-parallel policy's logits come back from nine calls below a script's `main` (llama-rlhf:
# main → run → train → the trainer's forward → the model's → its language model's → a gather → the
# autograd Function's forward → `_gather`). FlagEmbedding's BGE-M3 embeddings, eleven: main → the
# runner's `__init__` (four constructors deep) → `load_trainer` → `compute_loss` → the model's forward
# → `encode` → `_encode` → `_dense_embedding`.
MAX_CALL_DEPTH = 12
MAX_CONTEXTS_PER_FUNCTION = 12
MAX_EVALUATED_CALLS = 200_000


@dataclass(frozen=True, eq=False)
class Definition:
    """A `def` or `class` of the linted code, with the scope it was defined in (for globals/closures)."""

    node: cst.FunctionDef | cst.ClassDef
    path: str
    scope: Scope = field(repr=False)
    # Methods: the class they belong to.
    owner: Definition | None = None
    # An autocast decorator (`@torch.autocast("cuda")`) applies its region to every call.
    region: Region | None = None
    # `@torch.no_grad()` / `@torch.inference_mode()`: nothing computed in it reaches backward.
    no_grad: bool = False
    # `@staticmethod`: called on a class or an instance, it binds no receiver.
    static: bool = False
    # `@contextlib.contextmanager`: calling it gives what `with` enters (the region at its `yield`).
    context_manager: bool = False
    # `@property` / `@functools.cached_property`: reading the attribute runs the method.
    is_property: bool = False
    # Classes: whether they are nn.Modules (by their bases), and their methods by name.
    is_module: bool = False
    # Classes: whether they derive from a torch optimizer (a project's own AdamW variant, Muon).
    is_optimizer: bool = False
    methods: dict[str, Definition] = field(default_factory=dict, repr=False)
    # Classes: what their body binds to constants (dataclass field defaults, class attributes).
    constants: dict[str, Value] = field(default_factory=dict, repr=False)
    # Classes: their bases of the linted code (what `super()` reaches), and for a `@dataclass` or a
    # pydantic model (`pydantic`) its fields in `__init__` order (those of its bases first); None for
    # any other class.
    bases: tuple[Definition, ...] = ()
    # Classes: every base as the class statement evaluated it: a later binding of the name does not
    # change it (`class PreTrainedModel(PreTrainedModel)` derives from the imported class, not itself).
    base_values: tuple[Value, ...] = field(default=(), repr=False)
    # Classes: the torch.nn class they derive from (`torch.nn.Conv2d` for `class Conv(nn.Conv2d)`,
    # `torch.nn.Module` for a model), directly or through bases of the linted code.
    torch_class: str | None = None
    fields: tuple[str, ...] | None = None
    pydantic: bool = False

    @property
    def name(self) -> str:
        return self.node.name.value

    def method(self, name: str) -> Definition | None:
        return self.methods.get(name)

    @functools.cached_property
    def function(self) -> cst.FunctionDef | cst.ClassDef:
        """The node with its body: a method of a class read in part has its body parsed only when
        first asked for (`ModuleState.full_function`)."""
        full = self.scope.module.full_function
        return full(self.node) if full is not None and isinstance(self.node, cst.FunctionDef) else self.node

    @functools.cached_property
    def counted_attributes(self) -> frozenset[str]:
        """Functions: the attributes their body counts on (`self.step += 1` in `forward`), as
        `name.attr`: each call reads the count the calls before it left, not the value it started
        from (BGE-M3's `if self.step > self.self_distill_start_step`)."""
        function = self.function
        return frozenset(
            f"{node.target.value.value}.{node.target.attr.value}"
            for node in tree.walk(function)
            if type(node) is cst.AugAssign
            and type(node.target) is cst.Attribute
            and type(node.target.value) is cst.Name
        )


@dataclass(frozen=True, eq=False)
class Lambda:
    """A `lambda` of the linted code, with the scope it closes over."""

    node: cst.Lambda
    scope: Scope = field(repr=False)


@dataclass(frozen=True)
class Partial:
    """`functools.partial(f, *args, **kwargs)`: `f` with those arguments bound, called with the rest."""

    function: Value
    args: tuple[Value, ...]
    kwargs: tuple[tuple[str, Value], ...]


# The name under which a method's scope holds its class and receiver, for `super()` (no Python name has a space).
SUPER = "super ()"

# (function, arguments, keyword arguments, region, receiver, the non-default condition it runs under,
# torch's default dtype in effect, the registry keys the run is pinned to)
# The key of `call_definition`'s writes under which the receiver itself comes back when the function
# cast it in place (no attribute is named "").
SELF = ""
# The key of the writes under which a function's positional argument comes back when the function
# cast that module in place (`convert_weights(model)`), followed by its position.
ARGUMENT = "argument "

CallKey = tuple[
    Definition,
    tuple[Value, ...],
    tuple[tuple[str, Value], ...],
    Region | None,
    Value | None,
    str | None,
    object,
    tuple[tuple[cst.Dict, str], ...],
]


@dataclass
class CallMemo:
    """Summaries computed so far, and the calls being computed (to cut recursion)."""

    # Per call: what it returns, and what it writes to `self.<attr>`.
    results: dict[CallKey, tuple[Value, dict[str, Value]]] = field(default_factory=dict)
    in_progress: list[CallKey] = field(default_factory=list)
    contexts: dict[Definition, int] = field(default_factory=dict)
    # Per call that leaves torch's default dtype changed: the one it leaves.
    default_set: dict[CallKey, tuple[Precision, Origin | None]] = field(default_factory=dict)
    # Functions that read a registry by a key they could not tell, or call one that does (`Frame.keyed`).
    keyed: set[Definition] = field(default_factory=set)
    # Calls are being made that use up no contexts (`uncounted`).
    counting: bool = True

    def admits(self, key: CallKey) -> bool:
        """Whether a call may be evaluated now: not past the depth bound, and not the very call
        (same function, arguments and region) being evaluated already. Recursion with changing
        arguments (`unroll(x, depth - 1)`) unrolls up to the depth bound."""
        definition = key[0]
        if len(self.in_progress) >= MAX_CALL_DEPTH or key in self.in_progress:
            return False
        return not self.counting or self.contexts.get(definition, 0) < MAX_CONTEXTS_PER_FUNCTION

    @contextmanager
    def uncounted(self) -> Iterator[None]:
        """Within, calls neither use up contexts nor are refused for want of them: calls made once
        per registered entry, whose number the registry bounds, not the callers. A class's
        decorators (`register(name)` runs once per registered class, each time with its own name:
        counted, the 13th registration and those after it were lost: llama-rlhf's gemma2 and
        mistral3 configurations), and the forward of each model a registry may build
        (`registries.output`: four model classes share `Llama.forward`)."""
        outer, self.counting = self.counting, False
        try:
            yield
        finally:
            self.counting = outer


# Decorators that make a method an attribute read (Open-Reasoner-Zero's experiment builds its
# trainer, strategy and actor classes in `@cached_property` methods).
PROPERTY_DECORATORS = frozenset({"property", "functools.cached_property", "cached_property"})


def define_function(self: Interpreter, node: cst.FunctionDef, ctx: Context) -> None:
    region: Region | None = None
    no_grad = static = context_manager = is_property = False
    for decorator in node.decorators:
        value = self.eval(decorator.decorator, ctx)
        if isinstance(value.payload, Region):  # an autocast object (the only values holding a Region)
            region = value.payload
        no_grad = no_grad or is_no_grad(value)
        static = static or _is_builtin(decorator, "staticmethod")
        context_manager = context_manager or value.name in api.CONTEXT_MANAGER_DECORATORS
        is_property = is_property or value.name in PROPERTY_DECORATORS or _is_builtin(decorator, "property")
    definition = Definition(
        node,
        ctx.scope.module.path,
        ctx.scope,
        owner=ctx.class_body,
        region=region,
        no_grad=no_grad,
        static=static,
        context_manager=context_manager,
        is_property=is_property and ctx.class_body is not None,
    )
    if ctx.class_body is not None:
        ctx.class_body.methods[node.name.value] = definition
    ctx.scope.names[node.name.value] = Value(kind=Kind.FUNCTION, payload=definition)


def _is_builtin(decorator: cst.Decorator, name: str) -> bool:
    """`@staticmethod`, `@property`: a builtin decorator, named bare."""
    return isinstance(decorator.decorator, cst.Name) and decorator.decorator.value == name


def define_class(self: Interpreter, node: cst.ClassDef, ctx: Context) -> None:
    bases = [_linted(self, self.eval(base.value, ctx), ctx) for base in node.bases]
    torch_class = next((found for found in map(_torch_base, bases) if found is not None), None)
    is_module = torch_class is not None or any(
        (base.name is not None and api.is_module_base(base.name)) or _each_linted(base, lambda found: found.is_module)
        for base in bases
    )
    # `class MemoryEfficientAdamW(torch.optim.AdamW)`, `class Muon(torch.optim.Optimizer)`: an
    # optimizer of the project's own still steps whatever parameters it is handed.
    is_optimizer = any(
        (base.name is not None and (api.is_optimizer(base.name) or base.name in api.OPTIMIZER_BASES))
        or _each_linted(base, lambda found: found.is_optimizer)
        for base in bases
    )
    linted_bases = tuple(base.payload for base in bases if isinstance(base.payload, Definition))
    with self.memo.uncounted():
        decorators = [self.eval(decorator.decorator, ctx) for decorator in node.decorators]
    fields: tuple[str, ...] | None = None
    named = [  # `@dataclass`, `@dataclasses.dataclass(frozen=True)`
        self.eval(decorator.decorator.func, ctx) if isinstance(decorator.decorator, cst.Call) else value
        for decorator, value in zip(node.decorators, decorators, strict=True)
    ]
    # A pydantic model (`class TrainingConfig(BaseModel)`, or a subclass of one) is built from its
    # fields by keyword as a dataclass is (pydantic 2 `BaseModel.__init__(**data)`).
    pydantic = any(base.name == PYDANTIC_MODEL for base in bases) or any(
        base.fields is not None and base.pydantic for base in linted_bases
    )
    if pydantic or any(api.last_part(decorator.name or "") == "dataclass" for decorator in named):
        inherited = [name for base in linted_bases for name in base.fields or ()]
        fields = tuple(dict.fromkeys([*inherited, *_annotated_names(node)]))
    definition = Definition(
        node,
        ctx.scope.module.path,
        ctx.scope,
        is_module=is_module,
        is_optimizer=is_optimizer,
        bases=linted_bases,
        base_values=tuple(bases),
        torch_class=torch_class,
        fields=fields,
        pydantic=pydantic,
    )
    for base in bases:  # inherited methods, overridden by the class's own below
        if base.kind is Kind.CLASS and isinstance(base.payload, Definition):
            definition.methods.update(base.payload.methods)
            definition.constants.update(base.payload.constants)
    body_scope = Scope(ctx.scope.module, ctx.scope)
    self.exec_block(statements(node.body), Context(body_scope, ctx.region, class_body=definition))
    for name, value in body_scope.names.items():  # dataclass fields and class attributes: their defaults
        if value.kind in (Kind.CONST, Kind.DTYPE) or (value.kind is Kind.DICT and value.identity is not None):
            definition.constants[name] = value  # a dict literal: a registry its classmethods fill
        elif value.kind is Kind.INSTANCE and isinstance(value.payload, Definition) and value.payload.fields:
            definition.constants[name] = value  # `model: ModelConfig = field(default_factory=ModelConfig)`
        elif _is_literal_list(value):
            definition.constants[name] = value  # `modules_to_save: list[str] = field(default_factory=lambda: [...])`
    value = Value(kind=Kind.CLASS, payload=definition)
    ctx.scope.names[node.name.value] = value
    for decorator in reversed(decorators):
        # `@Registry.register("llama")`, `@register_model`: a decorator of the linted code runs on
        # the class (filling a registry); the name keeps the class. (A class of the linted code as
        # decorator runs nothing here: `call_definition` does not construct.)
        if isinstance(decorator.payload, Definition):
            with self.memo.uncounted():
                self.call_definition(decorator.payload, [value], {}, None)


# The base class of pydantic's models.
PYDANTIC_MODEL = "pydantic.BaseModel"


def _linted(self: Interpreter, value: Value, ctx: Context) -> Value:
    """A base class named through a module of the run (`class LLaMA(llama.LLaMA)` after `import
    lit_llama.model as llama`): that file's class."""
    if value.kind is Kind.NAME and value.name is not None:
        found = self.lookup_dotted(value.name, ctx.scope.module.path)
        if found is not None and found.kind is Kind.CLASS:
            return found
    return value


def instance_of(
    self: Interpreter, definition: Definition, node: cst.CSTNode, items: tuple[tuple[str, Value], ...]
) -> Value:
    if definition.is_module:
        precision, origin = self.default_dtype_at(definition.path, Precision.FP32)
        return Value(Kind.MODULE, precision, origin=origin, payload=definition, items=items, identity=node)
    return Value(Kind.INSTANCE, payload=definition, items=items, identity=node)


def attributes_of(self: Interpreter, definition: Definition) -> dict[str, Value]:
    """What `self.<attr>` holds across the class's methods (its `__init__` first)."""
    if definition in self.class_attrs:
        return self.class_attrs[definition]
    self.class_attrs[definition] = {}
    bare = self.instance_of(definition, definition.node, ())
    attrs: dict[str, Value] = {}
    init = definition.method("__init__")
    if init is not None:
        attrs.update(self.call_definition(init, [], {}, None, receiver=bare)[1])
        self_cast = attrs.pop(SELF, None)
        if self_cast is not None and self_cast.kind is Kind.MODULE:
            # `self.to(dtype)` in `__init__`: what it stored before, cast with it (as `construct` does).
            attrs = dict(recast(bare.with_(items=tuple(sorted(attrs.items()))), self_cast).items)
    receiver = bare.with_(items=tuple(sorted(attrs.items())))
    self.class_receivers[definition] = receiver
    if self.modules[definition.path].lazy:
        self.class_attrs[definition] = attrs
        return attrs  # a class only read from another file: its __init__ tells enough
    bases: set[Definition] = set()
    for name, method in definition.methods.items():
        if method.owner is not definition:
            # Inherited: what it stores is read once per base class, not once per subclass (a
            # subclass of nn.Module in torch's own sources would re-run sixty methods).
            if method.owner is not None:
                bases.add(method.owner)
            continue
        if name == "__init__" or not self.of_tree(method.path, _stores_attributes, method.function):
            continue  # a method that stores nothing on `self` has no attribute to tell (most of them)
        for attr, value in self.call_definition(method, [], {}, None, receiver=receiver)[1].items():
            if attr != SELF:
                attrs[attr] = _join_attribute(attrs[attr], value) if attr in attrs else value
    for base in bases:
        for attr, value in self.attributes_of(base).items():
            attrs.setdefault(attr, value)
    # A method analysed on its own sees what another method set where `__init__` left None ("not yet").
    held = {attr: attrs[attr] if is_none(value) else value for attr, value in receiver.items}
    self.class_receivers[definition] = receiver.with_(items=tuple(sorted(held.items())))
    self.class_attrs[definition] = attrs
    return attrs


def call_definition(
    self: Interpreter,
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
    default = self.default_dtype_at(definition.path, Precision.FP32)
    keyed = definition in self.memo.keyed
    arguments = (tuple(args), tuple(sorted(kwargs.items())))
    key: CallKey = (definition, *arguments, region, receiver, self.condition, default, ())
    if keyed:
        key = _pinned(self, key)
    if key in self.memo.results:
        if key in self.memo.default_set:  # its `torch.set_default_dtype`, which outlives the call
            self.set_default_dtype(definition.path, *self.memo.default_set[key])
        if keyed:
            self.frames[-1].keyed = True
        return self.memo.results[key]
    if not self.memo.admits(key) or self.evaluated_calls > MAX_EVALUATED_CALLS:
        return UNKNOWN, {}
    self.evaluated_calls += 1
    self.entered_paths.add(definition.path)
    if not self.pins and self.memo.counting:
        # A run per registered key does not use up the contexts of what it calls (nor `uncounted` calls).
        self.memo.contexts[definition] = self.memo.contexts.get(definition, 0) + 1
    self.memo.in_progress.append(key)
    outer_chain, self.chain = self.chain, (*self.chain, definition.name)
    outer_sites, self.call_sites = self.call_sites, (*self.call_sites, self.current_call)
    self.current_call = None  # a call inside the body sets its own
    outer_in_module = self.in_module
    self.in_module = outer_in_module or (definition.owner is not None and definition.owner.is_module)
    self.frames.append(Frame())
    owner = definition.owner
    # An nn.Module's `__init__`: the layers built while it runs are that class's tree (`builds`).
    building = owner if owner is not None and owner.is_module and definition.name == "__init__" else None
    if building is not None:
        self.constructing.append(building)
    try:
        outcome = _run_body(self, definition, args, kwargs, region, receiver, default)
        split = self.frames[-1].split
        keyed = self.frames[-1].keyed
        if split is not None and split[0] not in self.pins:
            # A registry read with a key the analysis cannot tell: the body once per registered
            # key, joined (every entry of a bf16 model registry builds a bf16 model).
            node, keys = split
            self.split_runs += len(keys)
            outcomes = []
            try:
                for choice in keys:
                    self.pins[node] = choice
                    self.frames[-1] = Frame()
                    outcomes.append(_run_body(self, definition, args, kwargs, region, receiver, default))
            finally:
                del self.pins[node]
            outcome = registries.joined(outcomes)
        for implied in self.frames[-1].reruns.values():
            _rerun_body(self, definition, (args, kwargs, region, receiver, default), implied)
    finally:
        self.frames.pop()
        if building is not None:
            self.constructing.pop()
        self.memo.in_progress.pop()
        self.chain, self.call_sites = outer_chain, outer_sites
        self.in_module = outer_in_module
    if keyed:
        self.memo.keyed.add(definition)
        self.frames[-1].keyed = True
        key = _pinned(self, key)
    self.memo.results[key] = outcome
    after = self.default_dtype_at(definition.path, Precision.FP32)
    if after != default:
        self.memo.default_set[key] = after
    return outcome


def _pinned(self: Interpreter, key: CallKey) -> CallKey:
    """The memo key of a call of a function that reads a registry by a key it cannot tell (`keyed`):
    in a run pinned to a registry's key it reads that key, so what it gives is that run's."""
    return (*key[:-1], tuple(self.pins.items()))


def _enclosing(definition: Definition) -> Scope:
    """The scope a function's free names are read in: a method's skips its class body, as Python's
    do (`def PolicyRayActor(self): return PolicyRayActor` returns the module's class, not itself)."""
    if definition.owner is not None and definition.scope.parent is not None:
        return definition.scope.parent
    return definition.scope


def _run_body(
    self: Interpreter,
    definition: Definition,
    args: list[Value],
    kwargs: dict[str, Value],
    region: Region | None,
    receiver: Value | None,
    default: tuple[Precision, Origin | None],
) -> tuple[Value, dict[str, Value]]:
    """One evaluation of a function's body in the current frame (`default`: torch's default dtype
    as the call began): what it returns and writes."""
    function = definition.function
    assert isinstance(function, cst.FunctionDef)
    scope = Scope(self.modules[definition.path], _enclosing(definition))
    self_name = self.bind_parameters(definition, function.params, scope, args, kwargs, receiver)
    if self_name is not None and definition.owner is not None:
        scope.names[SUPER] = Value(Kind.ANY, op=SUPER, payload=(definition.owner, self_name))
    ctx = Context(scope, region, no_grad=definition.no_grad)
    self.exec_block(statements(function.body), ctx)
    frame = self.frames[-1]
    result = _joined_returns(frame.returns)
    if definition.context_manager:
        result = _entered(frame.yielded, region)
        if result == UNKNOWN:
            result = _default_set(frame.yielded_defaults, default)
    writes: dict[str, Value] = {}
    if self_name is not None:
        writes = stored_on(scope, self_name)
        rebound = scope.names.get(self_name)
        if rebound is not None and rebound is not receiver:
            writes[SELF] = rebound  # the receiver itself cast in place (`self.half()`)
    else:
        writes = _arguments_cast(function.params, scope, args)
    return result, writes


def _joined_returns(returns: list[Value]) -> Value:
    """What a function returns: its paths' returns joined. A `return None` beside returns of a tuple
    (`if features is None: return None` before `return dense, sparse, colbert`) is left out: callers
    unpack the tuple, which None would not survive. A tuple beside a value of another kind (PromptSRC's
    forward: `return loss, features, ..., logits` in training, `return logits` in eval) is one of them
    (`Alternatives`): a caller unpacking it takes the tuples that fit."""
    if any(is_tuple(value) for value in returns):
        returns = [value for value in returns if not is_none(value)]
        if not all(is_tuple(value) for value in returns):
            return one_of(returns)
    return functools.reduce(join, returns) if returns else const(None)


def _rerun_body(
    self: Interpreter,
    definition: Definition,
    call: tuple[list[Value], dict[str, Value], Region | None, Value | None, tuple[Precision, Origin | None]],
    implied: tuple[Implied, ...],
) -> None:
    """The function's body run again, for its facts alone, where the configuration tests `implied`
    take the values given (the first is the test that asked for the run, the others those it decides)
    at every `if` that tests them: what an earlier `if` of one did is then undone on that path too
    (`statements._rerun_instead`). What it returns and sets is dropped."""
    self.frames[-1] = frame = Frame()
    with off_path(self, frame, implied):
        _run_body(self, definition, *call)


def _arguments_cast(params: cst.Parameters, scope: Scope, args: list[Value]) -> dict[str, Value]:
    """The modules handed to a function that it cast in place (`model.half()`, `model.apply(fn)`,
    `model = model.to(torch.bfloat16)`: a module's casts are in place), by their positions."""
    cast: dict[str, Value] = {}
    for index, (param, arg) in enumerate(zip([*params.posonly_params, *params.params], args, strict=False)):
        after = scope.names.get(param.name.value)
        if (
            arg.kind is Kind.MODULE
            and arg.identity is not None
            and after is not None
            and after is not arg
            and after.kind is Kind.MODULE
            and after.identity is arg.identity
        ):
            cast[f"{ARGUMENT}{index}"] = after
    return cast


def stored_on(scope: Scope, name: str) -> dict[str, Value]:
    """What code of `scope` stored on the object `name` (`self.model = ...`), by attribute."""
    prefix = f"{name}."
    return {key[len(prefix) :]: value for key, value in scope.names.items() if key.startswith(prefix)}


def with_stored(receiver: Value, stored: dict[str, Value]) -> Value:
    """The object a method was run on, holding what the method stored on it (`stored_on`)."""
    items = dict(receiver.items)
    items.update(stored)
    return receiver.with_(items=tuple(sorted(items.items())))


# The `op` of a function's `*args` tuple and `**kwargs` dict: the arguments it was called with, spread
# again where it forwards them.
FORWARDED = "forwarded arguments"
# The keyword a call's arguments hold when it spreads a value of unknown content (`model(**inputs)`,
# `f(*batch)`): any parameter it does not pass otherwise may be given by the spread, so none takes
# its default. No parameter has this name.
SPREAD = "**"


def bind_parameters(
    self: Interpreter,
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
    if receiver is not None and positional and not definition.static:
        self_name = positional[0].name.value
        scope.names[self_name] = receiver
        positional = positional[1:]
    for index, param in enumerate(positional):
        scope.names[param.name.value] = (
            args[index] if index < len(args) else self.parameter_value(param, kwargs, definition)
        )
    for param in params.kwonly_params:
        scope.names[param.name.value] = self.parameter_value(param, kwargs, definition)
    # `def async_init_model(self, *args, **kwargs)`: what the call gives beyond the parameters, for the
    # call that hands them on (`actor.init_model.remote(*args, **kwargs)`).
    if isinstance(params.star_arg, cst.Param):
        scope.names[params.star_arg.name.value] = Value(Kind.ANY, op=FORWARDED, payload=tuple(args[len(positional) :]))
    if isinstance(params.star_kwarg, cst.Param):
        named = {param.name.value for param in (*positional, *params.kwonly_params)}
        rest = tuple(sorted((name, value) for name, value in kwargs.items() if name not in named))
        scope.names[params.star_kwarg.name.value] = Value(Kind.DICT, op=FORWARDED, items=rest)
    return self_name


def parameter_value(self: Interpreter, param: cst.Param, kwargs: dict[str, Value], definition: Definition) -> Value:
    """A parameter not passed positionally: its keyword argument, else its default, else unknown."""
    name = param.name.value
    if name in kwargs:
        return kwargs[name]
    if SPREAD in kwargs:
        return UNKNOWN  # the spread may give it
    if param.default is not None:
        return self.eval(param.default, Context(definition.scope))
    parsed = _parsed_by_decorator(self, param, definition)
    return parsed if parsed is not None else UNKNOWN


# Decorators that parse the command line into the dataclass a function's parameter is annotated with
# (openvla: `@draccus.wrap()` over `def finetune(cfg: FinetuneConfig)`; draccus is a fork of pyrallis).
CLI_WRAPPERS = frozenset({"draccus.wrap", "pyrallis.wrap"})


def _parsed_by_decorator(self: Interpreter, param: cst.Param, definition: Definition) -> Value | None:
    """The parameter of a function a CLI decorator runs: the dataclass it is annotated with, as the
    repository's commands launch it (its defaults otherwise), or the config `@hydra.main` composes for
    its first parameter; None for any other parameter."""
    if not isinstance(definition.node, cst.FunctionDef):
        return None
    ctx = Context(definition.scope)
    positional = definition.node.params.params
    first = bool(positional) and positional[0] is param
    for decorator in definition.node.decorators:
        wrapper = decorator.decorator
        if not isinstance(wrapper, cst.Call):
            continue
        if param.annotation is not None and self.eval(wrapper.func, ctx).name in CLI_WRAPPERS:
            return self.parsed_dataclass(wrapper, ctx, self.eval(param.annotation.annotation, ctx))
        if first:
            composed = hydra.decorated_config(self, wrapper, ctx)
            if composed is not None:
                return composed
    return None


def _entered(yielded: list[Region | None], outer: Region | None) -> Value:
    """What `with helper():` enters for a `@contextmanager` helper: the autocast region active at
    its `yield` (`with torch.autocast(...): yield`), one that may or may not be active when its
    yields differ (`if enabled: with autocast(...): yield` / `else: yield`), else nothing known."""
    regions = [region for region in yielded if region is not outer]
    if not regions:
        return UNKNOWN
    if len(regions) == len(yielded) and all(region == regions[0] for region in regions):
        return Value(Kind.AUTOCAST, payload=regions[0])
    return Value(Kind.AUTOCAST, payload=replace(regions[0], enabled=None)) if regions[0] is not None else UNKNOWN


def _default_set(yielded: list[tuple[Precision, Origin | None]], outer: tuple[Precision, Origin | None]) -> Value:
    """What `with helper():` enters for a `@contextmanager` helper that sets torch's default dtype
    before its `yield` (`torch.set_default_dtype(dtype); yield`): that dtype, the same at every yield."""
    if not yielded or any(default != yielded[0] for default in yielded) or yielded[0] == outer:
        return UNKNOWN
    return Value(Kind.ANY, yielded[0][0], origin=yielded[0][1], op=DEFAULT_DTYPE)


def _each_linted(base: Value, holds: Callable[[Definition], bool]) -> bool:
    """Whether a base is a class of the linted code that `holds`, or one picked by branches among
    such classes (`Stem = ConvStem if cfg.arch == "resnet" else PatchStem`), each of which does."""
    return all(isinstance(choice.payload, Definition) and holds(choice.payload) for choice in alternatives(base))


def _torch_base(base: Value) -> str | None:
    """The torch.nn class a base of a class is or derives from."""
    if base.name is not None:
        return base.name if api.is_nn_module_class(base.name) else None
    return base.payload.torch_class if isinstance(base.payload, Definition) else None


def _annotated_names(node: cst.ClassDef) -> list[str]:
    """The names a class body annotates (`dim: int = None`): a dataclass's fields, in order."""
    found: list[str] = []
    for statement in statements(node.body):  # simple statements come one by one
        if isinstance(statement, cst.AnnAssign) and isinstance(statement.target, cst.Name):
            found.append(statement.target.value)
    return found


def _stores_attributes(node: cst.FunctionDef | cst.ClassDef) -> bool:
    """Whether a method assigns an attribute of its first parameter (`self.model = ...`) or casts it
    in place (`self.half()`): the only ways it can tell what the instance holds."""
    params = node.params.params if isinstance(node, cst.FunctionDef) else ()
    if not params:
        return False
    receiver = params[0].name.value
    for found in tree.walk(node.body):
        target: cst.BaseExpression | None = None
        if type(found) is cst.AssignTarget or type(found) is cst.AugAssign or type(found) is cst.AnnAssign:
            target = found.target
        elif type(found) is cst.Call:
            func = found.func
            if type(func) is cst.Attribute and func.attr.value in api.MODULE_CASTS:
                target = func
        if type(target) is cst.Attribute and type(target.value) is cst.Name and target.value.value == receiver:
            return True
    return False


def _join_attribute(first: Value, second: Value) -> Value:
    """`self.model = None` in `__init__` and a model assigned in `setup()`: None only means "not yet"."""
    if is_none(first):
        return second
    if is_none(second):
        return first
    return join(first, second)


def _is_literal_list(value: Value) -> bool:
    """A list or tuple of literals (`["embed_tokens", "lm_head"]`)."""
    elements = value.payload if value.kind is Kind.ANY and isinstance(value.payload, tuple) else ()
    return bool(elements) and all(element.kind is Kind.CONST for element in elements)
