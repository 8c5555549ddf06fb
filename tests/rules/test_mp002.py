"""MP002 fp16-autocast-without-scaler: an fp16 autocast region whose result is backpropagated
with no loss scaling anywhere in the program.

Reported at the autocast call: the `torch.autocast(...)` of the `with`, of `ctx = ...`, or of the
decorator. `torch.autocast("cuda")` without a dtype and `torch.cuda.amp.autocast()` are fp16;
`torch.autocast("cpu")` is bf16, and bf16 never needs a scaler.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .casekit import bug, check, check_files, line_of, lint, ok

CODE = "MP002"

CASES = [
    # The device a config names where CUDA is available (and "cpu" where not) is a CUDA device; one
    # region per dataset branch (Open-Rig3R).
    bug(
        "config-device-per-branch-regions-and-guarded-loss",
        """
        import torch
        import yaml
        from torch import nn
        from torch.amp import autocast

        train_cfg = yaml.safe_load(open(args.config))
        device = torch.device(train_cfg.get("device", "cuda") if torch.cuda.is_available() else "cpu")
        dataset_type = train_cfg.get("dataset_type", "co3d")


        def compute_loss(outputs, target):
            if target.numel() == 0:
                return torch.tensor(0.0, device=target.device, requires_grad=True)
            return nn.MSELoss()(outputs["pointmap"], target)


        model = Rig3R(**train_cfg["model"]).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for batch in train_loader:
            if dataset_type == "co3d":
                with autocast(device_type=device.type):  # expect: MP002
                    outputs = model(batch["images"].to(device))
                loss = compute_loss(outputs, batch["pointcloud"].to(device))
            elif dataset_type == "waymo":
                with autocast(device_type=device.type):
                    outputs = model(batch["images"].to(device))
                loss = compute_loss(outputs, batch["pointcloud"].to(device))
            loss.backward()
            optimizer.step()
    """,
    ),
    # A configured device chosen by the project's own switch, not by CUDA's presence: any backend.
    ok(
        "config-device-behind-own-switch",
        """
        import torch
        from torch.amp import autocast

        USE_ACCELERATOR = True
        device = torch.device(cfg["device"] if USE_ACCELERATOR else "cpu")
        model = Net().to(device)
        for batch in loader:
            with autocast(device_type=device.type):
                loss = model(batch.to(device)).mean()
            loss.backward()
    """,
    ),
    # Where CUDA is available the script asks the config, else runs on the CPU: with an `mps`
    # fallback in between the chosen device is not known to be CUDA.
    ok(
        "config-device-or-mps",
        """
        import torch
        from torch.amp import autocast

        device = torch.device(cfg.device if torch.cuda.is_available() else "mps")
        model = Net().to(device)
        for batch in loader:
            with autocast(device_type=device.type):
                loss = model(batch.to(device)).mean()
            loss.backward()
    """,
    ),
    bug(
        "autocast-fp16-no-scaler",
        """
        import torch
        import torch.nn.functional as F
        from torchvision.models import resnet50

        model = resnet50().cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for images, targets in train_loader:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type="cuda", dtype=torch.float16):  # expect: MP002
                loss = F.cross_entropy(model(images.cuda()), targets.cuda())
            loss.backward()
            optimizer.step()
    """,
    ),
    bug(
        "autocast-cuda-default-dtype-is-fp16",
        """
        import torch

        for step, batch in enumerate(loader):
            with torch.autocast("cuda"):  # expect: MP002
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    """,
    ),
    bug(
        "cuda-amp-autocast-imported-name",
        """
        import torch.nn as nn
        from torch.cuda.amp import autocast

        criterion = nn.CrossEntropyLoss()
        for inputs, labels in loader:
            optimizer.zero_grad()
            with autocast():  # expect: MP002
                outputs = net(inputs.cuda())
                loss = criterion(outputs, labels.cuda())
            loss.backward()
            optimizer.step()
    """,
    ),
    bug(
        "cuda-amp-autocast-backward-inside-region",
        """
        import torch

        for x, y in loader:
            with torch.cuda.amp.autocast():  # expect: MP002
                pred = model(x)
                loss = torch.nn.functional.mse_loss(pred, y)
                loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    """,
    ),
    bug(
        "from-torch-import-autocast-as-alias",
        """
        import torch
        from torch import autocast as ac

        with ac(device_type="cuda", dtype=torch.half):  # expect: MP002
            loss = model(input_ids, labels=labels).loss
        loss.backward()
    """,
    ),
    bug(
        "stored-context-object",
        """
        import torch

        amp_ctx = torch.amp.autocast(device_type="cuda", dtype=torch.float16)  # expect: MP002

        def train_epoch(model, loader, optimizer):
            for batch in loader:
                with amp_ctx:
                    loss = model(**batch).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
    """,
    ),
    # The decorated function's result is the region's result; the caller backpropagates it.
    bug(
        "decorator-region-result-backpropagated",
        """
        import torch
        import torch.nn.functional as F

        @torch.autocast("cuda", dtype=torch.float16)  # expect: MP002
        def forward_loss(model, batch):
            logits = model(batch["input_ids"])
            return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten())

        for batch in loader:
            loss = forward_loss(model, batch)
            loss.backward()
            optimizer.step()
    """,
    ),
    bug(
        "constant-dtype-flow",
        """
        import torch

        HALF = torch.float16

        for batch in loader:
            with torch.autocast("cuda", dtype=HALF):  # expect: MP002
                loss = model(batch).mean()
            loss.backward()
    """,
    ),
    # nanoGPT with dtype set to float16 but the GradScaler removed: the dtype table resolves.
    bug(
        "nanogpt-float16-without-scaler",
        """
        from contextlib import nullcontext

        import torch
        from model import GPT, GPTConfig

        device = "cuda"
        dtype = "float16"
        device_type = "cuda" if "cuda" in device else "cpu"
        ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        ctx = nullcontext() if device_type == "cpu" else torch.amp.autocast(device_type=device_type, dtype=ptdtype)  # expect: MP002
        model = GPT(GPTConfig()).to(device)
        optimizer = model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), device_type)
        for micro_step in range(gradient_accumulation_steps):
            with ctx:
                logits, loss = model(X, Y)
                loss = loss / gradient_accumulation_steps
            X, Y = get_batch("train")
            loss.backward()
        optimizer.step()
    """,
    ),
    bug(
        "trainer-method-attribute-loss",
        """
        import torch

        class Trainer:
            def __init__(self, model, optimizer):
                self.model = model.cuda()
                self.optimizer = optimizer

            def training_step(self, batch):
                with torch.autocast("cuda", dtype=torch.float16):  # expect: MP002
                    outputs = self.model(**batch)
                    loss = outputs.loss
                loss.backward()
                self.optimizer.step()
                self.optimizer.zero_grad()
                return loss.detach()
    """,
    ),
    bug(
        "helper-returns-loss-from-region",
        """
        import torch
        import torch.nn.functional as F

        def compute_loss(model, batch):
            with torch.autocast("cuda", dtype=torch.float16):  # expect: MP002
                logits = model(batch["x"])
                return F.cross_entropy(logits, batch["y"])

        for batch in loader:
            loss = compute_loss(model, batch)
            loss.backward()
            optimizer.step()
    """,
    ),
    # Whenever the flag turns autocast on, the backward is unscaled fp16: a bug in that setup.
    bug(
        "enabled-by-flag",
        """
        import torch

        for batch in loader:
            with torch.autocast("cuda", dtype=torch.float16, enabled=args.amp):  # expect: MP002
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
    """,
    ),
    bug(
        "ppo-losses-in-dict",
        """
        import torch

        for mb in minibatches:
            with torch.autocast("cuda", dtype=torch.float16):  # expect: MP002
                logp, values = agent.evaluate(mb["obs"], mb["actions"])
                ratio = torch.exp(logp - mb["old_logp"])
                clipped = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps)
                losses = {
                    "policy": -torch.min(ratio * mb["adv"], clipped * mb["adv"]).mean(),
                    "value": (values - mb["returns"]).pow(2).mean(),
                }
            total = losses["policy"] + 0.5 * losses["value"]
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
    """,
    ),
    bug(
        "gradient-accumulation",
        """
        import torch

        for step, (x, y) in enumerate(loader):
            with torch.autocast(device_type="cuda", dtype=torch.float16):  # expect: MP002
                loss = model(input_ids=x, labels=y).loss
            loss = loss / accum_steps
            loss.backward()
            if (step + 1) % accum_steps == 0:
                optimizer.step()
                optimizer.zero_grad()
    """,
    ),
    bug(
        "cuda-amp-autocast-with-second-context",
        """
        import torch
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with torch.cuda.amp.autocast(dtype=torch.float16), sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # expect: MP002
            loss = model(tokens, targets=targets)
        loss.backward()
    """,
    ),
    bug(
        "amp-module-import",
        """
        from torch import amp

        for batch in loader:
            with amp.autocast("cuda"):  # expect: MP002
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
    """,
    ),
    ok(
        "cuda-amp-grad-scaler",
        """
        import torch

        scaler = torch.cuda.amp.GradScaler()
        for x, y in loader:
            optimizer.zero_grad()
            with torch.autocast("cuda", dtype=torch.float16):
                loss = criterion(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    """,
    ),
    ok(
        "torch-amp-grad-scaler",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for batch in loader:
            with torch.amp.autocast("cuda", dtype=torch.float16):
                loss = model(**batch).loss
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
    """,
    ),
    # nanoGPT as published: the scaler is on exactly when the dtype is float16.
    ok(
        "nanogpt-float16-with-conditional-scaler",
        """
        from contextlib import nullcontext

        import torch

        device = "cuda"
        dtype = "float16"
        device_type = "cuda" if "cuda" in device else "cpu"
        ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        ctx = nullcontext() if device_type == "cpu" else torch.amp.autocast(device_type=device_type, dtype=ptdtype)
        scaler = torch.cuda.amp.GradScaler(enabled=(dtype == "float16"))
        for micro_step in range(gradient_accumulation_steps):
            with ctx:
                logits, loss = model(X, Y)
                loss = loss / gradient_accumulation_steps
            scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    """,
    ),
    ok(
        "bf16-never-needs-a-scaler",
        """
        import torch

        for batch in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
    """,
    ),
    # torch.autocast("cpu") defaults to bf16.
    ok(
        "cpu-autocast-default-is-bf16",
        """
        import torch

        for x, y in loader:
            with torch.autocast("cpu"):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
    """,
    ),
    ok(
        "inference-under-no-grad",
        """
        import torch

        model.eval()
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
            preds = model(images.cuda()).argmax(dim=-1)
    """,
    ),
    # fp16 only in evaluation; the training loop that backpropagates runs in fp32.
    ok(
        "fp16-eval-fp32-training",
        """
        import torch
        import torch.nn.functional as F

        def evaluate(model, loader):
            model.eval()
            correct = 0
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
                for x, y in loader:
                    correct += (model(x).argmax(-1) == y).sum().item()
            return correct / len(loader.dataset)

        for epoch in range(epochs):
            model.train()
            for x, y in train_loader:
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            print(evaluate(model, val_loader))
    """,
    ),
    ok(
        "accelerate-fp16-backward",
        """
        import torch
        from accelerate import Accelerator

        accelerator = Accelerator(mixed_precision="fp16")
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        for batch in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(**batch).loss
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
    """,
    ),
    ok(
        "deepspeed-engine-backward",
        """
        import deepspeed
        import torch

        model_engine, optimizer, _, _ = deepspeed.initialize(args=args, model=model, model_parameters=model.parameters())
        for step, batch in enumerate(loader):
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model_engine(batch["input_ids"], labels=batch["labels"]).loss
            model_engine.backward(loss)
            model_engine.step()
    """,
    ),
    ok(
        "lightning-16-mixed-manual-backward",
        """
        import lightning as L
        import torch
        import torch.nn.functional as F

        class LitClassifier(L.LightningModule):
            def __init__(self, net):
                super().__init__()
                self.net = net
                self.automatic_optimization = False

            def training_step(self, batch, batch_idx):
                opt = self.optimizers()
                with torch.autocast("cuda", dtype=torch.float16):
                    loss = F.cross_entropy(self.net(batch[0]), batch[1])
                opt.zero_grad()
                self.manual_backward(loss)
                opt.step()

        trainer = L.Trainer(precision="16-mixed", max_epochs=3)
        trainer.fit(LitClassifier(net), train_loader)
    """,
    ),
    ok(
        "apex-amp-scale-loss",
        """
        import torch
        from apex import amp

        model, optimizer = amp.initialize(model, optimizer, opt_level="O1")
        for x, y in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = criterion(model(x), y)
            optimizer.zero_grad()
            with amp.scale_loss(loss, optimizer) as scaled_loss:
                scaled_loss.backward()
            optimizer.step()
    """,
    ),
    # timm's NativeScaler scales and backpropagates the loss itself.
    ok(
        "timm-native-scaler",
        """
        import torch
        from timm.utils import NativeScaler

        loss_scaler = NativeScaler()
        for samples, targets in data_loader:
            with torch.cuda.amp.autocast():
                outputs = model(samples)
                loss = criterion(outputs, targets)
            optimizer.zero_grad()
            loss_scaler(loss, optimizer, clip_grad=max_norm, parameters=model.parameters())
    """,
    ),
    # MAE's and DeiT's scaler class (a GradScaler inside), called with the loss or handed to a helper
    # of another package with it: it scales where this analysis does not look (timm's train loop
    # keeps a plain backward for runs without one).
    ok(
        "loss-scaler-called-with-the-loss",
        """
        import torch
        from util.misc import NativeScalerWithGradNormCount as NativeScaler

        loss_scaler = NativeScaler()
        for samples, targets in data_loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = criterion(model(samples), targets)
            if loss_scaler is not None:
                loss_scaler(loss, optimizer, parameters=model.parameters())
            else:
                loss.backward()
                optimizer.step()
            optimizer.zero_grad()
    """,
    ),
    ok(
        "loss-scaler-handed-to-a-helper",
        """
        import torch
        from util.misc import NativeScalerWithGradNormCount, backward_step

        loss_scaler = NativeScalerWithGradNormCount()
        for samples, targets in data_loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = criterion(model(samples), targets)
            if loss_scaler is not None:
                backward_step(loss, optimizer, loss_scaler)
            else:
                loss.backward()
                optimizer.step()
            optimizer.zero_grad()
    """,
    ),
    ok(
        "scaler-enabled-by-flag",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda", enabled=args.fp16)
        for batch in loader:
            with torch.autocast("cuda", dtype=torch.float16, enabled=args.fp16):
                loss = model(**batch).loss
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    """,
    ),
    # fp16 or bf16 depending on a flag: which one is unknown, so quiet (precision first).
    ok(
        "conditional-dtype",
        """
        import torch

        amp_dtype = torch.float16 if args.fp16 else torch.bfloat16
        for batch in loader:
            with torch.autocast("cuda", dtype=amp_dtype):
                loss = model(**batch).loss
            loss.backward()
    """,
    ),
    ok(
        "nanogpt-bfloat16",
        """
        from contextlib import nullcontext

        import torch

        device_type = "cuda"
        dtype = "bfloat16"
        ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        ctx = nullcontext() if device_type == "cpu" else torch.amp.autocast(device_type=device_type, dtype=ptdtype)
        with ctx:
            logits, loss = model(X, Y)
        loss.backward()
    """,
    ),
    ok(
        "scaler-on-self",
        """
        import torch
        from torch.cuda.amp import GradScaler, autocast

        class Trainer:
            def __init__(self, model, optimizer):
                self.model = model
                self.optimizer = optimizer
                self.scaler = GradScaler()

            def step(self, batch):
                with autocast():
                    loss = self.model(**batch).loss
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
    """,
    ),
    ok(
        "autocast-disabled",
        """
        import torch

        for batch in loader:
            with torch.autocast("cuda", dtype=torch.float16, enabled=False):
                loss = model(**batch).loss
            loss.backward()
    """,
    ),
    # Distillation: only the frozen teacher runs in fp16, under no_grad; no gradient flows
    # through the fp16 region, so nothing there can underflow.
    ok(
        "fp16-frozen-teacher-distillation",
        """
        import torch
        import torch.nn.functional as F

        for images, _ in loader:
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
                teacher_logits = teacher(images)
            student_logits = student(images)
            loss = F.kl_div(
                F.log_softmax(student_logits / T, dim=-1),
                F.softmax(teacher_logits.float() / T, dim=-1),
                reduction="batchmean",
            ) * T * T
            loss.backward()
            optimizer.step()
    """,
    ),
    # The same teacher in a helper that returns its logits from under no_grad.
    ok(
        "fp16-frozen-teacher-returned-from-no-grad",
        """
        import torch
        import torch.nn.functional as F

        def teacher_logits(teacher, images):
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
                return teacher(images)

        for images, _ in loader:
            target = F.softmax(teacher_logits(teacher, images).float() / T, dim=-1)
            loss = F.kl_div(F.log_softmax(student(images) / T, dim=-1), target, reduction="batchmean")
            loss.backward()
            optimizer.step()
    """,
    ),
    # The scaler is made in main() and handed to the step function that scales the loss.
    ok(
        "scaler-passed-to-train-step",
        """
        import torch

        def train_step(model, batch, optimizer, scaler):
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(**batch).loss
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

        def main():
            scaler = torch.cuda.amp.GradScaler()
            for batch in loader:
                train_step(model, batch, optimizer, scaler)
    """,
    ),
    # The old CUDA entry point takes `enabled` first and the dtype second.
    ok(
        "cuda-amp-autocast-with-a-positional-bf16-dtype",
        """
        import torch

        model = torch.nn.Linear(8, 8).cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x in loader:
            with torch.cuda.amp.autocast(True, torch.bfloat16):
                loss = model(x).sum()
            loss.backward()
            optimizer.step()
        """,
    ),
    # Autocast on one path only, chosen by a flag the caller passes: no region after the join
    # (whichever branch holds it).
    ok(
        "autocast-on-the-if-path-only",
        """
        import torch

        model = torch.nn.Linear(8, 1).cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

        def train_step(x, use_amp):
            if use_amp:
                with torch.autocast("cuda", dtype=torch.float16):
                    loss = model(x).sum()
            else:
                loss = model(x).sum()
            loss.backward()
            optimizer.step()
        """,
    ),
    ok(
        "autocast-on-the-else-path-only",
        """
        import torch

        model = torch.nn.Linear(8, 1).cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

        def train_step(x, full_precision):
            if full_precision:
                loss = model(x).sum()
            else:
                with torch.autocast("cuda", dtype=torch.float16):
                    loss = model(x).sum()
            loss.backward()
            optimizer.step()
        """,
    ),
    # A dtype only the caller knows: no region of known dtype.
    ok(
        "autocast-dtype-handed-in-by-the-caller",
        """
        import torch

        def train_epoch(model, optimizer, loader, amp_dtype):
            for x in loader:
                with torch.autocast("cuda", dtype=amp_dtype):
                    loss = model(x).sum()
                loss.backward()
                optimizer.step()
        """,
    ),
    # An option left at None is no dtype: CUDA's default, float16.
    bug(
        "autocast-dtype-option-left-at-none",
        """
        import argparse
        import torch

        parser = argparse.ArgumentParser()
        parser.add_argument("--amp-dtype", default=None)
        args = parser.parse_args()
        model = torch.nn.Linear(8, 8).cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x in loader:
            with torch.autocast("cuda", dtype=args.amp_dtype):  # expect: MP002
                loss = model(x).sum()
            loss.backward()
            optimizer.step()
        """,
    ),
    # A loss the tables do not list, computed after the region from its output, still reaches
    # back into the region.
    bug(
        "smooth-l1-loss-computed-after-the-region",
        """
        import torch
        import torch.nn.functional as F

        model = torch.nn.Linear(8, 1).cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            with torch.autocast("cuda", dtype=torch.float16):  # expect: MP002
                pred = model(x)
            loss = F.smooth_l1_loss(pred, y)
            loss.backward()
            optimizer.step()
        """,
    ),
]


CASES += [
    # A framework's `backward(loss)` is a backward pass; its other methods, and an object's own
    # `backward` that computes no gradient, are not.
    ok(
        "accelerator-gathers-an-fp16-loss-it-never-backpropagates",
        """
        import torch
        from accelerate import Accelerator

        accelerator = Accelerator(mixed_precision="no")
        model = torch.nn.Linear(8, 8).cuda()
        with torch.autocast("cuda"):
            loss = model(x).sum()
        losses = accelerator.gather(loss)
        """,
    ),
    # An item of what a project's object computed under the region (Lumina-Image-2.0: the transport
    # of a dict of datasets returns a dict of losses): its gradients come from the fp16 region.
    bug(
        "item-of-a-loss-dict-computed-under-the-region",
        """
        import torch

        def train(model, data_collection, optimizer):
            for step in range(100):
                for res, data_pack in data_collection.items():
                    with torch.cuda.amp.autocast():  # expect: MP002
                        loss_dict = data_pack["transport"].training_losses(model, data_pack["x"])
                    loss = loss_dict["loss"].sum() / data_pack["local_bsz"]
                    loss.backward()
                    optimizer.step()
    """,
    ),
    # sheeprl's Plan2Explore: the world model's loss goes through the scaler, the ensembles' beside it
    # through a plain backward on every path: the file's scaler does not scale that one.
    bug(
        "a-second-loss-beside-a-scaled-one",
        """
        import torch

        model = torch.nn.Linear(8, 8).cuda()
        ensemble = torch.nn.Linear(8, 8).cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        ensemble_optimizer = torch.optim.SGD(ensemble.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cuda")
        for x in loader:
            with torch.autocast("cuda"):
                loss = model(x).mean()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            with torch.autocast("cuda"):  # expect: MP002
                ensemble_loss = ensemble(x).mean()
            ensemble_loss.backward()
            ensemble_optimizer.step()
    """,
    ),
    # The plain backward is the unscaled alternative of a scaled one: in a branch, or in a helper
    # called from one, or on a name a scaler's output is assigned to on some path.
    ok(
        "plain-backward-in-a-helper-called-from-the-other-branch",
        """
        import torch


        def plain_step(loss, optimizer):
            loss.backward()
            optimizer.step()


        def train(model, loader, optimizer, scaler, use_amp):
            for x in loader:
                with torch.autocast("cuda"):
                    loss = model(x).mean()
                if use_amp:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    plain_step(loss, optimizer)


        model = torch.nn.Linear(8, 8).cuda()
        train(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), torch.amp.GradScaler("cuda"), amp_wanted())
    """,
    ),
    ok(
        "loss-rebound-to-the-scaled-loss-on-some-path",
        """
        import torch


        def train(model, loader, optimizer, scaler):
            for x in loader:
                with torch.autocast("cuda"):
                    loss = model(x).mean()
                if scaler is not None:
                    loss = scaler.scale(loss)
                loss.backward()
                optimizer.step()


        model = torch.nn.Linear(8, 8).cuda()
        train(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), make_scaler())
        torch.amp.GradScaler("cuda")
    """,
    ),
    ok(
        "a-recorder-whose-backward-only-records",
        """
        import torch

        class Recorder:
            def backward(self, loss):
                self.last = loss.detach()

        recorder = Recorder()
        model = torch.nn.Linear(8, 8).cuda()
        with torch.autocast("cuda"):
            loss = model(x).sum()
        recorder.backward(loss)
        """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp002(source: str) -> None:
    check(source, CODE)


# Projects: the region, the backward and the loss scaling in different files. Each one is quiet
# for exactly one reason, so that each of the rule's exemptions is pinned by a case of its own.
PROJECTS = {
    # The loss is scaled by a helper module's scaler: neither the file of the region nor the file
    # of the backward builds or uses a scaler, the loss itself says it was scaled.
    "scaled-by-a-helper-module": {
        "amp_state.py": """
            import torch

            _scaler = torch.amp.GradScaler("cuda")


            def scaled(loss):
                return _scaler.scale(loss)


            def step(optimizer):
                _scaler.step(optimizer)
                _scaler.update()
        """,
        "train.py": """
            import torch

            import amp_state

            for batch in loader:
                with torch.autocast("cuda", dtype=torch.float16):
                    loss = model(**batch).loss
                amp_state.scaled(loss).backward()
                amp_state.step(optimizer)
                optimizer.zero_grad()
        """,
    },
    # The region is in the model code; the training script scales when a scaler was asked for
    # and backpropagates plainly otherwise: the file of the backward scales losses.
    "region-in-helper-scaler-in-training-script": {
        "modeling.py": """
            import torch


            def compute_loss(model, batch):
                with torch.autocast("cuda", dtype=torch.float16):
                    return model(**batch).loss
        """,
        "train.py": """
            import torch

            from modeling import compute_loss

            scaler = torch.cuda.amp.GradScaler() if args.loss_scaling else None
            for batch in loader:
                loss = compute_loss(model, batch)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                optimizer.zero_grad()
        """,
    },
    # The fp32 branch hands the loss to a shared backward-and-step helper: the file of the region
    # scales losses, the helper's file does not.
    "plain-backward-helper-on-the-fp32-branch": {
        "optim_utils.py": """
            import torch


            def backward_and_step(loss, model, optimizer, max_norm=1.0):
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                optimizer.step()
                optimizer.zero_grad()
        """,
        "train.py": """
            import torch

            from optim_utils import backward_and_step

            scaler = torch.cuda.amp.GradScaler(enabled=args.amp)
            for batch in loader:
                with torch.autocast("cuda", dtype=torch.float16, enabled=args.amp):
                    loss = model(**batch).loss
                if args.amp:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad()
                else:
                    backward_and_step(loss, model, optimizer)
        """,
    },
    # The same helper, in a project that never scales: reported at the region, in train.py.
    "plain-backward-helper-without-scaler": {
        "optim_utils.py": """
            import torch


            def backward_and_step(loss, model, optimizer, max_norm=1.0):
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                optimizer.step()
                optimizer.zero_grad()
        """,
        "train.py": """
            import torch

            from optim_utils import backward_and_step

            for batch in loader:
                with torch.autocast("cuda", dtype=torch.float16):  # expect: MP002
                    loss = model(**batch).loss
                backward_and_step(loss, model, optimizer)
        """,
    },
}


@pytest.mark.parametrize("files", PROJECTS.values(), ids=PROJECTS.keys())
def test_mp002_projects(files: dict[str, str], tmp_path: Path) -> None:
    check_files(files, CODE, tmp_path)


def test_message_names_the_backward_as_written() -> None:
    source = """
        import torch

        with torch.autocast("cuda"):
            loss = model(**batch).loss
        torch.autograd.backward(loss)
    """
    [finding] = lint(source, CODE)
    assert finding.line == line_of(source, "torch.autocast")
    assert "`torch.autograd.backward(...)` at train.py:" + str(line_of(source, "autograd")) in finding.message
    method = source.replace("torch.autograd.backward(loss)", "loss.backward()")
    [finding] = lint(method, CODE)
    assert "`.backward()` at train.py:" in finding.message


# nanoGPT's shape with the region's dtype fixed: `torch.cuda.amp.autocast()` is float16 whatever
# `dtype` says, while the scaler is on only for `dtype == "float16"` (baby-llama2-chinese).
SCALER_BY_SETTING = """
    import torch
    import torch.nn.functional as F
    from contextlib import nullcontext

    dtype = "float16"  # 'float32', 'bfloat16', or 'float16', the latter will auto implement a GradScaler
    device_type = "cuda"
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    ctx = nullcontext() if device_type == "cpu" else REGION
    scaler = torch.cuda.amp.GradScaler(enabled=(dtype == 'float16'))


    def train(model, optimizer, loader):
        for x, y in loader:
            with ctx:
                logits = model(x)
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)


    train(model, optimizer, loader)
"""


@pytest.mark.parametrize(
    ("region", "reported"),
    [
        ("torch.cuda.amp.autocast()", True),
        ('torch.autocast("cuda", dtype=torch.float16)', True),
        ('torch.autocast(device_type="cuda", dtype=torch.float16)', True),
        ("torch.amp.autocast(device_type=device_type, dtype=ptdtype)", False),  # nanoGPT: it follows `dtype`
        ("torch.cpu.amp.autocast()", False),  # bfloat16 by default: no scaler needed
        # EveryDream2trainer: the region is off where the scaler is (`autocast(enabled=args.amp)`).
        ("torch.cuda.amp.autocast(enabled=(dtype == 'float16'))", False),
        ("torch.cuda.amp.autocast(enabled=True)", True),
    ],
)
def test_a_scaler_turned_off_by_a_setting_the_fp16_region_ignores(region: str, reported: bool) -> None:
    source = SCALER_BY_SETTING.replace("REGION", region)
    findings = lint(source, CODE)
    assert len(findings) == (1 if reported else 0)
    if reported:
        [finding] = findings
        assert finding.line == line_of(source, "ctx = nullcontext()")
        assert "is on only while `dtype == 'float16'` holds" in finding.message
        assert finding.severity.value == "warning"


def test_the_scaler_setting_is_read_among_other_options() -> None:
    source = SCALER_BY_SETTING.replace("REGION", "torch.cuda.amp.autocast()").replace(
        "GradScaler(enabled=(dtype == 'float16'))", "GradScaler(init_scale=2.0**14, enabled=(dtype == 'float16'))"
    )
    [finding] = lint(source, CODE)
    assert "is on only while `dtype == 'float16'` holds" in finding.message


def test_a_scaler_enabled_by_a_parameter_is_no_configuration() -> None:
    """`enabled=use_amp` with `use_amp` a parameter nobody passes: not a setting of the script."""
    source = SCALER_BY_SETTING.replace("REGION", "torch.cuda.amp.autocast()").replace(
        "enabled=(dtype == 'float16')", "enabled=use_amp"
    )
    source = source.replace("def train(model, optimizer, loader):", "def train(model, optimizer, loader, use_amp):")
    source = source.replace("    scaler = torch.cuda.amp.GradScaler(enabled=use_amp)\n", "")
    source = source.replace(
        "        for x, y in loader:",
        "        scaler = torch.cuda.amp.GradScaler(enabled=use_amp)\n        for x, y in loader:",
    )
    assert lint(source, CODE) == []


# LMFlow's LISA diffusion trainer: `--mixed_precision` defaults to "no"; under `--mixed_precision
# fp16` (a run under that option) the accelerator is fp16 and its `backward` scales the loss, though
# what that run records of the file's loss scaling does not outlive it.
ACCELERATE_OPTION = """
    import argparse

    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from diffusers import UNet2DConditionModel


    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--mixed_precision", type=str, default="no", choices=["no", "fp16", "bf16"])
        args = parser.parse_args()
        accelerator = Accelerator(mixed_precision=args.mixed_precision)
        weight_dtype = torch.float16 if accelerator.mixed_precision == "fp16" else torch.float32
        unet = accelerator.prepare_model(UNet2DConditionModel.from_pretrained("sd-v1-5", subfolder="unet"))
        for batch in loader:
            pred = unet(batch["x"].to(weight_dtype))
            loss = F.mse_loss(pred.float(), batch["y"].float())
            BACKWARD


    def log_validation(pipeline, accelerator):
        with torch.autocast("cuda", enabled=accelerator.mixed_precision == "fp16"):
            return pipeline("a photo")


    if __name__ == "__main__":
        main()
"""


@pytest.mark.parametrize(
    ("backward", "reported"),
    [("accelerator.backward(loss)", False), ("loss.backward()", True)],
)
def test_accelerate_scales_under_its_fp16_option(backward: str, reported: bool) -> None:
    findings = lint(ACCELERATE_OPTION.replace("BACKWARD", backward), CODE)
    assert len(findings) == (1 if reported else 0)


@pytest.mark.parametrize(
    ("scaler", "scaled_backward"),
    [
        pytest.param('torch.amp.GradScaler("cuda")', "scaler.scale(loss).backward()", id="grad-scaler"),
        pytest.param(
            'accelerate.Accelerator(mixed_precision="fp16")', "scaler.backward(loss)", id="accelerate-backward"
        ),
    ],
)
def test_a_scaler_used_only_on_a_path_read_aside_still_counts_there(
    scaler: str, scaled_backward: str, tmp_path: Path
) -> None:
    """EfficientZero: `train()` (its GradScaler, its `scaler.scale(loss).backward()`) runs only where
    the commands' `--opr train` holds, a path read aside. Its other branch, `loss.backward()` when
    the scaler is off, is no finding there, as it is none on the default path where the file scales."""
    files = {
        "core/train.py": f"""
            import accelerate
            import torch


            def train(model, loader, optimizer, use_scaler):
                scaler = {scaler}
                for x in loader:
                    with torch.autocast("cuda"):
                        loss = model(x).mean()
                    if use_scaler:
                        {scaled_backward}
                        optimizer.step()
                    else:
                        loss.backward()
                        optimizer.step()
        """,
        "main.py": """
            import argparse

            import torch

            from core.train import train

            if __name__ == "__main__":
                parser = argparse.ArgumentParser()
                parser.add_argument("--opr", required=True, choices=["train", "test"])
                args = parser.parse_args()
                model = torch.nn.Linear(8, 8).cuda()
                if args.opr == "train":
                    train(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), use_scaler=scaler_wanted())
        """,
    }
    check_files(files, CODE, tmp_path)
