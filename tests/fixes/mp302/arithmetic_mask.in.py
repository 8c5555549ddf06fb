import torch

encoder = torch.nn.Linear(256, 256).half()
hidden = encoder(features)
pad = attention_mask.half()
scores = hidden @ hidden.transpose(-2, -1) + pad * -1e9
other = hidden @ hidden.transpose(-2, -1) + (1.0 - pad) * -1e9
