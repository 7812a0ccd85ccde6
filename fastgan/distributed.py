"""Data-parallel training on ``torch.distributed``: gloo on the CPU, NCCL on GPUs.

Every rank holds the whole networks and trains on its shard of every batch. After each
backward, :meth:`Group.average_gradients` averages the gradients of the stepped module
across ranks with one all-reduce of a single flattened bucket, so every rank takes the
same optimiser step (weight clipping included) and the parameters stay identical. The
fused critic step and :func:`fastgan.gradient_penalty` compute their double backward
inside the rank's own backward, and every loss term is a mean over samples (the
penalty too), so the average of the shards' gradients is the gradient of the whole
batch. BatchNorm layers average their batch statistics across ranks
(:func:`sync_batch_norm`), so they too see the whole batch.

A rank started by ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT`` in the environment) joins the group in :func:`setup`;
a plain process is a group of one and runs no collective at all.
"""
from __future__ import annotations

import atexit
import datetime
import gc
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

Tensor = torch.Tensor


class PeerLost(RuntimeError):
    """Another rank stopped answering: it died, or a collective timed out."""


@dataclass(frozen=True)
class Group:
    """This process's place in the run: ``rank`` of ``world_size``."""

    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the logs, checkpoints and plots and computes the metrics."""
        return self.rank == 0

    def _collective(self, fn, *args):
        try:
            return fn(*args)
        except (RuntimeError, dist.DistBackendError) as exc:
            raise PeerLost(f"rank {self.rank}: lost contact with the other ranks "
                           f"({str(exc).strip().splitlines()[0][:200]})") from exc

    def average_gradients(self, module: nn.Module) -> None:
        """Replaces the ``.grad`` of ``module``'s trainable parameters by their mean
        over ranks: one all-reduce of one flat bucket (a missing gradient counts as
        zeros, so every rank sends the same layout)."""
        if not self.active:
            return
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            return
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        self._collective(dist.all_reduce, flat)
        flat /= self.world_size
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p)
            offset += n

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The mean over ranks of each value (one all-reduce), e.g. the logged losses."""
        if not self.active or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self._device())
        self._collective(dist.all_reduce, t)
        return {k: float(v) / self.world_size for k, v in zip(keys, t.tolist())}

    def any_signal(self, signum: int | None) -> int | None:
        """A stop signal seen by any rank (the largest signal number), so that every
        rank stops after the same step."""
        if not self.active:
            return signum
        t = torch.tensor([signum or 0], dtype=torch.int64, device=self._device())
        self._collective(dist.all_reduce, t, dist.ReduceOp.MAX)
        return int(t.item()) or None

    def gather(self, obj) -> list:
        """``obj`` of every rank, in rank order (on every rank)."""
        if not self.active:
            return [obj]
        out = [None] * self.world_size
        self._collective(dist.all_gather_object, out, obj)
        return out

    def broadcast_(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers, copied into every rank's ``module``."""
        if not self.active:
            return
        for t in module.state_dict().values():
            self._collective(dist.broadcast, t, 0)

    def _device(self) -> torch.device:
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


def setup(device: torch.device, timeout_s: float) -> tuple[Group, torch.device]:
    """Joins the ``torchrun`` group named by the environment (gloo for the CPU, NCCL for
    CUDA, collectives failing after ``timeout_s`` seconds) and returns it with this
    rank's device (``cuda:LOCAL_RANK`` on GPUs); without that environment, a group of
    one and ``device``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Group(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_s))
        # left at interpreter exit, a process group aborts the process now and then
        # ("terminate called without an active exception"): leave it while Python runs
        atexit.register(shutdown)
    return Group(dist.get_rank(), dist.get_world_size()), device


def shutdown() -> None:
    """Leaves the group, if this process joined one. Unreachable trainers (their bound
    methods make cycles) are collected first: a DistributedDataParallel reducer that
    outlives its group aborts the process at exit now and then."""
    if dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def stream_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of rank ``rank``'s own data and noise streams, derived from the run's
    seed (and the step, for streams restarted at a resume with another world size)."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1, dtype=np.uint64)[0] >> 1)


class GlobalBatchNorm(nn.Module):
    """A BatchNorm layer whose training-mode statistics are those of the whole batch
    across ranks: the per-channel sums and squared sums are all-reduced (a
    differentiable all-reduce, so the gradients through the statistics are those of the
    whole batch too). Same parameters, buffers and ``state_dict`` as the layer it
    replaces; in eval mode it is that layer."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        self.num_features, self.eps, self.momentum = bn.num_features, bn.eps, bn.momentum
        self.affine, self.track_running_stats = bn.affine, bn.track_running_stats
        self.weight, self.bias = bn.weight, bn.bias
        self.register_buffer("running_mean", bn.running_mean)
        self.register_buffer("running_var", bn.running_var)
        self.register_buffer("num_batches_tracked", bn.num_batches_tracked)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                            False, 0.0, self.eps)
        from torch.distributed.nn.functional import all_reduce

        dims = [0] + list(range(2, x.dim()))
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        stats = all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        c = self.num_features
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1), momentum)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def sync_batch_norm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every BatchNorm layer synchronised across ranks: torch's
    SyncBatchNorm on GPUs, :class:`GlobalBatchNorm` on the CPU (which SyncBatchNorm
    does not support)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, GlobalBatchNorm(child))
        else:
            sync_batch_norm(child, device)
    return module
