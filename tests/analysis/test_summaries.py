"""Functions and classes of the linted code (mplint/analysis/summaries.py): what `self.<attr>` holds
across a class's methods, what decorators and bases make of a `def` or `class`, how a call binds
its parameters and what it writes back, and the bounds on how often a function is evaluated.
Each case is training code the way it is written, checked through the rule that reads the fact."""

from __future__ import annotations

import pytest

from tests.rules.casekit import bug, check, ok

# What `self.<attr>` holds in a method analysed on its own: what `__init__` stored, else what
# another method of the class (or of a base class) stored.
ATTRIBUTES_ACROSS_METHODS = [
    bug(
        "model-stored-by-setup",
        """
        import torch
        import torch.nn.functional as F

        class Trainer:
            def __init__(self, args):
                self.args = args

            def setup(self):
                self.model = torch.nn.Linear(512, 32000).to(torch.bfloat16)

            def compute_logps(self, hidden):
                logits = self.model(hidden)
                return F.log_softmax(logits, dim=-1)  # expect: MP001
        """,
    ),
    # `self.model = None` in `__init__` only means "not yet": the model `setup()` loads is the one.
    bug(
        "none-in-init-then-set-by-setup",
        """
        import torch
        import torch.nn.functional as F

        class Trainer:
            def __init__(self, args):
                self.args = args
                self.model = None

            def setup(self):
                self.model = torch.nn.Linear(512, 32000).to(torch.bfloat16)

            def compute_logps(self, hidden):
                logits = self.model(hidden)
                return F.log_softmax(logits, dim=-1)  # expect: MP001
        """,
    ),
    # ... and so does a method that drops it again when training ends.
    bug(
        "set-by-setup-then-none-in-cleanup",
        """
        import torch
        import torch.nn.functional as F

        class Trainer:
            def __init__(self, args):
                self.args = args

            def setup(self):
                self.model = torch.nn.Linear(512, 32000).to(torch.bfloat16)

            def cleanup(self):
                self.model = None

            def compute_logps(self, hidden):
                logits = self.model(hidden)
                return F.log_softmax(logits, dim=-1)  # expect: MP001
        """,
    ),
    bug(
        "annotated-store-in-setup",
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Trainer:
            def __init__(self, args):
                self.args = args

            def setup(self):
                self.model: nn.Module = nn.Linear(512, 32000).to(torch.bfloat16)

            def compute_logps(self, hidden):
                return F.log_softmax(self.model(hidden), dim=-1)  # expect: MP001
        """,
    ),
    # A method inherited from a base trainer of the linted code stores the model the subclass uses.
    bug(
        "model-stored-by-a-base-class-method",
        """
        import torch
        import torch.nn.functional as F

        class BaseTrainer:
            def __init__(self, args):
                self.args = args

            def build_model(self):
                self.model = torch.nn.Linear(512, 32000).to(torch.bfloat16)

        class DPOTrainer(BaseTrainer):
            def compute_logps(self, hidden):
                return F.log_softmax(self.model(hidden), dim=-1)  # expect: MP001
        """,
    ),
    # A method that stores on another object (not on `self`) tells nothing of the instance.
    bug(
        "method-storing-on-its-batch",
        """
        import torch
        import torch.nn.functional as F

        class Trainer:
            def __init__(self, args):
                self.args = args

            def setup(self):
                self.model = torch.nn.Linear(512, 32000).to(torch.bfloat16)

            def compute_logps(self, batch):
                batch.hidden = batch.hidden.cuda(non_blocking=True)
                return F.log_softmax(self.model(batch.hidden), dim=-1)  # expect: MP001
        """,
    ),
    # The model handed to `__init__` is unknown; a method that may or may not run casts it.
    ok(
        "unknown-model-cast-by-an-optional-method",
        """
        import torch
        import torch.nn.functional as F

        class Trainer:
            def __init__(self, model):
                self.model = model

            def to_bf16(self):
                self.model = self.model.to(torch.bfloat16)

            def compute_logps(self, hidden):
                return F.log_softmax(self.model(hidden), dim=-1)
        """,
    ),
    # Two methods store different models: neither is known to be the one (joined).
    ok(
        "model-stored-in-two-precisions",
        """
        import torch
        import torch.nn.functional as F

        class Trainer:
            def __init__(self, args):
                self.args = args

            def load_for_eval(self):
                self.model = torch.nn.Linear(512, 32000).to(torch.bfloat16)

            def load_for_training(self):
                self.model = torch.nn.Linear(512, 32000).float()

            def compute_logps(self, hidden):
                return F.log_softmax(self.model(hidden), dim=-1)
        """,
    ),
]


@pytest.mark.parametrize("source", ATTRIBUTES_ACROSS_METHODS)
def test_attributes_across_methods(source: str) -> None:
    check(source, "MP001")


# A flag `__init__` sets is the configuration that runs by default; a method that may flip it does not.
FLAGS_ACROSS_METHODS = [
    ok(
        "amp-off-by-default-enabled-by-a-method",
        """
        import torch

        class Trainer:
            def __init__(self, model, optimizer):
                self.model = model.cuda()
                self.optimizer = optimizer
                self.use_amp = False

            def enable_amp(self):
                self.use_amp = True

            def train_step(self, batch):
                with torch.autocast("cuda", dtype=torch.float16, enabled=self.use_amp):
                    loss = self.model(batch).mean()
                loss.backward()
                self.optimizer.step()
        """,
    ),
    bug(
        "amp-on-by-default",
        """
        import torch

        class Trainer:
            def __init__(self, model, optimizer):
                self.model = model.cuda()
                self.optimizer = optimizer
                self.use_amp = True

            def disable_amp(self):
                self.use_amp = False

            def train_step(self, batch):
                with torch.autocast("cuda", dtype=torch.float16, enabled=self.use_amp):  # expect: MP002
                    loss = self.model(batch).mean()
                loss.backward()
                self.optimizer.step()
        """,
    ),
]


@pytest.mark.parametrize("source", FLAGS_ACROSS_METHODS)
def test_flags_across_methods(source: str) -> None:
    check(source, "MP002")


# Decorators of a `def`, however many it has and in whichever order: `@torch.no_grad()`,
# `@staticmethod`, `@contextlib.contextmanager` each keep their meaning under another one.
DECORATED_FUNCTIONS_MP002 = [
    # The teacher's fp16 logits come from under no_grad: no gradient flows back through the region.
    ok(
        "no-grad-above-an-autocast-decorator",
        """
        import torch

        @torch.no_grad()
        @torch.autocast("cuda", dtype=torch.float16)
        def teacher_logits(teacher, images):
            return teacher(images)

        def train(student, teacher, loader, optimizer):
            for images, labels in loader:
                target = teacher_logits(teacher, images).float().softmax(-1)
                loss = -(target * student(images).log_softmax(-1)).sum(-1).mean()
                loss.backward()
                optimizer.step()
        """,
    ),
    bug(
        "autocast-decorator-without-no-grad",
        """
        import torch

        @torch.autocast("cuda", dtype=torch.float16)  # expect: MP002
        def student_logits(student, images):
            return student(images)

        def train(student, teacher, loader, optimizer):
            for images, labels in loader:
                target = teacher(images).float().softmax(-1)
                loss = -(target * student_logits(student, images).float().log_softmax(-1)).sum(-1).mean()
                loss.backward()
                optimizer.step()
        """,
    ),
]


@pytest.mark.parametrize("source", DECORATED_FUNCTIONS_MP002)
def test_decorated_functions_mp002(source: str) -> None:
    check(source, "MP002")


DECORATED_FUNCTIONS_MP001 = [
    # A static method binds no receiver, called on the instance: `logits` is the first argument.
    bug(
        "staticmethod-above-no-grad",
        """
        import torch
        import torch.nn as nn

        class Policy(nn.Module):
            def __init__(self):
                super().__init__()
                self.lm_head = nn.Linear(512, 32000)

            @staticmethod
            @torch.no_grad()
            def token_logps(logits, labels):
                return torch.log_softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1))  # expect: MP001

            def forward(self, hidden, labels):
                return self.token_logps(self.lm_head(hidden), labels)

        policy = Policy().to(torch.bfloat16)
        logps = policy(hidden, labels)
        """,
    ),
    ok(
        "staticmethod-above-no-grad-given-fp32-logits",
        """
        import torch
        import torch.nn as nn

        class Policy(nn.Module):
            def __init__(self):
                super().__init__()
                self.lm_head = nn.Linear(512, 32000)

            @staticmethod
            @torch.no_grad()
            def token_logps(logits, labels):
                return torch.log_softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1))

            def forward(self, hidden, labels):
                return self.token_logps(self.lm_head(hidden).float(), labels)

        policy = Policy().to(torch.bfloat16)
        logps = policy(hidden, labels)
        """,
    ),
    # `with evaluating(model):` enters the fp16 autocast region active at the helper's `yield`.
    bug(
        "contextmanager-above-no-grad",
        """
        import contextlib

        import torch

        @contextlib.contextmanager
        @torch.no_grad()
        def evaluating(model):
            model.eval()
            with torch.autocast("cuda", dtype=torch.float16):
                yield
            model.train()

        def evaluate(model, x):
            with evaluating(model):
                logits = model(x)
            return logits.log_softmax(-1)  # expect: MP001
        """,
    ),
]


@pytest.mark.parametrize("source", DECORATED_FUNCTIONS_MP001)
def test_decorated_functions_mp001(source: str) -> None:
    check(source, "MP001")


# A helper called from a model's forward computes inside the model (`CallFact.in_module`): a
# cumsum there is the model's own arithmetic (MP306 leaves sums in a module's methods alone).
IN_MODULE = [
    ok(
        "sampling-helper-called-from-forward",
        """
        import torch
        import torch.nn as nn

        def sample_tokens(logits):
            cdf = logits.softmax(dim=-1).cumsum(dim=-1)
            return torch.searchsorted(cdf, torch.rand(cdf.shape[:-1] + (1,), device=cdf.device))

        class Sampler(nn.Module):
            def __init__(self):
                super().__init__()
                self.lm_head = nn.Linear(512, 32000)

            def forward(self, hidden):
                return sample_tokens(self.lm_head(hidden))

        sampler = Sampler().cuda().to(torch.bfloat16)
        tokens = sampler(hidden)
        """,
    ),
    bug(
        "sampling-helper-called-by-the-training-code",
        """
        import torch
        import torch.nn as nn

        def sample_tokens(logits):
            cdf = logits.softmax(dim=-1).cumsum(dim=-1)  # expect: MP306
            return torch.searchsorted(cdf, torch.rand(cdf.shape[:-1] + (1,), device=cdf.device))

        lm_head = nn.Linear(512, 32000).cuda().to(torch.bfloat16)
        tokens = sample_tokens(lm_head(hidden))
        """,
    ),
]


@pytest.mark.parametrize("source", IN_MODULE)
def test_in_module(source: str) -> None:
    check(source, "MP306")


# What a class's bases make of it, through bases of the linted code too: an nn.Module (a Hugging
# Face modeling file's `LlamaPreTrainedModel`), an optimizer; and bases the analysis cannot tell.
CLASS_BASES_MP001 = [
    bug(
        "causal-lm-over-a-pretrained-model-base-of-the-file",
        """
        import torch
        import torch.nn.functional as F
        from transformers import PreTrainedModel

        class LlamaPreTrainedModel(PreTrainedModel):
            config_class = LlamaConfig

        class LlamaForCausalLM(LlamaPreTrainedModel):
            def __init__(self, config):
                super().__init__(config)
                self.lm_head = torch.nn.Linear(config.hidden_size, config.vocab_size)

            def forward(self, hidden):
                return self.lm_head(hidden)

        model = LlamaForCausalLM(config).to(torch.bfloat16)
        logp = F.log_softmax(model(hidden), dim=-1)  # expect: MP001
        """,
    ),
    # A base the analysis cannot evaluate (`Generic[T]`) next to nn.Module.
    bug(
        "generic-module",
        """
        from typing import Generic, TypeVar

        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        T = TypeVar("T")

        class Head(Generic[T], nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = nn.Linear(512, 32000)

            def forward(self, x):
                return self.proj(x)

        head = Head().to(torch.bfloat16)
        logp = F.log_softmax(head(hidden), dim=-1)  # expect: MP001
        """,
    ),
    # A base class picked by a flag between two classes of the file: the class still holds
    # its own methods (those of the bases are not known).
    bug(
        "base-class-picked-by-a-flag",
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class ConvStem(nn.Module):
            def stem(self, x):
                return x

        class PatchStem(nn.Module):
            def stem(self, x):
                return x

        Stem = ConvStem if cfg.arch == "resnet" else PatchStem

        class Classifier(Stem):
            def __init__(self):
                super().__init__()
                self.head = nn.Linear(512, 1000)

            def logprobs(self, x):
                return F.log_softmax(self.head(x), dim=-1)  # expect: MP001

        model = Classifier().cuda().to(torch.bfloat16)
        logp = model.logprobs(images)
        """,
    ),
    # A class decorator made by functools.partial is not followed (nothing registered), the class still is.
    bug(
        "class-decorated-by-a-partial",
        """
        import functools

        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        MODELS = {}

        def register(name, cls):
            MODELS[name] = cls
            return cls

        @functools.partial(register, "small")
        class Small(nn.Module):
            def __init__(self):
                super().__init__()
                self.head = nn.Linear(512, 32000)

            def forward(self, hidden):
                return self.head(hidden)

        model = Small().to(torch.bfloat16)
        logp = F.log_softmax(model(hidden), dim=-1)  # expect: MP001
        """,
    ),
    # A dataclass with a docstring and a class attribute besides its annotated fields.
    bug(
        "dataclass-config-dtype-field",
        """
        from dataclasses import dataclass

        import torch
        import torch.nn.functional as F

        @dataclass
        class TrainConfig:
            \"\"\"What a run trains with.\"\"\"

            model_name: str = "gpt2"
            dtype: torch.dtype = torch.bfloat16
            log_every = 10

        cfg = TrainConfig()
        model = torch.nn.Linear(512, 32000).to(cfg.dtype)
        logp = F.log_softmax(model(hidden), dim=-1)  # expect: MP001
        """,
    ),
]


@pytest.mark.parametrize("source", CLASS_BASES_MP001)
def test_class_bases_mp001(source: str) -> None:
    check(source, "MP001")


CLASS_BASES_MP003 = [
    bug(
        "optimizer-over-an-optimizer-base-of-the-file",
        """
        import torch

        class Lion(torch.optim.Optimizer):
            def __init__(self, params, lr=1e-4):
                super().__init__(params, dict(lr=lr))

        class DecoupledLion(Lion):
            pass

        model = torch.nn.Linear(512, 512).cuda().half()
        optimizer = DecoupledLion(model.parameters(), lr=3e-5)  # expect: MP003
        """,
    ),
]


@pytest.mark.parametrize("source", CLASS_BASES_MP003)
def test_class_bases_mp003(source: str) -> None:
    check(source, "MP003")


# Whether a class is an nn.Module decides whether a cumsum in its methods is the model's own
# arithmetic (MP306 leaves those alone) or the training code's.
CLASS_BASES_MP306 = [
    bug(
        "sampling-method-of-a-class-over-another-base",
        """
        from abc import ABC

        import torch

        class NucleusSampler(ABC):
            def __init__(self, top_p):
                self.top_p = top_p

            def sample(self, logits):
                cdf = logits.softmax(dim=-1).cumsum(dim=-1)  # expect: MP306
                return torch.searchsorted(cdf, torch.rand(cdf.shape[:-1] + (1,), device=cdf.device))

        lm_head = torch.nn.Linear(512, 32000).cuda().to(torch.bfloat16)
        tokens = NucleusSampler(0.9).sample(lm_head(hidden))
        """,
    ),
]


@pytest.mark.parametrize("source", CLASS_BASES_MP306)
def test_class_bases_mp306(source: str) -> None:
    check(source, "MP306")


# What `with helper():` enters for a `@contextlib.contextmanager` helper: the autocast region at its
# `yield`, one that may or may not be active when its yields differ; torch's default dtype it sets
# before its `yield`, when every yield sees the same one.
CONTEXT_MANAGER_HELPERS = [
    bug(
        "autocast-helper",
        """
        import contextlib

        import torch

        @contextlib.contextmanager
        def autocast_ctx():
            with torch.autocast("cuda", dtype=torch.float16):
                yield

        def evaluate(model, x):
            with autocast_ctx():
                logits = model(x)
            return logits.log_softmax(-1)  # expect: MP001
        """,
    ),
    # Off when `enabled` is false: the logits' dtype depends on the run.
    ok(
        "autocast-helper-on-only-when-enabled",
        """
        import contextlib

        import torch

        @contextlib.contextmanager
        def maybe_autocast(enabled):
            if enabled:
                with torch.autocast("cuda", dtype=torch.float16):
                    yield
            else:
                yield

        def evaluate(model, x, use_amp):
            with maybe_autocast(use_amp):
                logits = model(x)
            return logits.log_softmax(-1)
        """,
    ),
    # bf16 or fp16 by a flag the analysis cannot tell.
    ok(
        "autocast-helper-of-either-dtype",
        """
        import contextlib

        import torch

        @contextlib.contextmanager
        def mixed_precision(use_bf16):
            if use_bf16:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    yield
            else:
                with torch.autocast("cuda", dtype=torch.float16):
                    yield

        def evaluate(model, x, use_bf16):
            with mixed_precision(use_bf16):
                logits = model(x)
            return logits.log_softmax(-1)
        """,
    ),
    bug(
        "default-dtype-helper",
        """
        import contextlib

        import torch

        @contextlib.contextmanager
        def default_dtype(dtype):
            previous = torch.get_default_dtype()
            torch.set_default_dtype(dtype)
            yield
            torch.set_default_dtype(previous)

        with default_dtype(torch.bfloat16):
            model = torch.nn.Linear(512, 32000)
        logp = torch.log_softmax(model(hidden), dim=-1)  # expect: MP001
        """,
    ),
    # A helper that sets no dtype (a timer) does not scope what its block sets: the default outlives it.
    bug(
        "timer-helper-around-set-default-dtype",
        """
        import contextlib
        import time

        import torch

        @contextlib.contextmanager
        def timed(label):
            start = time.perf_counter()
            yield
            print(f"{label}: {time.perf_counter() - start:.1f}s")

        with timed("setup"):
            torch.set_default_dtype(torch.bfloat16)
            tokenizer = load_tokenizer(args.model)
        model = torch.nn.Linear(512, 32000)
        logp = torch.log_softmax(model(hidden), dim=-1)  # expect: MP001
        """,
    ),
    # bf16 only when asked: the model's dtype depends on the run.
    ok(
        "default-dtype-helper-only-when-asked",
        """
        import contextlib

        import torch

        @contextlib.contextmanager
        def default_dtype_if(half):
            if half:
                torch.set_default_dtype(torch.bfloat16)
                yield
                torch.set_default_dtype(torch.float32)
            else:
                yield

        with default_dtype_if(args.half):
            model = torch.nn.Linear(512, 32000)
        logp = torch.log_softmax(model(hidden), dim=-1)
        """,
    ),
]


@pytest.mark.parametrize("source", CONTEXT_MANAGER_HELPERS)
def test_context_manager_helpers(source: str) -> None:
    check(source, "MP001")


def test_a_region_a_helper_may_enter_reaches_backward() -> None:
    check(
        """
        import contextlib

        import torch

        @contextlib.contextmanager
        def maybe_autocast(enabled):
            if enabled:
                with torch.autocast("cuda", dtype=torch.float16):  # expect: MP002
                    yield
            else:
                yield

        def train(model, loader, optimizer, use_amp):
            for batch in loader:
                with maybe_autocast(use_amp):
                    loss = model(batch).mean()
                loss.backward()
                optimizer.step()
        """,
        "MP002",
    )


# The layers an nn.Module's `__init__` builds are its tree (MP004 looks for BatchNorm there); what
# its other methods build is not.
MODULE_TREES = [
    ok(
        "teacher-built-by-a-method-of-the-student",
        """
        import torch
        import torch.nn as nn

        class Student(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Conv2d(3, 16, 3), nn.GroupNorm(4, 16), nn.ReLU())

            def make_teacher(self):
                return nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), nn.ReLU())

        student = Student().cuda().half()
        teacher = student.make_teacher()
        optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
        """,
    ),
    bug(
        "batchnorm-built-by-a-helper-of-init",
        """
        import torch
        import torch.nn as nn

        def conv_bn(c_in, c_out):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3), nn.BatchNorm2d(c_out), nn.ReLU())

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.stages = [conv_bn(3, 16), conv_bn(16, 32)]

        model = Net().cuda().half()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # expect: MP004
        """,
    ),
    # A plain helper object that builds the stages inside the model's `__init__` builds them for the model.
    bug(
        "batchnorm-built-by-a-builder-object-in-init",
        """
        import torch
        import torch.nn as nn

        def conv_bn(c_in, c_out):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3), nn.BatchNorm2d(c_out), nn.ReLU())

        class StageBuilder:
            def __init__(self, widths):
                self.stages = [conv_bn(c_in, c_out) for c_in, c_out in zip(widths, widths[1:])]

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.stages = StageBuilder([3, 16, 32]).stages

        model = Net().cuda().half()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # expect: MP004
        """,
    ),
]


@pytest.mark.parametrize("source", MODULE_TREES)
def test_module_trees(source: str) -> None:
    check(source, "MP004")


# A call binds its arguments to the function's parameters; a module handed in and cast in place
# comes back cast (`prepare(model)`), a parameter rebound to another model does not.
CALLS_MP001 = [
    bug(
        "module-cast-in-place-by-a-helper",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        def prepare(model):
            model.to(torch.bfloat16)
            model.gradient_checkpointing_enable()

        policy = AutoModelForCausalLM.from_pretrained(args.model_name).cuda()
        prepare(policy)
        logits = policy(input_ids).logits
        logp = F.log_softmax(logits, dim=-1)  # expect: MP001
        """,
    ),
    ok(
        "parameter-rebound-to-another-model",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        def load_reference(model, path):
            model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.bfloat16)
            model.eval()
            return model

        policy = AutoModelForCausalLM.from_pretrained(args.model_name).cuda()
        reference = load_reference(policy, args.ref_path)
        logits = policy(input_ids).logits
        logp = F.log_softmax(logits, dim=-1)
        """,
    ),
    # `def forward(*args)` (the receiver in `args`, as the standard library writes some methods):
    # no parameter takes the receiver.
    bug(
        "forward-taking-star-args",
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.head = nn.Linear(512, 32000)

            def forward(*args, **kwargs):
                self, hidden = args
                return self.head(hidden)

        model = Net().to(torch.bfloat16)
        logp = F.log_softmax(model(hidden), dim=-1)  # expect: MP001
        """,
    ),
]


@pytest.mark.parametrize("source", CALLS_MP001)
def test_calls_mp001(source: str) -> None:
    check(source, "MP001")
