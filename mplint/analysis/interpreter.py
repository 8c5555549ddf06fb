"""Per-scope abstract interpretation: what each name holds, which autocast region is active, and
what every call sees.

The interpreter walks statements in order (`statements`), binding names to `Value`s (`bindings`),
joining values where `if`/`else` paths meet, and entering autocast regions at `with` statements
and decorators. Every call it evaluates (`expressions`, `calls`, `casts`, `torch_calls`) leaves a
`CallFact` (callee, argument values, active region, result): that is all the rules read (`facts`).
Calls into functions and classes of the linted files are evaluated in the caller's context (see
`summaries`), across files of the run. Tests known in the configuration that runs by default take
their branch alone (`configuration`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import cast

import libcst as cst

from mplint import tree
from mplint.analysis import (
    bindings,
    calls,
    casts,
    configuration,
    expressions,
    statements,
    summaries,
    torch_calls,
)
from mplint.analysis.facts import CallFact, LateCast, OperationFact
from mplint.analysis.frameworks import read_json_config
from mplint.analysis.project import ModuleIndex
from mplint.analysis.scopes import Context, Frame, Loaded, ModuleState, Scope
from mplint.analysis.summaries import CallMemo, Definition
from mplint.analysis.values import Kind, Origin, Precision, Value


class Interpreter:
    """The abstract interpreter of the linted files. Its state and driver are here; its methods,
    one module per kind of thing they evaluate, are the functions of the modules named below
    (each takes the interpreter as `self`)."""

    # statements.py
    exec_block = statements.exec_block
    exec_statement = statements.exec_statement
    exec_branches = statements.exec_branches
    exec_with = statements.exec_with
    exec_simple = statements.exec_simple

    # bindings.py
    assign = bindings.assign
    item_key = bindings.item_key
    bind_import = bindings.bind_import
    bind_import_from = bindings.bind_import_from
    imported = bindings.imported
    exported = bindings.exported
    lookup_dotted = bindings.lookup_dotted
    apply_parameter_collection = bindings.apply_parameter_collection

    # summaries.py
    define_function = summaries.define_function
    define_class = summaries.define_class
    instance_of = summaries.instance_of
    attributes_of = summaries.attributes_of
    call_definition = summaries.call_definition
    bind_parameters = summaries.bind_parameters
    parameter_value = summaries.parameter_value

    # expressions.py
    eval = expressions.eval
    eval_name = expressions.eval_name
    eval_attribute = expressions.eval_attribute
    attribute_of = expressions.attribute_of
    eval_subscript = expressions.eval_subscript
    eval_dict = expressions.eval_dict
    eval_comprehension = expressions.eval_comprehension
    binary = expressions.binary
    note_operation = expressions.note_operation

    # configuration.py
    eval_comparison = configuration.eval_comparison
    eval_boolean = configuration.eval_boolean
    argument_parser = configuration.argument_parser

    # calls.py
    eval_call = calls.eval_call
    held_attribute = calls.held_attribute
    dispatch = calls.dispatch
    construct = calls.construct
    forward = calls.forward
    call_named = calls.call_named
    call_method = calls.call_method

    # casts.py
    cast_target = casts.cast_target
    cast = casts.cast
    apply_in_place_cast = casts.apply_in_place_cast
    apply_adapters = casts.apply_adapters
    note_cast_after_optimizer = casts.note_cast_after_optimizer
    commit_late_casts = casts.commit_late_casts
    path_of_call = casts.path_of_call

    # torch_calls.py
    lowered = torch_calls.lowered
    dtype_value = torch_calls.dtype_value
    autocast = torch_calls.autocast
    device_value = torch_calls.device_value
    loaded_model = torch_calls.loaded_model
    built_module = torch_calls.built_module
    created_tensor = torch_calls.created_tensor
    tensor_op = torch_calls.tensor_op

    def __init__(
        self,
        roots: dict[str, cst.Module],
        load: Callable[[str], Loaded | None],
        index: ModuleIndex,
        words: frozenset[str] = frozenset(),
    ) -> None:
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
        # Per class: the instance its methods were evaluated on to find its attributes (what
        # `__init__` stores); standalone runs of those methods reuse it, and so their summaries.
        self.class_receivers: dict[Definition, Value] = {}
        self.frames: list[Frame] = [Frame()]
        self.default_dtype: dict[str, tuple[Precision, Origin | None]] = {}
        # argparse options' defaults, per parser (its construction).
        self.option_defaults: dict[object, dict[str, Value]] = {}
        self.evaluated_calls = 0
        # While a branch the default configuration skips is read: the condition that takes it.
        self.condition: str | None = None
        # The functions being evaluated, outermost first (see `CallFact.chain`).
        self.chain: tuple[str, ...] = ()
        # Optimizers (their construction) that a framework wraps in one stepping fp32 master weights.
        self.master_weights: set[cst.Call] = set()
        # Data files the analysis read (a framework's JSON config): the unit depends on them too.
        self.data_files: set[str] = set()
        # Files whose functions this analysis ran (with its own arguments): rules visit only those.
        self.entered_paths: set[str] = set(roots)
        # What a function must mention to be worth analysing on its own (empty: every function).
        # A word written as a method call (`.step(`, `.scale(`) is that exact name; any other is a
        # fragment of one (`optim`, `bfloat16`, `log_softmax`).
        self.methods = frozenset(word[1:-1] for word in words if word.startswith(".") and word.endswith("("))
        self.fragments = tuple(sorted({word for word in words if not (word.startswith(".") and word.endswith("("))}))
        self.worth: dict[cst.FunctionDef | cst.ClassDef, bool] = {}
        # Registries: dict literals (a class's `_registry = {}`, a module's `MODELS = {}`) and what
        # code of the linted files stores into them (`cls._registry[name] = model_cls`), the file
        # each is defined in, the files whose registrations were run, and the key a read is
        # pinned to while a function runs once per registered key.
        self.registered: dict[cst.Dict, dict[str, Value]] = {}
        self.registry_paths: dict[cst.Dict, str] = {}
        self.settled: set[str] = set()
        self.pins: dict[cst.Dict, str] = {}
        self.split_runs = 0

    def run(self) -> None:
        for path in self.roots:
            self.run_module(self.modules[path])
        for path in self.roots:
            scope = self.modules[path].scope
            for definition in self.definitions(scope):
                if not (self.fragments or self.methods) or self.may_report(definition, scope):
                    self.evaluate_standalone(definition)

    def read_config_file(self, script: str) -> Callable[[str], object]:
        """A reader of the config files the code at `script` names; each one read is a dependency."""

        def read(name: str) -> object:
            found = read_json_config(name, script)
            if found is None:
                return None
            self.data_files.add(found[0])
            return found[1]

        return read

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
        self.exec_block(tree.statements(state.module), Context(state.scope))
        state.state = "done"

    def definitions(self, scope: Scope) -> Iterator[Definition]:
        for value in list(scope.names.values()):
            if value.kind in (Kind.FUNCTION, Kind.CLASS) and isinstance(value.payload, Definition):
                if value.payload.scope is scope:
                    yield value.payload

    def may_report(self, definition: Definition, scope: Scope) -> bool:
        """Whether analysing a function (or class) nobody calls can give a finding: it mentions a
        rule's word (`log_softmax`, `autocast`, `optim`), or calls a function or class that does
        (`main()` calling a bf16 model factory of the file), or one imported from another file.
        Most library code does none of these."""
        verdict = self.worth.get(definition.node)
        if verdict is not None:
            return verdict
        self.worth[definition.node] = False  # a recursive call does not make a function worth it
        names, callees = _mentions(definition.node)
        text = "\n".join(names)
        verdict = (
            bool(self.methods & names)
            or any(fragment in text for fragment in self.fragments)
            or any(self.calls_worth_it(scope.names.get(name)) for name in callees)
        )
        self.worth[definition.node] = verdict
        return verdict

    def calls_worth_it(self, callee: Value | None) -> bool:
        """A call of `callee` is worth following: code of another linted file, or a function or
        class of this one that `may_report`."""
        if callee is None:
            return False
        if callee.kind is Kind.IMPORT:
            return True
        definition = callee.payload
        return isinstance(definition, Definition) and self.may_report(definition, definition.scope)

    def evaluate_standalone(self, definition: Definition) -> None:
        """Analyse a function nobody (visibly) calls, with unknown arguments: its own casts still count."""
        if isinstance(definition.node, cst.ClassDef):
            self.attributes_of(definition)
            receiver = self.class_receivers.get(definition) or self.instance_of(definition, definition.node, ())
            for method in definition.methods.values():
                # Inherited methods too (a base trainer's step on the model this class holds), each
                # only when it may report: a subclass of nn.Module inherits some sixty.
                if not (self.fragments or self.methods) or self.may_report(method, method.scope):
                    self.call_definition(method, [], {}, None, receiver=receiver)
            return
        self.call_definition(definition, [], {}, None)


def _mentions(node: cst.FunctionDef | cst.ClassDef) -> tuple[set[str], set[str]]:
    """The identifiers and string literals a function's or class's code mentions (not a class's
    bases: every module names `nn.Module`), and the names it calls."""
    parts: list[cst.CSTNode] = [node.body, *node.decorators]
    if isinstance(node, cst.FunctionDef):
        parts.append(node.params)
    names: set[str] = set()
    callees: set[str] = set()
    for part in parts:
        for found in tree.walk(part):
            kind = type(found)  # exact type tests: libcst's node classes are ABCs (slow isinstance)
            if kind is cst.Name:
                names.add(cast(cst.Name, found).value)
            elif kind is cst.SimpleString:
                text = cast(cst.SimpleString, found).value
                if not any(space in text for space in " \n\t"):
                    names.add(text)  # a key or a dtype name (`"bf16"`), not a docstring's prose
            elif kind is cst.Attribute:
                names.add(cast(cst.Attribute, found).attr.value)
            elif kind is cst.Call:
                func = cast(cst.Call, found).func
                if type(func) is cst.Name:
                    callees.add(func.value)
    return names, callees
