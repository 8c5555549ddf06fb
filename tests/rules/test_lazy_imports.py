"""Names a package exports without binding them at import: re-exports read through the package
(`import verifiers as vf; vf.GRPOTrainer`), imports under `if TYPE_CHECKING:`, and a module
`__getattr__(name)` that imports what a literal table names (verifiers/__init__.py's `_LAZY_IMPORTS`).
The trainer and the bf16 model then reach the loss as with direct imports."""

from __future__ import annotations

from pathlib import Path

import pytest

from .casekit import check_files

MODEL_UTILS = """
import torch
from transformers import AutoModelForCausalLM


def get_model(name, dtype=torch.bfloat16):
    return AutoModelForCausalLM.from_pretrained(name, torch_dtype=dtype)
"""

TRAINER = """
import torch


def selective_log_softmax(logits, index):
    logprobs = torch.log_softmax(logits, dim=-1)  # expect: MP001
    return torch.gather(logprobs, -1, index.unsqueeze(-1)).squeeze(-1)


class GRPOTrainer:
    def __init__(self, model, args=None):
        self.model = model

    def compute_loss(self, inputs):
        logits = self.model(inputs["input_ids"]).logits
        return -selective_log_softmax(logits[:, :-1], inputs["input_ids"][:, 1:]).mean()
"""

LAZY_TABLE = """
import importlib

_LAZY_IMPORTS = {
    "get_model": "verifiers.utils.model_utils:get_model",
    "GRPOTrainer": "verifiers.trainers:GRPOTrainer",
}


def __getattr__(name: str):
    try:
        module, attr = _LAZY_IMPORTS[name].split(":")
        return getattr(importlib.import_module(module), attr)
    except KeyError:
        raise AttributeError(f"module 'verifiers' has no attribute '{name}'")
"""

TYPE_CHECKING_IMPORTS = """
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .trainers import GRPOTrainer  # noqa: F401
    from .utils.model_utils import get_model  # noqa: F401
"""

SCRIPT = """
import verifiers as vf

model = vf.get_model("Qwen/Qwen2.5-1.5B-Instruct")
training_args = {"bf16": True, "per_device_train_batch_size": 8}
trainer = vf.GRPOTrainer(model=model, args=training_args)
trainer.compute_loss(batch)
"""

PACKAGE_INITS = [
    pytest.param(LAZY_TABLE + TYPE_CHECKING_IMPORTS, id="lazy-table-and-type-checking-imports"),
    pytest.param(LAZY_TABLE, id="lazy-table-alone"),
    pytest.param(TYPE_CHECKING_IMPORTS, id="type-checking-imports-alone"),
    pytest.param("from .trainers import GRPOTrainer\nfrom .utils.model_utils import get_model\n", id="re-exports"),
]


@pytest.mark.parametrize("package_init", PACKAGE_INITS)
def test_names_the_package_gives_on_access(tmp_path: Path, package_init: str) -> None:
    check_files(
        {
            "verifiers/__init__.py": package_init,
            "verifiers/utils/__init__.py": "",
            "verifiers/utils/model_utils.py": MODEL_UTILS,
            "verifiers/trainers/__init__.py": "from .grpo_trainer import GRPOTrainer\n",
            "verifiers/trainers/grpo_trainer.py": TRAINER,
            "examples/grpo/train_gsm8k.py": SCRIPT,
        },
        "MP001",
        tmp_path,
    )


# The table's value names a module alone (`"get_model": "verifiers.utils.model_utils"`): the
# attribute is the name looked up.
def test_a_table_of_modules(tmp_path: Path) -> None:
    check_files(
        {
            "verifiers/__init__.py": """
                import importlib

                _LAZY_MODULES = {"get_model": "verifiers.utils.model_utils", "GRPOTrainer": "verifiers.trainers"}

                def __getattr__(name):
                    return getattr(importlib.import_module(_LAZY_MODULES[name]), name)
            """,
            "verifiers/utils/__init__.py": "",
            "verifiers/utils/model_utils.py": MODEL_UTILS,
            "verifiers/trainers/__init__.py": "from .grpo_trainer import GRPOTrainer\n",
            "verifiers/trainers/grpo_trainer.py": TRAINER,
            "examples/grpo/train_gsm8k.py": SCRIPT,
        },
        "MP001",
        tmp_path,
    )


QUIET_TRAINER = TRAINER.replace("  # expect: MP001", "")

QUIET_PACKAGES = [
    # The table names an fp32 loader: the model is fp32, nothing to report.
    pytest.param(
        LAZY_TABLE.replace("model_utils:get_model", "model_utils:get_fp32_model"),
        MODEL_UTILS + "\n\ndef get_fp32_model(name):\n    return get_model(name, dtype=torch.float32)\n",
        id="table-names-an-fp32-loader",
    ),
    # A table built at import (names read from a registry): not literal, the names stay unknown.
    pytest.param(
        LAZY_TABLE.replace('"verifiers.utils.model_utils:get_model"', "registry.lookup('get_model')"),
        MODEL_UTILS,
        id="table-entry-not-literal",
    ),
    # A relative target is resolved against a package the getter chooses at run time: not read.
    pytest.param(
        LAZY_TABLE.replace('"verifiers.utils.model_utils:get_model"', '".utils.model_utils:get_model"'),
        MODEL_UTILS,
        id="relative-table-entry",
    ),
]


@pytest.mark.parametrize(("package_init", "model_utils"), QUIET_PACKAGES)
def test_a_lazy_name_the_table_does_not_give_stays_quiet(tmp_path: Path, package_init: str, model_utils: str) -> None:
    check_files(
        {
            "verifiers/__init__.py": package_init,
            "verifiers/utils/__init__.py": "",
            "verifiers/utils/model_utils.py": model_utils,
            "verifiers/trainers/__init__.py": "from .grpo_trainer import GRPOTrainer\n",
            "verifiers/trainers/grpo_trainer.py": QUIET_TRAINER,
            "examples/grpo/train_gsm8k.py": SCRIPT,
        },
        "MP001",
        tmp_path,
    )
