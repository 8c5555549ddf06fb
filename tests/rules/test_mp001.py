"""MP001 uncast-log-softmax: a log-probability computed from half-precision logits.

Reported at the log-prob op itself. Torch facts the expectations rest on: under CUDA autocast
`softmax`, `log_softmax`, `log`, `exp` and `logsumexp` run in fp32 (inputs are upcast), under
CPU autocast they do not; `cross_entropy` is not on CUDA autocast's fp32 list and calls its
inner `log_softmax` with the input's dtype, so per-token `cross_entropy` stays half there, while
CPU autocast does list `cross_entropy` as fp32.
"""

from __future__ import annotations

import pytest

from .casekit import bug, check, line_of, lint, ok

CODE = "MP001"

CASES = [
    # Open-Reasoner-Zero's (OpenRLHF's) Actor: built and called only through Ray actors mplint does not
    # follow, so read standalone with its defaults; its forward calls a module-level helper, which the
    # method's own scope (the class body) does not bind.
    bug(
        "standalone-method-calls-a-module-helper",
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM


        def log_probs_from_logits(logits, labels):
            log_probs = F.log_softmax(logits, dim=-1)  # expect: MP001
            return log_probs.gather(dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)


        class Actor(nn.Module):
            def __init__(self, pretrain, bf16=True):
                super().__init__()
                self.model = AutoModelForCausalLM.from_pretrained(
                    pretrain, torch_dtype=torch.bfloat16 if bf16 else "auto"
                )

            def forward(self, sequences, num_actions, attention_mask=None):
                output = self.model(sequences, attention_mask=attention_mask)
                log_probs = log_probs_from_logits(output["logits"][:, :-1, :], sequences[:, 1:])
                return log_probs[:, -num_actions:]
        """,
    ),
    # TRL's PPO trainer (and its copies, HuatuoGPT-o1's): `trl.trainer.utils.forward` runs the policy.
    bug(
        "trl-forward-runs-the-policy",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM
        from trl.trainer.utils import forward

        policy = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
        for query_responses, responses in loader:
            output = forward(policy, query_responses, pad_token_id)
            logits = output.logits[:, context_length - 1 : -1]
            logits /= temperature + 1e-7
            all_logprobs = F.log_softmax(logits, dim=-1)  # expect: MP001
            logprobs = torch.gather(all_logprobs, 2, responses.unsqueeze(-1)).squeeze(-1)
        """,
    ),
    bug(
        "hf-torch-dtype-bf16-functional",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)
        policy.cuda()

        def policy_logprobs(input_ids, labels):
            logits = policy(input_ids).logits
            logp = F.log_softmax(logits, dim=-1)  # expect: MP001
            return torch.gather(logp, -1, labels.unsqueeze(-1)).squeeze(-1)
    """,
    ),
    bug(
        "hf-dtype-string-attribute-method",
        """
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_name)
        model = AutoModelForCausalLM.from_pretrained(model_name, dtype="bfloat16", device_map="cuda")
        batch = tokenizer(prompts, return_tensors="pt", padding=True).to("cuda")
        with torch.no_grad():
            out = model(**batch)
        logprobs = out.logits.log_softmax(-1)  # expect: MP001
    """,
    ),
    # `model.half()` as a bare statement casts the module in place; `.to("cuda")` keeps the dtype.
    bug(
        "bare-half-in-place-dict-item",
        """
        import torch
        from model import GPT, GPTConfig

        model = GPT(GPTConfig(n_layer=12, n_head=12, n_embd=768))
        model.half()
        model.to("cuda")
        out = model(idx)
        token_logp = torch.log_softmax(out["logits"], dim=-1)  # expect: MP001
    """,
    ),
    bug(
        "to-device-dtype-categorical",
        """
        import torch
        import torch.nn as nn
        from torch.distributions import Categorical

        class PolicyNet(nn.Module):
            def __init__(self, obs_dim, n_actions):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(obs_dim, 256), nn.Tanh(), nn.Linear(256, n_actions))

            def forward(self, obs):
                return self.body(obs)

        device = torch.device("cuda")
        policy = PolicyNet(obs_dim, n_actions).to(device, dtype=torch.bfloat16)
        logits = policy(obs)
        dist = Categorical(logits=logits)  # expect: MP001
        action = dist.sample()
        logp = dist.log_prob(action)
    """,
    ),
    bug(
        "torch-distributions-categorical-fp16-head",
        """
        import torch

        actor = torch.nn.Linear(hidden_size, n_actions).cuda().half()

        def act(features):
            dist = torch.distributions.Categorical(logits=actor(features))  # expect: MP001
            action = dist.sample()
            return action, dist.log_prob(action)
    """,
    ),
    # cross_entropy is not upcast by CUDA autocast: its log_softmax runs in the logits' bf16.
    bug(
        "per-token-cross-entropy-inside-cuda-autocast",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.bfloat16).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids).logits[:, :-1]
            nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), reduction="none")  # expect: MP001
            token_logp = -nll.view(labels.size(0), -1)
    """,
    ),
    # Logits produced under bf16 autocast are bf16; outside the region nothing upcasts them.
    bug(
        "autocast-logits-used-after-region",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained(name).cuda()
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            logits = policy(input_ids=input_ids, attention_mask=attention_mask).logits
        logp = F.log_softmax(logits, dim=-1)  # expect: MP001
    """,
    ),
    bug(
        "log-of-softmax",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(ckpt, torch_dtype=torch.float16)
        logits = model(**inputs).logits
        log_probs = torch.log(F.softmax(logits, dim=-1))  # expect: MP001
    """,
    ),
    bug(
        "gather-minus-logsumexp-reference-model",
        """
        import torch
        from transformers import AutoModelForCausalLM

        ref_model = AutoModelForCausalLM.from_pretrained(ref_path, torch_dtype=torch.bfloat16)
        ref_model.eval()

        @torch.no_grad()
        def reference_logprobs(input_ids, labels):
            logits = ref_model(input_ids).logits
            return logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(dim=-1)  # expect: MP001
    """,
    ),
    # distillm: a bound method handed to a trainer, which stores it and calls it from another method.
    bug(
        "bound-method-called-by-a-trainer",
        """
        import torch
        from transformers import AutoModelForCausalLM


        class Reward:
            def __init__(self, model):
                self.model = model

            def reward_fn(self, input_ids):
                logits = self.model(input_ids).logits
                return torch.log_softmax(logits, dim=-1)  # expect: MP001


        class PPOTrainer:
            def __init__(self, reward_fn):
                self.reward_fn = reward_fn

            def sample(self, input_ids):
                return self.reward_fn(input_ids)


        def main():
            teacher = AutoModelForCausalLM.from_pretrained("gpt2-xl", torch_dtype=torch.float16)
            reward = Reward(teacher)
            trainer = PPOTrainer(reward_fn=reward.reward_fn)
            trainer.sample(batch["input_ids"])
    """,
    ),
    bug(
        "a-static-method-handed-on-binds-no-instance",
        """
        import torch
        from transformers import AutoModelForCausalLM


        class Reward:
            def __init__(self, model):
                self.model = model

            @staticmethod
            def log_probs(logits):
                return torch.log_softmax(logits, dim=-1)  # expect: MP001


        def main():
            teacher = AutoModelForCausalLM.from_pretrained("gpt2-xl", torch_dtype=torch.float16)
            reward = Reward(teacher)
            score = reward.log_probs
            score(teacher(input_ids).logits)
    """,
    ),
    # LLM-RLHF-Tuning's PPOModel: a forward that returns a tuple is read element by element.
    bug(
        "a-wrapper-forward-returning-a-tuple",
        """
        import torch
        import torch.nn.functional as F
        from torch import nn


        class PPOModel(nn.Module):
            def __init__(self, actor, critic):
                super().__init__()
                self.actor = actor
                self.critic = critic

            def forward(self, states):
                return self.actor(states), self.critic(states)


        model = PPOModel(nn.Linear(16, 100).half(), nn.Linear(16, 1))
        logits, values = model(states)
        logp = F.log_softmax(logits, dim=-1)  # expect: MP001
        """,
    ),
    ok(
        "a-wrapper-cast-whole-around-a-model-of-unknown-class",
        """
        import torch.nn.functional as F
        from torch import nn


        class PPOModel(nn.Module):
            def __init__(self, actor, critic):
                super().__init__()
                self.actor = actor
                self.critic = critic

            def forward(self, sequences):
                return self.actor(**sequences).logits, self.critic(**sequences)[-1]


        model = PPOModel(engine.actor_model, engine.critic_model)
        model.half()
        actor_logits, critic_values = model(sequences)
        logp = F.log_softmax(actor_logits, dim=-1)
        """,
    ),
    # The trainer casts the model it is given in __init__ and uses it from another method.
    bug(
        "trainer-self-model-other-method",
        """
        import torch
        import torch.nn.functional as F

        class GRPOTrainer:
            def __init__(self, hf_model, tokenizer, clip=0.2):
                self.model = hf_model.to(torch.bfloat16)
                self.tokenizer = tokenizer
                self.clip = clip

            def sequence_logprobs(self, input_ids, attention_mask):
                logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
                logp = F.log_softmax(logits[:, :-1], dim=-1)  # expect: MP001
                return logp.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)

            def step(self, batch, old_logp, advantages):
                logp = self.sequence_logprobs(batch["input_ids"], batch["attention_mask"])
                ratio = torch.exp(logp - old_logp)
                clipped = torch.clamp(ratio, 1 - self.clip, 1 + self.clip)
                loss = -torch.min(ratio * advantages, clipped * advantages).mean()
                loss.backward()
    """,
    ),
    # The helper's own parameter is unknown; its one caller passes a bf16 model.
    bug(
        "helper-called-with-bf16-model",
        """
        import torch
        from transformers import AutoModelForCausalLM

        def compute_logprobs(model, batch):
            logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            return torch.log_softmax(logits, dim=-1)  # expect: MP001

        policy = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.bfloat16)
        for batch in loader:
            logp = compute_logprobs(policy, batch)
    """,
    ),
    bug(
        "helper-taking-logits-ppo-ratio",
        """
        import torch
        from transformers import AutoModelForCausalLM

        def gather_logprobs(logits, labels):
            logp = logits.log_softmax(dim=-1)  # expect: MP001
            return logp.gather(dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)

        policy = AutoModelForCausalLM.from_pretrained(cfg.policy_path, torch_dtype=torch.bfloat16)
        new_logp = gather_logprobs(policy(query_responses).logits, labels)
        ratio = torch.exp(new_logp - old_logp)
    """,
    ),
    bug(
        "constant-dtype-flow",
        """
        import torch
        import torch.nn.functional as F

        HALF = torch.float16

        lm = TransformerLM(vocab_size, d_model=512).cuda().to(dtype=HALF)
        logp = F.log_softmax(lm(tokens), dim=-1)  # expect: MP001
    """,
    ),
    # nanoGPT-style dtype table with a literal key: ptdtype is known to be bf16.
    bug(
        "nanogpt-ptdtype-module-cast",
        """
        import torch
        import torch.nn.functional as F
        from model import GPT, GPTConfig

        dtype = "bfloat16"
        ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        model = GPT(GPTConfig(**model_args))
        model.to(device=device, dtype=ptdtype)
        logits, _ = model(idx)
        next_logp = F.log_softmax(logits[:, -1, :], dim=-1)  # expect: MP001
    """,
    ),
    bug(
        "set-default-dtype-before-build",
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        torch.set_default_dtype(torch.bfloat16)
        policy = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, n_actions))
        logp = F.log_softmax(policy(obs), dim=-1)  # expect: MP001
    """,
    ),
    # The model is fp32, but its logits are cast down to save memory before the log-softmax.
    bug(
        "explicit-tensor-cast-to-bf16",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.float32)
        logits = model(input_ids).logits.to(torch.bfloat16)
        logp = F.log_softmax(logits, dim=-1)  # expect: MP001
    """,
    ),
    bug(
        "module-type-cuda-half-tensor",
        """
        import torch
        from torch.nn import functional as F

        net = ConvNet(num_classes=10).cuda()
        net.type(torch.cuda.HalfTensor)
        scores = net(images)
        log_probs = F.log_softmax(scores, dim=1)  # expect: MP001
    """,
    ),
    # CPU autocast runs Linear in bf16 and leaves log_softmax in bf16 (checked on torch 2.13).
    bug(
        "cpu-autocast-does-not-upcast",
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        head = nn.Linear(hidden_size, vocab_size)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = head(hidden)
            logp = F.log_softmax(logits, dim=-1)  # expect: MP001
    """,
    ),
    # no_grad changes nothing about precision: DPO reference log-probs from an fp16 model.
    bug(
        "from-import-log-softmax-dpo-reference",
        """
        import torch
        from torch.nn.functional import log_softmax
        from transformers import AutoModelForCausalLM

        ref_model = AutoModelForCausalLM.from_pretrained(sft_path, torch_dtype=torch.float16).eval()
        with torch.no_grad():
            ref_logits = ref_model(chosen_ids).logits
        ref_chosen_logps = log_softmax(ref_logits, dim=-1)  # expect: MP001
    """,
    ),
    bug(
        "tensor-created-in-bf16",
        """
        import torch
        import torch.nn.functional as F

        logits = torch.randn(batch_size, vocab_size, dtype=torch.bfloat16, device="cuda")
        logp = F.log_softmax(logits, dim=-1)  # expect: MP001
    """,
    ),
    ok(
        "float-before-log-softmax",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        logits = policy(input_ids).logits.float()
        logp = F.log_softmax(logits, dim=-1)
    """,
    ),
    ok(
        "dtype-float32-argument",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        logits = policy(input_ids).logits
        logp = F.log_softmax(logits, dim=-1, dtype=torch.float32)
    """,
    ),
    # CUDA autocast runs log_softmax in fp32 whatever the input dtype.
    ok(
        "inside-cuda-autocast-bf16",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logp = F.log_softmax(model(input_ids).logits, dim=-1)
    """,
    ),
    ok(
        "inside-cuda-amp-autocast-alias",
        """
        import torch
        from torch.cuda.amp import autocast

        model = Seq2SeqModel(cfg).cuda()
        model.half()
        with autocast():
            logits = model(src, tgt)
            logp = logits.log_softmax(-1)
    """,
    ),
    ok(
        "decorated-with-cuda-autocast",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16).cuda()

        @torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        def policy_logprobs(input_ids):
            return F.log_softmax(policy(input_ids).logits, dim=-1)
    """,
    ),
    ok(
        "stored-autocast-context",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        amp_ctx = torch.amp.autocast(device_type="cuda", dtype=torch.bfloat16)
        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16).cuda()
        with amp_ctx:
            logits = model(input_ids).logits
            logp = F.log_softmax(logits, dim=-1)
    """,
    ),
    # A bare parameter that nobody in the run passes anything to: unknown, so quiet.
    ok(
        "unknown-parameter",
        """
        import torch.nn.functional as F

        def token_logprobs(logits, labels):
            logp = F.log_softmax(logits, dim=-1)
            return logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    """,
    ),
    ok(
        "unknown-factory",
        """
        import torch
        import torch.nn.functional as F
        from myproject.models import build_policy

        policy = build_policy(cfg)
        logits = policy(obs)
        logp = F.log_softmax(logits, dim=-1)
    """,
    ),
    # Mean-reduced cross_entropy is the ordinary training loss, never a per-token log-prob.
    ok(
        "mean-cross-entropy",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        logits = model(input_ids).logits
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1), ignore_index=-100)
        loss.backward()
    """,
    ),
    # The dtype depends on a flag only known at run time: unknown, so quiet (precision first).
    ok(
        "conditional-dtype",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        load_dtype = torch.bfloat16 if args.bf16 else torch.float32
        model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=load_dtype)
        logp = F.log_softmax(model(input_ids).logits, dim=-1)
    """,
    ),
    ok(
        "to-float32-on-attribute",
        """
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, dtype=torch.bfloat16)
        out = model(input_ids=input_ids)
        logits = out.logits.to(torch.float32)
        logp = torch.log_softmax(logits, dim=-1)
    """,
    ),
    ok(
        "double-before-categorical",
        """
        import torch
        from torch.distributions import Categorical

        actor = ActorNet(obs_dim, n_actions).cuda().half()
        dist = Categorical(logits=actor(obs).double())
    """,
    ),
    ok(
        "type-float32-before-log-softmax",
        """
        import torch
        import torch.nn.functional as F

        model = ConvNet().cuda().half()
        scores = model(images).type(torch.float32)
        log_probs = F.log_softmax(scores, dim=1)
    """,
    ),
    # CPU autocast lists cross_entropy as fp32: the whole loss is upcast (checked on torch 2.13).
    ok(
        "cpu-autocast-per-token-cross-entropy",
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        head = nn.Linear(hidden_size, vocab_size)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = head(hidden)
            nll = F.cross_entropy(logits, targets, reduction="none")
    """,
    ),
    # A tensor cast returns a copy; unlike a module's, it does not change `logits` in place.
    ok(
        "bare-half-on-tensor-is-not-in-place",
        """
        import torch.nn as nn
        import torch.nn.functional as F

        head = nn.Linear(hidden_size, vocab_size).cuda()
        logits = head(hidden_states)
        logits.half()
        logp = F.log_softmax(logits, dim=-1)
    """,
    ),
    ok(
        "helper-casts-before-log-softmax",
        """
        import torch
        from transformers import AutoModelForCausalLM

        def compute_logprobs(model, batch):
            logits = model(batch["input_ids"]).logits.float()
            return torch.log_softmax(logits, dim=-1)

        policy = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.bfloat16)
        logp = compute_logprobs(policy, batch)
    """,
    ),
    # `model.float()` as a bare statement casts the module back to fp32 in place.
    ok(
        "module-cast-back-to-float",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        model.float()
        logp = F.log_softmax(model(input_ids).logits, dim=-1)
    """,
    ),
    # Sampling needs probabilities, not log-probabilities.
    ok(
        "softmax-for-sampling",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        logits = model(idx).logits[:, -1, :]
        probs = F.softmax(logits, dim=-1)
        next_token = torch.multinomial(probs, num_samples=1)
    """,
    ),
    ok(
        "log-of-softmax-inside-cuda-autocast",
        """
        import torch
        import torch.nn.functional as F

        classifier = ResNet50().cuda().half()
        with torch.autocast("cuda", dtype=torch.float16):
            log_probs = torch.log(F.softmax(classifier(images), dim=-1))
    """,
    ),
    ok(
        "gather-minus-logsumexp-after-float",
        """
        import torch
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        logits = policy(input_ids).logits.float()
        logp = torch.gather(logits, -1, labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    """,
    ),
    # nanoGPT: ctx is either a no-op or bf16 CUDA autocast. The logits are only half when the
    # autocast is active, and then log_softmax runs in fp32: no path computes it in bf16.
    ok(
        "nanogpt-optional-autocast-context",
        """
        from contextlib import nullcontext

        import torch
        import torch.nn.functional as F
        from model import GPT, GPTConfig

        device = "cuda"
        device_type = "cuda" if "cuda" in device else "cpu"
        dtype = "bfloat16"
        ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        ctx = nullcontext() if device_type == "cpu" else torch.amp.autocast(device_type=device_type, dtype=ptdtype)
        model = GPT(GPTConfig(**model_args)).to(device)
        with ctx:
            logits, _ = model(idx)
            next_logp = F.log_softmax(logits[:, -1, :], dim=-1)
    """,
    ),
    # The parameter shadows the bf16 global of the same name: what the caller passes is unknown.
    ok(
        "parameter-shadows-bf16-global",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)

        def score(policy, input_ids):
            return F.log_softmax(policy(input_ids).logits, dim=-1)
    """,
    ),
    # Another class's `self.model` is a different attribute: only Actor casts its model.
    ok(
        "self-model-of-another-class",
        """
        import torch
        import torch.nn.functional as F

        class Actor:
            def __init__(self, model):
                self.model = model.to(torch.bfloat16)

        class Critic:
            def __init__(self, model):
                self.model = model

            def logprobs(self, x):
                return F.log_softmax(self.model(x), dim=-1)
    """,
    ),
    # The device is only known at run time: on CUDA log_softmax is upcast, on CPU it is not.
    ok(
        "autocast-device-unknown",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            logp = F.log_softmax(model(input_ids).logits, dim=-1)
    """,
    ),
    # Per-token cross_entropy negated into log-probs inside a helper (Improved-GRPO's shape).
    bug(
        "negated-per-token-cross-entropy-in-helper",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        def token_logprobs(model, input_ids, labels):
            logits = model(input_ids).logits
            return -F.cross_entropy(  # expect: MP001
                logits.reshape(-1, logits.size(-1)), labels.reshape(-1), reduction="none"
            ).reshape(labels.shape)

        policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)
        logp = token_logprobs(policy, input_ids, labels)
        ratio = torch.exp(logp - old_logp)
    """,
    ),
    # Per-token losses reduced to the training loss, chunked (litgpt's chunked_cross_entropy) or
    # masked (a masked mean): a loss, not log-probs, however it is reduced.
    ok(
        "chunked-per-token-cross-entropy-loss",
        """
        import torch
        from transformers import AutoModelForCausalLM

        def chunked_cross_entropy(logits, targets, chunk_size=128):
            logits = logits.reshape(-1, logits.size(-1))
            targets = targets.reshape(-1)
            loss_chunks = [
                torch.nn.functional.cross_entropy(logit_chunk, target_chunk, ignore_index=-100, reduction="none")
                for logit_chunk, target_chunk in zip(logits.split(chunk_size), targets.split(chunk_size))
            ]
            non_masked_elems = (targets != -100).sum()
            return torch.cat(loss_chunks).sum() / non_masked_elems

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        loss = chunked_cross_entropy(model(input_ids).logits, labels)
        loss.backward()
    """,
    ),
    ok(
        "masked-mean-of-per-token-cross-entropy",
        """
        import torch
        import torch.nn.functional as F

        with torch.cuda.amp.autocast(dtype=torch.bfloat16):
            student_logits = student(input_ids).logits
        ce_loss = F.cross_entropy(student_logits.view(-1, student_logits.size(-1)), labels.view(-1), reduction="none")
        ce_loss = torch.sum(ce_loss * loss_mask.view(-1)) / (loss_mask.sum() + 1e-8)
        scaler.scale(ce_loss).backward()
    """,
    ),
    # Summed cross_entropy is a loss like the mean, not per-token log-probs.
    ok(
        "sum-cross-entropy",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
        logits = model(input_ids).logits
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1), reduction="sum") / num_tokens
    """,
    ),
    # A model held in a dict and cast there in place: its item is the bf16 model.
    bug(
        "policy-cast-in-place-as-a-dict-item",
        """
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        models = {"policy": AutoModelForCausalLM.from_pretrained(name), "reference": AutoModelForCausalLM.from_pretrained(name)}
        models["policy"].bfloat16()
        logits = models["policy"](input_ids).logits
        logprobs = F.log_softmax(logits, dim=-1)  # expect: MP001
    """,
    ),
    # Only the submodule `get_submodule` hands back is cast; the head runs on fp32 features.
    ok(
        "half-backbone-reached-by-get-submodule",
        """
        import torch
        import torch.nn.functional as F

        class Classifier(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.backbone = torch.nn.Linear(512, 512)
                self.head = torch.nn.Linear(512, 10)

            def forward(self, x):
                return self.head(self.backbone(x.half()).float())

        model = Classifier().cuda()
        model.get_submodule("backbone").half()
        log_probs = F.log_softmax(model(x), dim=-1)
    """,
    ),
    # A method-form matmul of two bf16 tensors, outside any region, is bf16.
    bug(
        "prototype-logits-by-a-matmul-method",
        """
        import torch
        import torch.nn.functional as F

        encoder = torch.nn.Linear(512, 256).cuda().bfloat16()
        features = encoder(images)
        logits = features.matmul(prototypes.bfloat16().t())
        logp = F.log_softmax(logits, dim=-1)  # expect: MP001
        """,
    ),
    # A region enabled by a flag only the caller knows: the fp32 head's output may be fp32.
    ok(
        "autocast-enabled-by-a-parameter",
        """
        import torch
        import torch.nn.functional as F

        head = torch.nn.Linear(768, 10).cuda()

        def evaluate(features, use_amp):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                logits = head(features)
            return F.log_softmax(logits, dim=-1)
        """,
    ),
    # A region off in the configuration that runs (`--amp` is off by default): the fp32 head's
    # output is fp32.
    ok(
        "autocast-off-by-default",
        """
        import argparse
        import torch
        import torch.nn.functional as F

        parser = argparse.ArgumentParser()
        parser.add_argument("--amp", action="store_true")
        args = parser.parse_args()
        head = torch.nn.Linear(768, 10).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.amp):
            logits = head(features)
        logp = F.log_softmax(logits, dim=-1)
        """,
    ),
    # ...but a bf16 head's output is bf16 whether the region runs or not.
    bug(
        "bf16-head-under-autocast-enabled-by-a-parameter",
        """
        import torch
        import torch.nn.functional as F

        head = torch.nn.Linear(768, 10).cuda().bfloat16()

        def evaluate(features, use_amp):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                logits = head(features)
            return F.log_softmax(logits, dim=-1)  # expect: MP001
        """,
    ),
    # Teacher logits precomputed in fp32 and read from the batch: a division in the region is no
    # op autocast lowers.
    ok(
        "batch-logits-divided-inside-the-region",
        """
        import torch
        import torch.nn.functional as F

        for batch in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                student_logits = student(batch["input_ids"])
                teacher_logits = torch.div(batch["teacher_logits"], temperature)
            soft_targets = F.log_softmax(teacher_logits, dim=-1)
        """,
    ),
    # Invalid actions masked out of bf16 logits with `torch.where` (llama-rlhf's invalid-action-mask
    # trainer): the values chosen between are the logits and a Python number, still bf16.
    bug(
        "half-logits-masked-with-torch-where",
        """
        import torch

        policy = torch.nn.Linear(512, 32000).cuda().to(torch.bfloat16)

        def action_logprobs(obs, valid_action_masks, actions):
            logits = torch.where(valid_action_masks, policy(obs), -100)
            return torch.gather(torch.log_softmax(logits, dim=-1), -1, actions.unsqueeze(-1))  # expect: MP001
        """,
    ),
    ok(
        "half-logits-masked-with-torch-where-against-fp32-values",
        """
        import torch

        policy = torch.nn.Linear(512, 32000).cuda().to(torch.bfloat16)
        floor = torch.full((32000,), -100.0, dtype=torch.float32)

        def action_logprobs(obs, valid_action_masks, actions):
            logits = torch.where(valid_action_masks, policy(obs), floor)
            return torch.gather(torch.log_softmax(logits, dim=-1), -1, actions.unsqueeze(-1))
        """,
    ),
    # A LoRA head added to a bf16 base head, its output cast back with `type_as` (llama-rlhf's
    # `apply_lora`): the logits are the base's dtype...
    bug(
        "lora-head-cast-back-with-type-as",
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F


        def apply_lora(x, lora_a, lora_b):
            return lora_b(lora_a(x.type_as(next(lora_a.parameters())))).type_as(x)


        class LoraHead(nn.Module):
            def __init__(self, dim, vocab):
                super().__init__()
                self.output = nn.Linear(dim, vocab, bias=False).type(torch.bfloat16)
                self.lora_a = nn.Linear(dim, 8, bias=False).float()
                self.lora_b = nn.Linear(8, vocab, bias=False).float()

            def forward(self, h):
                return self.output(h) + apply_lora(h, self.lora_a, self.lora_b)


        def token_logprobs(head, h, actions):
            logits = head(h)
            return torch.gather(F.log_softmax(logits, dim=-1), -1, actions.unsqueeze(-1))  # expect: MP001


        embed = nn.Embedding(32000, 512).to(torch.bfloat16)
        token_logprobs(LoraHead(512, 32000), embed(tokens), actions)
        """,
    ),
    # ...and `type_as` an fp32 tensor casts to fp32.
    ok(
        "half-logits-cast-with-type-as-an-fp32-tensor",
        """
        import torch
        import torch.nn.functional as F

        head = torch.nn.Linear(768, 10).cuda().bfloat16()
        reference = torch.zeros(1, dtype=torch.float32)

        def evaluate(features):
            logits = head(features).type_as(reference)
            return F.log_softmax(logits, dim=-1)
        """,
    ),
    # The policy class is the same on both branches (bf16 or fp16 weights): its own log-prob
    # method is still found, and runs on half logits either way.
    bug(
        "method-of-a-policy-class-built-in-either-half-dtype",
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F


        class Policy(nn.Module):
            def __init__(self, dim, vocab):
                super().__init__()
                self.body = nn.Linear(dim, dim)
                self.head = nn.Linear(dim, vocab)

            def token_logps(self, x, actions):
                logits = self.head(self.body(x))
                return F.log_softmax(logits, dim=-1).gather(-1, actions[..., None])  # expect: MP001


        def rollout(args, x, actions):
            if args.use_bf16:
                policy = Policy(512, 32000).cuda().to(torch.bfloat16)
            else:
                policy = Policy(512, 32000).cuda().half()
            with torch.no_grad():
                return policy.token_logps(x, actions)
        """,
    ),
    # A forward helper hands the outputs back in a `dict(...)`: the item read back is the logits.
    bug(
        "logits-read-back-from-a-dict-call",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)


        def forward(model, batch):
            out = model(batch["input_ids"], attention_mask=batch["attention_mask"])
            return dict(logits=out.logits, past_key_values=out.past_key_values)


        def token_logps(batch):
            outputs = forward(policy, batch)
            return F.log_softmax(outputs["logits"], dim=-1)  # expect: MP001
        """,
    ),
    # `autocast(enabled=False)` around the loss does not cast anything: bf16 logits stay bf16.
    bug(
        "autocast-disabled-around-the-log-softmax",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.bfloat16)


        def token_logps(batch):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = policy(batch["input_ids"]).logits
            with torch.autocast("cuda", enabled=False):
                logp = F.log_softmax(logits, dim=-1)  # expect: MP001
            return torch.gather(logp, -1, batch["labels"].unsqueeze(-1)).squeeze(-1)
        """,
    ),
    # The legacy cast by type name, as a string (apex-era code).
    bug(
        "legacy-type-cast-by-string",
        """
        import torch
        import torch.nn.functional as F

        model = torch.nn.Linear(1024, 10).cuda()
        logits = model(features).type("torch.cuda.HalfTensor")
        logp = F.log_softmax(logits, dim=1)  # expect: MP001
        """,
    ),
    # The output read by a field name the caller passes (`getattr(outputs, name)`): whichever
    # field, it is the bf16 model's.
    bug(
        "output-field-read-by-getattr",
        """
        import torch
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.bfloat16)


        def token_logps(batch, output_name):
            outputs = policy(**batch)
            logits = getattr(outputs, output_name)
            return torch.log_softmax(logits, dim=-1)  # expect: MP001
        """,
    ),
    # A field cast and stored back on the output, then read by name with a fallback (`getattr(out,
    # "logits", out)`): the read sees the cast.
    ok(
        "output-field-cast-then-read-by-getattr",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)
        outputs = policy(input_ids)
        outputs.logits = outputs.logits.float()
        logits = getattr(outputs, "logits", outputs)
        logps = F.log_softmax(logits, dim=-1)
        """,
    ),
    ok(
        "output-field-cast-and-stored-by-setattr",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)
        outputs = policy(input_ids)
        setattr(outputs, "logits", outputs.logits.float())
        logps = F.log_softmax(outputs.logits, dim=-1)
        """,
    ),
    # A bf16 model's forward under an autocast whose dtype the caller picks: its logits are half
    # whichever it picks (bf16 kept, or fp16 from autocast's matmuls), and the log_softmax is after
    # the region.
    bug(
        "bf16-model-under-autocast-of-a-dtype-passed-in",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.bfloat16)


        def sequence_logprobs(input_ids, labels, amp_dtype):
            with torch.autocast("cuda", dtype=amp_dtype):
                logits = policy(input_ids).logits
            logp = F.log_softmax(logits, dim=-1)  # expect: MP001
            return torch.gather(logp, -1, labels.unsqueeze(-1)).squeeze(-1)
        """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp001(source: str) -> None:
    check(source, CODE)


MESSAGE_CASE = """
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B")
    policy = policy.to(torch.bfloat16)
    logits = policy(input_ids).logits
    logp = F.log_softmax(logits, dim=-1)
"""


def test_message_names_dtype_and_where_the_cast_is() -> None:
    [finding] = lint(MESSAGE_CASE, CODE)
    assert finding.line == line_of(MESSAGE_CASE, "F.log_softmax")
    assert "bfloat16" in finding.message
    assert f"train.py:{line_of(MESSAGE_CASE, 'policy.to(torch.bfloat16)')}" in finding.message


def test_message_names_the_op_that_asked_for_half() -> None:
    # Probabilities kept in fp16 to save memory, then an entropy bonus from their log.
    source = """
        import torch

        model = torch.nn.Linear(1024, 32000).cuda()


        def entropy(hidden):
            logits = model(hidden)
            probs = logits.softmax(dim=-1, dtype=torch.float16)
            return -(probs * torch.log(probs)).sum(-1)
    """
    [finding] = lint(source, CODE)
    assert finding.line == line_of(source, "torch.log(probs)")
    assert f"computed in float16 at train.py:{line_of(source, 'dtype=torch.float16')}" in finding.message


def test_message_of_a_model_made_half_in_place() -> None:
    source = """
        import torch
        from model import GPT, GPTConfig

        model = GPT(GPTConfig())
        model.half()
        logp = model(idx).log_softmax(-1)
    """
    [finding] = lint(source, CODE)
    assert "float16" in finding.message
    assert "bfloat16" not in finding.message
    assert f"train.py:{line_of(source, 'model.half()')}" in finding.message


# Ops next to log-probs that are not log-probs, on bf16 tensors: a z-loss on the logsumexp, a
# per-token value loss, the log of a sigmoid. And log-probs spelled out by hand where they are fine:
# inside a CUDA autocast region (logsumexp runs in fp32 there), and on an fp32 reference model.
NEIGHBOURS = """
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    policy = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
    value_model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
    reference = AutoModelForCausalLM.from_pretrained(name)
    out = policy(input_ids)
    logits = out["logits"]
    z_loss = 1e-4 * logits.logsumexp(dim=-1)
    values = value_model(input_ids).logits.squeeze(-1)
    value_loss = F.mse_loss(values, returns, reduction="none")
    p_stop = torch.log(torch.sigmoid(logits[..., 0]))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logp = logits.gather(-1, labels[..., None]).squeeze(-1) - logits.logsumexp(dim=-1)
    ref_logits = reference(input_ids).logits
    ref_logp = ref_logits.gather(-1, labels[..., None]).squeeze(-1) - ref_logits.logsumexp(dim=-1)
    same_dtype = F.log_softmax(logits, dim=-1, dtype=logits.dtype)  # expect: MP001
    # WPO's weights: log-probs already formed (and reported) minus a logsumexp of log-probs.
    per_token_logps = same_dtype.gather(-1, labels[..., None]).squeeze(-1)
    adjustment = torch.logsumexp(2 * same_dtype, dim=-1)
    adjusted = per_token_logps - adjustment
    inline = per_token_logps - torch.logsumexp(2 * same_dtype, dim=-1)
    # The same after a join that loses what the log-probs were (InternVL's MPO trainer, `padding_free`).
    if padding_free:
        unpacked = torch.zeros(batch_size, seq_len, dtype=logits.dtype)
        unpacked[attention_mask.bool()] = per_token_logps
        per_token_logps = unpacked
    weights_adjustment_factor = torch.logsumexp(2 * same_dtype, dim=-1)
    per_token_logps_adjusted = per_token_logps - weights_adjustment_factor
"""


def test_only_log_probs_of_half_logits_outside_autocast() -> None:
    check(NEIGHBOURS, CODE)


# Categorical from the distributions package by any import path; a project's own `Categorical`
# head is a module, not a distribution.
def test_categorical_of_torch_distributions() -> None:
    check(
        """
        import torch
        import torch.distributions as D
        from torch.distributions.categorical import Categorical

        policy = PolicyNet().to(torch.bfloat16)
        logits = policy(obs)
        dist = D.Categorical(logits=logits)  # expect: MP001
        same = Categorical(None, logits)  # expect: MP001
        """,
        CODE,
    )


# atropos's GRPO step: the temperatures cast to the logits' dtype, guarded with `torch.where(t <= 0,
# torch.ones_like(t), t)`, divide the bf16 logits; their negated per-token cross-entropy is log-probs.
def test_logits_scaled_by_a_tensor_cast_to_their_dtype_stay_half() -> None:
    check(
        """
        import torch
        import torch.nn.functional as F

        policy = PolicyNet().to(torch.bfloat16)

        def token_log_probs(tokens, temperatures, labels):
            logits = policy(tokens)
            t = temperatures.to(logits.device, logits.dtype)
            t = torch.where(t <= 0, torch.ones_like(t), t)
            scaled = logits / t
            return -F.cross_entropy(scaled.view(-1, scaled.size(-1)), labels.view(-1), reduction="none")  # expect: MP001
        """,
        CODE,
    )


# quiet-star's sample_next_token: a token drawn and the distribution dropped keeps no log-prob; one
# kept for its log_prob() after sampling is reported.
def test_categorical_only_sampled_from_is_no_log_prob() -> None:
    check(
        """
        import torch

        policy = PolicyNet().to(torch.bfloat16)
        logits = policy(obs)
        token = torch.distributions.categorical.Categorical(logits=logits).sample().unsqueeze(-1)
        dist = torch.distributions.Categorical(logits=logits)  # expect: MP001
        action = dist.sample()
        logp = dist.log_prob(action)
        """,
        CODE,
    )


HELD_LOGSUMEXP = [
    bug(
        "trl-style-selective-log-softmax-on-bf16-logits",
        """
        import torch
        from transformers import AutoModelForCausalLM

        def selective_log_softmax(logits, index):
            selected_logits = torch.gather(logits, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
            logsumexp_values = torch.stack([torch.logsumexp(lg, dim=-1) for lg in logits])  # expect: MP001
            return selected_logits - logsumexp_values

        policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)
        logps = selective_log_softmax(policy(input_ids).logits, input_ids)
        """,
    ),
    bug(
        "logsumexp-held-in-a-name-under-cpu-autocast",
        """
        import torch

        policy = torch.nn.Linear(16, 100)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = policy(states)
            lse = torch.logsumexp(logits, dim=-1, keepdim=True)  # expect: MP001
            logp = logits - lse
        """,
    ),
    ok(
        "held-logsumexp-of-fp32-logits",
        """
        import torch

        def selective_log_softmax(logits, index):
            selected_logits = torch.gather(logits, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
            logsumexp_values = torch.stack([torch.logsumexp(lg, dim=-1) for lg in logits])
            return selected_logits - logsumexp_values

        policy = torch.nn.Linear(16, 100).to(torch.bfloat16)
        logps = selective_log_softmax(policy(states).float(), actions)
        """,
    ),
    ok(
        "held-logsumexp-under-cuda-autocast-runs-in-fp32",
        """
        import torch

        policy = torch.nn.Linear(16, 100)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = policy(states)
            lse = torch.logsumexp(logits, dim=-1, keepdim=True)
            logp = logits - lse
        """,
    ),
    ok(
        "a-held-logsumexp-on-the-left-is-no-log-softmax",
        """
        import torch

        policy = torch.nn.Linear(16, 100).to(torch.bfloat16)
        logits = policy(states)
        lse = torch.logsumexp(logits, dim=-1)
        margin = lse - logits.max(dim=-1).values
        """,
    ),
]


HELD_LOGSUMEXP += [
    bug(
        "the-nearest-earlier-assignment-holds-it",
        """
        import torch

        policy = torch.nn.Linear(16, 100).to(torch.bfloat16)
        logits = policy(states)
        lse = torch.logsumexp(logits, dim=-1, keepdim=True)
        lse = torch.logsumexp(logits / 0.7, dim=-1, keepdim=True)  # expect: MP001
        logp = logits / 0.7 - lse
        """,
    ),
    bug(
        "an-assignment-after-the-subtraction-does-not-hold-it",
        """
        import torch

        policy = torch.nn.Linear(16, 100).to(torch.bfloat16)
        logits = policy(states)
        lse = torch.logsumexp(logits, dim=-1, keepdim=True)  # expect: MP001
        logp = logits - lse
        lse = torch.logsumexp(logits / 0.7, dim=-1, keepdim=True)
        """,
    ),
    bug(
        "held-through-another-name-is-reported-where-it-is-read",
        """
        import torch

        policy = torch.nn.Linear(16, 100).to(torch.bfloat16)
        logits = policy(states)
        normaliser = torch.logsumexp(logits, dim=-1, keepdim=True)
        lse = normaliser
        logp = logits - lse  # expect: MP001
        """,
    ),
    bug(
        "an-unpacking-assignment-is-reported-where-it-is-read",
        """
        import torch

        policy = torch.nn.Linear(16, 100).to(torch.bfloat16)
        logits = policy(states)
        lse, count = torch.logsumexp(logits, dim=-1, keepdim=True), logits.shape[-1]
        logp = logits - lse  # expect: MP001
        """,
    ),
    bug(
        "an-assignment-to-two-names-is-reported-where-it-is-read",
        """
        import torch

        policy = torch.nn.Linear(16, 100).to(torch.bfloat16)
        logits = policy(states)
        lse = cached = torch.logsumexp(logits, dim=-1, keepdim=True)
        logp = logits - lse  # expect: MP001
        """,
    ),
    # distillm's MiniLLM reward: the logits masked by a comparison's mask, the logsumexp zeroed on
    # padding before the subtraction.
    bug(
        "masked-logits-and-a-masked-logsumexp",
        """
        import torch
        from transformers import AutoModelForCausalLM

        teacher = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float16)

        def reward_fn(full_ids, pad_token_id, prompt_len):
            attention_mask = full_ids != pad_token_id
            logits = teacher(input_ids=full_ids, attention_mask=attention_mask).logits
            logits = logits - torch.mean(logits, dim=-1, keepdim=True)
            logits = logits * attention_mask.unsqueeze(-1)
            mask = attention_mask[:, prompt_len - 1 :]
            selection_value = torch.gather(logits[:, :-1, :], -1, full_ids[:, prompt_len:, None]).squeeze(-1)
            next_state_value = torch.logsumexp(logits[:, :-1, :], dim=-1)  # expect: MP001
            next_state_value = next_state_value * mask[:, :-1]
            return selection_value - next_state_value
        """,
    ),
    ok(
        "a-mask-made-fp32-promotes-the-logits",
        """
        import torch
        from transformers import AutoModelForCausalLM

        teacher = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float16)

        def reward_fn(full_ids, pad_token_id):
            attention_mask = full_ids != pad_token_id
            logits = teacher(input_ids=full_ids).logits * attention_mask.unsqueeze(-1).float()
            selection_value = torch.gather(logits, -1, full_ids[..., None]).squeeze(-1)
            next_state_value = torch.logsumexp(logits, dim=-1) * attention_mask
            return selection_value - next_state_value
        """,
    ),
    ok(
        "a-logsumexp-scaled-by-a-number-is-no-masked-one",
        """
        import torch

        policy = torch.nn.Linear(16, 100).to(torch.bfloat16)
        logits = policy(states)
        z_term = torch.logsumexp(logits, dim=-1) * 1e-4
        penalised = logits.max(dim=-1).values - z_term
        """,
    ),
]


@pytest.mark.parametrize("source", HELD_LOGSUMEXP)
def test_a_logsumexp_held_in_a_name(source: str) -> None:
    check(source, "MP001")


def test_messages_keep_the_origin_through_joins_and_arithmetic() -> None:
    """Either branch's cast makes the model half (the first is named); a division by a number keeps
    the logits' origin; a region whose device is not known says so."""
    source = """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        TEMPERATURE = 0.7

        policy = AutoModelForCausalLM.from_pretrained(name)
        if use_bf16:
            policy = policy.to(torch.bfloat16)
        else:
            policy = policy.half()
        logits = policy(input_ids).logits / TEMPERATURE
        logp = F.log_softmax(logits, dim=-1)
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            scores = torch.nn.functional.linear(hidden, weight)
        score_logp = F.log_softmax(scores, dim=-1)
    """
    findings = {finding.line: finding.message for finding in lint(source, CODE)}
    assert f"cast at train.py:{line_of(source, 'policy.to(torch.bfloat16)')}" in findings[line_of(source, "logp =")]
    assert "computed under unknown-device bfloat16 autocast" in findings[line_of(source, "score_logp =")]


# TRL's `selective_log_softmax(logits, index)` (trl/trainer/utils.py) and OpenRLHF's
# `log_probs_from_logits(logits, labels)` (openrlhf/models/utils.py): a per-row `F.log_softmax` in the
# logits' dtype for any dtype but fp32/fp64; under CUDA autocast that log_softmax runs in fp32.
LIBRARY_LOG_SOFTMAX = [
    bug(
        "trl-selective-log-softmax-on-bf16-logits",
        """
        import torch
        from transformers import AutoModelForCausalLM
        from trl.trainer.utils import selective_log_softmax


        class GRPOLearner:
            def __init__(self, model_id):
                self.policy = AutoModelForCausalLM.from_pretrained(model_id, torch_dtype=torch.bfloat16)

            def _get_per_token_logps(self, input_ids, logits_to_keep):
                logits = self.policy(input_ids=input_ids).logits[:, :-1, :]
                input_ids = input_ids[:, -logits_to_keep:]
                return selective_log_softmax(logits[:, -logits_to_keep:], input_ids)  # expect: MP001
    """,
    ),
    ok(
        "trl-selective-log-softmax-on-fp32-logits",
        """
        import torch
        from transformers import AutoModelForCausalLM
        from trl.trainer.utils import selective_log_softmax

        model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)
        logits = model(input_ids).logits.float()
        per_token_logps = selective_log_softmax(logits, input_ids)
    """,
    ),
    ok(
        "trl-selective-log-softmax-under-cuda-autocast",
        """
        import torch
        from transformers import AutoModelForCausalLM
        from trl.trainer.utils import selective_log_softmax

        model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B").cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids).logits
            per_token_logps = selective_log_softmax(logits, input_ids)
    """,
    ),
    bug(
        "openrlhf-log-probs-from-logits-on-bf16-logits",
        """
        import torch
        from openrlhf.models.utils import log_probs_from_logits
        from transformers import AutoModelForCausalLM

        def action_log_probs(model, sequences, num_actions):
            logits = model(sequences).logits
            log_probs = log_probs_from_logits(logits[:, :-1, :], sequences[:, 1:])  # expect: MP001
            return log_probs[:, -num_actions:]


        def make_experience(pretrain, sequences, num_actions):
            actor = AutoModelForCausalLM.from_pretrained(pretrain, torch_dtype=torch.bfloat16)
            return action_log_probs(actor, sequences, num_actions)
    """,
    ),
    ok(
        "openrlhf-log-probs-from-fp32-logits",
        """
        import torch
        from openrlhf.models.utils import log_probs_from_logits
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained("OpenRLHF/Llama-3-8b-sft-mixture", torch_dtype=torch.bfloat16)
        logits = model(sequences).logits.to(torch.float32)
        log_probs = log_probs_from_logits(logits[:, :-1, :], sequences[:, 1:], temperature=0.7)
    """,
    ),
    # Another library's function of the same name is not TRL's.
    ok(
        "a-selective-log-softmax-of-another-package",
        """
        import torch
        from transformers import AutoModelForCausalLM
        from verl_utils.torch_functional import selective_log_softmax

        model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)
        per_token_logps = selective_log_softmax(model(input_ids).logits, input_ids)
    """,
    ),
]


@pytest.mark.parametrize("source", LIBRARY_LOG_SOFTMAX)
def test_library_log_prob_helpers_are_a_log_softmax(source: str) -> None:
    check(source, CODE)


def test_the_message_names_the_helper_as_written() -> None:
    source = """
        import torch
        from transformers import AutoModelForCausalLM
        from trl.trainer.utils import selective_log_softmax

        model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)
        per_token_logps = selective_log_softmax(model(input_ids).logits, input_ids)
    """
    (finding,) = lint(source, CODE)
    assert finding.message.startswith("selective_log_softmax on bfloat16 logits")


# A log_softmax that is cross-entropy written out: in its function, its result only feeds
# `nll_loss` or is reduced over the class dimension into a negated loss (label smoothing, soft
# targets). The training loss of a classifier, as `F.cross_entropy(logits, y)` is: not reported.
# Log-probs used as values (gathered, returned, in a ratio or a KL, negated back) still are.
CLASSIFICATION_LOSSES = [
    # cifar10-fast-simple (model.py): label smoothing over a model cast to fp16 in train().
    ok(
        "label-smoothing-over-nll-loss-and-a-mean",
        """
        import torch
        import torch.nn as nn

        def label_smoothing_loss(inputs, targets, alpha):
            log_probs = torch.nn.functional.log_softmax(inputs, dim=1, _stacklevel=5)
            kl = -log_probs.mean(dim=1)
            xent = torch.nn.functional.nll_loss(log_probs, targets, reduction="none")
            loss = (1 - alpha) * xent + alpha * kl
            return loss

        def train(train_model, batches, optimizer):
            train_model = train_model.to(torch.float16)
            for inputs, targets in batches:
                logits = train_model(inputs.half())
                loss = label_smoothing_loss(logits, targets, alpha=0.2)
                loss.sum().backward()
                optimizer.step()
        """,
    ),
    # timm's SoftTargetCrossEntropy over mixup targets, on a bf16 model.
    ok(
        "soft-target-cross-entropy-with-a-negated-target",
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class SoftTargetCrossEntropy(nn.Module):
            def forward(self, x, target):
                loss = torch.sum(-target * F.log_softmax(x, dim=-1), dim=-1)
                return loss.mean()

        model = create_model("resnet50").cuda().to(torch.bfloat16)
        criterion = SoftTargetCrossEntropy()
        for images, targets in loader:
            images, targets = mixup_fn(images, targets)
            loss = criterion(model(images.bfloat16()), targets)
            loss.backward()
        """,
    ),
    # MiniMA's distillation: soft targets that are a teacher's probabilities, not labels: the
    # student's log-probs are values weighed against them (KL up to a constant).
    bug(
        "soft-cross-entropy-against-a-teacher-s-softmax",
        """
        import torch
        import torch.nn.functional as F

        def soft_cross_entropy(input, target):
            s_likelihood = F.log_softmax(input, dim=-1)  # expect: MP001
            t_probability = F.softmax(target, dim=-1)
            return -torch.sum(t_probability * s_likelihood, dim=-1).mean()

        student = Student().cuda().to(torch.bfloat16)
        teacher = Teacher().cuda().to(torch.bfloat16)
        for batch in loader:
            with torch.no_grad():
                t_logits = teacher(batch)
            loss = soft_cross_entropy(student(batch), t_logits)
            loss.backward()
        """,
    ),
    bug(
        "soft-cross-entropy-against-detached-teacher-probabilities-inline",
        """
        import torch
        import torch.nn.functional as F

        student = Student().cuda().half()

        def distill_loss(x, teacher_logits, T=2.0):
            return -(F.softmax(teacher_logits / T, dim=-1).detach() * F.log_softmax(student(x) / T, dim=-1)).sum(-1).mean()  # expect: MP001
        """,
    ),
    ok(
        "inline-nll-loss-of-a-method-log-softmax",
        """
        import torch
        import torch.nn.functional as F

        model = Net().cuda().half()

        def train_epoch(loader, optimizer):
            for data, target in loader:
                output = model(data.cuda().half())
                loss = F.nll_loss(output.log_softmax(dim=1), target.cuda())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        """,
    ),
    # timm's LabelSmoothingCrossEntropy (timm/loss/cross_entropy.py), a model cast whole by
    # `--model-dtype bfloat16`: the target's negative log-likelihood gathered, then smoothed.
    ok(
        "label-smoothing-over-a-negated-gather",
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class LabelSmoothingCrossEntropy(nn.Module):
            def __init__(self, smoothing=0.1):
                super().__init__()
                self.smoothing = smoothing
                self.confidence = 1. - smoothing

            def forward(self, x, target):
                logprobs = F.log_softmax(x, dim=-1)
                nll_loss = -logprobs.gather(dim=-1, index=target.unsqueeze(1))
                nll_loss = nll_loss.squeeze(1)
                smooth_loss = -logprobs.mean(dim=-1)
                loss = self.confidence * nll_loss + self.smoothing * smooth_loss
                return loss.mean()

        model = Net().cuda().to(torch.bfloat16)
        criterion = LabelSmoothingCrossEntropy()
        for images, labels in loader:
            criterion(model(images), labels).backward()
        """,
    ),
    # Label smoothing subtracted, the smoothing term a mean of means.
    ok(
        "label-smoothing-subtracted",
        """
        import torch
        import torch.nn.functional as F

        model = Net().cuda().half()

        def smoothed_loss(images, labels, eps=0.1):
            log_probs = F.log_softmax(model(images), -1)
            return (1 - eps) * F.nll_loss(log_probs, labels) - eps * log_probs.mean(dim=-1).mean()
        """,
    ),
    # The same log-probs also gathered for the actions taken: per-token log-probs as values.
    bug(
        "log-probs-of-a-loss-also-gathered",
        """
        import torch
        import torch.nn.functional as F

        policy = PolicyNet().cuda().to(torch.bfloat16)

        def policy_loss(states, actions, advantages):
            log_probs = F.log_softmax(policy(states), dim=-1)  # expect: MP001
            entropy_bonus = -log_probs.mean(dim=-1)
            taken = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
            return -(taken * advantages).mean() - 0.01 * entropy_bonus.mean()
        """,
    ),
    # REINFORCE: the taken actions' log-probs negated and weighed by the returns in place.
    bug(
        "negated-gather-weighed-by-returns",
        """
        import torch
        import torch.nn.functional as F

        policy = PolicyNet().cuda().to(torch.bfloat16)

        def reinforce_loss(states, actions, returns):
            log_probs = F.log_softmax(policy(states), dim=-1)  # expect: MP001
            return (-log_probs.gather(1, actions.unsqueeze(1)).squeeze(1) * returns).mean()
        """,
    ),
    # The negated gather negated back: the actions' log-probs again.
    bug(
        "negated-gather-negated-back",
        """
        import torch
        import torch.nn.functional as F

        policy = PolicyNet().cuda().to(torch.bfloat16)

        def action_log_probs(states, actions):
            log_probs = F.log_softmax(policy(states), dim=-1)  # expect: MP001
            nll = -log_probs.gather(1, actions.unsqueeze(1))
            return -nll
        """,
    ),
    # A one-hot sum is the log-prob of the action taken, then in a PPO ratio: not negated, no loss.
    bug(
        "one-hot-log-prob-in-a-ratio",
        """
        import torch
        import torch.nn.functional as F

        policy = PolicyNet().cuda().half()

        def ppo_loss(states, actions, old_log_probs, advantages, clip=0.2):
            one_hot = F.one_hot(actions, num_classes=n_actions)
            log_probs = (F.log_softmax(policy(states), dim=-1) * one_hot).sum(-1)  # expect: MP001
            ratio = torch.exp(log_probs - old_log_probs)
            return -torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean()
        """,
    ),
    # nll_loss negated back is the per-action log-prob, as `-F.cross_entropy(..., reduction="none")` is.
    bug(
        "nll-loss-negated-into-log-probs",
        """
        import torch
        import torch.nn.functional as F

        policy = PolicyNet().cuda().half()

        def action_log_probs(states, actions):
            log_probs = F.log_softmax(policy(states), dim=-1)  # expect: MP001
            nll = F.nll_loss(log_probs, actions, reduction="none")
            return -nll
        """,
    ),
    # A KL between two policies subtracts the log-probs: values, not a loss over classes.
    bug(
        "kl-between-policies",
        """
        import torch
        import torch.nn.functional as F

        policy = PolicyNet().cuda().half()

        def kl_to_reference(states, ref_log_probs):
            log_probs = F.log_softmax(policy(states), dim=-1)  # expect: MP001
            return (log_probs.exp() * (log_probs - ref_log_probs)).sum(-1).mean()
        """,
    ),
    # Returned (MNIST's forward) or reduced over another dimension than the classes': as before.
    bug(
        "log-probs-returned",
        """
        import torch
        import torch.nn.functional as F

        model = Net().cuda().half()

        def log_probs_of(images):
            log_probs = F.log_softmax(model(images), dim=1)  # expect: MP001
            loss = -log_probs.mean(dim=1)
            return log_probs, loss
        """,
    ),
    # Over every dimension at once, the mean of an LM's log-probs is no loss over its classes.
    bug(
        "mean-over-every-dimension",
        """
        import torch
        import torch.nn.functional as F

        model = LM().cuda().to(torch.bfloat16)

        def compute_loss(input_ids):
            logits = model(input_ids)
            return -F.log_softmax(logits, dim=-1).mean()  # expect: MP001
        """,
    ),
    bug(
        "summed-over-the-sequence",
        """
        import torch
        import torch.nn.functional as F

        model = LM().cuda().half()

        def sequence_scores(input_ids, weights):
            log_probs = F.log_softmax(model(input_ids), dim=-1)  # expect: MP001
            return -(weights * log_probs).sum(dim=1)
        """,
    ),
]


@pytest.mark.parametrize("source", CLASSIFICATION_LOSSES)
def test_cross_entropy_written_out_is_a_classification_loss(source: str) -> None:
    check(source, CODE)


# Weightless modules that run one function (`nn.LogSoftmax(dim=2)(x)` is `F.log_softmax(x, dim=2)`):
# built inline (EAGLE's distillation loss), held by a model, or in a name; their settings (`dim`) count.
LOG_SOFTMAX_MODULES = [
    bug(
        "built-inline-over-a-teacher-distribution",
        """
        import torch
        from torch import nn

        head = nn.Linear(4096, 32000).half()

        def compute_loss(target, predict):
            with torch.no_grad():
                target_p = nn.Softmax(dim=2)(head(target))
            out_logp = nn.LogSoftmax(dim=2)(head(predict))  # expect: MP001
            return -torch.sum(torch.sum(target_p * out_logp, 2))
        """,
    ),
    bug(
        "held-by-a-half-model",
        """
        import torch
        from torch import nn

        class Policy(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Linear(512, 32000)
                self.log_softmax = nn.LogSoftmax(-1)

            def forward(self, x, actions):
                logp = self.log_softmax(self.body(x))  # expect: MP001
                return logp.gather(-1, actions[..., None])

        policy = Policy().to(torch.bfloat16)

        def ratio(states, actions, old_logp):
            return torch.exp(policy(states, actions) - old_logp)
        """,
    ),
    ok(
        "upcast-first",
        """
        import torch
        from torch import nn

        head = nn.Linear(4096, 32000).half()
        log_softmax = nn.LogSoftmax(dim=-1)

        def token_logp(hidden, tokens):
            return log_softmax(head(hidden).float()).gather(-1, tokens[..., None])
        """,
    ),
    ok(
        "a-classifiers-loss-through-nll",
        """
        import torch
        import torch.nn.functional as F
        from torch import nn

        model = nn.Linear(512, 10).half()
        log_softmax = nn.LogSoftmax(dim=1)

        def loss_fn(x, y):
            return F.nll_loss(log_softmax(model(x)), y)
        """,
    ),
    ok(
        "a-softmax-module-alone",
        """
        import torch
        from torch import nn

        model = nn.Linear(512, 10).half()
        probs = nn.Softmax(dim=-1)(model(torch.randn(2, 512)))
        """,
    ),
]


@pytest.mark.parametrize("source", LOG_SOFTMAX_MODULES)
def test_log_softmax_modules_are_the_function(source: str) -> None:
    check(source, CODE)


# Log-probs taken under `torch.inference_mode()` are values all the same: answer scores (best-of-n,
# multiple-choice scoring by mean log-prob, as reasoning-from-scratch's labelled bugs), a DPO loss's
# reference log-probs, a drafter's candidate ranking. `torch.no_grad()` is no sign either: RL code takes
# its old log-probs there.
INFERENCE = [
    bug(
        "answer-scoring-in-a-decorated-helper",
        """
        import torch
        from torch import nn

        model = nn.Linear(4096, 32000).to(torch.bfloat16)

        @torch.inference_mode()
        def avg_logprob_answer(hidden, answer_ids):
            logprobs = torch.log_softmax(model(hidden), dim=-1)  # expect: MP001
            return logprobs.gather(-1, answer_ids[..., None]).mean()

        def best_of_n(candidates):
            return max(candidates, key=lambda c: avg_logprob_answer(c.hidden, c.ids))
        """,
    ),
    bug(
        "no-grad-old-log-probs-of-a-rollout",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-7B", torch_dtype=torch.bfloat16)

        def logprobs(input_ids):
            logits = policy(input_ids).logits
            return F.log_softmax(logits, dim=-1).gather(-1, input_ids[..., None])  # expect: MP001

        @torch.no_grad()
        def rollout(input_ids):
            return logprobs(input_ids)

        def ppo_step(input_ids):
            old_logp = rollout(input_ids)
            return torch.exp(logprobs(input_ids) - old_logp)
        """,
    ),
    bug(
        "reference-log-probs-of-a-run-that-trains",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-7B", torch_dtype=torch.bfloat16)
        reference = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-7B", torch_dtype=torch.bfloat16)

        def logps(model, input_ids):
            logits = model(input_ids).logits
            return F.log_softmax(logits, dim=-1).gather(-1, input_ids[..., None]).sum(1)  # expect: MP001

        @torch.inference_mode()
        def reference_logps(input_ids):
            return logps(reference, input_ids)

        def dpo_step(chosen, rejected, ref_chosen, ref_rejected):
            margin = (logps(policy, chosen) - ref_chosen) - (logps(policy, rejected) - ref_rejected)
            F.logsigmoid(0.1 * margin).mean().neg().backward()
        """,
    ),
]


@pytest.mark.parametrize("source", INFERENCE)
def test_log_probs_without_gradients_are_values_all_the_same(source: str) -> None:
    check(source, CODE)
