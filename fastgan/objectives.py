"""The objectives of the seed papers, each as a critic (discriminator) loss and a
generator loss over the same networks. ``D`` outputs a logit for the GAN objectives and
a real-valued critic score for the WGANs.

* ``gan``: Goodfellow et al. (2014), the minimax cost ``E log D(x) + E log(1 - D(G(z)))``
  with the saturating generator loss ``E log(1 - D(G(z)))``, whose gradient vanishes
  once D is near perfect (Arjovsky & Bottou 2017, Theorem 2.4).
* ``nsgan``: the same discriminator, the generator minimising ``-E log D(G(z))``, whose
  gradients are unstable near a perfect D (Arjovsky & Bottou 2017, Theorem 2.6).
* ``noisy-gan``: Arjovsky & Bottou (2017, section 3): Gaussian noise of std ``sigma``
  on the inputs of D, real and fake alike; the generator backpropagates through the
  noisy samples (their Corollary 3.2); ``sigma`` is annealed to 0.
* ``wgan``: Arjovsky et al. (2017): the critic maximises ``E D(x) - E D(G(z))`` with
  its weights clipped to ``[-c, c]``; RMSprop 5e-5, c = 0.01, 5 critic steps, 100 for
  the first 25 generator steps and every 500th.
* ``wgan-gp``: Gulrajani et al. (2017): the same critic loss plus ``lam E (||grad
  D(x^)|| - 1)^2`` on interpolates; Adam 1e-4, betas (0.5, 0.9), lam 0.1 on toy data
  and 10 on images, 5 critic steps.
* ``nsgan-r1``: the non-saturating GAN with the R1 penalty ``gamma / 2 E ||grad D(x)||^2``
  on the reals (Mescheder et al. 2018), StyleGAN's recipe; ``lam`` is gamma (0.1 on
  toy data, 10 on images), Adam betas (0, 0.99), one critic step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

DESCRIPTIONS = {
    "gan": "original minimax GAN, saturating generator loss log(1 - D(G(z))) (Goodfellow et al. 2014)",
    "nsgan": "non-saturating GAN, generator loss -log D(G(z))",
    "noisy-gan": "GAN with annealed instance noise on D's inputs, real and fake (Arjovsky & Bottou 2017, sec. 3)",
    "wgan": "Wasserstein GAN, critic weights clipped to [-c, c], RMSprop (Arjovsky et al. 2017)",
    "wgan-gp": "Wasserstein GAN with gradient penalty on interpolates, Adam (Gulrajani et al. 2017)",
    "nsgan-r1": "non-saturating GAN with the R1 penalty gamma/2 E|grad D(x)|^2 on the reals (Mescheder et al. 2018; "
                "StyleGAN's recipe)",
}
OBJECTIVES = tuple(DESCRIPTIONS)


def loss_precision(d: Tensor) -> Tensor:
    """Critic outputs at the precision of the losses: half-precision ones (autocast) in
    float32, float32 and float64 as they are."""
    return d.float() if d.dtype in (torch.float16, torch.bfloat16) else d


def critic_gan_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """``-(E log sigmoid(d_real) + E log(1 - sigmoid(d_fake)))`` from logits, stably."""
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def generator_gan_loss(d_fake: Tensor, saturating: bool) -> Tensor:
    """``E log(1 - D(G(z)))`` (saturating) or ``-E log D(G(z))``, from logits."""
    return -F.softplus(d_fake).mean() if saturating else F.softplus(-d_fake).mean()


def generator_loss(objective: str, d_fake: Tensor) -> Tensor:
    """``objective``'s generator loss from the critic's outputs on generated samples:
    ``-E D(G(z))`` for the WGANs, the saturating cost for ``gan``, ``-E log D(G(z))``
    for the other GANs (the noise of ``noisy-gan`` is already in ``d_fake``'s inputs)."""
    if objective in ("wgan", "wgan-gp"):
        return -d_fake.mean()
    return generator_gan_loss(d_fake, saturating=objective == "gan")


def instance_noise(x: Tensor, sigma: float) -> Tensor:
    """``x`` plus Gaussian noise of std ``sigma`` (``x`` itself for sigma 0): the
    instance noise of Arjovsky & Bottou (2017, section 3), differentiable in ``x``."""
    return x + sigma * torch.randn_like(x) if sigma > 0 else x


def critic_wgan_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """``E D(G(z)) - E D(x)``: minimising it maximises the W estimate."""
    return d_fake.mean() - d_real.mean()


def noise_sigma(step: int, total: int, sigma0: float, schedule: str) -> float:
    """The instance noise's std at generator step ``step`` of ``total``, from ``sigma0``
    down to 0: ``linear``, ``exponential`` (to 1% of sigma0 at the end, then 0) or
    ``cosine``."""
    if sigma0 < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma0}")
    frac = min(max(step / max(total, 1), 0.0), 1.0)
    if frac >= 1.0:
        return 0.0
    if schedule == "linear":
        return sigma0 * (1.0 - frac)
    if schedule == "exponential":
        return sigma0 * 0.01 ** frac
    if schedule == "cosine":
        return sigma0 * 0.5 * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"unknown noise schedule {schedule!r}: expected linear, exponential or cosine")


def wgan_critic_iters(step: int, n_critic: int) -> int:
    """Arjovsky's schedule: 100 critic iterations for the first 25 generator steps and
    every 500th, ``n_critic`` otherwise."""
    return 100 if step < 25 or step % 500 == 0 else n_critic


@dataclass
class Defaults:
    """An objective's default hyperparameters (image data where they differ)."""

    optimizer: str
    lr: float
    betas: tuple[float, float]
    n_critic: int
    lam: float = 0.0
    clip: float = 0.0
    lr_decay: str = "none"


def defaults(objective: str, images: bool, arch: str = "dcgan") -> Defaults:
    """The papers' defaults for ``objective`` on toy points or on images; ``wgan-gp``
    with the ResNets (``arch="resnet"``) takes the WGAN-GP paper's CIFAR ResNet recipe:
    Adam 2e-4, betas (0, 0.9), 5 critic steps, lam 10, the learning rate decayed
    linearly to 0."""
    if objective == "wgan":
        return Defaults("rmsprop", 5e-5, (0.0, 0.0), 5, clip=0.01)
    if objective == "wgan-gp" and images and arch == "resnet":
        return Defaults("adam", 2e-4, (0.0, 0.9), 5, lam=10.0, lr_decay="linear")
    if objective == "wgan-gp":
        return Defaults("adam", 1e-4, (0.0, 0.9) if images else (0.5, 0.9), 5, lam=10.0 if images else 0.1)
    if objective in ("gan", "nsgan", "noisy-gan"):
        return Defaults("adam", 2e-4 if images else 1e-4, (0.5, 0.999), 1)
    if objective == "nsgan-r1":
        return Defaults("adam", 2e-4 if images else 1e-4, (0.0, 0.99), 1, lam=10.0 if images else 0.1)
    raise ValueError(f"unknown objective {objective!r}: expected one of {', '.join(OBJECTIVES)}")


def _joined(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    return None if a is None else torch.cat([a, b])


class CriticObjective(torch.nn.Module):
    """One critic iteration's loss of ``objective`` as a module of ``critic``, so that
    ``torch.nn.parallel.DistributedDataParallel`` can wrap the whole critic step (DDP
    wants one forward per backward)::

        step = DistributedDataParallel(CriticObjective(critic, "wgan-gp"))
        loss, w, penalty = step(real, fake, eps=eps, lam=10.0)
        loss.backward()                    # gradients averaged over the ranks by DDP

    fastgan's critics (:class:`~fastgan.FusedMLPCritic`, :class:`~fastgan.FusedCritic`,
    :class:`~fastgan.nn.DCGANCritic`) and any critic module the fused step can trace
    (:mod:`fastgan.ops.trace`) take its fused step (no double backward at all) unless
    ``fused=False``; any other critic takes its two forwards and :func:`fastgan.gradient_penalty` with ``method``
    (``"jvp"`` under DDP, which cannot run a double backward). The GAN
    objectives add ``sigma``'s instance noise; ``nsgan-r1`` adds R1 with ``gamma = lam``
    (fused in the graph critics' ``r1_loss``). Half-precision critic outputs are made
    float32 before the losses. A conditional critic (``head``, by default the critic's
    own ``head`` attribute, :mod:`fastgan.conditional`) takes the batches' classes
    ``labels`` (the fakes are made with the reals' classes): a ``projection`` critic
    scores ``critic(x, labels)``, fused where it traces; an ``acgan`` critic's
    ``heads(x)`` adds the cross-entropy of its class logits on real and fake. Returns ``(loss, W estimate
    (detached), penalty before lam or None)``.
    """

    def __init__(self, critic: torch.nn.Module, objective: str, method: str = "auto", scaler=None,
                 fused: bool = True, head: str | None = None):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}: expected one of {', '.join(OBJECTIVES)}")
        self.critic, self.objective, self.method, self.scaler = critic, objective, method, scaler
        self.fused = fused
        self.head = head or getattr(critic, "head", None)  # a conditional critic's class head
        self.graph, self.drop_in_reason = self._fused_graph()

    def score(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The critic's outputs on ``x`` (float32 at least) and, for an AC-GAN critic,
        its class logits (else None); a projection critic scores ``x`` with ``labels``."""
        if self.head == "acgan":
            d, logits = self.critic.heads(x)
            return loss_precision(d), logits
        return loss_precision(self.critic(x, labels) if self.head == "projection" else self.critic(x)), None

    def forward(self, real: Tensor, fake: Tensor, eps: Tensor | None = None, lam: float = 0.0,
                sigma: float = 0.0, labels: Tensor | None = None):
        from fastgan.conditional import ACGAN_CRITIC_WEIGHT, class_loss

        loss, w, penalty, logits = self._loss(real, fake, eps, lam, sigma, labels)
        if self.head == "acgan":  # the cross-entropy of the real and the fake batch's classes
            if logits is None:  # (the fused step gave the WGAN part alone)
                logits = self.critic.heads(torch.cat([real, fake]))[1]
            loss = loss + ACGAN_CRITIC_WEIGHT * class_loss(logits, torch.cat([labels, labels]))
        return loss, w, penalty

    def _loss(self, real, fake, eps, lam, sigma, labels):
        """(loss, W estimate, penalty or None, the AC-GAN logits of real and fake or None)."""
        from fastgan.penalties import gradient_penalty, r1_penalty
        from fastgan.profiling import span

        penalty, graph = None, self.graph
        classes = dict(labels=labels) if self.head == "projection" else {}
        critic = self.critic if self.head != "projection" else (lambda x: self.critic(x, labels))
        if self.objective == "nsgan-r1":
            if graph is not None:  # the logistic loss and R1, one fused pass
                out = graph.loss(real, fake, loss="r1", lam=0.5 * lam, **classes)
                return out.loss, out.wasserstein, out.penalty if lam else None, None
            (d_real, l_real), (d_fake, l_fake) = self.score(real, labels), self.score(fake, labels)
            loss = critic_gan_loss(d_real, d_fake)
            if lam:
                with span("penalty"):  # r1_penalty is gamma/2 E|g|^2: report E|g|^2
                    penalty = r1_penalty(critic, real, gamma=2.0, method=self.method)
                loss = loss + 0.5 * lam * penalty
            return loss, (d_real.mean() - d_fake.mean()).detach(), penalty, _joined(l_real, l_fake)
        if self.objective not in ("wgan", "wgan-gp"):
            (d_real, l_real) = self.score(instance_noise(real, sigma), labels)
            (d_fake, l_fake) = self.score(instance_noise(fake, sigma), labels)
            return critic_gan_loss(d_real, d_fake), (d_real.mean() - d_fake.mean()).detach(), None, \
                _joined(l_real, l_fake)
        if graph is not None:
            out = graph.loss(real, fake, loss="wgan-gp" if lam else "wgan", lam=lam, eps=eps, **classes)
            return out.loss, out.wasserstein, out.penalty if lam else None, None
        (d_real, l_real), (d_fake, l_fake) = self.score(real, labels), self.score(fake, labels)
        loss = critic_wgan_loss(d_real, d_fake)
        w = -loss.detach()
        if lam:
            with span("penalty"):
                penalty = gradient_penalty(critic, real, fake, lam=1.0, eps=eps, method=self.method,
                                           scaler=self.scaler)  # (None unless fp16)
            loss = loss + lam * penalty
        return loss, w, penalty, _joined(l_real, l_fake)

    def describe(self) -> str:
        """Which path the critic step takes, and for the drop-in path why: the line a
        run starts with."""
        name = type(self.critic).__name__
        extra = {"projection": " (conditional: a projection on the classes)",
                 "acgan": ", plus the AC-GAN class loss by autograd"}.get(self.head, "")
        if self.objective not in ("wgan", "wgan-gp", "nsgan-r1"):
            return f"critic step: {name}'s two forwards with autograd ({self.objective} has no penalty to fuse){extra}"
        if self.graph is not None:
            return f"critic step: fused, {name} traced as a graph of {self.graph.nodes} nodes{extra}"
        penalty = "r1_penalty" if self.objective == "nsgan-r1" else "gradient_penalty"
        return (f"critic step: drop-in, {name}'s forward and fastgan.{penalty} (method {self.method}){extra}, "
                f"because {self.drop_in_reason}")

    def prepare(self, batch: Tensor) -> None:
        """Builds the fused step's graph for batches shaped like ``batch`` now, so that a
        compiled step (``torch.compile(fullgraph=True)``, which cannot trace the graph's
        construction) finds it built; nothing to do for the other paths."""
        from fastgan.ops.trace import TracedCritic

        if isinstance(self.graph, TracedCritic):  # (an MLP's graph is built with it)
            self.graph.spec(batch)

    def _fused_graph(self):
        """The traced graph of the fused step for this critic and None, or None and why
        the critic takes the drop-in path: with ``fused=False``, and for a module the
        fused step cannot run."""
        from fastgan.nn import GraphCritic
        from fastgan.ops.graph import UnsupportedLayer
        from fastgan.ops.trace import traced

        if not self.fused:
            return None, "fused=False"
        if isinstance(self.critic, GraphCritic):
            return self.critic.traced(), None
        try:
            return traced(self.critic), None
        except UnsupportedLayer as exc:
            return None, str(exc)
