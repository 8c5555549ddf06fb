"""The precision model follows what real training code does: the configuration that runs by
default (parameter defaults, argparse options, config classes, the GPU the script targets),
statements it used to skip (`assert`, item stores), modules of unknown provenance under
autocast, deep helper chains across files, and one finding per op however many callers reach it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from mplint.api import lint_paths
from mplint.findings import Severity

from .casekit import bug, check, check_files, lint, ok

CONFIGURATION = [
    bug(
        "argparse-default-true-enables-fp16",
        """
        import argparse
        import torch

        parser = argparse.ArgumentParser()
        parser.add_argument("--amp", default=True)
        args = parser.parse_args()
        model = torch.nn.Linear(8, 8).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        for x in loader:
            with torch.cuda.amp.autocast(enabled=args.amp):  # expect: MP002
                loss = model(x).sum()
            loss.backward()
            optimizer.step()
        """,
    ),
    ok(
        "argparse-store-true-is-off-by-default",
        """
        import argparse
        import torch

        parser = argparse.ArgumentParser()
        parser.add_argument("--fp16", action="store_true")
        args = parser.parse_args()
        model = torch.nn.Linear(8, 8).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        for x in loader:
            with torch.autocast("cuda", dtype=torch.float16, enabled=args.fp16):
                loss = model(x).sum()
            loss.backward()
            optimizer.step()
        """,
    ),
    bug(
        "device-chosen-by-cuda-availability",
        """
        import torch

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model = torch.nn.Linear(8, 8).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x in loader:
            with torch.autocast(device_type=device.type):  # expect: MP002
                loss = model(x.to(device)).sum()
            loss.backward()
            optimizer.step()
        """,
    ),
    bug(
        "device-string-through-str",
        """
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = torch.nn.Linear(8, 8).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x in loader:
            with torch.autocast(device_type=str(device)):  # expect: MP002
                loss = model(x).sum()
            loss.backward()
            optimizer.step()
        """,
    ),
]

DISTILLATION = [
    bug(
        "dtype-chosen-by-comparing-an-option",
        """
        import argparse
        from contextlib import nullcontext
        import torch
        import torch.distributed as dist
        import torch.nn.functional as F

        def distillation_loss(student_logits, teacher_logits, temperature=1.0):
            student = F.log_softmax(student_logits / temperature, dim=-1)  # expect: MP001
            return F.kl_div(student, F.softmax(teacher_logits / temperature, dim=-1), reduction="batchmean")

        def train_epoch(model, teacher, loader):
            for input_ids, labels in loader:
                with autocast_ctx:
                    student_logits = model(input_ids).logits
                loss = distillation_loss(student_logits, teacher(input_ids).logits)
                loss.backward()

        if __name__ == "__main__":
            parser = argparse.ArgumentParser()
            parser.add_argument("--device", type=str, default="cuda:0" if torch.cuda.is_available() else "cpu")
            parser.add_argument("--dtype", type=str, default="bfloat16")
            args = parser.parse_args()
            if dist.is_initialized():
                args.device = f"cuda:{dist.get_rank()}"
            device_type = "cuda" if "cuda" in args.device else "cpu"
            dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float16
            autocast_ctx = nullcontext() if device_type == "cpu" else torch.cuda.amp.autocast(dtype=dtype)
            train_epoch(model, teacher, loader)
        """,
    ),
    ok(
        "dtype-option-compared-to-float32",
        """
        import argparse
        import torch
        import torch.nn.functional as F

        parser = argparse.ArgumentParser()
        parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
        args = parser.parse_args()
        dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
        policy = torch.nn.Linear(8, 8).to(dtype)
        logp = F.log_softmax(policy(x), dim=-1)
        """,
    ),
    # A dtype option without choices is also run with the name `bfloat16`: a warning naming it.
    bug(
        "dtype-option-without-choices-given-bfloat16",
        """
        import argparse
        import torch
        import torch.nn.functional as F

        parser = argparse.ArgumentParser()
        parser.add_argument("--dtype", default="float32")
        args = parser.parse_args()
        dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
        policy = torch.nn.Linear(8, 8).to(dtype)
        logp = F.log_softmax(policy(x), dim=-1)  # expect: MP001
        """,
    ),
    bug(
        # Off by default (`not False and False`): the cast and what follows it are read as conditional.
        "not-and-of-options-off-by-default",
        """
        import argparse
        import torch
        import torch.nn.functional as F

        parser = argparse.ArgumentParser()
        parser.add_argument("--fp32", action="store_true")
        parser.add_argument("--bf16", action="store_true")
        args = parser.parse_args()
        policy = torch.nn.Linear(8, 8)
        if not args.fp32 and args.bf16:
            policy = policy.to(torch.bfloat16)
        logp = F.log_softmax(policy(x), dim=-1)  # expect: MP001
        """,
    ),
]


@pytest.mark.parametrize("source", DISTILLATION)
def test_options_compared_in_the_configuration_that_runs(source: str) -> None:
    check(source, "MP001")


LOADS = [
    bug(
        "dtype-from-parameter-default",
        """
        import torch
        from transformers import AutoModelForCausalLM

        def build(name, bf16=True):
            dtype = torch.bfloat16 if bf16 else "auto"
            return AutoModelForCausalLM.from_pretrained(name, torch_dtype=dtype)

        policy = build("gpt2")
        optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)  # expect: MP003
        """,
    ),
    ok(
        "dtype-from-parameter-default-off",
        """
        import torch
        from transformers import AutoModelForCausalLM

        def build(name, bf16=False):
            dtype = torch.bfloat16 if bf16 else torch.float32
            return AutoModelForCausalLM.from_pretrained(name, torch_dtype=dtype)

        policy = build("gpt2")
        optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)
        """,
    ),
    bug(
        "dtype-from-dataclass-default",
        """
        from dataclasses import dataclass
        import torch
        from transformers import AutoModelForCausalLM

        @dataclass
        class Config:
            model_name: str = "gpt2"
            dtype: str = "bfloat16"

        cfg = Config()
        policy = AutoModelForCausalLM.from_pretrained(cfg.model_name, torch_dtype=cfg.dtype)
        optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)  # expect: MP003
        """,
    ),
    ok(
        "train-and-eval-are-not-casts",
        """
        import torch
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.float32)
        optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)
        for batch in loader:
            policy.train()
            loss = policy(**batch).loss
            loss.backward()
            optimizer.step()
            policy.eval()
            policy.requires_grad_(True)
            policy.zero_grad()
        """,
    ),
]

STATEMENTS = [
    bug(
        "yielded-by-a-generator-the-caller-drains",
        """
        import torch
        import torch.nn.functional as F
        from transformers import GPT2LMHeadModel

        def rollout_logps(model, loader):
            for batch in loader:
                logits = model(batch["input_ids"]).logits
                yield F.log_softmax(logits, dim=-1)  # expect: MP001

        def reference_logps(model, loader):
            yield from (F.log_softmax(model(b).logits, dim=-1) for b in loader)  # expect: MP001

        def fp32_logps(model, loader):
            yield from (F.log_softmax(model(b).logits.float(), dim=-1) for b in loader)

        model = GPT2LMHeadModel.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
        old = list(rollout_logps(model, loader))
        ref = list(reference_logps(model, loader))
        fp32 = list(fp32_logps(model, loader))
        """,
    ),
    bug(
        "call-inside-assert",
        """
        import torch
        import torch.nn.functional as F

        policy = torch.nn.Linear(8, 8).to(torch.bfloat16)
        logits = policy(x)
        assert F.log_softmax(logits, dim=-1).isfinite().all()  # expect: MP001
        """,
    ),
    ok(
        "item-store-casts-the-logits",
        """
        import torch
        import torch.nn.functional as F

        policy = torch.nn.Linear(8, 8).to(torch.bfloat16)
        out = {"logits": policy(x)}
        out["logits"] = out["logits"].float()
        logp = F.log_softmax(out["logits"], dim=-1)
        """,
    ),
    # The same cast stored into a model's output object (no dict literal: only the item store tells).
    ok(
        "item-store-casts-the-logits-of-a-model-output",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)


        def logps(batch):
            out = policy(batch["input_ids"])
            out["logits"] = out["logits"].float()
            return F.log_softmax(out["logits"], dim=-1)
        """,
    ),
    # The key is handed in (`logits_key`): the same name reads back what was stored under it.
    ok(
        "item-store-under-a-key-handed-in-casts-the-logits",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)


        def logps(batch, logits_key):
            out = policy(batch["input_ids"])
            out[logits_key] = out[logits_key].float()
            return F.log_softmax(out[logits_key], dim=-1)
        """,
    ),
    bug(
        "item-store-under-a-key-handed-in-keeps-half",
        """
        import torch
        import torch.nn.functional as F

        policy = torch.nn.Linear(8, 8).to(torch.bfloat16)


        def logps(x, logits_key):
            out = {}
            out[logits_key] = policy(x)
            return F.log_softmax(out[logits_key], dim=-1)  # expect: MP001
        """,
    ),
    bug(
        "item-store-keeps-half",
        """
        import torch
        import torch.nn.functional as F

        policy = torch.nn.Linear(8, 8).to(torch.bfloat16)
        out = {}
        out["logits"] = policy(x)
        logp = F.log_softmax(out["logits"], dim=-1)  # expect: MP001
        """,
    ),
    bug(
        "python-scalars-keep-the-tensor-dtype",
        """
        import math
        import torch
        import torch.nn.functional as F

        policy = torch.nn.Linear(8, 8).to(torch.bfloat16)
        scores = policy(x) / math.sqrt(64) * 0.5 + len(x)
        logp = F.log_softmax(scores, dim=-1)  # expect: MP001
        """,
    ),
    bug(
        "in-place-arithmetic-keeps-the-tensor-dtype-whatever-the-operand",
        """
        import torch
        import torch.nn.functional as F

        policy = torch.nn.Linear(8, 8).to(torch.bfloat16)

        def sampled_logprobs(batch, temperature):
            logits = policy(batch)
            logits /= temperature + 1e-7
            logits *= batch.new_ones(8).float()
            return F.log_softmax(logits, dim=-1)  # expect: MP001
        """,
    ),
    ok(
        "in-place-arithmetic-on-an-upcast-tensor-stays-fp32",
        """
        import torch
        import torch.nn.functional as F

        policy = torch.nn.Linear(8, 8).to(torch.bfloat16)

        def sampled_logprobs(batch, temperature):
            logits = policy(batch).float()
            logits /= temperature + 1e-7
            return F.log_softmax(logits, dim=-1)
        """,
    ),
]

# A Transformers model of the project whose forward returns a ModelOutput record.
TINY_LM = """
        import torch.nn as nn
        import torch.nn.functional as F
        from transformers import PreTrainedModel
        from transformers.modeling_outputs import CausalLMOutputWithPast

        class TinyLM(PreTrainedModel):
            def __init__(self, config):
                super().__init__(config)
                self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)

            def forward(self, hidden):
                return CausalLMOutputWithPast(logits=self.lm_head(hidden))

        model = TinyLM(config)
"""

AUTOCAST_MODULES = [
    bug(
        "module-parameter-under-cpu-autocast",
        """
        import torch
        import torch.nn.functional as F

        def logprobs(model, tokens):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(tokens)
            return F.log_softmax(logits, dim=-1)  # expect: MP001
        """,
    ),
    ok(
        "module-parameter-under-cuda-autocast-upcasts",
        """
        import torch
        import torch.nn.functional as F

        def logprobs(model, tokens):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = model(tokens)
                return F.log_softmax(logits, dim=-1)
        """,
    ),
    ok(
        "module-parameter-without-autocast-is-unknown",
        """
        import torch.nn.functional as F

        def logprobs(model, tokens):
            logits = model(tokens)
            return F.log_softmax(logits, dim=-1)
        """,
    ),
    bug(
        "model-output-record-read-after-the-region",
        "\n        import torch"
        + TINY_LM
        + """
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(hidden)
        logp = F.log_softmax(out.logits, dim=-1)  # expect: MP001
        again = F.log_softmax(out["logits"], dim=-1)  # expect: MP001
        """,
    ),
    ok(
        "model-output-record-in-fp32",
        TINY_LM
        + """
        logp = F.log_softmax(model(hidden).logits, dim=-1)
        """,
    ),
]


@pytest.mark.parametrize("source", CONFIGURATION)
def test_the_configuration_that_runs_by_default(source: str) -> None:
    check(source, "MP002")


@pytest.mark.parametrize("source", LOADS)
def test_loads_configured_by_defaults(source: str) -> None:
    check(source, "MP003")


@pytest.mark.parametrize("source", STATEMENTS)
def test_statements_and_expressions_the_interpreter_evaluates(source: str) -> None:
    check(source, "MP001")


@pytest.mark.parametrize("source", AUTOCAST_MODULES)
def test_modules_of_unknown_provenance_under_autocast(source: str) -> None:
    check(source, "MP001")


# main -> train -> step -> objective -> compute_log_probs -> selective_log_softmax, over 3 files.
DEEP_CHAIN = {
    "train.py": """
        import torch
        from transformers import AutoModelForCausalLM

        from rl.loop import train


        def main():
            policy = AutoModelForCausalLM.from_pretrained("qwen", torch_dtype=torch.bfloat16)
            train(policy, loader)


        main()
    """,
    "rl/loop.py": """
        from rl.objective import objective


        def train(policy, loader):
            for batch in loader:
                step(policy, batch)


        def step(policy, batch):
            loss = objective(policy, batch)
            loss.backward()
    """,
    "rl/objective.py": """
        import torch


        def objective(policy, batch):
            logp = compute_log_probs(policy, batch["input_ids"])
            return -(torch.exp(logp - batch["old_logp"]) * batch["adv"]).mean()


        def compute_log_probs(policy, input_ids):
            logits = policy(input_ids).logits
            return selective_log_softmax(logits, input_ids)


        def selective_log_softmax(logits, index):
            logp = logits.log_softmax(dim=-1)  # expect: MP001
            return logp.gather(-1, index.unsqueeze(-1)).squeeze(-1)
    """,
}


def test_a_bf16_model_reaches_log_softmax_through_six_calls_across_three_files(tmp_path: Path) -> None:
    check_files(DEEP_CHAIN, "MP001", tmp_path)


def test_the_message_names_the_origin_and_the_calls_that_reach_the_op(tmp_path: Path) -> None:
    check_files(DEEP_CHAIN, "MP001", tmp_path)
    [finding] = lint_paths([tmp_path], select=["MP001"]).findings
    assert "from `policy`, loaded in bfloat16 at " in finding.message
    assert finding.message.endswith(
        "via main() → train() → step() → objective() → compute_log_probs() → selective_log_softmax()); "
        "cast with .float() first"
    )


RECURSIVE = {
    "train.py": """
        import torch
        import torch.nn.functional as F

        def unroll(policy, x, depth):
            if depth == 0:
                return F.log_softmax(policy(x), dim=-1)  # expect: MP001
            return unroll(policy, x, depth - 1)

        policy = torch.nn.Linear(8, 8).to(torch.bfloat16)
        logp = unroll(policy, x, 3)
    """,
}


def test_recursion_reaches_the_op_and_ends(tmp_path: Path) -> None:
    check_files(RECURSIVE, "MP001", tmp_path)


TWO_CALLERS = {
    "utils.py": """
        def logprobs(logits):
            return logits.log_softmax(-1)  # expect: MP001
    """,
    "ppo.py": """
        import torch
        from utils import logprobs

        policy = torch.nn.Linear(8, 8).to(torch.bfloat16)
        logp = logprobs(policy(x))
    """,
    "grpo.py": """
        import torch
        from utils import logprobs

        reference = torch.nn.Linear(8, 8).half()
        logp = logprobs(reference(x))
    """,
}


def test_one_finding_per_op_with_the_other_callers_as_related(tmp_path: Path) -> None:
    check_files(TWO_CALLERS, "MP001", tmp_path)
    [finding] = [f for f in lint_paths([tmp_path], select=["MP001"]).findings]
    messages = [finding.message, *finding.related]
    assert len(messages) == 2
    assert any("`policy`" in message and "ppo.py" in message for message in messages)
    assert any("`reference`" in message and "grpo.py" in message for message in messages)
    from mplint.report import json as json_report

    [rendered] = json.loads(json_report.render([finding]))
    assert [item["message"] for item in rendered["related"]] == list(finding.related)


TRAIN_MODE_ON_HALF_MODEL = """
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(8, 8)).cuda().half()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # expect: MP003
    for epoch in range(3):
        model.train()
        for inputs, labels in loader:
            loss = torch.nn.functional.cross_entropy(model(inputs), labels)
            loss.backward()
            optimizer.step()
        model.eval()
        model.half()
"""


def test_train_mode_on_an_already_half_model_is_no_late_cast() -> None:
    check(TRAIN_MODE_ON_HALF_MODEL, "MP003")


PROJECT_OPTIMIZERS = [
    bug(
        "adamw-subclass-over-bf16-params",
        """
        import torch
        from transformers import AutoModelForCausalLM

        class MemoryEfficientAdamW(torch.optim.AdamW):
            def __init__(self, params, lr=1e-3, pin_memory=True):
                super().__init__(params, lr=lr)
                self.pin_memory = pin_memory

        model = AutoModelForCausalLM.from_pretrained("qwen", torch_dtype=torch.bfloat16)
        optimizer = MemoryEfficientAdamW(model.parameters(), lr=1e-5)  # expect: MP003
        """,
    ),
    bug(
        "optimizer-base-subclass-over-half-params",
        """
        import torch

        class Muon(torch.optim.Optimizer):
            def __init__(self, params, lr=0.02, momentum=0.95):
                super().__init__(params, dict(lr=lr, momentum=momentum))

        net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)).cuda().half()
        optimizer = Muon(net.parameters(), lr=0.02)  # expect: MP003
        """,
    ),
    ok(
        "adamw-subclass-over-fp32-params",
        """
        import torch

        class MemoryEfficientAdamW(torch.optim.AdamW):
            pass

        model = torch.nn.Linear(8, 8)
        optimizer = MemoryEfficientAdamW(model.parameters(), lr=1e-5)
        """,
    ),
    ok(
        "non-optimizer-class-over-half-params",
        """
        import torch

        class EMA:
            def __init__(self, params, decay=0.999):
                self.params = list(params)

        net = torch.nn.Linear(8, 8).half()
        ema = EMA(net.parameters())
        """,
    ),
]


@pytest.mark.parametrize("source", PROJECT_OPTIMIZERS)
def test_a_projects_own_optimizer_is_an_optimizer(source: str) -> None:
    check(source, "MP003")


UNUSED_SCALERS = [
    bug(
        "scaler-built-but-never-scaling",
        """
        import torch

        model = torch.nn.Linear(8, 8).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        scaler = torch.amp.GradScaler("cuda")
        for x in loader:
            with torch.autocast("cuda", dtype=torch.float16):  # expect: MP002
                loss = model(x).sum()
            loss.backward()
            optimizer.step()
        """,
    ),
    ok(
        "scaler-scaling-the-loss",
        """
        import torch

        model = torch.nn.Linear(8, 8).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        scaler = torch.amp.GradScaler("cuda")
        for x in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(x).sum()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    ok(
        "scaler-scaling-in-a-helper-of-another-file-is-trusted",
        """
        import torch
        from engine_utils import backward_step

        model = torch.nn.Linear(8, 8).cuda()
        scaler = torch.cuda.amp.GradScaler()
        for x in loader:
            with torch.cuda.amp.autocast():
                loss = model(x).sum()
            backward_step(scaler, loss)
        """,
    ),
]


@pytest.mark.parametrize("source", UNUSED_SCALERS)
def test_a_scaler_counts_only_where_it_scales(source: str) -> None:
    check(source, "MP002")


FLUSHES = [
    ok(
        "update-after-the-loop-flushes-the-last-accumulation",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for step, batch in enumerate(loader):
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(batch).mean() / accumulation
            scaler.scale(loss).backward()
            if (step + 1) % accumulation == 0:
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad()
        scaler.step(optimizer)
        scaler.update()
        """,
    ),
    ok(
        "update-after-the-inner-loop-once-per-epoch",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for epoch in range(epochs):
            for batch in loader:
                scaler.scale(model(batch).mean()).backward()
                scaler.step(optimizer)
                scaler.update()
            scaler.update(new_scale=2.0**16)
        """,
    ),
    bug(
        "two-updates-inside-one-iteration",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for batch in loader:
            scaler.scale(d_loss(batch)).backward()
            scaler.step(opt_d)
            scaler.update()
            scaler.scale(g_loss(batch)).backward()
            scaler.step(opt_g)
            scaler.update()  # expect: MP103
        """,
    ),
    bug(
        "an-update-per-optimizer-in-an-inner-loop",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for batch in loader:
            scaler.scale(loss_fn(batch)).backward()
            for optimizer in optimizers:
                scaler.step(optimizer)
                scaler.update()  # expect: MP103
        """,
    ),
]


@pytest.mark.parametrize("source", FLUSHES)
def test_an_update_after_the_loop_is_not_the_same_iteration(source: str) -> None:
    check(source, "MP103")


NON_DEFAULT_FP16 = """
    import argparse
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    args = parser.parse_args()
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float16
    model = torch.nn.Linear(8, 8).cuda()
    optimizer = torch.optim.AdamW(model.parameters())
    for x in loader:
        with torch.cuda.amp.autocast(dtype=dtype):  # expect: MP002
            loss = model(x).sum()
        loss.backward()
        optimizer.step()
"""


def test_fp16_only_under_a_non_default_option_is_a_warning_naming_the_condition() -> None:
    check(NON_DEFAULT_FP16, "MP002")
    [finding] = lint(NON_DEFAULT_FP16, "MP002")
    assert finding.severity is Severity.WARNING
    assert 'when `args.dtype == "bfloat16"` is false' in finding.message


def test_non_default_fp16_scaled_when_it_is_on_is_quiet() -> None:
    scaled = (
        textwrap.dedent(NON_DEFAULT_FP16)
        .replace("  # expect: MP002", "")
        .replace(
            "optimizer = torch.optim.AdamW(model.parameters())\n",
            "optimizer = torch.optim.AdamW(model.parameters())\n"
            'scaler = torch.cuda.amp.GradScaler(enabled=(args.dtype == "float16"))\n',
        )
        .replace("loss.backward()", "scaler.scale(loss).backward()")
    )
    assert "GradScaler(enabled=" in scaled and "scaler.scale(loss).backward()" in scaled
    assert lint(scaled, "MP002") == []


def test_fp32_in_the_non_default_configuration_is_quiet() -> None:
    fp32 = NON_DEFAULT_FP16.replace("else torch.float16", "else torch.float32").replace("  # expect: MP002", "")
    assert "else torch.float32" in fp32
    assert lint(fp32, "MP002") == []


def test_fp16_by_default_is_an_error_without_a_condition() -> None:
    [finding] = lint(NON_DEFAULT_FP16.replace('default="bfloat16"', 'default="float16"'), "MP002")
    assert finding.severity is Severity.ERROR and "default configuration" not in finding.message


NANOGPT_BENCH = """
    from contextlib import nullcontext
    import torch

    device = "cuda"
    dtype = "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float16"
    device_type = "cuda" if "cuda" in device else "cpu"
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    ctx = nullcontext() if device_type == "cpu" else torch.amp.autocast(device_type=device_type, dtype=ptdtype)  # expect: MP002
    model = GPT(config).to(device)
    optimizer = model.configure_optimizers(weight_decay=1e-2, learning_rate=1e-4, betas=(0.9, 0.95), device_type=device_type)
    for k in range(10):
        with ctx:
            logits, loss = model(X, Y)
        loss.backward()
        optimizer.step()
"""


def test_a_dtype_picked_from_a_table_by_a_condition_keeps_its_alternative() -> None:
    check(NANOGPT_BENCH, "MP002")
    [finding] = lint(NANOGPT_BENCH, "MP002")
    assert finding.severity is Severity.WARNING
    assert "torch.cuda.is_bf16_supported()` is false" in finding.message
    assert (
        lint(NANOGPT_BENCH.replace('else "float16"', 'else "float32"').replace("  # expect: MP002", ""), "MP002") == []
    )
