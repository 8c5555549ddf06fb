"""AdamW over .half() parameters, in a loop that swallows every Exception."""

import torch
from torch import nn

model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1)).half()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)  # MP003
steps_taken = 0

for _ in range(100):
    try:
        loss = model(torch.randn(8, 16, dtype=torch.float16)).float().pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps_taken += 1
    except Exception:  # a user's catch-all must not swallow mplint's stop
        pass

print(f"ran {steps_taken} steps")
