"""Transformers' `Trainer` and TRL's trainers, as far as precision goes: what `TrainingArguments` (and
TRL's configs, its subclasses) turn on, and what the Trainer does with the model it is given.

Read from transformers 5.24.0 (`pip download transformers==5.24.0`) and trl 1.16.0:
- transformers `training_args.py`: `fp16` and `bf16` default to False; `__post_init__` sets
  `self.mixed_precision = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")`, then `"fp16"` if
  `self.fp16`, else `"bf16"` if `self.bf16`. Neither flag set, the launch decides (`accelerate
  launch` sets that variable): unknown here, as an `Accelerator()` without `mixed_precision` is.
- transformers `trainer.py`: `_build_accelerator_args` gives `args.mixed_precision` to the
  `Accelerator` the Trainer builds; `_prepare_for_training` runs `self.accelerator.prepare(self.model)`
  (see `accelerate`: under mixed precision the model's forward runs under autocast and returns fp32
  outputs, and `accelerator.backward` scales fp16 losses: no MP002 under the Trainer). The model
  handed to `compute_loss(model, inputs, ...)` is that prepared model. `compute_loss_context_manager`
  / `autocast_smart_context_manager` are a `nullcontext` in 5.x ("We rely on accelerate for
  autocast"), where transformers 4.x entered `torch.autocast` around `compute_loss`: whether the rest
  of an override runs under autocast depends on the version (a region of unknown state here).
  The Trainer builds its optimizer over the model's parameters as they are: no fp32 master copy.
- trl `trainer/base_config.py`: `_BaseConfig(TrainingArguments)`, the base of `SFTConfig`,
  `DPOConfig`, `GRPOConfig`, `KTOConfig`, `RLOOConfig`, `RewardConfig`, ...: `bf16: bool | None =
  None`, and `__post_init__` sets `self.bf16 = not (self.fp16) if self.bf16 is None else self.bf16`
  (bf16 by default in TRL 1.x; older TRL kept TrainingArguments' False): `bf16` not given is unknown.
  (`PPOConfig` is gone from trl 1.16; its older versions took the same two flags.)
- transformers `hf_argparser.py`: `HfArgumentParser(dataclass_types)` (one class or a sequence) makes
  an option of each field, with the field's default; `parse_args_into_dataclasses()` returns one
  instance per class, in order, built from the parsed options (the remaining strings last when
  `return_remaining_strings=True`). Started plainly, each instance holds its fields' defaults. (It
  also reads a `<script>.args` file beside the script when there is one: not read here.) trl
  `scripts/utils.py`: `TrlParser(HfArgumentParser).parse_args_and_config()` does the same after
  setting defaults from a `--config` YAML file, when one is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import libcst as cst

from mplint.analysis.frameworks import accelerate
from mplint.analysis.scopes import Context
from mplint.analysis.summaries import Definition
from mplint.analysis.values import UNKNOWN, Kind, Precision, Region, Value

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

PACKAGES = ("transformers.", "trl.")
# Argument classes: transformers' own, and TRL's configs (all TrainingArguments subclasses).
ARGUMENT_CLASSES = frozenset({"TrainingArguments", "Seq2SeqTrainingArguments"})
# `Value.op` of training arguments, by the mixed precision they turn on (unknown: the launch decides),
# and of those that also hand the model to DeepSpeed (`deepspeed="ds_config.json"`).
ARGUMENTS = {
    Precision.FP16: "transformers: fp16 mixed precision",
    Precision.BF16: "transformers: bf16 mixed precision",
    Precision.UNKNOWN: "transformers: mixed precision of the launch",
}
DEEPSPEED_ARGUMENTS = {
    Precision.FP16: "transformers: fp16 DeepSpeed",
    Precision.BF16: "transformers: bf16 DeepSpeed",
}
PRECISION_OF = {op: precision for precision, op in [*ARGUMENTS.items(), *DEEPSPEED_ARGUMENTS.items()]}
# Parsers of the command line into dataclasses, and the `Value.op` of one (its classes the payload).
ARGUMENT_PARSERS = frozenset({"HfArgumentParser", "TrlParser"})
PARSER = "transformers: HfArgumentParser"
_PARSING_METHODS = frozenset({"parse_args_into_dataclasses", "parse_args_and_config"})


def is_arguments_class(function: str) -> bool:
    """`transformers.TrainingArguments`, `trl.GRPOConfig`, `trl.trainer.sft_config.SFTConfig`, ..."""
    if not function.startswith(PACKAGES):
        return False
    leaf = function.rpartition(".")[2]
    return leaf in ARGUMENT_CLASSES or (function.startswith("trl.") and leaf.endswith("Config"))


def is_trainer_class(function: str) -> bool:
    """`transformers.Trainer`, `transformers.Seq2SeqTrainer`, `trl.SFTTrainer`, `trl.GRPOTrainer`, ..."""
    return function.startswith(PACKAGES) and function.rpartition(".")[2].endswith("Trainer")


def arguments(kwargs: dict[str, Value], defaults: dict[str, Value] | None = None) -> Value:
    """Training arguments built with `kwargs` (over a subclass's field `defaults`): `fp16=True` wins
    over `bf16=True`, as `__post_init__` tests it; neither, the launch decides."""
    settings = {**(defaults or {}), **kwargs}
    fp16 = settings["fp16"].const if "fp16" in settings else False
    bf16 = settings["bf16"].const if "bf16" in settings else None
    precision = Precision.UNKNOWN
    if fp16 is True:
        precision = Precision.FP16
    elif fp16 is False and bf16 is True:
        precision = Precision.BF16
    deepspeed = settings["deepspeed"] if "deepspeed" in settings else None
    if precision in DEEPSPEED_ARGUMENTS and deepspeed is not None and (deepspeed.const or deepspeed.kind is Kind.DICT):
        return Value(Kind.INSTANCE, op=DEEPSPEED_ARGUMENTS[precision])
    return Value(Kind.INSTANCE, op=ARGUMENTS[precision])


def argument_parser(args: list[Value], kwargs: dict[str, Value]) -> Value:
    """`HfArgumentParser((ModelArguments, TrainingArguments))`: the dataclasses it parses into."""
    given = args[0] if args else kwargs.get("dataclass_types", UNKNOWN)
    classes = given.payload if given.kind is Kind.ANY and isinstance(given.payload, tuple) else (given,)
    return Value(Kind.INSTANCE, op=PARSER, payload=classes)


def parsed(
    self: Interpreter, node: cst.Call, ctx: Context, parser: Value, method: str, kwargs: dict[str, Value]
) -> Value | None:
    """`parser.parse_args_into_dataclasses()`: an instance of each class with its defaults (what runs
    when the script is started with no options); None for the parser's other methods (a JSON or
    YAML file's values are not defaults)."""
    if method not in _PARSING_METHODS:
        return None
    remaining = kwargs["return_remaining_strings"].const if "return_remaining_strings" in kwargs else False
    if not isinstance(remaining, bool):
        return UNKNOWN  # how many values it returns is not known
    instances = tuple(self.parsed_dataclass(node, ctx, kind) for kind in cast(tuple, parser.payload))
    return Value(Kind.ANY, payload=instances + ((UNKNOWN,) if remaining else ()))


def precision_of(value: Value | None) -> Precision | None:
    """The mixed precision training arguments turn on: FP16, BF16, or None (the launch decides)."""
    precision = PRECISION_OF.get(value.op or "") if value is not None else None
    return precision if precision is not None and precision is not Precision.UNKNOWN else None


def trainer_arguments(args: list[Value], kwargs: dict[str, Value]) -> Value | None:
    """The training arguments a trainer is given: `args=` or any positional argument that is some."""
    if "args" in kwargs:
        return kwargs["args"]
    return next((value for value in args if value.op in PRECISION_OF), None)


def trainer(self: Interpreter, node: cst.Call, ctx: Context, args: list[Value], kwargs: dict[str, Value]) -> Value:
    """`Trainer(model=model, args=training_args)`: the Trainer scales fp16 losses in its backward,
    and a mixed precision it may run (the launch deciding) may be fp16: this file scales."""
    if precision_of(trainer_arguments(args, kwargs)) is not Precision.BF16:
        self.loss_scaling_paths.add(ctx.scope.module.path)
    return UNKNOWN


def subclass_trainer(
    self: Interpreter,
    node: cst.Call,
    ctx: Context,
    definition: Definition,
    instance: Value,
    args: list[Value],
    kwargs: dict[str, Value],
) -> Value:
    """`MyTrainer(model=model, args=training_args)` with `MyTrainer(Trainer)` linted: as `trainer`,
    and its `compute_loss` override runs on the prepared model, in an autocast region whose state
    depends on the transformers version (entered around `compute_loss` in 4.x, not in 5.x)."""
    trainer(self, node, ctx, args, kwargs)
    override = definition.method("compute_loss")
    if override is None or override.owner is None or override.owner.path not in self.modules:
        return instance
    arguments = trainer_arguments(args, kwargs)
    precision = precision_of(arguments)
    model = kwargs.get("model", args[0] if args and args[0].op not in PRECISION_OF else UNKNOWN)
    if precision is not None and arguments is not None and arguments.op in DEEPSPEED_ARGUMENTS.values():
        # The Trainer hands the model to DeepSpeed (accelerate's `_prepare_deepspeed`): its engine
        # runs the weights in the half dtype and enters no autocast, so outputs are half.
        engine = self.cast(model, precision, node, ctx, how=f"made {precision.value} by the Trainer's DeepSpeed engine")
        self.call_definition(override, [engine, UNKNOWN], {}, None, receiver=instance)
        return instance
    prepared = accelerate.prepared(model, precision, node, ctx)
    region = Region("cuda", precision or Precision.HALF, None, ctx.scope.module.path, node)
    self.call_definition(override, [prepared, UNKNOWN], {}, region, receiver=instance)
    return instance
