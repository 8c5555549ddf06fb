"""PEFT and bitsandbytes in the precision model (peft 0.21.2 mapping_func.py, tuners/tuners_utils.py,
tuners/lora/layer.py, utils/other.py; bitsandbytes 0.50.2 nn/modules.py): LoRA adapters are fp32
unless `autocast_adapter_dtype=False`; the wrapped model's outputs are the base's;
`prepare_model_for_kbit_training` makes every non-4-bit parameter fp32; a 4-bit layer returns its
input's dtype, not `bnb_4bit_compute_dtype`."""

from __future__ import annotations

import pytest

from .casekit import bug, check, ok

QLORA = """
    import torch
    import torch.nn.functional as F
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained("meta-llama/Llama-3.2-1B", quantization_config=bnb, {dtype})
    {prepare}
    model = get_peft_model(model, LoraConfig(r=16, task_type="CAUSAL_LM"){adapter_args})
    optimizer = torch.optim.AdamW(filter(lambda p: p.requires_grad, model.parameters()), lr=2e-4){opt_expect}

    def sequence_logps(policy, batch):
        logits = policy(input_ids=batch["input_ids"]).logits
        return F.log_softmax(logits, dim=-1){logps_expect}

    for batch in loader:
        loss = -sequence_logps(model, batch).mean()
        loss.backward()
        optimizer.step()
"""


def qlora(dtype: str, prepare: str, adapter_args: str = "", *, logps: bool = False, opt: bool = False) -> str:
    return QLORA.format(
        dtype=dtype,
        prepare=prepare,
        adapter_args=adapter_args,
        logps_expect="  # expect: MP001" if logps else "",
        opt_expect="  # expect: MP003" if opt else "",
    )


LOGITS = [
    pytest.param(
        qlora("torch_dtype=torch.bfloat16", "model = prepare_model_for_kbit_training(model)"), id="prepared-fp32"
    ),
    pytest.param(qlora("torch_dtype=torch.bfloat16", "", logps=True), id="unprepared-bf16-logits"),
    pytest.param(qlora('torch_dtype="auto"', ""), id="auto-dtype-unknown"),
    pytest.param(qlora("device_map={'': 0}", ""), id="no-dtype-compute-dtype-is-not-the-output"),
]


@pytest.mark.parametrize("source", LOGITS)
def test_a_qlora_models_logits(source: str) -> None:
    check(source, "MP001")


ADAPTERS = [
    pytest.param(qlora("torch_dtype=torch.bfloat16", ""), id="fp32-adapters-by-default"),
    pytest.param(
        qlora("torch_dtype=torch.bfloat16", "", ", autocast_adapter_dtype=False", opt=True),
        id="bf16-adapters-without-autocast-adapter-dtype",
    ),
    pytest.param(
        qlora("torch_dtype=torch.bfloat16", "", ", autocast_adapter_dtype=True"), id="fp32-adapters-asked-for"
    ),
]


@pytest.mark.parametrize("source", ADAPTERS)
def test_lora_adapters_dtype(source: str) -> None:
    check(source, "MP003")


CASES = [
    ok(
        "whole-peft-model-parameters-update-fp32-adapters",
        """
        import torch
        import peft
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
        lora = peft.get_peft_model(base, peft.LoraConfig(r=8))
        optimizer = torch.optim.AdamW(lora.parameters(), lr=1e-4)
        """,
    ),
    bug(
        "the-base-model-is-still-bf16",
        """
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
        lora = get_peft_model(base, LoraConfig(r=8))
        optimizer = torch.optim.AdamW(base.parameters(), lr=1e-4)  # expect: MP003
        """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_peft_parameters(source: str) -> None:
    check(source, "MP003")
