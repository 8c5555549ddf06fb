"""The options a repository's launch commands give a script (mplint/analysis/launch_options.py): how
a command's words are read (`scripts/train.sh`, a README's `$ python train.py --fp16`), which files
are read to tell (a cached run's dependencies), how a `--config` recipe is read, which commands are
configurations of their own and how each is named, and which scripts the prefilter must analyse
because their precision comes from outside their code. The end-to-end cases (a rule's finding on a
linted repository) are in tests/rules/test_launch_options.py; these pin the facts beneath them."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from mplint.analysis.launch_options import (
    LaunchOptions,
    options_of,
)
from tests.rules.casekit import check_files

# A plain argparse script: `--bf16` loads the policy in bf16, and AdamW then steps bf16 weights.
ARGPARSE_TRAIN = """
    import argparse

    import torch
    from transformers import AutoModelForCausalLM


    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--bf16", action="store_true")
        parser.add_argument("--lr", type=float, default=1e-5)
        args = parser.parse_args()
        dtype = torch.bfloat16 if args.bf16 else torch.float32
        policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=dtype)
        optimizer = torch.optim.AdamW(policy.parameters(), lr=args.lr)  # expect: MP003


    if __name__ == "__main__":
        main()
"""


def write(root: Path, files: Mapping[str, str]) -> None:
    """The repository `files` (relative path -> text) laid out under `root`."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text), encoding="utf-8")


def launched(root: Path, files: Mapping[str, str], script: str = "train.py") -> LaunchOptions:
    """What the launch commands among `files` give `script`, the repository laid out under `root`."""
    write(root, {script: "print('train')\n", **files})
    return options_of(str(root / script), str(root))


# How the words of one command are read.


@pytest.mark.parametrize(
    "command",
    [
        "nohup python train.py --lr 2e-6 --bf16 > logs/train.log 2>&1 &",
        "torchrun --nproc_per_node 8 train.py --lr 2e-6 --bf16 2>&1 | tee logs/train.log",
        "deepspeed train.py --lr 2e-6 --bf16 | tee logs/train.log",
        "python train.py --lr 2e-6 --bf16 && python eval.py --bf16 false",
        "python train.py --lr 2e-6 --bf16 >> logs/train.log",
    ],
)
def test_a_flag_before_a_redirection_or_a_pipe_is_given_alone(command: str, tmp_path: Path) -> None:
    """`--bf16 > train.log` gives `--bf16` alone: the redirection, the pipe, the next command end the
    options and are no flag's value (a flag read as `">"` is no boolean, and the default stood)."""
    found = launched(tmp_path, {"scripts/train.sh": f"#!/bin/bash\n{command}\n"})
    assert found.options == {"lr": "2e-6", "bf16": True}


def test_a_flag_before_a_redirection_configures_the_script(tmp_path: Path) -> None:
    """The bug the case above pins, end to end: `nohup python train.py --bf16 > train.log` runs the
    script in bf16, and AdamW over its bf16 weights is reported."""
    files = {
        "train.py": ARGPARSE_TRAIN,
        "scripts/train.sh": "#!/bin/bash\nnohup python train.py --lr 2e-6 --bf16 > logs/train.log 2>&1 &\n",
    }
    check_files(files, "MP003", tmp_path)
