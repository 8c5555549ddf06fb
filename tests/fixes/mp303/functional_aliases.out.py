import torch
import torch.nn.functional as nnf


def soft_target_loss(logits, targets, temperature):
    log_probs = nnf.log_softmax(logits / temperature, dim=-1)
    return -(targets * log_probs).sum(-1).mean()


def kl_to_teacher(student_logits, teacher_logits):
    student = torch.log_softmax(student_logits, dim=1, dtype=torch.float32)
    teacher = nnf.softmax(teacher_logits, dim=1)
    return nnf.kl_div(student, teacher, reduction="batchmean")
