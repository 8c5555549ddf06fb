"""DeepSpeed, as far as precision goes: what `deepspeed.initialize` does to a model and an optimizer.

Read from deepspeed 0.18.3 (`pip download deepspeed==0.18.3`):
- `deepspeed/__init__.py` `initialize(args, model, optimizer, model_parameters, ..., config,
  config_params)` returns `(engine, engine.optimizer, engine.training_dataloader,
  engine.lr_scheduler)`; `config_params` is `config`'s old name, and without either the config is
  the JSON file `args.deepspeed_config` names.
- `runtime/config_utils.py` `DeepSpeedConfigModel`: the sections are pydantic models in lax mode, so
  `"enabled": "true"` is on (`"false"` off), and an `"auto"` value is dropped before validation.
- `runtime/engine.py` `_configure_distributed_model`: `fp16.enabled` -> `self.module.half()`,
  else `bf16.enabled` (or the old key `bfloat16`, `runtime/precision_config.py`) ->
  `self.module.bfloat16()`, else the module is left as it is. The engine's forward is the module's.
- `runtime/engine.py` `_configure_optimizer`: with fp16 or bf16 on, a client optimizer is wrapped
  (FP16_Optimizer, BF16_Optimizer, or ZeRO's), each of which steps fp32 copies of the weights;
  `engine.backward` scales fp16 losses (`runtime/fp16/loss_scaler.py`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.scopes import Context
from mplint.analysis.values import NOT_GIVEN, UNKNOWN, Kind, Precision, Value, alternatives
from mplint.repository import repository_root

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

INITIALIZE = "deepspeed.initialize"
# `parser = deepspeed.add_config_arguments(parser)` returns the parser it was given with these options
# and defaults added (`_add_core_arguments`: `--deepspeed` is a `store_true` flag).
ADD_CONFIG_ARGUMENTS = "deepspeed.add_config_arguments"
CONFIG_ARGUMENTS = (
    ("--deepspeed", False),
    ("--deepspeed_config", None),
    ("--deepscale", False),
    ("--deepscale_config", None),
)
# `initialize`'s positional parameters, in order, as far as precision needs them.
POSITIONAL = ("args", "model", "optimizer")
CONFIG_KEYWORDS = ("config", "config_params")
# The options of `add_config_arguments` that name the config file when no config is passed in code.
CONFIG_OPTIONS = ("deepspeed_config", "deepscale_config")
# Strings pydantic's lax mode reads as booleans (pydantic 2 `str_to_bool`), as DeepSpeed's sections do.
TRUE_STRINGS = frozenset({"true", "1", "yes", "on", "t", "y"})
FALSE_STRINGS = frozenset({"false", "0", "no", "off", "f", "n"})
# Top-level settings that make a JSON file a DeepSpeed config.
CONFIG_KEYS = ("train_batch_size", "train_micro_batch_size_per_gpu", "zero_optimization", "fp16", "bf16")
# Sections of the config that turn a half dtype on, in the order the engine tests them.
HALF_SECTIONS = (("fp16", Precision.FP16), ("bf16", Precision.BF16), ("bfloat16", Precision.BF16))

# A config as Python data (a JSON file) or as the analysis' dict value.
Config = dict[str, object] | Value


def initialize(self: Interpreter, node: cst.Call, ctx: Context, args: list[Value], kwargs: dict[str, Value]) -> Value:
    """`engine, optimizer, dataloader, scheduler = deepspeed.initialize(...)`: the engine is the model
    cast to the config's half dtype (unchanged under an fp32 config; under an unknown config, known
    only when the model is half already); a client optimizer gets fp32 master weights unless the
    config is known to leave fp16/bf16 off; `engine.backward` scales the loss."""
    path = ctx.scope.module.path
    self.note_loss_scaling(path)
    given = given_config(args, kwargs)
    config, file = config_of(self, given, path)
    precision = precision_of(config)
    source = _shown(file, precision, given.const if given is not None else None)
    if precision is None and given is not None and given.op == NOT_GIVEN:
        # `initialize(args=args)` with `--deepspeed_config` given by no launch command: as written it
        # cannot start (`deepspeed/__init__.py` asserts a config), so it runs with one of the repository's.
        precision, source = reachable_precision(self, self.entry or path)
    model = argument("model", args, kwargs) or UNKNOWN
    optimizer = argument("optimizer", args, kwargs)
    if optimizer is not None and isinstance(optimizer.payload, cst.Call) and precision is not Precision.FP32:
        self.give_master_weights([optimizer.payload])
    if precision is not None and precision.is_low:
        how = f"made {precision.value} by deepspeed.initialize" + (f" with {source}" if source else "")
        engine = self.cast(model, precision, node, ctx, how=how)
    elif precision is Precision.FP32 or model.precision.is_low:
        engine = model
    else:
        engine = model.with_(precision=Precision.UNKNOWN, origin=None)
    return Value(Kind.ANY, payload=(engine, UNKNOWN, UNKNOWN, UNKNOWN))


def argument(name: str, args: list[Value], kwargs: dict[str, Value]) -> Value | None:
    """`initialize`'s argument `name`, passed by keyword or by position."""
    if name in kwargs:
        return kwargs[name]
    index = POSITIONAL.index(name) if name in POSITIONAL else len(args)
    return args[index] if index < len(args) else None


def given_config(args: list[Value], kwargs: dict[str, Value]) -> Value | None:
    """The config `initialize` is given: `config=` (or its old name) in code, else the file
    `args.deepspeed_config` names (the launch commands' value, or NOT_GIVEN); None when neither."""
    value = next((kwargs[keyword] for keyword in CONFIG_KEYWORDS if keyword in kwargs), None)
    parsed = argument("args", args, kwargs)
    if value is None and parsed is not None and parsed.kind is Kind.DICT:
        value = next((found for option in CONFIG_OPTIONS if (found := parsed.item(option)) is not None), None)
    return value


def config_of(self: Interpreter, value: Value | None, script: str) -> tuple[Config | None, str | None]:
    """The config `initialize` reads from what it is given: a dict built in code, or a JSON file named
    by a string (with the file's path)."""
    if value is None:
        return None, None
    if value.kind is Kind.DICT:
        return value, None
    found = self.read_config_file(value.const, script) if isinstance(value.const, str) else None
    if found is None or not isinstance(found[1], dict):
        return None, None
    return found[1], found[0]


def _shown(path: str | None, precision: Precision | None, name: object) -> str | None:
    """A config file as a message names it: as written (`name`, else its path), with the line of the
    section that turns the engine's half precision on (`ds_config.json:2`)."""
    if path is None:
        return None
    shown = name if isinstance(name, str) else path
    line = _enabling_line(path, precision)
    return f"{shown}:{line}" if line is not None else shown


def _enabling_line(path: str, precision: Precision | None) -> int | None:
    """The line of the JSON file at `path` that opens the section turning `precision` on."""
    from mplint.analysis.frameworks.accelerate_launch import LARGEST_TEXT, read_text  # it imports this module

    sections = tuple(f'"{section}"' for section, half in HALF_SECTIONS if half is precision)
    text = read_text(path, LARGEST_TEXT) if sections else None
    for number, line in enumerate((text or "").splitlines(), start=1):
        if any(section in line for section in sections):
            return number
    return None


def reachable_precision(self: Interpreter, script: str) -> tuple[Precision | None, str | None]:
    """What the config a script that needs `--deepspeed_config` runs with makes of the engine, when
    the repository's DeepSpeed configs it can reach (`accelerate_launch.reachable_json`) agree on it
    (EAGLE's main_deepspeed.py beside its one ds_config.json; HALF where each turns fp16 or bf16 on),
    with the configs' names from the repository's root; None when there are none or they differ."""
    from mplint.analysis.frameworks.accelerate_launch import reachable_json  # it imports this

    found = [(path, data) for path, data in reachable_json(script, self.index.root) if _is_config(data)]
    self.data_files.update(path for path, _ in found)
    joined: Precision | None = None
    for precision in (precision_of(data) for _, data in found):
        if precision is None:
            return None, None
        joined = precision if joined is None else joined.join(precision)
    if joined is None or joined is Precision.UNKNOWN:
        return None, None
    root = repository_root(script, self.index.root)
    return joined, " or ".join(_shown(path, joined, os.path.relpath(path, root)) or path for path, _ in found)


def _is_config(data: dict[str, object]) -> bool:
    """A DeepSpeed config, by the settings every one of them gives (a batch size, a ZeRO section, precision)."""
    return any(key in data for key in CONFIG_KEYS)


def precision_of(config: Config | None) -> Precision | None:
    """FP16 or BF16 when the config turns it on, FP32 when it leaves both off, None when unknown. A
    config built on several paths (`if args.bf16: ds_config["bf16"] = ... else: ds_config["fp16"] =
    ...`) is what every path's is: HALF ("bfloat16 or float16") where each turns one of them on."""
    if config is None:
        return None
    if isinstance(config, Value) and len(alternatives(config)) > 1:
        first, *others = alternatives(config)
        joined = precision_of(first)
        for other in map(precision_of, others):
            joined = None if joined is None or other is None else joined.join(other)
        return None if joined is Precision.UNKNOWN else joined
    for section, precision in HALF_SECTIONS:
        enabled = _enabled(_item(config, section))
        if enabled is None:
            return None
        if enabled:
            return precision
    return Precision.FP32


def _item(config: Config, key: str) -> Config | None | bool:
    """`config[key]`; False when the config has no such key, None when the key's value is unknown."""
    if isinstance(config, dict):
        found = config.get(key, False)
        return found if isinstance(found, (dict, bool)) else _boolean(found)
    if config.kind is not Kind.DICT:
        return None
    item = config.item(key)
    if item is None:
        return False
    if item.kind is Kind.DICT:
        return item
    return item.const if isinstance(item.const, bool) else _boolean(item.const)


def _boolean(written: object) -> bool | None:
    """A value pydantic's lax mode reads as a boolean (`"true"`, `1`); None otherwise (`"auto"`)."""
    if isinstance(written, int) and written in (0, 1):
        return bool(written)
    text = written.lower() if isinstance(written, str) else None
    return True if text in TRUE_STRINGS else False if text in FALSE_STRINGS else None


def _enabled(section: Config | None | bool) -> bool | None:
    """Whether a `"fp16": {"enabled": ...}` section is on: absent is off, `"auto"` is unknown."""
    if section is None or isinstance(section, bool):
        return section
    enabled = _item(section, "enabled")
    return enabled if isinstance(enabled, bool) else None
