from __future__ import annotations

import libcst as cst

from mplint import tree
from mplint.analysis import cross_entropy, torch_api
from mplint.analysis.facts import CallFact, OperationFact
from mplint.analysis.values import Value
from mplint.findings import Applicability
from mplint.rule import Autofix, Replacement, Rule
from mplint.tree import argument


class UncastLogSoftmax(Rule):
    """A log-probability is computed from half-precision (bf16/fp16) logits.

    ## What it does
    Finds `log_softmax` (`F.log_softmax`, `torch.log_softmax`, `logits.log_softmax(...)`),
    `torch.distributions.Categorical(logits=...)`, per-token log-probs as
    `-F.cross_entropy(..., reduction="none")`, `torch.log(F.softmax(...))` and `logits.gather(...) -
    logits.logsumexp(...)` applied to logits whose precision is bfloat16 or float16: logits of a
    model cast with `.half()`/`.to(torch.bfloat16)` or loaded with `torch_dtype=torch.bfloat16`, or
    computed inside an autocast region and used after it. It names where the low precision came from.

    It stays quiet when the op runs in fp32 anyway: inside an active CUDA autocast region (where
    autocast upcasts `log_softmax`, `softmax`, `logsumexp`, `log`), after `.float()`, with
    `dtype=torch.float32`, or when the logits' precision cannot be traced (precision first). It
    also stays quiet on a classifier's training loss, written with `F.cross_entropy(logits, y)` or
    written out: a `log_softmax` whose result, in its function, only feeds `F.nll_loss` or is
    reduced over the class dimension into a negated loss (label smoothing `-log_probs.mean(dim=1)`,
    soft targets `-(targets * log_probs).sum(-1)`), and is not returned, stored, gathered or
    indexed. Log-probs used as values (gathered per token, in a ratio or a KL) are reported.

    ## Why is this bad
    bfloat16 keeps 8 bits of mantissa: a log-probability near -2.0 is rounded to a multiple of
    2^-6 ≈ 0.016. RL objectives (PPO, GRPO) use `ratio = exp(logp - old_logp)`, where the two
    terms come from different forward passes: rounding noise of that size swamps the real
    change, ratios jitter around 1 ± 0.03 for identical policies, clipping fires at random and
    the KL estimate is noise. The run trains, just worse. CPU autocast does not upcast
    `log_softmax`, and `cross_entropy` is not on CUDA autocast's fp32 list either (its inner
    `log_softmax` keeps the input dtype), so per-token losses stay half there too.

    ## Example
    ```python
    policy = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
    logits = policy(input_ids).logits
    logp = F.log_softmax(logits, dim=-1).gather(-1, actions[..., None]).squeeze(-1)
    ratio = torch.exp(logp - old_logp)
    ```

    ## Fix
    Cast the logits to fp32 at the op: `F.log_softmax(logits.float(), dim=-1)` (or pass
    `dtype=torch.float32`). The cast costs one fp32 copy of the logits; for large vocabularies,
    compute the log-probs chunk by chunk.
    """

    CODE = "MP001"
    NAME = "uncast-log-softmax"
    MESSAGE = "{op} on {dtype} logits ({origin}); cast with .float() first"
    FIX = Applicability.UNSAFE
    TRIGGERS = torch_api.LOW_PRECISION_WORDS
    SINKS = frozenset({"log_softmax", "logsumexp", "cross_entropy", "Categorical", "softmax"})
    _negated_ids: set[int] | None = None  # `_negated()`, computed on first need
    _sampled_ids: frozenset[int] = frozenset()  # `Categorical(logits=...).sample()`: seen before the inner call
    VALID = (
        """
import torch
import torch.nn.functional as F
policy = torch.nn.Linear(8, 8).to(torch.bfloat16)
logp = F.log_softmax(policy(torch.randn(2, 8)).float(), dim=-1)
""",
        """
import torch
model = torch.nn.Linear(8, 8)
with torch.autocast("cuda", dtype=torch.bfloat16):
    logp = model(torch.randn(2, 8)).log_softmax(-1)
""",
        """
import torch.nn.functional as F
def logprobs(logits):
    return F.log_softmax(logits, dim=-1)
""",
        """
import torch
import torch.nn.functional as F
model = torch.nn.Linear(8, 10).half()
def smoothed_loss(x, y, alpha=0.1):
    log_probs = F.log_softmax(model(x), dim=1)
    return (1 - alpha) * F.nll_loss(log_probs, y) - alpha * log_probs.mean(dim=1).mean()
""",
    )
    INVALID = (
        """
import torch
import torch.nn.functional as F
policy = torch.nn.Linear(8, 8).to(torch.bfloat16)
logp = F.log_softmax(policy(torch.randn(2, 8)), dim=-1)
""",
        """
import torch
model = torch.nn.Linear(8, 8)
with torch.autocast("cpu", dtype=torch.bfloat16):
    logp = model(torch.randn(2, 8)).log_softmax(-1)
""",
        """
import torch
import torch.nn.functional as F
policy = torch.nn.Linear(8, 4).half()
def ratio(states, actions, old_logp):
    log_probs = F.log_softmax(policy(states), dim=-1)
    logp = -F.nll_loss(log_probs, actions, reduction="none")
    return torch.exp(logp - old_logp)
""",
    )

    def visit_Call(self, node: cst.Call) -> None:
        if type(node.func) is cst.Attribute and node.func.attr.value == "sample" and type(node.func.value) is cst.Call:
            self._sampled_ids |= {id(node.func.value)}
        for fact in self.precision.calls(node, conditional=True):
            found = _log_prob_input(fact)
            if found is None:
                continue
            logits, op, shown = found
            if fact.function in CATEGORICAL and id(node) in self._sampled_ids:
                return  # a token drawn and the distribution dropped: no log-prob is kept
            if op == "cross_entropy" and id(node) not in self._negated():
                return  # a per-token loss that is reduced: the training loss, not log-probs
            if torch_api.runs_in_half(logits, fact.region, op):
                if shown == "log_softmax" and self._classification_loss(node, fact):
                    return
                fix = self._float_logits_fix(node, shown)
                self.report(node, self._message(shown, logits, fact), fix=fix, condition=fact.condition)
                return

    def _classification_loss(self, node: cst.Call, fact: CallFact) -> bool:
        """A log_softmax that is cross-entropy written out (`F.nll_loss(log_probs, y)`, label smoothing):
        the training loss of a classifier, as `F.cross_entropy(logits, y)` is, not log-probs used as values."""
        dim = fact.arg(0 if fact.method is not None else 1, "dim")
        return dim is not None and cross_entropy.is_written_out(
            node, dim.const, self.context.parsed.pieces, self.precision
        )

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        """`logits.gather(...) - logits.logsumexp(...)`: a hand-written log_softmax, the logsumexp
        written inline or held in a name (TRL's `selective_log_softmax`: `logsumexp_values =
        torch.stack([torch.logsumexp(lg, dim=-1) for lg in logits])`)."""
        if not isinstance(node.operator, cst.Subtract) or self._from_log_probs(node):
            return
        if not isinstance(node.right, cst.Call):
            self._held_logsumexp(node)
            return
        for fact in self.precision.calls(node.right, conditional=True):
            if fact.op != "logsumexp":
                continue
            logits = fact.input()
            if logits is None:
                continue
            if torch_api.runs_in_half(logits, fact.region, "logsumexp"):
                self.report(
                    node.right,
                    self._message("logsumexp", logits, fact),
                    fix=self._float_logits_fix(node.right, "logsumexp"),
                    condition=fact.condition,
                )
                return

    def _negated(self) -> set[int]:
        """The ids of the file's expressions whose value is negated: `-F.cross_entropy(...)`, through
        methods (`-F.cross_entropy(...).view(B, T)`) and a name (`nll = ...` then `-nll`). Per-token
        cross_entropy is a log-prob only so; reduced (`.sum()`, a masked mean), it is a loss."""
        if self._negated_ids is None:
            self._negated_ids = set()
            names: set[str] = set()
            assigned: list[tuple[str, cst.BaseExpression]] = []
            for _, piece in self.context.parsed.pieces:
                for node in tree.walk(piece):
                    if type(node) is cst.UnaryOperation and type(node.operator) is cst.Minus:
                        root = _receiver_chain(node.expression, self._negated_ids)
                        if type(root) is cst.Name:
                            names.add(root.value)
                    elif type(node) is cst.Assign and len(node.targets) == 1:
                        target = node.targets[0].target
                        if type(target) is cst.Name:
                            assigned.append((target.value, node.value))
            for name, value in assigned:
                if name in names:
                    _receiver_chain(value, self._negated_ids)
        return self._negated_ids

    def _from_log_probs(self, node: cst.BinaryOperation) -> bool:
        """`per_token_logps - torch.logsumexp(2 * logprobs, dim=-1)` (WPO's weights): log-probs already
        formed minus a logsumexp, or a logsumexp taken over log-probs (inline or held in a name), are no
        log_softmax written out; they are reported where they are formed."""
        if any(fact.left.op == torch_api.LOG_PROB_OP for fact in self.precision.operations(node, conditional=True)):
            return True
        logsumexp = node.right if isinstance(node.right, cst.Call) else self._held_logsumexp_call(node.right)
        return logsumexp is not None and self._over_log_probs(logsumexp)

    def _over_log_probs(self, call: cst.Call) -> bool:
        """Whether a logsumexp's input is arithmetic on log-probs (`2 * logprobs`)."""
        if not call.args:
            return False
        return any(
            torch_api.LOG_PROB_OP in (fact.left.op, fact.right.op)
            for found in tree.walk(call.args[0].value)
            if type(found) is cst.BinaryOperation
            for fact in self.precision.operations(found, conditional=True)
        )

    def _held_logsumexp(self, node: cst.BinaryOperation) -> None:
        """`selected_logits - logsumexp_values`: the logsumexp's precision is where it was computed
        (fp32 under an autocast region that upcasts it, unknown where that cannot be told)."""
        for fact in self.precision.operations(node, conditional=True):
            if fact.right.op == "logsumexp" and fact.right.precision.is_low:
                # Reported at the logsumexp the name holds, where the cast belongs, when its
                # assignment is in sight; else at the name.
                held = self._held_logsumexp_call(node.right)
                self.report(
                    held or node.right,
                    self._message("logsumexp", fact.right, fact),
                    fix=self._float_logits_fix(held, "logsumexp") if held is not None else None,
                    condition=fact.condition,
                )
                return

    def _held_logsumexp_call(self, name: cst.BaseExpression) -> cst.Call | None:
        """The half-precision `logsumexp(...)` call of the nearest assignment to `name` before it
        (`logsumexp_values = torch.stack([torch.logsumexp(lg, dim=-1) for lg in logits])`)."""
        if not isinstance(name, cst.Name):
            return None
        line = self.line_of(name)
        best: tuple[int, cst.Call] | None = None
        assignments = (found for _, piece in self.context.parsed.pieces for found in tree.walk(piece))
        for found in assignments:
            if type(found) is not cst.Assign or len(found.targets) != 1:
                continue
            target = found.targets[0].target
            if not (isinstance(target, cst.Name) and target.value == name.value):
                continue
            at = self.line_of(found)
            if at >= line:
                continue  # the pieces and each one's walk are in source order: the last earlier one wins
            call = next((call for call in _calls(found.value) if self._low_logsumexp(call)), None)
            if call is not None:
                best = (at, call)
        return best[1] if best is not None else None

    def _low_logsumexp(self, call: cst.Call) -> bool:
        for fact in self.precision.calls(call, conditional=True):
            logits = fact.input() if fact.op == "logsumexp" else None
            if logits is not None and logits.precision.is_low:
                return torch_api.runs_in_half(logits, fact.region, "logsumexp")
        return False

    def _float_logits_fix(self, node: cst.Call, shown: str) -> Autofix | None:
        """Insert `.float()` on the logits at the op (unsafe: it makes an fp32 copy of the logits)."""
        call = node
        if shown == "log(softmax(...))":
            inner = argument(node, 0)
            if not isinstance(inner, cst.Call):
                return None  # `torch.log(probs)`: the softmax is computed elsewhere
            call = inner
        index, keyword = (1, "logits") if shown == "Categorical(logits=...)" else (0, "input")
        logits = self._tensor_argument(call, index, keyword)
        if logits is None:
            return None
        closing = self._closing_parenthesis(logits, call)
        if closing is not None:  # `(logits / T)`: the cast goes after its own parenthesis
            cast = Replacement(closing, closing, ".float()")
        elif isinstance(logits, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)):
            cast = self.replace(logits, f"{self.source_of(logits)}.float()")
        else:
            cast = self.replace(logits, f"({self.source_of(logits)}).float()")
        return Autofix("cast the logits to fp32 at the op", (cast,), Applicability.UNSAFE)

    def _tensor_argument(self, node: cst.Call, index: int, keyword: str) -> cst.BaseExpression | None:
        """The receiver of `x.op(...)`, else the expression passed as positional `index` or as `keyword`."""
        if any(fact.method is not None for fact in self.precision.calls(node)):
            assert isinstance(node.func, cst.Attribute)  # the analysis sees a method only in `receiver.method(...)`
            return node.func.value
        return argument(node, index, keyword)

    def _closing_parenthesis(self, expression: cst.BaseExpression, call: cst.Call) -> int | None:
        """The offset just past the parenthesis that closes `expression` (an argument or the receiver
        of `call`) when it is written in parentheses of its own: positions leave them out, and the
        call's own parenthesis does not count."""
        text = self.context.parsed.text
        start, end = self.context.parsed.offsets(expression)
        before, after = text[:start].rstrip(), text[end:]
        if not before.endswith("(") or not after.lstrip().startswith(")"):
            return None
        if len(before) - 1 == text.find("(", self.context.parsed.offsets(call.func)[1]):
            return None
        return end + len(after) - len(after.lstrip()) + 1

    def _message(self, op: str, logits: Value, fact: CallFact | OperationFact) -> str:
        origin = self.describe_origin(logits.origin, fact.chain)
        return self.MESSAGE.format(op=op, dtype=logits.precision.value, origin=origin)


def _receiver_chain(expression: cst.BaseExpression, into: set[int]) -> cst.BaseExpression:
    """Add the ids of `expression` and of what its methods and subscripts are applied to (`x` in
    `x.view(B, T)[:, 1:]`) to `into`; return the innermost one."""
    while True:
        into.add(id(expression))
        if type(expression) is cst.Call and type(expression.func) is cst.Attribute:
            expression = expression.func.value
        elif type(expression) is cst.Subscript:
            expression = expression.value
        else:
            return expression


def _calls(node: cst.CSTNode) -> list[cst.Call]:
    return [found for found in tree.walk(node) if type(found) is cst.Call]


CATEGORICAL = frozenset({"torch.distributions.Categorical", "torch.distributions.categorical.Categorical"})


def _log_prob_input(fact: CallFact) -> tuple[Value, str, str] | None:
    """(the logits, the op whose autocast policy applies, how to name it) when `fact` forms log-probs."""
    op = fact.op
    if op == "log_softmax":
        requested = fact.arg(None, "dtype")  # only a dtype has a precision and can be passed as one
        if requested is not None and requested.precision.is_full:
            return None
        logits = fact.input()
        shown = torch_api.last_part(fact.function) if fact.function is not None else op  # TRL's `selective_log_softmax`
        return (logits, "log_softmax", shown) if logits is not None else None
    if fact.function in CATEGORICAL:
        logits = fact.arg(1, "logits")
        return (logits, "logsumexp", "Categorical(logits=...)") if logits is not None else None
    reduction = fact.arg(None, "reduction")
    if op == "cross_entropy" and reduction is not None and reduction.const == "none":
        logits = fact.arg(0, "input")
        return (logits, "cross_entropy", "cross_entropy(reduction='none')") if logits is not None else None
    if op != "log":
        return None
    probs = fact.input()
    if probs is None:
        return None
    return (probs, "log", "log(softmax(...))") if probs.op == "softmax" else None
