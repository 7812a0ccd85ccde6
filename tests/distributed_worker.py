"""One rank of the distributed parity tests, run under torchrun (or alone, as the
one-rank reference): a Trainer whose real samples, latent codes and penalty weights are
this rank's shard of one global stream that every rank draws alike, so that a run on
W ranks of batch B / W sees exactly the samples of a one-rank run of batch B, trained
with plain SGD (see SharedStreamTrainer). Each rank
saves its parameters to OUT/params_rank{R}.pt.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/distributed_worker.py \
        OBJECTIVE DATA OUT [ddp|conditional|ddp+conditional]
"""
import os
import sys

import torch

from fastgan.ops import clip_
from fastgan.trainer import TrainConfig, Trainer


class ClippedSGD(torch.optim.SGD):
    """Plain SGD, then every parameter clamped to [-clip, clip] (clip 0: none)."""

    def __init__(self, params, lr: float, clip: float):
        super().__init__(params, lr=lr)
        self.clip = clip

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        if self.clip:
            clip_([p for group in self.param_groups for p in group["params"]], self.clip)
        return loss


class SharedStreamTrainer(Trainer):
    """Every draw is the rank's slice of a global draw seeded by its position in the run.
    Both networks train with plain SGD (and the objective's clipping): its update is
    linear in the gradient, so the rounding by which the ranks' averaged gradients
    differ from one process's stays of rounding size, where Adam and RMSprop (which
    divide by sqrt(v) + eps) would amplify it by amounts that depend on the CPU."""

    def __init__(self, cfg):
        self._draws = 0
        super().__init__(cfg)
        self.opt_d = ClippedSGD(self.critic.parameters(), self.lr, self.clip)
        self.opt_g = ClippedSGD(self.generator.parameters(), self.lr, 0.0)

    def _shard(self, draw, n):
        self._draws += 1
        world, rank = self.group.world_size, self.group.rank
        full = draw(n * world, torch.Generator().manual_seed(10_000 + self._draws))
        return full[rank * n:(rank + 1) * n].to(self.device, self.dtype)

    def sample_real(self, n):
        return self._shard(lambda m, g: self.data.sample(m, g), n)

    def sample_latent(self, n):
        return self._shard(lambda m, g: torch.randn(m, self.latent_dim, generator=g), n)

    def sample_eps(self, n):
        return self._shard(lambda m, g: torch.rand(m, generator=g, dtype=torch.float64), n)

    def sample_real_labeled(self, n):
        self._draws += 1
        stream = torch.Generator().manual_seed(10_000 + self._draws)
        x, y = self.data.sample_labeled(n * self.group.world_size, stream)
        rows = slice(self.group.rank * n, (self.group.rank + 1) * n)
        return x[rows].to(self.device, self.dtype), y[rows].to(self.device)

    def sample_classes(self, n):
        return self._shard(lambda m, g: torch.randint(0, self.num_classes, (m,), generator=g), n).long()

    def augment_params(self):
        if not self.augment:
            return {}
        self._draws += 1
        n, world, rank = self.batch, self.group.world_size, self.group.rank
        stream = torch.Generator().manual_seed(10_000 + self._draws)
        full = self.augment.draw(n * world, *self.data.shape[1:], stream)
        return {k: v[rank * n:(rank + 1) * n] for k, v in full.items()}


def main(objective: str, data: str, out: str, options: str = "") -> None:
    """``options``: ``ddp`` and/or ``conditional`` (a conditional run with --augment
    color,translation,cutout), joined by ``+``."""
    images, options = data == "digits", options.split("+")
    extra = dict(conditional=True, augment="color,translation,cutout") if "conditional" in options else {}
    cfg = TrainConfig(objective=objective, data=data, steps=10, batch=8, dtype="float64", seed=3,
                      ddp="ddp" in options, width=8 if images else 16, latent_dim=8,
                      n_critic=2 if objective == "wgan-gp" else None, log_every=5, eval_every=0, eval_samples=64,
                      checkpoint_every=10**6, progress=False, out=out, **extra)
    trainer = SharedStreamTrainer(cfg)
    trainer.run()
    params = {f"generator.{k}": v for k, v in trainer.generator.state_dict().items()}
    params.update({f"critic.{k}": v for k, v in trainer.critic.state_dict().items()})
    torch.save(params, os.path.join(out, f"params_rank{trainer.group.rank}.pt"))


if __name__ == "__main__":
    main(*sys.argv[1:5])
