"""yacs configs in the precision model (`frameworks/yacs.py`) and Dassl's optimizer factory, as the
CoOp family of prompt learners writes them: the training script sets `cfg.TRAINER.COOP.PREC =
"fp16"` in `extend_cfg(cfg)`, Dassl builds the trainer from a registry, and the trainer reads
`self.cfg.TRAINER.COOP.PREC` where the analysis never saw the config handed over. CLIP's
`build_model` converts its weights to fp16, and the learned prompt is made in CLIP's dtype."""

from __future__ import annotations

from pathlib import Path

import pytest

from .casekit import check_files

TRAIN = """
import argparse

from dassl.config import get_cfg_default
from dassl.engine import build_trainer

import trainers.coop


def extend_cfg(cfg):
    from yacs.config import CfgNode as CN

    cfg.TRAINER.COOP = CN()
    cfg.TRAINER.COOP.N_CTX = 16  # number of context vectors
    cfg.TRAINER.COOP.PREC = {prec}  # fp16, fp32, amp


def main(args):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    trainer = build_trainer(cfg)
    trainer.train()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--config-file", type=str, default="")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER)
    main(parser.parse_args())
"""
# CLIP's own `build_model`, reduced: `convert_weights` makes its linear layers fp16.
CLIP = """
import torch
import torch.nn as nn


class CLIP(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_final = nn.LayerNorm(512)
        self.token_embedding = nn.Embedding(49408, 512)
        self.text_projection = nn.Linear(512, 512)

    @property
    def dtype(self):
        return self.text_projection.weight.dtype


def convert_weights(model: nn.Module):
    def _convert_weights_to_fp16(l):
        if isinstance(l, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            l.weight.data = l.weight.data.half()

    model.apply(_convert_weights_to_fp16)


def build_model():
    model = CLIP()
    convert_weights(model)
    return model.eval()
"""
COOP = """
import torch
import torch.nn as nn
from dassl.engine import TRAINER_REGISTRY, TrainerX
from dassl.optim import build_optimizer

from clip.model import build_model


class PromptLearner(nn.Module):
    def __init__(self, cfg, clip_model):
        super().__init__()
        n_ctx = cfg.TRAINER.COOP.N_CTX
        dtype = clip_model.dtype
        ctx_vectors = torch.empty(n_ctx, 512, dtype=dtype)
        nn.init.normal_(ctx_vectors, std=0.02)
        self.ctx = nn.Parameter(ctx_vectors)  # to be optimized


@TRAINER_REGISTRY.register()
class CoOp(TrainerX):
    def build_model(self):
        cfg = self.cfg
        clip_model = build_model()
        if cfg.TRAINER.COOP.PREC == "fp32" or cfg.TRAINER.COOP.PREC == "amp":
            # CLIP's default precision is fp16
            clip_model.float()
        self.prompt_learner = PromptLearner(cfg, clip_model)
        self.optim = build_optimizer(self.prompt_learner, cfg.OPTIM)  # MARK
"""
CONFIG = """
DATALOADER:
  TRAIN_X:
    BATCH_SIZE: 32
OPTIM:
  NAME: "sgd"
  LR: 0.002
TRAINER:
  COOP:
    N_CTX: 16
{prec_line}
"""


def repository(prec: str = '"fp16"', *, bug: bool, **changed: str) -> dict[str, str]:
    files = {
        "train.py": TRAIN.format(prec=prec),
        "clip/__init__.py": "",
        "clip/model.py": CLIP,
        "trainers/__init__.py": "",
        "trainers/coop.py": COOP.replace("# MARK", "# expect: MP003" if bug else ""),
        "configs/trainers/CoOp/rn50.yaml": CONFIG.format(prec_line=""),
        "scripts/coop/main.sh": "python train.py --config-file configs/trainers/CoOp/rn50.yaml\n",
    }
    files.update(changed)
    return files


@pytest.mark.parametrize(
    ("prec", "bug"),
    [
        pytest.param('"fp16"', True, id="the-default-fp16-keeps-clip-half"),
        pytest.param('"amp"', False, id="the-default-amp-casts-clip-back"),
        pytest.param('"fp32"', False, id="the-default-fp32-casts-clip-back"),
    ],
)
def test_a_yacs_default_the_trainer_reads_is_the_configuration(prec: str, bug: bool, tmp_path: Path) -> None:
    check_files(repository(prec, bug=bug), "MP003", tmp_path)


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(
            {"configs/trainers/CoOp/rn50.yaml": CONFIG.format(prec_line='    PREC: "amp"')},
            id="a-config-file-sets-another",
        ),
        pytest.param(
            {"scripts/coop/main.sh": "python train.py --config-file x.yaml TRAINER.COOP.PREC fp32\n"},
            id="a-command-line-sets-another",
        ),
        pytest.param(
            {"defaults.py": "from yacs.config import CfgNode\n_C = CfgNode()\n_C.TRAINER.COOP.PREC = 'amp'\n"},
            id="two-defaults-disagree",
        ),
        pytest.param(
            {"train.py": TRAIN.format(prec='"fp16"').replace("from yacs.config import CfgNode as CN", "CN = dict")},
            id="not-a-yacs-file",
        ),
    ],
)
def test_a_default_changed_elsewhere_is_not_known(changed: dict[str, str], tmp_path: Path) -> None:
    check_files(repository(bug=False, **changed), "MP003", tmp_path)


def test_a_config_file_that_keeps_the_default_changes_nothing(tmp_path: Path) -> None:
    files = repository(bug=True, **{"configs/trainers/CoOp/rn50.yaml": CONFIG.format(prec_line='    PREC: "fp16"')})
    check_files(files, "MP003", tmp_path)


def test_a_single_upper_case_key_is_no_default(tmp_path: Path) -> None:
    """`cfg.PREC = "fp16"` with `self.cfg.PREC` read: a path of one key names no config of its own."""
    files = repository(bug=False)
    files["train.py"] = files["train.py"].replace("cfg.TRAINER.COOP.PREC = ", "cfg.PREC = ")
    files["trainers/coop.py"] = files["trainers/coop.py"].replace("cfg.TRAINER.COOP.PREC", "cfg.PREC")
    check_files(files, "MP003", tmp_path)


@pytest.mark.parametrize(
    ("groups", "bug"),
    [
        pytest.param("", True, id="the-model-s-parameters"),
        pytest.param(", param_groups=None", True, id="no-groups"),
        pytest.param(", param_groups=[{'params': nn.Linear(2, 2).parameters()}]", False, id="fp32-groups-instead"),
        pytest.param(", [{'params': nn.Linear(2, 2).parameters()}]", False, id="fp32-groups-given-third"),
    ],
)
def test_dassl_builds_the_optimizer_over_the_parameter_groups_it_is_given(
    groups: str, bug: bool, tmp_path: Path
) -> None:
    """`build_optimizer(model, optim_cfg, param_groups=None)` optimizes the groups where given."""
    files = repository(bug=bug)
    files["trainers/coop.py"] = files["trainers/coop.py"].replace("cfg.OPTIM)", f"cfg.OPTIM{groups})")
    check_files(files, "MP003", tmp_path)


# PromptKD's layout: Dassl's sources shipped in the repository (`Dassl.pytorch/`, installed by the
# README); its `build_optimizer` reads `optim_cfg.NAME` from the YAML its trainer is given and builds
# one of several torch optimizers, which its table says in one word.
VENDORED_BUILD_OPTIMIZER = """
import torch


def build_optimizer(model, optim_cfg, param_groups=None):
    if param_groups is None:
        if optim_cfg.STAGED_LR:
            base_params, new_params = [], []
            for name, module in model.named_children():
                if name in optim_cfg.NEW_LAYERS:
                    new_params += [p for p in module.parameters()]
                else:
                    base_params += [p for p in module.parameters()]
            param_groups = [{"params": base_params, "lr": optim_cfg.LR * 0.1}, {"params": new_params}]
        else:
            param_groups = model.parameters()
    if optim_cfg.NAME == "adam":
        return torch.optim.Adam(param_groups, lr=optim_cfg.LR)
    return torch.optim.SGD(param_groups, lr=optim_cfg.LR)
"""


def test_a_vendored_dassl_keeps_the_meaning_of_its_optimizer_factory(tmp_path: Path) -> None:
    files = repository(bug=True)
    files.update(
        {
            "Dassl.pytorch/setup.py": "",
            "Dassl.pytorch/dassl/__init__.py": "",
            "Dassl.pytorch/dassl/optim/__init__.py": "from .optimizer import build_optimizer\n",
            "Dassl.pytorch/dassl/optim/optimizer.py": VENDORED_BUILD_OPTIMIZER,
            "README.md": "# CoOp\n",
        }
    )
    check_files(files, "MP003", tmp_path)


def test_a_default_python_refuses_to_read_is_skipped(tmp_path: Path) -> None:
    """A yacs file whose string default holds an escape Python refuses (`"C:\\N..."`) is read past."""
    files = repository(bug=True)
    files["defaults.py"] = 'from yacs.config import CfgNode\n_C = CfgNode()\n_C.DATA.ROOT = "C:\\Nvidia\\data"\n'
    check_files(files, "MP003", tmp_path)
