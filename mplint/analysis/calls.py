"""The interpreter's calls. Every call leaves a `CallFact`. A call runs a function or class of the
linted code (in the caller's context, see `summaries`), a module's forward, one of torch's or
Python's named functions (`call_named`), or a method of the value it is called on
(`call_method`); what torch's ops compute is `torch_calls`, casts are `casts`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import libcst as cst

from mplint.analysis import configuration, file_paths, registries
from mplint.analysis import torch_api as api
from mplint.analysis.bindings import binding_key, literal_values, with_items
from mplint.analysis.configuration import NAMESPACE, PARSER
from mplint.analysis.expressions import BUILTINS, FOLDED_FUNCTIONS, NUMBER_BUILTINS, fold_numbers, sequence
from mplint.analysis.facts import CallFact, ReplicatedCall, record
from mplint.analysis.frameworks import (
    accelerate,
    apex,
    causal_lm,
    deepspeed,
    hooks,
    hydra,
    launchpad,
    ml_collections,
    peft,
    ray,
    transformers,
)
from mplint.analysis.scopes import Context, Scope
from mplint.analysis.selections import combine_params
from mplint.analysis.summaries import (
    ARGUMENT,
    FORWARDED,
    SELF,
    SPREAD,
    SUPER,
    Definition,
    Lambda,
    Partial,
    stored_on,
    with_stored,
)
from mplint.analysis.values import (
    ANY_KEY,
    BOOLEAN,
    BOUND_SELF,
    MIXED,
    NUMBER,
    PARAMETER_OP,
    UNKNOWN,
    Alternatives,
    Kind,
    Origin,
    Precision,
    Region,
    Value,
    alternatives,
    const,
    dotted,
    half_submodule,
    holds_tuple,
    is_mixed,
    is_none,
    is_tensor_like,
    is_tuple,
    one_of,
    recast,
)
from mplint.tree import dotted_text, string_value

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter


def eval_call(self: Interpreter, node: cst.Call, ctx: Context) -> Value:
    receiver = UNKNOWN
    method: str | None = None
    function: str | None = None
    callee = UNKNOWN
    inherited = _super_method(node, ctx)
    if inherited is not None:
        callee = Value(Kind.FUNCTION, payload=inherited[0])
    elif (actor := _ray_actor(self, node.func, ctx)) is not None:
        receiver, method = actor  # `handle.train.remote(batch)`: the actor's method, on its state
    elif isinstance(node.func, cst.Attribute):
        attr = node.func.attr.value
        base = self.eval(node.func.value, ctx)
        held = self.held_attribute(node.func, base, ctx)
        task = ray.dispatched(self, base, ctx.scope.module.path) if ray.is_remote_call(node.func) else None
        if task is not None:
            callee = task  # `Actor.remote(args)`, `task.remote(args)`: run as a direct call
        elif base.kind is Kind.NAME:
            function = f"{base.name}.{attr}"
            callee = dotted(function)
        elif held is not None and _is_callable_value(held):
            callee = held  # self.model(x): a module held in an attribute
        else:
            receiver, method = base, attr
    else:
        callee = self.eval(node.func, ctx)
        function = callee.name
    args: list[Value] = []
    kwargs: dict[str, Value] = {}
    for arg in node.args:
        value = self.eval(arg.value, ctx)
        if arg.keyword is not None:
            kwargs[arg.keyword.value] = value
        elif arg.star == "**" and value.kind is Kind.DICT and value.op in (None, FORWARDED):
            kwargs.update(value.items)  # `cls(**kwargs)` with `kwargs = dict(dtype=dtype, ...)`
        elif arg.star == "*" and value.op == FORWARDED and isinstance(value.payload, tuple):
            args.extend(value.payload)  # `f(*args)` in `def g(*args)`: g's own arguments, handed on
        elif arg.star:  # a `*spread` or `**spread` of unknown content: which parameters it fills is unknown
            kwargs[SPREAD] = UNKNOWN
        else:
            args.append(value)
    if api.last_part(dotted_text(node.func)) in MASTER_WEIGHT_WRAPPERS:
        # `FP16_Optimizer(torch.optim.Adam(model.half().parameters()))`: the wrapper steps fp32 master
        # copies, whether the framework is installed or vendored in the repository (jukebox's apex).
        wrapped = kwargs.get("init_optimizer", args[0] if args else UNKNOWN)
        if wrapped.kind is Kind.OPTIMIZER and isinstance(wrapped.payload, cst.Call):
            self.give_master_weights([wrapped.payload])
    if callee.kind is Kind.MODULE and isinstance(callee.payload, str):
        functional = api.functional_module(callee.payload)
        if functional is not None:  # `nn.LogSoftmax(dim=2)(x)`: `F.log_softmax(x, dim=2)`
            function, kwargs = functional[0], {**dict(callee.items), **kwargs}
            callee = dotted(function)
    inherited_output = _inherited_forward(self, node, ctx, args, kwargs) if inherited is None else None
    if inherited_output is not None:
        return inherited_output
    if callee.kind is Kind.SCALER or any(value.kind is Kind.SCALER for value in (*args, *kwargs.values())):
        # `loss_scaler(loss, optimizer)` (timm's NativeScaler), `backward_step(scaler, loss)`:
        # the scaler is used, by code that may scale where this analysis cannot see.
        self.note_loss_scaling(ctx.scope.module.path)
    if function is not None:
        linted = self.lookup_dotted(function, ctx.scope.module.path)
        if linted is not None and linted.kind in (Kind.FUNCTION, Kind.CLASS):
            callee, function = linted, None
    framework_init = _framework_init(self, node, ctx, function, args)
    self.current_call = (ctx.scope.module.path, node)  # the call a function of the linted code runs for
    if inherited is not None:
        # `super().init_weights()`: the base class's method on this instance, what it stores kept.
        definition, self_name = inherited
        me = ctx.scope.lookup(self_name) or UNKNOWN
        result, writes = self.call_definition(definition, args, kwargs, ctx.region, receiver=me)
        _store_attributes(ctx, self_name, writes)
    elif framework_init is not None:
        framework, self_name, given = framework_init
        _store_attributes(ctx, self_name, hooks.base_init(framework, given, kwargs))
        result = const(None)
    elif function in ("setattr", "getattr") and len(args) >= 2 and isinstance(args[1].const, str):
        result = _attribute_by_name(self, node, ctx, function, args)
    elif function == "getattr" and len(args) == 2 and args[0].name in api.PICKED_BY_NAME:
        result = dotted(api.PICKED_BY_NAME[args[0].name])
    elif function == "dict" and not args:
        result = Value(Kind.DICT, items=tuple(sorted(kwargs.items())))
    elif function == "vars" and len(args) == 1 and args[0].kind in (Kind.INSTANCE, Kind.DICT):
        # `argparse.Namespace(**vars(model_args), **vars(training_args))` (qlora): the fields, spread.
        result = Value(Kind.DICT, items=args[0].items)
    elif function in NAMEDTUPLES and args and isinstance(args[0].const, str):
        result = Value(Kind.NAME, payload=args[0].const, op=RECORD, items=_record_fields(node))
    elif callee.op == RECORD:  # `CausalLMOutputs(logits=logits, hidden_states=h)`: fields read back
        fields = [name for name, _ in callee.items]
        fields_given = {**dict(zip(fields, args, strict=False)), **kwargs}
        result = Value(Kind.DICT, op=NAMESPACE, items=tuple(sorted(fields_given.items())))
    elif callee.kind is Kind.FUNCTION and isinstance(callee.payload, Lambda):
        result = _call_lambda(self, node, ctx, callee.payload, args)
    elif function == "functools.partial" and args and args[0].kind in (Kind.FUNCTION, Kind.CLASS):
        # `score_fn = partial(avg_logprob, model=model)`: the model reaches wherever it is called.
        bound = Partial(args[0], tuple(args[1:]), tuple(sorted(kwargs.items())))
        result = Value(Kind.FUNCTION, payload=bound)
    elif callee.kind is Kind.FUNCTION and isinstance(callee.payload, Partial):
        bound = callee.payload
        args, kwargs = [*bound.args, *args], {**dict(bound.kwargs), **kwargs}
        result = self.dispatch(node, ctx, bound.function, None, receiver, None, args, kwargs)
    else:
        result = self.dispatch(node, ctx, callee, function, receiver, method, args, kwargs)
    self.current_call = None  # what runs later (a property getter) runs for no call of its own
    if result.region is None and result.kind in (Kind.ANY, Kind.TENSOR):
        # Whatever is computed from a value of an autocast region still carries its gradient path.
        tainted = next((value.region for value in (receiver, *args, *kwargs.values()) if value.region), None)
        if tainted is not None:
            result = result.with_(region=tainted)
    fact = CallFact(
        node,
        ctx.scope.module.path,
        function,
        method,
        receiver,
        tuple(args),
        tuple(kwargs.items()),
        ctx.region,
        result,
        _called_definition(callee, receiver, method),
        callee if callee.kind is Kind.MODULE else None,
        self.condition,
        self.chain,
        self.call_sites,
        self.in_module,
    )
    if self.keeps_facts_of(fact.path):
        record(self.facts, node, fact)
    return result


def held_attribute(self: Interpreter, node: cst.Attribute, base: Value, ctx: Context) -> Value | None:
    """What an attribute holds when the code assigned it (`self.model = ...`), else None."""
    attr = node.attr.value
    if isinstance(node.value, cst.Name):
        tracked = ctx.scope.lookup(f"{node.value.value}.{attr}")
        if tracked is not None:
            return tracked
    if base.kind in (Kind.INSTANCE, Kind.MODULE) and isinstance(base.payload, Definition):
        held = base.item(attr) or self.attributes_of(base.payload).get(attr)
        getter = base.payload.method(attr)
        if held is None and getter is not None and getter.is_property:
            return self.attribute_of(base, attr)  # `self.actor_class(...)`: what the property gives, called
        return held
    return None


def dispatch(
    self: Interpreter,
    node: cst.Call,
    ctx: Context,
    callee: Value,
    function: str | None,
    receiver: Value,
    method: str | None,
    args: list[Value],
    kwargs: dict[str, Value],
) -> Value:
    if method is not None:
        return self.call_method(node, ctx, receiver, method, args, kwargs)
    if function is not None:
        return self.call_named(node, ctx, function, args, kwargs)
    if callee.kind is Kind.FUNCTION and isinstance(callee.payload, Definition):
        bound = callee.item(BOUND_SELF)
        result, writes = self.call_definition(callee.payload, args, kwargs, ctx.region, receiver=bound)
        _cast_arguments(self, node, ctx, writes)
        return result
    if callee.kind is Kind.CLASS and isinstance(callee.payload, Definition):
        return self.construct(node, ctx, callee.payload, args, kwargs)
    if callee.kind in (Kind.CLASS, Kind.FUNCTION) and isinstance(callee.payload, Alternatives):
        # A class picked by branches (`trainer_cls = A if use_vllm else B`): an instance of either; a
        # function so picked (`loss_fn = self._cross_device_loss if flag else self._in_batch_loss`):
        # what either gives.
        return one_of(
            [self.dispatch(node, ctx, each, None, receiver, None, args, kwargs) for each in alternatives(callee)]
        )
    if callee.kind in (Kind.MODULE, Kind.ANY) and (
        callee.precision is not Precision.UNKNOWN or callee.kind is Kind.MODULE
    ):
        note_replicated_call(self, node, callee, ctx)
        return self.forward(callee, args, kwargs, ctx)
    if callee == UNKNOWN and isinstance(node.func, cst.Name) and _low_region(ctx.region):
        # `logits = model(tokens)` with `model` a parameter: whatever its weights, a module's
        # output under a low-precision autocast region is in the region's dtype.
        return self.lowered(Value(Kind.TENSOR), ctx.region)
    return UNKNOWN


def construct(
    self: Interpreter, node: cst.Call, ctx: Context, definition: Definition, args: list[Value], kwargs: dict[str, Value]
) -> Value:
    if definition.is_optimizer:
        params = args[0] if args else kwargs.get("params", UNKNOWN)
        return Value(Kind.OPTIMIZER, payload=node, identity=params.identity)
    if self.constructing and definition.is_module:
        self.builds.setdefault(self.constructing[-1], []).append(node)
    bare = self.instance_of(definition, node, ())
    init = definition.method("__init__")
    writes: dict[str, Value] = {}
    if definition.fields is not None and (init is None or init.owner is not definition):
        # A dataclass: its generated `__init__` stores the fields, then `__post_init__` runs.
        writes = _dataclass_fields(definition, args, kwargs)
        post = definition.method("__post_init__")
        if post is not None:
            filled = self.instance_of(definition, node, tuple(sorted(writes.items())))
            writes.update(self.call_definition(post, [], {}, ctx.region, receiver=filled)[1])
    elif init is not None:
        writes = dict(self.call_definition(init, args, kwargs, ctx.region, receiver=bare)[1])
    elif (base := hooks.framework_base(self, definition)) is not None:
        writes = hooks.base_init(base, args, kwargs)  # the framework class's own `__init__` runs
    self_cast = writes.pop(SELF, None)
    instance = self.instance_of(definition, node, tuple(sorted(writes.items())))
    if self_cast is not None and self_cast.kind is Kind.MODULE:
        # `self.to(torch.bfloat16)`, `self.float()` or a loop over `self.modules()` in `__init__`:
        # the whole instance, its submodules with it (a loop's MIXED leaves them unknown).
        return recast(instance, self_cast)
    return hooks.constructed(self, node, ctx, definition, instance, args, kwargs)


def forward(self: Interpreter, module: Value, args: list[Value], kwargs: dict[str, Value], ctx: Context) -> Value:
    """The output of calling a module: its own precision, lowered by an active autocast region (and
    made fp32 or computed in another dtype by a framework that wraps the forward, see `hooks.forward`)."""
    return hooks.forward(self, module, lambda model: module_output(self, model, args, kwargs, ctx))


def module_output(self: Interpreter, module: Value, args: list[Value], kwargs: dict[str, Value], ctx: Context) -> Value:
    if isinstance(module.payload, registries.Built):
        with self.memo.uncounted():
            return registries.output(module.payload, lambda model: module_output(self, model, args, kwargs, ctx))
    definition = module.payload if isinstance(module.payload, Definition) else None
    region = accelerate.forward_region(module) or ctx.region
    opaque = False  # a forward of the linted code whose result this analysis cannot tell
    if definition is not None:
        forward = definition.method("forward")
        if forward is not None:
            result = self.call_definition(forward, args, kwargs, region, receiver=module)[0]
            # A record (`CausalLMOutputs(logits=..., hidden_states=...)`) or a tuple (`return
            # actor_logits, critic_values`) is what the forward returns, whatever its fields' dtypes
            # are known to be; under an autocast region the output is the region's (below), which
            # also carries the region's gradient path.
            record = (result.kind is Kind.DICT or is_tuple(result) or holds_tuple(result)) and region is None
            if result.precision is not Precision.UNKNOWN or result.region is not None or record:
                return result
            region = forward.region or region
            opaque = True
    # A module half in part (`MIXED`: BatchNorm kept fp32, a head cast back; an fp32 module holding
    # a half submodule) gives an output of unknown dtype.
    mixed = is_mixed(module) or (not module.precision.is_low and half_submodule(module) is not None)
    # A value of unknown kind cast to half and run (`model = model.to(torch.bfloat16)` on a parameter),
    # or a wrapper whose forward runs what it cannot tell (MambaInLlama's `return self.model(input_ids)`
    # over a Transformers model): of unknown class, in a repository whose pinned transformers upcasts
    # the common families' logits.
    unknown_class = (
        (module.kind is Kind.ANY or opaque)
        and module.precision.is_low
        and causal_lm.common_families_upcast(self, ctx.scope.module.path)
    )
    precision = Precision.UNKNOWN if mixed or unknown_class else module.precision
    output = Value(Kind.TENSOR, precision, origin=module.origin if precision.is_low else None)
    return causal_lm.output(module, self.lowered(output, region))


def call_named(
    self: Interpreter, node: cst.Call, ctx: Context, function: str, args: list[Value], kwargs: dict[str, Value]
) -> Value:
    path = ctx.scope.module.path
    leaf = api.op_of(function)
    first = args[0] if args else kwargs.get("input", UNKNOWN)
    if function in api.AUTOCAST_ENTRY_POINTS:
        return self.autocast(node, ctx, function, args, kwargs)
    if function in api.NO_GRAD_CONTEXTS:
        return dotted(function)
    if function in api.ACCELERATOR_QUERIES:
        return const(True)  # the GPU the training script is written for
    if function in api.LAUNCH_QUERIES:
        return const(False)  # `python train.py`: one process, no process group
    if function in api.ENVIRONMENT_READS and len(args) == 2:
        return args[1]  # `os.environ.get("RANK", -1)`: started plainly, the launcher's variables are unset
    if function == "torch.device" and args and isinstance(args[0].const, str):
        return args[0]  # a device is its string here: `device.type`, `str(device)`
    if function == "str" and args and isinstance(args[0].const, str):
        return args[0]
    remote = ray.call_named(function, args)
    if remote is not None:
        return remote
    if function in ml_collections.DEFINE_CONFIG_FILE:
        ml_collections.define_config_file(self, path, args, kwargs)
        return UNKNOWN
    if function in launchpad.NODES:
        return launchpad.node(self, node, ctx, args, kwargs)
    if function in ARGUMENT_PARSERS:
        return Value(Kind.INSTANCE, op=PARSER, identity=node)
    if function == "open" and args and isinstance(args[0].const, str):
        return Value(Kind.ANY, op=OPENED_FILE, payload=args[0].const)
    built_path = file_paths.path_call(function, args)
    if built_path is not None:
        return built_path
    if args and (function in CONFIG_LOADERS or (function in TEXT_CONFIG_READERS and args[0].op == OPENED_FILE)):
        # `yaml.safe_load(open("configs/train.yaml"))`, `OmegaConf.load(args.config)`,
        # `OmegaConf.create(fp.read())`: the repository's config file is configuration (read once; a
        # cache dependency).
        name = args[0].payload if args[0].op == OPENED_FILE else args[0].const
        return configuration.config_file(self, name, path) if isinstance(name, str) else UNKNOWN
    if function == "isinstance" and len(args) == 2:
        return _literal_type_test(args[0], args[1])
    if function in MODULE_IMPORTERS and args and isinstance(args[0].const, str):
        return dotted(_imported_module(function, args[0].const, kwargs))
    if function in api.PARAMETER_CLASSES:
        data = first if args else kwargs.get("data", UNKNOWN)  # `nn.Parameter(data=torch.randn(...))`
        return data.with_(op=PARAMETER_OP) if data.kind is Kind.TENSOR else UNKNOWN
    if function in DATACLASS_PARSERS and args:
        return self.parsed_dataclass(node, ctx, args[0])  # `args = tyro.cli(Args)`: its defaults, as launched
    if function == "dataclasses.field":
        factory = kwargs.get("default_factory")
        if factory is not None and factory.kind is Kind.CLASS and isinstance(factory.payload, Definition):
            # `model: ModelConfig = field(default_factory=ModelConfig)`: a nested config's defaults
            return self.construct(node, ctx, factory.payload, [], {})
        if factory is not None and factory.kind is Kind.FUNCTION and isinstance(factory.payload, Lambda):
            # `modules_to_save: list[str] = field(default_factory=lambda: ["embed_tokens", "lm_head"])`
            return _call_lambda(self, node, ctx, factory.payload, [])
        return kwargs.get("default", UNKNOWN)  # `bf16: bool = field(default=True)`: the field's default
    if function == "pydantic.Field":
        # `dtype: str = Field("bfloat16", description=...)`: its default, given first or as `default=`
        # (`Field(...)`, the Ellipsis, is a required field: no default).
        field_default = first if args else kwargs.get("default", UNKNOWN)
        return UNKNOWN if field_default.name == "Ellipsis" else field_default
    if function in CONFIG_RECORDS:
        # `config = ml_collections.ConfigDict()` then `config.use_lora = True`, `cfg = EasyDict({...})`:
        # a record of settings, its attributes set where it is built (`statements.with_attributes`).
        given = dict(args[0].items) if args and args[0].kind is Kind.DICT else {}
        return Value(Kind.DICT, op=NAMESPACE, items=tuple(sorted({**given, **kwargs}.items())), identity=node)
    if kwargs and "Output" in leaf:
        # Transformers' ModelOutput classes (`CausalLMOutputWithPast(logits=...)`): a record whose
        # fields read back, as `out.logits` and as `out["logits"]`.
        return Value(Kind.DICT, op=NAMESPACE, items=tuple(sorted(kwargs.items())))
    if function in accelerate.DEEPSPEED_PREPARERS and args:
        return accelerate.deepspeed_prepared(self, args[0], node, ctx)
    if function in accelerate.GENERATION_UNWRAPPERS and args:
        return args[0]  # the model as `unwrap_model` gives it: what `as` binds
    if function in api.MODEL_RUNNERS and args:
        return self.forward(args[0], [], {}, ctx)  # TRL's `forward(model, query_responses, pad_token_id)`
    if function in ("torch.set_default_dtype", "torch.set_default_tensor_type") and args:
        # Process-global: it holds for the script that runs this (`entry`), in whatever file it is
        # set. A default restored from a value of unknown dtype is unknown, not fp32.
        precision = self.dtype_value(args[0]) or Precision.UNKNOWN
        self.set_default_dtype(
            path, precision, Origin("", "default dtype set", path, node) if precision.is_low else None
        )
        return UNKNOWN
    if function == "torch.get_default_dtype":
        precision, origin = self.default_dtype_at(path, Precision.FP32)
        return Value(Kind.DTYPE, precision, origin=origin) if precision is not Precision.UNKNOWN else UNKNOWN
    if function in api.GRAD_SCALERS or leaf in ("DynamicLossScaler", "NativeScalerWithGradNormCount"):
        # Built is not used: the file scales losses once the scaler scales one, is called, or
        # is handed to code that may (see `note_scaler_use`).
        return Value(Kind.SCALER, identity=node)  # its construction tells two scalers apart
    if function == deepspeed.INITIALIZE:
        return deepspeed.initialize(self, node, ctx, args, kwargs)
    if function == deepspeed.ADD_CONFIG_ARGUMENTS and args and args[0].op == PARSER:
        for option, default in deepspeed.CONFIG_ARGUMENTS:
            self.argument_parser(args[0], "add_argument", [const(option)], {"default": const(default)})
        return args[0]  # the parser, with DeepSpeed's options added
    if function in hydra.INSTANTIATE:
        return hydra.instantiate(self, node, ctx, args, kwargs)
    if function in apex.INITIALIZE:
        return apex.initialize(self, node, ctx, args, kwargs)
    if function in accelerate.ACCELERATORS:
        return accelerate.accelerator(self, node, ctx, kwargs)
    handled = hooks.call_named(self, node, ctx, function, args, kwargs)
    if handled is not None:
        return handled
    if leaf == "scale_loss":  # `amp.scale_loss(loss, optimizer)`, apex imported
        return _scaled_loss(self, ctx, args[0] if args else kwargs.get("loss", UNKNOWN))
    if _is_loss_scaling_framework(function, kwargs):
        self.note_loss_scaling(path)
        return UNKNOWN
    if api.is_optimizer(function):
        params = first if args else kwargs.get("params", UNKNOWN)
        return Value(Kind.OPTIMIZER, payload=node, identity=params.identity)
    if function in api.OPTIMIZER_FACTORIES:
        # `create_optimizer_v2(model, opt="adamw")`: over the model's parameters, or those handed in.
        model_keyword, groups_keyword = api.OPTIMIZER_FACTORIES[function]
        handed = first if args else kwargs.get(model_keyword, UNKNOWN)
        groups = kwargs.get(groups_keyword, args[2] if len(args) > 2 else None) if groups_keyword else None
        if groups is not None and not is_none(groups):
            handed = groups
        params = parameters_of(handed, handed.identity) if handed.kind in (Kind.MODULE, Kind.ANY) else handed
        return Value(Kind.OPTIMIZER, payload=node, items=(("params", params),), identity=params.identity)
    if api.is_lr_scheduler(function):
        optimizer = kwargs.get("optimizer", first)  # diffusers' `get_scheduler(name, optimizer=...)`
        return Value(Kind.SCHEDULER, payload=optimizer.payload if optimizer.kind is Kind.OPTIMIZER else None)
    if leaf in ("from_pretrained", "from_config"):
        checkpoint = first if args else kwargs.get("pretrained_model_name_or_path", UNKNOWN)
        model = causal_lm.loaded(self, function, path, self.loaded_model(node, path, kwargs), checkpoint)
        config = kwargs.get("peft_config")
        if config is not None and not is_none(config) and causal_lm.is_value_head(function):
            # TRL's `PreTrainedModelWrapper.from_pretrained(..., peft_config=...)` (trl 0.4-0.11
            # `models/modeling_base.py`) wraps the model it loads with `get_peft_model`, after
            # `prepare_model_for_kbit_training` for a k-bit one: what it trains are the adapters.
            return peft.call(self, node, ctx, "peft.get_peft_model", [model, config], {})
        return model
    if function in COPIES and first.kind in (Kind.MODULE, Kind.INSTANCE):
        # `copy.deepcopy(model)`: another object (an optimizer over one is not over the other) of the same
        # class, dtype and submodules (RLAIF-V's reference model, `copy.deepcopy(model).cuda()`).
        return first.with_(identity=node)
    if function in COPIES and first.kind is Kind.DICT:
        return first  # `copy.deepcopy(self.ds_train_config)`: the same settings (safe-rlhf's actor engine)
    if function in api.MODULE_WRAPPERS:
        if function in api.DATA_PARALLEL:  # keyed by identity: a model of none is never looked up
            self.data_parallel[first.identity] = node
        return first
    if leaf in ("FullyShardedDataParallel", "FSDP", "fully_shard"):
        return UNKNOWN if "mixed_precision" in kwargs or "mp_policy" in kwargs else first
    if api.is_nn_module_class(function) or api.is_torchvision_model(function):
        if self.constructing:
            # A layer an `__init__` builds (directly or in a helper it calls): part of that class's tree.
            self.builds.setdefault(self.constructing[-1], []).append(node)
        return self.built_module(node, path, function, args, kwargs)
    if function.startswith("torch.") and leaf in (
        "randn",
        "rand",
        "zeros",
        "ones",
        "empty",
        "full",
        "tensor",
        "randn_like",
        "zeros_like",
        "ones_like",
        "empty_like",
    ):
        return self.created_tensor(node, path, leaf, args, kwargs)
    if function == "itertools.chain" and any(arg.kind is Kind.PARAMS for arg in args):
        # `itertools.chain(unet.parameters(), text_encoder.parameters())` (sd-scripts' train_db.py)
        return combine_params(args)
    if function == "len" and len(args) == 1 and (elements := literal_values(args[0])) is not None:
        return const(len(elements))  # `len(sys.argv) == 2` of a script started as its commands start it
    if function.startswith("math.") or (function in NUMBER_BUILTINS and not any(is_tensor_like(arg) for arg in args)):
        folded = (
            fold_numbers(function, args[0].const, None) if len(args) == 1 and function in FOLDED_FUNCTIONS else None
        )
        return const(folded) if folded is not None else NUMBER  # `/ math.sqrt(d_k)`: a Python number
    if function.startswith(("torch.", "F.")) or function in BUILTINS or api.library_op(function) is not None:
        return self.tensor_op(node, ctx, leaf, function, first, args, kwargs)
    return UNKNOWN


def call_method(
    self: Interpreter,
    node: cst.Call,
    ctx: Context,
    receiver: Value,
    method: str,
    args: list[Value],
    kwargs: dict[str, Value],
) -> Value:
    if receiver.op == PARSER:
        if method == "add_arguments" and args:
            # simple_parsing: `parser.add_arguments(TrainConfig, dest="config")`, then `args.config` is
            # the dataclass as parsed, its fields' defaults when started plainly.
            dest = kwargs.get("dest", args[1] if len(args) > 1 else UNKNOWN).const
            if isinstance(dest, str):
                defaults = self.option_defaults.setdefault(receiver.identity, {})
                defaults[dest] = self.parsed_dataclass(node, ctx, args[0])
            return UNKNOWN
        return self.argument_parser(receiver, method, args, kwargs)
    if receiver.op == accelerate.ACCELERATOR:
        handled = accelerate.method(self, receiver, method, node, ctx, args, kwargs)
        if handled is not None:
            return handled
    if receiver.op in hooks.RECEIVER_OPS:
        handled = hooks.call_method(self, node, ctx, receiver, method, args, kwargs)
        if handled is not None:
            return handled
    if receiver.op == file_paths.FILE_PATH and method == "open":
        return Value(Kind.ANY, op=OPENED_FILE, payload=receiver.const)  # `TEMPLATE.open(mode="rt")`
    if receiver.op == OPENED_FILE and method == "read":
        return receiver  # the file's text, which a config reader reads as it would the file
    built_path = file_paths.path_method(receiver, method, args)
    if built_path is not None:
        return built_path
    if isinstance(receiver.const, str) and method in STRING_METHODS:
        # `args.optimizer.lower() == "adam"`: a configuration string, normalised.
        arguments = [arg.const for arg in args]
        if all(isinstance(argument, str) for argument in arguments) and not kwargs:
            return const(getattr(receiver.const, method)(*arguments))
    if method in ("scale", "scale_loss") and args and receiver.kind is not Kind.TENSOR:
        return _scaled_loss(self, ctx, args[0])  # any loss scaler's API, tracked or handed in
    if receiver.kind is Kind.SCALER:
        return UNKNOWN
    if receiver.kind is Kind.OPTIMIZER:
        if method == "step":
            self.commit_late_casts(receiver)
        return UNKNOWN
    if method == "step" and args and args[0].kind is Kind.OPTIMIZER:
        self.commit_late_casts(args[0])  # scaler.step(optimizer) with an untracked scaler
    if receiver.kind is Kind.PARAMS and (method in ("items", "values") or method in api.PRESERVING_OPS):
        return receiver  # param_dict.items(), p.detach(): still those parameters
    pooled = receiver.item(ANY_KEY) if receiver.kind is Kind.DICT else None
    if pooled is not None and method in ("values", "items"):
        # The lists stored under keys not known: `for key, group in param_group.items()`.
        return pooled if method == "values" else Value(Kind.ANY, op="zip", payload=(UNKNOWN, pooled))
    if receiver.kind is Kind.DICT and receiver.op is None and receiver.items and method == "values":
        # `list(self.learnable_params.values())`: what is stored under each known key, as a list holds it.
        return sequence(tuple(value for _, value in receiver.items))
    if receiver.kind is Kind.DICT and method in ("setdefault", "update") and isinstance(node.func, cst.Attribute):
        return _dict_mutation(self, node.func.value, ctx, receiver, method, args, kwargs)
    if receiver.kind is Kind.DICT:
        key = args[0].const if method == "get" and args else None
        return (receiver.item(key) or UNKNOWN) if isinstance(key, str) else UNKNOWN
    if receiver.kind in (Kind.INSTANCE, Kind.MODULE) and isinstance(receiver.payload, Alternatives):
        return _method_of_each(self, node, ctx, receiver, method, args, kwargs)
    if receiver.kind in (Kind.INSTANCE, Kind.MODULE, Kind.CLASS) and isinstance(receiver.payload, Definition):
        # A method, or a classmethod/staticmethod called on the class (`LLaMA.from_pretrained_llama3_meta(...)`).
        definition = receiver.payload.method(method)
        autograd = receiver.payload.method("forward") if method == "apply" and definition is None else None
        if receiver.kind is Kind.CLASS and autograd is not None and autograd.static:
            # `_GatherFromSequenceParallelRegion.apply(x)`: a torch.autograd.Function's forward.
            return self.call_definition(autograd, [UNKNOWN, *args], kwargs, ctx.region)[0]
        if definition is not None:
            if method == "forward":
                note_replicated_call(self, node, receiver, ctx)
            receiver = _as_stored(ctx, _receiver_expression(node), receiver)
            actor = ray.is_remote_call(node.func)
            if actor:
                receiver = ray.actor_state(self, receiver)
            result, writes = self.call_definition(definition, args, kwargs, ctx.region, receiver=receiver)
            if actor:
                ray.keep_actor_state(self, receiver, writes)
            if receiver.kind is not Kind.CLASS:
                _note_writes(ctx, _receiver_expression(node), receiver, writes)
            if _is_same_object(result, receiver):
                # `exp = Exp().set_cfg(cfg)` with `self.cfg = cfg; return self`: the object as the method left it.
                return with_stored(result, {attr: value for attr, value in writes.items() if attr != SELF})
            return result
        if receiver.kind is Kind.INSTANCE:
            stored = _as_stored(ctx, _receiver_expression(node), receiver)
            inherited_result = hooks.inherited_method(self, ctx, stored, method, args, kwargs)
            if inherited_result is not None:
                return inherited_result
        if receiver.kind is Kind.CLASS and method in PRETRAINED_LOADERS and isinstance(receiver.payload, Definition):
            loaded = _pretrained_subclass(self, node, ctx, receiver.payload, kwargs)
            if loaded is not None:
                return loaded
        if receiver.kind is Kind.CLASS and method == ray.OPTIONS:
            return receiver  # `Actor.options(num_gpus=1)`: the actor class, scheduled as asked
    if method in PRETRAINED_LOADERS and receiver == UNKNOWN:
        # `model_class.from_pretrained(path, torch_dtype=torch.bfloat16)` on a class picked at run time
        # (align-anything's `AnyModel`, by the checkpoint's `model_type`): weights in that dtype, of a
        # class not known (whose logits the pinned transformers may upcast, see `module_output`).
        loaded = self.loaded_model(node, ctx.scope.module.path, kwargs)
        return loaded.with_(kind=Kind.ANY) if loaded.precision.is_low else UNKNOWN
    target = self.cast_target(method, args, kwargs, receiver)
    if target is not None:
        if target is Precision.UNKNOWN:
            return receiver.with_(precision=Precision.UNKNOWN, origin=None)
        return self.cast(receiver, target, node, ctx)
    if receiver.kind in (Kind.MODULE, Kind.ANY):
        if method in api.PARAMETER_METHODS:
            # A method call (see eval_call): `node.func` is `receiver.method`.
            return parameters_of(receiver, receiver.identity or binding_key(_module_expression(node)))
        if method in ("forward", "__call__"):
            note_replicated_call(self, node, receiver, ctx)
            return self.forward(receiver, args, kwargs, ctx)
        if method == "apply" and args and args[0].kind is Kind.FUNCTION and isinstance(args[0].payload, Definition):
            bound = args[0].item(BOUND_SELF) is not None and not args[0].payload.static
            return self.apply_function(node, ctx, receiver, args[0].payload, bound=bound)
        if method in api.MODULE_PASSTHROUGH_METHODS or method == "to":
            return receiver
        if method in peft.UNWRAPPERS and receiver.op in peft.OPS:
            return receiver.with_(op=None, items=())
        if method in api.EMBEDDING_GETTERS:
            # Its parameters are the model's (an in-place cast of the model casts them): its identity.
            return receiver.with_(payload=None, items=()) if receiver.kind is Kind.MODULE else receiver
        if method in api.KNOWN_SUBMODULES and receiver.kind is Kind.MODULE:
            return self.forward(receiver.with_(payload=None, items=()), args, kwargs, ctx)
        if method == "generate" and receiver.kind is Kind.MODULE:
            # The logits of one step: those a forward of the model gives (a project class's forward is
            # not run without its inputs: a module of its dtype).
            model = receiver.with_(payload=None) if isinstance(receiver.payload, Definition) else receiver
            output = self.forward(model, [], {}, ctx)
            logits = output if output.kind is Kind.TENSOR else output.item("logits") or UNKNOWN
            return causal_lm.generated(self, logits, kwargs, ctx.scope.module.path)
        if receiver.kind is Kind.MODULE:
            return UNKNOWN
    if receiver.kind is Kind.TENSOR or (receiver.kind is Kind.ANY and receiver.precision is not Precision.UNKNOWN):
        return self.tensor_op(node, ctx, method, None, receiver, args, kwargs)
    if receiver.kind is Kind.ANY and (receiver.region is not None or receiver.op == BOOLEAN):
        return receiver if method in api.PRESERVING_OPS else UNKNOWN
    return UNKNOWN


def parameters_of(module: Value, identity: object) -> Value:
    """`module.parameters()`: in the module's precision, or half in part where a submodule is half;
    those half in part by child too, for a filter by name to pick one (`"policy." in n`). A PEFT
    model's are the trainable ones (`peft.parameters`)."""
    if module.op in peft.OPS:
        return peft.parameters(module, identity)
    params = _own_parameters(module, identity)
    if is_mixed(params) and module.items:
        children = tuple(
            (name, parameters_of(item, identity)) for name, item in module.items if item.kind is Kind.MODULE
        )
        return params.with_(items=children)
    return params


def _own_parameters(module: Value, identity: object) -> Value:
    if module.precision.is_low:
        return Value(Kind.PARAMS, module.precision, origin=module.origin, identity=identity, op=module.op)
    half = half_submodule(module, skipping=peft.OPS)
    if half is not None:
        return Value(Kind.PARAMS, half.precision, origin=half.origin, identity=identity, op=MIXED)
    # A PEFT model held: what an optimizer over its parameters updates are its trainable ones.
    adapted = peft.held_trainable_parameters(module, identity)
    if adapted is not None:
        return adapted
    return Value(Kind.PARAMS, module.precision, origin=module.origin, identity=identity)


def note_replicated_call(self: Interpreter, node: cst.Call, module: Value, ctx: Context) -> None:
    """A call of a module wrapped in `nn.DataParallel` inside an autocast region: its replicas run in
    threads that see the region's enabled flag, not its dtype (`ReplicatedCall`)."""
    wrapper = self.data_parallel.get(module.identity) if module.identity is not None else None
    if wrapper is None or ctx.region is None or not self.keeps_facts_of(ctx.scope.module.path):
        return
    definition = module.payload if isinstance(module.payload, Definition) else None
    call = ReplicatedCall(
        node, ctx.scope.module.path, wrapper, self.path_of_call(wrapper), ctx.region, definition, self.condition
    )
    found = self.replicated_calls.setdefault(node, [])
    if call not in found:
        found.append(call)


# Optimizer wrappers that keep fp32 master copies of half parameters and step those: apex's
# `fp16_utils.FP16_Optimizer` and `optimizers.FP16_Optimizer` (apex 0466713, fp16_utils/
# fp16_optimizer.py `fp32_from_fp16_groups`; optimizers/fp16_optimizer.py `fp32_groups_flat`),
# DeepSpeed's `runtime.fp16.fused_optimizer.FP16_Optimizer` (`fp32_groups_flat`) and Megatron's
# `Float16OptimizerWithFloat16Params` (its fp32 main params). By the name the call is written with.
MASTER_WEIGHT_WRAPPERS = frozenset({"FP16_Optimizer", "Float16OptimizerWithFloat16Params"})


# Methods of a configuration string whose result folds (those of `str` without side effects).
STRING_METHODS = frozenset({"lower", "upper", "casefold", "strip", "lstrip", "rstrip", "startswith", "endswith"})


# Python's types a literal option is tested against (`isinstance(optimizer, str)`).
LITERAL_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "dict": dict, "list": list, "tuple": tuple}
# A module imported by its name as a string: `importlib.import_module("torch.optim")`.
MODULE_IMPORTERS = frozenset({"importlib.import_module", "__import__"})
# Parsers used as argparse's (simple_parsing's subclasses it, adding `add_arguments` of dataclasses).
ARGUMENT_PARSERS = frozenset({"argparse.ArgumentParser", "simple_parsing.ArgumentParser"})
# Functions that parse the command line into an instance of the dataclass they are given.
DATACLASS_PARSERS = frozenset({"tyro.cli", "simple_parsing.parse"})
# `collections.namedtuple("CausalLMOutputs", ["logits", "hidden_states"])`: a record class.
NAMEDTUPLES = frozenset({"collections.namedtuple", "namedtuple"})
RECORD = "record"


def _record_fields(node: cst.Call) -> tuple[tuple[str, Value], ...]:
    """A namedtuple's field names, written as a list or tuple of strings or one spaced string."""
    spec = node.args[1].value if len(node.args) > 1 else None
    names: list[str] = []
    if isinstance(spec, (cst.List, cst.Tuple)):
        names = [text for element in spec.elements if (text := string_value(element.value)) is not None]
    elif spec is not None:
        names = (string_value(spec) or "").replace(",", " ").split()
    return tuple((name, UNKNOWN) for name in names)


def _call_lambda(self: Interpreter, node: cst.Call, ctx: Context, function: Lambda, args: list[Value]) -> Value:
    """`self.lm_head_fn(h)` with `self.lm_head_fn = lambda x: self.lm_head(x)` set in `__init__`:
    the body with its parameters bound; the instance it closes over as it is now (`self.lm_head`
    built since, by `init_weights()`), when it is called on it."""
    scope = Scope(function.scope.module, function.scope)  # the lambda's own file
    params = function.node.params
    for index, param in enumerate([*params.posonly_params, *params.params]):
        scope.names[param.name.value] = args[index] if index < len(args) else UNKNOWN
    owner = function.scope.lookup(SUPER)
    func = node.func
    if owner is not None and isinstance(owner.payload, tuple) and isinstance(func, cst.Attribute):
        receiver = self.eval(func.value, ctx)
        self_name = owner.payload[1]
        if receiver.kind in (Kind.INSTANCE, Kind.MODULE) and receiver.items:
            scope.names[self_name] = receiver
            for attr, value in receiver.items:
                scope.names[f"{self_name}.{attr}"] = value
    return self.eval(function.node.body, Context(scope, ctx.region, no_grad=ctx.no_grad))


def _method_of_each(
    self: Interpreter,
    node: cst.Call,
    ctx: Context,
    receiver: Value,
    method: str,
    args: list[Value],
    kwargs: dict[str, Value],
) -> Value:
    """`trainer.train()` on an instance of any of several classes (`Alternatives`): each class's
    method runs, their results joined. What one of them stores does not make the instance that
    class's: the name keeps its alternatives, each holding what its own method stored on it
    (`trainer.prepare()` keeping a reference model, for the next method each class runs)."""
    key = binding_key(_receiver_expression(node))
    bound = ctx.scope.names.get(key) if key is not None else None
    choices = alternatives(receiver)
    if method in api.PARAMETER_METHODS:
        # `for m in training_models: params.extend(m.parameters())`: every module's, each kept.
        return combine_params([self.call_method(node, ctx, each, method, args, kwargs) for each in choices])
    results: list[Value] = []
    instances: list[Value] = []  # each class's instance, with what its method stored
    for each in choices:
        results.append(self.call_method(node, ctx, each, method, args, kwargs))
        if key is not None and bound is not None:
            stored = ctx.scope.names.get(key, bound)  # `_note_writes` rebinds the name when it stores
            instances.append(each if stored is bound else stored)
            ctx.scope.names[key] = bound  # the next class's method starts from the name as it was
    if key is not None and any(instance is not each for instance, each in zip(instances, choices, strict=False)):
        ctx.scope.names[key] = one_of(instances)
    return one_of(results)


def _is_same_object(value: Value, receiver: Value) -> bool:
    """Whether a method's result is the instance it ran on (`return self`)."""
    return (
        receiver.kind in (Kind.INSTANCE, Kind.MODULE)
        and value.kind is receiver.kind
        and value.payload is receiver.payload
        and value.identity is receiver.identity
    )


def _ray_actor(self: Interpreter, func: cst.BaseExpression, ctx: Context) -> tuple[Value, str] | None:
    """`handle.method.remote(...)` on a Ray actor of a linted class: the handle and the method."""
    if not (ray.is_remote_call(func) and isinstance(func, cst.Attribute) and isinstance(func.value, cst.Attribute)):
        return None
    handle = func.value.value
    if not isinstance(handle, (cst.Name, cst.Attribute)):
        return None  # read once only: a handle computed by a call is evaluated on the usual path
    value = self.eval(handle, ctx)
    method = func.value.attr.value
    return (value, method) if ray.is_actor(value, method) else None


def _receiver_expression(node: cst.Call) -> cst.BaseExpression:
    """`model` in `model.method(...)`, and in a Ray actor call `model.method.remote(...)`."""
    func = cast(cst.Attribute, node.func)
    if ray.is_remote_call(func) and isinstance(func.value, cst.Attribute):
        return func.value.value
    return func.value


def _module_expression(node: cst.Call) -> cst.BaseExpression:
    """The module whose method `node` calls: `text_encoder` in `text_encoder.parameters()` and in
    `text_encoder.get_input_embeddings().parameters()` (a submodule's parameters are the model's)."""
    receiver = _receiver_expression(node)
    while (
        isinstance(receiver, cst.Call)
        and isinstance(receiver.func, cst.Attribute)
        and receiver.func.attr.value in api.EMBEDDING_GETTERS
    ):
        receiver = receiver.func.value
    return receiver


def _super_call(node: cst.Call, ctx: Context) -> tuple[Definition, str] | None:
    """`super().name(...)` in a method: the class of the method and the receiver's name."""
    func = node.func
    if not (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Call)):
        return None
    inner = func.value
    if not (isinstance(inner.func, cst.Name) and inner.func.value == "super" and not inner.args):
        return None
    found = ctx.scope.lookup(SUPER)
    if found is None or not isinstance(found.payload, tuple) or found.payload[0] is None:
        return None
    return found.payload


def _super_method(node: cst.Call, ctx: Context) -> tuple[Definition, str] | None:
    """`super().name(...)` in a method: the base class's method it runs, and the receiver's name."""
    called = _super_call(node, ctx)
    if called is None:
        return None
    owner, self_name = called
    name = cast(cst.Attribute, node.func).attr.value
    for base in owner.bases:
        method = base.method(name)
        if method is not None:
            return method, self_name
    return None


# Records of settings whose attributes read back what was set (a namespace, a config dictionary).
CONFIG_RECORDS = frozenset(
    {
        "types.SimpleNamespace",
        "argparse.Namespace",
        "ml_collections.ConfigDict",
        "ml_collections.config_dict.ConfigDict",
        "ml_collections.config_dict.config_dict.ConfigDict",
        "easydict.EasyDict",
        "yacs.config.CfgNode",
    }
)

# Copies of an object.
COPIES = frozenset({"copy.deepcopy", "copy.copy"})

# Classmethods of transformers' models that build one: of a project's subclass, an instance of it.
PRETRAINED_LOADERS = frozenset({"from_pretrained", "from_config"})


def _pretrained_subclass(
    self: Interpreter, node: cst.Call, ctx: Context, definition: Definition, kwargs: dict[str, Value]
) -> Value | None:
    """`LlavaLlamaForCausalLM.from_pretrained(path, torch_dtype=torch.bfloat16)` for a project's class
    over a transformers model: an instance built from an unknown config, its submodules at any depth
    in the dtype it is loaded in (transformers builds it in that default dtype)."""
    if hooks.framework_base(self, definition, api.is_transformers_model) is None:
        return None
    loaded = self.loaded_model(node, ctx.scope.module.path, kwargs)
    if loaded.kind is not Kind.MODULE:
        return None
    return recast(construct(self, node, ctx, definition, [UNKNOWN], {}), loaded)


def _inherited_forward(
    self: Interpreter, node: cst.Call, ctx: Context, args: list[Value], kwargs: dict[str, Value]
) -> Value | None:
    """`return super().forward(...)` in a project's class over a transformers model (RLAIF-V's
    `LlavaLlamaForCausalLM(LlamaForCausalLM)`): fp32 logits where that class upcasts them in the
    version the repository pins, else what a module of the instance's dtype computes."""
    called = _super_call(node, ctx)
    if called is None or cast(cst.Attribute, node.func).attr.value not in ("forward", "__call__"):
        return None
    owner, self_name = called
    base = hooks.framework_base(self, owner, api.is_transformers_model)
    if base is None:
        return None
    upcast = causal_lm.inherited_output(self, base, ctx.scope.module.path)
    if upcast is not None:
        return upcast
    me = ctx.scope.lookup(self_name)
    if me is None or me.kind is not Kind.MODULE:
        return None
    return module_output(self, me.with_(payload=None), args, kwargs, ctx)  # the base's forward: a module of its dtype


def _framework_init(
    self: Interpreter, node: cst.Call, ctx: Context, function: str | None, args: list[Value]
) -> tuple[str, str, list[Value]] | None:
    """`super().__init__(model=model, args=args)` in a method of a linted class that derives from a
    framework's class, or `Trainer.__init__(self, model=model, ...)`: that class, the receiver's name
    and the positional arguments the framework's `__init__` is given after it."""
    if function is not None and function.endswith(".__init__"):
        first = node.args[0].value if node.args else None
        if isinstance(first, cst.Name) and not node.args[0].star:
            return function.removesuffix(".__init__"), first.value, args[1:]
        return None
    called = _super_call(node, ctx)
    if called is None or cast(cst.Attribute, node.func).attr.value != "__init__":
        return None
    owner, self_name = called
    base = hooks.framework_base(self, owner)
    return (base, self_name, args) if base is not None else None


def _as_stored(ctx: Context, target: cst.BaseExpression, receiver: Value) -> Value:
    """`self.init_lora()` in a method (`__init__`): the instance with what the method has stored on it
    so far (`self.transformer = pipe.transformer`), for the called method's reads of `self.<attr>`."""
    found = ctx.scope.lookup(SUPER)
    if not (isinstance(target, cst.Name) and found is not None and isinstance(found.payload, tuple)):
        return receiver
    stored = stored_on(ctx.scope, target.value) if found.payload[1] == target.value else {}
    if not stored:
        return receiver
    return receiver.with_(items=tuple(sorted({**dict(receiver.items), **stored}.items())))


def _store_attributes(ctx: Context, name: str, writes: dict[str, Value]) -> None:
    """What a method run on the instance `name` stored on it, as `name.<attr>` reads see it."""
    for attr, value in writes.items():
        if attr != SELF:
            ctx.scope.names[f"{name}.{attr}"] = value


def _note_writes(ctx: Context, target: cst.BaseExpression, receiver: Value, writes: dict[str, Value]) -> None:
    """`model.init_weights()`, `self.model.setup()`: the attributes a method stores on the instance it
    is called on hold from then on, for reads of them and of the instance (`model.parameters()`)."""
    stored = {attr: value for attr, value in writes.items() if attr != SELF}
    key = binding_key(target)
    if not stored or key is None:
        return
    found = ctx.scope.lookup(SUPER)
    if found is not None and isinstance(found.payload, tuple) and found.payload[1] == key:
        _store_attributes(ctx, key, stored)  # `self.reset()`: this method's own receiver
        return
    ctx.scope.names[key] = with_stored(receiver, stored)
    if isinstance(target, cst.Name):
        _store_attributes(ctx, key, stored)


# The fields of a framework's argument class a launch command may set (`--bf16 True --deepspeed
# ds.json`), with their defaults: those of transformers' `TrainingArguments` and TRL's configs that
# `frameworks.transformers` reads.
_FRAMEWORK_FIELDS = {"fp16": const(False), "bf16": const(False), "deepspeed": const(None), "fsdp": const("")}


# Readers of a config file, given the file opened or its name, and the `Value.op` of an opened file.
CONFIG_LOADERS = frozenset({"json.load", "yaml.safe_load", "yaml.load", "yaml.full_load", "omegaconf.OmegaConf.load"})
OPENED_FILE = "an opened file"
# Readers of a config's text, given a file's text (`fp.read()`); given anything else, not a file's.
TEXT_CONFIG_READERS = frozenset({"omegaconf.OmegaConf.create"})


def parsed_dataclass(
    self: Interpreter, node: cst.Call, ctx: Context, kind: Value, *, config_file: bool = False
) -> Value:
    """What a command-line parser (`HfArgumentParser`, `tyro.cli`, simple_parsing) makes of the dataclass `kind`: an
    instance with its fields' defaults, those the repository's launch commands give replacing them
    (over the settings of their `--config` files, for a parser that reads them: `config_file`); of a
    linted class (a framework base's defaults too, and the precision flags of a framework's argument
    class it derives from) or of a framework's own (`TrainingArguments`, `GRPOConfig`, whose
    precision flags are read; TRL's `ModelConfig`)."""
    if kind.kind is Kind.CLASS and isinstance(kind.payload, Definition):
        definition = kind.payload
        fields = {name: definition.constants.get(name, UNKNOWN) for name in definition.fields or ()}
        base = hooks.framework_base(self, definition)
        if base is not None and transformers.is_arguments_class(base):
            # `class GRPOArguments(GRPOConfig)`: `--bf16 True --deepspeed ds.json` set fields it inherits.
            fields = {**_FRAMEWORK_FIELDS, **fields}
        return self.construct(node, ctx, definition, [], _launched_fields(self, fields, config_file))
    if kind.name is not None and transformers.is_model_config(kind.name):
        return transformers.model_config(_launched_fields(self, transformers.MODEL_CONFIG_FIELDS, config_file))
    if kind.name is not None:
        return self.call_named(node, ctx, kind.name, [], _launched_fields(self, _FRAMEWORK_FIELDS, config_file))
    return UNKNOWN


def _launched_fields(self: Interpreter, fields: dict[str, Value], config_file: bool) -> dict[str, Value]:
    """The fields the launch commands give a value other than the default in code."""
    given = {
        name: configuration.launched_default(self, name, default, default.const, config_file=config_file)
        for name, default in fields.items()
    }
    return {name: value for name, value in given.items() if value is not fields[name]}


def _dataclass_fields(definition: Definition, args: list[Value], kwargs: dict[str, Value]) -> dict[str, Value]:
    """The fields a dataclass's generated `__init__` stores: positional, keyword, else defaults."""
    fields = definition.fields or ()
    stored = {name: definition.constants[name] for name in fields if name in definition.constants}
    stored.update(zip(fields, args, strict=False))
    stored.update((name, value) for name, value in kwargs.items() if name in fields)
    return stored


def _attribute_by_name(self: Interpreter, node: cst.Call, ctx: Context, function: str, args: list[Value]) -> Value:
    """`setattr(self, "dtype", value)` stores like `self.dtype = value`; `getattr(self, "dtype", None)`
    reads like `self.dtype` (a default is not used: whether the attribute exists is not known)."""
    target = node.args[0].value
    attr = cast(str, args[1].const)
    if function == "setattr":
        if len(args) == 3 and isinstance(target, cst.Name):
            ctx.scope.names[f"{target.value}.{attr}"] = args[2]
        return const(None)
    tracked = ctx.scope.lookup(f"{target.value}.{attr}") if isinstance(target, cst.Name) else None
    return tracked if tracked is not None else self.attribute_of(args[0], attr)


def _cast_arguments(self: Interpreter, node: cst.Call, ctx: Context, writes: dict[str, Value]) -> None:
    """`convert_weights(model)`: the modules a function cast in place are cast where the caller holds them."""
    positional = [arg.value for arg in node.args if arg.keyword is None and not arg.star]
    for key, value in writes.items():
        index = int(key.removeprefix(ARGUMENT)) if key.startswith(ARGUMENT) else len(positional)
        if index < len(positional) and isinstance(positional[index], (cst.Name, cst.Attribute)):
            self.assign(positional[index], value, ctx)


def _called_definition(callee: Value, receiver: Value, method: str | None) -> Definition | None:
    """The linted function a call runs: `helper(...)`, or `obj.method(...)` on an instance of a linted class."""
    if callee.kind is Kind.FUNCTION and isinstance(callee.payload, Definition):
        return callee.payload
    if (
        method is not None
        and receiver.kind in (Kind.INSTANCE, Kind.MODULE)
        and isinstance(receiver.payload, Definition)
    ):
        return receiver.payload.method(method)
    return None


def _literal_type_test(value: Value, tested: Value) -> Value:
    """`isinstance(optimizer, str)` on a known literal (litgpt's `optimizer="AdamW"`), and
    `isinstance(torch_dtype, torch.dtype)` on a known dtype (TRL's trainers normalising
    `model_init_kwargs`): folded, so that only the branch that runs is read."""
    if value.kind is Kind.DTYPE and value.precision is not Precision.UNKNOWN:
        return const(tested.name == "torch.dtype") if tested.name in ("torch.dtype", *LITERAL_TYPES) else UNKNOWN
    literal = value.const
    if type(literal) not in (str, int, float, bool):
        return UNKNOWN
    if tested.name == "torch.dtype":
        return const(False)
    return const(isinstance(literal, LITERAL_TYPES[tested.name])) if tested.name in LITERAL_TYPES else UNKNOWN


def _imported_module(function: str, name: str, kwargs: dict[str, Value]) -> str:
    """The module `importlib.import_module(name)` returns; `__import__(name)` returns its top-level
    package unless given a `fromlist` (litgpt's `__import__("torch.optim", fromlist=[class_name])`)."""
    if function == "__import__" and "fromlist" not in kwargs:
        return name.partition(".")[0]
    return name


def _dict_mutation(
    self: Interpreter,
    holder: cst.BaseExpression,
    ctx: Context,
    receiver: Value,
    method: str,
    args: list[Value],
    kwargs: dict[str, Value],
) -> Value:
    """`ds_config.setdefault("bf16", {})` and `ds_config.update({"bf16": {...}})` / `update(bf16=...)`:
    the dict named by `holder` holds the items from then on, as an item store would leave it
    (safe-rlhf's DeepSpeed config: `setdefault`, then `train_config["bf16"]["enabled"] = bf16`). An
    update from a value not known to be a dict leaves the dict as it was; `setdefault` returns the item."""
    if method == "setdefault":
        key = args[0].const if args else None
        if not isinstance(key, str):
            return UNKNOWN
        found = receiver.item(key)
        if found is not None:
            return found
        default = args[1] if len(args) > 1 else const(None)
        self.assign(holder, with_items(receiver, {key: default}), ctx)
        return default
    given = args[0].items if len(args) == 1 and args[0].kind is Kind.DICT else ()
    items = {**dict(given), **kwargs}
    if items:
        self.assign(holder, with_items(receiver, items), ctx)
    return const(None)


def _scaled_loss(self: Interpreter, ctx: Context, loss: Value) -> Value:
    """`loss` multiplied by a loss scaler (`scaler.scale(loss)`, apex's `amp.scale_loss(loss, ...)`):
    the file scales its losses."""
    self.note_loss_scaling(ctx.scope.module.path)
    return loss.with_(scaled=True)


def note_loss_scaling(self: Interpreter, path: str) -> None:
    """The file at `path` scales its losses on the path under way (kept for that path's condition
    after a path read aside is left: `statements.off_path` drops it for the default one)."""
    self.loss_scaling_paths.add(path)
    if self.condition is not None:
        self.conditional_loss_scaling.add((path, self.condition))


def _is_loss_scaling_framework(function: str, kwargs: dict[str, Value]) -> bool:
    """Frameworks that scale the loss themselves when asked for fp16 (or that always manage it)."""
    leaf = api.last_part(function)
    if leaf in ("NativeScaler", "ApexScaler"):
        return True
    if leaf in ("Accelerator", "Fabric", "Trainer"):
        setting = kwargs.get("mixed_precision", kwargs.get("precision", UNKNOWN)).const
        return str(setting) in ("fp16", "16", "16-mixed")  # an unknown setting is "None"
    return False


def _is_callable_value(value: Value) -> bool:
    return value.kind in (Kind.MODULE, Kind.FUNCTION, Kind.CLASS) or (
        value.kind is Kind.ANY and value.precision is not Precision.UNKNOWN
    )


def _low_region(region: Region | None) -> bool:
    return region is not None and region.enabled is True and region.precision.is_low
