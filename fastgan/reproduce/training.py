"""What the experiments share to train: a Trainer stepped by hand, and a critic's
optimiser and step for each objective at its documented toy defaults."""
from __future__ import annotations

import torch

from fastgan import objectives, run_folder
from fastgan.optim import ClippedRMSprop
from fastgan.config import TrainConfig
from fastgan.trainer import Trainer


def stepwise_trainer(objective: str, data: str, steps: int, seed: int, **settings) -> Trainer:
    """A Trainer for ``Trainer.train_step`` calls made by the experiment: no progress
    bar, log, evaluation or checkpoint of its own (it writes nothing)."""
    return Trainer(TrainConfig(objective=objective, data=data, steps=steps, seed=seed, out=run_folder.scratch(),
                               progress=False, log_every=10**9, eval_every=0, checkpoint_every=10**9, **settings))


def critic_optimizer(objective: str, critic: torch.nn.Module, clip: float | None = None) -> torch.optim.Optimizer:
    """The toy defaults: ClippedRMSprop for ``wgan`` (bound ``clip``, or the default
    c), Adam for ``wgan-gp`` and the GANs."""
    hp = objectives.defaults(objective, images=False)
    if objective == "wgan":
        return ClippedRMSprop(critic.parameters(), lr=hp.lr, clip=hp.clip if clip is None else clip)
    return torch.optim.Adam(critic.parameters(), lr=hp.lr, betas=hp.betas)


def critic_step(objective: str, critic, opt: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor) -> None:
    """One step of a FusedMLPCritic: the fused WGAN-GP loss (toy lam), the fused WGAN
    loss, or the GAN discriminator's loss on its logits."""
    if objective == "wgan-gp":
        loss = critic.wgan_gp_loss(real, fake, lam=objectives.defaults("wgan-gp", images=False).lam).loss
    elif objective == "wgan":
        loss = critic.wgan_loss(real, fake).loss
    else:
        loss = objectives.critic_gan_loss(critic(real), critic(fake))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
