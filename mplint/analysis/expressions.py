"""The interpreter's expressions: names (imported ones read on first use, conventional and builtin
ones), attributes and items of what the code tracks, literals, arithmetic (Python numbers folded,
tensors promoted), conditional expressions in the configuration that runs, containers and
comprehensions. Calls are `calls`; comparisons and `and`/`or` are `configuration`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, cast

import libcst as cst

from mplint.analysis import registries
from mplint.analysis import torch_api as api
from mplint.analysis.bindings import element_of, listed, literal_values
from mplint.analysis.configuration import NAMESPACE, launched_argv, truth_value
from mplint.analysis.facts import OperationFact, record
from mplint.analysis.file_paths import FILE_PATH, joined, module_file, path_attribute
from mplint.analysis.frameworks import accelerate, ml_collections, yacs
from mplint.analysis.registries import is_registry
from mplint.analysis.scopes import Context, Scope
from mplint.analysis.selections import chosen, combine_params
from mplint.analysis.statements import assumed_truth
from mplint.analysis.submodules import is_normalization, module_class
from mplint.analysis.summaries import Definition, Lambda
from mplint.analysis.values import (
    BOOLEAN,
    BOUND_SELF,
    HALF_BUT_NORMS,
    MIXED,
    PARAMETER_OP,
    UNKNOWN,
    Kind,
    Precision,
    Region,
    Value,
    const,
    dotted,
    group_params,
    is_mixed,
    is_tensor_like,
    join,
    matmul,
    promote,
)
from mplint.tree import string_value

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter


def eval(self: Interpreter, node: cst.BaseExpression, ctx: Context) -> Value:
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
        if isinstance(node.operator, cst.Minus) and isinstance(number, (int, float)) and not isinstance(number, bool):
            return const(-number)
        if isinstance(node.operator, cst.Not):
            truth = truth_value(operand)
            return const(not truth) if truth is not None else UNKNOWN
        return operand
    if type(node) is cst.IfExp:
        taken = truth_value(self.eval(node.test, ctx))
        assumed = assumed_truth(self, ctx, node.test)
        if assumed is not None:
            return self.eval(node.body if assumed else node.orelse, ctx)
        if taken is not None:  # `torch.bfloat16 if bf16 else "auto"` with `bf16=True` by default
            chosen = self.eval(node.body if taken else node.orelse, ctx)
            other = self.eval(node.orelse if taken else node.body, ctx)
            if taken and chosen.const is None and other.const == "cpu" and _asks_for_cuda(self, node.test):
                # `cfg.get("device", "cuda") if torch.cuda.is_available() else "cpu"`: what a script
                # picks where CUDA is available, and not where it is not, is a CUDA device.
                chosen = const("cuda")
            if other == chosen:
                return chosen
            condition = _CODE.code_for_node(node.test)
            return chosen.with_(otherwise=(other, condition if taken else f"not ({condition})"))
        return join(self.eval(node.body, ctx), self.eval(node.orelse, ctx))
    if type(node) in (cst.Tuple, cst.List, cst.Set):
        elements = cast("cst.Tuple | cst.List | cst.Set", node).elements
        return sequence(tuple(listed(self, element.value, ctx) for element in elements))
    if type(node) is cst.Dict:
        return self.eval_dict(node, ctx)
    if type(node) in (cst.ListComp, cst.GeneratorExp, cst.SetComp, cst.DictComp):
        return self.eval_comprehension(cast("cst.ListComp | cst.GeneratorExp | cst.SetComp | cst.DictComp", node), ctx)
    if type(node) is cst.BooleanOperation:
        return self.eval_boolean(node, ctx)
    if type(node) is cst.Comparison:
        return self.eval_comparison(node, ctx)
    if type(node) is cst.NamedExpr:
        value = self.eval(node.value, ctx)
        self.assign(node.target, value, ctx)
        return value
    if type(node) is cst.Lambda:
        return Value(Kind.FUNCTION, payload=Lambda(node, ctx.scope))
    if type(node) is cst.Await:
        return self.eval(node.expression, ctx)
    if type(node) is cst.Yield:
        # `yield F.log_softmax(logits, -1)`, `yield from rollouts(model)`: what is yielded is computed
        # here; the expression itself is what the caller sends back (nothing, to a for loop).
        yielded = node.value.item if isinstance(node.value, cst.From) else node.value
        if yielded is not None:
            self.eval(yielded, ctx)
        return UNKNOWN
    if type(node) is cst.FormattedString:
        for part in node.parts:  # f"{loss.item():.3f}": the calls inside run
            if isinstance(part, cst.FormattedStringExpression):
                self.eval(part.expression, ctx)
        return UNKNOWN
    return UNKNOWN


def eval_name(self: Interpreter, name: str, ctx: Context) -> Value:
    if name in _NAMED_CONSTANTS:
        return const(_NAMED_CONSTANTS[name])
    if name == "__file__":
        return module_file(ctx.scope.module.path)
    value = ctx.scope.lookup(name)
    if value is None and (ctx.scope.module.lazy or ctx.scope.module.top_level is not None):
        value = self.exported(ctx.scope.module.path, name)  # a global of a file read in part
    elif value is None:
        value = self.star_imported(ctx.scope.module, name)
    if value is not None:
        return self.imported(value)
    if name in api.CONVENTIONAL_NAMES:
        return dotted(api.CONVENTIONAL_NAMES[name])
    return dotted(name) if name in BUILTINS else UNKNOWN


def eval_attribute(self: Interpreter, node: cst.Attribute, ctx: Context) -> Value:
    attr = node.attr.value
    if isinstance(node.value, cst.Name):
        tracked = ctx.scope.lookup(f"{node.value.value}.{attr}")
        if tracked is not None:
            return tracked
    base = self.eval(node.value, ctx)
    found = self.attribute_of(base, attr)
    if type(found.payload) in (int, float) and isinstance(node.value, cst.Name) and self.memo.in_progress:
        running = self.memo.in_progress[-1][0]
        if f"{node.value.value}.{attr}" in running.counted_attributes:
            return UNKNOWN  # a count the calls before this one moved on
    if attr.isupper() and found.kind is Kind.ANY and found.payload is None:
        # `self.cfg.TRAINER.COOP.PREC` of a config the analysis did not follow: a yacs default.
        return yacs.default_read(self, node, ctx.scope.module.path) or found
    return found


def _cast_in_part_like(model: Value, submodule: Value) -> Value:
    """A submodule, as built, of a model a loop cast in part without telling which submodules
    (`_cast_in_part`: CLIP's `convert_weights`, `clip_model.visual` read after it): half in part like
    the model, but a normalization layer the loop kept."""
    if submodule.kind is not Kind.MODULE or model.items or not (is_mixed(model) and model.precision.is_low):
        return submodule
    cls = module_class(submodule)
    if model.op == HALF_BUT_NORMS and cls is not None and is_normalization(cls):
        return submodule
    return submodule.with_(precision=model.precision, origin=model.origin, op=model.op, items=())


def attribute_of(self: Interpreter, base: Value, attr: str) -> Value:
    if base.op == FILE_PATH:
        return path_attribute(base, attr) or UNKNOWN
    if base.kind is Kind.NAME:
        if base.name == ml_collections.FLAGS:
            flag = ml_collections.flag_value(self, attr)  # `config = FLAGS.config`: its config file's
            if flag is not None:
                return flag
        full = f"{base.name}.{attr}"
        if full == "sys.argv":
            return launched_argv(self)
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
            return _cast_in_part_like(base, known)
        if attr == "dtype" and base.kind is Kind.MODULE and base.precision.is_low and base.op != MIXED:
            # A model's `dtype` property reads its parameters' (transformers' ModuleUtilsMixin, diffusers'
            # ModelMixin, CLIP's `self.visual.conv1.weight.dtype`): the dtype the model was cast to,
            # which the property's own body, reading the attributes `__init__` built, does not see. A
            # model half but its normalization layers (`convert_weights`) reads half; one half in an
            # unknown part does not.
            return Value(Kind.DTYPE, base.precision)
        method = base.payload.method(attr)
        if method is not None and method.is_property:
            return self.call_definition(method, [], {}, None, receiver=base)[0]
        if method is not None:
            # A bound method (`reward_fn=reward.reward_fn` handed to a trainer that calls it later):
            # the instance it was read from is its `self` wherever it is called (a staticmethod binds none).
            return Value(Kind.FUNCTION, payload=method, items=((BOUND_SELF, base),))
        if attr == "module" and base.kind is Kind.MODULE:
            return base  # `raw_model = model.module if ddp else model`: DDP's wrapped module is the model
        if base.kind is Kind.MODULE and attr in api.PARAMETER_ATTRIBUTES and base.payload.torch_class is not None:
            return _parameter_of(base)  # `class Conv(nn.Conv2d)`: torch's layer holds the weight
        return base.payload.constants.get(attr, UNKNOWN)  # a config class's field default
    if base.kind is Kind.CLASS and isinstance(base.payload, Definition):
        return base.payload.constants.get(attr, UNKNOWN)
    setting = accelerate.setting(base, attr)
    if setting is not None:
        return setting
    if base.kind in (Kind.INSTANCE, Kind.MODULE) and base.item(attr) is not None:
        return base.item(attr) or UNKNOWN  # instances of several classes joined: what all of them hold
    if base.kind is Kind.CONST and attr == "type" and isinstance(base.const, str):
        return const(base.const.split(":")[0])  # `torch.device("cuda:0").type`
    if attr == "dtype" and base.kind in (Kind.TENSOR, Kind.MODULE):
        return Value(Kind.DTYPE, base.precision)
    if base.kind is Kind.MODULE and attr in api.PARAMETER_ATTRIBUTES:
        return _parameter_of(base)
    if base.kind is Kind.MODULE:
        return UNKNOWN if attr in api.MODULE_NON_SUBMODULE_ATTRS else base
    if base.kind is Kind.TENSOR:
        return UNKNOWN if attr in ("shape", "device", "ndim", "is_cuda", "requires_grad") else base
    if base.kind is Kind.DICT and base.op == NAMESPACE:
        return base.item(attr) or UNKNOWN  # `args.amp`: the option's default
    return UNKNOWN


def _parameter_of(module: Value) -> Value:
    """`model.head.weight`: a parameter in the module's dtype; unknown in a model half in part."""
    if is_mixed(module) or module.precision is Precision.UNKNOWN:
        return UNKNOWN
    return Value(Kind.TENSOR, module.precision, origin=module.origin, op=PARAMETER_OP)


def eval_subscript(self: Interpreter, node: cst.Subscript, ctx: Context) -> Value:
    base = self.eval(node.value, ctx)
    keys: list[Value] = []
    bounds: list[Value | None] = []  # of a slice: each bound (None where left out)
    for element in node.slice:
        index = element.slice
        if isinstance(index, cst.Index):
            keys.append(self.eval(index.value, ctx))
        elif isinstance(index, cst.Slice):  # libcst's only other BaseSlice
            bounds = [
                None if bound is None else self.eval(bound, ctx) for bound in (index.lower, index.upper, index.step)
            ]
    key = self.item_key(node, ctx)
    tracked = ctx.scope.lookup(key) if key is not None else None
    if tracked is not None:
        return tracked
    if base.kind in (Kind.TENSOR, Kind.PARAMS) or base.op == BOOLEAN:
        return base
    if is_registry(base) and len(keys) == 1:
        entry = registries.read(self, base, keys[0])
        if entry is not None:
            return entry
    if base.kind is Kind.DICT and len(keys) == 1:
        found = dict_item(base, keys[0])
        index = node.slice[0].slice
        if found.otherwise is None and isinstance(index, cst.Index) and type(index.value) in _CONFIGURATION_READS:
            return configured_alternative(base, keys[0], index.value, found, node)
        return found
    if base.kind is Kind.ANY and isinstance(base.payload, tuple):
        if len(keys) == 1:
            position = keys[0].const
            if isinstance(position, int) and -len(base.payload) <= position < len(base.payload):
                return base.payload[position]
        elif len(node.slice) == 1 and bounds and all(bound is None or type(bound.const) is int for bound in bounds):
            # `parser.parse_args_into_dataclasses(return_remaining_strings=True)[:3]`: the values kept.
            lower, upper, step = (None if bound is None else cast(int, bound.const) for bound in bounds)
            return base.with_(payload=base.payload[lower:upper:step]) if step != 0 else UNKNOWN
    # `losses["loss"]` of what a call under an autocast region returned: its gradients still come from there.
    return UNKNOWN.with_(region=base.region) if base.region is not None else UNKNOWN


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
        other = dict_item(mapping, alternative)
        if other != result and other != UNKNOWN:
            return result.with_(otherwise=(other, condition))
    return result


def configured_alternative(
    table: Value, key: Value, index: cst.BaseExpression, found: Value, read: cst.Subscript
) -> Value:
    """`{"float32": torch.float32, "float16": torch.float16}[args.dtype]`: a dtype table indexed by an
    option or config field lists the dtypes the script is meant to run in; the float16 it holds is
    the non-default configuration `found` stands for otherwise (`--dtype float16`). A table of
    autocast regions likewise (LlamaGen: `with {"bf16": autocast(dtype=torch.bfloat16), "fp16":
    autocast(dtype=torch.float16), ...}[args.mixed_precision]:`): the default region runs in
    float16 when the option names the other one; the region is then the table's `read`, where
    both are seen."""
    if not isinstance(key.const, str):
        return found
    items = [item for _, item in table.items]
    condition = f"{' '.join(cst.Module([]).code_for_node(index).split())} == {key.const!r}"
    if found.kind is Kind.DTYPE and found.precision is not Precision.FP16:
        half = next((item for item in items if item.kind is Kind.DTYPE and item.precision is Precision.FP16), None)
        return found if half is None else found.with_(otherwise=(half, condition))
    region = found.payload if found.kind is Kind.AUTOCAST else None
    if isinstance(region, Region) and region.precision is not Precision.FP16 and region.otherwise is None:
        if any(_is_fp16_region(item) for item in items):
            return replace(found, payload=replace(region, node=read, otherwise=(Precision.FP16, condition)))
    return found


def _is_fp16_region(value: Value) -> bool:
    region = value.payload
    return (
        value.kind is Kind.AUTOCAST
        and isinstance(region, Region)
        and region.precision is Precision.FP16
        and region.enabled is not False
    )


# Index expressions that read a configuration (`args.dtype`, `config["dtype"]`); a plain name may be a
# constant of the module, and a table beside it a generic name-to-dtype map.
_CONFIGURATION_READS = (cst.Attribute, cst.Subscript)


def eval_dict(self: Interpreter, node: cst.Dict, ctx: Context) -> Value:
    items: list[tuple[str, Value]] = []
    for element in node.elements:
        if not isinstance(element, cst.DictElement):  # a `**spread` (StarredDictElement)
            self.eval(element.value, ctx)
            continue
        key = self.eval(element.key, ctx)
        value = self.eval(element.value, ctx)
        if isinstance(key.const, str):
            items.append((key.const, value))
    self.registry_paths.setdefault(node, ctx.scope.module.path)
    return Value(Kind.DICT, items=tuple(items), identity=node)  # the literal: a registry its writes fill


def eval_comprehension(
    self: Interpreter, node: cst.ListComp | cst.GeneratorExp | cst.SetComp | cst.DictComp, ctx: Context
) -> Value:
    scope = Scope(ctx.scope.module, ctx.scope)
    inner = replace(ctx, scope=scope)
    clause: cst.CompFor | None = node.for_in
    while clause is not None:
        iterable = self.eval(clause.iter, inner)
        if isinstance(node, cst.DictComp) and clause is node.for_in and clause.inner_for_in is None and not clause.ifs:
            table = _table_of_literals(self, node, iterable, ctx)
            if table is not None:
                return table
        self.assign(clause.target, element_of(iterable), inner)
        for condition in clause.ifs:
            self.eval(condition.test, inner)
        clause = clause.inner_for_in
    element = self.eval(node.value if isinstance(node, cst.DictComp) else node.elt, inner)
    if element.kind is Kind.DICT:
        element = group_params(element) or UNKNOWN  # one param group per parameter
    if element.kind is Kind.PARAMS:
        # [p for n, p in model.named_parameters() if ...], {n: p for ...}
        tests = [condition.test for clause in _clauses(node.for_in) for condition in clause.ifs]
        return chosen(element, [_negation_inlined(test, inner) for test in tests])
    if element.kind is Kind.MODULE and isinstance(node, cst.ListComp):
        return Value(Kind.ANY, payload=(element,))  # `[accelerator.prepare(m) for m in text_encoders]`
    # The op stays (`torch.stack([torch.logsumexp(lg, -1) for lg in logits])` is still a logsumexp).
    return element if element.kind is Kind.TENSOR else UNKNOWN


# A dict comprehension over a list written out is built element by element up to this many elements.
_MOST_TABLE_ROWS = 64


def _table_of_literals(self: Interpreter, node: cst.DictComp, iterable: Value, ctx: Context) -> Value | None:
    """`{config.name: config for config in MODEL_CONFIGS}` over a list written out: the dict it builds,
    when every element gives a key known as a string (weak-to-strong's table of model configs, read by
    the size a command line names); None otherwise."""
    elements = literal_values(iterable)
    if not elements or len(elements) > _MOST_TABLE_ROWS:
        return None
    items: dict[str, Value] = {}
    for element in elements:
        row = replace(ctx, scope=Scope(ctx.scope.module, ctx.scope))
        self.assign(node.for_in.target, element, row)
        key = self.eval(node.key, row).const
        if not isinstance(key, str):
            return None
        items[key] = self.eval(node.value, row)
    return Value(Kind.DICT, items=tuple(items.items()))


def _clauses(clause: cst.CompFor | None) -> Iterator[cst.CompFor]:
    while clause is not None:
        yield clause
        clause = clause.inner_for_in


def _as_params(value: Value | None) -> Value | None:
    """An `nn.Parameter` as a parameter collection of its own (`[self.ctx]` is a parameter list)."""
    if value is None or value.op != PARAMETER_OP:
        return value
    return Value(Kind.PARAMS, value.precision, origin=value.origin, identity=value.identity)


def sequence(elements: tuple[Value, ...]) -> Value:
    """A list/tuple literal: parameter lists, lists of `nn.Parameter`s and param-group lists are
    parameters; else a tuple. A list of param groups (dicts with a "params" key) is parameters as
    soon as one group's are known: GaLore's `[{"params": regular_params}, {"params": galore_params,
    "rank": 128}]`, `galore_params` filled from modules the analysis does not follow."""
    groups = [_as_params(group_params(element)) for element in elements]
    params = [group for group in groups if group is not None and group.kind is Kind.PARAMS]
    param_groups = all(element.kind is Kind.DICT and element.item("params") is not None for element in elements)
    if params and (len(params) == len(groups) or param_groups):
        # The elements stay: `return bias_group, non_bias_group` unpacks to each group.
        return combine_params(params).with_(payload=elements)
    return Value(Kind.ANY, payload=elements)


def _negation_inlined(test: cst.BaseExpression, ctx: Context) -> cst.BaseExpression:
    """A filter calling a lambda that negates another (open_clip's and Chinese-CLIP's `include =
    lambda n, p: not exclude(n, p)`, called with the lambda's own parameter names) as that negation,
    so that the param groups `exclude(n, p)` and `include(n, p)` choose every parameter together."""
    if type(test) is cst.BooleanOperation:
        return test.with_changes(left=_negation_inlined(test.left, ctx), right=_negation_inlined(test.right, ctx))
    if not (type(test) is cst.Call and type(test.func) is cst.Name):
        return test
    called = ctx.scope.lookup(test.func.value)
    if called is None or not isinstance(called.payload, Lambda):
        return test
    lambda_node = called.payload.node
    body = lambda_node.body
    parameters = [param.name.value for param in lambda_node.params.params]
    arguments = [arg.value.value if type(arg.value) is cst.Name and arg.keyword is None else None for arg in test.args]
    negates = type(body) is cst.UnaryOperation and type(body.operator) is cst.Not
    return body if negates and arguments == parameters else test


def binary(
    self: Interpreter, left: Value, right: Value, operator: cst.BaseBinaryOp | None, region: Region | None = None
) -> Value:
    if isinstance(operator, cst.MatrixMultiply):
        return self.lowered(matmul(left, right), region)
    if Kind.PARAMS in (left.kind, right.kind):  # params += list(model.parameters())
        return combine_params([left, right])
    folded = fold_numbers(operator, left.const, right.const)
    if folded is not None:
        return const(folded)  # `head_dim ** -0.5`: a scale factor stays a Python number
    if isinstance(operator, cst.Divide) and left.op == FILE_PATH:
        return joined(left, right) or UNKNOWN  # `Path(__file__).parent / "ds_config.json"`
    if isinstance(operator, cst.Divide) and is_tensor_like(left) and right == UNKNOWN:
        # `logits / self.temperature`: a divisor of unknown type is a scale factor (a number, or a
        # tensor without dimensions, which does not promote): the quotient keeps the dtype.
        return promote(left, const(1))
    result = promote(left, right)
    if (
        isinstance(operator, cst.Multiply)
        and "logsumexp" in (left.op, right.op)
        and Kind.CONST not in (left.kind, right.kind)
    ):
        # `lse * mask` (distillm's reward: padding zeroed) is the logsumexp still, where it is kept.
        return result.with_(op="logsumexp") if result.kind is Kind.TENSOR else result
    if isinstance(operator, cst.Subtract) and right.op == "logsumexp" and result.kind is Kind.TENSOR:
        # `logits.gather(...) - logits.logsumexp(-1)` (TRL's `selective_log_softmax`): log-probs.
        return result.with_(op=api.LOG_PROB_OP)
    return result


def note_operation(
    self: Interpreter, node: cst.BinaryOperation, ctx: Context, left: Value, right: Value, result: Value
) -> None:
    fact = OperationFact(node, ctx.scope.module.path, left, right, result, self.condition, self.chain)
    if self.keeps_facts_of(fact.path):
        record(self.operations, node, fact)


_FOLDED_OPERATORS: dict[type, Callable[[float, float], float]] = {
    cst.Add: lambda a, b: a + b,
    cst.Subtract: lambda a, b: a - b,
    cst.Multiply: lambda a, b: a * b,
    cst.Divide: lambda a, b: a / b,
    cst.Power: lambda a, b: float(a) ** float(b),  # in floats: an int power could be astronomically large
}
FOLDED_FUNCTIONS: dict[str, Callable[[float], float]] = {
    "math.sqrt": math.sqrt,
    "math.exp": math.exp,
    "math.log": math.log,
    "float": float,
    "abs": abs,
}


def fold_numbers(operation: object, left: object, right: object) -> float | None:
    """Arithmetic on numeric literals (`64 ** -0.5`, `math.sqrt(64)`); None when not numbers or undefined."""
    numbers = [value for value in (left, right) if isinstance(value, (int, float)) and not isinstance(value, bool)]
    try:
        if isinstance(operation, str) and len(numbers) == 1 and right is None:
            return FOLDED_FUNCTIONS[operation](numbers[0])
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
# Renders an expression as written (a condition named in a message).
_CODE = cst.Module(body=[])
# Builtins that hand back (a view of) their first argument.
PASSTHROUGH_BUILTINS = frozenset({"list", "tuple", "filter", "iter", "sorted", "reversed", "set"})
# Builtins that make a Python number of non-tensor arguments.
NUMBER_BUILTINS = frozenset({"len", "float", "int", "round", "abs", "min", "max", "sum", "pow"})
BUILTINS = frozenset(
    {
        *PASSTHROUGH_BUILTINS,
        *NUMBER_BUILTINS,
        "getattr",
        "setattr",
        "dict",
        "isinstance",
        "print",
        "range",
        "zip",
        "enumerate",
        "str",
        "open",
        "vars",
        "__import__",
    }
)


def _asks_for_cuda(self: Interpreter, test: cst.BaseExpression) -> bool:
    """Whether `test` is `torch.cuda.is_available()`."""
    facts = self.facts.get(test, ()) if type(test) is cst.Call else ()
    return any(fact.function == "torch.cuda.is_available" for fact in facts)
