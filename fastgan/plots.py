"""The run's pictures (matplotlib, no screen): generated samples over the critic's
value contours for 2-D data, a grid of generated images otherwise, and the curves of
losses, W estimate and exact W1 from ``metrics.jsonl``."""
from __future__ import annotations

import json
import os

import torch

Tensor = torch.Tensor


def pyplot():
    """matplotlib.pyplot on the Agg backend (no screen)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def read_log(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def samples_2d(path: str, real: Tensor, fake: Tensor, critic, device, title: str) -> str:
    """Real and generated points over the contours of the critic's value."""
    plt = pyplot()
    both = torch.cat([real, fake])
    lo, hi = both.min(0).values - 0.3, both.max(0).values + 0.3
    xs, ys = torch.linspace(float(lo[0]), float(hi[0]), 120), torch.linspace(float(lo[1]), float(hi[1]), 120)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    with torch.no_grad():
        values = critic(grid.to(device)).reshape(gx.shape).float().cpu()
    fig, ax = plt.subplots(figsize=(6, 6))
    contour = ax.contourf(gx.numpy(), gy.numpy(), values.numpy(), levels=20, cmap="RdBu_r", alpha=0.7)
    fig.colorbar(contour, ax=ax, label="critic value D(x)")
    ax.scatter(real[:, 0], real[:, 1], s=3, c="black", alpha=0.5, label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=3, c="orange", alpha=0.6, label="generated")
    ax.set_title(title)
    ax.legend(loc="upper right", markerscale=4)
    return _save(fig, path)


def image_grid(path: str, images: Tensor, title: str, columns: int = 10) -> str:
    """A grid of images in [-1, 1], (N, C, H, W)."""
    plt = pyplot()
    n = len(images)
    rows = (n + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 0.9 + 0.4), squeeze=False)
    for ax, i in zip(axes.flat, range(rows * columns)):
        ax.axis("off")
        if i < n:
            image = ((images[i].float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
            ax.imshow(image[..., 0] if image.shape[2] == 1 else image, cmap="gray", vmin=0, vmax=1)
    fig.suptitle(title)
    return _save(fig, path)


def curves(path: str, records: list[dict]) -> str:
    """Losses, W estimate and exact W1 against the generator step."""
    plt = pyplot()
    fig, (ax_loss, ax_w) = plt.subplots(1, 2, figsize=(11, 4))
    trained = [r for r in records if "critic_loss" in r]
    for key in ("critic_loss", "generator_loss"):
        ax_loss.plot([r["step"] for r in trained], [r[key] for r in trained], label=key.replace("_", " "))
    ax_loss.set_xlabel("generator step")
    ax_loss.legend()
    ax_loss.set_title("losses")
    ax_w.plot([r["step"] for r in trained], [r["wasserstein"] for r in trained], label="W estimate (critic)")
    evaluated = [r for r in records if "w1" in r]
    ax_w.plot([r["step"] for r in evaluated], [r["w1"] for r in evaluated], "o-", label="exact W1 (POT)")
    ax_w.set_xlabel("generator step")
    ax_w.legend()
    ax_w.set_title("Wasserstein distance")
    return _save(fig, path)


def _save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def run_plots(trainer, n: int = 1000) -> list[str]:
    """samples.png and curves.png of a trainer's run folder."""
    out = trainer.cfg.out
    gen = torch.Generator().manual_seed(trainer.cfg.seed + 7)
    title = f"{trainer.cfg.objective} on {trainer.data.name}, step {trainer.step}"
    if trainer.data.is_image:
        paths = [image_grid(os.path.join(out, "samples.png"), trainer.sample(100, gen), title)]
    else:
        real, fake = trainer.data.sample(n, gen), trainer.sample(n, gen)
        paths = [samples_2d(os.path.join(out, "samples.png"), real, fake, trainer.critic, trainer.device, title)]
    log = os.path.join(out, "metrics.jsonl")
    if os.path.exists(log):
        paths.append(curves(os.path.join(out, "curves.png"), read_log(log)))
    return paths
