"""The CUDA utilities a benchmark-minded training script touches: device properties to pick the
dtype, a CUDA generator, timing events, peak-memory statistics, pinned host batches, and a
DataLoader with pin_memory. The policy's log-probs are taken in bf16 (MP001)."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

assert torch.cuda.is_available()
torch.cuda.set_device(0)
props = torch.cuda.get_device_properties(torch.cuda.current_device())
print(f"{torch.cuda.get_device_name()}: {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs")
dtype = torch.bfloat16 if torch.cuda.get_device_capability() >= (8, 0) else torch.float16
generator = torch.Generator(device="cuda")
generator.manual_seed(0)
torch.cuda.manual_seed_all(0)

dataset = TensorDataset(torch.randn(64, 16), torch.randint(0, 4, (64,)))
loader = DataLoader(dataset, batch_size=8, pin_memory=True, shuffle=True)
policy = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4)).cuda()
optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
torch.cuda.reset_peak_memory_stats()
stream = torch.cuda.current_stream()

for step, (observations, actions) in enumerate(loader):
    observations = observations.to("cuda", non_blocking=True)
    actions = actions.to("cuda", non_blocking=True)
    noise = torch.randn(observations.shape, device="cuda", generator=generator, pin_memory=False)
    start.record()
    with torch.autocast("cuda", dtype=dtype):
        logits = policy(observations + 0.01 * noise)
    logp = F.log_softmax(logits, dim=-1)  # MP001
    loss = -logp.gather(1, actions[:, None]).float().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    end.record()
    torch.cuda.synchronize()
    print(f"step {step}: {start.elapsed_time(end):.2f} ms, peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
