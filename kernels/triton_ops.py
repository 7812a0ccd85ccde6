"""Every Triton op of fastgan under one name, with the signatures of ``torch.ops.fastgan``."""
from fastgan.kernels.critic import critic_step, mlp_backward, mlp_forward, row_penalty
from fastgan.kernels.optim import clip_, clipped_rmsprop_

__all__ = ["clip_", "clipped_rmsprop_", "critic_step", "mlp_backward", "mlp_forward", "row_penalty"]
