"""MP207 hard-coded-bf16-without-capability-check: a CUDA training script writes `torch.bfloat16`
with nothing checking that the GPU computes bf16 (a warning).

Reported once per script, at the first place. Torch facts (torch 2.13, checked in
tests/runtime/test_catalog_claims_mp108_mp207_mp306.py): `torch.cuda.is_bf16_supported` reads
`get_device_properties(device).major >= 8` (and emulates below it by default); CUDA autocast raises
"Current CUDA Device does not support bfloat16" where that check fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mplint.findings import Severity

from .casekit import bug, check, check_files, lint, ok

CODE = "MP207"

LOOP = """
        for x, y in loader:
            loss = model(x.cuda(), y.cuda())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
"""

CASES = [
    bug(
        "autocast-bf16-in-a-top-level-training-loop",
        """
        import torch

        model = GPT(config).cuda()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
        for x, y in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16):  # expect: MP207
                loss = model(x.cuda(), y.cuda())
            loss.backward()
            optimizer.step()
        """,
    ),
    bug(
        "from-pretrained-in-bf16-under-a-main-guard",
        """
        import torch
        from transformers import AutoModelForCausalLM

        def main():
            device = torch.device("cuda")
            name = "Qwen/Qwen2.5-0.5B"
            model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16).to(device)  # expect: MP207
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
            for batch in loader:
                model(**batch).loss.backward()
                optimizer.step()

        if __name__ == "__main__":
            main()
        """,
    ),
    bug(
        "model-cast-with-to-and-a-device-string",
        """
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Linear(512, 512)

            def forward(self, x):
                return self.body(x)

        model = Net().to("cuda:0").to(torch.bfloat16)  # expect: MP207
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        """
        + LOOP,
    ),
    bug(
        "cuda-amp-autocast-imported-by-name-in-a-trainer-method",
        """
        import torch
        from torch.cuda.amp import autocast

        class Trainer:
            def __init__(self, model):
                self.model = model.cuda()
                self.optimizer = torch.optim.AdamW(self.model.parameters())

            def step(self, batch):
                with autocast(dtype=torch.bfloat16):  # expect: MP207
                    loss = self.model(batch)
                loss.backward()
                self.optimizer.step()

        if __name__ == "__main__":
            trainer = Trainer(build_model())
            for batch in loader:
                trainer.step(batch)
        """,
    ),
    bug(
        "reported-once-at-the-first-place",
        """
        import torch

        model = torch.nn.Linear(64, 64).cuda().to(dtype=torch.bfloat16)  # expect: MP207
        critic = torch.nn.Linear(64, 1, dtype=torch.bfloat16).cuda()
        optimizer = torch.optim.AdamW([*model.parameters(), *critic.parameters()])
        """
        + LOOP,
    ),
    bug(
        "scaler-step-counts-as-the-optimizer-step",
        """
        import torch

        model = torch.nn.Linear(64, 64).cuda()
        optimizer = torch.optim.Adam(model.parameters())
        scaler = torch.amp.GradScaler("cuda")
        for x in loader:
            with torch.amp.autocast(device_type="cuda", dtype=torch.bfloat16):  # expect: MP207
                loss = model(x).sum()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    bug(
        "default-dtype-set-to-bf16",
        """
        import torch

        torch.set_default_dtype(torch.bfloat16)  # expect: MP207
        model = torch.nn.Linear(64, 64).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        """
        + LOOP,
    ),
    bug(
        "bfloat16-imported-from-torch",
        """
        import torch
        from torch import bfloat16

        model = torch.nn.Linear(64, 64).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        for x in loader:
            with torch.autocast("cuda", dtype=bfloat16):  # expect: MP207
                loss = model(x).sum()
            loss.backward()
            optimizer.step()
        """,
    ),
    ok(
        "checked-with-is-bf16-supported",
        """
        import torch

        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        model = torch.nn.Linear(64, 64).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        for x in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(x).sum()
            loss.backward()
            optimizer.step()
        """,
    ),
    ok(
        "checked-with-the-compute-capability-in-a-helper",
        """
        import torch

        def supports_bf16():
            major, _ = torch.cuda.get_device_capability()
            return major >= 8

        assert supports_bf16(), "this script needs an Ampere GPU"
        model = torch.nn.Linear(64, 64).cuda().to(torch.bfloat16)
        optimizer = torch.optim.AdamW(model.parameters())
        """
        + LOOP,
    ),
    ok(
        "dtype-from-an-option",
        """
        import argparse
        import torch

        parser = argparse.ArgumentParser()
        parser.add_argument("--bf16", action="store_true")
        args = parser.parse_args()
        dtype = torch.bfloat16 if args.bf16 else torch.float32
        model = torch.nn.Linear(64, 64).cuda().to(dtype)
        optimizer = torch.optim.AdamW(model.parameters())
        """
        + LOOP,
    ),
    ok(
        "dtype-is-a-parameter",
        """
        import torch

        def train(model, loader, dtype=torch.bfloat16):
            model = model.cuda()
            optimizer = torch.optim.AdamW(model.parameters())
            for x in loader:
                with torch.autocast("cuda", dtype=dtype):
                    loss = model(x).sum()
                loss.backward()
                optimizer.step()

        if __name__ == "__main__":
            train(build(), loader)
        """,
    ),
    ok(
        "inference-script",
        """
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16).cuda()
        with torch.no_grad():
            out = model.generate(input_ids.cuda(), max_new_tokens=32)
        """,
    ),
    ok(
        "cpu-autocast-beside-cuda-training",
        """
        import torch

        encoder = torch.nn.Linear(64, 64)  # frozen, on the data-loading side
        model = torch.nn.Linear(64, 64).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        for x in loader:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                features = encoder(x)
            loss = model(features.float().cuda()).sum()
            loss.backward()
            optimizer.step()
        """,
    ),
    ok(
        "library-module-without-an-entry-point",
        """
        import torch

        class Trainer:
            def __init__(self, model):
                self.model = model.cuda()
                self.optimizer = torch.optim.AdamW(self.model.parameters())

            def step(self, batch):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = self.model(batch)
                loss.backward()
                self.optimizer.step()
        """,
    ),
    ok(
        "autocast-switched-by-a-flag",
        """
        import torch

        use_amp = os.environ.get("AMP", "1") == "1"
        model = torch.nn.Linear(64, 64).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        for x in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                loss = model(x).sum()
            loss.backward()
            optimizer.step()
        """,
    ),
    ok(
        "tensors-stored-in-bf16-while-the-compute-dtype-is-an-option",
        """
        import torch

        amp_dtype = torch.bfloat16 if args.precision == "amp_bf16" else torch.float16
        probe = torch.nn.Linear(768, 1000).cuda()
        optimizer = torch.optim.AdamW(probe.parameters())
        cache = torch.empty(50_000, 768, dtype=torch.bfloat16, device="cuda")
        for index, x in loader:
            cache[index] = x.cuda().to(torch.bfloat16)
            with torch.autocast("cuda", dtype=amp_dtype):
                loss = probe(cache[index]).logsumexp(-1).mean()
            loss.backward()
            optimizer.step()
        """,
    ),
    ok(
        "flash-attention-2-needs-ampere-anyway",
        """
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(
            "Qwen/Qwen2-VL-2B-Instruct", torch_dtype=torch.bfloat16, attn_implementation="flash_attention_2"
        ).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        for batch in loader:
            model(**batch).loss.backward()
            optimizer.step()
        """,
    ),
    ok(
        "fp8-script-needs-a-newer-gpu-anyway",
        """
        import torch

        model = torch.nn.Linear(64, 64).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        for x in loader:
            x_f8 = x.to(torch.float8_e4m3fn)
            out = torch._scaled_mm(x_f8, w_f8, out_dtype=torch.bfloat16)
            out.sum().backward()
            optimizer.step()
        """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp207(source: str) -> None:
    check(source, CODE)


def test_a_test_file_is_quiet(tmp_path: Path) -> None:
    training = """
        import torch

        model = torch.nn.Linear(64, 64).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        for x in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16):{marker}
                loss = model(x).sum()
            loss.backward()
            optimizer.step()
    """
    check_files(
        {
            "tests/test_training.py": training.format(marker=""),
            "test_amp.py": training.format(marker=""),
            "scripts/train.py": training.format(marker="  # expect: MP207"),
        },
        CODE,
        tmp_path,
    )


def test_a_check_in_another_file_counts(tmp_path: Path) -> None:
    check_files(
        {
            "hardware.py": """
                import torch

                def require_bf16():
                    if not torch.cuda.is_bf16_supported():
                        raise SystemExit("bf16 needs an Ampere GPU")
            """,
            "train.py": """
                import torch
                from hardware import require_bf16

                require_bf16()
                model = torch.nn.Linear(64, 64).cuda().to(torch.bfloat16)
                optimizer = torch.optim.AdamW(model.parameters())
                for x in loader:
                    model(x).sum().backward()
                    optimizer.step()
            """,
        },
        CODE,
        tmp_path,
    )


def test_a_warning_that_counts_the_other_places() -> None:
    (finding,) = lint(
        """
        import torch
        model = torch.nn.Linear(8, 8).cuda().to(torch.bfloat16)
        head = torch.nn.Linear(8, 2, dtype=torch.bfloat16).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = head(model(x))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        optimizer.step()
        """,
        CODE,
    )
    assert finding.severity is Severity.WARNING
    assert finding.message.startswith("torch.bfloat16 hard-coded in a CUDA training script (and 2 more places)")
    assert "torch.cuda.is_bf16_supported()" in finding.message
