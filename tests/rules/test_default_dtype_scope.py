"""torch's default dtype is process-global: what a training script sets (`torch.set_default_dtype`,
directly, through a helper of another file, or a `@contextmanager` helper around a `with` body)
applies to the model classes it constructs, wherever they are defined; another script of the
same run, and the class's own file analysed alone, keep fp32."""

from __future__ import annotations

from pathlib import Path

from .casekit import check_files, line_of, lint

MODEL = """
    import torch
    import torch.nn as nn


    class Block(nn.Module):
        def __init__(self, config) -> None:
            super().__init__()
            self.attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
            self.mlp = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)


    class LLaMA(nn.Module):
        def __init__(self, config) -> None:
            super().__init__()
            self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
            self.transformer = nn.ModuleDict(
                dict(
                    wte=nn.Embedding(config.padded_vocab_size, config.n_embd),
                    h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
                )
            )

        def forward(self, idx):
            x = self.transformer.wte(idx)
            for block in self.transformer.h:
                x = block(x)
            return self.lm_head(x)


    def build(config):
        model = LLaMA(config)
        return model, torch.optim.AdamW(model.parameters(), lr=3e-4)
"""

PRETRAIN = """
    import lightning as L
    import torch

    from lit_llama.model import LLaMA, LLaMAConfig


    def main(devices: int = 4) -> None:
        fabric = L.Fabric(accelerator="cuda", devices=devices, precision="bf16-mixed")
        fabric.launch()
        config = LLaMAConfig.from_name("7B")
        with fabric.device:
            torch.set_default_dtype(torch.bfloat16)
            model = LLaMA(config)
            model.apply(model._init_weights)
            torch.set_default_dtype(torch.float32)
        optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, foreach=False)  # expect: MP003
        model, optimizer = fabric.setup(model, optimizer)


    if __name__ == "__main__":
        main()
"""

# Another script of the same run, and the default restored before the model is built.
FP32_SCRIPT = """
    import torch

    from lit_llama.model import LLaMA


    def main(config):
        model = LLaMA(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4)
"""

RESTORED_FIRST = """
    import torch

    from lit_llama.model import LLaMA


    def main(config):
        saved = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        probe = torch.zeros(4)
        torch.set_default_dtype(saved)
        model = LLaMA(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4)
"""

DTYPE_HELPERS = """
    import contextlib

    import torch


    @contextlib.contextmanager
    def default_dtype(dtype):
        saved = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            yield
        finally:
            torch.set_default_dtype(saved)


    def use_half_weights(args):
        torch.set_default_dtype(torch.bfloat16 if args.bf16 else torch.float32)
"""

WITH_HELPER = """
    import argparse

    import torch
    from torch import nn

    from lit_llama.model import LLaMA
    from lit_llama.utils import default_dtype

    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=3e-4)
    args = parser.parse_args()

    with default_dtype(torch.bfloat16):
        model = LLaMA(config)
    head = nn.Linear(512, 10)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)  # expect: MP003
    probe = torch.optim.SGD(head.parameters(), lr=args.lr)
"""

# The default read back with `torch.get_default_dtype()` while it is bf16.
READ_BACK = """
    import torch

    from lit_llama.model import Block


    def main(config):
        torch.set_default_dtype(torch.bfloat16)
        dtype = torch.get_default_dtype()
        torch.set_default_dtype(torch.float32)
        block = Block(config).to(dtype=dtype)
        optimizer = torch.optim.AdamW(block.parameters(), lr=1e-4)  # expect: MP003
"""

# A helper of another file sets it from a flag whose default is not known to be bf16: unknown.
FLAG_HELPER = """
    import torch

    from lit_llama.model import LLaMA
    from lit_llama.utils import use_half_weights


    def main(args, config):
        use_half_weights(args)
        model = LLaMA(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4)
"""


def test_default_dtype_set_by_the_script_makes_a_model_of_another_file_half(tmp_path: Path) -> None:
    files = {"lit_llama/model.py": MODEL, "pretrain/redpajama.py": PRETRAIN, "pretrain/fp32.py": FP32_SCRIPT}
    check_files(files, "MP003", tmp_path)


def test_default_restored_before_construction_stays_fp32(tmp_path: Path) -> None:
    check_files({"lit_llama/model.py": MODEL, "train.py": RESTORED_FIRST}, "MP003", tmp_path)


def test_context_manager_helper_sets_the_default_for_its_body(tmp_path: Path) -> None:
    files = {"lit_llama/model.py": MODEL, "lit_llama/utils.py": DTYPE_HELPERS, "train.py": WITH_HELPER}
    check_files(files, "MP003", tmp_path)


def test_get_default_dtype_reads_the_default_in_effect(tmp_path: Path) -> None:
    check_files({"lit_llama/model.py": MODEL, "train.py": READ_BACK}, "MP003", tmp_path)


def test_helper_setting_an_unknown_default_stays_quiet(tmp_path: Path) -> None:
    files = {"lit_llama/model.py": MODEL, "lit_llama/utils.py": DTYPE_HELPERS, "train.py": FLAG_HELPER}
    check_files(files, "MP003", tmp_path)


# The same helper called twice with the same arguments: its summary replays the default it sets.
TWICE = """
    import torch

    from lit_llama.model import Block


    def half_defaults():
        torch.set_default_dtype(torch.bfloat16)


    def fp32_defaults():
        torch.set_default_dtype(torch.float32)


    def main(config):
        half_defaults()
        first = Block(config)
        fp32_defaults()
        half_defaults()
        second = Block(config)
        fp32_defaults()
        third = Block(config)
        a = torch.optim.AdamW(first.parameters(), lr=1e-4)  # expect: MP003
        b = torch.optim.AdamW(second.parameters(), lr=1e-4)  # expect: MP003
        c = torch.optim.AdamW(third.parameters(), lr=1e-4)
"""


def test_a_helper_that_sets_the_default_sets_it_at_every_call(tmp_path: Path) -> None:
    check_files({"lit_llama/model.py": MODEL, "train.py": TWICE}, "MP003", tmp_path)


# The default dtype is where the model's precision comes from: the message names where it was set.
SET_IN_THE_SCRIPT = """
    import torch
    import torch.nn.functional as F

    torch.set_default_dtype(torch.bfloat16)
    lm_head = torch.nn.Linear(512, 32000).cuda()
    logps = F.log_softmax(lm_head(hidden), dim=-1)
"""


def test_the_message_names_where_the_default_was_set() -> None:
    [finding] = lint(SET_IN_THE_SCRIPT, "MP001")
    assert f"default dtype set at train.py:{line_of(SET_IN_THE_SCRIPT, 'set_default_dtype')}" in finding.message
