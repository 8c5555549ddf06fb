"""How names get their values: assignment targets (names, `self.<attr>`, `out["key"]`, unpacking),
what a `for` binds, imports (a name imported from a linted file is read from it on first use,
re-exports followed), and a list that `params.extend(...)` makes a parameter list.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import TYPE_CHECKING, cast

import libcst as cst

from mplint.analysis import torch_api as api
from mplint.analysis.configuration import NAMESPACE
from mplint.analysis.project import module_name
from mplint.analysis.registries import is_registry, store
from mplint.analysis.scopes import Context, ModuleState
from mplint.analysis.selections import combine_params
from mplint.analysis.values import (
    ANY_KEY,
    PARAMETER_OP,
    UNKNOWN,
    Alternatives,
    Kind,
    Value,
    alternatives,
    dotted,
    group_params,
    is_tuple,
    join,
    one_of,
)
from mplint.tree import STAR_IMPORT, dotted_text

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter


def assign(self: Interpreter, target: cst.BaseExpression, value: Value, ctx: Context) -> None:
    if isinstance(target, cst.Name):
        ctx.scope.names[target.value] = named(value, target.value)
    elif isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.attr.value == "__dict__":
        # `self.__dict__ = dictionary` (a config record read by attribute): each item is an attribute.
        for name, held in value.items if value.kind is Kind.DICT else ():
            key = f"{target.value.value}.{name}"
            ctx.scope.names[key] = named(held, key)
    elif isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name):
        key = f"{target.value.value}.{target.attr.value}"
        ctx.scope.names[key] = named(value, key)
        _carried(target.value.value, target.attr.value, value, ctx)
    elif isinstance(target, cst.Attribute) and isinstance(target.value, cst.Attribute):
        # `config.train.learning_rate = 3e-4`: the record the attribute is set on holds it, and so
        # does the record holding that one (as `out["a"]["b"] = x`).
        from mplint.analysis.summaries import with_stored  # it imports this module (through statements)

        holder = self.eval(target.value, ctx)
        if holder.kind is Kind.DICT and holder.op == NAMESPACE:
            self.assign(target.value, with_stored(holder, {target.attr.value: value}), ctx)
    elif isinstance(target, (cst.Tuple, cst.List)):
        elements = target.elements
        star = next((index for index, element in enumerate(elements) if isinstance(element, cst.StarredElement)), None)
        for index, element in enumerate(elements):
            self.assign(element.value, unpacked(value, index, len(elements), star), ctx)
    elif isinstance(target, cst.Subscript):
        container = self.eval(target.value, ctx)
        subscript = target.slice[0].slice if len(target.slice) == 1 else None
        stored = self.eval(subscript.value, ctx) if isinstance(subscript, cst.Index) else UNKNOWN
        if is_registry(container) and isinstance(subscript, cst.Index):
            store(self, container, stored, value)
        item = self.item_key(target, ctx)
        if item is not None:  # `out["logits"] = out["logits"].float()`: the next read sees the cast
            ctx.scope.names[item] = value
        if container.kind is Kind.DICT and isinstance(stored.const, str):
            # `ds_config["fp16"] = {...}`, `group["params"] = params`: the dict as a whole holds the
            # item too, where it is returned, spread (`SGD(**group)`) or handed to a framework.
            self.assign(target.value, with_items(container, {stored.const: value}), ctx)
        elif container.kind is Kind.DICT and stored.const is None and value.op == PARAMETER_OP:
            # `self.learnable_params[k] = nn.Parameter(...)` in a loop (self-adaptive-llms' SVF vectors):
            # parameters under keys not known, pooled as the dict's values.
            from mplint.analysis.expressions import sequence  # it imports this module

            _pool(self, target.value, container, sequence((value,)), ctx)


def with_items(container: Value, items: dict[str, Value]) -> Value:
    """A dict value with `items` stored in it (each replacing the item of its key), in each of the
    dicts it may be too (`if fp16 or "fp16" in config: ...` joined two, then `config["bf16"] = ...`)."""
    kept = tuple(entry for entry in container.items if entry[0] not in items)
    stored = container.with_(items=(*kept, *items.items()))
    if isinstance(container.payload, Alternatives):
        each = tuple(with_items(choice, items) for choice in container.payload.values)
        stored = stored.with_(payload=Alternatives(each))
    return stored


def _carried(name: str, attr: str, value: Value, ctx: Context) -> None:
    """`training_args.model_init_kwargs = model_kwargs`, `args.dtype = "bf16"`: a settings object (an
    instance of a class, a namespace of options) holds the attribute from then on, where it is handed
    to a function or a constructor too. A method's own receiver keeps its stores apart (they are the
    method's writes) and a module's submodules are built, not set."""
    from mplint.analysis.summaries import SUPER, with_stored  # it imports this module (through statements)

    receiver = ctx.scope.lookup(SUPER)
    if receiver is not None and isinstance(receiver.payload, tuple) and receiver.payload[1] == name:
        return
    holder = ctx.scope.lookup(name)
    if holder is not None and (holder.kind is Kind.INSTANCE or (holder.kind is Kind.DICT and holder.op == NAMESPACE)):
        ctx.scope.names[name] = with_stored(holder, {attr: value})


def item_key(self: Interpreter, node: cst.Subscript, ctx: Context) -> str | None:
    """`out["logits"]` as a name the scope can hold (a name subscripted by one key: a literal, or a
    name whose value is not known, `out[logits_key]`, which reads back what was stored under it), else None."""
    if not isinstance(node.value, cst.Name) or len(node.slice) != 1 or not isinstance(node.slice[0].slice, cst.Index):
        return None
    index = node.slice[0].slice.value
    key = self.eval(index, ctx).const
    if isinstance(key, (str, int)) and not isinstance(key, bool):
        return f"{node.value.value}[{key!r}]"
    return f"{node.value.value}[{index.value}]" if isinstance(index, cst.Name) and key is None else None


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


def unpacked(value: Value, index: int, count: int, star: int | None = None) -> Value:
    """Target `index` of `count` (the starred one at `star`, if any: `engine, *_ = ...`) of an unpacking;
    of a value that is one of several (`Alternatives`), of those that are tuples of `count` values."""
    if isinstance(value.payload, Alternatives) and star is None:
        rows = [cast(tuple, each.payload) for each in alternatives(value) if is_tuple(each)]
        fitting = [row[index] for row in rows if len(row) == count]
        return functools.reduce(join, fitting) if fitting else UNKNOWN
    if value.kind in (Kind.ANY, Kind.PARAMS) and isinstance(value.payload, tuple):
        elements = value.payload
        if star is None:
            return elements[index] if len(elements) == count else UNKNOWN
        if index == star or len(elements) < count - 1:
            return UNKNOWN  # the starred target binds a list
        return elements[index] if index < star else elements[len(elements) - (count - index)]
    if value.kind in (Kind.TENSOR, Kind.PARAMS):
        # A model output unpacked (`logits, values = model(x)`) holds its precision;
        # `for name, p in model.named_parameters()` binds parameters.
        return value
    return UNKNOWN


# What a `for` over a list of them binds to each in turn (see `element_of`).
_EACH_KINDS = frozenset({Kind.INSTANCE, Kind.MODULE})


def element_of(iterable: Value) -> Value:
    """What a `for` over `iterable` binds: a slice of a tensor, a parameter, a tuple from zip()."""
    if iterable.op == "zip":  # its payload: the tuple of what it zips
        return Value(Kind.ANY, payload=iterable.payload)
    elements = literal_values(iterable) or ()
    if elements and all(element.kind in _EACH_KINDS for element in elements):
        # `for actor in [policy, critic]`: each object of the linted code; `for m in training_models`
        # (sd-scripts: `[unet]`, the text encoder appended when it is trained): each module.
        return one_of(list(elements))
    rows = [literal_values(element) for element in elements]
    if rows and rows[0] and all(row is not None and len(row) == len(rows[0]) for row in rows):
        # `for lr, params, name in [(base_lr, base_params, "base"), ...]`: each column, one of its rows'.
        columns = zip(*cast("list[tuple[Value, ...]]", rows), strict=True)
        return Value(Kind.ANY, payload=tuple(one_of(list(column)) for column in columns))
    return iterable if iterable.kind in (Kind.TENSOR, Kind.PARAMS) else UNKNOWN


def literal_values(value: Value) -> tuple[Value, ...] | None:
    """A list or tuple literal's values (a list of modules, a row of a table a `for` unpacks), else None."""
    values = value.payload if value.kind is Kind.ANY and value.op is None else None
    return values if isinstance(values, tuple) and all(isinstance(each, Value) for each in values) else None


def bind_import(self: Interpreter, alias: cst.ImportAlias, ctx: Context) -> None:
    name = dotted_text(alias.name)
    if alias.asname is not None:
        ctx.scope.names[dotted_text(alias.asname.name)] = dotted(name)
    else:
        head = name.split(".")[0]
        ctx.scope.names[head] = dotted(head)


def bind_import_from(self: Interpreter, node: cst.ImportFrom, ctx: Context) -> None:
    module = dotted_text(node.module) if node.module is not None else ""
    level = len(node.relative)
    source = self.index.resolve(module, ctx.scope.module.path, level) if module or level else None
    if isinstance(node.names, cst.ImportStar):
        if source is not None and source not in ctx.scope.module.star_sources:
            ctx.scope.module.star_sources.append(source)  # its names are read when looked up
        return
    for alias in node.names:
        imported = dotted_text(alias.name)
        local = dotted_text(alias.asname.name) if alias.asname is not None else imported
        fallback = dotted(f"{module}.{imported}") if level == 0 else _relative_submodule(self, node, imported, ctx)
        if source is not None and fallback.name not in api.TABLE_NAMES:  # read from the linted file when used
            ctx.scope.names[local] = Value(Kind.IMPORT, payload=(source, imported, fallback))
        else:
            ctx.scope.names[local] = fallback


def _relative_submodule(self: Interpreter, node: cst.ImportFrom, name: str, ctx: Context) -> Value:
    """`from . import base` where `base.py` is a file of the run: the module, by its full dotted
    name (what the package's `__init__` binds when it imports its own submodule)."""
    module = f"{dotted_text(node.module)}.{name}" if node.module is not None else name
    path = self.index.resolve(module, ctx.scope.module.path, len(node.relative))
    return dotted(module_name(path)) if path is not None else UNKNOWN


def imported(self: Interpreter, value: Value) -> Value:
    """What a name imported from a linted file holds, read on first use (re-exports followed)."""
    hops = 0
    while value.kind is Kind.IMPORT and isinstance(value.payload, tuple) and hops < 16:
        path, name, fallback = value.payload
        found = self.exported(path, name)
        # A package's `__init__` reading the name its own `from . import base` binds: the fallback.
        value = found if found is not None and found != value else fallback
        hops += 1
    return UNKNOWN if value.kind is Kind.IMPORT else value


def exported(self: Interpreter, path: str, name: str) -> Value | None:
    state = self.module_state(path)
    if state is None:
        return None
    if not state.lazy:
        self.run_module(state)
        found = state.scope.names.get(name)
        if found is not None:
            return found
        if state.top_level is None:
            return self.star_imported(state, name) or self.lazy_attribute(state, name)
    ran = False
    for statement in state.binding_statements(name):
        if id(statement) not in state.executed:
            state.executed.add(id(statement))
            ran = True
            with self.entered(path):  # a top-level statement runs at import, under its own file's default
                self.exec_statement(statement, Context(state.scope))
    found = state.scope.names.get(name)
    if found is not None:
        if ran:
            state.bound_on_demand[name] = found
        return found
    # Bound on demand inside a branch read aside, whose names are dropped after it (`exec_aside`):
    # the class a file parsed in part defines stays defined.
    found = state.bound_on_demand.get(name)
    if found is not None:
        return found
    return self.star_imported(state, name) or self.lazy_attribute(state, name)


def star_imported(self: Interpreter, state: ModuleState, name: str) -> Value | None:
    """What `name` is in a file that binds no such name itself but imports every public name of
    linted files (`from utils import *`): the last of those files that has it. A private name
    (`_helper`) is not imported so."""
    if name.startswith("_"):
        return None
    for statement in state.binding_statements(STAR_IMPORT):
        if id(statement) not in state.executed:
            state.executed.add(id(statement))
            self.exec_statement(statement, Context(state.scope))
    if not state.star_sources or (state.path, name) in self.star_lookups:
        return None  # none, or a cycle of star imports back to this file
    self.star_lookups.add((state.path, name))
    try:
        for source in reversed(state.star_sources):
            found = self.exported(source, name)
            if found is not None:
                return found
        return None
    finally:
        self.star_lookups.discard((state.path, name))


def lookup_dotted(self: Interpreter, name: str, importer: str) -> Value | None:
    """A dotted name that refers into a linted file (`utils.logprobs.gather`), if it does."""
    module, _, attr = name.rpartition(".")
    if not module or name.startswith("torch.") or name in api.TABLE_NAMES:
        # torch's own names keep their API meaning, even when torch's sources are linted; so do the
        # framework functions a table knows, vendored or not (PromptKD's copy of Dassl).
        return None
    path = self.index.resolve(module, importer)
    found = self.exported(path, attr) if path is not None else None
    return self.imported(found) if found is not None else None  # a package's re-export: what it names


def apply_parameter_collection(self: Interpreter, expression: cst.BaseExpression, ctx: Context) -> None:
    """`params.extend(model.parameters())` / `self.params.append(p)` / `group["params"].append(p)` /
    `groups.append({"params": decay, ...})` makes the list a parameter list; `training_models.append(unet)`
    adds the module to a list of modules, `models.extend([a, b])` the modules listed, and
    `outs.append(model(x))` the tensor to a list of them (for `torch.cat(outs)`)."""
    if not (isinstance(expression, cst.Call) and isinstance(expression.func, cst.Attribute)):
        return
    target = expression.func.value
    if expression.func.attr.value not in ("append", "extend"):
        return
    argument = expression.args[0].value if expression.args else None
    if isinstance(argument, (cst.Name, cst.Attribute)):
        added = [group_params(listed(self, argument, ctx))]  # as it is now (the call's facts hold every run's)
    else:
        added = [group_params(fact.args[0]) for fact in self.facts.get(expression, []) if fact.args][-1:]
    value = added[0] if added else None
    extended = literal_values(value) if value is not None and expression.func.attr.value == "extend" else None
    if extended and all(element.kind is Kind.MODULE for element in extended):
        # `models.extend([text_encoder_one, text_encoder_two])`: the modules join the list.
        current = self.eval(target, ctx)
        elements = literal_values(current)
        if elements is not None:
            self.assign(target, current.with_(payload=(*elements, *extended)), ctx)
        return
    if value is None or value.kind not in (Kind.PARAMS, Kind.MODULE, Kind.TENSOR):
        return
    if value.kind is Kind.PARAMS and isinstance(target, cst.Subscript) and _key_not_known(self, target, ctx):
        table = self.eval(target.value, ctx)
        if table.kind is Kind.DICT:
            # `param_group[(block_type, block_index)].append(p)` (sd-scripts' blockwise optimizers): lists
            # under keys not known, pooled as the table's values.
            _pool(self, target.value, table, value, ctx)
        return
    current = self.eval(target, ctx)
    if value.kind is Kind.PARAMS:
        self.assign(target, combine_params([current, value]), ctx)
    elif expression.func.attr.value == "append" and (elements := literal_values(current)) is not None:
        self.assign(target, current.with_(payload=(*elements, value)), ctx)
    elif _is_module_list(current) and expression.func.attr.value == "append":
        # `self.trainable_list = nn.ModuleList([])` then `.append(self.model)` (PromptKD): a submodule
        # of the list, its parameters among the list's.
        self.assign(target, current.with_(items=(*current.items, (str(len(current.items)), value))), ctx)


def _is_module_list(value: Value) -> bool:
    return value.kind is Kind.MODULE and isinstance(value.payload, str) and api.last_part(value.payload) == "ModuleList"


def _pool(self: Interpreter, target: cst.BaseExpression, table: Value, params: Value, ctx: Context) -> None:
    """Add `params` to the parameters the dict `table` (bound to `target`) holds under keys not known."""
    pooled = combine_params([table.item(ANY_KEY) or UNKNOWN, params])
    items = (*(item for item in table.items if item[0] != ANY_KEY), (ANY_KEY, pooled))
    self.assign(target, table.with_(items=items), ctx)


def _key_not_known(self: Interpreter, target: cst.Subscript, ctx: Context) -> bool:
    """Whether the item `target` reads is under a key not known (`table[(block_type, index)]`)."""
    index = target.slice[0].slice if len(target.slice) == 1 else None
    return isinstance(index, cst.Index) and not isinstance(self.eval(index.value, ctx).const, str)


def listed(self: Interpreter, expression: cst.BaseExpression, ctx: Context) -> Value:
    """An element of a list as the list holds it: a module whose construction is not known (a
    helper's `unet`) by the name it is reached by, as a cast of that name would identify it."""
    value = self.eval(expression, ctx)
    key = binding_key(expression) if value.kind is Kind.MODULE and value.identity is None else None
    return value if key is None else value.with_(identity=key)


def binding_key(expression: cst.BaseExpression) -> str | None:
    """`model` / `self.model`: the name a module is reached by, its identity when nothing better is known."""
    if isinstance(expression, cst.Name):
        return expression.value
    if isinstance(expression, cst.Attribute) and isinstance(expression.value, cst.Name):
        return f"{expression.value.value}.{expression.attr.value}"
    return None
