from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from mplint.analysis.facts import CallFact
from mplint.analysis.frameworks import accelerate, bf16_pretrained, transformers
from mplint.analysis.frameworks.bf16_pretrained import Family
from mplint.analysis.values import Kind, Precision, Value
from mplint.findings import Severity
from mplint.rule import Rule


class Fp16OnBf16PretrainedModel(Rule):
    """A model family pretrained in bfloat16 (T5, mT5, Flan-T5, ByT5, Gemma 3) is run in float16.

    ## What it does
    Finds float16 applied to a model loaded from a checkpoint of a family pretrained in bfloat16
    whose activations are documented to overflow float16: the model cast or loaded in float16
    (`.half()`, `.to(torch.float16)`, `from_pretrained(..., torch_dtype=torch.float16)`), its
    forward called inside a float16 autocast region (`torch.autocast("cuda")`, whose default dtype
    is float16, `torch.cuda.amp.autocast()`, `dtype=torch.float16`), handed to a Transformers/TRL
    `Trainer` whose arguments say `fp16=True`, or prepared by an `Accelerator(mixed_precision="fp16")`.
    The family is read from the checkpoint id (`"google/flan-t5-base"`, or an option's default) or,
    when the id is not known, from the class that loads it (`T5ForConditionalGeneration`); the
    table, with the report each family rests on, is `mplint/analysis/frameworks/bf16_pretrained.py`.

    Not reported: bfloat16 or float32 training of these models; a checkpoint id that is a
    variable of unknown value loaded through an `Auto*` class; an id of another family loaded
    through a T5 class (`Salesforce/codet5-base`: CodeT5 was pretrained differently). Reported as a
    warning: whether a given fine-tune overflows depends on the size and the data (t5-small often
    survives; t5-large, t5-v1_1 and flan-t5-xl produce NaN in the reports below).

    ## Why is this bad
    float16's largest value is 65504; bfloat16 has float32's range. A network pretrained in
    bfloat16 never had to keep its activations below 65504, and these do not: T5's feed-forward
    outputs grow past 65504 in the later blocks (66246 in huggingface/transformers#5651), become
    inf, then NaN in the next RMS norm, which the next projection spreads to every output (torch
    2.13, CPU: tests/runtime/test_catalog_claims.py builds that feed-forward; bfloat16 keeps it
    finite), and the loss is NaN (a GradScaler then skips every step). The T5 authors: "All of our
    experiments use bfloat16 activations" (google-research/text-to-text-transfer-transformer#539);
    huggingface/transformers#14189 (T5 v1.1) and #23918 (flan-t5-xl) report NaN losses under fp16
    AMP; Gemma 3's float16 generation comes out empty where bfloat16 works
    (huggingface/transformers#36822). Transformers clamps T5's hidden states in float16 as a
    stopgap, which does not reach every overflow.

    ## Example
    ```python
    model = AutoModelForSeq2SeqLM.from_pretrained("google/flan-t5-large")
    args = Seq2SeqTrainingArguments("out", fp16=True)
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=train)
    ```

    ## Fix
    Train in bfloat16 (`bf16=True`, `torch.autocast("cuda", dtype=torch.bfloat16)`,
    `mixed_precision="bf16"`, `torch_dtype=torch.bfloat16`) on a GPU that has it (Ampere or
    newer), else in float32.
    """

    CODE = "MP006"
    NAME = "fp16-on-bf16-pretrained-model"
    SEVERITY = Severity.WARNING
    MESSAGE = (
        "{family} model ({checkpoint}, loaded at {path}:{line}) run in float16 by {how}: the family was pretrained "
        "in bfloat16 and its activations overflow float16's 65504 (inf, then NaN losses); train it in bfloat16 "
        "or float32"
    )
    # Every way in is written where it happens (a cast, a region, `fp16=True`, `mixed_precision="fp16"`);
    # the load it reaches may be in another file.
    TRIGGERS = frozenset({"fp16", "float16", ".half(", "autocast", "torch.half"})
    VALID = (
        """
import torch
from transformers import AutoModelForSeq2SeqLM
model = AutoModelForSeq2SeqLM.from_pretrained("google/flan-t5-base").cuda()
with torch.autocast("cuda", dtype=torch.bfloat16):
    loss = model(**batch).loss
""",
    )
    INVALID = (
        """
import torch
from transformers import AutoModelForSeq2SeqLM
model = AutoModelForSeq2SeqLM.from_pretrained("google/flan-t5-base").cuda()
with torch.autocast("cuda", dtype=torch.float16):
    loss = model(**batch).loss
""",
    )

    def visit_Call(self, node: cst.Call) -> None:
        for fact in self.precision.calls(node, conditional=True):
            for how, module in _float16_uses(fact):
                loaded = self._family_load(module)
                if loaded is not None:
                    family, load = loaded
                    self.report(node, self._message(how, family, load), condition=fact.condition)
                    return

    def _family_load(self, module: Value) -> tuple[Family, CallFact] | None:
        """The family of the checkpoint `module` was loaded from, and that load."""
        if not isinstance(module.identity, cst.Call):
            return None
        for load in self.precision.calls(module.identity):
            family = bf16_pretrained.family_of(load)
            if family is not None:
                return family, load
        return None

    def _message(self, how: str, family: Family, load: CallFact) -> str:
        checkpoint = load.arg(0, "pretrained_model_name_or_path")
        name = checkpoint.const if checkpoint is not None else None
        return self.MESSAGE.format(
            how=how,
            family=family.name,
            checkpoint=f"`{name}`" if isinstance(name, str) else f"through `{_loader(load)}`",
            path=load.path,
            line=self.line_of(load.node, load.path),
        )


def _float16_uses(fact: CallFact) -> Iterator[tuple[str, Value]]:
    """(how, the module) for each way this call puts a module in float16."""
    result = fact.result
    made_here = result.origin is not None and result.origin.node is fact.node
    if result.kind is Kind.MODULE and result.precision is Precision.FP16 and made_here:
        yield ("its load" if result.identity is fact.node else "a cast"), result
    region = fact.region
    called = fact.module if fact.module is not None else _called_method_module(fact)
    if called is not None and region is not None and region.precision is Precision.FP16 and region.enabled:
        yield f"the {region.describe()} region", called
    if fact.function is not None and transformers.is_trainer_class(fact.function):
        arguments = transformers.trainer_arguments(list(fact.args), dict(fact.kwargs))
        model = fact.arg(0, "model")
        if model is not None and transformers.precision_of(arguments) is Precision.FP16:
            yield "a Trainer with fp16=True", model
    receiver = fact.receiver
    if fact.method in ("prepare", "prepare_model") and receiver.op == accelerate.ACCELERATOR:
        if receiver.payload is Precision.FP16:
            for model in fact.args:
                yield 'Accelerator(mixed_precision="fp16")', model


def _loader(load: CallFact) -> str:
    """`T5ForConditionalGeneration` of `transformers.T5ForConditionalGeneration.from_pretrained`."""
    return (load.function or "").rpartition(".")[0].rpartition(".")[2]


def _called_method_module(fact: CallFact) -> Value | None:
    """The module of `model.forward(...)` / `model.generate(...)`."""
    if fact.method in ("forward", "generate", "__call__") and fact.receiver.kind is Kind.MODULE:
        return fact.receiver
    return None
