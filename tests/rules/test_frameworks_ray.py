"""Ray in the precision model: an actor's methods run as direct calls would when they are reached
only through handles (`handle.method.remote(*args)`, the handle made by `Cls.remote(...)` or
`Cls.options(...).remote(...)`, the class made remote by `@ray.remote` or `ray.remote(...)(Cls)`),
with the actor's state kept from one method to the next; a remote function runs on its arguments,
and `ray.get(ref)` gives the value back.

Cases are shaped after Open-Reasoner-Zero and OpenRLHF (orz/ppo/actors.py: a strategy whose
`prepare` builds the DeepSpeed engine, handed to `init_model_from_pretrained`, then `ppo_train` on
the same handle; the log-probs in models.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .casekit import bug, check, check_files, ok

STRATEGY = """
import deepspeed


class DeepspeedStrategy:
    def __init__(self, args):
        self.args = args

    def get_ds_train_config(self):
        return {"bf16": {"enabled": self.args.bf16}, "zero_optimization": {"stage": 3}}

    def prepare(self, model):
        engine, optimizer, _, scheduler = deepspeed.initialize(model=model, config=self.get_ds_train_config())
        return engine, optimizer, scheduler
"""

GROUP = """
import ray
import deepspeed
import torch.nn.functional as F
from transformers import AutoModelForCausalLM


def log_probs_from_logits(logits, labels):
    log_probs = F.log_softmax(logits, dim=-1){expect}
    return log_probs.gather(dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)


class PolicyRayActorBase:
    def __init__(self, world_size, rank):
        self.rank = rank

    def init_model_from_pretrained(self, bf16, pretrain):
        model = AutoModelForCausalLM.from_pretrained(pretrain)
        self.model, self.optimizer, _, _ = deepspeed.initialize(model=model, config={{"bf16": {{"enabled": bf16}}}})

    def ppo_train(self, sequences):
        logits = self.model(sequences).logits
        loss = -log_probs_from_logits(logits[:, :-1], sequences[:, 1:]).mean()
        self.model.backward(loss)


PolicyRayActor = ray.remote(num_gpus=1)(PolicyRayActorBase)


class PPORayActorGroup:
    def __init__(self, num_nodes, num_gpus_per_node, ray_actor_type, pg=None):
        self._num_nodes = num_nodes
        self._num_gpus_per_node = num_gpus_per_node
        self.ray_actor_type = ray_actor_type
        self._initiate_actors(pg)

    def _initiate_actors(self, pg):
        world_size = self._num_nodes * self._num_gpus_per_node
        master_actor = self.ray_actor_type.options(num_gpus=1, placement_group=pg).remote(world_size, 0)
        self._actor_handlers = [master_actor]
        for rank in range(1, world_size):
            self._actor_handlers.append(self.ray_actor_type.options(num_gpus=1).remote(world_size, rank))

    def async_init_model_from_pretrained(self, *args, **kwargs):
        return [actor.init_model_from_pretrained.remote(*args, **kwargs) for actor in self._actor_handlers]

    def async_ppo_train(self, sequences):
        return [actor.ppo_train.remote(sequences) for actor in self._actor_handlers]


def main(pretrain, sequences):
    policy_model = PPORayActorGroup(1, 8, PolicyRayActor)
    ray.get(policy_model.async_init_model_from_pretrained({bf16}, pretrain=pretrain))
    ray.get(policy_model.async_ppo_train(sequences))


if __name__ == "__main__":
    main("Qwen/Qwen2.5-7B", load_sequences())
"""

ACTORS = [
    bug(
        "policy-actor-wrapped-by-ray-remote-initialised-then-trained-on-one-handle",
        STRATEGY
        + """
import ray
import torch.nn.functional as F
from types import SimpleNamespace
from transformers import AutoModelForCausalLM


def log_probs_from_logits(logits, labels):
    log_probs = F.log_softmax(logits, dim=-1)  # expect: MP001
    return log_probs.gather(dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)


class PolicyRayActorBase:
    def __init__(self, world_size, rank, master_addr=None):
        self.world_size = world_size
        self.rank = rank

    def init_model_from_pretrained(self, strategy, pretrain):
        self.strategy = strategy
        model = AutoModelForCausalLM.from_pretrained(pretrain)
        self.model, self.optimizer, self.scheduler = strategy.prepare(model)

    def ppo_train(self, replay_buffer):
        for experience in replay_buffer:
            logits = self.model(experience["sequences"]).logits
            log_probs = log_probs_from_logits(logits[:, :-1], experience["sequences"][:, 1:])
            loss = -(log_probs * experience["advantages"]).mean()
            self.model.backward(loss)
            self.model.step()


PolicyRayActor = ray.remote(num_gpus=1)(PolicyRayActorBase)


def train(pretrain, replay_buffer):
    strategy = DeepspeedStrategy(SimpleNamespace(bf16=True))
    actor = PolicyRayActor.options(num_cpus=1, num_gpus=1).remote(1, 0)
    ray.get(actor.init_model_from_pretrained.remote(strategy, pretrain))
    return ray.get(actor.ppo_train.remote(replay_buffer))
""",
    ),
    bug(
        "decorated-actor-held-by-a-trainer-attribute",
        STRATEGY
        + """
import ray
import torch
from types import SimpleNamespace
from transformers import AutoModelForCausalLM


@ray.remote(num_gpus=1)
class CriticActor:
    def init_model(self, strategy, path):
        self.model, self.optimizer, _ = strategy.prepare(AutoModelForCausalLM.from_pretrained(path))

    def train_step(self, batch):
        logits = self.model(batch["input_ids"]).logits
        return -torch.log_softmax(logits, -1).mean()  # expect: MP001


class Trainer:
    def __init__(self, args):
        self.strategy = DeepspeedStrategy(args)
        self.critic = CriticActor.remote()

    def fit(self, path, loader):
        ray.get(self.critic.init_model.remote(self.strategy, path))
        for batch in loader:
            ray.get(self.critic.train_step.remote(batch))


Trainer(SimpleNamespace(bf16=True)).fit("Qwen/Qwen2.5-7B", [])
""",
    ),
    bug(
        "remote-function-result-read-back-by-ray-get",
        """
        import ray
        import torch
        from transformers import AutoModelForCausalLM

        @ray.remote(num_gpus=1)
        def reference_logits(path, input_ids):
            model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.bfloat16)
            return model(input_ids).logits

        def kl_penalty(path, input_ids):
            logits = ray.get(reference_logits.remote(path, input_ids))
            return torch.log_softmax(logits, dim=-1)  # expect: MP001
        """,
    ),
    # OpenRLHF's PPORayActorGroup: the handles in a list, the arguments forwarded by `*args, **kwargs`,
    # each method run over the list from another method of the group.
    bug("actor-group-initialised-then-trained", GROUP.format(expect="  # expect: MP001", bf16="True")),
    ok("actor-group-initialised-in-fp32", GROUP.format(expect="", bf16="False")),
    ok(
        "fp32-strategy-keeps-the-actors-model-fp32",
        STRATEGY
        + """
import ray
import torch
from types import SimpleNamespace
from transformers import AutoModelForCausalLM


@ray.remote(num_gpus=1)
class CriticActor:
    def init_model(self, strategy, path):
        self.model, self.optimizer, _ = strategy.prepare(AutoModelForCausalLM.from_pretrained(path))

    def train_step(self, batch):
        logits = self.model(batch["input_ids"]).logits
        return -torch.log_softmax(logits, -1).mean()


critic = CriticActor.remote()
ray.get(critic.init_model.remote(DeepspeedStrategy(SimpleNamespace(bf16=False)), "gpt2"))
ray.get(critic.train_step.remote(batch))
""",
    ),
    # Each handle is its own actor: the one that ran `init_model` is not the one that trains.
    ok(
        "another-handles-state-is-not-this-actors",
        STRATEGY
        + """
import ray
import torch
from types import SimpleNamespace
from transformers import AutoModelForCausalLM


@ray.remote(num_gpus=1)
class CriticActor:
    def init_model(self, strategy, path):
        self.model, self.optimizer, _ = strategy.prepare(AutoModelForCausalLM.from_pretrained(path))

    def train_step(self, batch):
        logits = self.model(batch["input_ids"]).logits
        return -torch.log_softmax(logits, -1).mean()


warm = CriticActor.remote()
cold = CriticActor.remote()
ray.get(warm.init_model.remote(DeepspeedStrategy(SimpleNamespace(bf16=True)), "gpt2"))
ray.get(cold.train_step.remote(batch))
""",
    ),
    ok(
        "remote-function-of-an-fp32-model",
        """
        import ray
        import torch
        from transformers import AutoModelForCausalLM

        @ray.remote(num_gpus=1)
        def reference_logits(path, input_ids):
            model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
            return model(input_ids).logits

        logits = ray.get(reference_logits.remote("gpt2", input_ids))
        logp = torch.log_softmax(logits, dim=-1)
        """,
    ),
]


@pytest.mark.parametrize("source", ACTORS)
def test_an_actor_method_runs_as_a_direct_call(source: str) -> None:
    check(source, "MP001")


def test_actor_class_and_its_driver_in_other_files(tmp_path: Path) -> None:
    check_files(
        {
            "orz/ppo/models.py": """
                import torch.nn.functional as F

                def log_probs_from_logits(logits, labels):
                    log_probs = F.log_softmax(logits, dim=-1)  # expect: MP001
                    return log_probs.gather(dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)
            """,
            "orz/ppo/actors.py": """
                import ray
                import deepspeed
                from transformers import AutoModelForCausalLM
                from orz.ppo.models import log_probs_from_logits

                class PolicyRayActorBase:
                    def init_model_from_pretrained(self, bf16, pretrain):
                        model = AutoModelForCausalLM.from_pretrained(pretrain)
                        config = {"bf16": {"enabled": bf16}}
                        self.model, self.optimizer, _, _ = deepspeed.initialize(model=model, config=config)

                    def training_step(self, sequences):
                        logits = self.model(sequences).logits
                        loss = -log_probs_from_logits(logits[:, :-1], sequences[:, 1:]).mean()
                        self.model.backward(loss)

                PolicyRayActor = ray.remote(num_gpus=1)(PolicyRayActorBase)
            """,
            "train.py": """
                import ray
                from orz.ppo.actors import PolicyRayActor

                policy = PolicyRayActor.options(num_gpus=1).remote()
                ray.get(policy.init_model_from_pretrained.remote(bf16=True, pretrain="Qwen/Qwen2.5-7B"))
                ray.get(policy.training_step.remote(sequences))
            """,
        },
        "MP001",
        tmp_path,
    )
