"""The configuration that runs by default: a test whose value is known from constants (`if
args.amp:` with `default=True`) takes its branch alone, comparisons and `and`/`or` of known
constants fold, and argparse's `parse_args()` is the namespace of its options' defaults (what runs
when the script is started with no options). A parameter no caller passes takes its default
(`summaries.parameter_value`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import libcst as cst

from mplint import tree
from mplint.analysis import torch_api as api
from mplint.analysis.frameworks import read_json_config
from mplint.analysis.launch_options import (
    MOST_ALTERNATIVES,
    POSITIONAL_CONFIG,
    LaunchOptions,
    Written,
    choice_alternatives,
    function_options,
    options_of,
    repository_commands_give,
    typed,
)
from mplint.analysis.scopes import Context
from mplint.analysis.values import BOOLEAN, NOT_GIVEN, UNKNOWN, Kind, Precision, Value, const, is_none, join

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter
    from mplint.analysis.summaries import Definition


def eval_comparison(self: Interpreter, node: cst.Comparison, ctx: Context) -> Value:
    """A comparison of known constants (`args.dtype == "float16"`, `"cuda" in args.device`,
    `args.dtype in ["bf16", "bfloat16"]`) is known in the configuration that runs, and so is one of
    known dtypes (`logits.dtype == torch.float16` for bf16 logits); anything else is unknown."""
    left = self.eval(node.left, ctx)
    outcome: bool | None = True
    of_the_run = False
    for target in node.comparisons:
        right = self.eval(target.comparator, ctx)
        first, second = _comparable(left), _comparable(right)
        members = _members(right) if type(target.operator) in (cst.In, cst.NotIn) and first is not _UNKNOWN else None
        if members is not None:
            compared: bool | None = (first in members) is isinstance(target.operator, cst.In)
        elif type(target.operator) in (cst.Is, cst.IsNot) and _made_and_none(left, right):
            # `if optimizer is None:` after a chain of branches that each built one: a fact of the run.
            compared, of_the_run = isinstance(target.operator, cst.IsNot), True
        elif first is _UNKNOWN or second is _UNKNOWN:
            compared = None
        else:
            compared = _compare(target.operator, first, second)
        of_the_run = of_the_run or isinstance(first, Precision) or isinstance(second, Precision)
        outcome = None if compared is None or outcome is None else outcome and compared
        left = right
    if outcome is None:
        return Value(Kind.ANY, op=BOOLEAN)
    # A test of a tensor's dtype, or of whether an object was made, is a fact of the run, not an
    # option: no other path to read aside.
    return const(outcome).with_(op=DTYPE_TEST) if of_the_run else const(outcome)


def eval_boolean(self: Interpreter, node: cst.BooleanOperation, ctx: Context) -> Value:
    """`a and b` / `a or b`: Python's value where the left side's truth is known, else a join; but
    false where `b` is a false flag after `and` (timm's `if args.distributed and args.sync_bn:`), and
    true where it is a true one after `or`, whatever `a` is."""
    left = self.eval(node.left, ctx)
    truth = truth_value(left)
    right = self.eval(node.right, ctx)
    if truth is None:
        if isinstance(right.const, bool) and right.const is isinstance(node.operator, cst.Or):
            return right
        return join(left, right)
    decided = truth if isinstance(node.operator, cst.Or) else not truth
    return left if decided else right


def argument_parser(
    self: Interpreter, parser: Value, method: str, args: list[Value], kwargs: dict[str, Value]
) -> Value:
    """argparse: `add_argument` records an option's default (the value the repository's launch
    commands all give it, else the one in code); `parse_args()` is the namespace of defaults (what
    runs when the script is started as the repository starts it, or plainly)."""
    defaults = self.option_defaults.setdefault(parser.identity, {})
    if method in ("add_argument_group", "add_mutually_exclusive_group"):
        return parser  # a group's options are the parser's (`training_parser.add_argument("--bf16", ...)`)
    if method == "add_argument":
        dest = _option_dest([arg.const for arg in args], kwargs.get("dest", UNKNOWN).const)
        if dest is not None:
            action = kwargs.get("action", UNKNOWN).const
            implied = {"store_true": const(False), "store_false": const(True)}.get(str(action))
            default = kwargs.get("default", implied or const(None))
            if is_none(default):
                default = default.with_(op=NOT_GIVEN)  # `--fused_optimizer_groups` not given: false
            like = _TYPED_LIKE.get(kwargs.get("type", UNKNOWN).name or "", default.const)
            defaults[dest] = launched_default(self, dest, default, like)
            choices = _members(kwargs.get("choices", UNKNOWN))
            if "choices" not in kwargs and "action" not in kwargs:
                choices = _dtype_names(dest, kwargs.get("type"))
            flag = next((arg.const for arg in args if isinstance(arg.const, str) and arg.const.startswith("--")), None)
            if choices and flag is not None:
                _note_choices(self, flag, dest, defaults[dest].const, choices)
        return UNKNOWN
    if method in ("parse_args", "parse_known_args"):
        namespace = Value(Kind.DICT, op=NAMESPACE, items=tuple(sorted(defaults.items())))
        return namespace if method == "parse_args" else Value(Kind.ANY, payload=(namespace, UNKNOWN))
    return UNKNOWN


def _note_choices(self: Interpreter, flag: str, dest: str, default: object, choices: tuple[object, ...]) -> None:
    """The choices of low precision an option lists (`--precision` with `choices=["amp", "pure_bf16",
    ...]`), other than the one that runs: each a configuration of the script read afterwards
    (`model.analyze`), as a launch command giving it would be."""
    script = self.entry
    if script is None or self.condition is not None:
        return  # a run under another configuration already, or a branch the default skips
    if default is None and "dtype" not in dest.lower():
        # No setting of its own by default (diffusers' `--mixed_precision`: accelerate's config
        # decides): its choices are the launcher's configurations, not the script's. Each would be
        # a run of the whole unit (diffusers' examples: +60% CPU for no finding). A dtype's None
        # is the weights as built or saved (timm's `--model-dtype`, `--torch_dtype`).
        return
    launched_options(self)
    for condition, options in choice_alternatives(flag, dest, default, choices, self.launch_options[script]):
        self.option_alternatives.setdefault((script, condition), options)


def _dtype_names(dest: str, kind: Value | None) -> tuple[object, ...] | None:
    """The choice an option naming a dtype with no `choices` of its own documents besides its
    default: a dtype's name, as `getattr(torch, args.model_dtype)` and `torch_dtype=` read it
    (timm's `--model-dtype`, default None for "float32" and checked by an `assert ... in (...)`)."""
    if "dtype" not in dest.lower() or (kind is not None and kind.name != "str"):
        return None
    return (DTYPE_NAME,)


# The dtype name a dtype option without `choices` is read as given (bf16: the half dtype of training).
DTYPE_NAME = "bfloat16"
# What an option's `type=` makes of the text a command gives (typed as a value like this one).
_TYPED_LIKE: dict[str, object] = {"int": 0, "float": 0.0, "str": ""}


def launched_default(self: Interpreter, dest: str, default: Value, like: object, *, config_file: bool = False) -> Value:
    """An option's default where the script runs: the value all the repository's launch commands
    give it (`--bf16 True`; with `config_file`, over the settings of the YAML file each names with
    `--config`), typed like `like`; else `default`, as written in code."""
    written = launched_options(self, config_file=config_file).get(dest)
    value = typed(written, like) if written is not None else None
    return const(value) if value is not None else default


def launched_options(self: Interpreter, *, config_file: bool = False) -> dict[str, Written]:
    """The options the launch commands of the script under way agree on (`launch_options`), or
    those one command gives it in a run under that command (`model.analyze`), as a parser reading
    the `--config` file of each sees them where `config_file`; the files read to tell are the unit's
    dependencies, the commands that disagree on precision its alternatives."""
    script = self.entry
    if script is None:
        return {}
    found = self.launch_options.get(script)
    if found is None:
        found = self.launch_options[script] = options_of(script, self.index.root)
        self.data_files.update(found.read)
        for condition, options in found.alternatives:
            self.option_alternatives.setdefault((script, condition), options)
    return found.configured if config_file else found.options


def launched_commands(self: Interpreter) -> tuple[dict[str, Written], ...]:
    """The options of each launch command of the script under way (Hydra composes a config per
    command), or of the one command a run is under (`model.analyze`); none for a script no command
    starts."""
    launched_options(self)
    found = self.launch_options.get(self.entry) if self.entry is not None else None
    return found.commands if found is not None else ()


def may_launch_with(self: Interpreter, dests: frozenset[str]) -> bool:
    """Whether the script under way may run with one of the options `dests` (`--deepspeed`) given:
    a command that starts it gives one (LLaVA's give `zero2.json` or `zero3.json`, so no value is
    agreed), or none starts it while one gives another script such an option (LLaVA's `train.py`,
    whose `train()` its commands run through `train_mem.py`)."""
    script = self.entry
    if script is None:
        return False
    commands = launched_commands(self)
    if commands:
        return any(dests.intersection(options) for options in commands)
    given, read = repository_commands_give(script, self.index.root, dests)
    self.data_files.update(read)
    return given


def started_without_config_file(self: Interpreter) -> bool:
    """Whether the script under way is started by launch commands of its repository, none of which
    names a `--config` file (TRL's `parse_args_and_config` then reads the options alone)."""
    launched_options(self)
    found = self.launch_options.get(self.entry) if self.entry is not None else None
    return found is not None and found.without_config_file


def launched_argv(self: Interpreter) -> Value:
    """`sys.argv` of the script under way: `[script]` where no command of its repository starts it
    (started plainly), `[script, file]` where every command gives it one config file and nothing else
    (`python run_clm.py recipe.json`); else unknown."""
    script = self.entry
    if script is None:
        return UNKNOWN
    launched_options(self)
    found = self.launch_options[script]
    if not found.commands:
        words: tuple[str, ...] = (script,)
    else:
        files = {options.get(POSITIONAL_CONFIG) if len(options) == 1 else None for options in found.commands}
        file = files.pop() if len(files) == 1 else None
        if not isinstance(file, str):
            return UNKNOWN
        words = (script, file)
    return Value(Kind.ANY, payload=tuple(const(word) for word in words))


def command_arguments(self: Interpreter, definition: Definition) -> dict[str, Value]:
    """The keyword arguments the repository's commands give a function they run with their command
    line as its arguments (a console script's jsonargparse `CLI`, `launch_options.function_options`):
    the parameters all its commands set alike, each read as YAML reads it, as jsonargparse does
    (`--devices 4` an int); or those one command sets in a run under that command (`model.analyze`).
    The commands that disagree on precision are that run's alternatives, the files read to tell the
    unit's dependencies."""
    if definition.owner is not None or not isinstance(definition.node, cst.FunctionDef):
        return {}
    key = f"{definition.path}:{definition.name}"
    found = self.launch_options.get(key)
    parameters = definition.node.params
    if found is None:
        found = function_options(definition.path, definition.name, self.index.root)
        alternatives = () if found is None else (*found.alternatives, *_parameter_choices(definition.node, found))
        found = self.launch_options[key] = found or LaunchOptions({}, ())
        self.data_files.update(found.read)
        for condition, options in alternatives:
            self.option_alternatives.setdefault((key, condition), options)
    names = {param.name.value for param in (*parameters.params, *parameters.kwonly_params)}
    # A flag given alone (`--flag`) is no value jsonargparse takes: unknown, the default stands.
    return {
        name: const(_yaml_scalar(written))
        for name, written in found.configured.items()
        if name in names and isinstance(written, str)
    }


def _parameter_choices(function: cst.FunctionDef, launched: LaunchOptions) -> tuple[tuple[str, LaunchOptions], ...]:
    """The configurations a function its commands run with their command line as its arguments
    documents besides its defaults: the choices of low precision of a parameter of precision, as its
    annotation lists them (`precision: Literal["bf16-true", "bf16-mixed", "32-true", None] = None`,
    which jsonargparse checks) or its docstring does (`precision: ... Possible choices: "bf16-true",
    "bf16-mixed", "32-true".`, litgpt's finetuning scripts), each a run of the unit with it given."""
    docstring = function.get_docstring() or ""
    found: list[tuple[str, LaunchOptions]] = []
    for param in (*function.params.params, *function.params.kwonly_params):
        name = param.name.value
        choices = _literal_choices(param.annotation) or _documented_choices(docstring, name)
        default = param.default.evaluated_value if isinstance(param.default, cst.SimpleString) else None
        found.extend(choice_alternatives(f"--{name}", name, default, choices, launched) if choices else ())
    return tuple(found[:MOST_ALTERNATIVES])


def _literal_choices(annotation: cst.Annotation | None) -> tuple[str, ...]:
    """The strings a `Literal[...]` in an annotation lists (inside `Optional[...]` too)."""
    if annotation is None:
        return ()
    return tuple(
        element.slice.value.evaluated_value
        for node in tree.walk(annotation.annotation)
        if isinstance(node, cst.Subscript) and _names_literal(node.value)
        for element in node.slice
        if isinstance(element.slice, cst.Index)
        and isinstance(element.slice.value, cst.SimpleString)
        and isinstance(element.slice.value.evaluated_value, str)
    )


def _names_literal(node: cst.BaseExpression) -> bool:
    """`Literal` or `typing.Literal`."""
    name = node.attr if isinstance(node, cst.Attribute) else node
    return isinstance(name, cst.Name) and name.value == "Literal"


# A parameter's entry in a Google-style docstring and the quoted choices it lists after "choices".
_QUOTED = r"""(?:"[^"\n]+"|'[^'\n]+')"""
_DOCUMENTED_CHOICES = re.compile(rf"choices\W*?:?\s*((?:{_QUOTED}\s*,?\s*(?:or\s+)?)+)", re.IGNORECASE)


def _documented_choices(docstring: str, name: str) -> tuple[str, ...]:
    """The quoted choices the docstring's entry for parameter `name` lists (`name: ... Possible
    choices: "a", "b".`), its entry running to the next line that starts another entry."""
    entry = re.search(rf"^\s*{re.escape(name)}\b[^:\n]*:(.*(?:\n(?!\s*\w+\b[^:\n]*:).*)*)", docstring, re.MULTILINE)
    listed = _DOCUMENTED_CHOICES.search(entry.group(1)) if entry else None
    return tuple(quoted[1:-1] for quoted in re.findall(_QUOTED, listed.group(1))) if listed else ()


def config_file(self: Interpreter, name: str, script: str) -> Value:
    """The data of the config file `name` a script at `script` reads, as a record whose keys read as
    items and as attributes (`cfg["dtype"]`, `cfg.training.dtype`); unknown when it cannot be read."""
    found = read_json_config(name, script)
    if found is None:
        return UNKNOWN
    path, data = found
    self.data_files.add(path)
    return data_value(data, yaml=path.endswith((".yaml", ".yml")))


def data_value(data: object, *, yaml: bool) -> Value:
    """A config's data (a mapping read from a file, or `hydra.decorated_config`'s) as a value; YAML's
    scalars arrive as written and are read as YAML reads them, JSON's are typed already (its string
    "no" stays a string)."""
    if isinstance(data, dict):
        items = tuple(sorted((str(key), data_value(value, yaml=yaml)) for key, value in data.items()))
        return Value(Kind.DICT, op=NAMESPACE, items=items)
    if isinstance(data, str) and yaml:
        return const(_yaml_scalar(data))
    if isinstance(data, (bool, int, float, str)) or data is None:
        return const(data)
    return UNKNOWN


def _yaml_scalar(text: str) -> object:
    """A scalar as YAML 1.1 reads it (`true`, `no`, `1e-5`, `bfloat16`)."""
    word = text.strip().lower()
    if word in ("true", "yes", "on"):
        return True
    if word in ("false", "no", "off"):
        return False
    if word in ("null", "~"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


# Markers (`Value.op`) of an argparse parser and of the namespace its `parse_args()` returns, and
# of the outcome of a comparison of dtypes.
PARSER, NAMESPACE = "argparse.ArgumentParser", "argparse.Namespace"
DTYPE_TEST = "a dtype test"


def _members(value: Value) -> tuple[object, ...] | None:
    """The elements of a list/tuple/set literal of known constants or dtypes, else None."""
    elements = value.payload if value.kind is Kind.ANY and isinstance(value.payload, tuple) else None
    if elements is None:
        return None
    found = tuple(_comparable(element) if isinstance(element, Value) else _UNKNOWN for element in elements)
    return None if _UNKNOWN in found else found


_UNKNOWN = object()
# Dtypes whose identity is known (`torch.float16`; not "bf16 or fp16").
_EXACT_DTYPES = frozenset({Precision.FP64, Precision.FP32, Precision.BF16, Precision.FP16})


def _comparable(value: Value) -> object:
    """What a comparison compares a value as: a known constant, a known dtype, else `_UNKNOWN`."""
    if _known(value):
        return value.const
    if value.kind is Kind.DTYPE and value.precision in _EXACT_DTYPES:
        return value.precision
    return _UNKNOWN


# Objects the analysis saw made: never None.
_MADE = frozenset(
    {Kind.TENSOR, Kind.MODULE, Kind.PARAMS, Kind.SCALER, Kind.OPTIMIZER, Kind.INSTANCE, Kind.FUNCTION, Kind.CLASS}
)


def _made_and_none(left: Value, right: Value) -> bool:
    """Whether one side is an object the analysis saw made (or a function handed on: `compute_score_func=
    self.compute_dense_score`) and the other the constant None."""
    return (left.kind in _MADE and is_none(right)) or (right.kind in _MADE and is_none(left))


def _known(value: Value) -> bool:
    """A constant whose value is known (not a Python number of unknown value)."""
    return value.kind is Kind.CONST and isinstance(value.payload, (bool, int, float, str, type(None)))


# Identity of constants is taken as equality (`args.amp is True`, `args.resume is None`).
# Substring tests, of strings only (see `_compare`).
_COMPARISONS: dict[type, Callable[[object, object], bool]] = {
    cst.Equal: lambda a, b: a == b,
    cst.NotEqual: lambda a, b: a != b,
    cst.Is: lambda a, b: a == b,
    cst.IsNot: lambda a, b: a != b,
    cst.In: lambda a, b: a in b,  # type: ignore[operator]
    cst.NotIn: lambda a, b: a not in b,  # type: ignore[operator]
}
# Orderings, of numbers only (`devices > 1` with `devices = 1`; a bool is a number, as in Python).
_ORDERINGS: dict[type, Callable[[float, float], bool]] = {
    cst.GreaterThan: lambda a, b: a > b,
    cst.GreaterThanEqual: lambda a, b: a >= b,
    cst.LessThan: lambda a, b: a < b,
    cst.LessThanEqual: lambda a, b: a <= b,
}


def _compare(operator: cst.BaseCompOp, left: object, right: object) -> bool | None:
    """`left <operator> right` for constants: equality, identity and substring tests, and
    orderings of numbers."""
    ordering = _ORDERINGS.get(type(operator))
    if ordering is not None:
        return ordering(left, right) if isinstance(left, (int, float)) and isinstance(right, (int, float)) else None
    if type(operator) in (cst.In, cst.NotIn) and not (isinstance(left, str) and isinstance(right, str)):
        return None
    return _COMPARISONS[type(operator)](left, right)


# Tests that are not a configuration choice: the module's role, type checking, and the machine
# the script is written for (`torch.cuda.is_available()`): their other branch is not a mode of the run.
_NOT_CONFIGURATION = frozenset(
    {"__name__", "TYPE_CHECKING", *map(api.last_part, api.ACCELERATOR_QUERIES | api.LAUNCH_QUERIES)}
)
_LONGEST_CONDITION = 60


def configuration_test(test: cst.BaseExpression) -> str | None:
    """How to name the configuration choice an `if` tests (`args.profile`), or None when the test is
    not one: a literal (`if False:`), or one that reads a name of `_NOT_CONFIGURATION`."""
    # Attributes' names too (`tree.walk` does not step into `.attr`): `torch.cuda.is_available()`.
    names = [
        node.value if isinstance(node, cst.Name) else node.attr.value
        for node in tree.walk(test)
        if isinstance(node, (cst.Name, cst.Attribute))
    ]
    if not names or _NOT_CONFIGURATION.intersection(names) or names[0] in ("True", "False", "None"):
        return None
    text = " ".join(cst.Module([]).code_for_node(test).split())
    return text[: _LONGEST_CONDITION - 3] + "..." if len(text) > _LONGEST_CONDITION else text


def configuration_condition(test: str | None, *, holds: bool) -> str | None:
    """The non-default path a configuration test guards ("`args.profile` is true" when the skipped
    branch runs where the test `holds`), for a test `configuration_test` named."""
    return None if test is None else f"`{test}` is {'true' if holds else 'false'}"


def truth_value(value: Value) -> bool | None:
    """Whether a test is true in the configuration that runs, when its value is a known constant.
    None is not one: `scaler=None` is an optional object a caller passes, not a configuration; but an
    argparse option's None, the option not given, is false (`if args.fused_optimizer_groups:`). A dict
    known to hold items is true (`args.model_init_kwargs or {}`), and so is a dtype (`torch_dtype if
    torch_dtype else None`). So is a module, but a container (`nn.ModuleList` is false when empty):
    `if ref_policy:` over a loaded reference model."""
    if value.kind is Kind.DTYPE:
        return True
    if value.kind is Kind.MODULE:
        built = value.payload if isinstance(value.payload, str) else ""
        return None if api.last_part(built) in api.MODULE_CONTAINERS else True
    if value.kind is Kind.CONST and isinstance(value.payload, (bool, int, float, str)):
        return bool(value.payload)
    if value.op == NOT_GIVEN and value.payload is None:
        return False
    return True if value.kind is Kind.DICT and value.items else None


def _option_dest(flags: list[object], dest: object) -> str | None:
    """The attribute an argparse option is stored in: `dest=`, else the first long flag
    (`--mixed-precision` -> `mixed_precision`), else the positional name."""
    if isinstance(dest, str):
        return dest
    names = [flag for flag in flags if isinstance(flag, str)]
    chosen = next((name for name in names if name.startswith("--")), names[0] if names else None)
    return chosen.lstrip("-").replace("-", "_") if chosen else None
