"""DeepSpeed in the precision model: `deepspeed.initialize` returns an engine that casts the model to
the config's dtype (fp16 -> `.half()`, bf16 -> `.bfloat16()`, else unchanged: deepspeed 0.18.3,
runtime/engine.py `_configure_distributed_model`), scales fp16 losses in `engine.backward`, and
wraps a client optimizer in one that keeps fp32 master weights when fp16/bf16 is on.

Cases are shaped after simple_GRPO (grpo_vllm_one.py: a dict config, a global engine read by a
helper), nano-aha-moment (`policy_model, *_ = deepspeed.initialize(...)`, log-probs in another file)
and DeepSpeedExamples (a JSON config file beside the script)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from mplint.api import lint_paths

from .casekit import bug, check, check_files, lint, ok

ENGINE_OUTPUTS = [
    bug(
        "dict-config-bf16-global-engine-read-by-a-helper",
        """
        import deepspeed
        import torch
        from transformers import AutoModelForCausalLM

        ds_config = {
            "train_micro_batch_size_per_gpu": 8,
            "optimizer": {"type": "AdamW", "params": {"lr": 1e-6}},
            "bf16": {"enabled": True},
            "zero_optimization": {"stage": 2},
        }

        def get_per_token_logps(logits, input_ids):
            per_token_logps = []
            for logits_row, input_ids_row in zip(logits, input_ids):
                log_probs = logits_row.log_softmax(dim=-1)  # expect: MP001
                per_token_logps.append(torch.gather(log_probs, 1, input_ids_row.unsqueeze(1)).squeeze(1))
            return torch.stack(per_token_logps)

        def grpo_step(batch):
            inputs = batch["inputs"].to(engine.device)
            logits = engine(inputs).logits
            logits = logits[:, :-1, :]
            return get_per_token_logps(logits, inputs[:, 1:]).mean()

        if __name__ == "__main__":
            deepspeed.init_distributed()
            model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-7B", torch_dtype=torch.bfloat16)
            engine, optimizer, _, _ = deepspeed.initialize(config=ds_config, model=model, model_parameters=model.parameters())
            for batch in loader:
                loss = grpo_step(batch)
                engine.backward(loss)
                engine.step()
        """,
    ),
    bug(
        "fp32-model-made-bf16-by-the-engine",
        """
        import deepspeed
        import torch
        import torch.nn.functional as F

        config = {"train_batch_size": 16, "bf16": {"enabled": True}, "zero_optimization": {"stage": 1}}
        model = torch.nn.Sequential(torch.nn.Embedding(1000, 64), torch.nn.Linear(64, 1000))
        engine, optimizer, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=config)
        for tokens, actions in loader:
            logits = engine(tokens)
            logp = F.log_softmax(logits, dim=-1).gather(-1, actions[..., None])  # expect: MP001
            engine.backward(-logp.mean())
            engine.step()
        """,
    ),
    bug(
        "fp16-config-under-the-legacy-key",
        """
        import deepspeed
        import torch

        model = torch.nn.Linear(64, 1000)
        engine, *_ = deepspeed.initialize(model=model, config_params={"fp16": {"enabled": True, "loss_scale": 0}})
        logits = engine(torch.randn(4, 64))
        logp = torch.log_softmax(logits, -1)  # expect: MP001
        """,
    ),
    bug(
        "unknown-config-keeps-a-bf16-model-bf16",
        """
        import deepspeed
        import torch
        from transformers import AutoModelForCausalLM

        def build(args):
            policy = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.bfloat16)
            policy, *_ = deepspeed.initialize(model=policy, config={"bf16": {"enabled": args.bf16}})
            return policy

        def logprobs(model, batch):
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            return out.logits.log_softmax(-1)  # expect: MP001

        def main(args):
            policy = build(args)
            for batch in loader:
                policy.backward(-logprobs(policy, batch).mean())
                policy.step()
        """,
    ),
    # An fp16 model handed to an engine whose config turns neither fp16 nor bf16 on: the engine
    # leaves it as it is, half.
    bug(
        "fp16-model-under-a-config-without-a-half-section",
        """
        import deepspeed
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.float16)
        ds_config = {"train_batch_size": 8, "zero_optimization": {"stage": 0}}
        engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=ds_config)
        logp = torch.log_softmax(engine(input_ids).logits, -1)  # expect: MP001
        """,
    ),
    ok(
        "logits-cast-before-the-log-softmax",
        """
        import deepspeed
        import torch

        model = torch.nn.Linear(64, 1000)
        engine, *_ = deepspeed.initialize(model=model, config={"bf16": {"enabled": True}})
        logits = engine(torch.randn(4, 64)).float()
        logp = torch.log_softmax(logits, -1)
        """,
    ),
    ok(
        "fp32-config-and-fp32-model",
        """
        import deepspeed
        import torch

        model = torch.nn.Linear(64, 1000)
        engine, *_ = deepspeed.initialize(model=model, config={"bf16": {"enabled": False}, "train_batch_size": 8})
        logp = torch.log_softmax(engine(torch.randn(4, 64)), -1)
        """,
    ),
    ok(
        "unknown-config-over-an-fp32-model",
        """
        import deepspeed
        import torch

        def main(args):
            model = torch.nn.Linear(64, 1000)
            engine, *_ = deepspeed.initialize(args=args, model=model, model_parameters=model.parameters())
            logp = torch.log_softmax(engine(torch.randn(4, 64)), -1)
        """,
    ),
    # The fp16 section comes from the run's own config object: whether it is on is not known here.
    ok(
        "fp16-section-from-a-config-object",
        """
        import deepspeed
        import torch


        def build_engine(model, cfg):
            ds_config = {
                "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
                "gradient_accumulation_steps": cfg.grad_accum,
                "fp16": cfg.deepspeed.fp16,
                "zero_optimization": {"stage": 2},
            }
            engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=ds_config)
            return engine


        engine = build_engine(torch.nn.Linear(64, 1000), cfg)
        logp = torch.log_softmax(engine(torch.randn(4, 64)), -1)
        """,
    ),
    ok(
        "the-wrapped-module-read-back-in-fp32-under-an-fp32-config",
        """
        import deepspeed
        import torch

        model = torch.nn.Linear(64, 1000)
        engine, *_ = deepspeed.initialize(model=model, config={"fp16": {"enabled": False}})
        logp = torch.log_softmax(engine.module(torch.randn(4, 64)), -1)
        """,
    ),
]


@pytest.mark.parametrize("source", ENGINE_OUTPUTS)
def test_an_engine_runs_in_its_configs_dtype(source: str) -> None:
    check(source, "MP001")


MASTER_WEIGHTS = [
    ok(
        "client-optimizer-over-bf16-params-wrapped-by-zero",
        """
        import deepspeed
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        engine, optimizer, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, config={"bf16": {"enabled": True}, "zero_optimization": {"stage": 2}}
        )
        """,
    ),
    ok(
        "client-optimizer-handed-over-positionally-with-a-config-from-args",
        """
        import deepspeed
        import torch

        def main(args):
            model = torch.nn.Linear(8, 8).half()
            optimizer = torch.optim.Adam(model.parameters())
            engine, optimizer, _, _ = deepspeed.initialize(args, model, optimizer)
        """,
    ),
    bug(
        "client-optimizer-over-bf16-params-under-an-fp32-config",
        """
        import deepspeed
        import torch

        model = torch.nn.Linear(8, 8).to(torch.bfloat16)
        optimizer = torch.optim.AdamW(model.parameters())  # expect: MP003
        engine, optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config={"train_batch_size": 8})
        """,
    ),
    # DeepSpeed only behind an option: without it, nothing steps fp32 masters.
    bug(
        "engine-only-on-a-branch-the-default-skips",
        """
        import argparse

        import deepspeed
        import torch

        parser = argparse.ArgumentParser()
        parser.add_argument("--deepspeed", action="store_true")
        args = parser.parse_args()
        model = torch.nn.Linear(8, 8).to(torch.bfloat16)
        optimizer = torch.optim.AdamW(model.parameters())  # expect: MP003
        if args.deepspeed:
            model, optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config={"bf16": {"enabled": True}})
        for batch in loader:
            model(batch).float().sum().backward()
            optimizer.step()
        """,
    ),
    ok(
        "engine-on-the-default-branch",
        """
        import argparse

        import deepspeed
        import torch

        parser = argparse.ArgumentParser()
        parser.add_argument("--no_deepspeed", action="store_true")
        args = parser.parse_args()
        model = torch.nn.Linear(8, 8).to(torch.bfloat16)
        optimizer = torch.optim.AdamW(model.parameters())
        if not args.no_deepspeed:
            model, optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config={"bf16": {"enabled": True}})
        for batch in loader:
            model(batch).float().sum().backward()
            optimizer.step()
        """,
    ),
    bug(
        "optimizer-kept-outside-the-engine",
        """
        import deepspeed
        import torch

        model = torch.nn.Linear(8, 8).to(torch.bfloat16)
        engine, *_ = deepspeed.initialize(model=model, config={"bf16": {"enabled": True}})
        optimizer = torch.optim.AdamW(model.parameters())  # expect: MP003
        """,
    ),
]


@pytest.mark.parametrize("source", MASTER_WEIGHTS)
def test_an_engine_keeps_fp32_master_weights_for_the_optimizer_it_wraps(source: str) -> None:
    check(source, "MP003")


def test_the_config_imported_from_another_file(tmp_path: Path) -> None:
    check_files(
        {
            "config.py": """
                ds_config = {
                    "train_micro_batch_size_per_gpu": 4,
                    "gradient_accumulation_steps": 8,
                    "bf16": {"enabled": True},
                    "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}},
                }
            """,
            "rl/train.py": """
                import deepspeed
                import torch
                from config import ds_config

                def per_token_logps(logits, ids):
                    return torch.gather(logits.log_softmax(-1), 2, ids.unsqueeze(2)).squeeze(2)  # expect: MP001

                def main():
                    model = torch.nn.Linear(64, 1000)
                    engine, optimizer, _, _ = deepspeed.initialize(config=ds_config, model=model)
                    for ids in loader:
                        logits = engine(ids)
                        engine.backward(-per_token_logps(logits, ids).mean())
                        engine.step()
            """,
        },
        "MP001",
        tmp_path,
    )


def test_a_json_config_file_beside_the_script(tmp_path: Path) -> None:
    check_files(
        {
            "ds_config.json": '{"train_batch_size": 32, "fp16": {"enabled": true, "initial_scale_power": 16}}',
            "train.py": """
                import deepspeed
                import torch

                model = torch.nn.Linear(64, 1000)
                engine, *_ = deepspeed.initialize(model=model, config="ds_config.json")
                for x, y in loader:
                    logp = engine(x).log_softmax(-1)  # expect: MP001
                    engine.backward(-logp.gather(-1, y[:, None]).mean())
                    engine.step()
            """,
        },
        "MP001",
        tmp_path,
    )


def test_a_json_config_that_keeps_fp32_is_quiet(tmp_path: Path) -> None:
    check_files(
        {
            "configs/ds.json": '{"train_batch_size": 32, "bf16": {"enabled": false}}',
            "train.py": """
                import deepspeed
                import torch

                model = torch.nn.Linear(64, 1000)
                engine, *_ = deepspeed.initialize(model=model, config="configs/ds.json")
                logp = engine(torch.randn(2, 64)).log_softmax(-1)
            """,
        },
        "MP001",
        tmp_path,
    )


# DeepSpeed-Chat's `utils/ds_utils.py`: the config is assembled by item assignment in a helper of
# another module, its precision section chosen by a parameter.
DS_UTILS = """
    GLOBAL_BATCH_SIZE = 32


    def get_train_ds_config(offload, stage=2, bf16=False, enable_fp32=False):
        device = "cpu" if offload else "none"
        zero_opt_dict = {"stage": stage, "offload_param": {"device": device}}
        ds_config = {
            "train_batch_size": GLOBAL_BATCH_SIZE,
            "zero_optimization": zero_opt_dict,
            "gradient_clipping": 1.0,
        }
        if enable_fp32:
            return ds_config
        if bf16:
            ds_config["bf16"] = {"enabled": True}
        else:
            ds_config["fp16"] = {"enabled": True, "loss_scale_window": 100}
        return ds_config
"""

RLHF_ENGINE = """
    import deepspeed
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    from utils.ds_utils import get_train_ds_config


    def gather_log_probs(logits, labels):
        log_probs = F.log_softmax(logits, dim=-1)  # MARK
        return log_probs.gather(dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)


    def init_actor(args):
        ds_config = get_train_ds_config(offload=args.offload, {options})
        model = AutoModelForCausalLM.from_pretrained(args.actor_model_name_or_path)
        actor_engine, *_ = deepspeed.initialize(model=model, config=ds_config)
        return actor_engine


    def train_step(args, batch):
        actor = init_actor(args)
        logits = actor(**batch).logits
        loss = -gather_log_probs(logits[:, :-1], batch["input_ids"][:, 1:]).mean()
        actor.backward(loss)
"""


@pytest.mark.parametrize(
    ("options", "bug"),
    [
        ("bf16=args.actor_bf16", "MP001"),  # bf16 or fp16 as the option says: half either way
        ("bf16=False", "MP001"),  # the fp16 section
        ("bf16=True", "MP001"),
        ("bf16=args.actor_bf16, enable_fp32=args.fp32", None),  # fp32 on one path: not known half
        ("enable_fp32=True", None),
    ],
)
def test_a_config_built_by_item_assignment_in_a_helper(options: str, bug: str | None, tmp_path: Path) -> None:
    engine = RLHF_ENGINE.replace("{options}", options).replace("# MARK", f"# expect: {bug}" if bug else "")
    check_files({"utils/ds_utils.py": DS_UTILS, "utils/__init__.py": "", "rlhf_engine.py": engine}, "MP001", tmp_path)


# DeepSpeed-Chat as it is now: `--dtype` (default fp16) chooses the config's precision section by a
# key held in a name, and the parser goes through `deepspeed.add_config_arguments`, which returns
# it with DeepSpeed's options added (`--deepspeed_config`, default None).
DSCHAT_MAIN = """
    import argparse

    import deepspeed
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM


    def get_train_ds_config(offload, dtype, stage=2):
        if dtype == "fp16":
            data_type = "fp16"
            dtype_config = {"enabled": True, "loss_scale_window": 100}
        elif dtype == "bf16":
            data_type = "bfloat16"
            dtype_config = {"enabled": True}
        return {"train_batch_size": 32, "zero_optimization": {"stage": stage}, data_type: dtype_config}


    def gather_log_probs(logits, labels):
        log_probs = F.log_softmax(logits, dim=-1)  # MARK
        return log_probs.gather(dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)


    def parse_args():
        parser = argparse.ArgumentParser(description="(Step 3) RLHF training arguments")
        parser.add_argument("--dtype", type=str, default="{dtype}", choices=["fp16", "bf16", "fp32"])
        parser.add_argument("--offload", action="store_true")
        parser = deepspeed.add_config_arguments(parser)
        args = parser.parse_args()
        assert args.deepspeed_config is None, "the config is built in code"
        return args


    def main():
        args = parse_args()
        ds_config = get_train_ds_config(offload=args.offload, dtype=args.dtype)
        model = AutoModelForCausalLM.from_pretrained("facebook/opt-1.3b")
        actor_engine, *_ = deepspeed.initialize(model=model, config=ds_config)
        for batch in loader:
            logits = actor_engine(**batch).logits
            logprobs = gather_log_probs(logits[:, :-1, :], batch["input_ids"][:, 1:])
            actor_engine.backward(-(logprobs * batch["advantages"]).mean())
            actor_engine.step()


    if __name__ == "__main__":
        main()
"""


@pytest.mark.parametrize(("dtype", "condition"), [("fp16", None), ("bf16", None), ("fp32", "`--dtype fp16` is given")])
def test_a_parser_through_deepspeeds_config_arguments_keeps_its_defaults(dtype: str, condition: str | None) -> None:
    # fp32 by default: the half engine only under another of the option's choices.
    source = DSCHAT_MAIN.replace("{dtype}", dtype).replace("# MARK", "# expect: MP001")
    check(source, "MP001")
    (finding,) = lint(source, "MP001")
    assert (condition is None) is ("only when" not in finding.message)
    assert condition is None or f"only when {condition}" in finding.message


# safe-rlhf's shape: `deepspeed --module safe_rlhf.algorithms.ppo --bf16 True` runs the package's
# `__main__.py`; the parser's options sit in argument groups; the DeepSpeed config is a JSON template
# beside its module (`Path(__file__).absolute().parent / ...`, `.open()`), given its precision
# sections by `setdefault` and a nested item store after an `if` that may or may not add `fp16`,
# deep-copied by the trainer that builds its engine on `self`.
SAFE_RLHF_CONFIG = """
    import json
    import os
    from pathlib import Path

    TEMPLATE_DIR = {template_dir}
    TRAIN_TEMPLATE_FILE = TEMPLATE_DIR / "ds_train_config_template.json"


    def get_deepspeed_train_config(*, stage=3, fp16=False, bf16=False):
        with {opened} as f:
            train_config = json.load(f)
        train_config["zero_optimization"]["stage"] = stage
        if fp16 or "fp16" in train_config:
            train_config.setdefault("fp16", {{}})
            train_config["fp16"]["enabled"] = fp16
        if bf16 or "bf16" in train_config:
            {precision_section}
        return train_config
"""

SAFE_RLHF_TRAINER = """
    import copy

    import deepspeed
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM


    def gather_log_probabilities(logits, labels):
        log_probs = F.log_softmax(logits, dim=-1)  # MARK
        return log_probs.gather(dim=-1, index=labels.unsqueeze(dim=-1)).squeeze(dim=-1)


    class PPOTrainer:
        def __init__(self, args, ds_train_config):
            self.args = args
            self.ds_train_config = ds_train_config
            self.actor_model = AutoModelForCausalLM.from_pretrained(args.actor_model_name_or_path)
            self.init_engines()

        def init_engines(self):
            actor_ds_config = copy.deepcopy(self.ds_train_config)
            self.actor_model, *_ = deepspeed.initialize(model=self.actor_model, config=actor_ds_config)

        def train(self, loader):
            for batch in loader:
                logits = self.actor_model(batch["input_ids"]).logits
                log_probs = gather_log_probabilities(logits[:, :-1], batch["input_ids"][:, 1:])
                self.actor_model.backward(-(log_probs * batch["advantages"]).mean())
                self.actor_model.step()
"""

SAFE_RLHF_MAIN = """
    import argparse

    from ppo_pkg.configs import get_deepspeed_train_config
    from ppo_pkg.trainer import PPOTrainer


    def str2bool(text):
        return text.lower() in ("true", "1", "yes")


    def parse_arguments():
        parser = argparse.ArgumentParser(prog="deepspeed --module ppo_pkg.ppo")
        model_parser = parser.add_argument_group("model")
        model_parser.add_argument("--actor_model_name_or_path", type=str, required=True)
        training_parser = parser.add_argument_group("training")
        training_parser.add_argument("--fp16", type=str2bool, default=False)
        training_parser.add_argument("--bf16", type=str2bool, default=False)
        return parser.parse_args()


    def main():
        args = parse_arguments()
        ds_train_config = get_deepspeed_train_config(fp16=args.fp16, bf16=args.bf16)
        PPOTrainer(args, ds_train_config).train(loader)


    if __name__ == "__main__":
        main()
"""

PATH_FROM_FILE = ("Path(__file__).absolute().parent", "TRAIN_TEMPLATE_FILE.open(mode='rt', encoding='utf-8')")
SET_DEFAULT = 'train_config.setdefault("bf16", {})\n            train_config["bf16"]["enabled"] = bf16'


@pytest.mark.parametrize(
    ("template_path", "precision_section", "command", "bug"),
    [
        pytest.param(PATH_FROM_FILE, SET_DEFAULT, "deepspeed --module ppo_pkg.ppo --bf16 True", "MP001", id="module"),
        pytest.param(PATH_FROM_FILE, SET_DEFAULT, "python -m ppo_pkg.ppo.main --bf16 True", "MP001", id="main-file"),
        pytest.param(
            (
                "Path(os.path.dirname(__file__))",
                "open(os.path.join(os.path.dirname(__file__), 'ds_train_config_template.json'))",
            ),
            'train_config.update({"bf16": {"enabled": bf16}})',
            "deepspeed --module ppo_pkg.ppo --bf16 True",
            "MP001",
            id="update-os-path",
        ),
        pytest.param(
            ("Path(__file__).resolve().parent", "TEMPLATE_DIR.joinpath('ds_train_config_template.json').open()"),
            SET_DEFAULT,
            "deepspeed --module ppo_pkg.ppo --bf16 True",
            "MP001",
            id="joinpath",
        ),
        pytest.param(PATH_FROM_FILE, SET_DEFAULT, "deepspeed --module ppo_pkg.ppo --fp16 False", None, id="fp32"),
        pytest.param(
            PATH_FROM_FILE,
            SET_DEFAULT,
            "python -m torch.distributed.launch --nproc_per_node 8 ppo_pkg/ppo/main.py --bf16 True",
            "MP001",
            id="launcher-module",
        ),
    ],
)
def test_a_json_template_beside_its_module_given_bf16_by_a_module_launch(
    template_path: tuple[str, str], precision_section: str, command: str, bug: str | None, tmp_path: Path
) -> None:
    template_dir, opened = template_path
    config = SAFE_RLHF_CONFIG.format(template_dir=template_dir, opened=opened, precision_section=precision_section)
    trainer = SAFE_RLHF_TRAINER.replace("# MARK", f"# expect: {bug}" if bug else "")
    files = {
        "ppo_pkg/__init__.py": "",
        "ppo_pkg/configs/__init__.py": "from ppo_pkg.configs.deepspeed_config import get_deepspeed_train_config\n",
        "ppo_pkg/configs/deepspeed_config.py": config,
        "ppo_pkg/configs/ds_train_config_template.json": '{"train_batch_size": 128, "zero_optimization": {"stage": 2}}',
        "ppo_pkg/trainer.py": trainer,
        "ppo_pkg/ppo/__init__.py": "",
        "ppo_pkg/ppo/main.py": SAFE_RLHF_MAIN,
        "ppo_pkg/ppo/__main__.py": "import sys\n\nfrom ppo_pkg.ppo.main import main\n\nif __name__ == '__main__':\n    sys.exit(main())\n",
        "scripts/ppo.sh": f"#!/usr/bin/env bash\n{command} \\\n    --actor_model_name_or_path PKU-Alignment/alpaca-7b-reproduced\n",
        "pyproject.toml": '[project]\nname = "ppo-pkg"\n',
    }
    check_files(files, "MP001", tmp_path)


@pytest.mark.parametrize(("given", "bug"), [("True", "MP001"), ("False", None)])
def test_setdefault_keeps_the_section_a_config_already_has(given: str, bug: str | None) -> None:
    # `setdefault` fills in a section only where the config has none: the one written wins.
    mark = f"# expect: {bug}" if bug else ""
    check(
        f"""
        import deepspeed
        import torch

        ds_config = {{"train_batch_size": 16, "bf16": {{"enabled": {given}}}}}
        ds_config.setdefault("bf16", {{"enabled": not {given}}})
        model = torch.nn.Linear(64, 1000)
        engine, *_ = deepspeed.initialize(model=model, config=ds_config)
        logp = engine(torch.randn(2, 64)).log_softmax(-1)  {mark}
        """,
        "MP001",
    )


@pytest.mark.parametrize(("padding", "bug"), [(0, "MP001"), (300_000, None)])
def test_a_json_file_larger_than_a_config_is_data_and_not_read(padding: int, bug: str | None, tmp_path: Path) -> None:
    # Beside a module, a file of hundreds of kilobytes is a dataset (`data/train.json`): never read whole.
    mark = f"  # expect: {bug}" if bug else ""
    config = '{"train_batch_size": 8, "bf16": {"enabled": true}, "notes": "' + "x" * padding + '"}'
    source = f"""
        import json
        import os

        import deepspeed
        import torch

        HERE = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(HERE, "ds_config.json")) as f:
            ds_config = json.load(f)
        model = torch.nn.Linear(64, 1000)
        engine, *_ = deepspeed.initialize(model=model, config=ds_config)
        logp = engine(torch.randn(2, 64)).log_softmax(-1){mark}
    """
    check_files({"ds_config.json": config, "train.py": source}, "MP001", tmp_path)


# EAGLE's main_deepspeed.py: `deepspeed.initialize(args=args, ...)` with no config in code reads the file
# `--deepspeed_config` names (deepspeed 0.18.3 `__init__.py`); given by no command, DeepSpeed cannot
# start without one, so it runs with a config of the repository that the script can reach.
ARGS_CONFIG_SCRIPT = """
    import argparse

    import deepspeed
    import torch
    from torch import nn

    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)
    parser = deepspeed.add_config_arguments(parser)
    args = parser.parse_args()

    head = nn.Linear(4096, 32000)
    head_engine, _, _, _ = deepspeed.initialize(args=args, model=head, model_parameters=head.parameters())

    def compute_loss(predict, target):
        with torch.no_grad():
            target_p = nn.Softmax(dim=2)(head_engine(target))
        out_logp = nn.LogSoftmax(dim=2)(head_engine(predict))  # MARK
        return -torch.sum(torch.sum(target_p * out_logp, 2))
"""
FP16_CONFIG = '{"train_micro_batch_size_per_gpu": 2, "fp16": {"enabled": "true", "loss_scale": 0}}'
FP32_CONFIG = '{"train_micro_batch_size_per_gpu": 2, "zero_optimization": {"stage": 2}}'
BF16_CONFIG = '{"train_batch_size": 16, "bf16": {"enabled": true}}'


@pytest.mark.parametrize(
    ("configs", "bug"),
    [
        pytest.param({"train/ds_config.json": FP16_CONFIG}, "MP001", id="one-beside-it-fp16-enabled-as-a-string"),
        pytest.param({"configs/ds_bf16.json": BF16_CONFIG}, "MP001", id="one-in-a-folder-of-configs"),
        pytest.param(
            {"configs/ds_bf16.json": BF16_CONFIG, "configs/ds_fp16.json": FP16_CONFIG}, "MP001", id="all-half"
        ),
        pytest.param({"train/ds_config.json": FP32_CONFIG}, None, id="one-fp32"),
        pytest.param(
            {"configs/ds_bf16.json": BF16_CONFIG, "configs/ds_fp32.json": FP32_CONFIG}, None, id="they-differ"
        ),
        pytest.param(
            {"other/ds_config.json": FP16_CONFIG, "other/main.py": "print('another trainer')\n"},
            None,
            id="beside-another-folders-script",
        ),
        pytest.param({"train/ds_config.json": FP16_CONFIG.replace('"true"', '"auto"')}, None, id="auto"),
    ],
)
def test_a_script_that_needs_a_config_runs_with_one_it_can_reach(
    configs: dict[str, str], bug: str | None, tmp_path: Path
) -> None:
    script = ARGS_CONFIG_SCRIPT.replace("# MARK", f"# expect: {bug}" if bug else "")
    check_files({"train/main_deepspeed.py": script, "requirements.txt": "deepspeed\n", **configs}, "MP001", tmp_path)


@pytest.mark.parametrize(("config", "bug"), [(BF16_CONFIG, "MP001"), (FP32_CONFIG, None)])
def test_a_config_named_on_the_command_line(config: str, bug: str | None, tmp_path: Path) -> None:
    script = ARGS_CONFIG_SCRIPT.replace("# MARK", f"# expect: {bug}" if bug else "")
    files = {
        "train/main_deepspeed.py": script,
        # Another config a command does not name: the script runs with the one its command gives.
        "train/ds_other.json": FP16_CONFIG if bug is None else FP32_CONFIG,
        "configs/zero2.json": config,
        "scripts/train.sh": "deepspeed train/main_deepspeed.py --deepspeed_config configs/zero2.json\n",
        "requirements.txt": "deepspeed\n",
    }
    check_files(files, "MP001", tmp_path)


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        pytest.param("", "train/ds_config.json:3", id="the-one-it-can-reach"),
        pytest.param(
            "deepspeed train/main_deepspeed.py --deepspeed_config train/ds_config.json",
            "train/ds_config.json:3",
            id="named-by-a-command",
        ),
    ],
)
def test_the_message_names_the_config_and_the_section_that_makes_the_engine_half(
    given: str, shown: str, tmp_path: Path
) -> None:
    config = json.dumps({"train_micro_batch_size_per_gpu": 2, "fp16": {"enabled": True}}, indent=2)
    files = {
        "train/main_deepspeed.py": ARGS_CONFIG_SCRIPT.replace("# MARK", ""),
        "requirements.txt": "deepspeed\n",
        "train/ds_config.json": config,
        "scripts/train.sh": given + "\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    (finding,) = lint_paths([tmp_path], select=["MP001"]).findings
    assert f"made float16 by deepspeed.initialize with {shown} at" in finding.message
