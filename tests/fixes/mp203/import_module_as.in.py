import torch.cuda.amp as cuda_amp

scaler = cuda_amp.GradScaler(init_scale=1024)


@cuda_amp.autocast()
def evaluate(model, batch):
    return model(batch)
