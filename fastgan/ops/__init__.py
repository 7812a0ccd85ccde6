"""The public fused ops, autograd-aware; each dispatches through :mod:`fastgan.backends`."""
from fastgan.ops.bias_act import bias_act
from fastgan.ops.critic import critic_loss
from fastgan.ops.graph import CriticLoss
from fastgan.ops.optim import clip_, clipped_rmsprop_
from fastgan.ops.penalty import row_penalty
from fastgan.ops.trace import fused_critic_loss

__all__ = ["CriticLoss", "bias_act", "clip_", "clipped_rmsprop_", "critic_loss", "fused_critic_loss", "row_penalty"]
