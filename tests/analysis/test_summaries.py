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
