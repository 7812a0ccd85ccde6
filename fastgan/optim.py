"""Optimizers with fused kernels."""
from __future__ import annotations

import torch

from fastgan.ops.optim import clipped_rmsprop_


class ClippedRMSprop(torch.optim.Optimizer):
    """RMSprop followed by weight clipping, the WGAN critic's optimizer (Arjovsky et al.
    2017: lr 5e-5, clip 0.01), in one fused pass per dtype group.

    Its step equals ``torch.optim.RMSprop(params, lr, alpha, eps, weight_decay,
    momentum, centered).step()`` followed by ``p.clamp_(-clip, clip)`` for every
    parameter, bit for bit on the CPU, with the same per-parameter state
    (``step``, ``square_avg``, ``momentum_buffer``, ``grad_avg``), so state dicts move
    between the two. ``clip=None`` turns the clamp off.
    """

    def __init__(self, params, lr: float = 5e-5, clip: float | None = 0.01, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False):
        for name, value in (("lr", lr), ("alpha", alpha), ("eps", eps),
                            ("weight_decay", weight_decay), ("momentum", momentum)):
            if not value >= 0.0:
                raise ValueError(f"Invalid {name} value: {value}")
        if clip is not None and not clip >= 0.0:
            raise ValueError(f"Invalid clip value: {clip}")
        defaults = dict(lr=lr, clip=clip, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One RMSprop step and the clamp, for every parameter with a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, square_avgs, grad_avgs, momentum_buffers = [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("ClippedRMSprop does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["momentum"] > 0:
                        state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["centered"]:
                        state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                params.append(p)
                grads.append(p.grad)
                square_avgs.append(state["square_avg"])
                if group["momentum"] > 0:
                    momentum_buffers.append(state["momentum_buffer"])
                if group["centered"]:
                    grad_avgs.append(state["grad_avg"])
            if params:
                clip = group["clip"]
                clipped_rmsprop_(params, grads, square_avgs, grad_avgs, momentum_buffers,
                                 lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
                                 weight_decay=group["weight_decay"], momentum=group["momentum"],
                                 centered=group["centered"], clip=-1.0 if clip is None else clip)
        return loss
