"""How training code reaches its models through objects: arguments handed on by `*args, **kwargs`,
attributes computed by `@property` / `@cached_property` methods, a method's free names read in its
module (never in its class body), a setter that `return self`s, and a loop over a list of objects.
Cases are shaped after Open-Reasoner-Zero (orz/exps/examples/ppo/ppo_base_exp.py: an experiment
whose `@cached_property` methods build the strategy and the trainer, `PPOExp().set_cfg(cfg)`) and
OpenRLHF's actor groups (`async_init_model_from_pretrained(self, *args, **kwargs)`)."""

from __future__ import annotations

import pytest

from .casekit import bug, check, ok

CASES = [
    bug(
        "arguments-forwarded-by-star-args-and-star-kwargs",
        """
        import torch
        from transformers import AutoModelForCausalLM

        class Policy:
            def load(self, path, dtype=torch.float32):
                self.model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=dtype)

            def logprobs(self, input_ids):
                return torch.log_softmax(self.model(input_ids).logits, -1)  # expect: MP001

        class Group:
            def __init__(self, policy):
                self.policy = policy

            def load(self, *args, **kwargs):
                return self.policy.load(*args, **kwargs)

        group = Group(Policy())
        group.load("Qwen/Qwen2.5-7B", dtype=torch.bfloat16)
        group.policy.logprobs(input_ids)
        """,
    ),
    ok(
        "forwarded-arguments-that-keep-fp32",
        """
        import torch
        from transformers import AutoModelForCausalLM

        def load(path, dtype=torch.bfloat16):
            return AutoModelForCausalLM.from_pretrained(path, torch_dtype=dtype)

        def load_all(*args, **kwargs):
            return load(*args, **kwargs)

        model = load_all("gpt2", dtype=torch.float32)
        logp = torch.log_softmax(model(input_ids).logits, -1)
        """,
    ),
    bug(
        "experiment-built-by-cached-properties",
        """
        from functools import cached_property

        import torch
        from transformers import AutoModelForCausalLM

        class Config:
            bf16: bool = True
            pretrain: str = "Qwen/Qwen2.5-7B"

        class Trainer:
            def __init__(self, cfg):
                dtype = torch.bfloat16 if cfg.bf16 else torch.float32
                self.model = AutoModelForCausalLM.from_pretrained(cfg.pretrain, torch_dtype=dtype)

            def step(self, input_ids):
                return torch.log_softmax(self.model(input_ids).logits, -1)  # expect: MP001

        class Experiment:
            def set_cfg(self, cfg):
                self.cfg = cfg
                return self

            @cached_property
            def trainer(self):
                return Trainer(self.cfg)

            def run(self, input_ids):
                self.trainer.step(input_ids)

        Experiment().set_cfg(Config()).run(input_ids)
        """,
    ),
    ok(
        "property-of-an-fp32-configuration",
        """
        import torch
        from transformers import AutoModelForCausalLM

        class Experiment:
            def __init__(self, bf16):
                self.bf16 = bf16

            @property
            def dtype(self):
                return torch.bfloat16 if self.bf16 else torch.float32

            def run(self, input_ids):
                model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=self.dtype)
                return torch.log_softmax(model(input_ids).logits, -1)

        Experiment(bf16=False).run(input_ids)
        """,
    ),
    # `def PolicyActor(self): return PolicyActor` returns the module's class: a method does not see
    # the names of its class body.
    bug(
        "method-named-like-the-module-global-it-returns",
        """
        from functools import cached_property

        import torch

        class PolicyActor:
            def __init__(self, dtype):
                self.model = torch.nn.Linear(16, 1000).to(dtype)

            def logprobs(self, x):
                return torch.log_softmax(self.model(x), -1)  # expect: MP001

        class Experiment:
            @cached_property
            def PolicyActor(self):
                return PolicyActor

            def run(self, x):
                actor = self.PolicyActor(torch.bfloat16)
                return actor.logprobs(x)

        Experiment().run(torch.randn(4, 16))
        """,
    ),
    bug(
        "each-object-of-a-list-runs",
        """
        import torch

        class Critic:
            def __init__(self, dtype):
                self.head = torch.nn.Linear(16, 1000).to(dtype)

            def logprobs(self, x):
                return torch.log_softmax(self.head(x), -1)  # expect: MP001

        critics = [Critic(torch.float16), Critic(torch.float16)]
        for critic in critics:
            critic.logprobs(torch.randn(4, 16))
        """,
    ),
    ok(
        "a-list-of-fp32-objects",
        """
        import torch

        class Critic:
            def __init__(self, dtype):
                self.head = torch.nn.Linear(16, 1000).to(dtype)

            def logprobs(self, x):
                return torch.log_softmax(self.head(x), -1)

        for critic in [Critic(torch.float32), Critic(torch.float32)]:
            critic.logprobs(torch.randn(4, 16))
        """,
    ),
    bug(
        # fuchsia's trainer: a method that hands back the model it moved (`return self.model`), run as
        # a statement, is no cast of the trainer, which keeps its model for the steps after it.
        "a-method-returning-another-object-leaves-its-receiver-as-it-was",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM


        class Trainer:
            def __init__(self, model):
                self.model = model
                self.on_gpu = False

            def load_model_to_gpu(self):
                for param in self.model.parameters():
                    param.data = param.data.to("cuda", non_blocking=True)
                self.on_gpu = True
                return self.model

            def token_logps(self, input_ids):
                logits = self.model(input_ids=input_ids).logits
                return F.log_softmax(logits, dim=-1)  # expect: MP001

            def train(self, batches):
                for batch in batches:
                    if not self.on_gpu:
                        self.load_model_to_gpu()
                    logps = self.token_logps(batch)


        model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)
        Trainer(model).train(loader)
        """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_objects_the_model_is_reached_through(source: str) -> None:
    check(source, "MP001")
