"""MP306 half-reduction-outside-autocast: a loss or a sum computed on bf16/fp16 tensors where no
autocast region runs it in fp32.

Reported at the op. Torch facts (torch 2.13, checked in tests/runtime/test_catalog_claims_mp108_mp207_mp306.py):
the losses and sums return their input's dtype; fp16 overflows past 65504 (100000 ones sum to inf,
an mse_loss of errors of 300 is inf), bf16 keeps 8 bits (100000 ones sum to 99840, the KL of a
distribution with itself is not 0); CUDA autocast lists them all as fp32 ops (ATen/autocast_mode.h).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .casekit import bug, check, check_files, lint, ok

CODE = "MP306"

CASES = [
    bug(
        "mse-loss-after-the-bf16-block",
        """
        import torch
        import torch.nn.functional as F

        model = torch.nn.Linear(64, 1).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        for x, y in loader:
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                pred = model(x.cuda())
            loss = F.mse_loss(pred, y.cuda())  # expect: MP306
            loss.backward()
            optimizer.step()
        """,
    ),
    bug(
        "half-model-regression-without-autocast",
        """
        import torch
        from torch.nn import functional as F

        net = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)).cuda().half()
        for features, targets in loader:
            loss = F.l1_loss(net(features.cuda().half()), targets)  # expect: MP306
            loss.backward()
        """,
    ),
    bug(
        "kl-penalty-in-a-helper-of-a-bf16-policy",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        def kl_penalty(student_logits, teacher_probs):
            student_logp = F.log_softmax(student_logits, dim=-1)
            return F.kl_div(student_logp, teacher_probs, reduction="batchmean")  # expect: MP306

        student = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16).cuda()
        for batch in loader:
            logits = student(batch["input_ids"]).logits
            loss = kl_penalty(logits, batch["teacher_probs"])
            loss.backward()
        """,
    ),
    bug(
        "sequence-log-prob-summed-in-a-trainer-method",
        """
        import torch
        import torch.nn.functional as F

        class DPOTrainer:
            def __init__(self, policy):
                self.policy = policy

            def sequence_logps(self, input_ids, labels):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = self.policy(input_ids)
                token_logps = torch.gather(logits.log_softmax(-1), 2, labels.unsqueeze(2)).squeeze(2)
                return token_logps.sum(dim=-1)  # expect: MP306

        trainer = DPOTrainer(torch.nn.Linear(32, 32).cuda())
        chosen = trainer.sequence_logps(ids, labels)
        """,
    ),
    bug(
        "cumsum-of-probabilities-sampled-by-inverse-cdf",
        """
        import torch

        model = torch.nn.Linear(128, 50257).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(hidden)
        probs = logits.softmax(dim=-1)
        cdf = torch.cumsum(probs, dim=-1)  # expect: MP306
        next_token = torch.searchsorted(cdf, torch.rand(cdf.shape[:-1] + (1,), device=cdf.device))
        """,
    ),
    bug(
        "sum-inside-cpu-autocast",
        """
        import torch

        model = torch.nn.Linear(8, 8)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            energy = model(batch).sum()  # expect: MP306
        energy.backward()
        """,
    ),
    bug(
        "bce-after-a-cuda-amp-region-imported-by-name",
        """
        import torch
        import torch.nn.functional as F
        from torch.cuda.amp import autocast

        disc = torch.nn.Linear(256, 1).cuda()
        scaler = torch.cuda.amp.GradScaler()
        with autocast():
            scores = disc(fake_images)
        loss = F.binary_cross_entropy_with_logits(scores, torch.ones_like(scores))  # expect: MP306
        scaler.scale(loss).backward()
        """,
    ),
    bug(
        "smooth-l1-on-a-dict-output-of-a-half-detector",
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Detector(nn.Module):
            def __init__(self):
                super().__init__()
                self.backbone = nn.Linear(512, 256)
                self.box_head = nn.Linear(256, 4)

            def forward(self, x):
                return {"boxes": self.box_head(torch.relu(self.backbone(x)))}

        detector = Detector().cuda().half()
        out = detector(images)
        loss = F.smooth_l1_loss(out["boxes"], gt_boxes)  # expect: MP306
        """,
    ),
    bug(
        "dtype-from-a-config-dict",
        """
        import torch
        import torch.nn.functional as F

        config = {"amp_dtype": torch.float16, "lr": 3e-4}
        model = torch.nn.Linear(32, 32).cuda()
        with torch.autocast("cuda", dtype=config["amp_dtype"]):
            recon = model(x)
        loss = F.mse_loss(recon, x, reduction="sum")  # expect: MP306
        """,
    ),
    ok(
        "loss-inside-the-cuda-region",
        """
        import torch
        import torch.nn.functional as F

        model = torch.nn.Linear(64, 1).cuda()
        for x, y in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                pred = model(x)
                loss = F.mse_loss(pred, y)
                total = pred.sum()
            loss.backward()
        """,
    ),
    ok(
        "cast-to-float-first",
        """
        import torch
        import torch.nn.functional as F

        model = torch.nn.Linear(64, 1).cuda().half()
        pred = model(x)
        loss = F.mse_loss(pred.float(), y.float())
        total = pred.float().sum()
        """,
    ),
    ok(
        "sum-with-an-fp32-accumulator",
        """
        import torch

        model = torch.nn.Linear(64, 64).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(x)
        total = logits.sum(dim=-1, dtype=torch.float32)
        running = torch.cumsum(logits, dim=-1, dtype=torch.float32)
        """,
    ),
    ok(
        "pooling-sum-inside-a-half-model-forward",
        """
        import torch
        import torch.nn as nn

        class Pooler(nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = nn.Linear(256, 256)

            def forward(self, x, mask):
                hidden = self.proj(x)
                return hidden.sum(dim=1) / mask.sum(dim=1, keepdim=True)

        pooler = Pooler().cuda().to(torch.bfloat16)
        pooled = pooler(tokens, mask)
        """,
    ),
    ok(
        "mean-after-the-block",
        """
        import torch

        model = torch.nn.Linear(64, 1).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            pred = model(x)
        loss = pred.mean()
        """,
    ),
    ok(
        "fp32-training-without-autocast",
        """
        import torch
        import torch.nn.functional as F

        model = torch.nn.Linear(64, 1).cuda()
        pred = model(x)
        loss = F.mse_loss(pred, y) + pred.sum()
        """,
    ),
    ok(
        "fp32-target-promotes-the-loss",
        """
        import torch
        import torch.nn.functional as F

        model = torch.nn.Linear(64, 1).cuda().half()
        target = torch.zeros(8, 1, device="cuda")
        loss = F.mse_loss(model(x), target)
        """,
    ),
    ok(
        "precision-not-traced",
        """
        import torch.nn.functional as F

        def reconstruction_loss(pred, target):
            return F.mse_loss(pred, target) + pred.sum()
        """,
    ),
    ok(
        "region-switched-by-a-flag",
        """
        import argparse
        import torch
        import torch.nn.functional as F

        parser = argparse.ArgumentParser()
        parser.add_argument("--amp", action="store_true")
        args = parser.parse_args()
        model = torch.nn.Linear(64, 1).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.amp):
            pred = model(x)
            loss = F.mse_loss(pred, y)
        """,
    ),
    ok(
        "cross-entropy-is-mp001s",
        """
        import torch
        import torch.nn.functional as F

        model = torch.nn.Linear(64, 10).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(x)
        loss = F.cross_entropy(logits, labels)
        """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp306(source: str) -> None:
    check(source, CODE)


def test_model_cast_in_another_file(tmp_path: Path) -> None:
    check_files(
        {
            "models.py": """
                import torch

                def build_regressor():
                    return torch.nn.Linear(128, 1).cuda().to(torch.float16)
            """,
            "train.py": """
                import torch.nn.functional as F
                from models import build_regressor

                model = build_regressor()
                for x, y in loader:
                    loss = F.huber_loss(model(x), y)  # expect: MP306
                    loss.backward()
            """,
        },
        CODE,
        tmp_path,
    )


def test_the_message_names_the_origin_and_the_consequence_per_dtype() -> None:
    (bf16,) = lint(
        """
        import torch
        model = torch.nn.Linear(8, 8).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(x)
        total = out.sum()
        """,
        CODE,
    )
    assert bf16.message.startswith("sum on a bfloat16 tensor (from `out`, computed under cuda bfloat16 autocast")
    assert "100000 ones sum to 99840" in bf16.message and "x.sum(dtype=torch.float32)" in bf16.message
    (fp16,) = lint(
        """
        import torch
        import torch.nn.functional as F
        model = torch.nn.Linear(8, 8).cuda().half()
        loss = F.mse_loss(model(x), y)
        """,
        CODE,
    )
    assert fp16.message.startswith("mse_loss on a float16 tensor")
    assert "past 65504 is inf" in fp16.message and "mse_loss(x.float(), y.float())" in fp16.message
