"""Lightning Fabric's `init_module()` (lightning 2.6.6, fabric/fabric.py `init_module`,
fabric/strategies/strategy.py `module_init_context`, fabric/plugins/precision/half.py
`module_init_context` -> `_DtypeContextManager`): under "16-true"/"bf16-true" the model built in
its body has half parameters, so an optimizer over them has no fp32 master copy; "*-mixed" builds
fp32, and DeepSpeed (fp32 masters) or an unknown strategy stays quiet."""

from __future__ import annotations

from pathlib import Path

import pytest

from .casekit import check, check_files

MODEL = """
    import torch.nn as nn


    class LLaMA(nn.Module):
        def __init__(self, config) -> None:
            super().__init__()
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
            self.wte = nn.Embedding(config.vocab_size, config.n_embd)

        def forward(self, idx):
            return self.lm_head(self.wte(idx))
"""

# A subclass through a module alias (`import lit_llama.model as llama`), as lit-llama's adapter.
ADAPTER = """
    import torch
    import torch.nn as nn

    import lit_llama.model as llama


    class LLaMA(llama.LLaMA):
        def __init__(self, config) -> None:
            super().__init__(config)
            self.adapter_wte = nn.Embedding(config.adapter_prompt_length, config.n_embd)
            self.gating_factor = nn.Parameter(torch.zeros(1))


    def mark_only_adapter_as_trainable(model) -> None:
        for name, param in model.named_parameters():
            param.requires_grad = "adapter_wte" in name or "gating_factor" in name
"""

FINETUNE = """
    import lightning as L
    import torch
    from lightning.fabric.strategies import DeepSpeedStrategy

    from lit_llama.adapter import LLaMA, mark_only_adapter_as_trainable

    devices = {devices}
    ds_config = {{"zero_optimization": {{"stage": 2}}}}


    def main(config, checkpoint):
        fabric = L.Fabric(
            accelerator="cuda",
            devices=devices,
            strategy=({strategy}),
            precision="{precision}",
        )
        fabric.launch()
        with fabric.init_module({empty}):
            model = LLaMA(config)
            model.load_state_dict(checkpoint, strict=False)
        mark_only_adapter_as_trainable(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=9e-3, weight_decay=0.02){expect}
        model, optimizer = fabric.setup(model, optimizer)
        train(fabric, model, optimizer)


    def train(fabric, model, optimizer):
        for batch in loader:
            loss = model(batch).sum()
            fabric.backward(loss)
            optimizer.step()


    if __name__ == "__main__":
        main()
"""


def finetune(strategy: str, precision: str, *, half: bool, empty: str = "", devices: int = 1) -> dict[str, str]:
    expect = "  # expect: MP003" if half else ""
    source = FINETUNE.format(strategy=strategy, precision=precision, empty=empty, expect=expect, devices=devices)
    return {"lit_llama/model.py": MODEL, "lit_llama/adapter.py": ADAPTER, "finetune/adapter.py": source}


CASES = [
    pytest.param(
        'DeepSpeedStrategy(config=ds_config) if devices > 1 else "auto"', "bf16-true", True, id="auto-default"
    ),
    pytest.param('"auto"', "16-true", True, id="fp16-true"),
    pytest.param('"ddp"', "bf16-true", True, id="ddp"),
    pytest.param('"auto"', "bf16-mixed", False, id="mixed-builds-fp32"),
    pytest.param("DeepSpeedStrategy(config=ds_config)", "bf16-true", False, id="deepspeed-masters"),
    pytest.param('"deepspeed_stage_2"', "bf16-true", False, id="deepspeed-by-name"),
    pytest.param("args.strategy", "bf16-true", False, id="unknown-strategy"),
    pytest.param('"auto"', "32-true", False, id="fp32"),
]


@pytest.mark.parametrize(("strategy", "precision", "half"), CASES)
def test_init_module_builds_in_the_true_precision(strategy: str, precision: str, half: bool, tmp_path: Path) -> None:
    check_files(finetune(strategy, precision, half=half), "MP003", tmp_path)


def test_empty_init_too(tmp_path: Path) -> None:
    check_files(finetune('"auto"', "bf16-true", half=True, empty="empty_init=True"), "MP003", tmp_path)


def test_deepspeed_chosen_by_the_device_count(tmp_path: Path) -> None:
    strategy = 'DeepSpeedStrategy(config=ds_config) if devices > 1 else "auto"'
    check_files(finetune(strategy, "bf16-true", half=False, devices=8), "MP003", tmp_path)


def test_fabric_imported_from_lightning_fabric() -> None:
    check(
        """
        import torch
        from lightning.fabric import Fabric

        fabric = Fabric(devices=1, precision="bf16-true")
        fabric.launch()
        with fabric.init_module(empty_init=True):
            model = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(512, 8), 6)
        head = torch.nn.Linear(512, 10)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)  # expect: MP003
        probe = torch.optim.SGD(head.parameters(), lr=0.1)
        """,
        "MP003",
    )


def test_fabric_device_alone_keeps_fp32() -> None:
    check(
        """
        import lightning as L
        import torch

        fabric = L.Fabric(precision="bf16-mixed", strategy="fsdp")
        with fabric.device:
            model = torch.nn.Linear(512, 512)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        model, optimizer = fabric.setup(model, optimizer)
        """,
        "MP003",
    )


def test_deepspeed_setup_keeps_fp32_masters_after_a_true_conversion() -> None:
    check(
        """
        import lightning as L
        import torch

        fabric = L.Fabric(precision="bf16-true", strategy="deepspeed")
        model = torch.nn.Linear(512, 512)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        model, optimizer = fabric.setup(model, optimizer)
        for batch in loader:
            fabric.backward(model(batch).sum())
            optimizer.step()
        """,
        "MP003",
    )


def test_fp32_true_plain_fabric_returns_the_module_own_outputs() -> None:
    # "32-true" on one device: the base precision plugin's `convert_output` is the identity, so a
    # model the script casts to bf16 itself still returns bf16 logits.
    check(
        """
        import lightning as L
        import torch
        import torch.nn.functional as F

        class LM(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.head = torch.nn.Linear(512, 32000)

            def forward(self, x):
                return self.head(x)

        fabric = L.Fabric(devices=1)
        model = LM().to(torch.bfloat16)
        model = fabric.setup_module(model)
        for batch in loader:
            logits = model(batch["input_ids"])
            logp = F.log_softmax(logits, dim=-1)  # expect: MP001
            loss = -logp.gather(-1, batch["labels"].unsqueeze(-1)).mean()
        """,
        "MP001",
    )


def test_mixed_fabric_outputs_are_fp32() -> None:
    check(
        """
        import lightning as L
        import torch
        import torch.nn.functional as F

        fabric = L.Fabric(devices=1, precision="bf16-mixed")
        model = MyLM().to(torch.bfloat16)
        model = fabric.setup_module(model)
        for batch in loader:
            logits = model(batch["input_ids"])
            logp = F.log_softmax(logits, dim=-1)
            loss = -logp.gather(-1, batch["labels"].unsqueeze(-1)).mean()
        """,
        "MP001",
    )
