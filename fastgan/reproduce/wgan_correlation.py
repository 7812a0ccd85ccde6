"""``wgan-correlation``: Arjovsky, Chintala & Bottou (2017), Figures 3-4, and Gulrajani
et al. (2017), section 5.3: a WGAN critic's estimate of the Earth-Mover distance
tracks sample quality, a GAN discriminator's loss does not.

Three runs on ``8gaussians`` with each objective's documented defaults (WGAN-GP,
WGAN with clipping, and the non-saturating GAN). Every few generator steps, on fresh
samples of the real and generated distributions, the run records the exact W1
between them (POT) and the critic's estimate ``E D(x) - E D(G(z))``, or for the GAN
its discriminator loss, whose minimum is ``2 log 2 - 2 JSD``. The claims are the
Pearson and Spearman correlations of each against W1.

``wgan-correlation-v2`` reads the estimate the way the theory means it, from a critic
trained to optimality: 3000 generator steps, and at every 50th a copy of the critic
(and of its optimiser) trained 100 more iterations against the frozen generator, from
an RNG of its own, so that the run itself goes on undisturbed. The GAN's
discriminator loss is read as in v1, on the same schedule (its claim is that of v1).
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import torch
from scipy import stats

from fastgan import metrics, objectives
from fastgan.plots import pyplot
from fastgan.reproduce.report import Claim, Report
from fastgan.reproduce.training import critic_step, stepwise_trainer
from fastgan.trainer import Trainer

SETTINGS = {"full": {"steps": 1000, "every": 25, "samples": 512, "width": 512},
            "quick": {"steps": 12, "every": 3, "samples": 64, "width": 32}}
V2_SETTINGS = {"full": {"steps": 3000, "every": 50, "samples": 512, "width": 512, "retrain": 100},
               "quick": {"steps": 12, "every": 3, "samples": 64, "width": 32, "retrain": 3}}
HIGH = 0.8  # "high" correlation: at least this, Pearson and Spearman
POOR = 0.5  # "poor": below this in absolute value, Pearson and Spearman
RUNS = {"wgan-gp": "critic's W estimate", "wgan": "critic's W estimate", "nsgan": "discriminator loss"}


def retrained_critic(trainer: Trainer, iters: int, seed: int) -> torch.nn.Module:
    """A copy of the run's critic trained ``iters`` more iterations, with a copy of its
    optimiser, against the run's frozen generator; its draws come from an RNG seeded
    by ``seed`` and the run's own RNG is left as it was."""
    critic, opt = copy.deepcopy((trainer.critic, trainer.opt_d))  # one copy: opt steps the copied critic
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(iters):
            real = trainer.sample_real(trainer.batch)
            fake = trainer.sample(trainer.batch).to(trainer.device)
            critic_step(trainer.cfg.objective, critic, opt, real, fake)
    return critic


@dataclass(frozen=True)
class Plan:
    """What a run is read for: ``steps`` generator steps, a point every ``every``, the
    critic retrained ``retrain`` iterations on a copy at each point (0: read as it is)."""

    steps: int
    every: int
    retrain: int = 0


_SHARED: list = []  # the settings announced by sharing()
_READ: dict = {}  # (objective, seed, samples, width, Plan) -> a trace made for a later experiment


@contextlib.contextmanager
def sharing(settings_list: list[dict]):
    """Within it, one training run per objective makes the readings of every experiment
    in ``settings_list`` (their settings) that trains the same networks: ``reproduce
    all`` trains once for ``wgan-correlation``, whose 1000 steps are the first third of
    ``wgan-correlation-v2``'s run. Each plan's readings are the same as alone."""
    _SHARED.extend(settings_list)
    try:
        yield
    finally:
        _SHARED.clear()
        _READ.clear()


def plan(objective: str, steps: int, every: int, retrain: int = 0, **_) -> Plan:
    """How ``objective``'s run is read: a WGAN critic's W estimate with ``retrain``, the
    GAN's discriminator loss as it is."""
    return Plan(steps, every, 0 if objective == "nsgan" else retrain)


def trace(objective: str, seed: int, steps: int, every: int, samples: int, width: int, retrain: int = 0) -> dict:
    """W1 and the critic's estimate (or the discriminator's loss) every ``every``
    generator steps of one run, read as :func:`plan` says (a retrained critic from
    :func:`retrained_critic`)."""
    wanted, networks = plan(objective, steps, every, retrain), (objective, seed, samples, width)
    if (*networks, wanted) not in _READ:
        plans = {wanted} | {plan(objective, **s) for s in _SHARED if (s["samples"], s["width"]) == (samples, width)}
        for p, t in traces(objective, seed, samples, width, plans).items():
            _READ[(*networks, p)] = t
    return _READ.pop((*networks, wanted))


def traces(objective: str, seed: int, samples: int, width: int, plans: set) -> dict:
    """One run of ``objective`` to the longest plan's steps, read for each plan; each
    plan draws its samples from an RNG of its own, so its trace does not depend on the
    other plans (the training run is not disturbed by any reading)."""
    steps = max(p.steps for p in plans)
    trainer = stepwise_trainer(objective, "8gaussians", steps, seed, width=width)
    gens = {p: torch.Generator().manual_seed(seed + 7) for p in plans}
    out = {p: {"step": [], "w1": [], "estimate": []} for p in plans}
    for step in range(1, steps + 1):
        trainer.train_step()
        for p in plans:
            if step <= p.steps and step % p.every == 0:
                real = trainer.data.sample(samples, gens[p])
                fake = trainer.sample(samples, gens[p])
                critic = retrained_critic(trainer, p.retrain, seed + step) if p.retrain else trainer.critic
                with torch.no_grad():
                    d_real, d_fake = critic(real.to(trainer.device)), critic(fake.to(trainer.device))
                estimate = (objectives.critic_gan_loss(d_real, d_fake) if objective == "nsgan"
                            else d_real.mean() - d_fake.mean())
                for key, value in zip(out[p], (step, metrics.w1(fake, real), float(estimate))):
                    out[p][key].append(value)
    return out


def _correlations(t: dict) -> dict:
    return {"pearson": float(stats.pearsonr(t["estimate"], t["w1"])[0]),
            "spearman": float(stats.spearmanr(t["estimate"], t["w1"])[0])}


def run(seed: int, steps: int, every: int, samples: int, width: int, retrain: int = 0) -> Report:
    traces = {obj: trace(obj, seed, steps, every, samples, width, retrain) for obj in RUNS}
    corr = {obj: _correlations(t) for obj, t in traces.items()}
    read = f" (critic retrained {retrain} iterations on a copy at each point)" if retrain else ""

    def measured(obj):
        c = corr[obj]
        return f"Pearson {c['pearson']:.3f}, Spearman {c['spearman']:.3f} over {len(traces[obj]['w1'])} points"

    claims = [
        Claim(f"WGAN-GP: the critic's W estimate{read} correlates highly with the exact W1 (both >= {HIGH})",
              measured("wgan-gp"), min(corr["wgan-gp"].values()) >= HIGH),
        Claim(f"WGAN (clipping): the critic's W estimate{read} correlates highly with the exact W1 "
              f"(both >= {HIGH})", measured("wgan"), min(corr["wgan"].values()) >= HIGH),
        Claim(f"GAN: the discriminator's loss correlates poorly with the exact W1 (both |r| < {POOR})",
              measured("nsgan"), max(abs(v) for v in corr["nsgan"].values()) < POOR),
    ]
    name = "wgan-correlation-v2" if retrain else "wgan-correlation"
    return Report(name, "Arjovsky et al. (2017), Figs. 3-4; Gulrajani et al. (2017), sec. 5.3",
                  claims, {"traces": traces, "correlations": corr}, _figure(traces, corr, read))


def _figure(traces, corr, read):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    for ax, (obj, t) in zip(axes, traces.items()):
        ax.plot(t["step"], t["w1"], "k-", label="exact W1 (POT)")
        ax.set_xlabel("generator steps")
        ax.set_ylabel("W1")
        twin = ax.twinx()
        twin.plot(t["step"], t["estimate"], "-", color="tab:red", label=RUNS[obj])
        twin.set_ylabel(RUNS[obj], color="tab:red")
        ax.set_title(f"{obj}: Pearson {corr[obj]['pearson']:.2f}, Spearman {corr[obj]['spearman']:.2f}")
        ax.legend(loc="upper right")
    fig.suptitle(f"8gaussians: the exact W1 between samples against what each objective's critic reports{read}")
    fig.tight_layout()
    return fig
