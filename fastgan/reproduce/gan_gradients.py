"""Arjovsky & Bottou (2017), Figures 1-3, and their instance-noise fix (section 3), on
the 8x8 digits with the DCGAN nets.

A non-saturating GAN is trained, and its generator is taken at a few stages. At each
stage the generator is frozen and a discriminator is trained from scratch against it;
every few discriminator iterations the probe records the discriminator's accuracy on
fresh real and generated samples, and the norm of the gradient, with respect to the
generator's parameters, of a generator cost on several independent minibatches (mean
and standard deviation over them):

* ``vanishing-gradients``: the original cost ``E log(1 - D(G(z)))``. Theorem 2.4: as D
  approaches a perfect discriminator, this gradient goes to 0;
* ``unstable-updates``: the ``-log D`` cost. Theorem 2.6: its gradient has a variance
  that grows as D improves;
* ``instance-noise``: the original cost with Gaussian noise of std ``sigma`` on every
  input of D, real and fake (the generator backpropagates through the noisy samples).
  Corollary 3.2: the gradient then stays informative. Also: an annealed ``noisy-gan``
  against a plain ``gan`` on ``8gaussians``, by the modes each covers.

The generator has a 16-dimensional latent space, so its samples lie on a manifold of
at most 16 dimensions in the 64 of the images, the setting of the theorems.
``vanishing-gradients-32`` repeats the first probe in a higher-dimensional space, as
the paper did on 64x64 LSUN: the digits upsampled bilinearly to 32x32 (1024
dimensions, the same intrinsic dimension), DCGAN nets at 32 px (width 16: channels
16-32-64, the size that fits ``reproduce all`` into 30 minutes on 2 CPU cores, fixed
before the first run), and each discriminator trained for 4000 iterations, as in the
paper's Figure 2.
"""
from __future__ import annotations

import copy
import math

import torch

from fastgan import models, objectives
from fastgan.plots import pyplot
from fastgan.reproduce.report import Claim, Report
from fastgan.reproduce.training import stepwise_trainer
from fastgan.trainer import Trainer

VANISHING_32_SETTINGS = {
    "full": {"stages": [100, 500, 1500], "d_iters": 4000, "every": 40, "grad_batches": 4, "batch": 64, "width": 16,
             "tail": 200},
    "quick": {"stages": [5, 15], "d_iters": 30, "every": 5, "grad_batches": 2, "batch": 16, "width": 8, "tail": 10},
}
PROBE_SETTINGS = {
    "full": {"stages": [100, 500, 1500], "d_iters": 1000, "every": 20, "grad_batches": 8, "batch": 64},
    "quick": {"stages": [5, 15], "d_iters": 30, "every": 10, "grad_batches": 2, "batch": 32},
}
NOISE_SETTINGS = {
    "full": {**PROBE_SETTINGS["full"], "sigma": 1.0, "mode_steps": 2000},
    "quick": {**PROBE_SETTINGS["quick"], "sigma": 1.0, "mode_steps": 30},
}
LATENT_DIM = 16
DECAY = 1e-2  # "orders of magnitude": at least two
INFORMATIVE = 1e-1  # "does not decay as without noise": less than one order of magnitude


def staged_generators(seed: int, stages: list[int], batch: int, data: str = "digits",
                      width: int = 64) -> tuple[Trainer, dict[int, torch.nn.Module]]:
    """A non-saturating GAN trained on ``data`` (DCGAN nets of ``width``), and copies of
    its generator after each of ``stages`` generator steps."""
    trainer = stepwise_trainer("nsgan", data, max(stages), seed, batch=batch, latent_dim=LATENT_DIM, width=width)
    snapshots = {}
    for step in range(1, max(stages) + 1):
        trainer.train_step()
        if step in stages:
            snapshots[step] = copy.deepcopy(trainer.generator)
    return trainer, snapshots


def probe(trainer: Trainer, generator: torch.nn.Module, seed: int, d_iters: int, every: int,
          grad_batches: int, batch: int, saturating: bool, sigma: float = 0.0, width: int = 64) -> dict:
    """Trains a fresh discriminator (the DCGAN critic of ``width``) against the frozen
    ``generator`` for ``d_iters`` iterations (the GAN defaults: Adam 2e-4, betas (0.5,
    0.999)); every ``every`` iterations records its accuracy on 512 real and 512
    generated samples and the generator-gradient norms of the original
    (``saturating``) or the -log D cost on ``grad_batches`` minibatches. ``sigma``:
    instance noise on D's inputs."""
    device, data = trainer.device, trainer.data
    torch.manual_seed(seed)
    _, disc = models.build(data.shape, LATENT_DIM, width, device)
    hp = objectives.defaults("gan", images=True)
    opt = torch.optim.Adam(disc.parameters(), lr=hp.lr, betas=hp.betas)
    gen_params = list(generator.parameters())
    record = {"iteration": [], "accuracy": [], "grad_norm_mean": [], "grad_norm_std": []}

    def latent(n):
        return torch.randn(n, LATENT_DIM, device=device)

    def noisy(x):
        return objectives.instance_noise(x, sigma)

    for it in range(d_iters + 1):
        if it % every == 0 or it == d_iters:
            disc.requires_grad_(False)
            with torch.no_grad():
                d_real = disc(noisy(data.sample(512).to(device)))
                d_fake = disc(noisy(generator(latent(512))))
            accuracy = float(((d_real > 0).sum() + (d_fake < 0).sum()) / (len(d_real) + len(d_fake)))
            norms = []
            for _ in range(grad_batches):
                cost = objectives.generator_gan_loss(disc(noisy(generator(latent(batch)))), saturating)
                grads = torch.autograd.grad(cost, gen_params)
                norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
            disc.requires_grad_(True)
            mean = sum(norms) / len(norms)
            std = math.sqrt(sum((n - mean) ** 2 for n in norms) / max(1, len(norms) - 1))
            for key, value in zip(record, (it, accuracy, mean, std)):
                record[key].append(value)
        if it == d_iters:
            break
        with torch.no_grad():
            fake = generator(latent(batch))
        loss = objectives.critic_gan_loss(disc(noisy(data.sample(batch).to(device))), disc(noisy(fake)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return record


def _probes(seed, stages, d_iters, every, grad_batches, batch, saturating, sigma=0.0, data="digits", width=64):
    trainer, generators = staged_generators(seed, stages, batch, data, width)
    return {stage: probe(trainer, g, seed + stage, d_iters, every, grad_batches, batch, saturating, sigma, width)
            for stage, g in generators.items()}


def _decay(probes: dict) -> dict:
    """Per stage, the last gradient norm over the first."""
    return {s: p["grad_norm_mean"][-1] / p["grad_norm_mean"][0] for s, p in probes.items()}


def _accuracy_claim(probes: dict) -> Claim:
    """Theorem 2.4's premise: every stage's discriminator ends (near) perfect."""
    return Claim("a discriminator trained against a fixed generator reaches accuracy 1 (>= 0.99)",
                 "final accuracy " + _per_stage(probes, lambda p: f"{p['accuracy'][-1]:.3f}"),
                 all(p["accuracy"][-1] >= 0.99 for p in probes.values()))


def _per_stage(probes: dict, fn) -> str:
    return ", ".join(f"{fn(p)} (stage {stage})" for stage, p in probes.items())


def vanishing_gradients(seed: int, stages, d_iters, every, grad_batches, batch) -> Report:
    probes = _probes(seed, stages, d_iters, every, grad_batches, batch, saturating=True)
    decay = _decay(probes)
    claims = [
        _accuracy_claim(probes),
        Claim(f"the gradient of E log(1 - D(G(z))) decays by orders of magnitude (last / first <= {DECAY:g})",
              "last / first gradient norm " + ", ".join(f"{d:.2e} (stage {s})" for s, d in decay.items()),
              all(d <= DECAY for d in decay.values())),
    ]
    return Report("vanishing-gradients", "Arjovsky & Bottou (2017), Figures 1-2", claims,
                  {"stages": probes, "decay": decay},
                  _figure(probes, "E log(1 - D(G(z)))", "vanishing gradients: the original cost"))


def vanishing_gradients_32(seed: int, stages, d_iters, every, grad_batches, batch, width, tail) -> Report:
    """``vanishing-gradients-32``: the probe of :func:`vanishing_gradients` on the digits
    upsampled to 32x32 (1024 dimensions) with DCGAN nets of ``width`` at 32 px; claim (b)
    compares the mean norm over the last ``tail`` iterations with the run's maximum."""
    probes = _probes(seed, stages, d_iters, every, grad_batches, batch, saturating=True, data="digits32",
                     width=width)
    tail_over_max = {}
    for stage, p in probes.items():
        last = [n for it, n in zip(p["iteration"], p["grad_norm_mean"]) if it > d_iters - tail]
        tail_over_max[stage] = (sum(last) / len(last)) / max(p["grad_norm_mean"])
    claims = [
        _accuracy_claim(probes),
        Claim(f"the gradient of E log(1 - D(G(z))) decays by orders of magnitude (mean over the last {tail} "
              f"iterations <= {DECAY:g} x the run's maximum)",
              "mean of the last / maximum " + ", ".join(f"{r:.2e} (stage {s})" for s, r in tail_over_max.items()),
              all(r <= DECAY for r in tail_over_max.values())),
    ]
    return Report("vanishing-gradients-32", "Arjovsky & Bottou (2017), Figures 1-2", claims,
                  {"stages": probes, "tail_over_max": tail_over_max},
                  _figure(probes, "E log(1 - D(G(z)))", "vanishing gradients: the original cost",
                          data_label="digits upsampled to 32x32"))


def unstable_updates(seed: int, stages, d_iters, every, grad_batches, batch) -> Report:
    probes = _probes(seed, stages, d_iters, every, grad_batches, batch, saturating=False)
    claims = [
        Claim("the gradient norm of the -log D cost grows as the discriminator improves (last > first)",
              "mean norm first -> last " + _per_stage(
                  probes, lambda p: f"{p['grad_norm_mean'][0]:.3g} -> {p['grad_norm_mean'][-1]:.3g}"),
              all(p["grad_norm_mean"][-1] > p["grad_norm_mean"][0] for p in probes.values())),
        Claim("its variance grows with it (std over minibatches, last > first)",
              "std first -> last " + _per_stage(
                  probes, lambda p: f"{p['grad_norm_std'][0]:.3g} -> {p['grad_norm_std'][-1]:.3g}"),
              all(p["grad_norm_std"][-1] > p["grad_norm_std"][0] for p in probes.values())),
    ]
    return Report("unstable-updates", "Arjovsky & Bottou (2017), Figure 3", claims, {"stages": probes},
                  _figure(probes, "-E log D(G(z))", "unstable updates: the -log D cost"))


def _modes_after(objective: str, steps: int, seed: int) -> dict:
    trainer = stepwise_trainer(objective, "8gaussians", steps, seed, batch=256)
    for _ in range(steps):
        trainer.train_step()
    return trainer.evaluate()


def instance_noise(seed: int, stages, d_iters, every, grad_batches, batch, sigma, mode_steps) -> Report:
    probes = _probes(seed, stages, d_iters, every, grad_batches, batch, saturating=True, sigma=sigma)
    decay = _decay(probes)
    modes = {obj: _modes_after(obj, mode_steps, seed) for obj in ("gan", "noisy-gan")}
    claims = [
        Claim(f"with instance noise (sigma {sigma:g}) the gradient of E log(1 - D(G(z))) stays informative "
              f"(last / first >= {INFORMATIVE:g}, against <= {DECAY:g} without noise)",
              "last / first gradient norm " + ", ".join(f"{d:.2e} (stage {s})" for s, d in decay.items()),
              all(d >= INFORMATIVE for d in decay.values())),
        Claim(f"annealed instance noise covers at least as many 8gaussians modes as the plain GAN "
              f"({mode_steps} steps each)",
              f"noisy-gan {modes['noisy-gan']['modes']}/8, gan {modes['gan']['modes']}/8 "
              f"(high quality {modes['noisy-gan']['high_quality']:.0%} and {modes['gan']['high_quality']:.0%})",
              modes["noisy-gan"]["modes"] >= modes["gan"]["modes"]),
    ]
    fig = _figure(probes, f"E log(1 - D(G(z))), noise std {sigma:g}", "instance noise", extra_panel=True)
    ax = fig.axes[2]
    ax.bar(["gan", "noisy-gan"], [modes["gan"]["modes"], modes["noisy-gan"]["modes"]], color=["gray", "tab:blue"])
    ax.set_ylim(0, 8)
    ax.set_ylabel("modes covered of 8")
    ax.set_title(f"8gaussians after {mode_steps} steps")
    return Report("instance-noise", "Arjovsky & Bottou (2017), section 3", claims,
                  {"stages": probes, "decay": decay, "modes": modes}, fig)


def _figure(probes: dict, cost: str, title: str, extra_panel: bool = False, data_label: str = "digits 8x8"):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3 if extra_panel else 2, figsize=(16 if extra_panel else 11, 4))
    for stage, p in probes.items():
        axes[0].plot(p["iteration"], p["accuracy"], label=f"G after {stage} steps")
        mean = torch.tensor(p["grad_norm_mean"])
        std = torch.tensor(p["grad_norm_std"])
        line, = axes[1].plot(p["iteration"], mean, label=f"G after {stage} steps")
        axes[1].fill_between(p["iteration"], (mean - std).clamp_min(mean * 1e-3), mean + std,
                             color=line.get_color(), alpha=0.2)
    axes[0].set_ylabel("discriminator accuracy")
    axes[1].set_ylabel(f"||grad_theta {cost}||")
    axes[1].set_yscale("log")
    for ax in axes[:2]:
        ax.set_xlabel("discriminator iterations")
        ax.legend()
    fig.suptitle(f"{title} ({data_label}, DCGAN, discriminator trained from scratch against a frozen G)")
    fig.tight_layout()
    return fig
