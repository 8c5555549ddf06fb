"""Precision followed across the files of one run: helpers imported from other modules are
summarised and applied at their call sites, and factories return what they build."""

from __future__ import annotations

from pathlib import Path

import pytest

from mplint.api import lint_paths

from .casekit import check_files, line_of

GATHER_HELPER = """
    import torch


    def gather_logprobs(logits, labels):
        logp = logits.log_softmax(dim=-1)  # expect: MP001
        return logp.gather(dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)
"""

GATHER_HELPER_UPCAST = """
    import torch


    def gather_logprobs(logits, labels):
        logp = logits.float().log_softmax(dim=-1)
        return logp.gather(dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)
"""

PPO_STEP_BF16 = """
    import torch
    from transformers import AutoModelForCausalLM

    from utils.logprobs import gather_logprobs

    policy = AutoModelForCausalLM.from_pretrained(cfg.policy, torch_dtype=torch.bfloat16)
    for batch in loader:
        new_logp = gather_logprobs(policy(batch["input_ids"]).logits, batch["labels"])
        ratio = torch.exp(new_logp - batch["old_logp"])
"""

PPO_STEP_FP32 = """
    import torch
    from transformers import AutoModelForCausalLM

    from utils.logprobs import gather_logprobs

    policy = AutoModelForCausalLM.from_pretrained(cfg.policy, torch_dtype=torch.float32)
    for batch in loader:
        new_logp = gather_logprobs(policy(batch["input_ids"]).logits, batch["labels"])
"""

# The same helper, for runs in which it must stay quiet.
GATHER_HELPER_UNMARKED = GATHER_HELPER.replace("  # expect: MP001", "")

LOAD_POLICY = """
    import torch
    from transformers import AutoModelForCausalLM


    def load_policy(name):
        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        model.gradient_checkpointing_enable()
        return model
"""

FP16_LOSS_HELPER = """
    import torch
    import torch.nn.functional as F


    def compute_loss(model, batch):
        with torch.autocast("cuda", dtype=torch.float16):  # expect: MP002
            logits = model(batch["images"])
            return F.cross_entropy(logits, batch["labels"])
"""

CONFIGURE_OPTIMIZERS = """
    import torch


    def configure_optimizers(model, weight_decay, learning_rate):
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, 0.95))  # expect: MP003
"""

# litgpt/utils.py: an optimizer class resolved from a name ("AdamW", "bitsandbytes.optim.AdamW8bit")
# or a `class_path` dict, built over the parameters the caller hands in.
INSTANTIATE_OPTIMIZER = """
    import inspect


    def instantiate_torch_optimizer(optimizer, model_parameters, **kwargs):
        if isinstance(optimizer, str):
            if "." in optimizer:
                class_module, class_name = optimizer.rsplit(".", 1)
            else:
                class_module, class_name = "torch.optim", optimizer

            module = __import__(class_module, fromlist=[class_name])
            optimizer_cls = getattr(module, class_name)

            valid_params = set(inspect.signature(optimizer_cls).parameters)
            kwargs = {key: value for key, value in dict(kwargs).items() if key in valid_params}
            optimizer = optimizer_cls(model_parameters, **kwargs)
        elif isinstance(optimizer, dict):
            optimizer = dict(optimizer)
            class_module, class_name = optimizer["class_path"].rsplit(".", 1)
            module = __import__(class_module, fromlist=[class_name])
            optimizer_cls = getattr(module, class_name)
            optimizer["init_args"].update(kwargs)
            optimizer = instantiate_class(model_parameters, optimizer)
        else:
            raise ValueError(f"Unrecognized optimizer value: {optimizer}")
        return optimizer
"""

# litgpt/finetune/full.py, with the precision a recipe sets.
FINETUNE_WITH_NAMED_OPTIMIZER = """
    import lightning as L

    from litgpt.model import GPT
    from litgpt.utils import instantiate_torch_optimizer


    def setup(config, precision="bf16-true", optimizer="AdamW"):
        fabric = L.Fabric(devices=1, precision=precision)
        fabric.launch()
        main(fabric, config, optimizer)


    def main(fabric, config, optimizer):
        with fabric.init_module(empty_init=True):
            model = GPT(config)
        model = fabric.setup(model)
        optimizer = instantiate_torch_optimizer(optimizer, model.parameters())  # expect: MP003
        optimizer = fabric.setup_optimizers(optimizer)
"""

GPT_MODEL = """
    import torch.nn as nn


    class GPT(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
"""

CASES = [
    pytest.param(
        "MP001",
        {
            "utils/__init__.py": "",
            "utils/logprobs.py": GATHER_HELPER,
            "train.py": PPO_STEP_BF16,
        },
        id="bug-MP001-helper-in-other-file-gets-bf16-logits",
    ),
    pytest.param(
        "MP001",
        {
            "utils/__init__.py": "",
            "utils/logprobs.py": GATHER_HELPER_UPCAST,
            "train.py": PPO_STEP_BF16,
        },
        id="ok-MP001-helper-in-other-file-upcasts",
    ),
    pytest.param(
        "MP001",
        {
            "utils/__init__.py": "",
            "utils/logprobs.py": GATHER_HELPER_UNMARKED,
            "train.py": PPO_STEP_FP32,
        },
        id="ok-MP001-helper-in-other-file-gets-fp32-logits",
    ),
    # With no caller in the run, the helper's `logits` is a bare parameter: unknown provenance.
    pytest.param(
        "MP001",
        {"utils/__init__.py": "", "utils/logprobs.py": GATHER_HELPER_UNMARKED},
        id="ok-MP001-helper-without-callers",
    ),
    pytest.param(
        "MP001",
        {
            "models.py": LOAD_POLICY,
            "train.py": """
                import torch.nn.functional as F

                from models import load_policy

                policy = load_policy("meta-llama/Llama-3.2-1B")
                logits = policy(input_ids).logits
                logp = F.log_softmax(logits, dim=-1)  # expect: MP001
            """,
        },
        id="bug-MP001-factory-in-other-file-returns-bf16-model",
    ),
    pytest.param(
        "MP001",
        {
            "utils/__init__.py": "",
            "utils/logprobs.py": GATHER_HELPER,
            "train.py": PPO_STEP_BF16.replace(
                "from utils.logprobs import gather_logprobs",
                "from utils import logprobs",
            ).replace("gather_logprobs(policy", "logprobs.gather_logprobs(policy"),
        },
        id="bug-MP001-helper-called-through-module-attribute",
    ),
    pytest.param(
        "MP002",
        {
            "losses.py": FP16_LOSS_HELPER,
            "train.py": """
                from losses import compute_loss

                for batch in loader:
                    loss = compute_loss(model, batch)
                    loss.backward()
                    optimizer.step()
            """,
        },
        id="bug-MP002-region-in-other-file-backpropagated-unscaled",
    ),
    pytest.param(
        "MP002",
        {
            "losses.py": FP16_LOSS_HELPER.replace("  # expect: MP002", ""),
            "train.py": """
                import torch

                from losses import compute_loss

                scaler = torch.amp.GradScaler("cuda")
                for batch in loader:
                    loss = compute_loss(model, batch)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
            """,
        },
        id="ok-MP002-region-in-other-file-scaled-by-caller",
    ),
    pytest.param(
        "MP003",
        {
            "optim_utils.py": CONFIGURE_OPTIMIZERS,
            "train.py": """
                import torch
                from transformers import AutoModelForCausalLM

                from optim_utils import configure_optimizers

                model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
                optimizer = configure_optimizers(model, weight_decay=0.1, learning_rate=6e-4)
            """,
        },
        id="bug-MP003-optimizer-helper-in-other-file-gets-bf16-model",
    ),
    pytest.param(
        "MP003",
        {
            "optim_utils.py": CONFIGURE_OPTIMIZERS.replace("  # expect: MP003", ""),
            "train.py": """
                import torch
                from transformers import AutoModelForCausalLM

                from optim_utils import configure_optimizers

                model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.float32)
                optimizer = configure_optimizers(model, weight_decay=0.1, learning_rate=6e-4)
            """,
        },
        id="ok-MP003-optimizer-helper-in-other-file-gets-fp32-model",
    ),
    pytest.param(
        "MP003",
        {
            "model.py": """
                def build_model(cfg):
                    model = GPT(cfg)
                    model.half()
                    return model
            """,
            "train.py": """
                import torch

                from model import build_model

                model = build_model(cfg)
                optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)  # expect: MP003
            """,
        },
        id="bug-MP003-factory-in-other-file-returns-fp16-model",
    ),
    pytest.param(
        "MP003",
        {
            "litgpt/model.py": GPT_MODEL,
            "litgpt/utils.py": INSTANTIATE_OPTIMIZER,
            "litgpt/finetune/full.py": FINETUNE_WITH_NAMED_OPTIMIZER,
        },
        id="bug-MP003-torch-optim-class-imported-by-name-over-parameters-the-caller-hands",
    ),
    pytest.param(
        "MP003",
        {
            "litgpt/model.py": GPT_MODEL,
            "litgpt/utils.py": INSTANTIATE_OPTIMIZER.replace("  # expect: MP003", ""),
            "litgpt/finetune/full.py": FINETUNE_WITH_NAMED_OPTIMIZER.replace("  # expect: MP003", "").replace(
                '"bf16-true"', '"bf16-mixed"'
            ),
        },
        id="ok-MP003-torch-optim-class-imported-by-name-over-fp32-parameters",
    ),
    # optimi's AdamW compensates with Kahan summation: the name picks a class that is safe.
    pytest.param(
        "MP003",
        {
            "litgpt/model.py": GPT_MODEL,
            "litgpt/utils.py": INSTANTIATE_OPTIMIZER.replace("  # expect: MP003", ""),
            "litgpt/finetune/full.py": FINETUNE_WITH_NAMED_OPTIMIZER.replace("  # expect: MP003", "").replace(
                '"AdamW"', '"optimi.AdamW"'
            ),
        },
        id="ok-MP003-class-imported-by-name-from-a-compensating-package",
    ),
    # llm-baselines: the package's `__init__` imports its own submodule (`from . import base`) into a
    # table of config formats, and the script's options come from that submodule's parser.
    pytest.param(
        "MP002",
        {
            "src/config/__init__.py": """
                from . import base

                CONFIG_FORMAT_TO_MODULE_MAP = {"base": base}


                def parse_args_with_format(format, base_parser, args, namespace):
                    return CONFIG_FORMAT_TO_MODULE_MAP[format].parse_args(base_parser, args, namespace)
            """,
            "src/config/base.py": """
                def parse_args(base_parser, args, namespace):
                    base_parser.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
                    return base_parser.parse_args(args, namespace)
            """,
            "src/main.py": """
                import argparse

                import torch

                import config

                parser = argparse.ArgumentParser()
                parser.add_argument("--config_format", default="base")
                args, rem_args = parser.parse_known_args()
                args = config.parse_args_with_format(args.config_format, parser, rem_args, args)
                model = torch.nn.Linear(8, 8).cuda()
                optimizer = torch.optim.AdamW(model.parameters())
                dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[args.dtype]
                for x, y in loader:
                    with torch.amp.autocast(device_type="cuda", dtype=dtype):  # expect: MP002
                        outputs = model(x)
                    loss = outputs["loss"]
                    loss.backward()
                    optimizer.step()
            """,
        },
        id="bug-MP002-options-from-a-submodule-the-package-imports-relatively",
    ),
]


@pytest.mark.parametrize(("code", "files"), CASES)
def test_cross_file(code: str, files: dict[str, str], tmp_path: Path) -> None:
    check_files(files, code, tmp_path)


def test_message_points_at_the_cast_in_the_calling_file(tmp_path: Path) -> None:
    files = {
        "utils/__init__.py": "",
        "utils/logprobs.py": GATHER_HELPER,
        "train.py": PPO_STEP_BF16,
    }
    check_files(files, "MP001", tmp_path)
    [finding] = lint_paths([tmp_path], select=["MP001"]).findings
    assert "bfloat16" in finding.message
    assert f"train.py:{line_of(PPO_STEP_BF16, 'from_pretrained')}" in finding.message


SELECTIVE_LOG_SOFTMAX = """
    import torch


    def selective_log_softmax(logits, index, loss_mask):
        selected_logits = torch.gather(logits, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
        logsumexp_values = torch.stack([torch.logsumexp(lg, dim=-1) for lg in logits])  # expect: MP001
        per_token_logps = selected_logits - logsumexp_values
        return per_token_logps.masked_fill(~loss_mask, 0.0)
"""

DPO_REFERENCE_STEP = """
    import torch
    from transformers import AutoModelForCausalLM

    from utils import selective_log_softmax

    class DPO:
        def __init__(self, name):
            self.reference = AutoModelForCausalLM.from_pretrained(name, torch_dtype=DTYPE)

        def reference_logps(self, batch):
            with torch.no_grad():
                outputs = self.reference(batch["input_ids"])
            return selective_log_softmax(outputs.logits, batch["labels"], batch["mask"])
"""


@pytest.mark.parametrize(
    ("dtype", "marked"),
    [("torch.bfloat16", True), ("torch.float32", False)],
)
def test_held_logsumexp_of_a_helper_is_reported_where_it_is_computed(dtype: str, marked: bool, tmp_path: Path) -> None:
    """TRL's `selective_log_softmax` in a helper file: the finding (and its `.float()` fix) sits at
    the logsumexp the subtraction's name holds, not at the subtraction."""
    helper = SELECTIVE_LOG_SOFTMAX if marked else SELECTIVE_LOG_SOFTMAX.replace("  # expect: MP001", "")
    files = {"utils.py": helper, "train.py": DPO_REFERENCE_STEP.replace("DTYPE", dtype)}
    check_files(files, "MP001", tmp_path)


SCORING_HELPERS = """
    import torch


    def avg_logprob(model, tokenizer, prompt, answer):
        ids = torch.tensor(tokenizer.encode(prompt + answer))
        logits = model(ids.unsqueeze(0)).squeeze(0)
        logprobs = torch.log_softmax(logits, dim=-1)  # expect: MP001
        return logprobs.mean().item()


    def refine(generate, score_fn, prompt, rounds=2):
        best = generate(prompt)
        for _ in range(rounds):
            candidate = generate(prompt)
            if score_fn(answer=candidate, prompt=prompt) > score_fn(answer=best, prompt=prompt):
                best = candidate
        return best
"""

SCORING_SCRIPT = """
    from functools import partial

    import torch

    from scoring import avg_logprob, refine


    def main(model, tokenizer, prompts):
        model = model.to(torch.bfloat16)
        score_fn = partial(avg_logprob, model, tokenizer=tokenizer)
        return [refine(model.generate, score_fn, prompt) for prompt in prompts]
"""


@pytest.mark.parametrize(
    ("script", "helpers"),
    [
        pytest.param(SCORING_SCRIPT, SCORING_HELPERS, id="bug-bf16-model-bound-by-partial"),
        pytest.param(
            SCORING_SCRIPT.replace("torch.bfloat16", "torch.float32"),
            SCORING_HELPERS.replace("  # expect: MP001", ""),
            id="ok-fp32-model-bound-by-partial",
        ),
    ],
)
def test_arguments_bound_by_functools_partial_reach_the_call(script: str, helpers: str, tmp_path: Path) -> None:
    check_files({"refine_answers.py": script, "scoring.py": helpers}, "MP001", tmp_path)


TEST_OF_BF16_SUPPORT = """
    import torch
    from transformers import AutoModelForCausalLM

    from utils.logprobs import gather_logprobs


    def test_gather_logprobs_runs_in_bf16():
        policy = AutoModelForCausalLM.from_pretrained("sshleifer/tiny-gpt2", torch_dtype=torch.bfloat16)
        logp = gather_logprobs(policy(input_ids).logits, labels)
        assert logp.dtype == torch.bfloat16
"""


@pytest.mark.parametrize("test_path", ["tests/test_logprobs.py", "test_logprobs.py", "utils/logprobs_test.py"])
def test_a_tests_configuration_does_not_reach_the_code_it_tests(test_path: str, tmp_path: Path) -> None:
    """A test that runs a helper in bf16 to check it works says nothing about how training runs."""
    files = {"utils/logprobs.py": GATHER_HELPER_UNMARKED, test_path: TEST_OF_BF16_SUPPORT}
    check_files(files, "MP001", tmp_path)


def test_a_training_script_beside_the_tests_still_reaches_the_helper(tmp_path: Path) -> None:
    files = {
        "utils/logprobs.py": GATHER_HELPER,
        "tests/test_logprobs.py": TEST_OF_BF16_SUPPORT,
        "ppo.py": PPO_STEP_BF16,
    }
    check_files(files, "MP001", tmp_path)


def test_test_code_is_told_below_the_runs_root(tmp_path: Path) -> None:
    """A checkout under `/srv/tests/` is not all test code: its own tests still are."""
    files = {"utils/logprobs.py": GATHER_HELPER_UNMARKED, "tests/test_logprobs.py": TEST_OF_BF16_SUPPORT}
    check_files(files, "MP001", tmp_path / "tests" / "repo")


STAR_IMPORTS = [
    pytest.param(
        {
            "utils.py": GATHER_HELPER,
            "ppo/trainer.py": """
                import torch
                from utils import *

                def train(batch):
                    policy = torch.nn.Linear(64, 1000).to(torch.bfloat16)
                    return gather_logprobs(policy(batch["x"]), batch["y"])
            """,
        },
        id="a-helper-from-a-star-import",
    ),
    pytest.param(
        {
            "utils.py": GATHER_HELPER,
            "ppo/helpers.py": "from utils import *\n",
            "ppo/trainer.py": """
                import torch
                from .helpers import *

                def train(batch):
                    policy = torch.nn.Linear(64, 1000).to(torch.bfloat16)
                    return gather_logprobs(policy(batch["x"]), batch["y"])
            """,
        },
        id="re-exported-through-a-second-star-import",  # MOSS-RLHF: ppo_trainer.py <- ppo_datahelper.py <- utils.py
    ),
    pytest.param(
        {
            "utils.py": GATHER_HELPER.replace("  # expect: MP001", "").replace("gather_logprobs", "_gather_logprobs"),
            "train.py": """
                import torch
                from utils import *

                policy = torch.nn.Linear(64, 1000).to(torch.bfloat16)
                logp = _gather_logprobs(policy(x), y)
            """,
        },
        id="a-private-name-is-not-star-imported",
    ),
    pytest.param(
        {
            "a.py": "from b import *\n\ndef helper(x):\n    return x\n",
            "b.py": "from a import *\n",
            "train.py": """
                import torch
                from b import *

                logp = unknown_name(torch.randn(2, 8, dtype=torch.bfloat16))
            """,
        },
        id="star-imports-in-a-cycle-end",
    ),
]


@pytest.mark.parametrize("files", STAR_IMPORTS)
def test_names_of_a_star_import_are_read_from_the_linted_file(files: dict[str, str], tmp_path: Path) -> None:
    """MOSS-RLHF imports its log-prob helper with `from utils import *` in every trainer."""
    check_files(files, "MP001", tmp_path)


def test_names_re_exported_in_a_cycle_end(tmp_path: Path) -> None:
    """A package re-exports a loader from a module that imports it back from the package (code
    Python itself cannot import): the analysis ends, and knows nothing of the loader."""
    files = {
        "models/__init__.py": "from models.policy import load_policy\n",
        "models/policy.py": "from models import load_policy\n",
        "train.py": """
            import torch
            import torch.nn.functional as F

            from models import load_policy

            policy = load_policy("gpt2", torch_dtype=torch.bfloat16)
            logp = F.log_softmax(policy(x), dim=-1)
        """,
    }
    check_files(files, "MP001", tmp_path)


# DeepSpeed-Chat's step 3 (ReMax, Safe-RLHF): the trainer class picked by branches, a subclass on one
# path, in another module; its methods run on the fp16 engines the engine module builds.
RLHF_TRAINERS = """
    import torch.nn.functional as F


    class RLHFTrainer:
        def __init__(self, rlhf_engine, args):
            self.actor_model = rlhf_engine.actor
            self.kl_ctl = args.kl_ctl

        def generate_experience(self, seq):
            logits = self.actor_model(seq).logits
            log_probs = F.log_softmax(logits, dim=-1)  # MARK
            return log_probs.gather(-1, seq.unsqueeze(-1)).squeeze(-1)


    class RLHFTrainerUnsupervised(RLHFTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)

        def train_unsupervised(self, inputs, unsup_coef):
            return self.actor_model(**inputs).loss * unsup_coef
"""

RLHF_MAIN = """
    import deepspeed
    from transformers import AutoModelForCausalLM

    from trainers import RLHFTrainer, RLHFTrainerUnsupervised


    class RLHFEngine:
        def __init__(self, name, args):
            model = AutoModelForCausalLM.from_pretrained(name)
            config = {"train_batch_size": 32, "fp16": {"enabled": {fp16}}}
            self.actor, *_ = deepspeed.initialize(model=model, config=config)


    def main(args):
        engine = RLHFEngine("facebook/opt-1.3b", args)
        if args.unsupervised_dataset_name and args.unsupervised_dataset_config_name:
            if args.algo == "remax":
                trainer_cls = RLHFTrainerUnsupervised
            else:
                raise ValueError(args.algo)
        else:
            if args.algo == "remax":
                trainer_cls = RLHFTrainer
            else:
                raise ValueError(args.algo)
        trainer = trainer_cls(engine, args)
        for batch in loader:
            trainer.generate_experience(batch["input_ids"])
"""


@pytest.mark.parametrize(("fp16", "bug"), [("True", "MP001"), ("False", None)])
def test_a_trainer_class_picked_by_branches_runs_each_class(fp16: str, bug: str | None, tmp_path: Path) -> None:
    trainers = RLHF_TRAINERS.replace("# MARK", f"# expect: {bug}" if bug else "")
    main = RLHF_MAIN.replace("{fp16}", fp16)
    check_files({"trainers.py": trainers, "main.py": main}, "MP001", tmp_path)


# Video-R1: one of two unrelated trainer classes by a conditional expression, given the bf16 model;
# each one's log-probs.
PICKED_TRAINERS = """
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM


    class GRPOTrainer:
        def __init__(self, model):
            self.model = model

        def per_token_logps(self, input_ids):
            return F.log_softmax(self.model(input_ids).logits, dim=-1)  # expect: MP001


    class VLLMGRPOTrainer:
        def __init__(self, model):
            self.model = model

        def per_token_logps(self, input_ids):
            logits = self.model(input_ids).logits{cast}
            return torch.log_softmax(logits, dim=-1){mark}


    def main(script_args):
        model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-VL-7B-Instruct", torch_dtype=torch.bfloat16)
        trainer_cls = GRPOTrainer if not script_args.use_vllm else VLLMGRPOTrainer
        trainer = trainer_cls(model)
        return trainer.per_token_logps(torch.ones(1, 8, dtype=torch.long))
"""


@pytest.mark.parametrize(
    ("cast", "mark"),
    [
        ("", "  # expect: MP001"),
        (".float()", ""),  # this class upcasts first
    ],
)
def test_a_class_picked_by_a_conditional_expression_runs_each_class(cast: str, mark: str, tmp_path: Path) -> None:
    source = PICKED_TRAINERS.replace("{cast}", cast).replace("{mark}", mark)
    check_files({"grpo.py": source}, "MP001", tmp_path)


def test_the_output_of_a_model_picked_from_a_half_and_an_fp32_class_is_not_known_half(tmp_path: Path) -> None:
    source = """
        import torch
        import torch.nn.functional as F
        from torch import nn


        class HalfHead(nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = nn.Linear(512, 32000, dtype=torch.bfloat16)

            def forward(self, x):
                return self.proj(x)


        class FullHead(nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = nn.Linear(512, 32000)

            def forward(self, x):
                return self.proj(x)


        def logprobs(use_bf16_head, hidden):
            head_cls = HalfHead if use_bf16_head else FullHead
            head = head_cls()
            return F.log_softmax(head(hidden), dim=-1)
    """
    check_files({"heads.py": source}, "MP001", tmp_path)


# A method each picked class runs that stores on the instance (`prepare()` keeps a reference model)
# leaves the name holding either class, so the next method runs for each of them too.
PREPARED_TRAINERS = """
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM


    class GRPOTrainer:
        def __init__(self, model):
            self.model = model

        def prepare(self):
            self.ref_model = self.model

        def ref_logps(self, input_ids):
            return F.log_softmax(self.ref_model(input_ids).logits, dim=-1)  # expect: MP001


    class VLLMGRPOTrainer:
        def __init__(self, model):
            self.model = model

        def prepare(self):
            self.ref_model = self.model

        def ref_logps(self, input_ids):
            return F.log_softmax(self.ref_model(input_ids).logits.float(), dim=-1)


    def main(script_args):
        model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-VL-7B-Instruct", torch_dtype=torch.bfloat16)
        trainer_cls = GRPOTrainer if not script_args.use_vllm else VLLMGRPOTrainer
        trainer = trainer_cls(model)
        trainer.prepare()
        return trainer.ref_logps(torch.ones(1, 8, dtype=torch.long))
"""


def test_a_method_that_stores_keeps_each_picked_class(tmp_path: Path) -> None:
    check_files({"grpo.py": PREPARED_TRAINERS}, "MP001", tmp_path)


def test_a_picked_class_held_in_an_attribute_runs_each_class(tmp_path: Path) -> None:
    runner = PREPARED_TRAINERS.replace(
        """
    def main(script_args):""",
        """
    class Runner:
        def __init__(self, model, use_vllm):
            trainer_cls = VLLMGRPOTrainer if use_vllm else GRPOTrainer
            self.trainer = trainer_cls(model)

        def run(self, input_ids):
            self.trainer.prepare()
            return self.trainer.ref_logps(input_ids)


    def main(script_args):""",
    ).replace(
        """        trainer_cls = GRPOTrainer if not script_args.use_vllm else VLLMGRPOTrainer
        trainer = trainer_cls(model)
        trainer.prepare()
        return trainer.ref_logps(torch.ones(1, 8, dtype=torch.long))""",
        """        return Runner(model, script_args.use_vllm).run(torch.ones(1, 8, dtype=torch.long))""",
    )
    assert "Runner(model" in runner and "script_args.use_vllm else" not in runner
    check_files({"grpo.py": runner}, "MP001", tmp_path)
