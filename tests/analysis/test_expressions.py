"""Expressions of the precision model (mplint/analysis/expressions.py): arithmetic on tensors of a
known dtype, items and attributes of what the code tracks. Each case is training code the way it is
written, checked through the rule that reads the value."""

from __future__ import annotations

import pytest

from tests.rules.casekit import bug, check, ok

ARITHMETIC_AND_ITEMS = [
    # `logits / temperature`: a divisor of unknown type is a scale factor (a number, or a 0-dim
    # tensor, which does not promote): the quotient keeps the logits' dtype.
    bug(
        "logits-divided-by-a-temperature",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        logits = policy(input_ids).logits / args.temperature
        logp = F.log_softmax(logits, dim=-1)  # expect: MP001
        """,
    ),
    # A factor of unknown type may be an fp32 tensor that promotes: the product's dtype is not known.
    ok(
        "logits-times-a-factor-of-unknown-type",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        logits = policy(input_ids).logits * logit_scale
        logp = F.log_softmax(logits, dim=-1)
        """,
    ),
    # An fp32 tensor divisor promotes: the quotient is fp32.
    ok(
        "logits-divided-by-an-fp32-tensor",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        vocab_norm = torch.ones(32000, device="cuda")
        logp = F.log_softmax(policy(input_ids).logits / vocab_norm, dim=-1)
        """,
    ),
    # A tuple a function of the file returns, read by position (from the end too).
    bug(
        "logits-read-from-a-returned-tuple",
        """
        import torch
        import torch.nn.functional as F

        head = torch.nn.Linear(512, 32000).cuda().to(torch.bfloat16)

        def forward(hidden):
            logits = head(hidden)
            return logits, hidden.norm(dim=-1)

        outputs = forward(hidden)
        logp = F.log_softmax(outputs[0], dim=-1)  # expect: MP001
        logp_again = F.log_softmax(outputs[-2], dim=-1)  # expect: MP001
        norms = F.log_softmax(outputs[1].float(), dim=-1)
        """,
    ),
    # A position past the tuple's end (a guard the code never takes) reads nothing.
    ok(
        "position-past-the-end-of-a-returned-tuple",
        """
        import torch
        import torch.nn.functional as F

        head = torch.nn.Linear(512, 32000).cuda().to(torch.bfloat16)

        def forward(hidden):
            return head(hidden).float(), None

        outputs = forward(hidden)
        if len(outputs) > 2:
            extra = F.log_softmax(outputs[2], dim=-1)
            extra_from_end = F.log_softmax(outputs[-3], dim=-1)
        logp = F.log_softmax(outputs[0], dim=-1)
        picked = F.log_softmax(outputs[args.output_index], dim=-1)
        """,
    ),
]


@pytest.mark.parametrize("source", ARITHMETIC_AND_ITEMS)
def test_arithmetic_and_items(source: str) -> None:
    check(source, "MP001")


DEVICES = [
    # `torch.device("cuda:0").type` is "cuda": an fp16 autocast region on the GPU.
    bug(
        "autocast-on-a-device-type",
        """
        import torch

        device = torch.device("cuda:0")
        model = torch.nn.Linear(512, 512).to(device)
        optimizer = torch.optim.AdamW(model.parameters())
        for batch in loader:
            with torch.autocast(device.type, dtype=torch.float16):  # expect: MP002
                loss = model(batch.to(device)).mean()
            loss.backward()
            optimizer.step()
        """,
    ),
]


@pytest.mark.parametrize("source", DEVICES)
def test_devices(source: str) -> None:
    check(source, "MP002")


PARAMETER_COLLECTIONS = [
    # One param group per parameter, built by a comprehension (layer-wise learning rates).
    bug(
        "a-param-group-per-parameter",
        """
        import torch

        model = torch.nn.Linear(512, 512).cuda().half()
        groups = [{"params": [p], "lr": 3e-4 * 0.9**depth} for depth, p in enumerate(model.parameters())]
        optimizer = torch.optim.AdamW(groups)  # expect: MP003
        """,
    ),
    # nanoGPT's configure_optimizers: a dict of the named parameters, split by dimension.
    bug(
        "nanogpt-param-dict",
        """
        import torch

        model = torch.nn.Linear(512, 512).cuda().to(torch.bfloat16)
        features = [{"input_ids": ids, "labels": ids} for ids in samples]
        param_dict = {pn: p for pn, p in model.named_parameters()}
        decay = [p for n, p in param_dict.items() if p.dim() >= 2]
        no_decay = [p for n, p in param_dict.items() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=6e-4)  # expect: MP003
        """,
    ),
    # GaLore's groups: the regular parameters known, the projected ones gathered where the analysis
    # does not follow; the list is param groups as soon as one group's parameters are known.
    bug(
        "galore-param-groups",
        """
        import torch

        model = torch.nn.Linear(512, 512).cuda().to(torch.bfloat16)
        galore_params = collect_galore_params(model, target_modules=["attn", "mlp"])
        galore_ids = [id(p) for p in galore_params]
        regular_params = [p for p in model.parameters() if id(p) not in galore_ids]
        param_groups = [{"params": regular_params}, {"params": galore_params, "rank": 128, "update_proj_gap": 200}]
        optimizer = torch.optim.AdamW(param_groups, lr=0.01)  # expect: MP003
        """,
    ),
]


@pytest.mark.parametrize("source", PARAMETER_COLLECTIONS)
def test_parameter_collections(source: str) -> None:
    check(source, "MP003")
