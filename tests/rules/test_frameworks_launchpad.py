"""Launchpad nodes in the precision model (`frameworks/launchpad.py`): `lp.PyClassNode(cls, *args)`
builds `cls(*args)` in its own process and runs its `run()`, so what the learner computes there is
what a direct call computes. Shaped after oat (sail-sg/oat): `oat/interface.py` builds a
`PyClassNode` per learner GPU over `learner_cls`, a DAP learner whose `run()` reaches
`get_batch_logps` on the logits of a policy loaded in bf16."""

from __future__ import annotations

import pytest

from .casekit import bug, check, ok

LEARNER = """
from dataclasses import dataclass

import launchpad as lp
import torch
import tyro
from transformers import AutoModelForCausalLM


@dataclass
class OATArgs:
    pretrain: str = "trl-lib/pythia-1b-deduped-tldr-sft"
    bf16: bool = {bf16}
    gpus: int = 8


class DAPLearner:
    def __init__(self, world_size, rank, args):
        self.args = args
        dtype = torch.bfloat16 if args.bf16 else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(args.pretrain, torch_dtype=dtype)

    def get_batch_logps(self, logits, labels):
        all_logp = logits.log_softmax(-1){expect}
        return torch.gather(all_logp, dim=2, index=labels.unsqueeze(2)).squeeze(2)

    def learning_step(self, batch):
        logits = self.model(batch["input_ids"])["logits"]
        return self.get_batch_logps(logits, batch["labels"]).sum(-1)

    def run(self):
        for batch in self.collector.collect():
            self.learning_step(batch).mean().backward()


def get_program(args, learner_cls):
    program = lp.Program("oat")
    for rank in range(args.gpus):
        program.add_node({node}(learner_cls, args.gpus, rank, args), label=f"learner_{{rank}}")
    return program


def main(args):
    lp.launch(get_program(args, learner_cls=DAPLearner), launch_type="local_mp")


if __name__ == "__main__":
    main(tyro.cli(OATArgs))
"""


def learner(node: str, bf16: bool, expect: str = "") -> str:
    return LEARNER.format(node=node, bf16=bf16, expect=expect)


CASES = [
    bug("py-class-node-runs-the-learner", learner("lp.PyClassNode", True, "  # expect: MP001")),
    bug("courier-node-runs-it-too", learner("lp.CourierNode", True, "  # expect: MP001")),
    ok("fp32-policy-by-default", learner("lp.PyClassNode", False)),
]


@pytest.mark.parametrize("source", CASES)
def test_a_launchpad_node_runs_its_class(source: str) -> None:
    check(source, "MP001")
