"""llm.c / nanoGPT's shape: seed every RNG (`torch.cuda.manual_seed` among them), check that a
re-seeded run draws the same batch, and train a tiny model under fp16 autocast with no
GradScaler (MP002). Along the way two calls torch warns about: a tensor copy-constructed with
`torch.tensor` and the std of a single value."""

import argparse

import torch
import torch.nn.functional as F
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=42)
parser.add_argument("--steps", type=int, default=10)
args = parser.parse_args()

device = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(args.seed)
if torch.cuda.is_available():
    torch.cuda.manual_seed(args.seed)
    torch.cuda.manual_seed_all(args.seed)
print(f"cuda initial seed {torch.cuda.initial_seed()}")

state = torch.cuda.get_rng_state()
first = torch.randn(4, device=device)
torch.cuda.set_rng_state(state)
assert torch.equal(first, torch.randn(4, device=device)), "the CUDA RNG state did not restore"
torch.cuda.set_rng_state_all(torch.cuda.get_rng_state_all())
torch.cuda.seed()
torch.cuda.seed_all()
torch.cuda.manual_seed(args.seed)
print("rng ok")

model = nn.Sequential(nn.Embedding(64, 32), nn.Linear(32, 64)).to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
for step in range(args.steps):
    tokens = torch.randint(0, 64, (4, 16), device=device)
    with torch.autocast(device_type="cuda", dtype=torch.float16):  # MP002
        logits = model(tokens)
    loss = F.cross_entropy(logits.float().view(-1, 64), tokens.view(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    spread = torch.tensor(loss).std()  # warns
    optimizer.step()
    print(f"step {step}: loss {loss.item():.3f} spread {spread.item()}")
