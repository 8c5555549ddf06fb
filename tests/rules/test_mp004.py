"""MP004 half-batch-norm: an optimizer over a float16 model whose tree holds BatchNorm layers.

Reported at the optimizer (or at an in-place cast made after it). Torch facts (torch 2.13, checked
in tests/runtime/test_catalog_claims.py): a float16 BatchNorm stores running_var in float16, so a
channel variance above 65504 becomes inf and eval outputs collapse to 0; an fp32 BatchNorm takes
the same float16 input and stays finite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .casekit import bug, check, check_files, lint, ok

CODE = "MP004"

RESNET_BLOCKS = """
import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn1(self.conv1(x)))


class ResNet(nn.Module):
    def __init__(self, layers, num_classes=10):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.layer1 = self._make_layer(64, layers[0])
        self.fc = nn.Linear(64, num_classes)

    def _make_layer(self, planes, blocks):
        layers = []
        for _ in range(blocks):
            layers.append(BasicBlock(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        return self.fc(self.layer1(self.conv1(x)).mean((2, 3)))
"""

CASES = [
    # A weight initializer applied as a bound method casts nothing: the BatchNorm stays half (it was
    # read with `self` as the submodule, and the model as half but its norms).
    bug(
        "half-model-then-init-weights-applied-as-a-bound-method",
        """
        import torch
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 8, 3)
                self.bn = nn.BatchNorm2d(8)

            def init_weights(self, module):
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight)

            def forward(self, x):
                return self.bn(self.conv(x))


        model = Net().cuda().half()
        model.apply(model.init_weights)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # expect: MP004
        for x, y in loader:
            loss = model(x.half()).float().mean()
            loss.backward()
            optimizer.step()
        """,
    ),
    bug(
        "torchvision-resnet-half",
        """
        import torch
        import torchvision

        model = torchvision.models.resnet50(num_classes=100).cuda().half()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)  # expect: MP004
        """,
    ),
    bug(
        "from-torchvision-import-models-to-float16",
        """
        import torch
        from torchvision import models

        net = models.mobilenet_v2()
        net = net.to("cuda", dtype=torch.float16)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)  # expect: MP004
        """,
    ),
    bug(
        "sequential-with-batchnorm-alias",
        """
        import torch
        from torch import nn

        model = nn.Sequential(nn.Conv2d(3, 32, 3), nn.BatchNorm2d(32), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
        model.half()
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)  # expect: MP004
        """,
    ),
    bug(
        "resnet-make-layer-blocks",
        RESNET_BLOCKS
        + """
model = ResNet([2, 2]).cuda().half()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # expect: MP004
""",
    ),
    bug(
        "class-with-sync-batchnorm-and-param-groups",
        """
        import torch
        import torch.nn as nn

        class Encoder(nn.Module):
            def __init__(self, dim):
                super().__init__()
                self.proj = nn.Linear(dim, dim)
                self.norm = nn.SyncBatchNorm(dim)

        model = Encoder(256).half().cuda()
        decay = [p for n, p in model.named_parameters() if "norm" not in n]
        no_decay = [p for n, p in model.named_parameters() if "norm" in n]
        optimizer = torch.optim.AdamW(  # expect: MP004
            [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3
        )
        """,
    ),
    bug(
        "helper-builds-model-in-other-function",
        """
        import torch
        import torch.nn as nn

        def build_model(fp16):
            model = nn.Sequential(nn.Conv1d(80, 256, 5), nn.BatchNorm1d(256), nn.GELU())
            if fp16:
                model = model.half()
            return model

        def main():
            model = build_model(fp16=True)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01)  # expect: MP004
            for x in loader:
                optimizer.zero_grad()
                model(x.half()).mean().backward()
                optimizer.step()

        main()
        """,
    ),
    bug(
        "conditional-dtype-from-config-dict",
        """
        import torch
        import torch.nn as nn

        cfg = {"dtype": torch.float16 if args.fp16 else torch.bfloat16}
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)).to(cfg["dtype"])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # expect: MP004
        """,
    ),
    bug(
        "default-dtype-float16",
        """
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = nn.Sequential(nn.Conv2d(1, 16, 3), nn.BatchNorm2d(16), nn.ReLU())

        torch.set_default_dtype(torch.float16)
        model = Net()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # expect: MP004
        """,
    ),
    bug(
        "cast-in-place-after-optimizer",
        """
        import torch
        import torch.nn as nn

        model = nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model.half()  # expect: MP004
        for x, y in loader:
            loss = (model(x.half()) - y).pow(2).mean()
            loss.backward()
            optimizer.step()
        """,
    ),
    bug(
        "params-in-a-kwargs-dict",
        """
        import torch
        import torch.nn as nn

        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)).half()
        optimizer_kwargs = {"params": model.parameters(), "lr": 0.1, "momentum": 0.9}
        optimizer = torch.optim.SGD(**optimizer_kwargs)  # expect: MP004
        """,
    ),
    ok(
        "fp32-model-under-autocast",
        """
        import torch
        import torchvision

        model = torchvision.models.resnet50().cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cuda")
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model(images).mean()
        """,
    ),
    ok(
        "batchnorm-put-back-to-fp32",
        """
        import torch
        import torch.nn as nn
        import torchvision

        model = torchvision.models.resnet18().cuda().half()
        for layer in model.modules():
            if isinstance(layer, nn.BatchNorm2d):
                layer.float()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        """,
    ),
    ok(
        "bf16-model",
        """
        import torch
        import torchvision

        model = torchvision.models.resnet50().cuda().to(torch.bfloat16)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        """,
    ),
    ok(
        "half-model-for-inference-only",
        """
        import torch
        import torchvision

        model = torchvision.models.resnet50(weights="DEFAULT").cuda().half().eval()
        with torch.no_grad():
            preds = model(images.half()).argmax(-1)
        """,
    ),
    ok(
        "no-batchnorm-layernorm-only",
        """
        import torch
        import torch.nn as nn

        class Block(nn.Module):
            def __init__(self, dim):
                super().__init__()
                self.norm = nn.LayerNorm(dim)
                self.mlp = nn.Linear(dim, dim)

        model = Block(512).half()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        """,
    ),
    ok(
        "vit-from-torchvision",
        """
        import torch
        from torchvision import models

        model = models.vit_b_16().half()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        """,
    ),
    ok(
        "unknown-model-from-parameter",
        """
        import torch

        def train(model, loader):
            model = model.half()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for x in loader:
                model(x).mean().backward()
                optimizer.step()
        """,
    ),
    ok(
        "batchnorm-without-running-stats",
        """
        import torch
        import torch.nn as nn

        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8, track_running_stats=False)).half()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        """,
    ),
    ok(
        "optimizer-arguments-from-an-unseen-helper",
        """
        import torch
        import torch.nn as nn
        from trainer_utils import optimizer_kwargs

        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)).half()
        optimizer = torch.optim.SGD(**optimizer_kwargs(model, weight_decay=1e-4))
        """,
    ),
    ok(
        "only-the-head-is-half",
        """
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
                self.head = nn.Linear(8, 10)

        model = Net()
        model.head.half()
        optimizer = torch.optim.SGD(model.backbone.parameters(), lr=0.1)
        """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp004(source: str) -> None:
    check(source, CODE)


def test_model_class_in_another_file(tmp_path: Path) -> None:
    check_files(
        {
            "models/resnet.py": RESNET_BLOCKS,
            "models/__init__.py": "",
            "train.py": """
                import torch
                from models.resnet import ResNet

                def main():
                    model = ResNet([2, 2]).cuda()
                    model.half()
                    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # expect: MP004
                    for images, labels in loader:
                        loss = torch.nn.functional.cross_entropy(model(images.half()), labels)
                        loss.backward()
                        optimizer.step()

                main()
            """,
        },
        CODE,
        tmp_path,
    )


def _message(source: str) -> str:
    (finding,) = [finding for finding in lint(source, CODE) if finding.code == CODE]
    return finding.message


def test_the_message_names_the_optimizer_and_the_layer_as_written() -> None:
    message = _message(
        """
        import torch
        import torch.nn as nn

        model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16, track_running_stats=True)).cuda().half()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        """
    )
    assert message.startswith("SGD trains a float16 model")
    assert "holds BatchNorm2d() (built at train.py:5)" in message


def test_a_torchvision_builder_is_named_as_the_network_holding_the_layers() -> None:
    message = _message(
        """
        import torch
        from torchvision import models

        model = models.resnet18().cuda().half()
        optimizer = torch.optim.AdamW(model.parameters())
        """
    )
    assert message.startswith("AdamW trains a float16 model")
    assert "resnet18()'s BatchNorm2d layers" in message


def test_a_late_cast_names_the_optimizer_it_follows() -> None:
    message = _message(
        """
        import torch
        import torch.nn as nn

        model = nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model.half()
        for x, y in loader:
            loss = (model(x.half()) - y).pow(2).mean()
            loss.backward()
            optimizer.step()
        """
    )
    assert message.startswith("model cast to float16 in place after SGD was built over it (train.py:6)")
    assert "BatchNorm1d() (built at train.py:5)" in message


def test_an_optimizer_class_is_named_as_torch_names_it_through_an_alias() -> None:
    message = _message(
        """
        import torch.nn as nn
        from torch.optim import AdamW as Optimizer

        model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16)).cuda().half()
        optimizer = Optimizer(model.parameters(), lr=1e-3)
        """
    )
    assert message.startswith("AdamW trains a float16 model")


LION = """
import torch
import torch.nn as nn


class Lion(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99)):
        super().__init__(params, dict(lr=lr, betas=betas))
"""


def test_an_optimizer_class_of_the_linted_code_is_named_as_written() -> None:
    message = _message(
        LION
        + """
model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16)).cuda().half()
optimizer = Lion(model.parameters(), lr=1e-4)
"""
    )
    assert message.startswith("Lion trains a float16 model")


def test_a_late_cast_names_an_optimizer_class_of_the_linted_code_as_written() -> None:
    message = _message(
        LION
        + """
model = nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16))
optimizer = Lion(model.parameters())
model.half()
for x, y in loader:
    (model(x.half()) - y).pow(2).mean().backward()
    optimizer.step()
"""
    )
    assert message.startswith("model cast to float16 in place after Lion was built over it")


def test_an_optimizer_picked_from_a_registry_by_its_option_is_named_generically() -> None:
    message = _message(
        LION
        + """
import argparse

OPTIMIZERS = {"lion": Lion, "adamw": torch.optim.AdamW}
parser = argparse.ArgumentParser()
parser.add_argument("--optimizer", default="lion", choices=sorted(OPTIMIZERS))
args = parser.parse_args()
model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16)).cuda().half()
optimizer = OPTIMIZERS[args.optimizer](model.parameters(), lr=1e-4)
"""
    )
    assert message.startswith("the optimizer trains a float16 model")
