"""``density-ratio``: the density-ratio trick. A discriminator trained by logistic
regression to tell samples of ``q`` (label 1) from samples of ``p`` (label 0) tends to
``D = q / (q + p)``, so its logit ``log D / (1 - D)`` estimates ``log q / p`` and its
mean over samples of ``q`` estimates ``KL(q || p)``.

Here ``q = N((1, -0.5), 0.7^2 I)`` and ``p = N(0, I)`` in two dimensions, where the
closed form is ``KL = (k s^2 + |mu|^2 - k) / 2 - k log s`` with ``k = 2``, ``s = 0.7``;
the discriminator is a ReLU MLP (2 -> width x 2 -> 1) trained with Adam 1e-3.
"""
from __future__ import annotations

import math

import torch

from fastgan import FusedMLPCritic, objectives
from fastgan.plots import pyplot
from fastgan.reproduce.report import Claim, Report

SETTINGS = {"full": {"steps": 3000, "batch": 512, "width": 64, "eval_samples": 100_000, "every": 100},
            "quick": {"steps": 20, "batch": 64, "width": 16, "eval_samples": 1000, "every": 10}}
MU_Q = (1.0, -0.5)
STD_Q = 0.7
TOLERANCE = 0.10  # relative


def kl_closed_form() -> float:
    """KL(N(mu, s^2 I) || N(0, I)) in k = 2 dimensions."""
    k, s = 2, STD_Q
    return 0.5 * (k * s * s + sum(m * m for m in MU_Q) - k) - k * math.log(s)


def sample_q(n: int) -> torch.Tensor:
    return torch.tensor(MU_Q) + STD_Q * torch.randn(n, 2)


def log_ratio(x: torch.Tensor) -> torch.Tensor:
    """The true ``log q(x) / p(x)``."""
    mu = torch.tensor(MU_Q)
    return (-((x - mu) ** 2).sum(1) / (2 * STD_Q**2) + (x**2).sum(1) / 2 - 2 * math.log(STD_Q))


def run(seed: int, steps: int, batch: int, width: int, eval_samples: int, every: int) -> Report:
    torch.manual_seed(seed)
    disc = FusedMLPCritic(2, (width, width), "relu")
    opt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    truth = kl_closed_form()
    history = {"step": [], "kl_estimate": []}

    def estimate(n):
        with torch.no_grad():
            return float(disc(sample_q(n)).mean())

    for step in range(1, steps + 1):
        loss = objectives.critic_gan_loss(disc(sample_q(batch)), disc(torch.randn(batch, 2)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % every == 0:
            history["step"].append(step)
            history["kl_estimate"].append(estimate(min(eval_samples, 10_000)))
    final = estimate(eval_samples)
    error = abs(final - truth) / truth
    claims = [Claim(f"the discriminator's mean logit on q estimates KL(q || p) within {TOLERANCE:.0%} of the "
                    "closed form",
                    f"{final:.4f} against {truth:.4f} ({error:.1%} off, {eval_samples} samples of q)",
                    error <= TOLERANCE)]
    line = torch.stack([torch.linspace(-3, 4, 200), torch.full((200,), MU_Q[1])], dim=1)
    with torch.no_grad():
        learned = disc(line).squeeze(1)
    curves = {"x": line[:, 0], "true_log_ratio": log_ratio(line), "logit": learned}
    return Report("density-ratio", "the density-ratio trick, from the seeds' lecture", claims,
                  {"kl_closed_form": truth, "kl_estimate": final, "relative_error": error, "history": history,
                   "slice": curves}, _figure(history, curves, truth))


def _figure(history, curves, truth):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(curves["x"], curves["true_log_ratio"], "k--", label="log q/p (closed form)")
    axes[0].plot(curves["x"], curves["logit"], label="discriminator logit")
    axes[0].set_xlabel(f"x (y = {MU_Q[1]})")
    axes[0].set_title("the log density ratio along a line")
    axes[0].legend()
    axes[1].plot(history["step"], history["kl_estimate"], label="mean logit on q")
    axes[1].axhline(truth, color="k", ls="--", label=f"KL(q || p) = {truth:.4f}")
    axes[1].set_xlabel("discriminator steps")
    axes[1].set_title("KL(q || p) by the density-ratio trick")
    axes[1].legend()
    fig.tight_layout()
    return fig
