"""How values flow through the calls and ops of an embedding model's training step (BGE-M3's, under
the Trainer's DeepSpeed fp16 engine): element-wise ops and `F.normalize`, lists of tensors
concatenated, a loss function picked by branches, a function handed on as an argument, a forward
called with the batch spread (`model(**inputs)`), a helper returning None on a guard, and a counter
the forward moves. Each case is training code as it is written, checked through MP001."""

from __future__ import annotations

import pytest

from tests.rules.casekit import bug, check, lint, ok

ELEMENTWISE_AND_LISTS = [
    # Dropout and activations keep their input's dtype (on no autocast list).
    bug(
        "activations-and-dropout",
        """
        import torch
        import torch.nn.functional as F

        head = torch.nn.Linear(16, 16).half()

        def scores(x):
            h = F.dropout(F.gelu(head(x)), 0.1)
            return F.log_softmax(torch.nn.functional.silu(h), dim=-1)  # expect: MP001
        """,
    ),
    # `F.normalize` keeps an fp16 embedding fp16 outside autocast...
    bug(
        "normalized-embeddings",
        """
        import torch
        import torch.nn.functional as F

        encoder = torch.nn.Linear(16, 16).half()

        def scores(q, p):
            q, p = F.normalize(encoder(q), dim=-1), F.normalize(encoder(p), dim=-1)
            return F.log_softmax(q @ p.T / 0.02, dim=-1)  # expect: MP001
        """,
    ),
    # ... but divides by `norm` (on CUDA autocast's fp32 list) inside a CUDA region: fp32 out.
    ok(
        "normalized-under-cuda-autocast",
        """
        import torch
        import torch.nn.functional as F

        encoder = torch.nn.Linear(16, 16).half()

        def scores(q):
            with torch.autocast("cuda", dtype=torch.float16):
                q = F.normalize(encoder(q), dim=-1)
            return F.log_softmax(q, dim=-1)
        """,
    ),
    # matmul takes operands of one dtype: one made fp16 (PromptSRC's zero-shot logits) gives the
    # product's, whatever the other is known to be.
    bug(
        "a-product-with-a-half-operand",
        """
        import torch
        import torch.nn.functional as F

        def kl(image_features, fixed_embeddings, logits, logit_scale):
            zero_shot_logits = logit_scale * image_features @ fixed_embeddings.half().t()
            text = torch.bmm(image_features, fixed_embeddings.half())
            return (
                F.log_softmax(zero_shot_logits, dim=1),  # expect: MP001
                F.log_softmax(text, dim=1),  # expect: MP001
            )
        """,
    ),
    # Operands of two known dtypes (fp32 with fp16, a run under autocast): the product's is not told.
    ok(
        "a-product-of-two-known-dtypes",
        """
        import torch
        import torch.nn.functional as F

        def kl(image_features, fixed_embeddings):
            zero_shot_logits = image_features.float() @ fixed_embeddings.half().t()
            return F.log_softmax(zero_shot_logits, dim=1)
        """,
    ),
    # A list appended to in a loop (which may not run) and concatenated: the tensors it holds.
    bug(
        "tensors-appended-then-concatenated",
        """
        import torch
        import torch.nn.functional as F

        encoder = torch.nn.Linear(16, 16).half()

        def encode(batches):
            outs = []
            for batch in batches:
                outs.append(encoder(batch))
            return F.log_softmax(torch.cat(outs, 0), dim=-1)  # expect: MP001
        """,
    ),
    # A list of tensors of several dtypes concatenates to no dtype the analysis can tell.
    ok(
        "tensors-of-two-dtypes-concatenated",
        """
        import torch
        import torch.nn.functional as F

        encoder = torch.nn.Linear(16, 16).half()

        def encode(x):
            return F.log_softmax(torch.cat([encoder(x), encoder(x).float()], 0), dim=-1)
        """,
    ),
]


@pytest.mark.parametrize("source", ELEMENTWISE_AND_LISTS)
def test_elementwise_ops_and_lists(source: str) -> None:
    check(source, "MP001")


# BGE-M3's shape: the loss is picked by flags, the score function handed on, the forward run with
# the batch spread, `encode` guarded by `if features is None: return None`.
EMBEDDER = """
    import torch
    import torch.nn.functional as F
    from torch import nn


    class Embedder(nn.Module):
        def __init__(self, cross_device=True, self_distill_start_step=0):
            super().__init__()
            self.encoder = nn.Linear(16, 16)
            self.cross_device = cross_device
            self.self_distill_start_step = self_distill_start_step
            self.step = 0

        def encode(self, features):
            if features is None:
                return None
            return F.normalize(self.encoder(features), dim=-1), None

        def dense_score(self, q, p):
            return q @ p.T / 0.02

        def _in_batch_loss(self, q, p, score_func=None):
            if score_func is None:
                scores = (q @ p.T).float()
            else:
                scores = score_func(q, p)
            return scores, F.cross_entropy(scores, torch.arange(q.size(0)))

        def _cross_device_loss(self, q, p, score_func=None):
            return self._in_batch_loss(q, p, score_func=score_func)

        def forward(self, queries=None, passages=None, no_in_batch_neg_flag=False):
            q, _ = self.encode(queries)
            p, _ = self.encode(passages)
            if no_in_batch_neg_flag or not self.cross_device:
                loss_func = self._in_batch_loss
            else:
                loss_func = self._cross_device_loss
            scores, loss = loss_func(q, p, score_func=self.dense_score)
            if self.step > self.self_distill_start_step:
                loss = loss - F.log_softmax(scores, dim=-1).mean()  # MARK
            self.step += 1
            return loss


    def train(batches):
        model = Embedder().half()
        for inputs in batches:
            model(**inputs).backward()
"""


def test_a_loss_picked_by_branches_runs_on_what_the_spread_batch_gives() -> None:
    """`model(**inputs)`: the batch may give any parameter, so `queries` is no default None and
    `encode` (its None guard left out of what it returns) gives the fp16 embeddings; the loss
    function picked by a flag of unknown value is either; `score_func=self.dense_score` is no None;
    and `self.step`, counted on by the forward, is past the start step on a later call."""
    check(EMBEDDER.replace("# MARK", "# expect: MP001"), "MP001")


def test_the_embedder_in_fp32_is_quiet() -> None:
    """The same step on a model left in fp32: nothing to report."""
    check(EMBEDDER.replace("Embedder().half()", "Embedder()"), "MP001")


@pytest.mark.parametrize(
    ("counted", "conditional"),
    [
        pytest.param("self.step += 1", False, id="counted-by-the-forward"),
        pytest.param("pass", True, id="counted-by-nothing"),
    ],
)
def test_a_counter_the_forward_moves_is_no_setting(counted: str, conditional: bool) -> None:
    """`self.step += 1` in the forward: a later call reads a later count, so `self.step >
    self.self_distill_start_step` is no setting the default configuration leaves false. A step
    nothing counts stays at 0: the branch is a configuration of its own, reported as such."""
    source = EMBEDDER.replace("self.step += 1", counted).replace("# MARK", "# expect: MP001")
    check(source, "MP001")
    [finding] = lint(source, "MP001")
    assert ("not in the default configuration" in finding.message) is conditional


# PromptSRC's shape: the forward returns a tuple in training and the logits alone in eval; the training
# step unpacks the tuple.
TUPLE_IN_TRAINING = """
    import torch
    import torch.nn.functional as F
    from torch import nn


    class CustomCLIP(nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = nn.Linear(16, 16)

        def forward(self, image, fixed_embeddings):
            features = self.visual(image)
            logits = features @ fixed_embeddings.float().t()
            if self.training:
                zero_shot_logits = features @ fixed_embeddings.half().t()
                return logits, zero_shot_logits
            return logits


    def step(image, fixed_embeddings):
        model = CustomCLIP().half()
        logits, zero_shot_logits = {unpacked}
        return F.kl_div(F.log_softmax(logits, dim=1), F.log_softmax(zero_shot_logits, dim=1), log_target=True)  # MARK
"""


@pytest.mark.parametrize(
    ("unpacked", "bug"),
    [
        pytest.param("model(image, fixed_embeddings)", True, id="the-tuple-unpacked"),
        pytest.param("model(image, fixed_embeddings), None", False, id="the-output-whole"),
    ],
)
def test_a_forward_returning_a_tuple_on_one_path_is_unpacked_as_the_tuple(unpacked: str, bug: bool) -> None:
    """`return logits, zero_shot_logits` in training beside `return logits` in eval: unpacking two
    values takes the tuple (the fp16 zero-shot logits); the output taken whole is of no known dtype."""
    source = TUPLE_IN_TRAINING.format(unpacked=unpacked)
    check(source.replace("# MARK", "# expect: MP001" if bug else ""), "MP001")


def test_two_tuples_beside_a_tensor_unpack_as_both() -> None:
    """Two tuples of two values on two paths beside a tensor on a third (axolotl's test kernels sent
    this into endless recursion): unpacking takes each tuple's element, joined."""
    source = """
        import torch
        import torch.nn.functional as F

        def step(x, w, mode):
            if mode == "a":
                return x @ w.half(), x @ w.half()
            if mode == "b":
                return (x @ w.half()) * 2, x
            return x

        first, second = step(images, weights, mode)
        logp = F.log_softmax(first, dim=-1)  # expect: MP001
    """
    check(source, "MP001")
