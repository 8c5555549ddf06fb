"""Model families pretrained in bfloat16 whose activations are documented to overflow float16: the one
table MP006 reads, each family with the public report it rests on.

A model is of a family by provenance, never by a variable's name: the checkpoint id given to
`from_pretrained` (a literal, or an option's default the configuration folds to one) or, when that
id is not known, the Transformers class that loads it (`T5ForConditionalGeneration`). A known id of
no family wins over the class: `T5ForConditionalGeneration.from_pretrained("Salesforce/codet5-base")`
loads CodeT5's weights, which were not pretrained in bf16.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mplint.analysis.facts import CallFact
from mplint.analysis.torch_api import last_part


@dataclass(frozen=True)
class Family:
    name: str
    # The last segment of a checkpoint id (`google/flan-t5-base` -> `flan-t5-base`), lower-cased.
    checkpoint: re.Pattern[str]
    # Transformers classes that load only this family's architecture.
    classes: frozenset[str]
    citation: str


FAMILIES = (
    Family(
        "T5",
        # t5-small, t5-v1_1-base, flan-t5-xl, mt5-base, umt5-small, byt5-small, long-t5-tglobal-base,
        # and BigScience's T0 (a T5 v1.1 LM-adapted fine-tune); `codet5` is another pretraining.
        re.compile(r"(?:flan-|m|um|by|long-)?t5(?:[-_.]|$)|t0(?:pp|_3b|p)?(?:[-_.]|$)"),
        frozenset(
            {
                *(
                    f"{prefix}{suffix}"
                    for prefix in ("T5", "MT5", "UMT5", "LongT5")
                    for suffix in (
                        "ForConditionalGeneration",
                        "Model",
                        "EncoderModel",
                        "ForSequenceClassification",
                        "ForTokenClassification",
                        "ForQuestionAnswering",
                    )
                ),
            }
        ),
        "pretrained with bfloat16 activations (google-research/text-to-text-transfer-transformer#539: "
        '"All of our experiments use bfloat16 activations"); fp16 gives inf/NaN in the feed-forward '
        "(huggingface/transformers#4586, #14189 for T5 v1.1, #23918 for flan-t5-xl; google/flan-t5-xxl's "
        'card: "The original model has been trained in bfloat16")',
    ),
    Family(
        "Gemma 3",
        re.compile(r"gemma-?3(?:[-_.]|$)"),
        frozenset({"Gemma3ForCausalLM", "Gemma3ForConditionalGeneration", "Gemma3Model", "Gemma3TextModel"}),
        "pretrained in bfloat16; in float16 its activations overflow 65504 and generation comes out empty while "
        "bfloat16 works (huggingface/transformers#36822, 'Gemma 3 is broken with fp16'; vLLM refuses float16 "
        "for Gemma 3, intel/llm-scaler#270)",
    ),
)


def family_of(load: CallFact) -> Family | None:
    """The family of the checkpoint a `from_pretrained` call loads: by the id when it is a known
    string, else by the class it is called on; None when neither says (precision first)."""
    if load.function is None or last_part(load.function) != "from_pretrained":
        return None
    loader = last_part(load.function.rpartition(".")[0])
    if "Model" not in loader and "For" not in loader:
        return None  # a tokenizer, processor or config of the checkpoint: no activations
    checkpoint = load.arg(0, "pretrained_model_name_or_path")
    name = checkpoint.const if checkpoint is not None else None
    if isinstance(name, str):
        segment = name.rstrip("/").rpartition("/")[2].lower()
        return next((family for family in FAMILIES if family.checkpoint.match(segment)), None)
    return next((family for family in FAMILIES if loader in family.classes), None)
