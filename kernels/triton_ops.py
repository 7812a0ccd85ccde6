"""Every Triton op of fastgan under one name, with the signatures of ``torch.ops.fastgan``."""
from fastgan.kernels.bias_act import bias_act, bias_act_grad, bias_act_grad2
from fastgan.kernels.critic import critic_step, mlp_backward, mlp_forward, row_penalty
from fastgan.kernels.optim import clip_, clipped_rmsprop_

__all__ = ["bias_act", "bias_act_grad", "bias_act_grad2", "clip_", "clipped_rmsprop_",
           "critic_step", "mlp_backward", "mlp_forward", "row_penalty"]
