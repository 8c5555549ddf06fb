"""MP202 autocast-device-from-str: autocast's `device_type` given a device string rather than a
device type. Reported at the argument. `str(torch.device("cuda", 0))` is "cuda:0"; `x.type()` is
a tensor type name ("torch.cuda.FloatTensor"); `device.type` is what autocast takes.
"""

from __future__ import annotations

import pytest

from .casekit import bug, check, lint, ok

CODE = "MP202"

CASES = [
    bug(
        "str-of-ddp-device",
        """
        import torch

        local_rank = int(os.environ["LOCAL_RANK"])
        device = torch.device(f"cuda:{local_rank}")
        with torch.autocast(device_type=str(device), dtype=torch.bfloat16):  # expect: MP202
            loss = model(batch.to(device)).loss
    """,
    ),
    bug(
        "literal-with-index",
        """
        import torch

        with torch.autocast("cuda:0", dtype=torch.float16):  # expect: MP202
            out = model(x)
    """,
    ),
    bug(
        "fstring-with-rank",
        """
        import torch

        with torch.amp.autocast(f"cuda:{rank}", dtype=torch.bfloat16):  # expect: MP202
            loss = criterion(model(x), y)
    """,
    ),
    bug(
        "tensor-type-string",
        """
        import torch

        def forward_loss(model, images, labels):
            with torch.autocast(images.type(), dtype=torch.float16):  # expect: MP202
                return F.cross_entropy(model(images), labels)
    """,
    ),
    bug(
        "indexed-device-held-in-a-variable",
        """
        import torch

        device_name = "cuda:1"
        model = Net().to(device_name)
        with torch.autocast(device_name, dtype=torch.bfloat16):  # expect: MP202
            y = model(x)
    """,
    ),
    bug(
        "str-of-tensor-device-as-decorator",
        """
        import torch

        class Encoder(torch.nn.Module):
            @torch.autocast(device_type=str(torch.device("cuda", 0)))  # expect: MP202
            def forward(self, x):
                return self.layers(x)
    """,
    ),
    bug(
        "fstring-of-device-object",
        """
        import torch

        autocast_ctx = torch.autocast(device_type=f"{args.device}", dtype=torch.float16)  # expect: MP202
        with autocast_ctx:
            loss = model(x).mean()
    """,
    ),
    bug(
        "fstring-of-a-device-name",
        """
        import torch

        device = torch.device("cuda", local_rank)
        with torch.autocast(f"{device}", dtype=torch.bfloat16):  # expect: MP202
            loss = model(x).mean()
    """,
    ),
    ok(
        "device-type-from-a-helper",
        """
        import torch

        def autocast_device_type():
            return "cuda" if torch.cuda.is_available() else "cpu"

        with torch.autocast(autocast_device_type(), dtype=torch.bfloat16):
            loss = model(x).mean()
    """,
    ),
    # DeepSpeed's accelerator abstraction: a method that returns the device type ("cuda", "xpu").
    ok(
        "deepspeed-accelerator-device-name",
        """
        import torch
        from deepspeed.accelerator import get_accelerator

        def forward_step(engine, batch):
            with torch.autocast(device_type=get_accelerator().device_name(), dtype=torch.bfloat16):
                return engine(batch["input_ids"]).loss
    """,
    ),
    ok(
        "device-type-attribute",
        """
        import torch

        device = torch.device(f"cuda:{local_rank}")
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            loss = model(x).mean()
    """,
    ),
    ok(
        "tensor-device-type",
        """
        import torch

        def mixed_forward(model, x):
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                return model(x)
    """,
    ),
    ok(
        "plain-literals",
        """
        import torch

        with torch.autocast("cuda", dtype=torch.float16):
            a = model(x)
        with torch.autocast(device_type="cpu"):
            b = model(x.cpu())
    """,
    ),
    ok(
        "device-type-chosen-by-condition",
        """
        import torch

        device_type = "cuda" if torch.cuda.is_available() else "cpu"
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            loss = model(x).mean()
    """,
    ),
    ok(
        "fstring-of-device-type",
        """
        import torch

        with torch.autocast(f"{device.type}", dtype=torch.bfloat16):
            loss = model(x).mean()
    """,
    ),
    ok(
        "fstring-left-without-placeholders",
        """
        import torch

        with torch.autocast(f"cuda", dtype=torch.bfloat16):
            loss = model(x).mean()
    """,
    ),
    ok(
        "indexed-device-only-moves-tensors",
        """
        import torch

        device = "cuda:0"
        model = model.to(device)
        with torch.cuda.amp.autocast():
            out = model(x.to(device))
    """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp202(source: str) -> None:
    check(source, CODE)


@pytest.mark.parametrize(
    ("given", "what"),
    [
        ("str(device)", '`str(...)` of a device ("cuda:0" once the device has an index)'),
        ("images.type()", 'a tensor type name (`x.type()` is "torch.cuda.FloatTensor")'),
        ('f"cuda:{rank}"', "an f-string that formats a device or an index"),
        ('"cuda:0"', "'cuda:0', a device with an index"),
    ],
)
def test_the_message_says_what_the_device_type_got(given: str, what: str) -> None:
    (finding,) = lint(
        f"""
        import torch
        with torch.autocast({given}, dtype=torch.float16):
            loss = model(images).mean()
        """,
        CODE,
    )
    assert finding.line == 3
    assert finding.message == (
        f"autocast's device_type gets {what}; it takes a device type without an index: pass `device.type`"
    )
