"""MP006 fp16-on-bf16-pretrained-model: float16 over a model family pretrained in bfloat16 (T5, Gemma 3).

Reported at the cast, the load, the forward under an fp16 region, the Trainer or the `prepare` call.
Torch facts (torch 2.13, checked in tests/runtime/test_catalog_claims.py): float16's largest value
is 65504; a feed-forward output of the scale reported for T5 (66246) is inf in float16 and NaN after
the next normalisation, while bfloat16 holds it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mplint.analysis.frameworks.bf16_pretrained import FAMILIES

from .casekit import bug, check, check_files, lint, ok

CODE = "MP006"

CASES = [
    bug(
        "seq2seq-trainer-fp16-flan-t5",
        """
        from transformers import AutoModelForSeq2SeqLM, Seq2SeqTrainer, Seq2SeqTrainingArguments

        model = AutoModelForSeq2SeqLM.from_pretrained("google/flan-t5-large")
        training_args = Seq2SeqTrainingArguments(
            output_dir="out", per_device_train_batch_size=8, learning_rate=3e-4, fp16=True
        )
        trainer = Seq2SeqTrainer(  # expect: MP006
            model=model, args=training_args, train_dataset=train_ds, eval_dataset=eval_ds
        )
        trainer.train()
        """,
    ),
    bug(
        "t5-class-with-variable-id-half",
        """
        import torch
        from transformers import T5ForConditionalGeneration, T5Tokenizer

        def load(model_dir):
            tokenizer = T5Tokenizer.from_pretrained(model_dir)
            model = T5ForConditionalGeneration.from_pretrained(model_dir)
            return tokenizer, model.cuda().half()  # expect: MP006
        """,
    ),
    bug(
        "argparse-default-checkpoint-under-cuda-amp-autocast",
        """
        import argparse
        import torch
        from torch.cuda.amp import GradScaler, autocast
        from transformers import AutoModelForSeq2SeqLM

        parser = argparse.ArgumentParser()
        parser.add_argument("--model_name_or_path", default="google/mt5-base")
        args = parser.parse_args()

        def train(model, loader, optimizer):
            scaler = GradScaler()
            for batch in loader:
                with autocast():
                    loss = model(**batch).loss  # expect: MP006
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()

        model = AutoModelForSeq2SeqLM.from_pretrained(args.model_name_or_path).cuda()
        train(model, loader, torch.optim.AdamW(model.parameters(), lr=1e-4))
        """,
    ),
    bug(
        "accelerator-fp16-prepare",
        """
        from accelerate import Accelerator
        from transformers import AutoModelForSeq2SeqLM
        import torch

        accelerator = Accelerator(mixed_precision="fp16", gradient_accumulation_steps=4)
        model = AutoModelForSeq2SeqLM.from_pretrained("google/byt5-small")
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)  # expect: MP006
        """,
    ),
    bug(
        "loaded-in-float16-with-torch-dtype",
        """
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(  # expect: MP006
            "google/gemma-3-1b-it", torch_dtype=torch.float16, attn_implementation="eager"
        )
        """,
    ),
    bug(
        "self-model-generate-under-default-cuda-autocast",
        """
        import torch
        from transformers import T5ForConditionalGeneration

        class Summarizer:
            def __init__(self):
                self.model = T5ForConditionalGeneration.from_pretrained("t5-base").to("cuda")

            @torch.no_grad()
            def summarize(self, input_ids):
                with torch.autocast("cuda"):
                    return self.model.generate(input_ids, max_new_tokens=64)  # expect: MP006

        Summarizer().summarize(ids)
        """,
    ),
    bug(
        "to-float16-in-a-helper-of-another-function",
        """
        import torch
        from transformers import AutoModelForSeq2SeqLM

        def build(name="google/t5-v1_1-base", dtype=torch.float16):
            model = AutoModelForSeq2SeqLM.from_pretrained(name)
            return model.to(device="cuda", dtype=dtype)  # expect: MP006

        def main():
            model = build()
            optimizer = torch.optim.Adafactor(model.parameters())

        main()
        """,
    ),
    bug(
        "conditional-half-is-a-warning-path",
        """
        import argparse
        from transformers import AutoModelForSeq2SeqLM

        parser = argparse.ArgumentParser()
        parser.add_argument("--fp16", action="store_true")
        args = parser.parse_args()
        model = AutoModelForSeq2SeqLM.from_pretrained("bigscience/T0_3B")
        if args.fp16:
            model = model.half()  # expect: MP006
        """,
    ),
    # The script's own arguments dataclass: a data mixin first, then Transformers' arguments.
    bug(
        "trainer-arguments-subclass-with-a-mixin-first",
        """
        from dataclasses import dataclass, field

        from transformers import AutoModelForSeq2SeqLM, Seq2SeqTrainer, Seq2SeqTrainingArguments


        @dataclass
        class DataArguments:
            max_source_length: int = field(default=512)
            max_target_length: int = field(default=128)


        @dataclass
        class TrainingArguments(DataArguments, Seq2SeqTrainingArguments):
            generation_num_beams: int = field(default=4)


        model = AutoModelForSeq2SeqLM.from_pretrained("google/flan-t5-base")
        training_args = TrainingArguments(output_dir="out", fp16=True, predict_with_generate=True)
        trainer = Seq2SeqTrainer(model=model, args=training_args, train_dataset=train_ds)  # expect: MP006
        trainer.train()
        """,
    ),
    ok(
        "bf16-autocast-on-flan-t5",
        """
        import torch
        from transformers import AutoModelForSeq2SeqLM

        model = AutoModelForSeq2SeqLM.from_pretrained("google/flan-t5-base").cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        """,
    ),
    ok(
        "trainer-bf16-on-t5",
        """
        from transformers import AutoModelForSeq2SeqLM, Seq2SeqTrainer, Seq2SeqTrainingArguments

        model = AutoModelForSeq2SeqLM.from_pretrained("t5-large")
        args = Seq2SeqTrainingArguments("out", bf16=True)
        Seq2SeqTrainer(model=model, args=args, train_dataset=train_ds).train()
        """,
    ),
    ok(
        "fp16-on-a-family-not-in-the-table",
        """
        import torch
        from transformers import AutoModelForSeq2SeqLM, Seq2SeqTrainer, Seq2SeqTrainingArguments

        model = AutoModelForSeq2SeqLM.from_pretrained("facebook/bart-large-cnn").half()
        args = Seq2SeqTrainingArguments("out", fp16=True)
        Seq2SeqTrainer(model=model, args=args).train()
        """,
    ),
    ok(
        "codet5-through-the-t5-class",
        """
        from transformers import T5ForConditionalGeneration

        model = T5ForConditionalGeneration.from_pretrained("Salesforce/codet5-base").cuda().half()
        """,
    ),
    ok(
        "auto-class-with-unknown-checkpoint",
        """
        import sys
        import torch
        from transformers import AutoModelForSeq2SeqLM

        model = AutoModelForSeq2SeqLM.from_pretrained(sys.argv[1]).cuda()
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model(**batch).loss
        """,
    ),
    ok(
        "fp16-region-around-another-model-only",
        """
        import torch
        from transformers import AutoModel, T5EncoderModel

        text_encoder = T5EncoderModel.from_pretrained("google/t5-v1_1-xxl", torch_dtype=torch.bfloat16)
        unet = AutoModel.from_pretrained("my/unet").cuda()
        with torch.no_grad():
            prompt_embeds = text_encoder(input_ids)[0]
        with torch.autocast("cuda", dtype=torch.float16):
            noise_pred = unet(latents, prompt_embeds)
        """,
    ),
    ok(
        "a-variable-named-t5-is-not-a-t5",
        """
        import torch
        from transformers import AutoModelForCausalLM

        t5_model = AutoModelForCausalLM.from_pretrained("gpt2").half()
        flan_t5 = torch.nn.Linear(8, 8).half()
        """,
    ),
    ok(
        "disabled-fp16-region-and-float32",
        """
        import torch
        from transformers import AutoModelForSeq2SeqLM

        model = AutoModelForSeq2SeqLM.from_pretrained("google/mt5-small").to(torch.float32)
        with torch.autocast("cuda", dtype=torch.float16, enabled=False):
            loss = model(**batch).loss
        """,
    ),
    ok(
        "tokenizer-of-the-checkpoint-called-under-fp16-autocast",
        """
        import torch
        from transformers import AutoTokenizer, T5Tokenizer

        tokenizer = AutoTokenizer.from_pretrained("google/flan-t5-base")
        slow = T5Tokenizer.from_pretrained(model_dir)
        with torch.autocast("cuda"):
            batch = tokenizer(texts, return_tensors="pt", padding=True)
            more = slow(texts)
        """,
    ),
    ok(
        "trainer-without-fp16-on-gemma-3",
        """
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        model = AutoModelForCausalLM.from_pretrained("google/gemma-3-4b-pt")
        Trainer(model=model, args=TrainingArguments("out", fp16=False)).train()
        """,
    ),
]

MODEL_IN_ANOTHER_FILE = {
    "modeling.py": """
from transformers import T5ForConditionalGeneration


def load_model(path):
    return T5ForConditionalGeneration.from_pretrained(path)
""",
    "train.py": """
import torch

from modeling import load_model

model = load_model(cfg.path).cuda()
scaler = torch.amp.GradScaler("cuda")
for batch in loader:
    with torch.autocast("cuda", dtype=torch.float16):
        loss = model(**batch).loss  # expect: MP006
    scaler.scale(loss).backward()
""",
}


@pytest.mark.parametrize("source", CASES)
def test_cases(source: str) -> None:
    check(source, CODE)


def test_model_loaded_in_another_file(tmp_path: Path) -> None:
    check_files(MODEL_IN_ANOTHER_FILE, CODE, tmp_path)


def test_message_names_the_family_checkpoint_load_and_how() -> None:
    source = CASES[0].values[0]
    assert isinstance(source, str)
    (finding,) = lint(source, CODE)
    assert finding.message.startswith(
        "T5 model (`google/flan-t5-large`, loaded at train.py:4) run in float16 by a Trainer with fp16=True"
    )
    assert finding.severity.value == "warning"


def test_non_default_branch_names_its_condition() -> None:
    source = CASES[7].values[0]
    assert isinstance(source, str)
    (finding,) = lint(source, CODE)
    assert "only when `args.fp16` is true" in finding.message


@pytest.mark.parametrize(
    ("checkpoint", "family"),
    [
        ("t5-small", "T5"),
        ("google/flan-t5-xxl", "T5"),
        ("google/umt5-small", "T5"),
        ("google/long-t5-tglobal-base", "T5"),
        ("bigscience/T0pp", "T5"),
        ("./runs/t5_finetuned/", "T5"),
        ("google/gemma-3-27b-it", "Gemma 3"),
        ("Salesforce/codet5-base", None),
        ("google/gemma-2b", None),
        ("google-t5-adapter", None),
        ("bert-base-uncased", None),
    ],
)
def test_family_of_checkpoint_ids(checkpoint: str, family: str | None) -> None:
    source = f"""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained("{checkpoint}").half()
    """
    findings = lint(source, CODE)
    assert [finding.message.split(" model (")[0] for finding in findings] == ([family] if family else [])


def test_every_family_cites_a_public_report() -> None:
    for family in FAMILIES:
        assert "#" in family.citation and "bfloat16" in family.citation
