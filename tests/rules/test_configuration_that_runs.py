"""More of the configuration that runs when a script is started plainly: option strings normalised
(`args.optimizer.lower() == "adam"`), membership in a literal list (`args.dtype in ["bf16",
"bfloat16"]`), environment variables a launcher would set left unset (`os.environ.get("RANK", -1)`),
DDP's `.module` as the model itself, model loaders that are classmethods, and a default dtype set
around construction then restored from a saved value (karpathy/llm.c's train_llama3.py, GaLore's
torchrun_main.py)."""

from __future__ import annotations

import pytest

from mplint.findings import Severity

from .casekit import bug, check, lint, ok

GALORE = """
    import argparse
    import torch
    from transformers import AutoConfig, LlamaForCausalLM

    def parse_args(args):
        parser = argparse.ArgumentParser()
        parser.add_argument("--optimizer", default="Adam")
        parser.add_argument("--dtype", type=str, default="bfloat16" if torch.cuda.is_bf16_supported() else "float32")
        return parser.parse_args(args)

    def main(args):
        model = LlamaForCausalLM(AutoConfig.from_pretrained(args.model_config))
        if args.dtype in ["bf16", "bfloat16"]:
            model = model.to(device="cuda", dtype=torch.bfloat16)
        else:
            model = model.to(device="cuda")
        trainable_params = [p for p in model.parameters() if p.requires_grad]
        if args.optimizer.lower() == "adam":
            optimizer = torch.optim.Adam(trainable_params, lr=1e-3)  # expect: MP003
        elif args.optimizer.lower() == "sgd":
            optimizer = torch.optim.SGD(trainable_params, lr=1e-3)  # expect: MP003
        else:
            raise ValueError(f"Optimizer {args.optimizer} not supported")

    if __name__ == "__main__":
        main(parse_args(None))
"""


def test_the_default_optimizer_is_an_error_the_others_are_conditional() -> None:
    check(GALORE, "MP003")
    adam, sgd = sorted(lint(GALORE, "MP003"), key=lambda finding: finding.line)
    assert adam.severity is Severity.ERROR and "only when" not in adam.message
    assert sgd.severity is Severity.WARNING
    assert 'only when `args.optimizer.lower() == "adam"` is false' in sgd.message


# A helper run first under an option that is off by default (an evaluation before training),
# then by the training loop: the finding is the default run's, an error with no condition.
EVAL_FIRST_THEN_TRAIN = """
    import argparse

    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    parser = argparse.ArgumentParser()
    parser.add_argument("--eval-before-training", action="store_true")
    args = parser.parse_args()

    policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)


    def token_logps(batch):
        logits = policy(batch["input_ids"]).logits
        return F.log_softmax(logits, dim=-1)


    if args.eval_before_training:
        with torch.no_grad():
            for batch in eval_loader:
                eval_logps = token_logps(batch)

    for batch in train_loader:
        logps = token_logps(batch)
"""


def test_a_helper_run_by_default_after_an_optional_run_is_an_error() -> None:
    [finding] = lint(EVAL_FIRST_THEN_TRAIN, "MP001")
    assert finding.severity is Severity.ERROR and "only when" not in finding.message


def test_an_fp32_default_dtype_makes_the_bf16_optimizers_conditional() -> None:
    # The bf16 cast is on a non-default path now: what follows it in `main` is read on that path too.
    fp32 = GALORE.replace('default="bfloat16" if torch.cuda.is_bf16_supported() else "float32"', 'default="float32"')
    assert fp32 != GALORE
    findings = lint(fp32, "MP003")
    assert [finding.line for finding in findings] == [20, 22]
    for finding in findings:
        assert finding.severity is Severity.WARNING
        assert 'only when `args.dtype in ["bf16", "bfloat16"]` is true' in finding.message


def test_an_fp32_model_on_every_path_keeps_every_optimizer_quiet() -> None:
    fp32 = GALORE.replace("dtype=torch.bfloat16", "dtype=torch.float32")
    assert fp32 != GALORE
    assert lint(fp32, "MP003") == []


LAUNCH = [
    bug(
        "classmethod-loader-under-a-bf16-default-tensor-type",
        """
        import os
        import torch
        import torch.nn as nn
        from torch.nn.parallel import DistributedDataParallel as DDP

        class LLaMA(nn.Module):
            def __init__(self, dim):
                super().__init__()
                self.tok_embeddings = nn.Embedding(128_256, dim)
                self.output = nn.Linear(dim, 128_256, bias=False)

            @staticmethod
            def adapt_keys(checkpoint):
                return {key.replace("model.", ""): value for key, value in checkpoint.items()}

            @classmethod
            def from_checkpoint(cls, ckpt_path):
                checkpoint = LLaMA.adapt_keys(torch.load(ckpt_path, map_location="cpu"))
                original_default_type = torch.get_default_dtype()
                torch.set_default_tensor_type(torch.cuda.BFloat16Tensor)  # much faster loading
                model = cls(4096)
                model.load_state_dict(checkpoint, strict=False)
                torch.set_default_tensor_type(torch.tensor([], dtype=original_default_type, device="cpu").type())
                return model

        ddp = int(os.environ.get("RANK", -1)) != -1
        model = LLaMA.from_checkpoint("llama3/consolidated.00.pth")
        if ddp:
            model = DDP(model, device_ids=[int(os.environ["LOCAL_RANK"])])
        raw_model = model.module if ddp else model
        optimizer = torch.optim.AdamW(raw_model.parameters(), lr=3e-4, fused=True)  # expect: MP003
        """,
    ),
    ok(
        "a-module-built-after-the-default-was-restored-from-a-saved-value",
        """
        import torch

        saved = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        embedding_table = torch.randn(10, 10)
        torch.set_default_dtype(saved)
        head = torch.nn.Linear(10, 10)
        optimizer = torch.optim.AdamW(head.parameters())
        """,
    ),
    bug(
        # Off by default: reported as conditional (`only when ... is true`), see test_non_default_paths.
        "an-environment-switch-off-by-default",
        """
        import os
        import torch

        model = torch.nn.Linear(8, 8).cuda()
        if os.environ.get("PURE_BF16", "0") == "1":
            model = model.to(torch.bfloat16)
        optimizer = torch.optim.AdamW(model.parameters())  # expect: MP003
        """,
    ),
]


@pytest.mark.parametrize("source", LAUNCH)
def test_a_plain_start(source: str) -> None:
    check(source, "MP003")


DTYPE_TESTS = [
    bug(
        "an-upcast-of-fp16-only-leaves-bf16-logits",
        """
        import torch
        import torch.nn.functional as F

        policy = torch.nn.Linear(16, 100).to(torch.bfloat16)

        def action_logprobs(logits, actions):
            logits = logits.float() if logits.dtype == torch.float16 else logits
            return F.log_softmax(logits, dim=-1).gather(-1, actions[..., None])  # expect: MP001

        logp = action_logprobs(policy(states), actions)
        """,
    ),
    ok(
        "an-upcast-of-anything-not-fp32",
        """
        import torch
        import torch.nn.functional as F

        policy = torch.nn.Linear(16, 100).to(torch.bfloat16)

        def action_logprobs(logits, actions):
            if logits.dtype != torch.float32:
                logits = logits.float()
            return F.log_softmax(logits, dim=-1).gather(-1, actions[..., None])

        logp = action_logprobs(policy(states), actions)
        """,
    ),
    ok(
        "a-branch-on-fp32-logits-reads-no-other-path",
        """
        import torch
        import torch.nn.functional as F

        policy = torch.nn.Linear(16, 100)
        logits = policy(states)
        if logits.dtype in [torch.float32, torch.float64]:
            selected_logits = torch.gather(logits, dim=-1, index=actions.unsqueeze(-1)).squeeze(-1)
            per_token_logps = selected_logits - torch.logsumexp(logits, dim=-1)
        else:
            per_token_logps = F.log_softmax(logits.to(torch.bfloat16), dim=-1)
        """,
    ),
]


@pytest.mark.parametrize("source", DTYPE_TESTS)
def test_tests_of_a_tensors_dtype_are_facts_not_options(source: str) -> None:
    check(source, "MP001")


# An `if` around a bf16 cast, folded where its test's value is known in a plain start: the cast runs
# (an error), is skipped (a warning naming the condition), or depends on the run (quiet: the model's
# dtype is unknown after the branch). `setup` is the code before the test.
OPTION_TEST_SCRIPT = """
import argparse
import os
import torch
from transformers import AutoModelForCausalLM

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="gpt2")
{setup}
args = parser.parse_args()
model = AutoModelForCausalLM.from_pretrained(args.model)
if {test}:
    model = model.to(torch.bfloat16)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
"""

FOLDED_OPTION_TESTS = [
    # Membership in a literal list, and substrings.
    ('parser.add_argument("--precision", default="bf16")', 'args.precision in ("bf16", "bf16-mixed")', "runs"),
    ('parser.add_argument("--precision", default="bf16")', 'args.precision not in ("fp32", "32")', "runs"),
    ('parser.add_argument("--precision", default="bf16-mixed")', '"bf16" in args.precision', "runs"),
    ('parser.add_argument("--precision", default="32")', '"bf16" in args.precision', "skipped"),
    ('parser.add_argument("--precision", default="32")', '"bf16" not in args.precision', "runs"),
    # A config dict read with `.get`: a key it holds is its value; a default is not used (whether
    # the key is there is not known), nor is a prefix of unknown value.
    ('config = {"precision": "bf16", "lr": 1e-5}', 'config.get("precision") == "bf16"', "runs"),
    ('config = {"lr": 1e-5}', 'config.get("precision", "bf16") == "bf16"', "depends"),
    ('parser.add_argument("--precision", default="bf16")', "args.precision.startswith(config.prefix)", "depends"),
    # A type test folds on a literal option against a builtin type, and against torch.dtype (a
    # literal is none); a type it does not know depends.
    ('parser.add_argument("--precision", default="bf16")', "isinstance(args.precision, str)", "runs"),
    ('parser.add_argument("--precision", default="bf16")', "isinstance(args.precision, torch.dtype)", "skipped"),
    ('parser.add_argument("--precision", default="bf16")', "isinstance(args.precision, Precision)", "depends"),
    ("", "isinstance(config.precision, str)", "depends"),
    # Whether torch.optim has a class of the name an option gives is not known here (it has no Lion).
    ('parser.add_argument("--optimizer", default="Lion")', "hasattr(torch.optim, args.optimizer)", "depends"),
    # What a launcher sets is not known: neither side of a test of it.
    ("", 'os.environ["PRECISION"] in ("bf16", "bf16-mixed")', "depends"),
    ('checkpoint = torch.load("last.pt")', 'args.model == checkpoint["model"]', "depends"),
    (
        'gpu = torch.cuda.get_device_name()\nprecision = "bf16" if "A100" in gpu else "fp32"',
        'precision == "bf16"',
        "depends",
    ),
    ('gpu = torch.cuda.get_device_name()\nuse_bf16 = True if "A100" in gpu else False', "use_bf16", "depends"),
    (
        'gpu = torch.cuda.get_device_name()\ndtype = torch.bfloat16 if "A100" in gpu else torch.float16',
        "dtype != torch.float16",
        "depends",
    ),
    # An option with no default is None; a positional one is named by its flag.
    ('parser.add_argument("--precision")', 'args.precision == "bf16"', "skipped"),
    ('parser.add_argument("precision", nargs="?", default="bf16")', 'args.precision == "bf16"', "runs"),
    # Numbers: orderings, chained (Python's `and` of each pair).
    ('parser.add_argument("--num-gpus", type=int, default=1)', "1 < args.num_gpus <= 8", "skipped"),
    ('parser.add_argument("--num-gpus", type=int, default=2)', "1 < args.num_gpus <= 8", "runs"),
    # Not a number to order, nor a string to search, in the code as written: unknown, no traceback
    # (argparse would convert the string default with `type=int`).
    ('parser.add_argument("--num-gpus", type=int, default="1")', "args.num_gpus > 1", "depends"),
    ('parser.add_argument("--num-gpus", type=int, default="1")', "1 < args.num_gpus", "depends"),
    ('parser.add_argument("--precision", default=32)', '"bf16" in args.precision', "depends"),
    ('parser.add_argument("--precision", default=32)', 'args.precision in "bf16-mixed"', "depends"),
    # An `and` whose flag is off is false, whatever the other side (timm's `if args.distributed and
    # args.sync_bn:`); an `or` whose flag is on is true.
    ('parser.add_argument("--sync-bn", action="store_true")', 'os.environ.get("RANK") and args.sync_bn', "skipped"),
    ('parser.add_argument("--bf16", action="store_false")', 'os.environ.get("BF16") or args.bf16', "runs"),
    ('parser.add_argument("--bf16", action="store_true")', 'os.environ.get("BF16") or args.bf16', "depends"),
    # A dtype is true (Dual-KL-Distillation: `dtype=torch_dtype if torch_dtype else None`).
    ("dtype = torch.bfloat16", "dtype", "runs"),
    # Code switched off as written, and the machine the script targets, are no configuration.
    ("", "False", "depends"),
    ("", "0", "depends"),
    ("", "not torch.cuda.is_available()", "depends"),
]


@pytest.mark.parametrize(("setup", "test", "outcome"), FOLDED_OPTION_TESTS)
def test_an_option_test_is_folded_where_its_value_is_known(setup: str, test: str, outcome: str) -> None:
    findings = lint(OPTION_TEST_SCRIPT.format(setup=setup, test=test), "MP003")
    if outcome == "depends":
        assert findings == []
        return
    (finding,) = findings
    if outcome == "runs":
        assert finding.severity is Severity.ERROR and "only when" not in finding.message
    else:
        assert finding.severity is Severity.WARNING and f"only when `{test}` is true" in finding.message


# d3po's scripts/train.py: one option tested twice. The default (LoRA) casts the frozen U-Net to the
# inference dtype, then trains fp32 LoRA layers; without LoRA the U-Net itself is trained, as loaded.
# The second test's other branch is read by running the whole function again without LoRA, so that
# the first test's cast is undone there too: the U-Net is what `from_pretrained` made of it.
D3PO = """
    import argparse

    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.loaders import AttnProcsLayers
    from diffusers.models.attention_processor import LoRAAttnProcessor


    def main(args):
        pipeline = StableDiffusionPipeline.from_pretrained(args.model{load_dtype})
        pipeline.vae.requires_grad_(False)
        pipeline.unet.requires_grad_(not args.use_lora)
        inference_dtype = torch.float16
        pipeline.vae.to("cuda", dtype=inference_dtype)
        if args.use_lora:
            pipeline.unet.to("cuda", dtype=inference_dtype)
        if args.use_lora:
            lora_attn_procs = {{name: LoRAAttnProcessor(hidden_size=320) for name in pipeline.unet.attn_processors}}
            pipeline.unet.set_attn_processor(lora_attn_procs)
            trainable_layers = AttnProcsLayers(pipeline.unet.attn_processors)
        else:
            trainable_layers = pipeline.unet
        optimizer = torch.optim.AdamW(trainable_layers.parameters(), lr=3e-4){expect}
        for batch in loader:
            loss = pipeline.unet(batch).sample.float().pow(2).mean()
            loss.backward()
            optimizer.step()


    if __name__ == "__main__":
        parser = argparse.ArgumentParser()
        parser.add_argument("--model", default="runwayml/stable-diffusion-v1-5")
        parser.add_argument("--no_lora", dest="use_lora", action="store_false")
        main(parser.parse_args())
"""


@pytest.mark.parametrize(
    ("load_dtype", "expect"),
    [
        pytest.param(", torch_dtype=torch.float16", "  # expect: MP003", id="the-pipeline-loaded-half"),
        # ddpo-pytorch's (and d3po's rm/train_ddpo.py's): loaded fp32, only the LoRA path casts the U-Net.
        pytest.param("", "", id="only-the-first-test-casts"),
    ],
)
def test_an_option_tested_twice_is_run_again_from_the_start(load_dtype: str, expect: str) -> None:
    check(D3PO.format(load_dtype=load_dtype, expect=expect), "MP003")


def test_a_run_under_an_option_names_it_and_the_origin_it_saw() -> None:
    (finding,) = lint(D3PO.format(load_dtype=", torch_dtype=torch.float16", expect=""), "MP003")
    assert finding.severity is Severity.WARNING
    assert "only when `args.use_lora` is false" in finding.message
    assert "loaded in float16 at train.py:11" in finding.message


def test_a_negated_test_is_the_same_choice() -> None:
    # sdxl_train.py: the U-Net is frozen and cast only when it is not trained, and handed to the
    # optimizer only when it is: no path casts it and trains it.
    check(
        """
        import argparse

        import torch
        from library.models import TextEncoder, UNet


        def train(args):
            train_unet = args.learning_rate != 0
            unet, text_encoder = UNet(), TextEncoder()
            unet.requires_grad_(train_unet)
            if not train_unet:
                unet.to("cuda", dtype=torch.float16)
            params = list(text_encoder.parameters())
            if train_unet:
                params += list(unet.parameters())
            optimizer = torch.optim.AdamW(params, lr=args.learning_rate)
            for batch in loader:
                unet(text_encoder(batch)).float().mean().backward()
                optimizer.step()


        if __name__ == "__main__":
            parser = argparse.ArgumentParser()
            parser.add_argument("--learning_rate", type=float, default=1e-4)
            train(parser.parse_args())
        """,
        "MP003",
    )


def test_an_or_that_is_false_decides_each_of_its_tests() -> None:
    # fine_tune.py: the text encoder is cast only when it is not trained; the second test is false
    # only where it is trained (so not cast) and has its own learning rate.
    check(
        """
        import argparse

        import torch
        from library.models import TextEncoder, UNet


        def train(args):
            unet, text_encoder = UNet(), TextEncoder()
            training_models = [unet]
            if args.train_text_encoder:
                training_models.append(text_encoder)
            else:
                text_encoder.to("cuda", dtype=torch.float16)
                text_encoder.requires_grad_(False)
            trainable_params = []
            if args.learning_rate_te is None or not args.train_text_encoder:
                for model in training_models:
                    trainable_params.extend(model.parameters())
            else:
                trainable_params = [
                    {"params": list(unet.parameters()), "lr": args.learning_rate},
                    {"params": list(text_encoder.parameters()), "lr": args.learning_rate_te},
                ]
            optimizer = torch.optim.AdamW(trainable_params, lr=args.learning_rate)
            for batch in loader:
                unet(text_encoder(batch)).float().mean().backward()
                optimizer.step()


        if __name__ == "__main__":
            parser = argparse.ArgumentParser()
            parser.add_argument("--train_text_encoder", action="store_true")
            parser.add_argument("--learning_rate", type=float, default=1e-5)
            parser.add_argument("--learning_rate_te", type=float, default=None)
            train(parser.parse_args())
        """,
        "MP003",
    )


def test_an_earlier_branch_that_adds_adapters_is_run_with_its_option() -> None:
    # diffusers' train_dreambooth_lora_sdxl.py: the frozen text encoder is cast to the weight dtype;
    # `--train_text_encoder` gives it LoRA adapters, created in that bf16 (`add_adapter` does not
    # upcast them), then trains them: reported under that option, not in the default configuration.
    check(
        """
        import argparse

        import torch
        from peft import LoraConfig
        from transformers import CLIPTextModel


        def main(args):
            text_encoder = CLIPTextModel.from_pretrained(args.model, subfolder="text_encoder")
            text_encoder.requires_grad_(False)
            text_encoder.to("cuda", dtype=torch.bfloat16)
            if args.train_text_encoder:
                text_encoder.add_adapter(LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
            params = [torch.nn.Parameter(torch.zeros(4))]
            if args.train_text_encoder:
                params += list(filter(lambda p: p.requires_grad, text_encoder.parameters()))
            optimizer = torch.optim.AdamW(params, lr=1e-4)  # expect: MP003
            for batch in loader:
                text_encoder(batch).last_hidden_state.float().mean().backward()
                optimizer.step()


        if __name__ == "__main__":
            parser = argparse.ArgumentParser()
            parser.add_argument("--model", default="stabilityai/stable-diffusion-xl-base-1.0")
            parser.add_argument("--train_text_encoder", action="store_true")
            main(parser.parse_args())
        """,
        "MP003",
    )


def test_any_earlier_branch_that_casts_decides_a_re_run() -> None:
    # diffusers' train_dreambooth_flux.py: the option is first tested where nothing is cast, then where
    # the frozen text encoder is cast (only when it is not trained), then where it is trained.
    check(
        """
        import argparse

        import torch
        from transformers import CLIPTextModel


        def main(args):
            text_encoder = CLIPTextModel.from_pretrained(args.model, subfolder="text_encoder")
            if args.train_text_encoder:
                print("training the text encoder")
            if not args.train_text_encoder:
                text_encoder.to("cuda", dtype=torch.float16)
            params = [torch.nn.Parameter(torch.zeros(4))]
            if args.train_text_encoder:
                params += list(text_encoder.parameters())
            optimizer = torch.optim.AdamW(params, lr=1e-4)
            for batch in loader:
                text_encoder(batch).last_hidden_state.float().mean().backward()
                optimizer.step()


        if __name__ == "__main__":
            parser = argparse.ArgumentParser()
            parser.add_argument("--model", default="black-forest-labs/FLUX.1-dev")
            parser.add_argument("--train_text_encoder", action="store_true")
            main(parser.parse_args())
        """,
        "MP003",
    )


# atropos's example trainer: a pydantic model of settings built by keyword from the options, its
# fields' defaults given by `Field(default, description=...)`.
PYDANTIC_CONFIG = """
    import argparse
    from typing import List, Optional

    import torch
    from pydantic import BaseModel, Field
    from transformers import AutoModelForCausalLM


    class TrainingConfig(BaseModel):
        model_name: str = Field(..., description="Name of the base model")
        dtype: str = Field({dtype}, description="Data type for model weights")
        train_layer_indices: Optional[List[int]] = Field(None, description="Layers to train")


    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--model-name", required=True)
        args = parser.parse_args()
        config = TrainingConfig(model_name=args.model_name)
        model = AutoModelForCausalLM.from_pretrained(config.model_name, torch_dtype=getattr(torch, config.dtype))
        if config.train_layer_indices is not None:
            model = model.float()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6){expect}


    main()
"""


@pytest.mark.parametrize(
    ("dtype", "expect"),
    [('"bfloat16"', "  # expect: MP003"), ('"float32"', ""), ('default="bfloat16"', "  # expect: MP003")],
    ids=["bf16-default", "fp32-default", "default-by-keyword"],
)
def test_a_pydantic_config_holds_its_field_defaults(dtype: str, expect: str) -> None:
    check(PYDANTIC_CONFIG.format(dtype=dtype, expect=expect), "MP003")


DISTILLATION_TASK = """
    import argparse

    import torch
    import torch.nn.functional as F
    from torch import nn


    class ClassificationTask(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x, y):
            return F.cross_entropy(self.model(x).float(), y)


    class LogitDistillationTask(nn.Module):
        def __init__(self, student_model, teacher_name):
            super().__init__()
            self.student = student_model

        def forward(self, x, teacher_logp):
            logp = F.log_softmax(self.student(x), dim=-1)  # expect: MP001
            return F.kl_div(logp, teacher_logp, log_target=True, reduction="batchmean")


    def train_one_epoch(task, loader, optimizer):
        for x, y in loader:
            loss = task(x, y)
            loss.backward()
            optimizer.step()


    parser = argparse.ArgumentParser()
    parser.add_argument("--kd-model-name", default=None)
    args = parser.parse_args()
    model = nn.Linear(8, 8).cuda().to(torch.bfloat16)
    if args.kd_model_name is not None:
        task = LogitDistillationTask(student_model=model, teacher_name=args.kd_model_name)
    else:
        task = ClassificationTask(model)
    train_one_epoch(task, loader, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
"""


def test_an_object_built_around_a_half_model_on_a_path_read_aside_is_followed() -> None:
    """timm's train.py: a distillation task built over the bf16 student only with `--kd-model-name`;
    the training loop after the `if` runs it on that path too."""
    (finding,) = lint(DISTILLATION_TASK, "MP001")
    assert finding.severity is Severity.WARNING
    assert "only when `args.kd_model_name is not None`" in finding.message


def test_a_model_is_true_and_its_test_is_no_option() -> None:
    """`if ref_policy:` over a model that was built: the branch that holds it runs, and the other
    is no configuration to read aside (it would warn "only when `model` is false")."""
    source = """
        import torch


        def main():
            model = torch.nn.Linear(8, 8).cuda()
            if model:
                policy = model
            else:
                policy = torch.nn.Linear(8, 8).to(torch.bfloat16)
            optimizer = torch.optim.AdamW(policy.parameters())


        main()
    """
    assert lint(source, "MP003") == []
