"""airbench's shape: the dataset is a tensor file loaded straight onto the GPU
(`torch.load(..., map_location=torch.device("cuda"))`, which asks `isinstance(x,
torch.cuda.device)`), the work runs under `with torch.cuda.device(0)`, and a bf16 model trains."""

import os
import tempfile

import torch
import torch.nn.functional as F
from torch import nn

path = os.path.join(tempfile.mkdtemp(), "train.pt")
torch.save({"images": torch.randn(64, 3, 8, 8), "labels": torch.randint(0, 10, (64,))}, path)
data = torch.load(path, map_location=torch.device("cuda"))  # load
images, labels = data["images"], data["labels"]
assert images.is_cuda or not torch.cuda.is_available() or images.device.type == "cpu"
assert not isinstance(torch.device("cuda"), torch.cuda.device)

selected = torch.cuda.device(0)
assert isinstance(selected, torch.cuda.device)
with selected:
    assert torch.cuda.current_device() == 0
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 64), nn.ReLU(), nn.Linear(64, 10)).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for start in range(0, 64, 16):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(images[start : start + 16])
        loss = F.cross_entropy(logits.float(), labels[start : start + 16])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
print("trained")
