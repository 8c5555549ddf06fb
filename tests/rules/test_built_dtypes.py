"""Modules built half from the start: `nn.Linear(..., dtype=cfg["dtype"])` with the dtype in a config
dict (rasbt/reasoning-from-scratch's Qwen3, whose `QWEN_CONFIG_06_B["dtype"]` is bfloat16), held by a
model class of the project, and reaching the optimizer through `model.parameters()`, also when one of
two branches builds the model."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from .casekit import bug, check, check_files, line_of, lint, ok

QWEN3 = """
    import torch
    import torch.nn as nn

    QWEN_CONFIG = {"vocab_size": 151_936, "emb_dim": 1024, "n_layers": 28, "dtype": torch.bfloat16}

    class RMSNorm(nn.Module):
        def __init__(self, emb_dim, eps=1e-6):
            super().__init__()
            self.eps = eps
            self.scale = nn.Parameter(torch.ones(emb_dim))

    class Qwen3Model(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"], dtype=cfg["dtype"])
            self.final_norm = RMSNorm(cfg["emb_dim"])
            self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False, dtype=cfg["dtype"])

        def forward(self, in_idx):
            x = self.final_norm(self.tok_emb(in_idx))
            return self.out_head(x.to(torch.bfloat16))
"""

BUILT = [
    bug(
        "optimizer-over-a-model-built-in-the-configs-dtype",
        QWEN3
        + """
    def train(model, steps, lr=1e-5):
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)  # expect: MP003
        model.train()
        for step in range(steps):
            loss = model(batch).float().mean()
            loss.backward()
            optimizer.step()

    train(Qwen3Model(QWEN_CONFIG), steps=100)
    """,
    ),
    bug(
        "either-branch-builds-the-same-half-model",
        QWEN3
        + """
    def load(checkpoint_path=None):
        if checkpoint_path:
            model = Qwen3Model(QWEN_CONFIG)
            model.load_state_dict(torch.load(checkpoint_path))
        else:
            model = Qwen3Model(QWEN_CONFIG)
        return model.to("cuda")

    model = load(args.checkpoint)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)  # expect: MP003
    """,
    ),
    bug(
        "a-single-linear-built-in-bf16",
        """
    import torch

    head = torch.nn.Linear(1024, 32_000, dtype=torch.bfloat16)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1)  # expect: MP003
    """,
    ),
    bug(
        "cast-in-place-at-the-head-of-a-chain",
        """
    import torch

    dtype = torch.bfloat16
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    model.to(dtype).to("cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)  # expect: MP003
    """,
    ),
    ok(
        "a-chain-that-ends-in-fp32",
        """
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    model.to(torch.bfloat16).float()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    """,
    ),
    ok(
        "the-same-model-built-in-fp32",
        QWEN3.replace('"dtype": torch.bfloat16', '"dtype": torch.float32')
        + """
    optimizer = torch.optim.AdamW(Qwen3Model(QWEN_CONFIG).parameters(), lr=1e-5)
    """,
    ),
    ok(
        "cast-back-to-fp32-before-the-optimizer",
        QWEN3
        + """
    model = Qwen3Model(QWEN_CONFIG).float()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    """,
    ),
    ok(
        "a-dtype-from-a-config-of-unknown-content",
        """
    import torch

    def build(cfg):
        head = torch.nn.Linear(1024, 32_000, dtype=cfg["dtype"])
        return torch.optim.SGD(head.parameters(), lr=0.1)
    """,
    ),
]


@pytest.mark.parametrize("source", BUILT)
def test_modules_built_half_reach_the_optimizer(source: str) -> None:
    check(source, "MP003")


def test_logits_of_a_head_built_half_across_files(tmp_path: Path) -> None:
    check_files(
        {
            "reasoning/qwen3.py": QWEN3,
            "reasoning/__init__.py": "",
            "ch06/grpo.py": """
                import torch
                from reasoning.qwen3 import QWEN_CONFIG, Qwen3Model

                def sequence_logprob(model, token_ids, prompt_len):
                    logits = model(token_ids.unsqueeze(0)).squeeze(0)
                    logprobs = torch.log_softmax(logits, dim=-1)  # expect: MP001
                    return logprobs[prompt_len - 1 : -1].sum()

                model = Qwen3Model(QWEN_CONFIG)
                print(sequence_logprob(model, torch.tensor([1, 2, 3]), 1))
            """,
        },
        "MP001",
        tmp_path,
    )


AIRBENCH_NET = """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class BatchNorm(nn.BatchNorm2d):
        pass

    def make_net(widths):
        net = nn.Sequential(
            nn.Conv2d(3, widths[0], kernel_size=2),
            BatchNorm(widths[0]),
            nn.Flatten(),
            nn.Linear(widths[0], 10, bias=False),
        )
        net = net.half().cuda()
        for mod in net.modules():
            if isinstance(mod, BatchNorm):
                mod.float()
        return net

    model = make_net([64])
"""

SUBMODULE_LOOPS = [
    bug(
        "every-submodule-cast-in-a-loop",
        """
        import torch
        import torch.nn as nn

        net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
        for module in net.modules():
            module.half()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)  # expect: MP003
        """,
    ),
    bug(
        "half-but-batchnorm-all-parameters-stepped",
        AIRBENCH_NET
        + """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.85, nesterov=True)  # expect: MP003
    """,
    ),
    bug(
        "fp32-model-with-only-its-linears-made-half",
        """
        import torch
        import torch.nn as nn

        net = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 2))
        for module in net.modules():
            if isinstance(module, nn.Linear):
                module.half()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)  # expect: MP003
        """,
    ),
    ok(
        "half-but-batchnorm-only-the-norm-biases-chosen-by-name",
        AIRBENCH_NET
        + """
    norm_biases = [p for k, p in model.named_parameters() if "norm" in k and p.requires_grad]
    optimizer = torch.optim.SGD(norm_biases, lr=0.2)
    """,
    ),
    ok(
        "fp32-model-with-its-norms-kept-fp32",
        """
        import torch
        import torch.nn as nn

        net = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 2))
        for module in net.modules():
            if isinstance(module, nn.LayerNorm):
                module.float()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        """,
    ),
    ok(
        "every-submodule-cast-back-to-fp32",
        """
        import torch
        import torch.nn as nn

        net = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2)).to(torch.bfloat16)
        for module in net.modules():
            module.float()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        """,
    ),
]


@pytest.mark.parametrize("source", SUBMODULE_LOOPS)
def test_submodules_cast_in_a_loop(source: str) -> None:
    check(source, "MP003")


def test_a_model_half_but_its_head_gives_no_half_logits() -> None:
    """modded-nanogpt's shape: the model made bf16, its linear layers (the head among them) cast back."""
    source = """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    model = nn.Sequential(nn.Embedding(50_304, 768), nn.Linear(768, 50_304)).cuda().bfloat16()
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.float()
    logits = model(idx)
    logp = F.log_softmax(logits, dim=-1)
    """
    check(source, "MP001")


def test_a_model_loaded_without_a_dtype_under_a_half_default() -> None:
    """OpenLMLab/LOMO: `torch.set_default_dtype(torch.float16)` before `from_pretrained(...)`."""
    check(
        """
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_default_dtype(torch.float16)
        model = AutoModelForCausalLM.from_pretrained("huggyllama/llama-7b")
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)  # expect: MP003
        """,
        "MP003",
    )


ADAPTERS = [
    ok(
        "lora-adapters-on-a-frozen-bf16-transformer-chosen-by-requires-grad",
        """
        import torch
        from diffusers import DiffusionPipeline
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig

        pipe = DiffusionPipeline.from_pretrained("nvidia/Cosmos", torch_dtype=torch.bfloat16)
        transformer = pipe.transformer
        transformer.requires_grad_(False)
        transformer.add_adapter(LoraConfig(r=16, target_modules=["to_q", "to_k", "to_v"]))
        if args.mixed_precision in ["fp16", "bf16"]:
            cast_training_params(transformer, dtype=torch.float32)
        lora_params = [p for p in transformer.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(lora_params, lr=1e-4)
        """,
    ),
    # LoRA layers injected by PEFT's function (not a method the model is known to have): only
    # `cast_training_params` says the trainable ones are fp32 now.
    ok(
        "fp16-unet-whose-injected-lora-layers-are-cast-to-fp32",
        """
        import torch
        from diffusers import UNet2DConditionModel
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig, inject_adapter_in_model

        unet = UNet2DConditionModel.from_pretrained(args.model, subfolder="unet", torch_dtype=torch.float16)
        unet.requires_grad_(False)
        inject_adapter_in_model(LoraConfig(r=4, target_modules=["to_q", "to_v"]), unet)
        cast_training_params(unet, dtype=torch.float32)
        lora_layers = filter(lambda p: p.requires_grad, unet.parameters())
        optimizer = torch.optim.AdamW(lora_layers, lr=1e-4)
        """,
    ),
    # Handing the model to a logger changes none of its parameters.
    bug(
        "bf16-model-watched-by-a-logger",
        """
        import torch
        import wandb
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        wandb.watch(model, log_freq=100)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-5)  # expect: MP003
        """,
    ),
    bug(
        "every-parameter-of-the-bf16-model-handed-over-beside-its-adapters",
        """
        import torch
        from diffusers import DiffusionPipeline
        from peft import LoraConfig

        pipe = DiffusionPipeline.from_pretrained("nvidia/Cosmos", torch_dtype=torch.bfloat16)
        transformer = pipe.transformer
        transformer.add_adapter(LoraConfig(r=16, target_modules=["to_q", "to_k", "to_v"]))
        optimizer = torch.optim.AdamW(transformer.parameters(), lr=1e-4)  # expect: MP003
        """,
    ),
]


@pytest.mark.parametrize("source", ADAPTERS)
def test_adapters_make_a_model_half_in_part(source: str) -> None:
    check(source, "MP003")


SELF_CASTS = [
    bug(
        "the-model-casts-itself-at-the-end-of-init",
        """
        import torch
        import torch.nn as nn

        class Policy(nn.Module):
            def __init__(self, vocab_size, dim):
                super().__init__()
                self.embed = nn.Embedding(vocab_size, dim)
                self.head = nn.Linear(dim, vocab_size)
                self.to(torch.bfloat16)

        policy = Policy(32_000, 512)
        optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-4)  # expect: MP003
        """,
    ),
    bug(
        "airbench-style-half-but-batchnorm-in-init",
        """
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 64, 3)
                self.norm = nn.BatchNorm2d(64)
                self.head = nn.Linear(64, 10)
                for mod in self.modules():
                    if isinstance(mod, nn.BatchNorm2d):
                        mod.float()
                    else:
                        mod.half()

        model = Net().cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.85, nesterov=True)  # expect: MP003
        """,
    ),
    ok(
        "built-half-then-cast-back-whole",
        """
        import torch
        import torch.nn as nn

        class Block(nn.Module):
            def __init__(self, dim):
                super().__init__()
                self.proj = nn.Linear(dim, dim, dtype=torch.bfloat16)

        class Policy(nn.Module):
            def __init__(self, dim):
                super().__init__()
                self.block = Block(dim)
                self.head = nn.Linear(dim, 100, dtype=torch.bfloat16)
                self.float()

        optimizer = torch.optim.AdamW(Policy(512).parameters(), lr=3e-4)
        """,
    ),
]


@pytest.mark.parametrize("source", SELF_CASTS)
def test_a_model_that_casts_itself_in_init(source: str) -> None:
    check(source, "MP003")


def test_messages_name_where_a_module_was_built_or_a_tensor_created() -> None:
    source = """
        import torch
        import torch.nn.functional as F

        head = torch.nn.Linear(768, 32000, dtype=torch.bfloat16, device="cuda")
        optimizer = torch.optim.AdamW(head.parameters(), lr=1e-4)
        logits = torch.empty(batch_size, 32000, dtype=torch.bfloat16, device="cuda")
        logits[:, :vocab] = scores
        logp = F.log_softmax(logits, dim=-1)
    """
    (optimizer,) = lint(source, "MP003")
    assert f"built in bfloat16 at train.py:{line_of(source, 'torch.nn.Linear(')}" in optimizer.message
    (logp,) = lint(source, "MP001")
    assert f"created at train.py:{line_of(source, 'torch.empty(')}" in logp.message


# Chinese-CLIP's (and OpenAI CLIP's) training: `convert_weights` casts the Linear, Conv and attention
# weights to fp16 (weights and whole modules alike), loading always does, `convert_models_to_fp32`
# casts every parameter back for the default `--precision amp`; the param groups are split by two
# lambdas, one the negation of the other.
CHINESE_CLIP = """
    import argparse

    import torch
    from torch import nn, optim


    class CLIP(nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = nn.Linear(768, 512)
            self.ln_final = nn.LayerNorm(512)
            self.bert = BertModel(config)


    def convert_weights(model: nn.Module):
        def _convert_weights_to_fp16(l):
            if isinstance(l, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                l.weight.data = l.weight.data.half()
                if l.bias is not None:
                    l.bias.data = l.bias.data.half()
            if isinstance(l, BertModel):
                l.to(torch.half)

        model.apply(_convert_weights_to_fp16)


    def convert_models_to_fp32(model):
        for p in model.parameters():
            p.data = p.data.float()
            if p.grad:
                p.grad.data = p.grad.data.float()


    def load(model):
        convert_weights(model)
        return model


    def main(args):
        model = load(CLIP())
        if args.precision == "amp" or args.precision == "fp32":
            convert_models_to_fp32(model)
        if args.precision == "fp16":
            convert_weights(model)
        exclude = lambda n: "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n
        include = lambda n: not exclude(n)
        named_parameters = list(model.named_parameters())
        gain_or_bias_params = [p for n, p in named_parameters if exclude(n) and p.requires_grad]
        rest_params = [p for n, p in named_parameters if include(n) and p.requires_grad]
        optimizer = optim.AdamW(  # expect: MP003
            [{"params": gain_or_bias_params, "weight_decay": 0.0}, {"params": rest_params, "weight_decay": 0.2}],
            lr=args.lr,
        )


    if __name__ == "__main__":
        parser = argparse.ArgumentParser()
        parser.add_argument("--precision", choices=["amp", "fp16", "fp32"], default="amp")
        parser.add_argument("--lr", type=float, default=5e-5)
        main(parser.parse_args())
"""


def test_clip_weights_converted_to_fp16_under_their_option() -> None:
    from mplint.api import lint_source
    from mplint.findings import Severity

    check(CHINESE_CLIP, "MP003")
    (finding,) = [found for found in lint_source(textwrap.dedent(CHINESE_CLIP), "train.py") if found.code == "MP003"]
    assert finding.severity is Severity.WARNING
    assert "`--precision fp16` is given" in finding.message


def test_a_parameter_loop_that_casts_a_copy_leaves_the_model() -> None:
    check(
        """
        import torch

        model = torch.nn.Linear(8, 8).to(torch.bfloat16)
        for p in model.parameters():
            grad_norm = p.grad.float()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)  # expect: MP003
        """,
        "MP003",
    )


# PromptKD's image-feature head: CLIP's `convert_weights` applied to a module whose layers sit in an
# `nn.Sequential` built from its arguments (children the analysis does not hold as items): its Conv2d
# weights are halved, its BatchNorm kept, so the parameters are half in part.
SEQUENTIAL_HEAD = """
import torch
import torch.nn as nn


def convert_weights(model: nn.Module):
    def _convert_weights_to_fp16(l):
        if isinstance(l, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            l.weight.data = l.weight.data.half()
            if l.bias is not None:
                l.bias.data = l.bias.data.half()

    model.apply(_convert_weights_to_fp16)


class FeatureTrans(nn.Module):
    def __init__(self, input_dim=512, out_dim=768):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(input_dim, out_dim, 1),
            nn.BatchNorm2d(out_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_dim, out_dim, 1),
        )


class Student(nn.Module):
    def __init__(self):
        super().__init__()
        self.trans = FeatureTrans()
        convert_weights(self.trans)
"""


@pytest.mark.parametrize("converted", [True, False])
def test_a_loop_halves_the_children_of_a_container_it_does_not_hold(converted: bool) -> None:
    source = SEQUENTIAL_HEAD if converted else SEQUENTIAL_HEAD.replace("        convert_weights(self.trans)\n", "")
    expect = "  # expect: MP003" if converted else ""
    check(
        f"{source}\nstudent = Student()\noptimizer = torch.optim.SGD(student.parameters(), lr=0.1){expect}\n", "MP003"
    )


@pytest.mark.parametrize(
    ("appended", "bug"),
    [
        pytest.param("student", True, id="a-half-in-part-model"),
        pytest.param("nn.Linear(2, 2)", False, id="an-fp32-layer"),
    ],
)
def test_a_module_appended_to_a_module_list_is_among_its_parameters(appended: str, bug: bool) -> None:
    """PromptKD: `self.trainable_list = nn.ModuleList([])`, `.append(self.model)`, then the optimizer
    over the list."""
    expect = "  # expect: MP003" if bug else ""
    check(
        SEQUENTIAL_HEAD
        + f"""
student = Student()
trainable = nn.ModuleList([])
trainable.append({appended})
optimizer = torch.optim.SGD(trainable.parameters(), lr=0.1){expect}
""",
        "MP003",
    )


# OpenAI CLIP's `convert_weights` as shipped: its `hasattr(l, "proj")` loop may cast any class, so the
# analysis cannot place each cast and holds the model as half but its norms, without its submodules.
CLIP_CONVERTED = """
import torch
import torch.nn as nn


class VisionTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 768, 16, bias=False)
        self.proj = nn.Parameter(torch.randn(768, 512))


class ModifiedResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(32)


class CLIP(nn.Module):
    def __init__(self, vision_layers):
        super().__init__()
        # A ResNet or a ViT, as the checkpoint's shapes say: a submodule of either class.
        self.visual = ModifiedResNet() if isinstance(vision_layers, (tuple, list)) else VisionTransformer()
        self.ln_final = nn.LayerNorm(512)


def convert_weights(model: nn.Module):
    def _convert_weights_to_fp16(l):
        if isinstance(l, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            l.weight.data = l.weight.data.half()
        for name in ["text_projection", "proj"]:
            if hasattr(l, name):
                attr = getattr(l, name)
                if attr is not None:
                    attr.data = attr.data.half()

    model.apply(_convert_weights_to_fp16)


def build_model(state_dict):
    model = CLIP(state_dict["vision_layers"])
    convert_weights(model)
    return model


clip_model = build_model(torch.load("ViT-B-16.pt"))
"""


@pytest.mark.parametrize(
    ("submodule", "bug"),
    [
        pytest.param("visual", True, id="a-submodule-half-in-part-like-the-model"),
        pytest.param("ln_final", False, id="a-normalization-layer-the-loop-keeps"),
    ],
)
def test_a_submodule_of_a_model_cast_in_part_is_read_as_cast(submodule: str, bug: bool) -> None:
    expect = "  # expect: MP003" if bug else ""
    check(
        CLIP_CONVERTED + f"optimizer = torch.optim.SGD(clip_model.{submodule}.parameters(), lr=0.1){expect}\n", "MP003"
    )


# beyond-nanogpt's tensor-parallel transformer: each layer a dict of blocks built in bf16, held by an
# nn.ModuleList of nn.ModuleDicts (the containers' children, not their own dtype, hold the weights).
CONTAINED_BLOCKS = """
import torch
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.w1 = nn.Linear(dim, 4 * dim, bias=False{dtype})


class Transformer(nn.Module):
    def __init__(self, dim, depth):
        super().__init__()
        self.layers = nn.ModuleList(
            [nn.ModuleDict({{"mlp": MLP(dim), "ln": nn.LayerNorm(dim{dtype})}}) for _ in range(depth)]
        )
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.GELU())


model = Transformer(512, 12)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-4){expect}
"""


@pytest.mark.parametrize(("dtype", "bug"), [(", dtype=torch.bfloat16", True), ("", False)])
def test_a_container_holds_the_modules_it_is_built_with(dtype: str, bug: bool) -> None:
    check(CONTAINED_BLOCKS.format(dtype=dtype, expect="  # expect: MP003" if bug else ""), "MP003")
