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
  autocast"), where transformers before 4.30 entered `torch.autocast` around `compute_loss`: whether
  the rest of an override runs under autocast depends on the version the repository pins (see
  `ACCELERATE_RUNS_AMP_SINCE`; a region of unknown state where it pins none).
  `__init__` stores the model and the arguments it is given as `self.model` and `self.args`. When
  the launch is `accelerate launch` with a DeepSpeed config (`ACCELERATE_USE_DEEPSPEED`), the
  Trainer's accelerator runs DeepSpeed whatever its arguments say (`is_deepspeed_enabled`).
  The Trainer builds its optimizer over the model's parameters as they are: no fp32 master copy.
  `create_optimizer` (unless `optimizers=` or `optimizer_cls_and_kwargs=` gives one) builds it over
  `[p for n, p in opt_model.named_parameters() if p.requires_grad]`; under DeepSpeed the engine
  wraps it (fp32 masters), and accelerate's FSDP preparation upcasts low-precision parameters when
  mixed precision is on. `--fsdp` is the `fsdp` field, "" by default.
- trl `trainer/base_config.py`: `_BaseConfig(TrainingArguments)`, the base of `SFTConfig`,
  `DPOConfig`, `GRPOConfig`, `KTOConfig`, `RLOOConfig`, `RewardConfig`, ...: `bf16: bool | None =
  None`, and `__post_init__` sets `self.bf16 = not (self.fp16) if self.bf16 is None else self.bf16`
  (bf16 by default in TRL 1.x; older TRL kept TrainingArguments' False): `bf16` not given is unknown.
  (`PPOConfig` is gone from trl 1.16; its older versions took the same two flags.)
- trl `trainer/model_config.py` (0.15.2): `ModelConfig`, the model's settings beside the training
  arguments (no TrainingArguments): `model_name_or_path: None`, `model_revision: "main"`,
  `torch_dtype: None` (renamed `dtype`, default "float32", in trl 1.x), `use_peft`, `load_in_8bit`
  and `load_in_4bit` False.
- transformers `hf_argparser.py`: `HfArgumentParser(dataclass_types)` (one class or a sequence) makes
  an option of each field, with the field's default; `parse_args_into_dataclasses()` returns one
  instance per class, in order, built from the parsed options (the remaining strings last when
  `return_remaining_strings=True`). Started plainly, each instance holds its fields' defaults. (It
  also reads a `<script>.args` file beside the script when there is one: not read here.) trl
  `scripts/utils.py`: `TrlParser(HfArgumentParser).parse_args_and_config()` does the same after
  setting defaults from a `--config` YAML file, when one is given.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, cast

import libcst as cst

from mplint.analysis.configuration import NAMESPACE
from mplint.analysis.frameworks import accelerate, causal_lm, peft
from mplint.analysis.frameworks.pins import Version
from mplint.analysis.scopes import Context
from mplint.analysis.summaries import SPREAD, Definition
from mplint.analysis.values import UNKNOWN, Kind, Precision, Region, Value, const, dotted, is_none
from mplint.tree import walk

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
# The methods that read the dataclasses' fields from a YAML or JSON file (`parse_yaml_file(os.path.
# abspath(sys.argv[1]))`): the file each command gives as its first argument, as TRL's `--config`.
_FILE_METHODS = frozenset({"parse_yaml_file", "parse_json_file"})


def is_parser_class(function: str) -> bool:
    """`transformers.HfArgumentParser`, `trl.TrlParser` (by any path into either package)."""
    return function.startswith(PACKAGES) and function.rpartition(".")[2] in ARGUMENT_PARSERS


def is_arguments_class(function: str) -> bool:
    """`transformers.TrainingArguments`, `trl.GRPOConfig`, `trl.trainer.sft_config.SFTConfig`, ..."""
    if not function.startswith(PACKAGES):
        return False
    leaf = function.rpartition(".")[2]
    return leaf in ARGUMENT_CLASSES or (
        function.startswith("trl.") and leaf.endswith("Config") and leaf != MODEL_CONFIG
    )


# TRL's model settings, and their fields with their defaults (`dtype`'s depends on the version).
MODEL_CONFIG = "ModelConfig"
MODEL_CONFIG_FIELDS = {
    "model_name_or_path": const(None),
    "model_revision": const("main"),
    "torch_dtype": const(None),
    "dtype": UNKNOWN,
    "use_peft": const(False),
    "load_in_8bit": const(False),
    "load_in_4bit": const(False),
}


def is_model_config(function: str) -> bool:
    """`trl.ModelConfig`, `trl.trainer.model_config.ModelConfig`."""
    return function.startswith("trl.") and function.rpartition(".")[2] == MODEL_CONFIG


def model_config(launched: dict[str, Value]) -> Value:
    """TRL's `ModelConfig` as a parser fills it: its fields' defaults, those `launched` replacing them,
    read as attributes."""
    fields = {**MODEL_CONFIG_FIELDS, **launched}
    return Value(
        Kind.DICT,
        op=NAMESPACE,
        items=tuple(sorted((name, value) for name, value in fields.items() if value != UNKNOWN)),
    )


# trl `trainer/utils.py` (0.7.4, 0.12.0, 1.x alike): `get_peft_config(model_args)` returns None when
# `model_args.use_peft is False` (ModelConfig's default), else a LoRA config.
GET_PEFT_CONFIG = "get_peft_config"


def peft_config(args: list[Value], kwargs: dict[str, Value]) -> Value:
    """TRL's `get_peft_config(model_args)`: None where the model settings turn PEFT off."""
    settings = args[0] if args else kwargs.get("model_args", kwargs.get("model_config", UNKNOWN))
    use_peft = settings.item("use_peft") if settings.op == NAMESPACE else None
    return const(None) if use_peft is not None and use_peft.const is False else UNKNOWN


def is_trainer_class(function: str) -> bool:
    """`transformers.Trainer`, `transformers.Seq2SeqTrainer`, `trl.SFTTrainer`, `trl.GRPOTrainer`, ..."""
    return function.startswith(PACKAGES) and function.rpartition(".")[2].endswith("Trainer")


# The item of training arguments whose every setting is known: no `**spread` of unknown keys, no
# config file (TRL's `--config`) and no `fsdp`: then the Trainer is known to run neither DeepSpeed nor
# FSDP unless its launch does.
SETTINGS_KNOWN = "settings known"
# The fields of `TrainingArguments` that turn mixed precision on (both False by default).
PRECISION_FLAGS = ("bf16", "fp16")


def arguments(kwargs: dict[str, Value], defaults: dict[str, Value] | None = None, *, known: bool = False) -> Value:
    """Training arguments built with `kwargs` (over a subclass's field `defaults`): `fp16=True` wins
    over `bf16=True`, as `__post_init__` tests it; neither, the launch decides. `known`: `kwargs` are
    all the settings given (`SETTINGS_KNOWN`). Its precision flags read as set (`args.bf16`), False
    where not given and all are known."""
    settings = {**(defaults or {}), **kwargs}
    flags = tuple((flag, settings.get(flag, const(False))) for flag in PRECISION_FLAGS if flag in settings or known)
    fp16 = settings["fp16"].const if "fp16" in settings else False
    bf16 = settings["bf16"].const if "bf16" in settings else None
    precision = Precision.UNKNOWN
    if fp16 is True:
        precision = Precision.FP16
    elif fp16 is False and bf16 is True:
        precision = Precision.BF16
    deepspeed = settings["deepspeed"] if "deepspeed" in settings else None
    if precision in DEEPSPEED_ARGUMENTS and deepspeed is not None and (deepspeed.const or deepspeed.kind is Kind.DICT):
        return Value(Kind.INSTANCE, op=DEEPSPEED_ARGUMENTS[precision], items=flags)
    fsdp = settings["fsdp"].const if "fsdp" in settings else ""
    known = known and deepspeed in (None, const(None)) and fsdp in ("", None, False)
    settings_known = ((SETTINGS_KNOWN, const(True)),) if known else ()
    return Value(Kind.INSTANCE, op=ARGUMENTS[precision], items=settings_known + flags)


def argument_parser(args: list[Value], kwargs: dict[str, Value]) -> Value:
    """`HfArgumentParser((ModelArguments, TrainingArguments))`: the dataclasses it parses into."""
    given = args[0] if args else kwargs.get("dataclass_types", UNKNOWN)
    classes = given.payload if given.kind is Kind.ANY and isinstance(given.payload, tuple) else (given,)
    return Value(Kind.INSTANCE, op=PARSER, payload=classes)


def parsed(
    self: Interpreter, node: cst.Call, ctx: Context, parser: Value, method: str, kwargs: dict[str, Value]
) -> Value | None:
    """`parser.parse_args_into_dataclasses()`: an instance of each class with its defaults (what runs
    when the script is started with no options, or as the repository's commands start it), and
    TRL's `parse_args_and_config()` over the `--config` file each command names, and
    `parse_yaml_file`/`parse_json_file` over the file each gives as its first argument; None for the
    parser's other methods."""
    if method not in _PARSING_METHODS and method not in _FILE_METHODS:
        return None
    remaining = kwargs["return_remaining_strings"].const if "return_remaining_strings" in kwargs else False
    if not isinstance(remaining, bool):
        return UNKNOWN  # how many values it returns is not known
    # TRL's `parse_args_and_config`: a `--config` YAML file sets fields too; `parse_yaml_file`: the file.
    reads_config = method != "parse_args_into_dataclasses"
    classes = cast(tuple, parser.payload)
    instances = tuple(self.parsed_dataclass(node, ctx, kind, config_file=reads_config) for kind in classes)
    if (reads_config and not self.started_without_config_file()) or self.may_launch_with(_ENGINE_OPTIONS):
        # Of settings read for precision alone: any other field a config file sets is unknown; a
        # script no command starts may run as those that start its code do (`--deepspeed`).
        instances = tuple(_settings_unknown(instance) for instance in instances)
    return Value(Kind.ANY, payload=instances + ((UNKNOWN,) if remaining else ()))


# The options of `TrainingArguments` that hand the model to an engine keeping fp32 weights.
_ENGINE_OPTIONS = frozenset({"deepspeed", "fsdp"})


def _settings_unknown(instance: Value) -> Value:
    return instance.with_(items=tuple((name, item) for name, item in instance.items if name != SETTINGS_KNOWN))


def precision_of(value: Value | None) -> Precision | None:
    """The mixed precision training arguments turn on: FP16, BF16, or None (the launch decides)."""
    precision = PRECISION_OF.get(value.op or "") if value is not None else None
    return precision if precision is not None and precision is not Precision.UNKNOWN else None


def trainer_arguments(args: list[Value], kwargs: dict[str, Value]) -> Value | None:
    """The training arguments a trainer is given: `args=` or any positional argument that is some."""
    if "args" in kwargs:
        return kwargs["args"]
    return next((value for value in args if value.op in PRECISION_OF), None)


def trainer(
    self: Interpreter,
    node: cst.Call,
    ctx: Context,
    args: list[Value],
    kwargs: dict[str, Value],
    model: Value | None = None,
) -> Value:
    """`Trainer(model=model, args=training_args)`: the Trainer scales fp16 losses in its backward,
    and a mixed precision it may run (the launch deciding) may be fp16: this file scales. The
    Trainer's own optimizer over half parameters (those of `model`, else of the model it is given) is
    the value's `OWN_OPTIMIZER` item."""
    arguments = trainer_arguments(args, kwargs)
    if precision_of(arguments) is not Precision.BF16:
        self.note_loss_scaling(ctx.scope.module.path)
    params = _own_optimizer_params(self, ctx, arguments, model or model_of(args, kwargs), kwargs)
    return UNKNOWN if params is None else Value(Kind.INSTANCE, op=TRAINER, items=((OWN_OPTIMIZER, params),))


# `Value.op` of a Trainer built by name, and the item of a Trainer (built by name or a linted
# subclass) that holds the half parameters its own optimizer updates.
TRAINER = "transformers: Trainer"
OWN_OPTIMIZER = "own optimizer"
# Keywords that give the Trainer its optimizer or its model some other way, or wrap the model (TRL's
# `peft_config`: fp32 adapters).
_OWN_OPTIMIZER_BYPASSED = ("optimizers", "optimizer_cls_and_kwargs", "model_init", "peft_config")


def _given(value: Value | None) -> bool:
    """Whether a keyword is given something: not left out, nor passed a literal None
    (`peft_config=get_peft_config(model_args)` with PEFT off)."""
    return value is not None and not is_none(value)


def model_of(args: list[Value], kwargs: dict[str, Value]) -> Value:
    """The model a trainer is given: `model=`, else the first positional argument that is no arguments."""
    return kwargs.get("model", args[0] if args and args[0].op not in PRECISION_OF else UNKNOWN)


def _own_optimizer_params(
    self: Interpreter, ctx: Context, arguments: Value | None, model: Value, kwargs: dict[str, Value]
) -> Value | None:
    """The parameters the Trainer's own optimizer updates (`create_optimizer`: those that require
    grad, as they are), when they are known half: a model half whole (not in part), or a PEFT
    model's adapters where known half (fp32 by default), arguments whose every setting is known and that turn neither
    fp16 (MP107's case) nor DeepSpeed nor FSDP on, and a script no accelerate configuration of its
    repository launches (one may bring DeepSpeed or FSDP, which keep or make fp32 weights)."""
    if any(_given(kwargs.get(keyword)) for keyword in _OWN_OPTIMIZER_BYPASSED) or arguments is None:
        return None
    if arguments.item(SETTINGS_KNOWN) is None or arguments.op == ARGUMENTS[Precision.FP16]:
        return None
    params = _trainable_params(model)
    if params is None or not params.precision.is_low or not accelerate.launched_without_config(self, ctx):
        return None
    return params


def _trainable_params(model: Value) -> Value | None:
    """The parameters of `model` that require grad, where known: a PEFT model's adapters (half where
    cast so, or beside half copies of its modules to save); a module of the linted code holding PEFT
    models (TRL's `PolicyAndValueWrapper(policy, value_model)`), theirs; else the model's own."""
    if model.kind is not Kind.MODULE:
        return None
    if model.op in peft.OPS:
        return peft.parameters(model, model.identity)  # the adapters, half where cast so
    if model.op is not None:
        return None
    adapted = peft.held_trainable_parameters(model, model.identity)
    if adapted is not None:
        return adapted
    return Value(Kind.PARAMS, model.precision, origin=model.origin, identity=model.identity)


# Trainer methods that hand back the model they are given, wrapped or not: `_wrap_model(model,
# training=True, dataloader=None)` wraps it in DataParallel/DDP/FSDP as the arguments ask, or returns
# it as it is (transformers 4.29-4.46 `trainer.py`); a wrapper runs the model's own forward.
_MODEL_HANDING_METHODS = frozenset({"_wrap_model"})


def trainer_method(
    self: Interpreter, ctx: Context, instance: Value, method: str, args: list[Value], kwargs: dict[str, Value]
) -> Value | None:
    """What a Trainer method a linted subclass inherits gives, where known (`_MODEL_HANDING_METHODS`,
    `OPTIMIZER_CLASS_GETTER`), and the optimizer `create_optimizer_and_scheduler` builds over the
    instance's `self.model` under its `self.args` (TRL's `PPOTrainer.__init__` (trl 0.11-0.14) calls it
    without running `Trainer.__init__`): the Trainer's own optimizer, as `trainer` builds it."""
    if method in _OPTIMIZER_FACTORIES:
        overridden = cast(Definition, instance.payload).method("create_optimizer")
        if overridden is not None:  # `create_optimizer_and_scheduler` builds it with the subclass's
            self.call_definition(overridden, [], {}, None, receiver=instance)
            return UNKNOWN
        model, arguments = instance.item("model"), instance.item("args")
        if model is None:
            return None
        params = _own_optimizer_params(self, ctx, arguments, model, {})
        return None if params is None else Value(Kind.INSTANCE, op=TRAINER, items=((OWN_OPTIMIZER, params),))
    if method in _MODEL_HANDING_METHODS:
        model = args[0] if args else kwargs.get("model", UNKNOWN)
        return model.with_(kind=Kind.MODULE) if model.kind is Kind.ANY else model  # a model, by contract
    if method == OPTIMIZER_CLASS_GETTER:
        return optimizer_class_and_kwargs()
    return None


# `Trainer.get_optimizer_cls_and_kwargs(args)`, the static method LLaVA-style `create_optimizer`
# overrides build their optimizer from (`optimizer_cls(groups, **optimizer_kwargs)`): the class
# `args.optim` names and its keywords. Every class it can name (transformers 4.29-4.46 trainer.py:
# torch's AdamW for the default "adamw_torch", transformers' AdamW, Adafactor, bitsandbytes' 8-bit and
# paged AdamW, ...) updates the parameters it is given, keeping no fp32 copies of them.
OPTIMIZER_CLASS_GETTER = "get_optimizer_cls_and_kwargs"
_DEFAULT_OPTIMIZER = "torch.optim.AdamW"


def optimizer_class_and_kwargs() -> Value:
    return Value(Kind.ANY, payload=(dotted(_DEFAULT_OPTIMIZER), UNKNOWN))


def stored_by_init(args: list[Value], kwargs: dict[str, Value]) -> dict[str, Value]:
    """What `Trainer.__init__(model, args, ...)` stores for a subclass's methods (`self.model`,
    `self.args`, `self.optimizer`): the model and the training arguments given, as given, and no
    optimizer unless `optimizers=` gives one."""
    stored = {"model": model_of(args, kwargs), "optimizer": UNKNOWN if "optimizers" in kwargs else const(None)}
    arguments = trainer_arguments(args, kwargs)
    if arguments is not None:
        stored["args"] = arguments
    return {name: value for name, value in stored.items() if value != UNKNOWN}


def own_optimizer_params(trainer: Value) -> Value | None:
    """The half parameters the Trainer built at a call updates with its own optimizer, if any."""
    return trainer.item(OWN_OPTIMIZER) if trainer.op == TRAINER or isinstance(trainer.payload, Definition) else None


# How the Trainer runs `compute_loss` under fp16/bf16 (read in the wheels of transformers 4.29.2,
# 4.30.1, 4.31.0, 4.34.1 and 4.35.0, `Trainer.__init__` and `autocast_smart_context_manager`): 4.29 sets
# `use_cuda_amp` (the default half-precision backend), so `compute_loss_context_manager` enters
# `torch.cuda.amp.autocast(dtype=amp_dtype)` around `compute_loss`, and runs the model as it is. From
# 4.30 the model is prepared by accelerate under the mixed precision `TrainingArguments` sets (forward
# under autocast, fp32 outputs), and `use_cuda_amp` is set only under fairscale's `sharded_ddp` (gone
# in 4.35): the context manager enters nothing on a GPU.
ACCELERATE_RUNS_AMP_SINCE: Version = (4, 30, 0)


# The methods a trainer calls with the model it prepared, each from the one before (`compute_loss`
# first): where a subclass overrides one, its code is entered there with that model. transformers
# `Trainer.compute_loss(model, inputs)`; TRL's preference trainers (DPO, KTO, ORPO, CPO in trl 0.x:
# `compute_loss` → `get_batch_loss_metrics(model, batch)` → `concatenated_forward(model, batch)`);
# `GRPOTrainer` (`compute_loss` → `_compute_loss(model, inputs)` → `_get_per_token_logps(model, ...)`,
# `_get_per_token_logps_and_entropies` in trl 1.x). Read in trl 0.19 and 1.16's `dpo_trainer.py` and
# `grpo_trainer.py`.
_MODEL_ENTRIES = {
    **dict.fromkeys(
        ("DPOTrainer", "KTOTrainer", "ORPOTrainer", "CPOTrainer"),
        ("compute_loss", "get_batch_loss_metrics", "concatenated_forward"),
    ),
    "GRPOTrainer": ("compute_loss", "_compute_loss", "_get_per_token_logps", "_get_per_token_logps_and_entropies"),
}


def _model_entry(definition: Definition, base: str) -> Definition | None:
    """The first method of the trainer's chain (`_MODEL_ENTRIES`) that `definition` overrides."""
    for name in _MODEL_ENTRIES.get(base.rpartition(".")[2], ("compute_loss",)):
        method = definition.method(name)
        if method is not None:
            return method
    return None


# The Trainer methods that build its optimizer, which a subclass may override.
_OPTIMIZER_FACTORIES = ("create_optimizer", "create_optimizer_and_scheduler")


def _runs_trainer_init(definition: Definition) -> bool:
    """Whether building an instance of the subclass runs the Trainer's `__init__`: the subclass defines
    none, or its own calls `super().__init__(...)`. TRL's `PPOTrainer` (trl 0.11-0.14) and its copies
    never do: they build their optimizer by calling `create_optimizer_and_scheduler` themselves."""
    init = definition.method("__init__")
    return init is None or any(
        type(node) is cst.Call and type(node.func) is cst.Attribute and node.func.attr.value == "__init__"
        for node in walk(init.function)
    )


def subclass_trainer(
    self: Interpreter,
    node: cst.Call,
    ctx: Context,
    definition: Definition,
    base: str,
    instance: Value,
    args: list[Value],
    kwargs: dict[str, Value],
) -> Value:
    """`MyTrainer(model=model, args=training_args)` with `MyTrainer(Trainer)` linted (`base` the
    framework's class): as `trainer`, and its override of `compute_loss` (or of a method the base
    trainer calls from there, `_MODEL_ENTRIES`) runs on the model as the Trainer prepares it
    (`_training_model`); without one, the Trainer's own `compute_loss` runs the model's forward.
    The model it trains is the one its own `__init__` handed the Trainer's (TRL-style trainers load it
    there from a name), else the one it is given."""
    model = instance.item("model") or model_of(args, kwargs)
    built = trainer(self, node, ctx, args, kwargs, model)
    if built.item(OWN_OPTIMIZER) is not None and _runs_trainer_init(definition):
        overridden = next(filter(None, map(definition.method, _OPTIMIZER_FACTORIES)), None)
        if overridden is None:
            instance = instance.with_(items=(*instance.items, *built.items))
        else:  # the subclass builds the optimizer its own way, over the same model, where the Trainer would
            self.call_definition(overridden, [], {}, None, receiver=instance)
    override = _model_entry(definition, base)
    if override is None:
        _default_step(self, node, ctx, args, kwargs, model)
    elif override.owner is not None and override.owner.path in self.modules:
        prepared, region = _training_model(self, node, ctx, args, kwargs, model)
        self.call_definition(override, [prepared, UNKNOWN], {}, region, receiver=instance)
    return instance


def trainer_by_name(
    self: Interpreter, node: cst.Call, ctx: Context, args: list[Value], kwargs: dict[str, Value]
) -> Value:
    """`Trainer(model=model, args=training_args)`, the class by name: `trainer`, and its own
    `compute_loss` run on the model it is given (`_default_step`)."""
    built = trainer(self, node, ctx, args, kwargs)
    _default_step(self, node, ctx, args, kwargs, model_of(args, kwargs))
    return built


def _default_step(
    self: Interpreter, node: cst.Call, ctx: Context, args: list[Value], kwargs: dict[str, Value], model: Value
) -> None:
    """The Trainer's own `compute_loss` (`outputs = model(**inputs)`) on a model of the linted code:
    its forward, on the model as the Trainer prepared it, with a batch of unknown keys."""
    definition = model.payload if model.kind is Kind.MODULE else None
    if not isinstance(definition, Definition) or definition.method("forward") is None:
        return
    prepared, region = _training_model(self, node, ctx, args, kwargs, model)
    self.forward(prepared, [], {SPREAD: UNKNOWN}, replace(ctx, region=region))


def _training_model(
    self: Interpreter, node: cst.Call, ctx: Context, args: list[Value], kwargs: dict[str, Value], model: Value
) -> tuple[Value, Region | None]:
    """The model `compute_loss` is handed, and the autocast region around it, by the precision the
    trainer's arguments (or its launch) ask for: DeepSpeed's engine in the half dtype, no region; or
    the model accelerate prepared, under a region whose state depends on the transformers version
    the repository pins (entered around `compute_loss` before 4.30, where the model runs as it is)."""
    arguments = trainer_arguments(args, kwargs)
    precision = precision_of(arguments)
    launch = accelerate.launch_config(self, ctx)
    launched_on_deepspeed = launch is not None and launch.deepspeed
    if launch is not None and launched_on_deepspeed:
        precision = precision or launch.precision  # the launch's mixed precision, where the arguments set none
    asked_by_arguments = arguments is not None and arguments.op in DEEPSPEED_ARGUMENTS.values()
    if (asked_by_arguments or launched_on_deepspeed) and precision is not None and precision.is_low:
        # The Trainer hands the model to DeepSpeed (accelerate's `_prepare_deepspeed`), as its arguments
        # or its launch configuration ask: the engine runs the weights in the half dtype and enters no
        # autocast, so outputs are half.
        how = f"made {precision.value} by the Trainer's DeepSpeed engine"
        if launch is not None and not asked_by_arguments:
            how += f" (accelerate launch config {launch.name})"
        engine = self.cast(model, precision, node, ctx, how=how)
        if model.kind is not Kind.MODULE:
            # A model not seen loaded (TRL-style trainers load it from a name in their own code): as
            # an Auto class loads it from that name.
            module = engine.with_(kind=Kind.MODULE)
            engine = causal_lm.loaded(self, causal_lm.AUTO_LOAD, ctx.scope.module.path, module, model)
        return engine, None
    version = causal_lm.pinned_transformers(self, ctx.scope.module.path)
    if version is not None and version < ACCELERATE_RUNS_AMP_SINCE:
        prepared = model  # run as it is, under the autocast around `compute_loss`
        entered = True if precision is not None else None
    else:
        prepared = accelerate.prepared(model, precision, node, ctx)
        entered = None if version is None else False  # unpinned: the transformers that runs is not known
    return prepared, Region("cuda", precision or Precision.HALF, entered, ctx.scope.module.path, node)
