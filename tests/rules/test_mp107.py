"""MP107 half-params-with-scaler: float16 loss scaling over float16 trainable parameters.
Reported at the scaler construction or the trainer setting; PyTorch raises
"Attempting to unscale FP16 gradients." from `GradScaler.unscale_`."""

from __future__ import annotations

import pytest

from .casekit import bug, check, ok

CODE = "MP107"

CASES = [
    bug(
        "model-half-with-scaler",
        """
        import torch
        from torch.cuda.amp import GradScaler, autocast

        model = ResNet50().cuda().half()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = GradScaler()  # expect: MP107
        for x, y in loader:
            with autocast():
                loss = criterion(model(x.half()), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    bug(
        "hf-trainer-fp16-true-on-fp16-model",
        """
        import torch
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        model = AutoModelForCausalLM.from_pretrained("facebook/opt-350m", torch_dtype=torch.float16)
        args = TrainingArguments(output_dir="out", per_device_train_batch_size=4, fp16=True)  # expect: MP107
        trainer = Trainer(model=model, args=args, train_dataset=train_ds)
        trainer.train()
        """,
    ),
    bug(
        "hf-trainer-fp16-one-from-a-config-dict",
        """
        import torch
        from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

        config = {"output_dir": "runs/cls", "learning_rate": 2e-5, "fp16": 1}
        model = AutoModelForSequenceClassification.from_pretrained("roberta-base").half()
        args = TrainingArguments(**config)  # expect: MP107
        Trainer(model=model, args=args, train_dataset=train_ds).train()
        """,
    ),
    bug(
        "lightning-precision-16",
        """
        import torch
        import lightning as L

        model = LitClassifier()
        model.half()
        trainer = L.Trainer(accelerator="gpu", precision=16)  # expect: MP107
        trainer.fit(model, train_loader)
        """,
    ),
    bug(
        "accelerate-fp16-prepare",
        """
        import torch
        from accelerate import Accelerator

        accelerator = Accelerator(mixed_precision="fp16")  # expect: MP107
        model = Net().to(torch.float16)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        model, optimizer = accelerator.prepare(model, optimizer)
        """,
    ),
    bug(
        "to-dtype-param-groups",
        """
        import torch

        model = Transformer(cfg).to(device="cuda", dtype=torch.float16)
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}])
        scaler = torch.amp.GradScaler("cuda")  # expect: MP107
        """,
    ),
    bug(
        "lightning-16-mixed-string",
        """
        import torch
        from lightning.pytorch import Trainer
        from transformers import AutoModel

        backbone = AutoModel.from_pretrained("bert-base-uncased", torch_dtype=torch.float16)
        trainer = Trainer(max_epochs=3, precision="16-mixed")  # expect: MP107
        trainer.fit(backbone, datamodule=dm)
        """,
    ),
    bug(
        "scaler-enabled-explicitly",
        """
        import torch

        model = Net().cuda().half()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cuda", enabled=True)  # expect: MP107
        """,
    ),
    ok(
        "fp32-model-handed-to-an-fp16-trainer",
        """
        import torch
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        class_weights = torch.tensor([1.0, 3.0], dtype=torch.float16)
        model = AutoModelForCausalLM.from_pretrained("gpt2")
        args = TrainingArguments(output_dir="out", fp16=True)
        trainer = Trainer(model=model, args=args, train_dataset=ds)
        trainer.train()
        """,
    ),
    ok(
        "fp16-tensor-prepared-beside-an-fp32-model",
        """
        import torch
        from accelerate import Accelerator

        accelerator = Accelerator(mixed_precision="fp16")
        model = Net()
        pos_weight = torch.full((10,), 2.0, dtype=torch.float16)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        model, optimizer, pos_weight = accelerator.prepare(model, optimizer, pos_weight)
        """,
    ),
    ok(
        "optimizer-built-from-a-config-dict",
        """
        import torch

        teacher = Teacher().cuda().half().eval()
        student = Student().cuda()
        optimizer = torch.optim.AdamW(**optimizer_config)
        scaler = torch.amp.GradScaler("cuda")
        """,
    ),
    ok(
        "fp16-model-trained-without-amp",
        """
        import torch
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.float16)
        args = TrainingArguments(output_dir="out", fp16=False)
        Trainer(model=model, args=args, train_dataset=ds).train()
        """,
    ),
    ok(
        "fp32-params-with-scaler",
        """
        import torch

        model = ResNet50().cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cuda")
        with torch.autocast("cuda"):
            loss = model(x).mean()
        scaler.scale(loss).backward()
        """,
    ),
    ok(
        "half-model-no-scaler",
        """
        import torch

        model = Net().cuda().half()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = model(x.half()).float().mean()
        loss.backward()
        optimizer.step()
        """,
    ),
    ok(
        "lora-adapters-on-fp16-model",
        """
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        base = AutoModelForCausalLM.from_pretrained("facebook/opt-350m", torch_dtype=torch.float16)
        model = get_peft_model(base, LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
        args = TrainingArguments(output_dir="out", fp16=True)
        Trainer(model=model, args=args, train_dataset=train_ds).train()
        """,
    ),
    ok(
        "disabled-scaler",
        """
        import torch

        model = Net().cuda().half()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        """,
    ),
    ok(
        "bf16-model-bf16-settings",
        """
        import torch
        from transformers import AutoModelForCausalLM, TrainingArguments

        model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
        args = TrainingArguments(output_dir="out", bf16=True)
        """,
    ),
    ok(
        "fp16-inference-model-beside-fp32-training",
        """
        import torch

        teacher = Teacher().cuda().half().eval()
        student = Student().cuda()
        optimizer = torch.optim.AdamW(student.parameters())
        scaler = torch.amp.GradScaler("cuda")
        with torch.no_grad():
            targets = teacher(x.half())
        with torch.autocast("cuda"):
            loss = criterion(student(x), targets.float())
        scaler.scale(loss).backward()
        """,
    ),
    # diffusers' LoRA scripts (PixArt-alpha's train_pixart_lora_hf.py): the frozen base loaded in
    # the accelerator's fp16, the LoRA parameters cast back to fp32 by `cast_training_params` (the
    # script's own copy of diffusers' helper) before the optimizer and `prepare`.
    ok(
        "fp16-base-with-its-trainable-parameters-cast-to-fp32",
        """
        import torch
        from accelerate import Accelerator
        from diffusers import Transformer2DModel
        from peft import LoraConfig, get_peft_model

        accelerator = Accelerator(mixed_precision="fp16")
        weight_dtype = torch.float32
        if accelerator.mixed_precision == "fp16":
            weight_dtype = torch.float16
        transformer = Transformer2DModel.from_pretrained("PixArt-alpha/PixArt-XL-2-512x512", torch_dtype=weight_dtype)
        transformer.requires_grad_(False)


        def cast_training_params(model, dtype=torch.float32):
            for param in model.parameters():
                if param.requires_grad:
                    param.data = param.to(dtype)


        transformer = get_peft_model(transformer, LoraConfig(r=4, target_modules=["to_q", "to_v"]))
        cast_training_params(transformer, dtype=torch.float32)
        optimizer = torch.optim.AdamW(filter(lambda p: p.requires_grad, transformer.parameters()), lr=1e-4)
        transformer, optimizer = accelerator.prepare(transformer, optimizer)
        """,
    ),
    # diffusers' train_lcm_distill_lora_sdxl.py: the optimizer is built over the fp16 adapters,
    # which are cast to fp32 before `prepare` and the first step.
    ok(
        "fp16-adapters-upcast-after-the-optimizer-before-it-steps",
        """
        import torch
        from accelerate import Accelerator
        from diffusers import UNet2DConditionModel
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig

        accelerator = Accelerator(mixed_precision="fp16")
        unet = UNet2DConditionModel.from_pretrained("sdxl", subfolder="unet")
        unet.requires_grad_(False)
        unet.to(accelerator.device, dtype=torch.float16)
        unet.add_adapter(LoraConfig(r=64, target_modules=["to_q", "to_k", "to_v"]))
        optimizer = torch.optim.AdamW(filter(lambda p: p.requires_grad, unet.parameters()), lr=1e-6)
        cast_training_params(unet, dtype=torch.float32)
        unet, optimizer = accelerator.prepare(unet, optimizer)
        """,
    ),
    bug(
        "fp16-adapters-never-upcast",
        """
        import torch
        from accelerate import Accelerator
        from diffusers import UNet2DConditionModel
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig

        accelerator = Accelerator(mixed_precision="fp16")  # expect: MP107
        unet = UNet2DConditionModel.from_pretrained("sdxl", subfolder="unet")
        unet.requires_grad_(False)
        unet.to(accelerator.device, dtype=torch.float16)
        unet.add_adapter(LoraConfig(r=64, target_modules=["to_q", "to_k", "to_v"]))
        optimizer = torch.optim.AdamW(filter(lambda p: p.requires_grad, unet.parameters()), lr=1e-6)
        unet.enable_gradient_checkpointing()
        unet, optimizer = accelerator.prepare(unet, optimizer)
        """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp107(source: str) -> None:
    check(source, CODE)
