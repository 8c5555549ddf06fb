"""Branches the default configuration skips are still read: a bug inside `if args.profile:` (off by
default) is reported as a warning that names the condition, never as an error, and never twice.
Tests that are not configuration (`__name__`, `TYPE_CHECKING`, the accelerator a script targets,
literals) keep their single path."""

from __future__ import annotations

import pytest

from mplint.findings import Severity

from .casekit import bug, check, lint, ok

PROFILE_BRANCH = """
    import argparse
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    model = torch.nn.Linear(8, 8).cuda()
    optimizer = torch.optim.AdamW(model.parameters())
    if args.profile:
        # a copy of the step, from before the run moved to bf16
        with torch.profiler.profile() as prof:
            for x in loader:
                with torch.autocast("cuda", dtype=torch.float16):  # expect: MP002
                    loss = model(x).sum()
                loss.backward()
                optimizer.step()
    else:
        for x in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(x).sum()
            loss.backward()
            optimizer.step()
"""


def test_a_bug_in_a_branch_off_by_default_is_a_warning_naming_the_condition() -> None:
    check(PROFILE_BRANCH, "MP002")
    [finding] = lint(PROFILE_BRANCH, "MP002")
    assert finding.severity is Severity.WARNING
    assert "only when `args.profile` is true" in finding.message


def test_every_condition_of_a_nested_branch_is_named() -> None:
    """A branch off by default inside another (MeZO's `if args.trainer != "none":` inside `if
    args.train_set_seed is not None:`): the finding names both conditions, not the outer alone."""
    nested = PROFILE_BRANCH.replace(
        'parser.add_argument("--profile", action="store_true")',
        'parser.add_argument("--profile", action="store_true")\n    parser.add_argument("--trace", action="store_true")',
    ).replace(
        "        with torch.profiler.profile() as prof:\n",
        "        if args.trace:\n          with torch.profiler.profile() as prof:\n",
    )
    [finding] = lint(nested, "MP002")
    assert "only when `args.profile` is true and `args.trace` is true" in finding.message


def test_a_bug_on_the_default_path_stays_an_error() -> None:
    on_by_default = PROFILE_BRANCH.replace('action="store_true"', 'action="store_false"')
    assert on_by_default != PROFILE_BRANCH
    [finding] = lint(on_by_default, "MP002")
    assert finding.severity is Severity.ERROR
    assert "only when" not in finding.message


NON_DEFAULT = [
    bug(
        "parameter-default-turns-the-branch-off",
        """
        import torch
        import torch.nn.functional as F

        policy = torch.nn.Linear(16, 100).to(torch.bfloat16)

        def rollout(states, greedy=False):
            logits = policy(states)
            if greedy:
                return logits.argmax(-1), F.log_softmax(logits, dim=-1)  # expect: MP001
            return torch.multinomial(logits.float().softmax(-1), 1), None

        actions, _ = rollout(torch.randn(4, 16, dtype=torch.bfloat16))
        """,
    ),
    bug(
        "module-constant-set-false",
        """
        import torch

        profile = False
        model = torch.nn.Linear(8, 8).cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        if profile:
            for x in loader:
                with torch.cuda.amp.autocast():  # expect: MP002
                    loss = model(x).sum()
                loss.backward()
                optimizer.step()
        """,
    ),
    bug(
        "elif-of-a-config-choice",
        """
        import torch
        from dataclasses import dataclass

        @dataclass
        class Config:
            precision: str = "fp32"

        def step(model, optimizer, x, dtype):
            with torch.autocast("cuda", dtype=dtype):  # expect: MP002
                loss = model(x).sum()
            loss.backward()
            optimizer.step()

        cfg = Config()
        model = torch.nn.Linear(8, 8).cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x in loader:
            if cfg.precision == "bf16":
                step(model, optimizer, x, torch.bfloat16)
            elif cfg.precision == "fp16":
                step(model, optimizer, x, torch.float16)
            else:
                step(model, optimizer, x, torch.float32)
        """,
    ),
    ok(
        "the-cpu-fallback-of-an-accelerator-check",
        """
        import torch

        model = torch.nn.Linear(8, 8)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.cuda.amp.GradScaler()
        for x in loader:
            if torch.cuda.is_available():
                with torch.autocast("cuda", dtype=torch.float16):
                    loss = model(x).sum()
                scaler.scale(loss).backward()
            else:
                with torch.autocast("cuda", dtype=torch.float16):
                    loss = model(x).sum()
                loss.backward()  # a GPU-less machine: the scaler would be disabled anyway
            optimizer.step()
        """,
    ),
    ok(
        "a-non-default-branch-that-casts-first",
        """
        import argparse
        import torch
        import torch.nn.functional as F

        parser = argparse.ArgumentParser()
        parser.add_argument("--eval", action="store_true")
        args = parser.parse_args()
        policy = torch.nn.Linear(16, 100).to(torch.bfloat16)
        if args.eval:
            logp = F.log_softmax(policy(torch.randn(2, 16, dtype=torch.bfloat16)).float(), dim=-1)
        """,
    ),
    ok(
        "bindings-of-a-skipped-branch-do-not-leak",
        """
        import argparse
        import torch
        import torch.nn.functional as F

        parser = argparse.ArgumentParser()
        parser.add_argument("--bf16", action="store_true")
        args = parser.parse_args()
        policy = torch.nn.Linear(16, 100)
        logits = policy(torch.randn(2, 16))
        if args.bf16:
            logits = logits.float()
        logp = F.log_softmax(logits, dim=-1)
        """,
    ),
]


@pytest.mark.parametrize("source", NON_DEFAULT)
def test_branches_off_by_default_are_read_as_conditional(source: str) -> None:
    code = "MP001" if "log_softmax" in source else "MP002"
    check(source, code)
    for finding in lint(source, code):
        assert finding.severity is Severity.WARNING and "only when `" in finding.message


LLMC_DTYPE_TABLE = """
    import argparse
    from contextlib import nullcontext
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--dtype", type=str, default="float32", help="float32|float16|bfloat16")
    args = parser.parse_args()
    DTYPE = "float32"
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    ctx = torch.amp.autocast(device_type="cuda", dtype=ptdtype)  # expect: MP002
    model = torch.nn.Linear(8, 8).cuda()
    optimizer = torch.optim.AdamW(model.parameters())
    for x in loader:
        with ctx:
            loss = model(x).sum()
        loss.backward()
        optimizer.step()
"""


def test_a_dtype_table_indexed_by_an_option_lists_the_fp16_it_may_run_in() -> None:
    """karpathy/llm.c's train_gpt2.py: `--dtype float16` is one of the table's keys, with no scaler."""
    check(LLMC_DTYPE_TABLE, "MP002")
    [finding] = lint(LLMC_DTYPE_TABLE, "MP002")
    assert finding.severity is Severity.WARNING
    assert "float16 only when `args.dtype == 'float32'` is false" in finding.message


@pytest.mark.parametrize(
    ("change", "replacement"),
    [
        ('"float16": torch.float16}', '"float64": torch.float64}'),  # no fp16 in the table
        ("[args.dtype]", '["float32"]'),  # a key written out: not a configuration
        ("[args.dtype]", "[DTYPE]"),  # a module constant: the table may be a generic name-to-dtype map
    ],
)
def test_a_table_without_fp16_or_read_by_a_literal_is_quiet(change: str, replacement: str) -> None:
    source = LLMC_DTYPE_TABLE.replace(change, replacement).replace("  # expect: MP002", "")
    assert replacement in source
    assert lint(source, "MP002") == []


LLAMAGEN_AUTOCAST_TABLE = """
    import argparse
    import contextlib
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--mixed-precision", type=str, default="bf16", choices=["fp32", "tf32", "fp16", "bf16"])
    args = parser.parse_args()
    model = torch.nn.Linear(8, 8).cuda()
    optimizer = torch.optim.AdamW(model.parameters())
    for x, y in loader:
        optimizer.zero_grad()
        with {  # expect: MP002
            "bf16": torch.cuda.amp.autocast(dtype=torch.bfloat16),
            "fp16": torch.cuda.amp.autocast(dtype=torch.float16),
            "fp32": contextlib.nullcontext(),
            "tf32": contextlib.nullcontext(),
        }[args.mixed_precision]:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
"""


def test_a_table_of_autocast_regions_indexed_by_an_option_runs_in_its_fp16_one() -> None:
    """FoundationVision/LlamaGen's train_c2i_fsdp.py: `--mixed-precision fp16` picks the float16 region,
    and no scaler scales the loss."""
    check(LLAMAGEN_AUTOCAST_TABLE, "MP002")
    [finding] = lint(LLAMAGEN_AUTOCAST_TABLE, "MP002")
    assert finding.severity is Severity.WARNING
    assert "float16 only when `args.mixed_precision == 'bf16'` is false" in finding.message


@pytest.mark.parametrize(
    ("change", "replacement"),
    [
        ("torch.cuda.amp.autocast(dtype=torch.float16)", "contextlib.nullcontext()"),  # no fp16 region
        ("}[args.mixed_precision]:", '}["bf16"]:'),  # a key written out
        ("        loss.backward()", "        scaler.scale(loss).backward()"),  # scaled
    ],
)
def test_an_autocast_table_without_fp16_or_read_by_a_literal_or_scaled_is_quiet(change: str, replacement: str) -> None:
    source = LLAMAGEN_AUTOCAST_TABLE.replace(change, replacement)
    if "scaler" in replacement:
        source = source.replace(
            "    optimizer = torch.optim.AdamW(model.parameters())\n",
            "    optimizer = torch.optim.AdamW(model.parameters())\n    scaler = torch.cuda.amp.GradScaler()\n",
        ).replace("        optimizer.step()", "        scaler.step(optimizer)\n        scaler.update()")
    assert replacement in source
    assert lint(source, "MP002") == []


# What a skipped branch binds reaches the statements after it, on that path only.
SCORING_LOOP = """
    import argparse
    from functools import partial

    import torch
    import torch.nn.functional as F


    def avg_logprob(model, ids):
        logits = model(ids)
        return F.log_softmax(logits, dim=-1).mean()  # expect: MP001


    def length_score(ids):
        return float(len(ids))


    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--scoring", default="length", choices=["length", "logprob"])
        args = parser.parse_args()
        model = torch.nn.Linear(8, 8).to(torch.bfloat16)
        for ids in loader:
            if args.scoring == "length":
                score_fn = length_score
            else:
                score_fn = partial(avg_logprob, model)
            print(score_fn(ids))
"""

CAST_OPTION = """
    import argparse
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    model = torch.nn.Linear(8, 8)
    if args.bf16:
        model = model.to(torch.bfloat16)
    optimizer = torch.optim.AdamW(model.parameters())  # expect: MP003
"""

# Dual-KL-Distillation's trainers: LoRA on by the option's default (or the README's command), the
# bf16 student trained whole where it is off.
ADAPTER_OPTION = """
    import argparse
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    parser = argparse.ArgumentParser()
    parser.add_argument("--use_lora", type=bool, default=True)
    args = parser.parse_args()
    student = AutoModelForCausalLM.from_pretrained("Qwen/Qwen3-4B", dtype=torch.bfloat16)
    if args.use_lora:
        student = get_peft_model(student, LoraConfig(r=64))
    optimizer = torch.optim.AdamW(student.parameters())  # expect: MP003
"""


@pytest.mark.parametrize(
    ("source", "code"),
    [
        pytest.param(SCORING_LOOP, "MP001", id="bug-function-chosen-by-an-option"),
        pytest.param(CAST_OPTION, "MP003", id="bug-cast-behind-an-option"),
        pytest.param(ADAPTER_OPTION, "MP003", id="bug-where-an-option-on-by-default-is-off"),
    ],
)
def test_what_a_skipped_branch_binds_is_read_after_it_as_conditional(source: str, code: str) -> None:
    check(source, code)
    (finding,) = lint(source, code)
    assert finding.severity is Severity.WARNING
    assert "not in the default configuration" in finding.message


@pytest.mark.parametrize(
    "source",
    [
        ok(
            "fp32-on-every-path",
            CAST_OPTION.replace("torch.bfloat16", "torch.float32").replace("  # expect: MP003", ""),
        ),
        ok(
            "fp32-where-the-option-is-off",
            ADAPTER_OPTION.replace(
                "student = get_peft_model(student, LoraConfig(r=64))",
                "student = get_peft_model(student, LoraConfig(r=64))\n    else:\n        student = student.float()",
            ).replace("  # expect: MP003", ""),
        ),
        ok(
            "the-branch-binds-another-name",
            ADAPTER_OPTION.replace("student = get_peft_model(", "peft_student = get_peft_model(")
            .replace("AdamW(student.", "AdamW(peft_student.")
            .replace("  # expect: MP003", ""),
        ),
        ok(
            "the-option-path-leaves",
            CAST_OPTION.replace(
                "model = model.to(torch.bfloat16)", "model = model.to(torch.bfloat16)\n        raise SystemExit"
            ).replace("  # expect: MP003", ""),
        ),
        ok(
            "cast-back-after-the-branch",
            CAST_OPTION.replace(
                "optimizer = torch.optim.AdamW(model.parameters())  # expect: MP003",
                "model = model.float()\n    optimizer = torch.optim.AdamW(model.parameters())",
            ),
        ),
    ],
)
def test_what_follows_a_skipped_branch_stays_quiet_when_nothing_it_binds_is_half(source: str) -> None:
    check(source, "MP003")


# The step as timm-style vision trainers write it (facebookresearch/ConvNeXt `engine.py`): autocast
# and the scaler both behind `use_amp`, off by default; plain backward only on the fp32 path.
AMP_STEP = """
    import torch


    def train_one_epoch(model, criterion, data_loader, optimizer, loss_scaler, use_amp=False):
        for samples, targets in data_loader:
            if use_amp:
                with torch.cuda.amp.autocast():{expect}
                    output = model(samples)
                    loss = criterion(output, targets)
            else:  # full precision
                output = model(samples)
                loss = criterion(output, targets)
            {step}
"""
SCALED_WHEN_AMP = """if use_amp:
                grad_norm = loss_scaler(loss, optimizer, parameters=model.parameters())
            else:
                loss.backward()
                optimizer.step()"""


@pytest.mark.parametrize(
    ("step", "expect"),
    [
        pytest.param(SCALED_WHEN_AMP, "", id="the-same-test-scales-the-amp-path"),
        pytest.param(SCALED_WHEN_AMP.replace("if use_amp:", "if not use_amp:"), "  # expect: MP002", id="negated"),
        pytest.param("loss.backward()\n            optimizer.step()", "  # expect: MP002", id="never-scaled"),
    ],
)
def test_a_path_read_aside_decides_the_same_test_alike(step: str, expect: str) -> None:
    """On the path where `use_amp` holds, a later `if use_amp:` takes its true branch alone: the
    `else: loss.backward()` of the fp32 path is not reached from the fp16 region."""
    check(AMP_STEP.format(step=step, expect=expect), "MP002")
