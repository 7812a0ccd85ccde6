"""The public fused ops, autograd-aware; each dispatches through :mod:`fastgan.backends`."""
from fastgan.ops.critic import CriticLoss, critic_loss, mlp_critic

__all__ = ["CriticLoss", "critic_loss", "mlp_critic"]
