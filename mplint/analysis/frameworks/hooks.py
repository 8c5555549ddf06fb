"""Where the interpreter hands calls to the framework modules: named calls (`Trainer(...)`,
`get_peft_model(...)`, `MixedPrecision(...)`), methods of a framework's objects (`trainer.fit`,
`fabric.setup`, `peft_model.parameters()`), a model's forward (outputs a framework converts), and
the construction of a linted class that derives from a framework's (a `Trainer` subclass with its own
`compute_loss`, a `TrainingArguments` dataclass with its own defaults, an `Accelerator` subclass)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import libcst as cst

from mplint.analysis import torch_api as api
from mplint.analysis.frameworks import accelerate, fsdp, lightning, peft, transformers
from mplint.analysis.scopes import Context
from mplint.analysis.summaries import Definition
from mplint.analysis.values import Kind, Value

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

# The last parts of the names the framework modules handle: a cheap first test.
LEAVES = frozenset(
    {
        *peft.WRAPPERS,
        peft.KBIT_PREPARATION,
        "from_pretrained",
        transformers.GET_PEFT_CONFIG,
        *fsdp.POLICIES,
        *fsdp.WRAPPERS,
        "Trainer",
        "Fabric",
        *lightning.STRATEGIES,
        *transformers.ARGUMENT_PARSERS,
        transformers.OPTIMIZER_CLASS_GETTER,
    }
)
RECEIVER_OPS = lightning.OPS | peft.OPS | {transformers.PARSER}


def call_named(
    self: Interpreter, node: cst.Call, ctx: Context, function: str, args: list[Value], kwargs: dict[str, Value]
) -> Value | None:
    """A framework's function or class called by name; None when no framework module knows it."""
    leaf = api.last_part(function)
    if leaf.endswith(("Trainer", "Config", "Arguments")) or leaf in LEAVES:
        if function in lightning.TRAINERS or function in lightning.FABRICS:
            return lightning.construct(self, node, ctx, function, kwargs)
        if lightning.is_strategy(function):
            return lightning.strategy_object(function)
        if transformers.is_arguments_class(function):
            return transformers.arguments(kwargs, known=not any(arg.star for arg in node.args))
        if transformers.is_trainer_class(function):
            return transformers.trainer_by_name(self, node, ctx, args, kwargs)
        if function.startswith(transformers.PACKAGES) and leaf in transformers.ARGUMENT_PARSERS:
            return transformers.argument_parser(args, kwargs)
        if peft.is_peft(function):
            return peft.call(self, node, ctx, function, args, kwargs)
        if fsdp.is_fsdp(function):
            return fsdp.call(self, node, ctx, function, args, kwargs)
        if function.startswith("trl.") and leaf == transformers.GET_PEFT_CONFIG:
            return transformers.peft_config(args, kwargs)
        if function.startswith(transformers.PACKAGES) and leaf == transformers.OPTIMIZER_CLASS_GETTER:
            return transformers.optimizer_class_and_kwargs()  # `Trainer.get_optimizer_cls_and_kwargs(args)`
    return None


def call_method(
    self: Interpreter,
    node: cst.Call,
    ctx: Context,
    receiver: Value,
    method: str,
    args: list[Value],
    kwargs: dict[str, Value],
) -> Value | None:
    """A method of a framework's object; None when the framework leaves it to the generic rules."""
    if receiver.op in lightning.OPS:
        return lightning.method(self, receiver, method, node, ctx, args, kwargs)
    if receiver.op == transformers.PARSER:
        return transformers.parsed(self, node, ctx, receiver, method, kwargs)
    return None


def forward(self: Interpreter, module: Value, run: Callable[[Value], Value]) -> Value:
    """The output of calling `module`, from `run` (what the model computes, given the module): a
    sharded model computes in its policy's dtype, a prepared one converts its outputs."""
    sharded = fsdp.forward(self, module, run)
    if sharded is not None:
        return sharded
    return accelerate.output(module, run(module))


def constructed(
    self: Interpreter,
    node: cst.Call,
    ctx: Context,
    definition: Definition,
    instance: Value,
    args: list[Value],
    kwargs: dict[str, Value],
) -> Value:
    """An instance of a linted class built: a framework base may give it a meaning."""
    base = framework_base(self, definition)
    if base is None:
        return instance
    if transformers.is_arguments_class(base):
        found = transformers.arguments(kwargs, _defaults(definition), known=not any(arg.star for arg in node.args))
        # The precision flags it inherits read as set (`args.bf16` after `--bf16`), as `vars()` lists them.
        return instance.with_(op=found.op, items=tuple(sorted({**dict(found.items), **dict(instance.items)}.items())))
    if transformers.is_trainer_class(base):
        return transformers.subclass_trainer(self, node, ctx, definition, base, instance, args, kwargs)
    if transformers.is_parser_class(base):
        # A project's copy of TRL's `TrlParser(HfArgumentParser)` (async_rlhf's `src/utils.py`, from trl
        # 0.8): parses as TRL's does, its `parse_args_and_config` reading the `--config` file.
        return transformers.argument_parser(args, kwargs)
    # Else an Accelerator subclass (the third kind `framework_base` finds): `class MyAccelerator(Accelerator)`
    # that keeps prepare/backward/autocast is an Accelerator.
    if not any(definition.method(name) for name in accelerate.METHODS):
        return accelerate.accelerator(self, node, ctx, kwargs)
    return instance


def inherited_method(
    self: Interpreter, ctx: Context, instance: Value, method: str, args: list[Value], kwargs: dict[str, Value]
) -> Value | None:
    """What a method a linted class inherits from its framework base gives, called on `instance` (with
    what its methods stored on it), where the framework's table knows it (`self._wrap_model(model)`,
    `self.create_optimizer_and_scheduler(n)` in a Trainer subclass); None otherwise."""
    base = framework_base(self, cast(Definition, instance.payload))
    if base is not None and transformers.is_trainer_class(base):
        return transformers.trainer_method(self, ctx, instance, method, args, kwargs)
    return None


def base_init(base: str, args: list[Value], kwargs: dict[str, Value]) -> dict[str, Value]:
    """What a framework class's `__init__` stores on an instance of a linted subclass (`super().__init__(
    model=model, args=args)`), by attribute; nothing known for other frameworks' classes."""
    if transformers.is_trainer_class(base):
        return transformers.stored_by_init(args, kwargs)
    return {}


def _is_framework_class(name: str) -> bool:
    """A framework class whose subclasses `constructed` gives a meaning: arguments, trainers, accelerators."""
    return (
        transformers.is_arguments_class(name)
        or transformers.is_trainer_class(name)
        or transformers.is_parser_class(name)
        or name in accelerate.ACCELERATORS
    )


def framework_base(
    self: Interpreter, definition: Definition, accepts: Callable[[str], bool] = _is_framework_class
) -> str | None:
    """The framework class that `accepts` a linted class derives from (through linted classes too), if any."""
    key = (definition, accepts)
    if key in self.framework_bases:
        return self.framework_bases[key]
    self.framework_bases[key] = None
    found: str | None = None
    for value in definition.base_values:
        name = value.name
        if name is not None and accepts(name):
            found = name
        elif value.kind is Kind.CLASS and isinstance(value.payload, Definition):
            found = framework_base(self, value.payload, accepts)
        if found is not None:
            break
    self.framework_bases[key] = found
    return found


def _defaults(definition: Definition) -> dict[str, Value]:
    """A dataclass's field defaults, those of its linted bases under its own."""
    return dict(definition.constants)
