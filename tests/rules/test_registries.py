"""Models built by name through a registry: a dict literal that a `register` decorator of the
linted code fills (a class's `_registry = {}` filled by `@Auto.register("llama")`, a module's
`MODELS = {}` filled by `@register_model("small")`), read by a key the analysis cannot tell
(`cls._registry[model_type](args)`). The factory is run once per registered key: when every
registered model is built half, the model it returns is; when one is not, nothing is known."""

from __future__ import annotations

from pathlib import Path

import pytest

from mplint.api import lint_paths

from .casekit import check_files, line_of

UTILS = """
    import torch


    def get_torch_dtype(dtype: str):
        if dtype == "float32" or dtype == "fp32":
            return torch.float32
        elif dtype == "float16" or dtype == "fp16":
            return torch.float16
        elif dtype == "bfloat16" or dtype == "bf16":
            return torch.bfloat16
        raise ValueError(dtype)
"""

ARGS = """
    from dataclasses import dataclass

    from src.utils import get_torch_dtype


    class Args:
        def __post_init__(self):
            dtype = getattr(self, "dtype", None)
            if dtype is not None:
                setattr(self, "dtype", get_torch_dtype(dtype))

        def from_json(self, filename: str):
            return self


    @dataclass
    class BaseArgs(Args):
        max_seq_len: int
        dtype: str = "float16"


    class AutoArgs:
        _registry = {}

        @classmethod
        def register(cls, name):
            def wrapper(args_cls):
                cls._registry[name] = args_cls
                return args_cls
            return wrapper

        @classmethod
        def from_pretrained(
            cls, model_type: str, config_file: str, max_seq_len: int, dtype: str = "bfloat16", lora_rank: int = -1
        ):
            kwargs = dict(max_seq_len=max_seq_len, dtype=dtype)
            if lora_rank > 0:
                kwargs["r"] = lora_rank
                return cls._registry[f"lora-{model_type}"](**kwargs).from_json(config_file)
            return cls._registry[model_type](**kwargs).from_json(config_file)


    @dataclass
    @AutoArgs.register("llama")
    @AutoArgs.register("lora-llama")
    class LlamaArgs(BaseArgs):
        dim: int = None


    @dataclass
    @AutoArgs.register("qwen")
    class QwenArgs(BaseArgs):
        hidden_size: int = None
"""

MODELING = """
    import torch.nn as nn

    from src.models.modeling_args import AutoArgs


    class ParallelModule(nn.Module):
        def init_weights(self):
            raise NotImplementedError


    class AutoModelForCausalLM:
        _registry = {}

        @classmethod
        def register(cls, name):
            def wrapper(model_cls):
                cls._registry[name] = model_cls
                return model_cls
            return wrapper

        @classmethod
        def from_pretrained(
            cls, model_type: str, config_file: str, max_seq_len: int, dtype: str = "bfloat16", lora_rank: int = -1
        ):
            args = AutoArgs.from_pretrained(model_type, config_file, max_seq_len, dtype=dtype, lora_rank=lora_rank)
            model_type = f"lora-{model_type}" if lora_rank > 0 else model_type
            model = cls._registry[model_type](args)
            model.init_weights()
            return model
"""

QWEN = """
    import torch.nn as nn

    from src.models.modeling import AutoModelForCausalLM, ParallelModule


    class QwenHead(nn.Module):
        def __init__(self, args):
            super().__init__()
            self.args = args
            self.embed_tokens = None

        def init_weights(self):
            self.embed_tokens = nn.Embedding(32000, 512).type(self.args.dtype)


    @AutoModelForCausalLM.register("qwen")
    class Qwen(ParallelModule):
        def __init__(self, args):
            super().__init__()
            self.args = args
            self.model = QwenHead(args)
            self.lm_head = None

        def init_weights(self):
            self.model.init_weights()
            self.lm_head = nn.Linear(512, 32000, bias=False).type(self.args.dtype)
"""

LLAMA = """
    import torch.nn as nn

    from src.models.modeling import AutoModelForCausalLM, ParallelModule


    @AutoModelForCausalLM.register("llama")
    class Llama(ParallelModule):
        def __init__(self, args):
            super().__init__()
            self.args = args
            self.output = None

        def init_weights(self):
            self.output = nn.Linear(512, 32000, bias=False).type(self.args.dtype)


    @AutoModelForCausalLM.register("lora-llama")
    class LoraLlama(Llama):
        def __init__(self, args):
            super().__init__(args)
            self.lora_a = None

        def init_weights(self):
            super().init_weights()
            self.lora_a = nn.Linear(512, 8, bias=False).float()
"""

# The package imports its model files: that is what runs their `register` decorators.
PACKAGE = """
    from src.models.modeling import ParallelModule
    from src.models.qwen import Qwen
    from src.models.llama import Llama, LoraLlama
"""

TRAIN = """
    import torch

    from src.models.modeling import AutoModelForCausalLM


    class ParallelOptimizer:
        def __init__(self, optimizer):
            self.optimizer = optimizer


    def train(model_type: str, config_file: str, lr: float, dtype: str = "DTYPE", lora_rank: int = -1):
        policy = AutoModelForCausalLM.from_pretrained(
            model_type=model_type, config_file=config_file, max_seq_len=512, dtype=dtype, lora_rank=lora_rank
        )
        optimizer = ParallelOptimizer(torch.optim.Adam(policy.parameters(), lr=lr))  # MARK
        return policy, optimizer
"""


def _project(dtype: str, marked: bool) -> dict[str, str]:
    train = TRAIN.replace("DTYPE", dtype).replace("# MARK", "# expect: MP003" if marked else "")
    return {
        "src/__init__.py": "",
        "src/utils.py": UTILS,
        "src/models/__init__.py": PACKAGE,
        "src/models/modeling_args.py": ARGS,
        "src/models/modeling.py": MODELING,
        "src/models/qwen.py": QWEN,
        "src/models/llama.py": LLAMA,
        "train.py": train,
    }


@pytest.mark.parametrize(("dtype", "marked"), [("bfloat16", True), ("float32", False), ("float16", True)])
def test_a_model_built_by_name_through_a_decorator_registry(dtype: str, marked: bool, tmp_path: Path) -> None:
    """Every registered model builds its head with `.type(args.dtype)` in `init_weights()`, the
    dtype a dataclass's `__post_init__` resolves from the factory's default: the optimizer over
    any of them updates half weights (the LoRA variant's fp32 adapter does not change that)."""
    check_files(_project(dtype, marked), "MP003", tmp_path)


@pytest.mark.parametrize("kept_fp32", ["llama", "qwen"])
def test_a_registered_model_built_fp32_keeps_the_factory_unknown(kept_fp32: str, tmp_path: Path) -> None:
    """One registered model keeps its weights fp32 (`.float()` after the cast), the first or the last
    of the registered keys: which one runs is not known, so neither is the precision of what the
    factory returns."""
    files = _project("bfloat16", marked=False)
    if kept_fp32 == "llama":
        files["src/models/llama.py"] = LLAMA.replace(
            "self.output = nn.Linear(512, 32000, bias=False).type(self.args.dtype)",
            "self.output = nn.Linear(512, 32000, bias=False).type(self.args.dtype).float()",
        )
    else:
        files["src/models/qwen.py"] = QWEN.replace(".type(self.args.dtype)", ".type(self.args.dtype).float()")
    check_files(files, "MP003", tmp_path)


REGISTRY = """
    MODELS = {}


    def register_model(name):
        def decorate(cls):
            MODELS[name] = cls
            return cls
        return decorate


    def build_model(name, **kwargs):
        return MODELS[name](**kwargs)
"""

SMALL_MODELS = """
    import torch
    import torch.nn as nn

    from models.registry import register_model


    @register_model("small")
    class Small(nn.Module):
        def __init__(self, vocab=1000):
            super().__init__()
            self.body = nn.Linear(64, 64)
            self.head = nn.Linear(64, vocab).to(torch.bfloat16)


    @register_model("tiny")
    class Tiny(nn.Module):
        def __init__(self, vocab=1000):
            super().__init__()
            self.head = nn.Linear(16, vocab).to(torch.bfloat16)
"""

MODELS_PACKAGE = """
    from models.registry import build_model
    from models.zoo import Small, Tiny
"""

MAIN = """
    import torch

    from models.registry import build_model


    def main(model_name):
        print(f"training {model_name}: bf16 weights, fp32 optimizer math")
        model = build_model(model_name, vocab=32000)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4)  # MARK
        for batch in loader:
            loss = model(batch).mean()
            loss.backward()
            opt.step()
"""


@pytest.mark.parametrize("half", [True, False])
def test_a_module_level_registry_filled_by_a_function_decorator(half: bool, tmp_path: Path) -> None:
    """`MODELS = {}` filled by `@register_model(...)` in a model zoo the package imports, read by
    `build_model(name)`: half when every registered model holds a half head."""
    zoo = SMALL_MODELS if half else SMALL_MODELS.replace(".to(torch.bfloat16)", "", 1)
    files = {
        "models/__init__.py": MODELS_PACKAGE,
        "models/registry.py": REGISTRY,
        "models/zoo.py": zoo,
        "main.py": MAIN.replace("# MARK", "# expect: MP003" if half else ""),
    }
    check_files(files, "MP003", tmp_path)



def test_a_model_zoo_the_package_star_imports_registers_its_models(tmp_path: Path) -> None:
    """`from models.zoo import *` in the package runs the zoo whole: its `@register_model` decorators too."""
    files = {
        "models/__init__.py": MODELS_PACKAGE.replace("from models.zoo import Small, Tiny", "from models.zoo import *"),
        "models/registry.py": REGISTRY,
        "models/zoo.py": SMALL_MODELS,
        "main.py": MAIN.replace("# MARK", "# expect: MP003"),
    }
    check_files(files, "MP003", tmp_path)


TABLE = """
    import torch
    import torch.nn as nn


    class GPT(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size).half()


    class Mamba(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.out = nn.Linear(config.d_model, config.vocab_size).half()


    ARCHITECTURES = {"gpt": GPT, "mamba": Mamba}


    def build(config, arch):
        return ARCHITECTURES[arch](config)


    def train(config, arch):
        model = build(config, arch)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # MARK
        return model, optimizer
"""


@pytest.mark.parametrize("cast", [".half()", ""])
def test_a_table_of_model_classes_indexed_by_a_parameter(cast: str, tmp_path: Path) -> None:
    source = TABLE.replace(".half()", cast).replace("# MARK", "# expect: MP003" if cast else "")
    check_files({"train.py": source}, "MP003", tmp_path)


def test_a_table_of_models_with_heads_of_either_half_dtype(tmp_path: Path) -> None:
    """An fp16 head in one architecture, a bf16 one in the other: half weights whichever runs."""
    source = TABLE.replace(".half()", ".to(torch.bfloat16)", 1).replace("# MARK", "# expect: MP003")
    check_files({"train.py": source}, "MP003", tmp_path)
    [finding] = lint_paths([tmp_path], select=["MP003"]).findings
    assert "SGD over bfloat16 or float16 parameters" in finding.message



def test_a_table_of_models_each_cast_half_whole_gives_half_logits(tmp_path: Path) -> None:
    """Every architecture of the table is built and cast to fp16 whole: the model is fp16 (not a
    model half in part, whose outputs' dtype is not told), so are its logits."""
    source = TABLE.replace(".half()", "").replace(
        "return ARCHITECTURES[arch](config)", "return ARCHITECTURES[arch](config).half()"
    )
    source += """

    def evaluate(config, arch, batches):
        model = build(config, arch)
        for tokens, targets in batches:
            logp = torch.log_softmax(model(tokens), dim=-1)  # expect: MP001
            yield logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    """
    check_files({"train.py": source.replace("  # MARK", "")}, "MP001", tmp_path)


def test_a_table_of_one_model_names_its_cast_plainly(tmp_path: Path) -> None:
    """One architecture in the table: the message names its head's cast, not "each of the 1 models"."""
    source = TABLE.replace(', "mamba": Mamba', "").replace("# MARK", "# expect: MP003")
    check_files({"train.py": source}, "MP003", tmp_path)
    [finding] = lint_paths([tmp_path], select=["MP003"]).findings
    cast_at = f"{tmp_path / 'train.py'}:{line_of(source, 'self.lm_head =')}"
    assert f"(from `self.lm_head`, cast at {cast_at})" in finding.message

INIT_WEIGHTS = """
    import torch
    import torch.nn as nn


    class Transformer(nn.Module):
        def __init__(self, dim, vocab, dtype):
            super().__init__()
            self.dtype = dtype
            self.output = None

        def init_weights(self):
            self.output = nn.Linear(512, 32000).to(self.dtype)


    def train(dtype=torch.bfloat16):
        model = Transformer(512, 32000, dtype)
        model.init_weights()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)  # MARK
"""


@pytest.mark.parametrize(("dtype", "marked"), [("torch.bfloat16", True), ("torch.float32", False)])
def test_what_a_method_stores_after_construction_holds(dtype: str, marked: bool, tmp_path: Path) -> None:
    """`model.init_weights()` builds the head after `__init__`, in the dtype `__init__` kept."""
    source = INIT_WEIGHTS.replace("dtype=torch.bfloat16", f"dtype={dtype}")
    source = source.replace("# MARK", "# expect: MP003" if marked else "")
    check_files({"train.py": source}, "MP003", tmp_path)


HELPERS = """
    import torch
    import torch.nn as nn


    def build_policy():
        return nn.Linear(512, 32000)CAST
"""

SCRIPT = """
    import torch

    from src.utils import build_policy

    policy = build_policy()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-5)  # MARK
"""


def test_a_run_over_several_repositories_resolves_each_ones_own_package(tmp_path: Path) -> None:
    """`from src.utils import ...` in two checkouts linted together: each script reads its own
    repository's `src/utils.py` (the one sharing its folders), not neither."""
    files = {
        "repo_a/src/__init__.py": "",
        "repo_a/src/utils.py": HELPERS.replace("CAST", ".to(torch.bfloat16)"),
        "repo_a/train.py": SCRIPT.replace("# MARK", "# expect: MP003"),
        "repo_b/src/__init__.py": "",
        "repo_b/src/utils.py": HELPERS.replace("CAST", ""),
        "repo_b/train.py": SCRIPT.replace("# MARK", "# bf16 autocast later"),
    }
    check_files(files, "MP003", tmp_path)


PARALLEL_MODEL = """
    import collections
    from dataclasses import dataclass

    import torch
    import torch.nn as nn

    CausalLMOutputs = collections.namedtuple("CausalLMOutputs", ["logits", "hidden_states"])


    def _gather(input_):
        if torch.distributed.get_world_size() == 1:
            return input_
        tensor_list = [torch.empty_like(input_) for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather(tensor_list, input_)
        return torch.cat(tensor_list, dim=-1).contiguous()


    class _GatherFromModelParallelRegion(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input_):
            return _gather(input_)

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output


    def gather_from_model_parallel_region(input_):
        return _GatherFromModelParallelRegion.apply(input_)


    @dataclass
    class ModelArgs:
        dim: int = 512
        vocab_size: int = 32000
        dtype: torch.dtype = torch.float32


    class Transformer(nn.Module):
        def __init__(self, args: ModelArgs):
            super().__init__()
            self.args = args
            self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
            self.output = None
            self.output_fn = lambda x: self.output(x)

        def init_weights(self):
            self.output = nn.Linear(self.args.dim, self.args.vocab_size, bias=False).type(self.args.dtype)

        def forward(self, tokens):
            h = self.tok_embeddings(tokens)
            logits = gather_from_model_parallel_region(self.output_fn(h))
            return CausalLMOutputs(logits=logits, hidden_states=h)
"""

PPO_TRAINER = """
    import torch


    class PPOTrainer:
        def __init__(self, policy, optimizer):
            self.policy = policy
            self.optimizer = optimizer

        def forward(self, rollout):
            logits = self.policy.forward(rollout.obs).logits
            logprobs = torch.gather(
                torch.log_softmax(logits, dim=-1), dim=-1, index=rollout.actions.unsqueeze(-1)  # MARK
            ).squeeze(-1)
            ratio = torch.exp(logprobs - rollout.old_logprobs)
            loss = -(ratio * rollout.advantages).mean()
            loss.backward()
            self.optimizer.step()
"""

PPO_SCRIPT = """
    import torch

    from model import ModelArgs, Transformer
    from trainer import PPOTrainer


    def train(buffer, lr=1e-6):
        policy = Transformer(ModelArgs(dtype=torch.DTYPE))
        policy.init_weights()
        trainer = PPOTrainer(policy, torch.optim.Adam(policy.parameters(), lr=lr))
        for rollout in buffer:
            trainer.forward(rollout)
"""


@pytest.mark.parametrize(("dtype", "marked"), [("bfloat16", True), ("float32", False)])
def test_logits_of_a_model_parallel_forward(dtype: str, marked: bool, tmp_path: Path) -> None:
    """The head a lambda attribute calls (`self.output_fn = lambda x: self.output(x)`, the head built
    later by `init_weights()`), gathered by a `torch.autograd.Function`, returned in a namedtuple:
    the trainer's log-probs on `policy.forward(obs).logits` are in the head's dtype."""
    files = {
        "model.py": PARALLEL_MODEL,
        "trainer.py": PPO_TRAINER.replace("# MARK", "# expect: MP001" if marked else ""),
        "train.py": PPO_SCRIPT.replace("DTYPE", dtype),
    }
    check_files(files, "MP001", tmp_path)


def test_the_message_says_the_model_is_one_the_registry_builds(tmp_path: Path) -> None:
    check_files(_project("bfloat16", marked=True), "MP003", tmp_path)
    [finding] = lint_paths([tmp_path], select=["MP003"]).findings
    assert "in each of the 3 models the registry builds" in finding.message


GEMMA = """
    import torch
    import torch.nn as nn

    from src.models.modeling import AutoModelForCausalLM, CausalLMOutputs, ParallelModule


    @AutoModelForCausalLM.register("gemma2")
    class Gemma2(ParallelModule):
        def __init__(self, args):
            super().__init__()
            self.args = args
            self.lm_head = None
            self.lm_head_fn = lambda x: self.lm_head(x)

        def init_weights(self):
            self.lm_head = nn.Linear(512, 32000, bias=False).type(self.args.dtype)

        def forward(self, tokens, start_pos=0):
            logits = self.lm_head_fn(tokens)
            if self.args.final_logit_softcapping is not None:
                logits = logits / self.args.final_logit_softcapping
                logits = torch.tanh(logits)
                logits = logits * self.args.final_logit_softcapping
            return CausalLMOutputs(logits=logits, hidden_states=tokens)
"""

GEMMA_ARGS = """

    @dataclass
    @AutoArgs.register("gemma2")
    class Gemma2Args(BaseArgs):
        final_logit_softcapping: float = None
"""

# Each registered model's forward returns its logits in the record the package defines.
LOGITS_FORWARD = """

        def forward(self, tokens, start_pos=0):
            return CausalLMOutputs(logits=HEAD(tokens), hidden_states=tokens)
"""

POLICY_TRAINER = """
    import torch

    from src.models.modeling import AutoModelForCausalLM


    class PolicyGradientTrainer:
        def __init__(self, policy, optimizer):
            self.policy = policy
            self.optimizer = optimizer

        def forward(self, rollout):
            logits = self.policy.forward(rollout.obs).logits
            logprobs = torch.gather(
                torch.log_softmax(logits, dim=-1), dim=-1, index=rollout.actions.unsqueeze(-1)  # MARK
            ).squeeze(-1)
            loss = -(logprobs * rollout.rewards).mean()
            loss.backward()
            self.optimizer.step()


    def train(buffer, model_type: str, config_file: str, lr: float = 1e-6, dtype: str = "bfloat16"):
        policy = AutoModelForCausalLM.from_pretrained(
            model_type=MODEL_TYPE, config_file=config_file, max_seq_len=512, dtype=dtype
        )
        trainer = PolicyGradientTrainer(policy, torch.optim.Adam(policy.parameters(), lr=lr))
        for rollout in buffer:
            trainer.forward(rollout)
"""


def _logits_project(model_type: str, marked: bool, llama_head: str = ".type(self.args.dtype)") -> dict[str, str]:
    """llama-rlhf's shape: a config registry and a model registry named by one model type, a Gemma 2
    whose forward reads a field only its own config class has, a trainer calling `policy.forward`."""
    files = _project("bfloat16", marked=False)
    files["src/models/modeling_args.py"] = ARGS + GEMMA_ARGS
    record = 'CausalLMOutputs = collections.namedtuple("CausalLMOutputs", ["logits", "hidden_states"])'
    files["src/models/modeling.py"] = MODELING.replace(
        "import torch.nn as nn\n", f"import collections\n\n    import torch.nn as nn\n\n    {record}\n"
    )
    files["src/models/qwen.py"] = QWEN.replace(", ParallelModule", ", CausalLMOutputs, ParallelModule") + (
        LOGITS_FORWARD.replace("HEAD", "self.lm_head")
    )
    llama = LLAMA.replace(", ParallelModule", ", CausalLMOutputs, ParallelModule")
    llama = llama.replace(".type(self.args.dtype)", llama_head)
    # The forward goes on `Llama` (LoraLlama inherits it), before the LoRA class.
    llama = llama.replace(
        '\n\n    @AutoModelForCausalLM.register("lora-llama")',
        LOGITS_FORWARD.replace("HEAD", "self.output") + '\n\n    @AutoModelForCausalLM.register("lora-llama")',
    )
    files["src/models/llama.py"] = llama
    files["src/models/gemma2.py"] = GEMMA
    files["src/models/__init__.py"] = PACKAGE + "    from src.models.gemma2 import Gemma2\n"
    del files["train.py"]
    trainer = POLICY_TRAINER.replace("MODEL_TYPE", model_type)
    files["src/trainer.py"] = trainer.replace("# MARK", "# expect: MP001" if marked else "")
    return files


@pytest.mark.parametrize("model_type", ["model_type", '"gemma2"'])
def test_logits_of_a_model_built_by_name_are_the_registered_models_logits(model_type: str, tmp_path: Path) -> None:
    """The policy's class is chosen by `model_type`: calling it runs each registered model's forward,
    and every one of them gives bf16 logits (Gemma 2's soft-capping reads its own config's field,
    the config registry read by the same key). With the type written out, Gemma 2's config is
    built even though a LoRA branch the defaults skip reads a key the analysis cannot tell."""
    check_files(_logits_project(model_type, marked=True), "MP001", tmp_path)


def test_logits_of_a_registry_with_one_fp32_model_are_unknown(tmp_path: Path) -> None:
    """One registered model casts its head back to fp32: which one runs is not known, so neither
    is the logits' dtype."""
    files = _logits_project("model_type", marked=False, llama_head=".type(self.args.dtype).float()")
    check_files(files, "MP001", tmp_path)


def test_the_logits_message_says_the_model_is_one_the_registry_builds(tmp_path: Path) -> None:
    check_files(_logits_project("model_type", marked=True), "MP001", tmp_path)
    [finding] = lint_paths([tmp_path], select=["MP001"]).findings
    assert "in each of the 4 models the registry builds" in finding.message


MANY_MODELS = """
    import torch
    import torch.nn as nn

    from zoo.registry import Registry


    CLASSES
"""

MANY_MODEL = """
    @Registry.register("NAME")
    class NAME_Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(64, 1000).to(torch.bfloat16)

"""

REGISTER = """
    class Registry:
        _models = {}

        @classmethod
        def register(cls, name):
            def wrapper(model_cls):
                cls._models[name] = model_cls
                return model_cls
            return wrapper

        @classmethod
        def build(cls, name):
            return cls._models[name]()
"""


def test_every_registration_counts_however_many_classes_register(tmp_path: Path) -> None:
    """`register(name)` runs once per registered class, each time with its own name: the
    fourteenth registration fills the registry as the first does."""
    names = [f"m{index}" for index in range(14)]
    classes = "".join(MANY_MODEL.replace("NAME", name) for name in names)
    files = {
        "zoo/__init__.py": f"from zoo.models import {', '.join(f'{name}_Model' for name in names)}\n",
        "zoo/registry.py": REGISTER,
        "zoo/models.py": MANY_MODELS.replace("    CLASSES\n", classes),
        "train.py": """
            import torch

            from zoo.registry import Registry


            def main(lr=3e-4):
                print("the zoo's models keep bf16 heads")
                model = Registry.build("m13")
                optimizer = torch.optim.AdamW(model.parameters(), lr=lr)  # expect: MP003
        """,
    }
    check_files(files, "MP003", tmp_path)


WRAPPED_MODEL = """

    class Mistral3(nn.Module):
        def __init__(self, args: ModelArgs):
            super().__init__()
            self.language_model = Transformer(args)

        def init_weights(self):
            self.language_model.init_weights()

        def forward(self, tokens):
            return self.language_model.forward(tokens)
"""

DEEP_SCRIPT = """
    import torch

    from model import ModelArgs, Mistral3
    from trainer import PPOTrainer


    def train_actor(buffer, dtype, lr):
        policy = Mistral3(ModelArgs(dtype=dtype))
        policy.init_weights()
        trainer = PPOTrainer(policy, torch.optim.Adam(policy.parameters(), lr=lr))
        for rollout in buffer:
            trainer.forward(rollout)


    def run(buffer, epochs=1, lr=1e-6):
        for epoch in range(epochs):
            train_actor(buffer, torch.DTYPE, lr)


    def main():
        run(load_buffer())


    if __name__ == "__main__":
        main()
"""


@pytest.mark.parametrize(("dtype", "marked"), [("bfloat16", True), ("float32", False)])
def test_logits_nine_calls_below_the_script(dtype: str, marked: bool, tmp_path: Path) -> None:
    """main → run → train_actor → the trainer's forward → the wrapper's forward → the language
    model's forward → the gather → the autograd Function's forward → `_gather`: the logits' dtype
    comes back from nine calls down."""
    files = {
        "model.py": PARALLEL_MODEL + WRAPPED_MODEL,
        "trainer.py": PPO_TRAINER.replace("# MARK", "# expect: MP001" if marked else ""),
        "train.py": DEEP_SCRIPT.replace("DTYPE", dtype),
    }
    check_files(files, "MP001", tmp_path)
