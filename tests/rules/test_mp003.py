"""MP003 optimizer-on-half-params: an optimizer updating half-precision parameters in place,
with half-precision state and no fp32 master copy, so small updates round away.

Reported at the optimizer constructor; when the module is cast to half after the optimizer was
built and the optimizer then steps, at that cast.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mplint.api import lint_paths
from mplint.findings import Severity

from .casekit import bug, check, check_files, line_of, lint, ok

CODE = "MP003"

# sd-scripts' per-block optimizers (flux_train.py), over a model of dtype `dtype`.
BLOCKWISE = """
        import torch

        from library import flux_utils

        flux = flux_utils.load_flow_model(args.ckpt).to({dtype})
        params_to_optimize = [{{"params": list(flux.parameters()), "lr": 1e-5}}]
        param_group = {{}}
        for group in params_to_optimize:
            named_parameters = list(flux.named_parameters())
            for p, np in zip(group["params"], named_parameters):
                block_type = "double" if np[0].startswith("double_blocks") else "single"
                param_group_key = (block_type, int(np[0].split(".")[1]))
                if param_group_key not in param_group:
                    param_group[param_group_key] = []
                param_group[param_group_key].append(p)
        grouped_params = []
        for param_group_key, param_group in param_group.items():
            grouped_params.append({{"params": param_group, "lr": 1e-5}})
        optimizers = []
        for group in grouped_params:
            optimizer = torch.optim.AdamW([group]){expect}
            optimizers.append(optimizer)
        """

CASES = [
    # CLIP4Clip: OpenAI CLIP's `convert_weights(self.clip)` halves its Linear/Conv weights in
    # `__init__`, and `self.apply(self.init_weights)` (which only initializes) comes after it.
    bug(
        "clip-converted-in-init-then-weights-initialized",
        """
        import torch
        from torch import nn


        def convert_weights(model):
            def _convert_weights_to_fp16(l):
                if isinstance(l, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                    l.weight.data = l.weight.data.half()
                    if l.bias is not None:
                        l.bias.data = l.bias.data.half()

            model.apply(_convert_weights_to_fp16)


        class CLIP(nn.Module):
            def __init__(self, width):
                super().__init__()
                self.proj = nn.Linear(width, width)
                self.ln = nn.LayerNorm(width)


        class CLIP4Clip(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.config = config
                self.clip = CLIP(512).float()
                convert_weights(self.clip)
                self.similarity_dense = nn.Linear(512, 1)
                self.apply(self.init_weights)

            def init_weights(self, module):
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    module.bias.data.zero_()


        model = CLIP4Clip(config).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-7)  # expect: MP003
        """,
    ),
    # An optimizer class picked by name from the module importlib hands back (the module named,
    # not its top-level package as `__import__` without `fromlist` gives).
    bug(
        "optimizer-class-from-importlib",
        """
        import importlib

        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
        optimizer_cls = getattr(importlib.import_module("torch.optim"), args.optimizer)
        optimizer = optimizer_cls(model.parameters(), lr=1e-5)  # expect: MP003
    """,
    ),
    bug(
        "hf-bf16-adamw",
        """
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(args.model_name_or_path, torch_dtype=torch.bfloat16)
        model.gradient_checkpointing_enable()
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.0)  # expect: MP003
    """,
    ),
    # `.half()` as a bare statement casts the module in place.
    bug(
        "bare-half-sgd",
        """
        import torch
        import torchvision

        model = torchvision.models.resnet18(num_classes=100)
        model.cuda()
        model.half()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)  # expect: MP003
    """,
    ),
    bug(
        "named-parameters-decay-groups",
        """
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, dtype="bfloat16")
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "norm" not in n]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "norm" in n]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=3e-4)  # expect: MP003
    """,
    ),
    # nanoGPT's configure_optimizers, inlined, on a model cast to bf16 in place.
    bug(
        "nanogpt-param-dict-groups",
        """
        import torch
        from model import GPT, GPTConfig

        model = GPT(GPTConfig(**model_args))
        model.to(device, dtype=torch.bfloat16)
        param_dict = {pn: p for pn, p in model.named_parameters() if p.requires_grad}
        decay_params = [p for n, p in param_dict.items() if p.dim() >= 2]
        nodecay_params = [p for n, p in param_dict.items() if p.dim() < 2]
        optim_groups = [
            {"params": decay_params, "weight_decay": weight_decay},
            {"params": nodecay_params, "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(optim_groups, lr=learning_rate, betas=betas, fused=True)  # expect: MP003
    """,
    ),
    # hlb-CIFAR10: groups filled by `append` in a helper of the file, spread into SGD.
    bug(
        "param-group-dicts-filled-by-append",
        """
        import torch
        from torch import nn


        def make_net():
            net = nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), nn.Flatten(), nn.Linear(64, 10))
            net = net.to("cuda")
            net.half()
            return net


        def init_split_parameter_dictionaries(network):
            params_non_bias = {"params": [], "lr": 0.1, "momentum": 0.85, "nesterov": True}
            params_bias = {"params": [], "lr": 0.1 * 64, "momentum": 0.85, "nesterov": True}
            for name, p in network.named_parameters():
                if p.requires_grad:
                    if "bias" in name:
                        params_bias["params"].append(p)
                    else:
                        params_non_bias["params"].append(p)
            return params_bias, params_non_bias


        def main():
            net = make_net()
            params_bias, params_non_bias = init_split_parameter_dictionaries(net)
            opt = torch.optim.SGD(**params_non_bias)  # expect: MP003
            opt_bias = torch.optim.SGD(**params_bias)  # expect: MP003
            return opt, opt_bias
    """,
    ),
    bug(
        "decay-lists-filled-in-a-loop",
        """
        import torch
        from transformers import AutoModelForCausalLM


        def configure_optimizers(model, weight_decay=0.1):
            decay, no_decay = [], []
            for name, param in model.named_parameters():
                if not param.requires_grad:
                    continue
                if param.ndim < 2 or "norm" in name:
                    no_decay.append(param)
                else:
                    decay.append(param)
            groups = []
            groups.append({"params": decay, "weight_decay": weight_decay})
            groups.append({"params": no_decay, "weight_decay": 0.0})
            return groups


        model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
        optimizer = torch.optim.AdamW(configure_optimizers(model), lr=3e-4)  # expect: MP003
    """,
    ),
    bug(
        "params-set-as-a-dict-item",
        """
        import torch.nn as nn
        from torch.optim import SGD

        model = nn.Linear(512, 10).cuda().half()
        group = {"lr": 0.1, "momentum": 0.9}
        group["params"] = list(model.parameters())
        optimizer = SGD(**group)  # expect: MP003
    """,
    ),
    ok(
        "params-set-as-a-dict-item-are-fp32-master-copies",
        """
        import torch.nn as nn
        from torch.optim import SGD

        model = nn.Linear(512, 10).cuda().half()
        group = {"lr": 0.1, "params": list(model.parameters())}
        group["params"] = [p.detach().clone().float().requires_grad_() for p in model.parameters()]
        optimizer = SGD(**group)
    """,
    ),
    ok(
        "groups-filled-by-append-from-an-fp32-model",
        """
        import torch
        from torch import nn

        net = nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64)).cuda()
        params_non_bias = {"params": [], "lr": 0.1}
        for name, p in net.named_parameters():
            if "bias" not in name:
                params_non_bias["params"].append(p)
        opt = torch.optim.SGD(**params_non_bias)
    """,
    ),
    # Chosen parameters of a model half in part (its BatchNorm layers kept fp32) may all be fp32.
    ok(
        "params-chosen-by-append-from-a-model-half-in-part",
        """
        import torch
        from torch import nn

        net = nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64)).cuda().half()
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.float()
        norm_params = []
        for name, p in net.named_parameters():
            if name.startswith("1."):
                norm_params.append(p)
        opt = torch.optim.SGD(norm_params, lr=0.1)
    """,
    ),
    # OminiControl: the trainable parameters are what a method of `__init__` returns.
    bug(
        "params-returned-by-a-method-called-in-init",
        """
        import torch
        from diffusers.pipelines import FluxPipeline


        class FluxLoRA(torch.nn.Module):
            def __init__(self, flux_pipe_id: str, dtype: torch.dtype = torch.bfloat16):
                super().__init__()
                self.flux_pipe = FluxPipeline.from_pretrained(flux_pipe_id, torch_dtype=dtype).to("cuda")
                self.transformer = self.flux_pipe.transformer
                self.lora_layers = self.init_lora()

            def init_lora(self):
                lora_layers = filter(lambda p: p.requires_grad, self.transformer.parameters())
                return list(lora_layers)

            def configure_optimizers(self):
                self.trainable_params = self.lora_layers
                return torch.optim.AdamW(self.trainable_params, lr=1e-4)  # expect: MP003
    """,
    ),
    ok(
        "params-returned-by-a-method-called-in-init-of-an-fp32-model",
        """
        import torch
        from diffusers.pipelines import FluxPipeline


        class FluxLoRA(torch.nn.Module):
            def __init__(self, flux_pipe_id: str, dtype: torch.dtype = torch.float32):
                super().__init__()
                self.flux_pipe = FluxPipeline.from_pretrained(flux_pipe_id, torch_dtype=dtype).to("cuda")
                self.transformer = self.flux_pipe.transformer
                self.lora_layers = self.init_lora()

            def init_lora(self):
                return list(filter(lambda p: p.requires_grad, self.transformer.parameters()))

            def configure_optimizers(self):
                return torch.optim.AdamW(self.lora_layers, lr=1e-4)
    """,
    ),
    # The LoRA adapters peft adds are fp32, until the module casts itself whole at the end of `__init__`.
    bug(
        "adapters-cast-with-the-module-that-holds-them",
        """
        import lightning as L
        import torch
        from diffusers.pipelines import FluxPipeline
        from peft import LoraConfig


        class OminiModel(L.LightningModule):
            def __init__(self, flux_pipe_id: str, lora_config: dict, dtype: torch.dtype = torch.bfloat16):
                super().__init__()
                self.flux_pipe = FluxPipeline.from_pretrained(flux_pipe_id, torch_dtype=dtype).to("cuda")
                self.transformer = self.flux_pipe.transformer
                self.lora_layers = self.init_lora(lora_config)
                self.to("cuda").to(dtype)

            def init_lora(self, lora_config):
                self.transformer.add_adapter(LoraConfig(**lora_config), adapter_name="default")
                return list(filter(lambda p: p.requires_grad, self.transformer.parameters()))

            def configure_optimizers(self):
                return torch.optim.AdamW(self.lora_layers, lr=1e-4)  # expect: MP003
    """,
    ),
    # `add_adapter` is peft's `inject_adapter_in_model`: no `PeftModel`, so no upcast of the adapters,
    # which peft creates in the base layer's bf16 (diffusers upcasts them only under fp16).
    bug(
        "adapters-added-in-the-dtype-of-a-bf16-base",
        """
        import lightning as L
        import torch
        from diffusers.pipelines import FluxPipeline
        from peft import LoraConfig


        class OminiModel(L.LightningModule):
            def __init__(self, flux_pipe_id: str, lora_config: dict, dtype: torch.dtype = torch.bfloat16):
                super().__init__()
                self.flux_pipe = FluxPipeline.from_pretrained(flux_pipe_id, torch_dtype=dtype).to("cuda")
                self.transformer = self.flux_pipe.transformer
                self.lora_layers = self.init_lora(lora_config)

            def init_lora(self, lora_config):
                self.transformer.add_adapter(LoraConfig(**lora_config), adapter_name="default")
                return list(filter(lambda p: p.requires_grad, self.transformer.parameters()))

            def configure_optimizers(self):
                return torch.optim.AdamW(self.lora_layers, lr=1e-4)  # expect: MP003
    """,
    ),
    # Parameters held in a dict and handed on as its values (self-adaptive-llms' SVF vectors): under
    # keys written in code, or pooled under keys a loop picks, some of them only on one branch.
    bug(
        "parameters-of-a-dict-under-known-keys",
        """
        import torch

        prompts = {}
        prompts["prefix"] = torch.nn.Parameter(data=torch.randn(16, 4096, dtype=torch.bfloat16))
        prompts["suffix"] = torch.nn.Parameter(torch.randn(16, 4096, dtype=torch.bfloat16))
        optimizer = torch.optim.Adam(list(prompts.values()), lr=1e-3)  # expect: MP003
    """,
    ),
    bug(
        "parameters-pooled-under-keys-a-loop-picks",
        """
        import torch

        class Scales(torch.nn.Module):
            def __init__(self, base_params):
                super().__init__()
                self.learnable = {}
                for name, weight in base_params.items():
                    if "mlp" in name:
                        self.learnable[name] = torch.nn.Parameter(torch.ones(min(weight.shape), dtype=torch.bfloat16))
                self.trainable_params = list(self.learnable.values())

        def build(base_params):
            scales = Scales(base_params)
            return torch.optim.Adam(scales.trainable_params, lr=2e-3)  # expect: MP003
    """,
    ),
    ok(
        "fp32-parameters-pooled-under-keys-a-loop-picks",
        """
        import torch

        def build(base_params):
            learnable = {}
            for name, weight in base_params.items():
                learnable[name] = torch.nn.Parameter(torch.ones(min(weight.shape)))
            return torch.optim.Adam(learnable.values(), lr=2e-3)
    """,
    ),
    # weak-to-strong's table of model configs, built by a dict comprehension over a list written out
    # and read by the size a command line names (its default: "gpt2", loaded in bf16 on a bf16 GPU).
    bug(
        "a-config-read-from-a-table-built-by-a-comprehension",
        """
        from dataclasses import dataclass

        import torch
        from transformers import AutoModelForCausalLM

        @dataclass
        class ModelConfig:
            name: str
            custom_kwargs: dict | None = None

        BF16 = {"torch_dtype": torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32}
        MODEL_CONFIGS = [ModelConfig("gpt2", BF16), ModelConfig("gpt2-xl", BF16), ModelConfig("Qwen/Qwen-7B")]
        MODELS_DICT = {config.name: config for config in MODEL_CONFIGS}

        def main(model_size: str = "gpt2"):
            config = MODELS_DICT[model_size]
            model = AutoModelForCausalLM.from_pretrained(config.name, **(config.custom_kwargs or {}))
            return torch.optim.Adam(model.parameters(), lr=1e-5)  # expect: MP003
    """,
    ),
    ok(
        "a-table-read-by-a-size-whose-config-keeps-fp32",
        """
        from dataclasses import dataclass

        import torch
        from transformers import AutoModelForCausalLM

        @dataclass
        class ModelConfig:
            name: str
            custom_kwargs: dict | None = None

        MODEL_CONFIGS = [ModelConfig("gpt2"), ModelConfig("Qwen/Qwen-7B", {"torch_dtype": torch.bfloat16})]
        MODELS_DICT = {config.name: config for config in MODEL_CONFIGS}

        def main(model_size: str = "gpt2"):
            config = MODELS_DICT[model_size]
            model = AutoModelForCausalLM.from_pretrained(config.name, **(config.custom_kwargs or {}))
            return torch.optim.Adam(model.parameters(), lr=1e-5)
    """,
    ),
    bug(
        "filter-requires-grad",
        """
        import torch

        model = VisionTransformer(img_size=224, num_classes=1000).to(torch.float16)
        for p in model.patch_embed.parameters():
            p.requires_grad = False
        optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=1e-4)  # expect: MP003
    """,
    ),
    # 8-bit state does not help: the update is still applied to bf16 weights.
    bug(
        "bitsandbytes-adamw8bit",
        """
        import bitsandbytes as bnb
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        optimizer = bnb.optim.AdamW8bit(model.parameters(), lr=2e-5, betas=(0.9, 0.999))  # expect: MP003
    """,
    ),
    bug(
        "apex-fused-adam",
        """
        import torch
        from apex.optimizers import FusedAdam

        model = BertForPreTraining(config).cuda()
        model.half()
        optimizer = FusedAdam(model.parameters(), lr=1e-4, weight_decay=0.01)  # expect: MP003
    """,
    ),
    bug(
        "transformers-adamw",
        """
        import torch
        from transformers import AdamW, AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(ckpt, num_labels=2, torch_dtype=torch.float16)
        optimizer = AdamW(model.parameters(), lr=2e-5, correct_bias=False)  # expect: MP003
    """,
    ),
    # The helper's parameter is unknown on its own; its caller passes an fp16 model.
    bug(
        "helper-builds-optimizer",
        """
        import torch
        from transformers import AutoModelForSequenceClassification

        def build_optimizer(model, lr, weight_decay):
            no_decay = ("bias", "LayerNorm.weight")
            groups = [
                {"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)], "weight_decay": weight_decay},
                {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
            ]
            return torch.optim.AdamW(groups, lr=lr)  # expect: MP003

        model = AutoModelForSequenceClassification.from_pretrained(ckpt, torch_dtype=torch.float16)
        optimizer = build_optimizer(model, lr=2e-5, weight_decay=0.01)
    """,
    ),
    bug(
        "helper-returns-param-groups",
        """
        import torch

        def param_groups(model, weight_decay):
            decay = [p for p in model.parameters() if p.ndim >= 2]
            no_decay = [p for p in model.parameters() if p.ndim < 2]
            return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

        model = Transformer(model_args).bfloat16()
        optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=3e-4)  # expect: MP003
    """,
    ),
    # The optimizer holds the same Parameter objects the in-place cast turns into fp16, and it
    # steps afterwards: reported at the optimizer (where a cast before it would be), naming the cast.
    bug(
        "cast-after-optimizer-then-stepped",
        """
        import torch
        import torch.nn.functional as F

        model = Net().cuda()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # expect: MP003
        model.half()
        for x, y in loader:
            loss = F.nll_loss(model(x.cuda().half()), y.cuda())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    """,
    ),
    # bf16 weights only with a flag: after the branches the model's dtype is not known, but it is
    # still the module the optimizer (built by a helper) holds, so the fp16 cast after it is reported,
    # at the call that handed the helper the parameters.
    bug(
        "cast-after-optimizer-of-a-model-cast-to-bf16-on-one-branch",
        """
        import torch
        import torch.nn.functional as F
        import torchvision


        def build_optimizer(net, lr):
            return torch.optim.Adam(net.parameters(), lr=lr)


        def train(args, loader):
            model = torchvision.models.resnet50().cuda()
            if args.bf16_weights:
                model = model.to(torch.bfloat16)
            optimizer = build_optimizer(model, lr=1e-3)  # expect: MP003
            model.half()
            for x, y in loader:
                loss = F.nll_loss(model(x.cuda().half()), y.cuda())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    """,
    ),
    # The model's parameters gathered with others handed in (of no known kind): the optimizer still
    # holds the model's weights, so the fp16 cast after it is reported.
    bug(
        "cast-after-optimizer-over-the-models-and-other-parameters",
        """
        import torch
        import torch.nn.functional as F
        import torchvision


        def train(loader, extra_params):
            model = torchvision.models.resnet50().cuda()
            optimizer = torch.optim.SGD(list(model.parameters()) + extra_params, lr=0.1)  # expect: MP003
            model.half()
            for x, y in loader:
                loss = F.cross_entropy(model(x.cuda().half()), y.cuda())
                loss.backward()
                optimizer.step()


        def train_extended(loader, base_params):
            model = torchvision.models.resnet50().cuda()
            params = base_params
            params.extend(model.parameters())
            optimizer = torch.optim.SGD(params, lr=0.1)  # expect: MP003
            model.half()
            for x, y in loader:
                loss = F.cross_entropy(model(x.cuda().half()), y.cuda())
                loss.backward()
                optimizer.step()
    """,
    ),
    # The trainer gathers the parameters into a list it keeps on itself.
    bug(
        "parameters-gathered-into-a-list-on-the-trainer",
        """
        import torch
        from transformers import AutoModelForCausalLM


        class Trainer:
            def __init__(self, model):
                self.model = model
                self.params = []
                self.params.extend(self.model.parameters())
                self.optimizer = torch.optim.AdamW(self.params, lr=1e-5)  # expect: MP003


        Trainer(AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16))
    """,
    ),
    bug(
        "trainer-self-model-other-method",
        """
        import torch

        class SFTTrainer:
            def __init__(self, hf_model, args):
                self.args = args
                self.model = hf_model.to(torch.bfloat16)

            def create_optimizer(self):
                self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.args.lr, betas=(0.9, 0.95))  # expect: MP003
                return self.optimizer
    """,
    ),
    bug(
        "set-default-dtype-before-build",
        """
        import torch
        import torch.nn as nn
        from torch import optim

        torch.set_default_dtype(torch.bfloat16)
        encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(d_model=512, nhead=8), num_layers=6)
        optimizer = optim.Adam(encoder.parameters(), lr=1e-4)  # expect: MP003
    """,
    ),
    bug(
        "to-device-dtype-imported-adamw",
        """
        import torch
        from torch.optim import AdamW

        device = torch.device("cuda")
        model = Llama(model_config).to(device, dtype=torch.bfloat16)
        optimizer = AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)  # expect: MP003
    """,
    ),
    bug(
        "module-type-half-tensor",
        """
        import torch

        model = LSTMTagger(embedding_dim, hidden_dim, vocab_size, tagset_size)
        model = model.type(torch.HalfTensor)
        optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)  # expect: MP003
    """,
    ),
    bug(
        "constant-dtype-flow",
        """
        import torch

        HALF = torch.float16

        model = UNet(in_channels=3, out_channels=1)
        model = model.to(HALF)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))  # expect: MP003
    """,
    ),
    # Only the head is trained, but it belongs to the bf16 model: its parameters are bf16.
    bug(
        "submodule-parameters",
        """
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        model.requires_grad_(False)
        model.lm_head.requires_grad_(True)
        optimizer = torch.optim.AdamW(model.lm_head.parameters(), lr=1e-4)  # expect: MP003
    """,
    ),
    # One half module among the parameter lists is enough.
    bug(
        "actor-critic-list-concatenation",
        """
        import torch

        actor = Actor(obs_dim, act_dim).to(device).half()
        critic = Critic(obs_dim).to(device)
        optimizer = torch.optim.Adam(list(actor.parameters()) + list(critic.parameters()), lr=3e-4)  # expect: MP003
    """,
    ),
    bug(
        "trainable-params-list",
        """
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-5)  # expect: MP003
    """,
    ),
    # Wrappers keep the wrapped module's parameters: DDP and torch.compile change no dtype.
    bug(
        "ddp-wrapped-half-model",
        """
        import torch
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = Net().cuda().half()
        model = DDP(model, device_ids=[local_rank])
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)  # expect: MP003
    """,
    ),
    bug(
        "compiled-bf16-model",
        """
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        model = torch.compile(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)  # expect: MP003
    """,
    ),
    # The loading options of one branch or the other: the dtype is bf16 or fp32, not known.
    ok(
        "loading-options-chosen-by-a-flag",
        """
        import torch
        from transformers import AutoModelForCausalLM


        def build(args):
            if args.precision == "bf16":
                model_kwargs = {"torch_dtype": torch.bfloat16, "attn_implementation": "flash_attention_2"}
            else:
                model_kwargs = {"torch_dtype": torch.float32, "attn_implementation": "sdpa"}
            model = AutoModelForCausalLM.from_pretrained(args.model, **model_kwargs)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
            return model, optimizer
    """,
    ),
    # The first optimizer is replaced before anything steps: only the rebuilt one is reported.
    bug(
        "optimizer-rebuilt-after-cast",
        """
        import torch

        model = Net().cuda()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.bfloat16()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # expect: MP003
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
    """,
    ),
    # `.cuda()` hands the module back: the cast at the end of the chain is still in place.
    bug(
        "in-place-cast-at-the-end-of-a-device-chain",
        """
        import torch

        model = Net()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # expect: MP003
        model.cuda().half()
        for x, y in loader:
            loss = criterion(model(x.cuda().half()), y.cuda())
            loss.backward()
            optimizer.step()
    """,
    ),
    # Only the teacher is cast, after the student's optimizer was built: that optimizer's
    # parameters stay fp32.
    ok(
        "teacher-cast-after-the-students-optimizer",
        """
        import torch
        import torch.nn.functional as F

        student = ResNet18().cuda()
        teacher = ResNet152().cuda().eval()
        optimizer = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)
        teacher.half()
        for x, y in loader:
            with torch.no_grad():
                soft = teacher(x.cuda().half()).float()
            loss = F.kl_div(F.log_softmax(student(x.cuda()), -1), F.softmax(soft, -1), reduction="batchmean")
            loss.backward()
            optimizer.step()
    """,
    ),
    # A module reached through two attributes is not known to be the one the optimizer holds.
    ok(
        "cast-of-an-untracked-module-after-an-untracked-optimizer",
        """
        import torch

        optimizer = torch.optim.SGD(trainable_parameters(student), lr=0.1)
        teacher.model.backbone.half()
        for x, y in loader:
            loss = criterion(student(x), y)
            loss.backward()
            optimizer.step()
    """,
    ),
    # Cast to fp32 after the optimizer was built (fp32 weights for bf16 autocast, whatever dtype the
    # checkpoint has): nothing the optimizer holds is half.
    ok(
        "fp32-cast-after-optimizer",
        """
        import torch
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(args.model_name, num_labels=2)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
        model.float()
        for batch in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
    """,
    ),
    # Cast in place to a dtype chosen at run time: the bf16 it was loaded in is gone.
    ok(
        "bf16-model-cast-in-place-to-a-runtime-dtype",
        """
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        model.to(dtype=getattr(torch, args.dtype))
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    """,
    ),
    # Retyped in place (`.type()`) to a dtype chosen at run time: the bf16 it was loaded in is gone too.
    ok(
        "bf16-model-retyped-to-a-runtime-dtype",
        """
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        model.type(DTYPES[args.precision])
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    """,
    ),
    # A dtype string chosen by the GPU: bf16 or fp16, half either way.
    bug(
        "dtype-string-chosen-by-the-gpu",
        """
        import torch
        from transformers import AutoModelForCausalLM

        dtype = "bfloat16" if torch.cuda.get_device_capability()[0] >= 8 else "float16"
        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=dtype)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)  # expect: MP003
    """,
    ),
    # ...but "auto" on the other path is the checkpoint's dtype, which may be fp32.
    ok(
        "dtype-string-bf16-or-auto",
        """
        import torch
        from transformers import AutoModelForCausalLM

        dtype = "bfloat16" if torch.cuda.get_device_capability()[0] >= 8 else "auto"
        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=dtype)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    """,
    ),
    # `getattr(torch, name)` of an option's default.
    bug(
        "dtype-looked-up-on-torch-by-an-option",
        """
        import argparse
        import torch
        from transformers import AutoModelForCausalLM

        parser = argparse.ArgumentParser()
        parser.add_argument("--dtype", default="bfloat16")
        args = parser.parse_args()
        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=getattr(torch, args.dtype))
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)  # expect: MP003
    """,
    ),
    # Param groups with their own learning rates: the bf16 head's group comes second.
    bug(
        "fp32-encoder-group-then-a-bf16-head-group",
        """
        import torch

        encoder = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(512, 8), num_layers=6).cuda()
        head = torch.nn.Linear(512, 32000).cuda().bfloat16()
        optimizer = torch.optim.AdamW(  # expect: MP003
            [{"params": encoder.parameters(), "lr": 1e-4}, {"params": head.parameters(), "lr": 1e-3}]
        )
    """,
    ),
    # The standard AMP recipe: fp32 weights, low precision only inside autocast.
    ok(
        "fp32-model-with-autocast",
        """
        import torch

        model = Net().cuda()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        scaler = torch.amp.GradScaler("cuda")
        for x, y in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = criterion(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    """,
    ),
    # DeepSpeed wraps the client optimizer and keeps fp32 master weights.
    ok(
        "deepspeed-initialize-with-optimizer",
        """
        import deepspeed
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
        engine, optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config="ds_config.json")
    """,
    ),
    # FSDP's param_dtype is a compute dtype: the sharded parameters the optimizer sees stay fp32.
    ok(
        "fsdp-mixed-precision",
        """
        import torch
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP, MixedPrecision

        bf16_policy = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16, buffer_dtype=torch.bfloat16)
        model = FSDP(Transformer(cfg), mixed_precision=bf16_policy, device_id=torch.cuda.current_device())
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    """,
    ),
    # Every argument spread from a config read elsewhere: which parameters the optimizer gets is unknown.
    ok(
        "arguments-spread-from-config",
        """
        import torch

        model = torch.nn.Linear(512, 512).cuda().half()
        optimizer = torch.optim.AdamW(**load_config("optim.yaml"))
    """,
    ),
    # ... and from a dict built right there, they are known.
    bug(
        "arguments-spread-from-a-dict-built-here",
        """
        import torch

        model = torch.nn.Linear(512, 512).cuda().half()
        optimizer_kwargs = dict(params=model.parameters(), lr=1e-3, weight_decay=0.0)
        optimizer = torch.optim.AdamW(**optimizer_kwargs)  # expect: MP003
    """,
    ),
    ok(
        "optimi-kahan-sum",
        """
        import torch
        from optimi import AdamW
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        optimizer = AdamW(model.parameters(), lr=1e-5, kahan_sum=True)
    """,
    ),
    # optimi turns Kahan summation on by itself for low-precision parameters.
    ok(
        "optimi-default",
        """
        import optimi
        import torch

        model = VisionTransformer(num_classes=1000).to(torch.bfloat16)
        optimizer = optimi.StableAdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    """,
    ),
    ok(
        "torchao-bf16-stochastic-round",
        """
        import torch
        from torchao.prototype.low_bit_optim import _AdamW

        model = Transformer(args).to("cuda", dtype=torch.bfloat16)
        optimizer = _AdamW(model.parameters(), lr=3e-4, bf16_stochastic_round=True)
    """,
    ),
    ok(
        "torchao-8bit-stochastic-round",
        """
        import torch
        from torchao.optim import AdamW8bit
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        optimizer = AdamW8bit(model.parameters(), lr=1e-5, bf16_stochastic_round=True)
    """,
    ),
    # A bare parameter nobody in the run passes anything to: unknown, so quiet.
    ok(
        "unknown-parameter",
        """
        import torch

        def make_optimizer(model, lr):
            return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95))
    """,
    ),
    # peft's wrapper is treated as unknown provenance (its adapters are fp32 by default).
    ok(
        "peft-model",
        """
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"]))
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)
    """,
    ),
    # The dtype depends on a flag only known at run time: unknown, so quiet (precision first).
    ok(
        "conditional-dtype",
        """
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16 if args.bf16 else torch.float32)
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    """,
    ),
    # Cast to half for export once training is over: the optimizer never steps again.
    ok(
        "cast-for-export-after-training",
        """
        import torch
        import torch.nn.functional as F

        model = Net().cuda()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.half()
        torch.save(model.state_dict(), "model_fp16.pt")
    """,
    ),
    # Only the frozen teacher is half; the optimizer trains the fp32 student.
    ok(
        "frozen-half-teacher",
        """
        import torch

        teacher = ResNet152().cuda().eval()
        teacher.half()
        student = ResNet18().cuda()
        optimizer = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)
    """,
    ),
    # `model.float()` as a bare statement casts the module back to fp32 in place.
    ok(
        "upcast-before-optimizer",
        """
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        model.float()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    """,
    ),
    # Manual mixed precision: the optimizer updates fp32 master copies of the fp16 weights.
    ok(
        "fp32-master-copies",
        """
        import torch

        model = Net().cuda().half()
        master_params = [p.detach().clone().float().requires_grad_() for p in model.parameters()]
        optimizer = torch.optim.SGD(master_params, lr=0.1, momentum=0.9)
    """,
    ),
    ok(
        "frozen-bf16-base-fp32-head",
        """
        import torch
        import torch.nn as nn
        from transformers import AutoModel

        base = AutoModel.from_pretrained(name, torch_dtype=torch.bfloat16)
        base.requires_grad_(False)
        head = nn.Linear(base.config.hidden_size, num_labels)
        optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)
    """,
    ),
    # fp16 input batches (as DALI pipelines deliver them) are tensor casts, not module casts.
    ok(
        "tensor-cast-is-not-a-module-cast",
        """
        import torch

        model = Net().cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        scaler = torch.amp.GradScaler("cuda")
        for images, labels in loader:
            images = images.to("cuda", dtype=torch.float16, non_blocking=True)
            with torch.autocast("cuda", dtype=torch.float16):
                loss = criterion(model(images), labels.cuda())
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    """,
    ),
    ok(
        "device-moves-only",
        """
        import torch

        model = Net()
        model = model.to(device)
        model.cuda()
        model.to("cuda", non_blocking=True)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    """,
    ),
    # Half only when a flag is set, fp32 otherwise: unknown, so quiet (precision first).
    ok(
        "half-only-under-a-flag",
        """
        import torch

        model = Net().cuda()
        if args.fp16:
            model = model.half()
        else:
            model = model.float()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    """,
    ),
    bug(
        "learned-prompt-parameters-in-the-frozen-models-dtype",
        """
        import torch
        import torch.nn as nn
        from transformers import CLIPModel


        class PromptLearner(nn.Module):
            def __init__(self, clip_model, n_ctx=16):
                super().__init__()
                ctx_vectors = torch.empty(n_ctx, 512, dtype=clip_model.dtype)
                nn.init.normal_(ctx_vectors, std=0.02)
                self.ctx = nn.Parameter(ctx_vectors)


        clip_model = CLIPModel.from_pretrained("openai/clip-vit-base-patch16", torch_dtype=torch.float16)
        prompt_learner = PromptLearner(clip_model)
        optimizer = torch.optim.SGD([prompt_learner.ctx], lr=0.002, momentum=0.9)  # expect: MP003
        """,
    ),
    ok(
        "learned-prompt-parameters-kept-fp32",
        """
        import torch
        import torch.nn as nn
        from transformers import CLIPModel


        class PromptLearner(nn.Module):
            def __init__(self, clip_model, n_ctx=16):
                super().__init__()
                self.ctx = nn.Parameter(torch.empty(n_ctx, 512, dtype=clip_model.dtype).float())
                self.scale = nn.Parameter(torch.ones(1, dtype=clip_model.dtype))


        clip_model = CLIPModel.from_pretrained("openai/clip-vit-base-patch16", torch_dtype=torch.float16)
        prompt_learner = PromptLearner(clip_model)
        optimizer = torch.optim.AdamW([{"params": [prompt_learner.ctx], "lr": 2e-3}])
        logits = prompt_learner.scale * features
        """,
    ),
    bug(
        "a-layers-weight-in-a-param-group-of-a-half-model",
        """
        import torch
        import torch.nn as nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 64, 3, padding=1)
                self.head = nn.Linear(64, 10, bias=False)


        model = Net().cuda().half()
        param_configs = [
            dict(params=[model.conv.bias], lr=0.1, weight_decay=5e-4),
            dict(params=[model.head.weight], lr=0.01, weight_decay=5e-4),
        ]
        optimizer = torch.optim.SGD(param_configs, momentum=0.85, nesterov=True)  # expect: MP003
        """,
    ),
    # cifar10-airbench's CifarNet: the loop in `__init__` casts each submodule by its class, so the
    # whitening conv's bias and the head's weight are float16 (BatchNorm kept float32).
    bug(
        "named-weights-of-a-model-cast-by-class-in-init",
        """
        import torch
        from torch import nn


        class BatchNorm(nn.BatchNorm2d):
            def __init__(self, num_features, momentum=0.6, eps=1e-12):
                super().__init__(num_features, eps=eps, momentum=1 - momentum)


        class Conv(nn.Conv2d):
            def __init__(self, channels_in, channels_out):
                super().__init__(channels_in, channels_out, kernel_size=3, padding="same", bias=False)


        class CifarNet(nn.Module):
            def __init__(self, widths):
                super().__init__()
                self.whiten = Conv(3, widths[0])
                self.norm = BatchNorm(widths[0])
                self.head = nn.Linear(widths[-1], 10, bias=False)
                for mod in self.modules():
                    if isinstance(mod, BatchNorm):
                        mod.float()
                    else:
                        mod.half()


        def main():
            model = CifarNet([64, 256]).cuda()
            param_configs = [
                dict(params=[model.whiten.bias], lr=0.05, weight_decay=2e-6),
                dict(params=[model.head.weight], lr=0.6, weight_decay=2e-6),
            ]
            optimizer = torch.optim.SGD(param_configs, momentum=0.85, nesterov=True)  # expect: MP003
            norm_optimizer = torch.optim.SGD(model.norm.parameters(), lr=0.05)
            return optimizer, norm_optimizer
        """,
    ),
    # modded-nanogpt: only the embeddings (and the project's Linear subclass) made bfloat16.
    bug(
        "a-layer-class-cast-by-type-test-after-construction",
        """
        import torch
        import torch.nn as nn


        class CastedLinear(nn.Linear):
            def forward(self, x):
                return super().forward(x)


        class GPT(nn.Module):
            def __init__(self, vocab_size, model_dim):
                super().__init__()
                self.embed = nn.Embedding(vocab_size, model_dim)
                self.norm = nn.LayerNorm(model_dim)
                self.lm_head = CastedLinear(model_dim, vocab_size)


        model = GPT(50304, 768).cuda()
        for m in model.modules():
            if type(m) in (nn.Embedding, CastedLinear):
                m.bfloat16()
        head_optimizer = torch.optim.Adam([model.lm_head.weight], lr=0.008)  # expect: MP003
        norm_optimizer = torch.optim.Adam(model.norm.parameters(), lr=0.008)
        """,
    ),
    # A linear probe on a half backbone: the loop casts the convolutions only, the head stays float32.
    ok(
        "the-layer-classes-a-loop-leaves-stay-float32",
        """
        import torch
        import torch.nn as nn


        class Probe(nn.Module):
            def __init__(self, dim):
                super().__init__()
                self.backbone = nn.Conv2d(3, dim, 3)
                self.head = nn.Linear(dim, 10)
                for module in self.modules():
                    if isinstance(module, nn.Conv2d):
                        module.half()


        probe = Probe(512).cuda()
        optimizer = torch.optim.SGD(probe.head.parameters(), lr=0.1)
        """,
    ),
    # `modules()` visits the model itself first: `module.half()` on it casts the head too, before
    # the head's own turn leaves it as it is.
    bug(
        "a-negated-class-test-also-casts-the-model-itself",
        """
        import torch
        import torch.nn as nn


        class Probe(nn.Module):
            def __init__(self, dim):
                super().__init__()
                self.backbone = nn.Conv2d(3, dim, 3)
                self.head = nn.Linear(dim, 10)
                for module in self.modules():
                    if not isinstance(module, nn.Linear):
                        module.half()


        probe = Probe(512).cuda()
        optimizer = torch.optim.SGD(probe.head.parameters(), lr=0.1)  # expect: MP003
        """,
    ),
    # A class test the analysis cannot decide (a class imported from outside) leaves the model half in part.
    ok(
        "a-class-test-on-an-unknown-class-leaves-the-layers-unknown",
        """
        import torch
        import torch.nn as nn
        from somewhere import Frozen


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 64, 3)
                self.head = nn.Linear(64, 10)
                for m in self.modules():
                    if isinstance(m, Frozen):
                        m.half()


        net = Net().cuda()
        optimizer = torch.optim.SGD([net.head.weight], lr=0.1)
        """,
    ),
    # cifar10-airbench's make_net/train: BatchNorm put back to float32 after `net.half()`, then the
    # parameters split by name into two groups that together hold every trainable one.
    bug(
        "param-groups-split-by-name-cover-a-model-half-but-its-batchnorm",
        """
        import torch
        import torch.nn as nn


        class BatchNorm(nn.BatchNorm2d):
            pass


        def make_net(widths):
            net = nn.Sequential(
                nn.Conv2d(3, widths[0], 3, padding=1, bias=False),
                BatchNorm(widths[0]),
                nn.GELU(),
                nn.Linear(widths[0], 10, bias=False),
            )
            net = net.half().cuda()
            net = net.to(memory_format=torch.channels_last)
            for mod in net.modules():
                if isinstance(mod, BatchNorm):
                    mod.float()
            return net


        def train(make_net=make_net, lr=0.2, wd=5e-4):
            model = make_net([64])
            norm_biases = [p for k, p in model.named_parameters() if "norm" in k and p.requires_grad]
            other_params = [p for k, p in model.named_parameters() if "norm" not in k and p.requires_grad]
            param_configs = [
                dict(params=norm_biases, lr=lr * 64, weight_decay=wd / 64),
                dict(params=other_params, lr=lr, weight_decay=wd),
            ]
            optimizer = torch.optim.SGD(param_configs, momentum=0.85, nesterov=True)  # expect: MP003
            bias_optimizer = torch.optim.SGD(norm_biases, lr=lr)
            return optimizer, bias_optimizer
        """,
    ),
    bug(
        "decay-groups-split-by-ndim-cover-a-model-half-but-its-layernorm",
        """
        import torch
        from torch import nn
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.float16)
        for module in model.modules():
            if isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
                module.float()
        decay = [p for p in model.parameters() if p.ndim >= 2]
        no_decay = [p for p in model.parameters() if p.ndim < 2]
        optimizer = torch.optim.AdamW(  # expect: MP003
            [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=3e-4
        )
        """,
    ),
    # Groups that do not cover the model (two tests that are not one another's negation), and the
    # trainable parameters of a model whose float32 layers are not normalization layers (a linear
    # probe's head), may all be float32.
    ok(
        "param-groups-that-may-all-be-float32",
        """
        import torch
        import torch.nn as nn

        model = nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), nn.Flatten(), nn.Linear(64, 10)).cuda().half()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.float()
        norm = [p for n, p in model.named_parameters() if "1." in n]
        bias = [p for n, p in model.named_parameters() if "bias" in n]
        optimizer = torch.optim.SGD([dict(params=norm), dict(params=bias, weight_decay=0.0)], lr=0.1)

        probe = nn.Sequential(nn.Conv2d(3, 64, 3), nn.Flatten(), nn.Linear(64, 10)).cuda().half()
        for m in probe.modules():
            if isinstance(m, nn.Linear):
                m.float()
        probe_optimizer = torch.optim.SGD([p for p in probe.parameters() if p.requires_grad], lr=0.1)

        linear_probe = nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), nn.Flatten(), nn.Linear(64, 10)).half()
        for m in linear_probe.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.float()
            elif isinstance(m, nn.Linear):
                m.weight.data = m.weight.data.float()
        linear_probe_optimizer = torch.optim.SGD([p for p in linear_probe.parameters() if p.requires_grad], lr=0.1)
        """,
    ),
    # GaLore's torchrun_main: optimizers of a package outside the repository, over param groups one
    # of which is filled from modules the analysis does not follow.
    bug(
        "a-third-party-optimizer-over-param-groups-of-a-bf16-model",
        """
        import torch
        import torch.nn as nn
        from galore_torch import GaLoreAdamW, GaLoreAdamW8bit
        from lion_pytorch import Lion


        def main(args, model_config):
            model = LlamaForCausalLM(model_config)
            model = model.to(device="cuda", dtype=torch.bfloat16)
            galore_params = []
            for module_name, module in model.named_modules():
                if isinstance(module, nn.Linear) and "mlp" in module_name:
                    galore_params.append(module.weight)
            id_galore_params = [id(p) for p in galore_params]
            regular_params = [p for p in model.parameters() if id(p) not in id_galore_params]
            param_groups = [{"params": regular_params}, {"params": galore_params, "rank": 128, "scale": 0.25}]
            if args.optimizer == "galore_adamw":
                optimizer = GaLoreAdamW(param_groups, lr=args.lr)  # expect: MP003
            elif args.optimizer == "galore_adamw8bit":
                optimizer = GaLoreAdamW8bit(param_groups, lr=args.lr)  # expect: MP003
            else:
                optimizer = Lion(model.parameters(), lr=args.lr)  # expect: MP003
            return optimizer
        """,
    ),
    # OminiControl's trainer: Prodigy (prodigyopt) over LoRA layers of a FLUX transformer loaded bf16.
    bug(
        "prodigy-over-the-trainable-parameters-of-a-bf16-pipeline",
        """
        import prodigyopt
        import torch
        from diffusers.pipelines import FluxPipeline


        def configure(model_path, opt_config):
            pipe = FluxPipeline.from_pretrained(model_path, torch_dtype=torch.bfloat16)
            transformer = pipe.transformer
            trainable = list(filter(lambda p: p.requires_grad, transformer.parameters()))
            if opt_config["type"] == "Prodigy":
                return prodigyopt.Prodigy(trainable, lr=1.0, use_bias_correction=True)  # expect: MP003
            return None
        """,
    ),
    bug(
        "timm-optimizer-factory-over-a-half-model",
        """
        import torch
        from timm.optim import create_optimizer_v2

        model = VisionTransformer(num_classes=1000).cuda().half()
        optimizer = create_optimizer_v2(model, opt="adamw", lr=5e-4, weight_decay=0.05)  # expect: MP003
        """,
    ),
    # Not optimizers: a scheduler and a loss of packages outside the repository, and optimi's
    # AdamW, whose Kahan summation makes up for the half parameters.
    ok(
        "third-party-names-that-are-no-optimizers-of-half-weights",
        """
        import torch
        from optimi import AdamW
        from timm.optim import create_optimizer_v2
        from timm.scheduler import CosineLRScheduler
        from somewhere.losses import SGDLoss
        from deepspeed.ops.adam import FusedAdam

        model = Net().cuda().to(torch.bfloat16)
        optimizer = AdamW(model.parameters(), lr=1e-4, kahan_sum=True)
        scheduler = CosineLRScheduler(optimizer, t_initial=100)
        criterion = SGDLoss(model.parameters())
        engine_optimizer = FusedAdam(model.parameters(), lr=1e-4)  # deepspeed.initialize wraps it with fp32 masters
        fp32_model = Net().cuda()
        fp32_optimizer = create_optimizer_v2(fp32_model, opt="adamw", lr=5e-4)
        """,
    ),
    # CLIP's build_model: `model.apply(fn)` runs fn on every submodule, and fn casts the weights of
    # the convolutions and linear layers (their LayerNorms stay float32).
    bug(
        "apply-casts-the-weights-of-the-layers-its-function-picks",
        """
        import torch
        from torch import nn


        class LayerNorm(nn.LayerNorm):
            def forward(self, x):
                return super().forward(x.float()).type(x.dtype)


        class VisionTransformer(nn.Module):
            def __init__(self, width, output_dim):
                super().__init__()
                self.conv1 = nn.Conv2d(3, width, kernel_size=16, stride=16, bias=False)
                self.ln_post = LayerNorm(width)
                self.proj = nn.Linear(width, output_dim)


        class CLIP(nn.Module):
            def __init__(self, width, embed_dim):
                super().__init__()
                self.visual = VisionTransformer(width, embed_dim)
                self.ln_final = LayerNorm(width)


        def build_model(width, embed_dim=512, dtype=torch.float16):
            model = CLIP(width, embed_dim)

            def _convert_weights(l):
                if isinstance(l, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                    l.weight.data = l.weight.data.to(dtype)
                    if l.bias is not None:
                        l.bias.data = l.bias.data.to(dtype)

            model.apply(_convert_weights)
            return model.eval()


        clip_model = build_model(768)
        proj_optimizer = torch.optim.SGD(clip_model.visual.proj.parameters(), lr=2e-3)  # expect: MP003
        norm_optimizer = torch.optim.SGD(clip_model.ln_final.parameters(), lr=2e-3)
        """,
    ),
    # Tip-Adapter: an adapter built `.to(clip_model.dtype)`; CLIP's `dtype` property reads
    # `self.visual.conv1.weight.dtype`, which `convert_weights` made half after `__init__`. A model's
    # `dtype` is the dtype it was cast to; the property's body alone sees the fp32 layers `__init__` built.
    *(
        case(
            f"an-adapter-in-the-dtype-of-a-{name}-clip-model",
            f"""
            import torch
            from torch import nn


            class ModifiedResNet(nn.Module):
                def __init__(self, width):
                    super().__init__()
                    self.conv1 = nn.Conv2d(3, width // 2, kernel_size=3, stride=2, padding=1, bias=False)
                    self.bn1 = nn.BatchNorm2d(width // 2)


            class VisionTransformer(nn.Module):
                def __init__(self, width):
                    super().__init__()
                    self.conv1 = nn.Conv2d(3, width, kernel_size=16, stride=16, bias=False)
                    self.ln_post = nn.LayerNorm(width)


            class CLIP(nn.Module):
                def __init__(self, width, vision_layers):
                    super().__init__()
                    if isinstance(vision_layers, (tuple, list)):
                        self.visual = ModifiedResNet(width)
                    else:
                        self.visual = VisionTransformer(width)

                @property
                def dtype(self):
                    return self.visual.conv1.weight.dtype


            def convert_weights(model):
                def _convert_weights_to_fp16(l):
                    if isinstance(l, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                        l.weight.data = l.weight.data.half()

                model.apply(_convert_weights_to_fp16)


            def load(state_dict, device="cuda"):
                vision_layers = [k for k in state_dict if k.startswith("visual.layer")] or 12
                model = CLIP(768, vision_layers)
                convert_weights(model)
                if device == "cpu":
                    model.float()
                return model.eval()


            def run_tip_adapter_F(cache_keys, clip_model):
                adapter = nn.Linear(cache_keys.shape[0], cache_keys.shape[1], bias=False).to(clip_model.dtype).cuda()
                optimizer = torch.optim.AdamW(adapter.parameters(), lr=1e-3, eps=1e-4){expect}
                return optimizer


            clip_model = load(torch.load("ViT-B-16.pt"){device})
            run_tip_adapter_F(torch.randn(1024, 16), clip_model)
            """,
        )
        for case, name, device, expect in (
            (bug, "half", "", "  # expect: MP003"),
            (ok, "cpu-float", ', "cpu"', ""),
        )
    ),
    # A function that initialises weights, or casts layers the model does not hold, casts nothing
    # the optimizer updates.
    ok(
        "apply-of-a-function-that-casts-none-of-the-layers",
        """
        import torch
        from torch import nn


        class Head(nn.Module):
            def __init__(self, dim):
                super().__init__()
                self.norm = nn.LayerNorm(dim)
                self.fc = nn.Linear(dim, 10)


        def _init_weights(m):
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)


        def _embeddings_to_half(m):
            if isinstance(m, nn.Embedding):
                m.weight.data = m.weight.data.half()


        head = Head(768)
        head.apply(_init_weights)
        head.apply(_embeddings_to_half)
        optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)
        """,
    ),
    # A helper that casts the model it is handed casts the caller's model (module casts are in place):
    # CLIP's `convert_weights(model)`, and a plain `to_half(model)`; one that casts a copy does not.
    bug(
        "a-helper-casts-the-model-it-is-handed-in-place",
        """
        import copy

        import torch
        from torch import nn


        class TextEncoder(nn.Module):
            def __init__(self, width):
                super().__init__()
                self.token_embedding = nn.Embedding(49408, width)
                self.ln_final = nn.LayerNorm(width)
                self.text_projection = nn.Linear(width, 512, bias=False)


        def convert_weights(model: nn.Module):
            def _convert_weights_to_fp16(l):
                if isinstance(l, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                    l.weight.data = l.weight.data.half()
                    if l.bias is not None:
                        l.bias.data = l.bias.data.half()

            model.apply(_convert_weights_to_fp16)


        def to_half(module, device="cuda"):
            module = module.to(device)
            module.half()


        def ema_copy(module):
            return copy.deepcopy(module).half()


        encoder = TextEncoder(512)
        convert_weights(encoder)
        projection_optimizer = torch.optim.Adam(encoder.text_projection.parameters(), lr=1e-5)  # expect: MP003
        norm_optimizer = torch.optim.Adam(encoder.ln_final.parameters(), lr=1e-5)

        head = nn.Linear(512, 10)
        to_half(head)
        head_optimizer = torch.optim.SGD(head.parameters(), lr=0.1)  # expect: MP003

        student = nn.Linear(512, 10)
        teacher = ema_copy(student)
        student_optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
        """,
    ),
    ok(
        "a-layers-weight-of-a-model-half-in-part-is-unknown",
        """
        import torch
        import torch.nn as nn
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained("roberta-base", torch_dtype=torch.float16)
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.float()
        layer_norms = [model.roberta.embeddings.LayerNorm.weight, model.roberta.embeddings.LayerNorm.bias]
        optimizer = torch.optim.SGD([dict(params=layer_norms, lr=0.1)], momentum=0.9)
        """,
    ),
    # HALOs' launch.py: the optimizer class named by the config; every torch.optim class steps the
    # parameters in their own dtype, whichever name the config gives.
    bug(
        "torch-optim-class-picked-by-a-config-name",
        """
        import torch
        from transformers import AutoModelForCausalLM


        def main(config):
            policy_dtype = torch.bfloat16 if config.model.policy_dtype == "bfloat16" else torch.float16
            policy = AutoModelForCausalLM.from_pretrained(config.model.name_or_path, torch_dtype=policy_dtype)
            optimizer = getattr(torch.optim, config.optimizer)(policy.parameters(), lr=config.lr)  # expect: MP003
            warmup = getattr(torch.optim.lr_scheduler, config.scheduler)(optimizer, start_factor=0.1)
        """,
    ),
    bug(
        "torch-optim-class-picked-by-name-in-a-helper",
        """
        import torch.nn as nn
        from torch import optim


        def build_optimizer(params, name, lr):
            optimizer_class = getattr(optim, name)
            return optimizer_class(params, lr=lr)


        class Trainer:
            def __init__(self, args):
                self.model = nn.Sequential(nn.Linear(512, 512), nn.GELU(), nn.Linear(512, 10)).to("cuda").bfloat16()
                self.optimizer = build_optimizer(self.model.parameters(), args.optimizer, args.lr)  # expect: MP003
        """,
    ),
    ok(
        "torch-optim-class-picked-by-name-over-fp32-parameters",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM


        def main(config):
            policy = AutoModelForCausalLM.from_pretrained(config.model.name_or_path, torch_dtype=torch.float32)
            optimizer = getattr(torch.optim, config.optimizer)(policy.parameters(), lr=config.lr)
            for batch in loader:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = policy(batch["input_ids"]).logits
                F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten()).backward()
                optimizer.step()
        """,
    ),
    # A class picked by name from a package other than torch.optim may compensate (optimi's Kahan
    # summation): nothing is said.
    ok(
        "a-class-picked-by-name-from-another-package",
        """
        import optimi
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.bfloat16)
        optimizer = getattr(optimi, args.optimizer)(model.parameters(), lr=args.lr)
        """,
    ),
    # sd-scripts' train_db.py: the U-Net's and the text encoder's parameters chained into one list,
    # then `--full_fp16` casts the text encoder once the optimizer exists.
    bug(
        "late-cast-of-one-of-chained-modules",
        """
        import itertools

        import torch

        unet, text_encoder, vae = UNet(), CLIPTextModel(config), AutoencoderKL()
        trainable_params = list(itertools.chain(unet.parameters(), text_encoder.parameters()))
        optimizer = torch.optim.AdamW(trainable_params, lr=1e-6)  # expect: MP003
        text_encoder.to(torch.float16)
        for batch in loader:
            unet(batch).float().pow(2).mean().backward()
            optimizer.step()
        """,
    ),
    # sd-scripts' fine_tune.py: the trained modules gathered in a list, their parameters extended
    # module by module; the text encoder joins only with `--train_text_encoder`.
    bug(
        "late-cast-of-a-module-of-the-trained-list",
        """
        import argparse
        import os

        import torch
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        parser = argparse.ArgumentParser()
        parser.add_argument("--train_text_encoder", action="store_true")
        args = parser.parse_args()


        def load_target_model(name, local_unet):
            text_encoder = CLIPTextModel.from_pretrained(name, subfolder="text_encoder")
            if local_unet:  # a checkpoint file, or a Hub repository
                unet = UNet2DConditionModel.from_pretrained(local_unet, torch_dtype=torch.float32)
            else:
                unet = UNet2DConditionModel.from_pretrained(name, subfolder="unet", torch_dtype=torch.float32)
            return text_encoder, unet


        text_encoder, unet = load_target_model("runwayml/stable-diffusion-v1-5", os.environ.get("UNET_FILE"))
        training_models = []
        training_models.append(unet)
        if args.train_text_encoder:
            training_models.append(text_encoder)
        trainable_params = []
        for m in training_models:
            trainable_params.extend(m.parameters())
        optimizer = torch.optim.AdamW(trainable_params, lr=1e-6)  # expect: MP003
        unet.to(torch.float16)
        text_encoder.to(torch.float16)
        for m in training_models:
            m.train()
        for batch in loader:
            unet(batch).sample.float().pow(2).mean().backward()
            optimizer.step()
        """,
    ),
    bug(
        "late-cast-of-each-module-of-the-trained-list",
        """
        import torch
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        unet = UNet2DConditionModel.from_pretrained("runwayml/stable-diffusion-v1-5", subfolder="unet")
        text_encoder = CLIPTextModel.from_pretrained("runwayml/stable-diffusion-v1-5", subfolder="text_encoder")
        training_models = [unet, text_encoder]
        trainable_params = []
        for m in training_models:
            trainable_params.extend(m.parameters())
        optimizer = torch.optim.AdamW(trainable_params, lr=1e-6)  # expect: MP003
        for m in training_models:
            m.to(torch.float16)
        for batch in loader:
            unet(batch).sample.float().pow(2).mean().backward()
            optimizer.step()
        """,
    ),
    ok(
        "late-cast-of-a-module-left-out-of-the-trained-list",
        """
        import torch
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        unet = UNet2DConditionModel.from_pretrained("runwayml/stable-diffusion-v1-5", subfolder="unet")
        text_encoder = CLIPTextModel.from_pretrained("runwayml/stable-diffusion-v1-5", subfolder="text_encoder")
        training_models = []
        training_models.append(unet)
        trainable_params = []
        for m in training_models:
            trainable_params.extend(m.parameters())
        optimizer = torch.optim.AdamW(trainable_params, lr=1e-6)
        text_encoder.to(torch.float16)
        for batch in loader:
            unet(batch).sample.float().pow(2).mean().backward()
            optimizer.step()
        """,
    ),
    # sd-scripts' train_textual_inversion.py: only the text encoders' input embeddings are trained,
    # and `--full_fp16` casts each (prepared) text encoder once the optimizer exists.
    bug(
        "late-cast-of-text-encoders-whose-embeddings-are-trained",
        """
        import torch
        from accelerate import Accelerator
        from transformers import CLIPTextModel

        accelerator = Accelerator(mixed_precision="fp16")
        text_encoders = [CLIPTextModel.from_pretrained("openai/clip-vit-large-patch14")]
        trainable_params = []
        for text_encoder in text_encoders:
            trainable_params += text_encoder.get_input_embeddings().parameters()
        optimizer = torch.optim.AdamW(trainable_params, lr=5e-4)  # expect: MP003
        text_encoders = [accelerator.prepare(text_encoder) for text_encoder in text_encoders]
        for text_encoder in text_encoders:
            text_encoder.to(torch.float16)
        for batch in loader:
            text_encoders[0](batch).last_hidden_state.float().mean().backward()
            optimizer.step()
        """,
    ),
    # train_textual_inversion_XTI.py: the text encoder comes from the project's loader.
    bug(
        "late-cast-of-a-loaded-text-encoder-whose-embeddings-are-trained",
        """
        import torch

        from library import model_util

        text_encoder, vae, unet = model_util.load_models_from_stable_diffusion_checkpoint(args.v2, args.ckpt)
        trainable_params = text_encoder.get_input_embeddings().parameters()
        optimizer = torch.optim.AdamW(trainable_params, lr=5e-4)  # expect: MP003
        text_encoder.to(torch.float16)
        for batch in loader:
            text_encoder(batch)[0].float().mean().backward()
            optimizer.step()
        """,
    ),
    # sd-scripts' flux_train.py --blockwise_fused_optimizers: the parameters pooled per block in a
    # dict under computed keys, one optimizer per block.
    bug("blockwise-optimizers-over-a-half-model", BLOCKWISE.format(dtype="torch.bfloat16", expect="  # expect: MP003")),
    ok("blockwise-optimizers-over-an-fp32-model", BLOCKWISE.format(dtype="torch.float32", expect="")),
    # sd-scripts' anima_train_utils.get_anima_param_groups: groups built from a table of (lr, params, name).
    bug(
        "late-cast-of-a-model-whose-groups-come-from-a-table",
        """
        import torch


        def get_param_groups(dit, base_lr, attn_lr):
            base_params, attn_params = [], []
            for name, p in dit.named_parameters():
                if ".attn" in name:
                    attn_params.append(p)
                else:
                    base_params.append(p)
            param_groups = []
            for lr, params, name in [(base_lr, base_params, "base"), (attn_lr, attn_params, "attn")]:
                if lr == 0:
                    continue
                param_groups.append({"params": params, "lr": lr})
            return param_groups


        dit = load_dit()
        optimizer = torch.optim.AdamW(get_param_groups(dit, 1e-4, 1e-5))  # expect: MP003
        dit.to(torch.bfloat16)
        for batch in loader:
            dit(batch).float().mean().backward()
            optimizer.step()
        """,
    ),
    # anima_train.py: the default path (neither --full_fp16 nor --full_bf16) sets the weight dtype back
    # to fp32 before the cast; the --full_bf16 path keeps the mixed precision's.
    bug(
        "a-path-that-keeps-the-weight-dtype-low-casts-late",
        """
        import argparse

        import torch

        parser = argparse.ArgumentParser()
        parser.add_argument("--mixed_precision", default="no", choices=["no", "bf16"])
        parser.add_argument("--full_bf16", action="store_true")
        args = parser.parse_args()
        weight_dtype = torch.bfloat16 if args.mixed_precision == "bf16" else torch.float32
        dit = load_dit()
        optimizer = torch.optim.AdamW(dit.parameters(), lr=1e-4)  # expect: MP003
        dit_weight_dtype = weight_dtype
        if args.full_bf16:
            assert args.mixed_precision == "bf16", "full_bf16 requires mixed_precision='bf16'"
        else:
            dit_weight_dtype = torch.float32
        dit.to(dit_weight_dtype)
        for batch in loader:
            dit(batch).float().mean().backward()
            optimizer.step()
        """,
    ),
    ok(
        "embeddings-trained-while-another-module-is-cast",
        """
        import torch
        from transformers import CLIPTextModel, CLIPVisionModel

        text_encoder = CLIPTextModel.from_pretrained("openai/clip-vit-large-patch14")
        vision = CLIPVisionModel.from_pretrained("openai/clip-vit-large-patch14")
        optimizer = torch.optim.AdamW(text_encoder.get_input_embeddings().parameters(), lr=5e-4)
        vision.to(torch.float16)
        for batch in loader:
            text_encoder(batch).last_hidden_state.float().mean().backward()
            optimizer.step()
        """,
    ),
    ok(
        "late-cast-of-a-module-left-out-of-the-chain",
        """
        from itertools import chain

        import torch

        unet, text_encoder, vae = UNet(), CLIPTextModel(config), AutoencoderKL()
        trainable_params = list(chain(unet.parameters(), text_encoder.parameters()))
        optimizer = torch.optim.AdamW(trainable_params, lr=1e-6)
        vae.to(torch.float16)
        for batch in loader:
            unet(batch).float().pow(2).mean().backward()
            optimizer.step()
        """,
    ),
    # moondream's text model: containers holding layers each built in the model's bf16 dtype are bf16.
    bug(
        "containers-of-layers-built-in-bf16",
        """
        import torch
        import torch.nn as nn
        from bitsandbytes.optim import AdamW8bit

        def build_text_model(dim, vocab, dtype):
            return nn.ModuleDict(
                {
                    "blocks": nn.ModuleList(
                        [
                            nn.ModuleDict({"ln": nn.LayerNorm(dim, dtype=dtype), "mlp": nn.Linear(dim, dim, dtype=dtype)})
                            for _ in range(24)
                        ]
                    ),
                    "post_ln": nn.LayerNorm(dim, dtype=dtype),
                    "lm_head": nn.Sequential(nn.Linear(dim, vocab, dtype=dtype)),
                }
            )

        class Moondream(nn.Module):
            def __init__(self, dtype=torch.bfloat16):
                super().__init__()
                self.text = build_text_model(2048, 51200, dtype)

        model = Moondream()
        optimizer = AdamW8bit([{"params": model.text.parameters()}], lr=3e-6)  # expect: MP003
        """,
    ),
    # quiet-star's mixing head: activations hold no parameters, so the container is its layers' bf16
    # (not half in part, whose trainable parameters may be all fp32).
    bug(
        "a-container-of-bf16-layers-and-activations",
        """
        import torch

        mixing_mlp = torch.nn.Sequential(
            torch.nn.Linear(1024, 1024, dtype=torch.bfloat16),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(1024, 1, dtype=torch.bfloat16),
            torch.nn.Sigmoid(),
        )
        trainable = [p for p in mixing_mlp.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-4)  # expect: MP003
        """,
    ),
    # A container holding an fp32 layer beside the bf16 one is half in part: an fp32 head trained alone.
    ok(
        "a-container-of-a-bf16-layer-and-an-fp32-layer-chosen-by-name",
        """
        import torch

        net = torch.nn.Sequential(torch.nn.Linear(64, 64, dtype=torch.bfloat16), torch.nn.ReLU(), torch.nn.Linear(64, 2))
        optimizer = torch.optim.AdamW([p for n, p in net.named_parameters() if n.startswith("2.")], lr=1e-4)
        """,
    ),
    # ChatGLM's P-tuning v2: the model cast half, its prefix encoder cast back to fp32, the one part
    # the remote code leaves trainable. The Trainer's optimizer over the trainable parameters may hold
    # only that fp32 part...
    ok(
        "p-tuning-a-submodule-cast-back-to-fp32-trained-by-the-trainer",
        """
        from transformers import AutoModel, Seq2SeqTrainer, Seq2SeqTrainingArguments

        model = AutoModel.from_pretrained("THUDM/chatglm2-6b", trust_remote_code=True)
        model = model.half()
        model.transformer.prefix_encoder.float()
        trainer = Seq2SeqTrainer(model=model, args=Seq2SeqTrainingArguments(output_dir="out"))
        trainer.train()
        """,
    ),
    # ... while an optimizer over every parameter updates the half ones too.
    bug(
        "a-submodule-cast-back-to-fp32-every-parameter-optimized",
        """
        import torch
        from transformers import AutoModel

        model = AutoModel.from_pretrained("THUDM/chatglm2-6b", trust_remote_code=True)
        model = model.half()
        model.transformer.prefix_encoder.float()
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-2)  # expect: MP003
        """,
    ),
    # The same container cast to fp32 before training: quiet.
    ok(
        "a-container-of-bf16-layers-cast-to-fp32",
        """
        import torch
        import torch.nn as nn

        head = nn.Sequential(nn.Linear(64, 64, dtype=torch.bfloat16), nn.Linear(64, 10, dtype=torch.bfloat16))
        head = head.float()
        optimizer = torch.optim.AdamW(head.parameters(), lr=1e-4)
        """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp003(source: str) -> None:
    check(source, CODE)


def test_late_cast_message_names_the_optimizer_by_its_function() -> None:
    source = """
        import torch.nn.functional as F
        from torch.optim import AdamW as TorchAdamW

        model = Net().cuda()
        optimizer = TorchAdamW(model.parameters(), lr=1e-3)
        model.half()
        for x, y in loader:
            loss = F.cross_entropy(model(x.cuda().half()), y.cuda())
            loss.backward()
            optimizer.step()
    """
    (finding,) = lint(source, CODE)
    assert finding.line == line_of(source, "TorchAdamW(")
    assert finding.message.startswith("AdamW over parameters cast to float16 in place after it was built")
    assert f"(at train.py:{line_of(source, 'model.half()')})" in finding.message


def test_late_cast_message_names_a_project_optimizer_class() -> None:
    source = """
        import torch

        class Lion(torch.optim.Optimizer):
            def __init__(self, params, lr=1e-4, betas=(0.9, 0.99)):
                super().__init__(params, dict(lr=lr, betas=betas))

        model = torch.nn.Linear(512, 512).cuda()
        optimizer = Lion(model.parameters(), lr=3e-5)
        model.to(torch.float16)
        for x in loader:
            model(x.half()).float().pow(2).mean().backward()
            optimizer.step()
            optimizer.zero_grad()
    """
    (finding,) = lint(source, CODE)
    assert finding.message.startswith("Lion over parameters cast to float16")


def test_message_names_the_optimizer_by_its_function_not_its_alias() -> None:
    (finding,) = lint(
        """
        import torch
        from bitsandbytes.optim import AdamW8bit as Adam8

        model = torch.nn.Linear(512, 512).cuda().half()
        optimizer = Adam8(model.parameters(), lr=1e-4)
        """,
        CODE,
    )
    assert finding.message.startswith("AdamW8bit over float16 parameters")


def test_message_names_a_torch_optim_class_picked_by_name() -> None:
    (finding,) = lint(
        """
        import torch

        model = torch.nn.Linear(512, 512).cuda().half()
        optimizer = getattr(torch.optim, args.optimizer)(model.parameters(), lr=1e-4)
        """,
        CODE,
    )
    assert finding.message.startswith("Optimizer picked by name over float16 parameters")


# A shared optimizer factory as sd-scripts writes it (`library/train_util.py`): the optimizer class
# picked by `--optimizer_type`, returned with names for logging.
OPTIMIZER_FACTORY = """
import torch


def get_optimizer(args, trainable_params):
    optimizer_type = args.optimizer_type.lower()
    if optimizer_type == "lion":
        import lion_pytorch

        optimizer_class = lion_pytorch.Lion
        optimizer = optimizer_class(trainable_params, lr=args.learning_rate)
    else:
        optimizer_class = torch.optim.AdamW
        optimizer = optimizer_class(trainable_params, lr=args.learning_rate)
    optimizer_name = optimizer_class.__module__ + "." + optimizer_class.__name__
    return optimizer_name, "", optimizer
"""

FACTORY_CALLER = """
import argparse

import torch

from library import train_util


def train(args):
    model = torch.nn.Linear(64, 64).to({dtype})
    params_to_optimize = [{{"params": list(model.parameters()), "lr": args.learning_rate}}]
    _, _, optimizer = train_util.get_optimizer(args, trainable_params=params_to_optimize){expect}
    optimizer.step()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--optimizer_type", default="AdamW")
    parser.add_argument("--learning_rate", type=float, default=1e-5)
    train(parser.parse_args())
"""


# flux_train.py's per-block optimizers, built by the same factory.
BLOCKWISE = """    if args.blockwise_fused_optimizers:
        optimizers = []
        for group in params_to_optimize:
            _, _, optimizer = train_util.get_optimizer(args, trainable_params=[group])  # expect: MP003
            optimizers.append(optimizer)
    else:
        _, _, optimizer"""


def test_a_factory_handed_half_parameters_is_reported_where_each_caller_hands_them(tmp_path: Path) -> None:
    """Each call that hands half-precision parameters to a shared factory is reported, once, naming
    the optimizer the factory builds; the factory itself, right for fp32 parameters, is not; a
    script handing fp32 parameters stays quiet."""
    flux = FACTORY_CALLER.format(dtype="torch.bfloat16", expect="  # expect: MP003")
    flux = flux.replace("    _, _, optimizer", BLOCKWISE).replace(
        'parser.add_argument("--learning_rate"',
        (
            'parser.add_argument("--blockwise_fused_optimizers", action="store_true")\n'
            '    parser.add_argument("--learning_rate"'
        ),
    )
    single = OPTIMIZER_FACTORY.replace('if optimizer_type == "lion":', "if False:")
    files = {
        "library/__init__.py": "",
        "library/train_util.py": single,
        "flux_train.py": flux,
        "sdxl_train.py": FACTORY_CALLER.format(dtype="torch.float16", expect="  # expect: MP003"),
        "train_network.py": FACTORY_CALLER.format(dtype="torch.float32", expect=""),
    }
    check_files(files, CODE, tmp_path)
    findings = lint_paths([tmp_path], select=[CODE]).findings
    assert all("(built by `get_optimizer()`) over" in finding.message for finding in findings)


def test_a_function_that_builds_its_optimizer_over_its_own_model_is_reported_there(tmp_path: Path) -> None:
    """Parameters a helper makes itself (its own model), or an optimizer it keeps and steps (a
    training function handed the model), are reported where the optimizer is built."""
    own_model = OPTIMIZER_FACTORY.replace(
        "def get_optimizer(args, trainable_params):",
        "def get_optimizer(args):\n    trainable_params = torch.nn.Linear(8, 8).half().parameters()",
    ).replace(
        "optimizer = optimizer_class(trainable_params, lr=args.learning_rate)",
        "optimizer = optimizer_class(trainable_params, lr=args.learning_rate)  # expect: MP003",
    )
    files = {
        "library/__init__.py": "",
        "library/train_util.py": own_model,
        "train.py": "import argparse\nfrom library import train_util\n\n"
        "train_util.get_optimizer(argparse.ArgumentParser().parse_args())\n",
    }
    check_files(files, CODE, tmp_path / "own")
    stepping = """
    import torch


    def train(model, lr=1e-5):
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)  # expect: MP003
        for _ in range(10):
            model(torch.randn(2, 8).cuda().half()).float().sum().backward()
            optimizer.step()


    train(torch.nn.Linear(8, 8).cuda().half())
    """
    check(stepping, CODE)


# sd-scripts' full-precision-weights recipe (sdxl_train.py, train_db.py, train_network.py...): the
# weight dtype comes from `--mixed_precision` (choices no/fp16/bf16, default "no"), the optimizer is
# built by the library's factory over fp32 parameters, and `--full_fp16`/`--full_bf16` cast the
# trained module in place afterwards, behind an assert that the matching mixed precision was given.
FULL_HALF_UTIL = """
    import torch


    def prepare_dtype(args):
        weight_dtype = torch.float32
        if args.mixed_precision == "fp16":
            weight_dtype = torch.float16
        elif args.mixed_precision == "bf16":
            weight_dtype = torch.bfloat16
        return weight_dtype


    def get_optimizer(args, trainable_params):
        optimizer = torch.optim.AdamW(trainable_params, lr=args.learning_rate)
        return "AdamW", {}, optimizer


    def add_training_arguments(parser):
        parser.add_argument("--mixed_precision", type=str, default="no", choices=["no", "fp16", "bf16"])
        parser.add_argument("--full_fp16", action="store_true")
        parser.add_argument("--full_bf16", action="store_true")
        parser.add_argument("--learning_rate", type=float, default=1e-4)
"""

FULL_HALF_TRAIN = """
    import argparse

    import torch

    from library import train_util
    from library.unet import UNet


    def train(args):
        weight_dtype = train_util.prepare_dtype(args)
        unet, vae = UNet(), UNet()
        params_to_optimize = [{{"params": list(unet.parameters()), "lr": args.learning_rate}}]
        _, _, optimizer = train_util.get_optimizer(args, trainable_params=params_to_optimize){expect}

        if args.full_fp16:
            assert args.mixed_precision == "fp16", "full_fp16 requires mixed precision='fp16'"
            {cast}.to(weight_dtype)
        elif args.full_bf16:
            assert args.mixed_precision == "bf16", "full_bf16 requires mixed precision='bf16'"
            {cast}.to(weight_dtype)
        {after}
        for batch in loader:
            loss = unet(batch).float().pow(2).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()


    if __name__ == "__main__":
        parser = argparse.ArgumentParser()
        train_util.add_training_arguments(parser)
        train(parser.parse_args())
"""

UNET = """
    import torch.nn as nn


    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(8, 8)

        def forward(self, x):
            return self.proj(x)
"""


@pytest.mark.parametrize(
    ("cast", "after", "expect"),
    [
        pytest.param("unet", "", "  # expect: MP003", id="cast-after-the-factory-built-it"),
        # Cast back before any step: the optimizer never steps half weights.
        pytest.param("unet", "unet.to(torch.float32)", "", id="cast-back-before-stepping"),
        # A frozen module the optimizer does not hold (sd-scripts' `vae.to(weight_dtype)`).
        pytest.param("vae", "", "", id="a-module-the-optimizer-does-not-hold"),
    ],
)
def test_a_late_cast_behind_options_is_reported_at_the_call_of_the_factory(
    tmp_path: Path, cast: str, after: str, expect: str
) -> None:
    files = {
        "library/__init__.py": "",
        "library/train_util.py": FULL_HALF_UTIL,
        "library/unet.py": UNET,
        "train.py": FULL_HALF_TRAIN.format(expect=expect, cast=cast, after=after),
    }
    check_files(files, CODE, tmp_path)


def test_a_late_cast_behind_options_names_both_options(tmp_path: Path) -> None:
    files = {"library/train_util.py": FULL_HALF_UTIL, "library/unet.py": UNET}
    files["train.py"] = FULL_HALF_TRAIN.format(expect="", cast="unet", after="")
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(source), encoding="utf-8")
    (finding,) = lint_paths([tmp_path], select=[CODE]).findings
    assert finding.message.startswith("AdamW (built by `get_optimizer()`) over parameters cast to float16 in place")
    assert f"train.py:{line_of(files['train.py'], 'unet.to(weight_dtype)')})" in finding.message
    assert "only when `--mixed_precision fp16` is given and `args.full_fp16` is true" in finding.message


def test_a_factory_of_several_optimizers_is_reported_for_the_one_built_by_default() -> None:
    # sd-scripts' get_optimizer: one class per `--optimizer_type`, the default (AdamW) written last.
    source = """
        import argparse

        import torch
        from lion_pytorch import Lion


        def get_optimizer(args, trainable_params):
            optimizer_type = args.optimizer_type.lower()
            if optimizer_type == "lion":
                optimizer = Lion(trainable_params, lr=args.learning_rate)
            elif optimizer_type == "sgd":
                optimizer = torch.optim.SGD(trainable_params, lr=args.learning_rate)
            else:
                optimizer = torch.optim.AdamW(trainable_params, lr=args.learning_rate)
            return optimizer


        def train(args):
            model = torch.nn.Linear(8, 8).to(torch.bfloat16)
            optimizer = get_optimizer(args, list(model.parameters()))
            for batch in loader:
                model(batch).float().sum().backward()
                optimizer.step()


        if __name__ == "__main__":
            parser = argparse.ArgumentParser()
            parser.add_argument("--optimizer_type", default="AdamW")
            parser.add_argument("--learning_rate", type=float, default=1e-4)
            train(parser.parse_args())
    """
    (finding,) = lint(source, CODE)
    assert finding.line == line_of(source, "= get_optimizer(")
    assert finding.message.startswith("AdamW (built by `get_optimizer()`) over bfloat16 parameters")
    assert finding.severity is Severity.ERROR


@pytest.mark.parametrize(
    ("choices", "expect"),
    [
        # `--full_fp16` alone fails its assert: no run of the script casts the model after its optimizer.
        pytest.param("", "", id="a-path-its-assert-refuses"),
        # With `--mixed_precision fp16` among the choices, the run under it passes the assert.
        pytest.param(', choices=["no", "fp16"]', "  # expect: MP003", id="the-run-its-assert-requires"),
    ],
)
def test_a_failed_assert_on_a_path_of_options_ends_it(choices: str, expect: str) -> None:
    check(
        f"""
        import argparse

        import torch

        parser = argparse.ArgumentParser()
        parser.add_argument("--mixed_precision", default="no"{choices})
        parser.add_argument("--full_fp16", action="store_true")
        args = parser.parse_args()

        model = torch.nn.Linear(8, 8).cuda()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4){expect}
        if args.full_fp16:
            assert args.mixed_precision == "fp16", "full_fp16 requires mixed precision='fp16'"
            model.half()
        for batch in loader:
            model(batch.half()).float().sum().backward()
            optimizer.step()
        """,
        CODE,
    )


@pytest.mark.parametrize(
    ("upcast", "expect"),
    [
        pytest.param("param.data = param.to(dtype=torch.float32)", "", id="embeddings-upcast-before-training"),
        pytest.param("pass", "  # expect: MP003", id="half-embeddings-trained"),
    ],
)
def test_parameters_upcast_through_their_data(upcast: str, expect: str) -> None:
    # diffusers' textual inversion (train_dreambooth_lora_flux_advanced.py): only the token
    # embeddings of the half text encoder are trained, made fp32 by assigning their `.data`.
    check(
        f"""
        import torch
        from transformers import CLIPTextModel

        text_encoder = CLIPTextModel.from_pretrained("openai/clip-vit-large-patch14", torch_dtype=torch.float16)
        embeddings = []
        for name, param in text_encoder.named_parameters():
            if "token_embedding" in name:
                {upcast}
                param.requires_grad = True
                embeddings.append(param)
            else:
                param.requires_grad = False
        optimizer = torch.optim.AdamW(embeddings, lr=5e-4){expect}
        for batch in loader:
            text_encoder(batch).last_hidden_state.float().mean().backward()
            optimizer.step()
        """,
        CODE,
    )


# sd-scripts' library as its trainers use it (library/train_util.py, deepspeed_utils.py): the factory
# builds the optimizer `--optimizer_type` names ("" is AdamW) and falls back to a class looked up
# by name when no branch built one; the Accelerator gets a DeepSpeed plugin only with `--deepspeed`.
SD_SCRIPTS_UTIL = """
    import importlib

    import torch
    from accelerate import Accelerator


    def get_optimizer(args, trainable_params):
        optimizer_type = args.optimizer_type
        if optimizer_type is None or optimizer_type == "":
            optimizer_type = "AdamW"
        optimizer_type = optimizer_type.lower()
        optimizer = None
        if optimizer_type == "lion":
            import lion_pytorch

            optimizer_class = lion_pytorch.Lion
            optimizer = optimizer_class(trainable_params, lr=args.learning_rate)
        elif optimizer_type == "adamw":
            optimizer_class = torch.optim.AdamW
            optimizer = optimizer_class(trainable_params, lr=args.learning_rate)
        if optimizer is None:
            optimizer_class = getattr(torch.optim, args.optimizer_type)
            optimizer = optimizer_class(trainable_params, lr=args.learning_rate)
        return optimizer_class.__name__, "", optimizer


    def prepare_deepspeed_plugin(args):
        if not args.deepspeed:
            return None
        from accelerate import DeepSpeedPlugin

        return DeepSpeedPlugin(zero_stage=args.zero_stage)


    def prepare_accelerator(args):
        return Accelerator(mixed_precision=args.mixed_precision, deepspeed_plugin=prepare_deepspeed_plugin(args))


    def prepare_dtype(args):
        weight_dtype = torch.float32
        if args.mixed_precision == "fp16":
            weight_dtype = torch.float16
        elif args.mixed_precision == "bf16":
            weight_dtype = torch.bfloat16
        return weight_dtype


    def add_training_arguments(parser):
        parser.add_argument("--mixed_precision", type=str, default="no", choices=["no", "fp16", "bf16"])
        parser.add_argument("--full_fp16", action="store_true")
        parser.add_argument("--optimizer_type", type=str, default="")
        parser.add_argument("--learning_rate", type=float, default=1e-4)
        parser.add_argument("--fused_optimizer_groups", type=int, default=None)
        parser.add_argument("--train_text_encoder", {train_text_encoder})
        parser.add_argument("--zero_stage", type=int, default=2)
        parser.add_argument("--deepspeed", {deepspeed})
"""

# sdxl_train.py's shape: the U-Net's param group, the text encoder's when it is trained too, per-group
# optimizers only with `--fused_optimizer_groups`, `--full_fp16` casting both modules once the
# optimizer exists, and DeepSpeed (which steps fp32 masters) on a branch of its own.
SD_SCRIPTS_TRAIN = """
    import argparse

    import torch

    from library import train_util
    from library.unet import UNet


    def train(args):
        accelerator = train_util.prepare_accelerator(args)
        weight_dtype = train_util.prepare_dtype(args)
        unet, text_encoder = UNet(), UNet()
        params_to_optimize = [{{"params": list(unet.parameters()), "lr": args.learning_rate}}]
        if args.train_text_encoder:
            params_to_optimize.append({{"params": list(text_encoder.parameters()), "lr": args.learning_rate}})
        if args.fused_optimizer_groups:
            optimizers = []
            for group in params_to_optimize:
                _, _, optimizer = train_util.get_optimizer(args, trainable_params=[group])
                optimizers.append(optimizer)
            optimizer = optimizers[0]
        else:
            _, _, optimizer = train_util.get_optimizer(args, trainable_params=params_to_optimize){expect}

        if args.full_fp16:
            assert args.mixed_precision == "fp16", "full_fp16 requires mixed precision='fp16'"
            {cast}.to(weight_dtype)

        if args.deepspeed:
            unet, optimizer = accelerator.prepare(unet, optimizer)
        else:
            unet = accelerator.prepare(unet)
            optimizer = accelerator.prepare(optimizer)
        for batch in loader:
            with accelerator.accumulate(unet):
                loss = unet(batch).float().pow(2).mean()
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()


    if __name__ == "__main__":
        parser = argparse.ArgumentParser()
        train_util.add_training_arguments(parser)
        train(parser.parse_args())
"""


OFF, ON = 'action="store_true"', "type=bool, default=True"


@pytest.mark.parametrize(
    ("cast", "train_text_encoder", "deepspeed", "expect"),
    [
        pytest.param("unet", OFF, OFF, "  # expect: MP003", id="full-fp16-casts-the-unet"),
        # With the text encoder trained, both modules' groups are the optimizer's: a cast of either counts.
        pytest.param("text_encoder", ON, OFF, "  # expect: MP003", id="full-fp16-casts-a-trained-text-encoder"),
        pytest.param("text_encoder", OFF, OFF, "", id="full-fp16-casts-a-frozen-text-encoder"),
        # Launched with DeepSpeed by default: its engine steps fp32 masters on every path.
        pytest.param("unet", OFF, ON, "", id="deepspeed-by-default-keeps-masters"),
    ],
)
def test_sd_scripts_full_fp16_recipe(
    tmp_path: Path, cast: str, train_text_encoder: str, deepspeed: str, expect: str
) -> None:
    files = {
        "library/__init__.py": "",
        "library/train_util.py": SD_SCRIPTS_UTIL.format(deepspeed=deepspeed, train_text_encoder=train_text_encoder),
        "library/unet.py": UNET,
        "train.py": SD_SCRIPTS_TRAIN.format(expect=expect, cast=cast),
    }
    check_files(files, CODE, tmp_path)


# d3po's sampling script builds the training script's optimizer only for `accelerator.prepare` to
# load a checkpoint into, and never steps it: no weight is updated.
PREPARED_NEVER_STEPPED = """
import torch
from accelerate import Accelerator
from diffusers import StableDiffusionPipeline


def main():
    accelerator = Accelerator(mixed_precision="fp16")
    pipeline = StableDiffusionPipeline.from_pretrained("runwayml/stable-diffusion-v1-5", torch_dtype=torch.float16)
    trainable_layers = pipeline.unet
    optimizer = torch.optim.AdamW(trainable_layers.parameters(), lr=3e-4){mark}
    trainable_layers, optimizer = accelerator.prepare(trainable_layers, optimizer)
    accelerator.load_state("checkpoints/checkpoint_10")
    with torch.no_grad():
        images = pipeline(["a photo of a cat"], num_inference_steps=50).images{use}


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize(
    ("use", "bug"),
    [
        ("", None),
        ("\n    optimizer.step()", "MP003"),
        ("\n    return optimizer", "MP003"),
        ("\n    train(trainable_layers, optimizer)", "MP003"),
    ],
)
def test_an_optimizer_only_prepared_and_never_stepped_updates_nothing(use: str, bug: str | None) -> None:
    check(PREPARED_NEVER_STEPPED.format(mark=f"  # expect: {bug}" if bug else "", use=use), "MP003")


# atropos's example trainer: `create_optimizer(model, config)` chooses the trainable parameters of the
# model its caller hands it and hands them on to `create_optimizer_for_params`, which builds the
# optimizer: reported where the training function hands the bf16 model, one finding per caller. A
# helper that builds its own parameter groups and the optimizer over them is reported at the optimizer.
NESTED_FACTORIES = """
import torch
from transformers import AutoModelForCausalLM


def create_optimizer_for_params(params, lr):
    params = list(params)
    return torch.optim.AdamW(params, lr=lr){inner}


def create_optimizer(model, lr):
    trainable_params = [p for p in model.parameters() if p.requires_grad]
    return create_optimizer_for_params(trainable_params, lr){middle}


def train_legacy(name):
    model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
    optimizer = create_optimizer(model, 1e-6){outer}
    return optimizer


def train_shared(name):
    model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
    optimizer = create_optimizer(model, 1e-6){outer}
    return optimizer


train_legacy("Qwen/Qwen2.5-3B")
train_shared("Qwen/Qwen2.5-3B")
"""


def test_a_factory_handing_on_its_callers_model_is_reported_at_each_caller() -> None:
    check(NESTED_FACTORIES.format(inner="", middle="", outer="  # expect: MP003"), CODE)


def test_a_factory_handing_on_parameters_it_built_itself_is_reported_where_it_hands_them() -> None:
    built_here = NESTED_FACTORIES.replace(
        "def create_optimizer(model, lr):\n    trainable_params = [p for p in model.parameters() if p.requires_grad]",
        'def create_optimizer(model, lr):\n    trainable_params = [p for p in AutoModelForCausalLM.from_pretrained("x", torch_dtype=torch.bfloat16).parameters()]',
    )
    check(built_here.format(inner="", middle="  # expect: MP003", outer=""), CODE)
