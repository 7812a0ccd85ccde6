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

Two v2 experiments on the same lines:

* ``instance-noise-lines`` (Arjovsky & Bottou 2017, section 3): theta trained from 1
  under ``gan`` (the saturating cost) and under ``noisy-gan`` (Gaussian noise on D's
  inputs, std 1 annealed linearly to 0, the generator's -log D cost through the
  noise), as fastgan's objectives define them, with the same discriminator,
  optimisers and steps as the WGANs above;
* ``parallel-lines-training-v2``: the GAN's gradient in theta followed over 5000
  iterations of a discriminator trained from scratch, at theta 0.25, 0.5 and 1.
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


def train_theta(objective: str, seed: int, steps: int, n_critic: int, batch: int, width: int,
                sigma: float = 0.0) -> tuple[list[float], list[float]]:
    """theta after each generator step of a run of ``objective`` from THETA0, and the
    gradient in theta of the generator's loss at each step: the objective's critic
    optimiser and generator loss, theta trained by RMSprop (WGAN) or Adam (the others)
    at THETA_LR. ``sigma``: for ``noisy-gan``, the instance noise's std at the first
    step, annealed linearly to 0 over the run."""
    torch.manual_seed(seed)
    real_data = data.load("parallel-lines")
    critic = FusedMLPCritic(2, (width,) * 3, "relu")
    opt_d = critic_optimizer(objective, critic)
    theta = torch.tensor(THETA0, requires_grad=True)
    opt_g = (torch.optim.RMSprop if objective == "wgan" else torch.optim.Adam)([theta], lr=THETA_LR)
    path, grads = [THETA0], []
    for step in range(steps):
        noise = objectives.noise_sigma(step, steps, sigma, "linear") if objective == "noisy-gan" else 0.0
        for _ in range(n_critic):
            with torch.no_grad():
                fake = generate(theta, batch)
            critic_step(objective, critic, opt_d, objectives.instance_noise(real_data.sample(batch), noise),
                        objectives.instance_noise(fake, noise))
        critic.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        fake = objectives.instance_noise(generate(theta, batch), noise)
        objectives.generator_loss(objective, critic(fake)).backward()
        grads.append(theta.grad.item())
        opt_g.step()
        critic.requires_grad_(True)
        path.append(theta.item())
    return path, grads


def measure_gradient(objective: str, critic, theta_value: float, real_data) -> dict:
    """The gradient in theta of the generator's cost against ``critic`` on 4096 samples
    (``E log(1 - D)`` for the GAN, ``-E D`` for a WGAN), and the critic's accuracy as a
    discriminator there."""
    theta = torch.tensor(theta_value, requires_grad=True)
    critic.requires_grad_(False)
    d_fake = critic(generate(theta, 4096))
    (grad,) = torch.autograd.grad(objectives.generator_loss(objective, d_fake), theta)
    with torch.no_grad():
        accuracy = float(((critic(real_data.sample(4096)) > 0).float().mean() + (d_fake < 0).float().mean()) / 2)
    critic.requires_grad_(True)
    return {"grad": float(grad), "accuracy": accuracy}


def theta_gradient(objective: str, theta_value: float, seed: int, steps: int, batch: int, width: int,
                   every: int = 0) -> dict:
    """A critic (GAN discriminator or WGAN-GP critic) trained ``steps`` steps from
    scratch against the fixed ``theta_value``, and :func:`measure_gradient` after it, and
    every ``every`` steps on the way when ``every`` is set (then also its ``trace``:
    iterations, gradients and accuracies)."""
    torch.manual_seed(seed)
    real_data = data.load("parallel-lines")
    critic = FusedMLPCritic(2, (width,) * 3, "relu")
    opt = critic_optimizer(objective, critic)
    theta = torch.tensor(theta_value)
    trace = {"iteration": [], "grad": [], "accuracy": []}
    for it in range(steps + 1):
        if it == steps or (every and it % every == 0):
            measured = measure_gradient(objective, critic, theta_value, real_data)
            for key, value in zip(trace, (it, measured["grad"], measured["accuracy"])):
                trace[key].append(value)
        if it == steps:
            break
        fake = generate(theta, batch)
        critic_step(objective, critic, opt, real_data.sample(batch), fake)
    final = {"theta": theta_value, "grad": trace["grad"][-1], "accuracy": trace["accuracy"][-1]}
    return {**final, "trace": trace} if every else final


def run(seed: int, steps: int, n_critic: int, batch: int, width: int, probe_thetas, probe_steps: int) -> Report:
    paths = {obj: train_theta(obj, seed, steps, n_critic, batch, width)[0] for obj in ("wgan", "wgan-gp")}
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


# ---------------------------------------------------------------- v2

NOISE_SETTINGS = {
    "full": {"steps": 500, "n_critic": 5, "batch": 256, "width": 128, "sigma": 1.0},
    "quick": {"steps": 10, "n_critic": 2, "batch": 64, "width": 16, "sigma": 1.0},
}
STUCK = 0.5  # "no usable gradient": |theta| stays at least this (from THETA0 = 1)


def instance_noise_lines(seed: int, steps: int, n_critic: int, batch: int, width: int, sigma: float) -> Report:
    """``instance-noise-lines``: theta trained from THETA0 under ``gan`` and under
    ``noisy-gan`` (``sigma`` annealed linearly to 0), the same discriminator and
    optimisers for both."""
    runs = {obj: train_theta(obj, seed, steps, n_critic, batch, width, sigma if obj == "noisy-gan" else 0.0)
            for obj in ("gan", "noisy-gan")}
    paths = {obj: path for obj, (path, _) in runs.items()}
    grads = {obj: g for obj, (_, g) in runs.items()}
    noisy, plain = paths["noisy-gan"], paths["gan"]
    claims = [
        Claim(f"with instance noise (noisy-gan, sigma {sigma:g} annealed linearly to 0 over {steps} steps) theta "
              f"goes to 0 (from {THETA0:g}: |theta| <= {CONVERGED * THETA0:g} at the end)",
              f"theta = {noisy[-1]:+.4f} (min |theta| on the way {min(abs(t) for t in noisy):.4f})",
              abs(noisy[-1]) <= CONVERGED * THETA0),
        Claim(f"under the plain GAN the disjoint supports give no usable gradient: |theta| stays >= {STUCK:g}",
              f"min |theta| over the run {min(abs(t) for t in plain):.4f}, theta = {plain[-1]:+.4f} at the end",
              min(abs(t) for t in plain) >= STUCK),
    ]
    sigmas = [objectives.noise_sigma(step, steps, sigma, "linear") for step in range(steps)]
    return Report("instance-noise-lines", "Arjovsky & Bottou (2017), section 3", claims,
                  {"theta_paths": paths, "theta_grads": grads, "sigma": sigmas, "theta_lr": THETA_LR},
                  _noise_figure(paths, grads, sigmas))


def _noise_figure(paths, grads, sigmas):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for obj, path in paths.items():
        axes[0].plot(path, label=obj)
        axes[1].plot(range(1, len(grads[obj]) + 1), [max(abs(g), 1e-30) for g in grads[obj]], label=obj, lw=0.8)
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_ylabel("theta")
    axes[0].set_title("g_theta(z) = (theta, z) against (0, z)")
    twin = axes[0].twinx()
    twin.plot(range(1, len(sigmas) + 1), sigmas, ":", color="gray")
    twin.set_ylabel("instance noise std (noisy-gan, dotted)", color="gray")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("|gradient in theta of the generator's loss|")
    axes[1].set_title("the gradient theta is trained with (Adam)")
    for ax in axes:
        ax.set_xlabel("generator steps")
        ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


GRADIENT_SETTINGS = {
    "full": {"thetas": [0.25, 0.5, 1.0], "d_iters": 5000, "every": 100, "early": 200, "batch": 256, "width": 128},
    "quick": {"thetas": [0.5, 1.0], "d_iters": 20, "every": 5, "early": 10, "batch": 64, "width": 16},
}
VANISHED = 0.1  # "the gradient vanishes": at the end at most this fraction of its value early on


def gradient_decay(seed: int, thetas, d_iters: int, every: int, early: int, batch: int, width: int) -> Report:
    """``parallel-lines-training-v2``: at each fixed theta, a GAN discriminator trained
    from scratch for ``d_iters`` iterations, the gradient in theta of ``E log(1 - D)``
    every ``every`` iterations; the claim compares the last with the one at ``early``."""
    probes = [theta_gradient("gan", t, seed, d_iters, batch, width, every=every) for t in thetas]

    def at(probe, iteration):
        return abs(probe["trace"]["grad"][probe["trace"]["iteration"].index(iteration)])

    ratios = {p["theta"]: at(p, d_iters) / at(p, early) for p in probes}
    claims = [Claim(
        f"as the GAN discriminator approaches optimality the gradient in theta vanishes: |d/dtheta E log(1 - D)| "
        f"after {d_iters} iterations <= {VANISHED:g} x its value after {early}, at each theta",
        ", ".join(f"{at(p, d_iters):.2e} vs {at(p, early):.2e} at theta {p['theta']:g} "
                  f"(ratio {ratios[p['theta']]:.1e}, D accuracy {p['accuracy']:.3f})" for p in probes),
        all(r <= VANISHED for r in ratios.values()))]
    return Report("parallel-lines-training-v2", "Arjovsky, Chintala & Bottou (2017), Example 1", claims,
                  {"probes": probes, "end_over_early": ratios}, _decay_figure(probes))


def _decay_figure(probes):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for p in probes:
        trace = p["trace"]
        axes[0].plot(trace["iteration"], [max(abs(g), 1e-30) for g in trace["grad"]], label=f"theta {p['theta']:g}")
        axes[1].plot(trace["iteration"], trace["accuracy"], label=f"theta {p['theta']:g}")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("|d/dtheta E log(1 - D(g_theta(z)))|")
    axes[1].set_ylabel("discriminator accuracy")
    for ax in axes:
        ax.set_xlabel("discriminator iterations (Adam 1e-4)")
        ax.legend()
    fig.suptitle("the GAN's gradient in theta against a discriminator trained from scratch at fixed theta")
    fig.tight_layout()
    return fig
