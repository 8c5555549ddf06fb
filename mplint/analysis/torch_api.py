"""What torch's (and its ecosystem's) names mean for precision. Data only: no torch import.

The autocast op lists mirror `torch/include/ATen/autocast_mode.h` of torch 2.13 (CUDA's
`AT_FORALL_FP32` / `AT_FORALL_FP32_SET_OPT_DTYPE`, and the CPU kernels registered on
`AutocastCPU`), reduced to the ops whose names appear in training code.
"""

from __future__ import annotations

import re

from mplint.analysis.values import Precision, Region, Value

# Names real snippets use without importing them (bug reports, notebooks); they mean these.
CONVENTIONAL_NAMES = {"torch": "torch", "F": "torch.nn.functional", "nn": "torch.nn", "optim": "torch.optim"}

DTYPE_NAMES: dict[str, Precision] = {
    "torch.float16": Precision.FP16,
    "torch.half": Precision.FP16,
    "torch.bfloat16": Precision.BF16,
    "torch.float32": Precision.FP32,
    "torch.float": Precision.FP32,
    "torch.float64": Precision.FP64,
    "torch.double": Precision.FP64,
}

# Strings accepted where a dtype is given by name (`torch_dtype="bfloat16"`, nanoGPT's `dtype = 'float16'`).
DTYPE_STRINGS: dict[str, Precision] = {
    "float16": Precision.FP16,
    "fp16": Precision.FP16,
    "half": Precision.FP16,
    "torch.float16": Precision.FP16,
    "bfloat16": Precision.BF16,
    "bf16": Precision.BF16,
    "torch.bfloat16": Precision.BF16,
    "float32": Precision.FP32,
    "fp32": Precision.FP32,
    "float": Precision.FP32,
    "torch.float32": Precision.FP32,
    "float64": Precision.FP64,
    "double": Precision.FP64,
}

TENSOR_TYPE_NAMES: dict[str, Precision] = {
    f"{prefix}{name}": precision
    for prefix in ("torch.", "torch.cuda.")
    for name, precision in (
        ("HalfTensor", Precision.FP16),
        ("BFloat16Tensor", Precision.BF16),
        ("FloatTensor", Precision.FP32),
        ("DoubleTensor", Precision.FP64),
    )
}

CAST_METHODS: dict[str, Precision] = {
    "half": Precision.FP16,
    "bfloat16": Precision.BF16,
    "float": Precision.FP32,
    "double": Precision.FP64,
}

# Module methods that cast it in place (and hand it back): `model.half()`, `model.to(torch.bfloat16)`.
MODULE_CASTS = frozenset({*CAST_METHODS, "to", "type"})

# Autocast entry points: dotted name -> (fixed device or None when it is the first argument, default dtype).
AUTOCAST_ENTRY_POINTS: dict[str, tuple[str | None, Precision | None]] = {
    "torch.autocast": (None, None),
    "torch.amp.autocast": (None, None),
    "torch.amp.autocast_mode.autocast": (None, None),
    "torch.cuda.amp.autocast": ("cuda", Precision.FP16),
    "torch.cuda.amp.autocast_mode.autocast": ("cuda", Precision.FP16),
    "torch.cpu.amp.autocast": ("cpu", Precision.BF16),
    "torch.cpu.amp.autocast_mode.autocast": ("cpu", Precision.BF16),
}

# Context managers (and decorators) inside which nothing computed reaches backward.
NO_GRAD_CONTEXTS = frozenset({"torch.no_grad", "torch.inference_mode"})

# `torch.autocast(device_type)` without a dtype uses the device's default lower precision.
AUTOCAST_DEFAULT_DTYPE: dict[str, Precision] = {
    "cuda": Precision.FP16,
    "cpu": Precision.BF16,
    "xpu": Precision.BF16,
    "hpu": Precision.BF16,
    "mps": Precision.FP16,
}

# Ops autocast runs in fp32 whatever their input, per device (the CUDA lists are the upstream
# AT_FORALL_FP32 and AT_FORALL_FP32_SET_OPT_DTYPE; CPU's differ: no softmax family, but cross_entropy).
AUTOCAST_FP32_OPS: dict[str, frozenset[str]] = {
    "cuda": frozenset(
        {
            "softmax",
            "log_softmax",
            "log",
            "exp",
            "logsumexp",
            "layer_norm",
            "group_norm",
            "rms_norm",
            "nll_loss",
            "sum",
            "cumsum",
            "prod",
            "pow",
            "softplus",
            "mse_loss",
            "l1_loss",
            "smooth_l1_loss",
            "huber_loss",
            "kl_div",
            "binary_cross_entropy_with_logits",
            "cosine_similarity",
            "norm",
            "rsqrt",
            "reciprocal",
            # Not on the list itself, but `F.normalize` divides by `norm` (which is): fp32 out.
            "normalize",
        }
    ),
    "cpu": frozenset(
        {
            "cross_entropy",
            "nll_loss",
            "mse_loss",
            "l1_loss",
            "smooth_l1_loss",
            "huber_loss",
            "kl_div",
            "binary_cross_entropy_with_logits",
        }
    ),
}

# Ops autocast runs in its lower precision on every device (matmul-like).
AUTOCAST_LOWERED_OPS = frozenset(
    {
        "linear",
        "matmul",
        "mm",
        "bmm",
        "baddbmm",
        "addmm",
        "addbmm",
        "einsum",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
        "scaled_dot_product_attention",
        "prelu",
    }
)

# Tensor methods and torch functions that keep their (first) tensor input's precision.
PRESERVING_OPS = frozenset(
    {
        "detach",
        "clone",
        "contiguous",
        "view",
        "view_as",
        "reshape",
        "reshape_as",
        "flatten",
        "squeeze",
        "unsqueeze",
        "permute",
        "transpose",
        "t",
        "expand",
        "expand_as",
        "repeat",
        "narrow",
        "select",
        "index_select",
        "gather",
        "take_along_dim",
        "masked_fill",
        "roll",
        "flip",
        "cuda",
        "cpu",
        "requires_grad_",
        "clamp",
        "clip",
        "clamp_min",
        "clamp_max",
        "tanh",
        "sigmoid",
        "relu",
        "neg",
        "abs",
        "mul",
        "div",
        "add",
        "sub",
        "true_divide",
        "pin_memory",
        "cat",
        "concat",
        "stack",
        "pad",
        "where",
        "squeeze_",
        "unsqueeze_",
        "mean",
        "max",
        "amax",
        "min",
        "amin",
        "logit",
        "nan_to_num",
        "tril",
        "triu",
        "diagonal",
        "movedim",
        "swapaxes",
        "sqrt",
        "square",
        "var",
        "std",
        "chunk",
        "split",
        "unbind",
        # Activations and dropout (`F.gelu`, `nn.functional.dropout`; on no autocast list).
        "dropout",
        "dropout1d",
        "dropout2d",
        "dropout3d",
        "alpha_dropout",
        "gelu",
        "silu",
        "mish",
        "elu",
        "selu",
        "celu",
        "leaky_relu",
        "relu6",
        "hardtanh",
        "hardswish",
        "hardsigmoid",
        "logsigmoid",
        "glu",
        # Writes into a tensor, which keeps its dtype (`torch.scatter(zeros, -1, index, src)`).
        "scatter",
        "scatter_add",
        "scatter_reduce",
        "index_add",
        "index_copy",
        "index_fill",
        "masked_scatter",
    }
)

# Ops whose output rules care about, by the name they have as a function and as a method.
SOFTMAX_OPS = frozenset({"softmax", "log_softmax", "logsumexp", "log", "exp"})
# `Value.op` of log-probabilities: a `log_softmax`, kept through the ops that select from it (`gather`,
# `squeeze`), also when written as `gather(...) - logsumexp(...)`. A cast ends it (its data is then
# another dtype's copy).
LOG_PROB_OP = "log_softmax"

MODULE_PASSTHROUGH_METHODS = frozenset(
    {"cuda", "cpu", "train", "eval", "requires_grad_", "share_memory", "to_empty", "apply", "xpu"}
)
# Transformers' `model.get_input_embeddings()`: a submodule, in the model's dtype (textual inversion
# trains only its weights).
EMBEDDING_GETTERS = frozenset({"get_input_embeddings", "get_output_embeddings"})
MODULE_NON_SUBMODULE_ATTRS = frozenset(
    {"config", "device", "training", "generation_config", "name_or_path", "dtype", "hf_device_map"}
)
# Attributes of a Hugging Face style model that are themselves (half, if it is) modules.
KNOWN_SUBMODULES = frozenset(
    {"lm_head", "model", "transformer", "backbone", "base_model", "pretrained_model", "embed_out"}
)
PARAMETER_METHODS = frozenset({"parameters", "named_parameters"})
# `nn.Parameter(tensor)`: a weight of its tensor's dtype, marked `values.PARAMETER_OP`.
PARAMETER_CLASSES = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter"})
# A torch.nn layer's own parameters, read as attributes (`model.head.weight`).
PARAMETER_ATTRIBUTES = frozenset({"weight", "bias"})

# Wrappers that keep the wrapped module's parameters as they are.
MODULE_WRAPPERS = frozenset(
    {
        "torch.compile",
        "torch.nn.DataParallel",
        "torch.nn.parallel.DataParallel",
        "torch.nn.parallel.data_parallel.DataParallel",
        "torch.nn.parallel.DistributedDataParallel",
        "torch.nn.parallel.distributed.DistributedDataParallel",
        # The same module with each BatchNorm*d replaced by a SyncBatchNorm (torch 2.13, nn/modules/batchnorm.py).
        "torch.nn.SyncBatchNorm.convert_sync_batchnorm",
    }
)

# nn.DataParallel: runs its replicas in threads that re-enter autocast with the enabled flag only.
DATA_PARALLEL = frozenset(
    {"torch.nn.DataParallel", "torch.nn.parallel.DataParallel", "torch.nn.parallel.data_parallel.DataParallel"}
)

# BatchNorm layers: parameters *and* running statistics (buffers) in the module's dtype.
BATCH_NORM_CLASSES = frozenset(
    {
        "BatchNorm1d",
        "BatchNorm2d",
        "BatchNorm3d",
        "SyncBatchNorm",
        "LazyBatchNorm1d",
        "LazyBatchNorm2d",
        "LazyBatchNorm3d",
    }
)
# torch.nn modules that hold no parameters (activations, dropout, pooling, reshaping, padding): nothing
# of theirs is half or fp32, so a container's dtype is that of the layers beside them
# (`nn.Sequential(nn.Linear(..., dtype=bf16), nn.ReLU(), nn.Linear(..., dtype=bf16))` is bf16).
PARAMETERLESS_MODULES = frozenset(
    {
        *("ReLU", "ReLU6", "LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Sigmoid", "Tanh"),
        *("Hardtanh", "Hardsigmoid", "Hardswish", "Softplus", "Softsign", "Softshrink", "Hardshrink"),
        *("Tanhshrink", "Threshold", "LogSigmoid", "Softmax", "Softmax2d", "LogSoftmax", "Softmin", "GLU"),
        *("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"),
        *("Identity", "Flatten", "Unflatten", "Upsample", "PixelShuffle", "PixelUnshuffle"),
        *(f"{kind}Pool{dims}d" for kind in ("Max", "Avg", "AdaptiveMax", "AdaptiveAvg") for dims in (1, 2, 3)),
        *(f"{kind}Pad{dims}d" for kind in ("Zero", "Constant", "Reflection", "Replication") for dims in (1, 2, 3)),
    }
)
# Containers whose constructor arguments are their submodules.
MODULE_CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict"})
# torchvision's model builders whose networks hold BatchNorm layers (torchvision/models/*.py: `norm_layer`
# defaults to nn.BatchNorm2d); ViT, Swin, ConvNeXt and MaxViT's transformer blocks use LayerNorm, and the
# detection models' backbones FrozenBatchNorm2d (fixed statistics), so they are absent.
TORCHVISION_BATCH_NORM_MODELS = frozenset(
    {
        *(f"resnet{depth}" for depth in (18, 34, 50, 101, 152)),
        "resnext50_32x4d",
        "resnext101_32x8d",
        "resnext101_64x4d",
        "wide_resnet50_2",
        "wide_resnet101_2",
        *(f"vgg{depth}_bn" for depth in (11, 13, 16, 19)),
        *(f"densenet{depth}" for depth in (121, 161, 169, 201)),
        "mobilenet_v2",
        "mobilenet_v3_large",
        "mobilenet_v3_small",
        *(f"efficientnet_b{index}" for index in range(8)),
        "efficientnet_v2_s",
        "efficientnet_v2_m",
        "efficientnet_v2_l",
        "inception_v3",
        "googlenet",
        "shufflenet_v2_x0_5",
        "shufflenet_v2_x1_0",
        "shufflenet_v2_x1_5",
        "shufflenet_v2_x2_0",
        "mnasnet0_5",
        "mnasnet0_75",
        "mnasnet1_0",
        "mnasnet1_3",
        "deeplabv3_resnet50",
        "deeplabv3_resnet101",
        "fcn_resnet50",
        "fcn_resnet101",
    }
)


def is_torchvision_model(name: str) -> bool:
    """`torchvision.models.resnet50`, `models.segmentation.deeplabv3_resnet50`: a torchvision model builder."""
    return name.startswith("torchvision.models.") and last_part(name) in TORCHVISION_BATCH_NORM_MODELS


GRAD_SCALERS = frozenset(
    {
        "torch.cuda.amp.GradScaler",
        "torch.cuda.amp.grad_scaler.GradScaler",
        "torch.amp.GradScaler",
        "torch.amp.grad_scaler.GradScaler",
        "torch.cpu.amp.GradScaler",
        "torch.GradScaler",
        "torch.distributed.fsdp.sharded_grad_scaler.ShardedGradScaler",
        "timm.utils.NativeScaler",
        "timm.utils.ApexScaler",
        "timm.utils.cuda.NativeScaler",
    }
)

# Optimizer families whose update is done right on half params (Kahan summation / stochastic rounding).
LOW_PRECISION_SAFE_OPTIMIZER_PREFIXES = ("optimi.", "torchoptimi.")
LOW_PRECISION_SAFE_OPTIMIZER_FLAGS = ("kahan_sum", "bf16_stochastic_round", "use_kahan_summation")

OPTIMIZER_MODULES = (
    "torch.optim.",
    "bitsandbytes.optim.",
    "apex.optimizers.",
    "transformers.optimization.",
    "torchao.optim.",
    "torchao.prototype.low_bit_optim.",
    "timm.optim.",
)
OPTIMIZER_NAMES = frozenset({"transformers.AdamW", "transformers.Adafactor", "bitsandbytes.optim.AdamW"})
NOT_OPTIMIZERS = frozenset({"Optimizer", "lr_scheduler", "swa_utils"})
# `getattr(torch.optim, config.optimizer)`: a class of torch.optim picked by a name known only at run
# time. Whichever it is (torch/optim/: SGD, Adam, AdamW, Adagrad, RMSprop, ...), it steps the
# parameters in their own dtype with no fp32 copy, so it is an optimizer, named for what is known.
PICKED_BY_NAME = {"torch.optim": "torch.optim.Optimizer picked by name"}
# None of these keeps fp32 master weights: each updates the parameters in their own dtype.
# - bitsandbytes 0.48.1.dev0 `bitsandbytes/optim/optimizer.py` (`Optimizer2State.update_step`):
#   `F.optimizer_update_8bit_blockwise(self.optimizer_name, grad, p, state1, ...)` writes `p` in
#   place, with a kernel per parameter dtype (`backends/cuda.py`: `..._grad_fp16`, `..._grad_bf16`).
# - transformers `optimization.py` `Adafactor.step`: fp16/bf16 parameters are copied to fp32 for the
#   update and copied back (`p.copy_(p_data_fp32)`), so the update is rounded to the parameter's dtype.
# - timm `optim/_optim_factory.py` `create_optimizer_v2(model_or_params, opt=...)`: builds torch's,
#   timm's or apex's optimizer over the model's parameters (`param_groups_weight_decay` splits them
#   by `ndim`), none of which keeps master weights.
# - prodigyopt `prodigy.py` `Prodigy.step` (konstmish/prodigy at 009a715): Adam moments made with
#   `torch.zeros_like(p.data)`, the step taken as `p.data.addcdiv_(exp_avg, denom, value=-dlr)`.
# A class of a package outside the linted code named after an optimizer family (galore_torch's
# `GaLoreAdamW`, lion_pytorch's `Lion`, bitsandbytes' `PagedAdamW8bit`): written like torch's, over
# the parameters it is handed, with no master copy (those that keep one say so: see
# LOW_PRECISION_SAFE_OPTIMIZER_PREFIXES). Not those of the frameworks whose engines wrap them with
# fp32 masters (DeepSpeed's `FusedAdam` under `deepspeed.initialize`, Colossal-AI's `HybridAdam`
# under its booster, Megatron's `Float16OptimizerWithFloat16Params`).
OPTIMIZER_FAMILIES = (
    "Adam",
    "AdamW",
    "SGD",
    "Adafactor",
    "Lion",
    "Lamb",
    "LAMB",
    "RMSprop",
    "Adagrad",
    "Adan",
    "Prodigy",
)
_STATE_BITS = ("8bit", "4bit", "32bit")
# Packages whose classes are not told optimizers by their names: torch (its modules are listed above)
# and those frameworks.
_NOT_BY_NAME = frozenset({"torch", "deepspeed", "colossalai", "megatron"})
# Factories that build an optimizer over a model (its parameters) or parameters, by their name: the
# keyword of that argument (given first or by it), and that of parameter groups that replace it.
# Dassl's `build_optimizer(model, optim_cfg, param_groups=None)` (KaiyangZhou/Dassl.pytorch
# `dassl/optim/optimizer.py`, the CoOp family's trainers) builds torch's Adam, SGD, RMSprop or AdamW
# or its own RAdam, none keeping fp32 copies.
OPTIMIZER_FACTORIES: dict[str, tuple[str, str | None]] = {
    **dict.fromkeys(
        (
            "timm.optim.create_optimizer_v2",
            "timm.optim.create_optimizer",
            "timm.optim.optim_factory.create_optimizer_v2",
            "timm.optim.optim_factory.create_optimizer",
            "timm.optim._optim_factory.create_optimizer_v2",
        ),
        ("model_or_params", None),
    ),
    **dict.fromkeys(
        ("dassl.optim.build_optimizer", "dassl.optim.optimizer.build_optimizer"), ("model", "param_groups")
    ),
}


# Framework functions whose meaning a table above gives, read so even where the run holds their
# source (a repository vendoring the framework: PromptKD's `Dassl.pytorch/`).
TABLE_NAMES = frozenset(OPTIMIZER_FACTORIES)


# Learning-rate schedulers whose `step()` advances the schedule by one (torch 2.13's
# torch/optim/lr_scheduler.py classes, transformers' optimization.py `get_*_schedule*` helpers and
# diffusers' optimization.py `get_scheduler`). ReduceLROnPlateau follows a metric, not a step count.
LR_SCHEDULER_MODULES = ("torch.optim.lr_scheduler.", "transformers.optimization.", "diffusers.optimization.")
NOT_STEP_COUNTING_SCHEDULERS = frozenset({"ReduceLROnPlateau", "LRScheduler", "_LRScheduler"})


def is_lr_scheduler(name: str) -> bool:
    """`torch.optim.lr_scheduler.OneCycleLR`, `transformers.get_cosine_schedule_with_warmup`,
    `diffusers.optimization.get_scheduler`: builds a scheduler that counts optimizer steps."""
    module, _, leaf = name.rpartition(".")
    if leaf in NOT_STEP_COUNTING_SCHEDULERS:
        return False
    if f"{module}.".startswith("torch.optim.lr_scheduler."):
        return leaf[:1].isupper()
    scheduler_helper = leaf.startswith("get_") and "_schedule" in leaf  # get_scheduler, get_cosine_schedule_with_warmup
    return scheduler_helper and (module == "transformers" or f"{module}.".startswith(LR_SCHEDULER_MODULES))


def dtype_of_name(name: str) -> Precision | None:
    return DTYPE_NAMES.get(name) or TENSOR_TYPE_NAMES.get(name)


def dtype_of_string(text: str) -> Precision | None:
    return DTYPE_STRINGS.get(text.strip().lower()) or TENSOR_TYPE_NAMES.get(text.strip())


def is_optimizer(name: str) -> bool:
    if name in OPTIMIZER_NAMES:
        return True
    module, _, leaf = name.rpartition(".")
    if not leaf[:1].isupper() or leaf in NOT_OPTIMIZERS or NOT_OPTIMIZERS.intersection(module.split(".")):
        return False  # torch.optim.lr_scheduler.CosineAnnealingLR is a scheduler
    if any(f"{module}.".startswith(prefix) for prefix in OPTIMIZER_MODULES):
        return True
    return bool(module) and module.split(".")[0] not in _NOT_BY_NAME and _named_after_an_optimizer(leaf)


def _named_after_an_optimizer(leaf: str) -> bool:
    """`GaLoreAdamW`, `AdamW8bit`, `Lion`: a class name ending in an optimizer family's (and its state's bits)."""
    for bits in _STATE_BITS:
        leaf = leaf.removesuffix(bits)
    return leaf.endswith(OPTIMIZER_FAMILIES)


def is_nn_module_class(name: str) -> bool:
    """`torch.nn.Linear`, `nn.modules.linear.Linear`: a torch module class, by its dotted name."""
    module, _, leaf = name.rpartition(".")
    return module.startswith("torch.nn") and leaf[:1].isupper() and not module.startswith("torch.nn.functional")


# Modules that hold no weights and run one functional op on their input with the settings they were
# built with: `nn.LogSoftmax(dim=2)(out_head)` is `F.log_softmax(out_head, dim=2)` (EAGLE's distillation
# loss). Class name -> (the function, its constructor's parameters in order).
FUNCTIONAL_MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "LogSoftmax": ("torch.nn.functional.log_softmax", ("dim",)),
    "Softmax": ("torch.nn.functional.softmax", ("dim",)),
}


def functional_module(name: str) -> tuple[str, tuple[str, ...]] | None:
    """The function a torch module class runs (`torch.nn.LogSoftmax`), when it is one of those."""
    return FUNCTIONAL_MODULES.get(last_part(name)) if is_nn_module_class(name) else None


def is_module_base(name: str) -> bool:
    """A base class that makes a class an nn.Module (torch's, or a Hugging Face pretrained model)."""
    return (
        name in ("torch.nn.Module", "torch.nn.modules.module.Module")
        or name.endswith(("PreTrainedModel", "LightningModule"))
        or is_transformers_model(name)
    )


# A Transformers model class by its name: `LlamaModel`, `LlamaForCausalLM`, `GPT2LMHeadModel` (not
# the data collators: `DataCollatorForLanguageModeling`).
_TRANSFORMERS_MODEL = re.compile(r"^(?!DataCollator)\w*(Model|For[A-Z]\w*)$")


def is_transformers_model(name: str) -> bool:
    """`transformers.LlamaForCausalLM`, `transformers.models.llama.modeling_llama.LlamaModel`."""
    return name.startswith("transformers.") and bool(_TRANSFORMERS_MODEL.search(last_part(name)))


# Words of which a file must mention one for low precision to originate in it (the prefilter).
# Words of code that can make a value half: casts, dtypes, autocast, default dtypes, and frameworks
# whose config casts the model (`deepspeed.initialize` with a JSON config names no dtype itself).
LOW_PRECISION_WORDS = frozenset(
    {
        ".half(",
        "torch.half",
        "bfloat16",
        "float16",
        "bf16",
        "fp16",
        "autocast",
        "HalfTensor",
        "BFloat16Tensor",
        "set_default_dtype",
        "deepspeed",
        "16-true",  # Lightning's `precision="16-true"`: fp16 weights
        "Accelerator",  # accelerate's: its precision may come from a launch config file, no word in code
        "opt_level",  # apex's `amp.initialize(..., opt_level="O2")`: fp16 weights (O1, its default, casts none)
    }
)


def region_upcasts(region: Region | None, op: str) -> bool | None:
    """Does `op` run in fp32 because of the autocast region active around it? None when unknowable
    (a device or an `enabled=` that depends on the run)."""
    if region is None or region.enabled is False:
        return False
    if region.enabled is None or region.device is None:
        return None
    return op in AUTOCAST_FP32_OPS.get(region.device, frozenset())


def runs_in_half(tensor: Value, region: Region | None, op: str) -> bool:
    """Whether `op` on `tensor` computes in bf16/fp16: the tensor is half, and no autocast region
    around the op (known enabled, on a known device) runs it in fp32. Unknown stays quiet."""
    return tensor.precision.is_low and region_upcasts(region, op) is False


def last_part(name: str) -> str:
    return name.rpartition(".")[2]


# Library helpers that run the model they are given first and return its output: trl/trainer/utils.py
# `forward(model, query_responses, pad_token_id)` (trl 0.11.0 to 0.19.0; `trl/experimental/ppo` since)
# masks the padding and returns `model(input_ids=..., attention_mask=..., position_ids=...,
# return_dict=True, output_hidden_states=True)`. TRL's PPO and RLOO trainers (and their copies) take
# the policy's logits from it.
MODEL_RUNNERS = frozenset({"trl.trainer.utils.forward"})
# Library helpers that run one of torch's ops on their first argument, in its dtype: to the model each
# is that op (its result, and the rules' sinks).
LIBRARY_OPS: dict[str, str] = {
    # trl/trainer/utils.py `selective_log_softmax(logits, index)`, since trl 0.15.0 (read at v1.9.0,
    # lines 479-524): fp32/fp64 logits take `gather(logits) - logsumexp(logits)`; any other dtype
    # runs `F.log_softmax(row_logits, dim=-1)` row by row, in the logits' dtype, then gathers.
    "trl.trainer.utils.selective_log_softmax": "log_softmax",
    # openrlhf/models/utils.py `log_probs_from_logits(logits, labels, temperature=1.0)` (read at v0.5.0
    # to v0.11.0): `F.log_softmax(logits)` in 0.5; from 0.6 fp32/fp64 logits take flash-attn's
    # cross entropy or `gather - logsumexp`, any other dtype `F.log_softmax(row_logits, dim=-1)` per row.
    "openrlhf.models.utils.log_probs_from_logits": "log_softmax",
}


def library_op(function: str) -> str | None:
    """The torch op a library helper runs (`LIBRARY_OPS`), None for any other callee. TRL's trainer
    modules import `selective_log_softmax` from `trl/trainer/utils.py`, and code imports it from them
    too (`from trl.trainer.dpo_trainer import selective_log_softmax`, InternVL's DPO trainer)."""
    found = LIBRARY_OPS.get(function)
    if found is None and function.startswith("trl.trainer.") and function.endswith(".selective_log_softmax"):
        return "log_softmax"
    return found


def op_of(function: str) -> str:
    """The op a dotted callee runs: `torch.nn.functional.log_softmax` and TRL's
    `selective_log_softmax` are `log_softmax`."""
    return library_op(function) or last_part(function)


# Queries a training script asks of its accelerator; on the GPU it is written for, they are true.
ACCELERATOR_QUERIES = frozenset(
    {
        "torch.cuda.is_available",
        "torch.cuda.is_bf16_supported",
        "torch.backends.cuda.is_built",
        "torch.accelerator.is_available",
    }
)
# Queries that tell whether the GPU computes in bfloat16 natively (compute capability 8.0 or more):
# torch 2.13's torch/cuda/__init__.py (`is_bf16_supported` reads `get_device_properties(d).major >= 8`);
# transformers' utils/import_utils.py and accelerate's utils/imports.py wrap `is_bf16_supported`.
BF16_CAPABILITY_QUERIES = frozenset(
    {
        "torch.cuda.is_bf16_supported",
        "torch.cuda.get_device_capability",
        "torch.cuda.get_device_properties",
        "transformers.utils.is_torch_bf16_gpu_available",
        "transformers.utils.import_utils.is_torch_bf16_gpu_available",
        "transformers.is_torch_bf16_gpu_available",
        "accelerate.utils.is_bf16_available",
    }
)
# Queries about how the script was launched; started plainly (`python train.py`) they are false.
LAUNCH_QUERIES = frozenset({"torch.distributed.is_initialized"})
# In-place additions of adapter parameters (PEFT through diffusers and Transformers models), and
# helpers that cast a model's trainable parameters (diffusers.training_utils.cast_training_params).
ADAPTER_METHODS = frozenset({"add_adapter", "load_adapter", "add_weighted_adapter", "load_lora_adapter"})
TRAINABLE_CASTS = frozenset({"cast_training_params"})
# Decorators that make a generator function a context manager (`with helper():` enters its yield).
CONTEXT_MANAGER_DECORATORS = frozenset({"contextlib.contextmanager", "contextlib.asynccontextmanager"})
# Reads of an environment variable with a default: the default is what a plain start sees.
ENVIRONMENT_READS = frozenset({"os.environ.get", "os.getenv"})
# Base classes of optimizers (not optimizers themselves when called, but what a project's own derives from).
OPTIMIZER_BASES = frozenset({"torch.optim.Optimizer", "torch.optim.optimizer.Optimizer"})
