"""One rank of the DistributedDataParallel parity test, under torchrun (or alone, as
the one-process reference on the whole batch): one critic step's parameter gradients
through ``DDP(CriticObjective(critic, "wgan-gp"))``, saved to OUT/grads_rank{R}.pt. KIND:
fused (the MLP step), conv and layernorm (the drop-in penalty), chain (the conv chain step).

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_worker.py KIND OUT
"""
import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import fastgan
from fastgan.objectives import CriticObjective

BATCH = 8


def critic(kind: str) -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(0)
    if kind == "fused":
        return fastgan.FusedMLPCritic(5, (16, 16)), (5,)
    norm = [nn.LayerNorm([6, 4, 4])] if kind in ("layernorm", "chain") else []
    return nn.Sequential(nn.Conv2d(3, 6, 4, 2, 1), *norm, nn.LeakyReLU(0.2), nn.Conv2d(6, 8, 3, 1, 1), nn.SiLU(),
                         nn.Flatten(), nn.Linear(8 * 16, 1)), (3, 8, 8)


def main(kind: str, out: str) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if world > 1 else 0
    net, shape = critic(kind)
    net = net.double()
    g = torch.Generator().manual_seed(1)
    real = torch.randn(BATCH, *shape, generator=g, dtype=torch.float64)
    fake = torch.randn(BATCH, *shape, generator=g, dtype=torch.float64)
    eps = torch.rand(BATCH, generator=g, dtype=torch.float64)
    part = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    # DDP and the jvp penalty on the ranks, the eager double backward as the reference; or
    # the fused step (MLP, or the conv chain) everywhere
    objective = CriticObjective(net, "wgan-gp", method="jvp" if world > 1 else "double-backward",
                                fused=kind in ("fused", "chain"))
    step = DistributedDataParallel(objective) if world > 1 else objective
    loss, _, _ = step(real[part], fake[part], eps=eps[part], lam=10.0)
    loss.backward()
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in net.parameters()]
    torch.save(grads, os.path.join(out, f"grads_rank{rank}.pt"))
    if world > 1:
        # Every rank has written its gradients; then the ranks leave without tearing DDP
        # and the gloo group down: that teardown aborted a rank at exit now and then
        # ("terminate called without an active exception", SIGABRT), even with the
        # reducer deleted before the group, after the work was done and saved.
        dist.barrier()
        os._exit(0)


if __name__ == "__main__":
    main(*sys.argv[1:3])
