"""MP206 data-parallel-under-bf16-autocast: an nn.DataParallel model called inside a bf16 CUDA autocast region.

Reported at the call. Torch facts (torch 2.13, checked in tests/runtime/test_catalog_claims.py):
parallel_apply re-enters autocast in each replica's thread as `torch.amp.autocast(device_type,
enabled=autocast_enabled)`, and the autocast dtype is thread-local, so a thread started inside a
bf16 region with enabled=True and no dtype gets the default dtype (float16 for CUDA).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .casekit import bug, check, check_files, ok

CODE = "MP206"

NET = """
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(512, 512)
        self.head = nn.Linear(512, 10)

    def forward(self, x):
        return self.head(torch.relu(self.backbone(x)))
"""

CASES = [
    bug(
        "autocast-bf16-around-data-parallel",
        NET
        + """
model = nn.DataParallel(Net().cuda())
for x, y in loader:
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = nn.functional.cross_entropy(model(x), y)  # expect: MP206
    loss.backward()
""",
    ),
    bug(
        "cuda-amp-autocast-alias-and-from-import",
        NET
        + """
from torch.cuda.amp import autocast
from torch.nn import DataParallel

model = DataParallel(Net()).cuda()
with autocast(dtype=torch.bfloat16):
    logits = model(images)  # expect: MP206
""",
    ),
    bug(
        "trainer-holds-the-wrapped-model",
        NET
        + """
class Trainer:
    def __init__(self):
        self.model = nn.DataParallel(Net().cuda())

    def train_step(self, x, y):
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            out = self.model(x)  # expect: MP206
        return nn.functional.mse_loss(out.float(), y)

Trainer().train_step(x, y)
""",
    ),
    bug(
        "region-from-a-helper",
        NET
        + """
def amp_context():
    return torch.autocast("cuda", dtype=torch.bfloat16)

model = torch.nn.DataParallel(Net().cuda())
with amp_context():
    out = model(batch)  # expect: MP206
""",
    ),
    bug(
        "dtype-from-config-dict",
        NET
        + """
config = {"amp_dtype": torch.bfloat16, "lr": 1e-4}
model = nn.DataParallel(Net().cuda(), device_ids=[0, 1, 2, 3])
with torch.autocast("cuda", dtype=config["amp_dtype"]):
    out = model(batch)  # expect: MP206
""",
    ),
    bug(
        "explicit-forward-method",
        NET
        + """
model = nn.DataParallel(Net().cuda())
with torch.autocast("cuda", dtype=torch.bfloat16):
    out = model.forward(batch)  # expect: MP206
""",
    ),
    bug(
        "train-function-gets-the-model",
        NET
        + """
def train_epoch(model, loader, optimizer):
    for x, y in loader:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x).sum()  # expect: MP206
        loss.backward()
        optimizer.step()

def main():
    model = nn.DataParallel(Net().cuda())
    optimizer = torch.optim.AdamW(model.parameters())
    train_epoch(model, loader, optimizer)

main()
""",
    ),
    bug(
        "torchvision-model",
        """
        import torch
        import torchvision

        model = torch.nn.DataParallel(torchvision.models.resnet50()).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(images)  # expect: MP206
        """,
    ),
    ok(
        "float16-region",
        NET
        + """
model = nn.DataParallel(Net().cuda())
scaler = torch.amp.GradScaler("cuda")
with torch.autocast("cuda", dtype=torch.float16):
    out = model(batch)
""",
    ),
    ok(
        "forward-opens-its-own-region",
        """
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(512, 10)

            def forward(self, x):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    return self.fc(x)

        model = nn.DataParallel(Net().cuda())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(batch)
        """,
    ),
    ok(
        "forward-decorated-with-autocast",
        """
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(512, 10)

            @torch.autocast("cuda", dtype=torch.bfloat16)
            def forward(self, x):
                return self.fc(x)

        model = nn.DataParallel(Net().cuda())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(batch)
        """,
    ),
    ok(
        "distributed-data-parallel",
        NET
        + """
from torch.nn.parallel import DistributedDataParallel as DDP

model = DDP(Net().cuda(), device_ids=[local_rank])
with torch.autocast("cuda", dtype=torch.bfloat16):
    out = model(batch)
""",
    ),
    # Wrappers that run the module in the calling thread: no replica loses the region's dtype.
    ok(
        "distributed-data-parallel-one-gpu-per-process",
        NET
        + """
import torch.distributed as dist

dist.init_process_group("nccl")
model = nn.parallel.DistributedDataParallel(Net().cuda())
with torch.autocast("cuda", dtype=torch.bfloat16):
    out = model(batch)
""",
    ),
    ok(
        "compiled-model",
        NET
        + """
model = torch.compile(Net().cuda())
with torch.autocast("cuda", dtype=torch.bfloat16):
    out = model(batch)
""",
    ),
    ok(
        "single-device",
        NET
        + """
model = nn.DataParallel(Net().cuda(), device_ids=[0])
with torch.autocast("cuda", dtype=torch.bfloat16):
    out = model(batch)
""",
    ),
    ok(
        "single-device-given-positionally",
        NET
        + """
model = nn.DataParallel(Net().cuda(), [0])
with torch.autocast("cuda", dtype=torch.bfloat16):
    out = model(batch)
""",
    ),
    bug(
        "devices-given-positionally",
        NET
        + """
model = nn.DataParallel(Net().cuda(), (0, 1))
with torch.autocast("cuda", dtype=torch.bfloat16):
    out = model(batch)  # expect: MP206
""",
    ),
    bug(
        "every-visible-device",
        NET
        + """
model = nn.DataParallel(Net().cuda(), device_ids=list(range(torch.cuda.device_count())))
with torch.autocast("cuda", dtype=torch.bfloat16):
    out = model(batch)  # expect: MP206
""",
    ),
    ok(
        "forward-from-a-base-class-not-linted",
        """
        import torch
        import torch.nn as nn
        from encoders.mixins import AutocastForwardMixin

        class Encoder(AutocastForwardMixin, nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = nn.Linear(512, 512)

        model = nn.DataParallel(Encoder().cuda())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(batch)
        """,
    ),
    ok(
        "cpu-region",
        NET
        + """
model = nn.DataParallel(Net())
with torch.autocast("cpu", dtype=torch.bfloat16):
    out = model(batch)
""",
    ),
    ok(
        "called-outside-the-region",
        NET
        + """
model = nn.DataParallel(Net().cuda())
with torch.autocast("cuda", dtype=torch.bfloat16):
    features = torch.randn(8, 512, device="cuda") @ weight
out = model(features.float())
""",
    ),
    ok(
        "wrapping-not-visible",
        """
        import torch

        def evaluate(model, batch):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return model(batch)
        """,
    ),
    ok(
        "region-disabled",
        NET
        + """
model = nn.DataParallel(Net().cuda())
with torch.autocast("cuda", dtype=torch.bfloat16, enabled=False):
    out = model(batch)
""",
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp206(source: str) -> None:
    check(source, CODE)


def test_model_wrapped_in_another_file(tmp_path: Path) -> None:
    check_files(
        {
            "nets.py": NET,
            "setup_model.py": """
                import torch.nn as nn
                from nets import Net

                def build():
                    return nn.DataParallel(Net().cuda())
            """,
            "train.py": """
                import torch
                from setup_model import build

                model = build()
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = model(batch).mean()  # expect: MP206
            """,
        },
        CODE,
        tmp_path,
    )
