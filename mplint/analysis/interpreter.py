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

from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from typing import TypeVar, cast

import libcst as cst

from mplint import tree
from mplint.analysis import (
    bindings,
    calls,
    casts,
    configuration,
    expressions,
    lazy_imports,
    statements,
    submodules,
    summaries,
    torch_calls,
)
from mplint.analysis.facts import CallFact, LateCast, OperationFact, ReplicatedCall, continues
from mplint.analysis.frameworks import read_json_config
from mplint.analysis.frameworks.accelerate_launch import Launch, LaunchConfig
from mplint.analysis.launch_options import LaunchOptions
from mplint.analysis.project import ModuleIndex
from mplint.analysis.scopes import Context, Frame, Loaded, ModuleState, Scope
from mplint.analysis.summaries import CallMemo, Definition
from mplint.analysis.values import Kind, Origin, Precision, Value
from mplint.tree import Statement

Node = TypeVar("Node", bound=cst.CSTNode)
Result = TypeVar("Result")
# (function, node) -> what the function said of that node.
TreeMemo = MutableMapping[tuple[str, cst.CSTNode], object]


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
    star_imported = bindings.star_imported
    lookup_dotted = bindings.lookup_dotted
    lazy_attribute = lazy_imports.lazy_attribute
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
    started_without_config_file = configuration.started_without_config_file
    may_launch_with = configuration.may_launch_with

    # calls.py
    eval_call = calls.eval_call
    note_loss_scaling = calls.note_loss_scaling
    held_attribute = calls.held_attribute
    dispatch = calls.dispatch
    construct = calls.construct
    forward = calls.forward
    call_named = calls.call_named
    call_method = calls.call_method
    parsed_dataclass = calls.parsed_dataclass

    # casts.py
    cast_target = casts.cast_target
    cast = casts.cast
    apply_in_place_cast = casts.apply_in_place_cast
    apply_adapters = casts.apply_adapters
    note_cast_after_optimizer = casts.note_cast_after_optimizer
    commit_late_casts = casts.commit_late_casts
    path_of_call = casts.path_of_call

    # submodules.py
    apply_submodule_casts = submodules.apply_submodule_casts
    apply_function = submodules.apply_function

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
        roots: dict[str, Loaded],
        load: Callable[[str], Loaded | None],
        index: ModuleIndex,
        words: frozenset[str] = frozenset(),
        tree_memo: Callable[[str], TreeMemo] | None = None,
        reaches: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.roots = list(roots)
        # Pure facts of a file's nodes, kept with its tree (see `of_tree`): the run hands one per
        # file that outlives the unit, so later units reuse what earlier ones computed.
        self.tree_memo = tree_memo or _unit_memo()
        # Whether top-level `name` of a file may lead to a rule's word (`run.reach.Reach`); without
        # it, every function imported from a linted file is worth following.
        self.reaches = reaches
        # A root is run top to bottom; one parsed in part runs what was parsed, and reads the rest
        # of its names as a file it imports from would (`ModuleState.top_level`).
        self.modules = {
            path: ModuleState(path, loaded.module, top_level=loaded.top_level, full_function=loaded.full_function)
            for path, loaded in roots.items()
        }
        self.load = load
        self.index = index
        self.facts: dict[cst.Call, list[CallFact]] = {}
        self.late_casts: dict[cst.Call, list[LateCast]] = {}
        self.operations: dict[cst.BinaryOperation, list[OperationFact]] = {}
        self.loss_scaling_paths: set[str] = set()
        # Files that scale their losses on a path the default configuration does not take, with the
        # condition that names it (a GradScaler only in `train()` when the commands disagree on
        # `--opr`): that path's backward passes are scaled, the default path's are not.
        self.conditional_loss_scaling: set[tuple[str, str]] = set()
        self.memo = CallMemo()
        self.class_attrs: dict[Definition, dict[str, Value]] = {}
        # Per class: the instance its methods were evaluated on to find its attributes (what
        # `__init__` stores); standalone runs of those methods reuse it, and so their summaries.
        self.class_receivers: dict[Definition, Value] = {}
        self.frames: list[Frame] = [Frame()]
        # torch's default dtype, per entry file (see `entry`): process-global at run time, so what
        # a script sets applies to whatever it calls, in any file; one script's does not leak into
        # another's.
        self.default_dtype: dict[str, tuple[Precision, Origin | None]] = {}
        # The file whose code started the evaluation under way: a root's top level, or a function
        # analysed on its own. Code it calls in other files runs under its default dtype.
        self.entry: str | None = None
        # argparse options' defaults, per parser (its construction).
        self.option_defaults: dict[object, dict[str, Value]] = {}
        # Per script: the options its repository's launch commands give it (`launch_options`).
        self.launch_options: dict[str, LaunchOptions] = {}
        # Per (script, condition naming a launch file): the options of a command that disagrees
        # with the others on precision, read afterwards as `launch_options` of a run of its own.
        self.option_alternatives: dict[tuple[str, str], LaunchOptions] = {}
        self.evaluated_calls = 0
        # While a branch the default configuration skips is read: the condition that takes it. In a
        # run under a non-default launch configuration (`model.analyze`), that configuration's
        # condition, which every path of the run starts under (`run_condition`).
        self.condition: str | None = None
        self.run_condition: str | None = None
        # On such a path: the configuration tests it decides, by the run of a function (its frame's
        # id) and the test as `configuration_test` names it.
        self.assumed: dict[tuple[int, str | None], bool] = {}
        # The block the last `if` statement run is in, and the index of the statement after it.
        self.after_if: tuple[Sequence[Statement], int] = ((), 0)
        # The functions being evaluated, outermost first (see `CallFact.chain`).
        self.chain: tuple[str, ...] = ()
        # The call of the linted code each of them was run for (path, node), where known; and the
        # call under way, which `call_definition` adds to them (see `CallFact.call_sites`).
        self.call_sites: tuple[tuple[str, cst.Call] | None, ...] = ()
        self.current_call: tuple[str, cst.Call] | None = None
        # Config file flags (ml_collections' `DEFINE_config_file`): the file each defaults to, and
        # the script that defined it.
        self.config_files: dict[str, tuple[str, str]] = {}
        # Whether a method of an nn.Module class of the linted code is among them (see `CallFact.in_module`).
        self.in_module = False
        # Optimizers (their construction) that a framework wraps in one stepping fp32 master weights,
        # and the conditions of the paths that wrap them (None: the default path).
        self.master_weights: dict[cst.Call, set[str | None]] = {}
        # Data files the analysis read (a framework's JSON config): the unit depends on them too.
        self.data_files: set[str] = set()
        # accelerate launch configurations: per script, those its repository holds; the non-default
        # ones met (by the condition that names each), read afterwards by an interpreter of their own
        # (`model.analyze`), which sets `launch_override` and starts under its condition.
        self.launches: dict[str, Launch] = {}
        self.launch_alternatives: dict[str, LaunchConfig] = {}
        self.launch_override: LaunchConfig | None = None
        # (file, name) of the star-import lookups under way (`bindings.star_imported`): cycles end.
        self.star_lookups: set[tuple[str, str]] = set()
        # What the methods of each Ray actor (its class, its construction) stored, across its handles.
        self.actor_states: dict[tuple[object, object], dict[str, Value]] = {}
        # Files whose functions this analysis ran (with its own arguments): rules visit only those.
        self.entered_paths: set[str] = set(roots)
        # What a function must mention to be worth analysing on its own (empty: every function).
        # A word written as a method call (`.step(`, `.scale(`) is that exact name; any other is a
        # fragment of one (`optim`, `bfloat16`, `log_softmax`).
        self.methods = frozenset(word[1:-1] for word in words if word.startswith(".") and word.endswith("("))
        self.fragments = tuple(sorted({word for word in words if not (word.startswith(".") and word.endswith("("))}))
        self.worth: dict[cst.FunctionDef | cst.ClassDef, bool] = {}
        # Per linted class: the framework class it derives from (`frameworks.hooks.framework_base`).
        self.framework_bases: dict[tuple[Definition, Callable[[str], bool]], str | None] = {}
        # Models sharded under an FSDP mixed precision policy, by the `Value.op` that marks them:
        # (compute dtype, output dtype, origin) (`frameworks.fsdp`).
        self.sharded: dict[str, tuple[Precision | None, Precision | None, Origin]] = {}
        # The module classes whose `__init__` is being evaluated, innermost last, and per class the
        # module constructions (torch's layers, torchvision's models, linted classes) its `__init__`
        # ran: the module tree an instance holds, also where `nn.Sequential(*layers)` hides it.
        self.constructing: list[Definition] = []
        self.builds: dict[Definition, list[cst.Call]] = {}
        # Modules wrapped in nn.DataParallel (by identity: the wrapper's construction), and the calls of
        # them made inside an autocast region.
        self.data_parallel: dict[object, cst.Call] = {}
        self.replicated_calls: dict[cst.Call, list[ReplicatedCall]] = {}
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

    def read_config_file(self, name: str, script: str) -> tuple[str, object] | None:
        """The config file `name` that the code at `script` names: its path and its data (a dependency)."""
        found = read_json_config(name, script)
        if found is not None:
            self.data_files.add(found[0])
        return found

    def module_state(self, path: str) -> ModuleState | None:
        """A file of the run, read on first use when it is not a root."""
        if path not in self.modules:
            loaded = self.load(path)
            if loaded is None:
                return None
            self.modules[path] = ModuleState(
                path, loaded.module, lazy=True, top_level=loaded.top_level, full_function=loaded.full_function
            )
        return self.modules[path]

    def run_module(self, state: ModuleState) -> None:
        if state.state != "pending":
            return
        state.state = "running"
        ctx = Context(state.scope)
        body = tree.statements(state.module)
        with self.entered(state.path):
            for index, statement in enumerate(body):
                if id(statement) in state.executed:
                    continue  # a root parsed in part: run early by a lookup of a name it binds
                state.executed.add(id(statement))
                if type(statement) is cst.If:
                    self.after_if = (body, index + 1)  # as `exec_block` does
                if not self.exec_statement(statement, ctx):
                    break
        state.state = "done"

    @contextmanager
    def entered(self, path: str) -> Iterator[None]:
        """Evaluate code started by the file `path` (its top level, a function of it run on its own)."""
        outer, self.entry = self.entry, path
        try:
            yield
        finally:
            self.entry = outer

    def give_master_weights(self, optimizers: Iterable[cst.Call]) -> None:
        """A framework wraps these optimizers (their constructions) in ones that step fp32 master
        weights, on the path this run takes now."""
        for optimizer in optimizers:
            self.master_weights.setdefault(optimizer, set()).add(self.condition)

    def steps_master_weights(self, optimizer: cst.Call, condition: str | None) -> bool:
        """Whether the optimizer built by `optimizer` steps fp32 master weights on the path of
        `condition`: a framework wrapped it on that path, or on a path that one continues (a
        DeepSpeed branch read aside says nothing of the `--full_bf16` branch beside it)."""
        return any(continues(condition, given) for given in self.master_weights.get(optimizer, ()))

    def keeps_facts_of(self, path: str) -> bool:
        """Whether what code at `path` does is recorded for the rules: not when a test started the
        evaluation and the code is not a test's. A test's configuration (`Trainer(precision=
        "bf16-true")` to check that bf16 is supported) says nothing about how training runs, so the
        library code it calls is judged on its own, or from the training scripts that call it."""
        return self.entry is None or not self.index.is_test(self.entry) or self.index.is_test(path)

    def default_dtype_at(self, path: str, fallback: Precision) -> tuple[Precision, Origin | None]:
        """torch's default dtype where code of `path` runs: the one its entry file set, else `fallback`."""
        return self.default_dtype.get(self.entry or path, (fallback, None))

    def set_default_dtype(self, path: str, precision: Precision, origin: Origin | None) -> None:
        self.default_dtype[self.entry or path] = (precision, origin)

    def definitions(self, scope: Scope) -> Iterator[Definition]:
        for value in list(scope.names.values()):
            if value.kind in (Kind.FUNCTION, Kind.CLASS) and isinstance(value.payload, Definition):
                if value.payload.scope is scope:
                    yield value.payload

    def of_tree(self, path: str, function: Callable[..., Result], node: Node, *args: object) -> Result:
        """`function(node, *args)` for a node of the file at `path`, where `function` reads nothing
        but the node's subtree (and `args`, the same for every node of the file): computed once per
        file and process, however many units ask."""
        memo = self.tree_memo(path)
        # Keyed by the node itself: a memo that outlives a run (the language server's) keeps its nodes
        # alive, so no new node can take the id of one it remembers.
        key = (function.__qualname__, node)
        if key not in memo:
            memo[key] = function(node, *args)
        return cast(Result, memo[key])

    def may_report(self, definition: Definition, scope: Scope) -> bool:
        """Whether analysing a function (or class) nobody calls can give a finding: it mentions a
        rule's word (`log_softmax`, `autocast`, `optim`), or calls a function or class that does
        (`main()` calling a bf16 model factory of the file or of another one). Most library code
        does none of these."""
        verdict = self.worth.get(definition.node)
        if verdict is not None:
            return verdict
        self.worth[definition.node] = False  # a recursive call does not make a function worth it

        whole = definition.scope.module.full_function

        def mentions(node: ScopeNode) -> Mentions:
            if whole is not None and type(node) is cst.FunctionDef:
                node = whole(node)  # a method of a class read in part: with its body
            return self.of_tree(definition.path, _mentions, node, mentions)

        names, callees = mentions(definition.node)
        text = "\n".join(names)
        verdict = (
            bool(self.methods & names)
            or any(fragment in text for fragment in self.fragments)
            or any(self.calls_worth_it(scope.lookup(name)) for name in callees)
        )
        self.worth[definition.node] = verdict
        return verdict

    def calls_worth_it(self, callee: Value | None) -> bool:
        """A call of `callee` is worth following: a function or class of this file that
        `may_report`, or one of another linted file that may lead to a word (`reaches`)."""
        if callee is None:
            return False
        if callee.kind is Kind.IMPORT:
            if self.reaches is None or not isinstance(callee.payload, tuple):
                return True
            path, name, _ = callee.payload
            return self.reaches(path, name)
        definition = callee.payload
        return isinstance(definition, Definition) and self.may_report(definition, definition.scope)

    def evaluate_standalone(self, definition: Definition) -> None:
        """Analyse a function nobody (visibly) calls, with its defaults (or the arguments the
        repository's commands give it, when a console script runs it): its own casts still count."""
        with self.entered(definition.path):
            self._evaluate_standalone(definition)

    def _evaluate_standalone(self, definition: Definition) -> None:
        if isinstance(definition.node, cst.ClassDef):
            self.attributes_of(definition)
            receiver = self.class_receivers.get(definition) or self.instance_of(definition, definition.node, ())
            for method in definition.methods.values():
                # Inherited methods too (a base trainer's step on the model this class holds), each
                # only when it may report: a subclass of nn.Module inherits some sixty.
                if not (self.fragments or self.methods) or self.may_report(method, method.scope):
                    self.call_definition(method, [], {}, None, receiver=receiver)
            return
        self.call_definition(definition, [], configuration.command_arguments(self, definition), None)


def _unit_memo() -> Callable[[str], TreeMemo]:
    """Per-file memos that live as long as the interpreter (when the run keeps none)."""
    memos: dict[str, TreeMemo] = {}
    return lambda path: memos.setdefault(path, {})


ScopeNode = cst.FunctionDef | cst.ClassDef
Mentions = tuple[frozenset[str], frozenset[str]]


def _mentions(node: ScopeNode, nested: Callable[[ScopeNode], Mentions]) -> Mentions:
    """The identifiers and string literals a function's or class's code mentions (not a class's
    bases: every module names `nn.Module`), and the names it calls; what a function or class
    nested in it mentions comes from `nested` (memoised: each body is walked once, though a
    class's methods are asked for on their own too)."""
    parts: list[cst.CSTNode] = [node.body, *node.decorators]
    if isinstance(node, cst.FunctionDef):
        parts.append(node.params)
    return _mentioned_in(parts, nested)


def _mentioned_in(parts: Sequence[cst.CSTNode], nested: Callable[[ScopeNode], Mentions]) -> Mentions:
    names: set[str] = set()
    callees: set[str] = set()
    for part in parts:
        for found in tree.walk(part, _not_a_definition):
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
            elif kind is cst.FunctionDef or kind is cst.ClassDef:
                inner = cast(ScopeNode, found)
                # What `_mentions` leaves out of its own node, the enclosing code mentions.
                header = [*inner.bases, *inner.keywords] if isinstance(inner, cst.ClassDef) else [inner.returns]
                for more_names, more_callees in (nested(inner), _mentioned_in([*filter(None, header)], nested)):
                    names.update(more_names)
                    callees.update(more_callees)
    return frozenset(names), frozenset(callees)


def _not_a_definition(node: cst.CSTNode) -> bool:
    return type(node) is not cst.FunctionDef and type(node) is not cst.ClassDef
