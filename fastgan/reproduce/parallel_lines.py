"""``parallel-lines-training``: Arjovsky, Chintala & Bottou (2017), Example 1, trained.

The one-parameter generator ``g_theta(z) = (theta, z)``, ``z ~ U[0, 1]``, against
``P_0 = (0, U[0, 1])``, from theta = 1:

* under WGAN (clipping, RMSprop) and WGAN-GP (Adam, lam 0.1), each with its documented
  critic settings and 5 critic steps per generator step, theta is trained with the
  same optimiser as its critic at a learning rate of 1e-2 (theta is one number, not a
  network); the claim is that it goes to 0;
* under the original GAN, at several fixed theta a discriminator is trained from
  scratch (the GAN defaults, Adam 1e-4) and the gradient in theta of the generator's
  cost ``E log(1 - D(g_theta(z)))`` is measured; the claim is that it is about 0,
  beside the WGAN-GP critic's gradient at the same theta, trained the same number of
  steps.
"""
from __future__ import annotations

import torch

from fastgan import FusedMLPCritic, data, objectives
from fastgan.plots import pyplot
from fastgan.reproduce.report import Claim, Report
from fastgan.reproduce.training import critic_optimizer, critic_step

SETTINGS = {
    "full": {"steps": 500, "n_critic": 5, "batch": 256, "width": 128, "probe_thetas": [0.1, 0.25, 0.5, 1.0],
             "probe_steps": 2000},
    "quick": {"steps": 10, "n_critic": 2, "batch": 64, "width": 16, "probe_thetas": [0.5, 1.0], "probe_steps": 10},
}
THETA0 = 1.0
THETA_LR = 1e-2
CONVERGED = 0.1  # "theta goes to 0": |theta| at the end <= 0.1 |theta_0|
FLAT = 1e-2  # "about 0": |d/dtheta| at most this (the W critic's is about 1)


def generate(theta: torch.Tensor, n: int) -> torch.Tensor:
    """Samples of ``(theta, U[0, 1])``, differentiable in ``theta``."""
    return torch.stack([theta.expand(n), torch.rand(n)], dim=1)


def train_theta(objective: str, seed: int, steps: int, n_critic: int, batch: int, width: int) -> list[float]:
    """theta after each generator step of a WGAN or WGAN-GP run from THETA0."""
    torch.manual_seed(seed)
    real_data = data.load("parallel-lines")
    critic = FusedMLPCritic(2, (width,) * 3, "relu")
    opt_d = critic_optimizer(objective, critic)
    theta = torch.tensor(THETA0, requires_grad=True)
    opt_g = (torch.optim.RMSprop if objective == "wgan" else torch.optim.Adam)([theta], lr=THETA_LR)
    path = [THETA0]
    for _ in range(steps):
        for _ in range(n_critic):
            with torch.no_grad():
                fake = generate(theta, batch)
            critic_step(objective, critic, opt_d, real_data.sample(batch), fake)
        critic.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        (-critic(generate(theta, batch)).mean()).backward()
        opt_g.step()
        critic.requires_grad_(True)
        path.append(theta.item())
    return path


def theta_gradient(objective: str, theta_value: float, seed: int, steps: int, batch: int, width: int) -> dict:
    """A critic (GAN discriminator or WGAN-GP critic) trained ``steps`` steps against
    the fixed ``theta_value``, then the gradient in theta of the generator's cost on
    4096 samples (and the discriminator's accuracy there)."""
    torch.manual_seed(seed)
    real_data = data.load("parallel-lines")
    critic = FusedMLPCritic(2, (width,) * 3, "relu")
    opt = critic_optimizer(objective, critic)
    theta = torch.tensor(theta_value, requires_grad=True)
    for _ in range(steps):
        with torch.no_grad():
            fake = generate(theta, batch)
        critic_step(objective, critic, opt, real_data.sample(batch), fake)
    critic.requires_grad_(False)
    d_fake = critic(generate(theta, 4096))
    cost = (objectives.generator_gan_loss(d_fake, saturating=True) if objective == "gan" else -d_fake.mean())
    (grad,) = torch.autograd.grad(cost, theta)
    with torch.no_grad():
        accuracy = float(((critic(real_data.sample(4096)) > 0).float().mean() + (d_fake < 0).float().mean()) / 2)
    return {"theta": theta_value, "grad": float(grad), "accuracy": accuracy}


def run(seed: int, steps: int, n_critic: int, batch: int, width: int, probe_thetas, probe_steps: int) -> Report:
    paths = {obj: train_theta(obj, seed, steps, n_critic, batch, width) for obj in ("wgan", "wgan-gp")}
    probes = {obj: [theta_gradient(obj, t, seed, probe_steps, batch, width) for t in probe_thetas]
              for obj in ("gan", "wgan-gp")}
    gan_max = max(abs(p["grad"]) for p in probes["gan"])
    claims = [
        Claim(f"under {name}, theta goes to 0 (from {THETA0:g}: |theta| <= {CONVERGED * THETA0:g} after {steps} steps)",
              f"theta = {paths[obj][-1]:+.4f} (min |theta| on the way {min(abs(t) for t in paths[obj]):.4f})",
              abs(paths[obj][-1]) <= CONVERGED * THETA0)
        for obj, name in (("wgan", "WGAN"), ("wgan-gp", "WGAN-GP"))
    ]
    claims.append(Claim(
        f"under the original GAN with a well-trained discriminator, the gradient in theta is about 0 away from 0 "
        f"(|d/dtheta E log(1 - D)| <= {FLAT:g})",
        ", ".join(f"{p['grad']:+.2e} at theta {p['theta']:g} (D accuracy {p['accuracy']:.3f})" for p in probes["gan"])
        + "; WGAN-GP critic: " + ", ".join(f"{p['grad']:+.2f}" for p in probes["wgan-gp"]),
        gan_max <= FLAT))
    return Report("parallel-lines-training", "Arjovsky, Chintala & Bottou (2017), Example 1", claims,
                  {"theta_paths": paths, "gradient_probes": probes, "theta_lr": THETA_LR}, _figure(paths, probes))


def _figure(paths, probes):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for obj, path in paths.items():
        axes[0].plot(path, label=obj)
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_xlabel("generator steps")
    axes[0].set_ylabel("theta")
    axes[0].set_title("training g_theta(z) = (theta, z) against (0, z)")
    axes[0].legend()
    for obj, rows in probes.items():
        axes[1].plot([r["theta"] for r in rows], [max(abs(r["grad"]), 1e-12) for r in rows], "o-",
                     label="GAN: E log(1 - D)" if obj == "gan" else "WGAN-GP: -E D")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("theta (fixed)")
    axes[1].set_ylabel("|gradient in theta| after training the critic")
    axes[1].set_title("the generator's gradient against a trained critic")
    axes[1].legend()
    fig.tight_layout()
    return fig
