import torch.amp as cuda_amp

scaler = cuda_amp.GradScaler("cuda", init_scale=1024)


@cuda_amp.autocast("cuda")
def evaluate(model, batch):
    return model(batch)
