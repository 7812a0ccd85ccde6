"""Every Triton op of fastgan under one name, with the signatures of ``torch.ops.fastgan``."""
from fastgan.kernels.bias_act import bias_act, bias_act_grad, bias_act_grad2
from fastgan.kernels.optim import clip_, clipped_rmsprop_
from fastgan.kernels.penalty import row_penalty

__all__ = ["bias_act", "bias_act_grad", "bias_act_grad2", "clip_", "clipped_rmsprop_", "row_penalty"]
