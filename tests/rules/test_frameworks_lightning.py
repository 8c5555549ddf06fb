"""Lightning's Trainer and Fabric in the precision model (lightning 2.6.6, fabric/plugins/precision/
{precision,amp,half}.py, pytorch/strategies/strategy.py, fabric/wrappers.py): "*-mixed" is autocast
(and a scaler for 16) over fp32 weights, "*-true" converts the module to half before
`configure_optimizers` runs; a Fabric module returns fp32 outputs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mplint.api import lint_paths

from .casekit import check, check_files, line_of

MODULE = """
    import torch
    import torch.nn.functional as F
    import lightning as L

    class LitLM(L.LightningModule):
        def __init__(self, vocab=32000, dim=512):
            super().__init__()
            self.embed = torch.nn.Embedding(vocab, dim)
            self.head = torch.nn.Linear(dim, vocab)

        def forward(self, tokens):
            return self.head(self.embed(tokens))

        def training_step(self, batch, batch_idx):
            logits = self(batch["input_ids"])
            return F.nll_loss(F.log_softmax(logits, dim=-1).flatten(0, 1), batch["labels"].flatten()){logps_expect}

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=3e-4){opt_expect}

    trainer = L.Trainer({trainer_args})
    trainer.fit(LitLM(), train_dataloaders=loader)
"""


def lit(trainer_args: str, *, half: bool = False) -> str:
    return MODULE.format(
        trainer_args=trainer_args,
        logps_expect="  # expect: MP001" if half else "",
        opt_expect="  # expect: MP003" if half else "",
    )


SETTINGS = [
    pytest.param(lit('precision="bf16-mixed", max_epochs=1'), id="bf16-mixed"),
    pytest.param(lit("precision=16"), id="16-is-16-mixed"),
    pytest.param(lit('precision="bf16"'), id="bf16-is-bf16-mixed"),
    pytest.param(lit("max_epochs=3"), id="32-true-by-default"),
    pytest.param(lit("precision=args.precision"), id="unknown-setting"),
    pytest.param(lit('precision="bf16-true"', half=True), id="bf16-true-half-weights"),
    pytest.param(lit('precision="16-true", devices=1', half=True), id="16-true-half-weights"),
]


@pytest.mark.parametrize("source", SETTINGS)
def test_true_precision_makes_the_module_half(source: str) -> None:
    check(source, "MP003")
    check(source, "MP001")


# maestro's shape (qwen_2_5_vl/core.py): the model loaded in bf16 by the training function, handed to
# the LightningModule, and a Trainer keeping the default "32-true", which converts nothing: the plain
# AdamW `configure_optimizers` builds steps the bf16 weights. Lightning's other settings leave a
# bf16-loaded model bf16 too ("*-mixed" autocasts, "*-true" converts to half), but only a fit under
# "32-true" (or a half "*-true") is followed into the module's methods.
HALF_MODULE = """
    import torch
    import lightning as L
    from transformers import AutoModelForCausalLM

    class LitLM(L.LightningModule):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def training_step(self, batch, batch_idx):
            return self.model(**batch).loss

        def configure_optimizers(self):
            return torch.optim.AdamW(self.model.parameters(), lr=2e-6){expect}

    def train(name="Qwen/Qwen2.5-VL-3B-Instruct"):
        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype={dtype})
        L.Trainer({trainer_args}).fit(LitLM(model), train_dataloaders=loader)

    train()
"""


@pytest.mark.parametrize(
    ("dtype", "trainer_args", "expect"),
    [
        pytest.param("torch.bfloat16", "max_epochs=1", "  # expect: MP003", id="bf16-model-32-true-by-default"),
        pytest.param("torch.bfloat16", 'precision="32-true"', "  # expect: MP003", id="bf16-model-32-true-given"),
        pytest.param("torch.float32", "max_epochs=1", "", id="fp32-model"),
        pytest.param("torch.bfloat16", "precision=cfg.precision", "", id="unknown-setting-not-followed"),
    ],
)
def test_a_model_loaded_half_trains_half_under_32_true(dtype: str, trainer_args: str, expect: str) -> None:
    check(HALF_MODULE.format(dtype=dtype, trainer_args=trainer_args, expect=expect), "MP003")


FABRIC = """
    import torch
    import torch.nn.functional as F
    from lightning.fabric import Fabric

    fabric = Fabric(accelerator="cuda", {fabric_args})
    fabric.launch()
    model = torch.nn.Sequential(torch.nn.Embedding(1000, 64), torch.nn.Linear(64, 1000))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1){late_expect}
    model, optimizer = fabric.setup(model, optimizer)
    for batch in loader:
        logits = model(batch)
        loss = F.cross_entropy(logits, batch)
        with torch.autocast("cuda", dtype=torch.float16):{scaler_expect}
            aux = model(batch).float().pow(2).mean()
        fabric.backward(loss + aux)
        optimizer.step()
"""


def fabric(args: str, *, late: bool = False, unscaled: bool = False) -> str:
    return FABRIC.format(
        fabric_args=args,
        late_expect="  # expect: MP003" if late else "",
        scaler_expect="  # expect: MP002" if unscaled else "",
    )


@pytest.mark.parametrize(
    ("source", "code"),
    [
        pytest.param(fabric('precision="bf16-true"', late=True), "MP003", id="true-converts-in-place"),
        pytest.param(fabric('precision="bf16-mixed"'), "MP003", id="mixed-keeps-fp32"),
        pytest.param(fabric('precision="16-mixed"'), "MP002", id="16-mixed-scales"),
        pytest.param(fabric('precision="32-true"', unscaled=True), "MP002", id="32-true-backward-unscaled"),
        pytest.param(fabric("precision=cfg.precision"), "MP002", id="unknown-may-scale"),
        pytest.param(fabric('precision="bf16-true"'), "MP001", id="fabric-outputs-fp32"),
    ],
)
def test_fabric(source: str, code: str) -> None:
    check(source, code)


# litgpt's tutorials/examples/ptl-trainer/litgpt_ptl_small.py: the GPT is built in the `setup` hook
# (an `LLM` wrapper's `trainer_setup`), which Lightning runs before the strategy converts the module.
MODEL_BUILT_IN_A_HOOK = """
    import lightning as L
    import torch
    import torch.nn as nn


    class GPT(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)


    class LLM(nn.Module):
        def __init__(self, model, config):
            super().__init__()
            self.model = model
            self.config = config

        @classmethod
        def load(cls, checkpoint_dir, config, distribute="auto"):
            model = GPT(config) if distribute == "auto" else None
            return cls(model=model, config=config)

        def trainer_setup(self, trainer_ckpt=None):
            self.model = GPT(self.config)


    class LitLLM(L.LightningModule):
        def __init__(self, checkpoint_dir, config):
            super().__init__()
            self.llm = LLM.load(checkpoint_dir, config, distribute=None)

        def {hook}(self{stage}):
            self.llm.trainer_setup()

        def configure_optimizers(self):
            optimizer = torch.optim.AdamW(self.llm.model.parameters(), lr=0.0002, weight_decay=0.0){expect}
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: step / 10)
            return [optimizer], [scheduler]


    lit_model = LitLLM(checkpoint_dir="pythia-160m", config=config)
    trainer = L.Trainer(devices=1, accelerator="cuda", max_epochs=1, precision="{precision}")
    trainer.fit(lit_model, data)
"""


@pytest.mark.parametrize(
    ("hook", "precision", "half"),
    [
        pytest.param("setup", "bf16-true", True, id="setup-hook-then-converted"),
        pytest.param("configure_model", "16-true", True, id="configure-model-hook-then-converted"),
        pytest.param("setup", "bf16-mixed", False, id="setup-hook-under-mixed-keeps-fp32"),
        pytest.param("on_train_start", "bf16-true", False, id="a-later-hook-builds-after-configure-optimizers"),
    ],
)
def test_model_built_in_a_hook_is_converted(hook: str, precision: str, half: bool) -> None:
    stage = ", stage" if hook == "setup" else ""
    expect = "  # expect: MP003" if half else ""
    check(MODEL_BUILT_IN_A_HOOK.format(hook=hook, stage=stage, precision=precision, expect=expect), "MP003")


# litgpt's finetune/lora.py: `setup` builds the Fabric from its `precision` parameter and hands its
# training function to `fabric.launch`, which runs it with the Fabric first.
LAUNCHED_MAIN = """
    import lightning as L
    import torch

    from models import GPT


    def setup(precision: str = "{precision}", devices: int = 1) -> None:
        fabric = L.Fabric(devices=devices, precision=precision)
        fabric.launch(main, devices, lr=3e-4)


    def main(fabric: L.Fabric, devices: int, lr: float) -> None:
        with fabric.init_module():
            model = GPT()
        model = fabric.setup_module(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr){expect}
        optimizer = fabric.setup_optimizers(optimizer)
"""
GPT_MODULE = """
    import torch


    class GPT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(512, 32000)
"""


@pytest.mark.parametrize(("precision", "half"), [("bf16-true", True), ("bf16-mixed", False), ("16-true", True)])
def test_a_launched_function_runs_with_the_fabric(precision: str, half: bool, tmp_path: Path) -> None:
    train = LAUNCHED_MAIN.format(precision=precision, expect="  # expect: MP003" if half else "")
    check_files({"finetune.py": train, "models.py": GPT_MODULE}, "MP003", tmp_path)


# TAID (SakanaAI/TAID): the LightningModule loads its student in bf16 in `configure_model` and builds a
# plain AdamW in `configure_optimizers`; `train.py` fits it with `DeepSpeedStrategy` (lightning's
# `pytorch/strategies/deepspeed.py` hands that optimizer to `deepspeed.initialize`, whose ZeRO optimizer
# steps fp32 master partitions). The module's file, judged alone, cannot see the Trainer.
KD_MODULE = """
    import torch
    import lightning as L
    from transformers import AutoModelForCausalLM


    class KDForLM(L.LightningModule):
        def __init__(self, args):
            super().__init__()
            self.args = args

        def configure_model(self):
            self.student_model = AutoModelForCausalLM.from_pretrained(
                self.args.student_model, torch_dtype=torch.bfloat16
            )

        def training_step(self, batch, batch_idx):
            return self.student_model(**batch).loss

        def configure_optimizers(self):
            params = [p for p in self.student_model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=self.args.lr){expect}
            return {returned}
"""
KD_TRAIN = """
    import lightning as L
    from lightning.pytorch.strategies import DeepSpeedStrategy
    from src.model import KDForLM
    from src.arguments import parse_args

    if __name__ == "__main__":
        args = parse_args()
        model = KDForLM(args)
        trainer = L.Trainer(devices="0,1", precision="bf16-mixed", {strategy})
        trainer.fit(model)
"""


@pytest.mark.parametrize(
    ("strategy", "half"),
    [
        pytest.param("strategy=DeepSpeedStrategy(stage=2, allgather_bucket_size=5e8)", False, id="deepspeed-object"),
        pytest.param('strategy="deepspeed_stage_2"', False, id="deepspeed-name"),
        pytest.param('strategy="ddp"', True, id="ddp-steps-the-bf16-student"),
        pytest.param("strategy=make_strategy(args)", True, id="an-unknown-strategy-refutes-nothing"),
    ],
)
@pytest.mark.parametrize(
    "returned",
    [
        pytest.param("optimizer", id="returns-optimizer"),
        pytest.param('{"optimizer": optimizer, "lr_scheduler": None}', id="returns-dict"),
        pytest.param("[optimizer], []", id="returns-lists"),
    ],
)
def test_a_deepspeed_trainer_in_another_file_steps_fp32_masters(
    strategy: str, half: bool, returned: str, tmp_path: Path
) -> None:
    module = KD_MODULE.format(expect="  # expect: MP003" if half else "", returned=returned)
    check_files({"src/model.py": module, "train.py": KD_TRAIN.format(strategy=strategy)}, "MP003", tmp_path)


def test_a_deepspeed_trainer_refutes_the_module_file_named_alone(tmp_path: Path) -> None:
    """A pre-commit hook names the edited module file only: the script that imports it still counts."""
    module = KD_MODULE.format(expect="", returned="optimizer")
    train = KD_TRAIN.format(strategy='strategy="deepspeed_stage_3"')
    check_files({"src/model.py": module, "train.py": train}, "MP003", tmp_path)
    (tmp_path / ".git").mkdir()
    assert lint_paths([tmp_path / "src" / "model.py"], select=["MP003"]).findings == ()
    (tmp_path / "train.py").write_text(textwrap.dedent(KD_TRAIN.format(strategy='strategy="ddp"')), encoding="utf-8")
    reported = lint_paths([tmp_path / "src" / "model.py"], select=["MP003"]).findings
    assert [finding.line for finding in reported] == [line_of(textwrap.dedent(module), "torch.optim.AdamW")]
