"""The run's pictures (matplotlib, no screen): generated samples over the critic's
value contours for 2-D points (the critic's curve for 1-D points, the first two
coordinates for more), a grid of generated images, and the curves of losses, the
critic's estimate and exact W1 from ``metrics.jsonl``."""
from __future__ import annotations

import json
import math
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


def seeded(seed: int) -> torch.Generator:
    """A CPU generator of its own, so that drawing pictures never moves a run's stream."""
    return torch.Generator().manual_seed(seed)


def _dtype(module) -> torch.dtype:
    return next(module.parameters()).dtype


def draw_points(fig, ax, real: Tensor, fake: Tensor, critic, device, title: str) -> None:
    """Real and generated points of any dimension D on ``ax``: over the critic's value
    contours for D = 2, as histograms under the critic's curve for D = 1, and as the
    scatter of the first two coordinates (no critic surface) for D > 2."""
    if real.shape[1] == 1:
        both = torch.cat([real, fake])[:, 0]
        xs = torch.linspace(float(both.min()) - 0.3, float(both.max()) + 0.3, 400)
        ax.hist([real[:, 0].numpy(), fake[:, 0].numpy()], bins=60, density=True, color=["black", "orange"],
                alpha=0.6, label=["real", "generated"])
        with torch.no_grad():
            values = critic(xs[:, None].to(device, _dtype(critic))).reshape(-1).float().cpu()
        twin = ax.twinx()
        twin.plot(xs.numpy(), values.numpy(), color="tab:blue")
        twin.set_ylabel("critic value D(x)")
        ax.set_xlabel("x")
    else:
        if real.shape[1] == 2:
            both = torch.cat([real, fake])
            lo, hi = both.min(0).values - 0.3, both.max(0).values + 0.3
            xs = torch.linspace(float(lo[0]), float(hi[0]), 120)
            ys = torch.linspace(float(lo[1]), float(hi[1]), 120)
            gx, gy = torch.meshgrid(xs, ys, indexing="xy")
            grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
            with torch.no_grad():
                values = critic(grid.to(device, _dtype(critic))).reshape(gx.shape).float().cpu()
            contour = ax.contourf(gx.numpy(), gy.numpy(), values.numpy(), levels=20, cmap="RdBu_r", alpha=0.7)
            fig.colorbar(contour, ax=ax, label="critic value D(x)")
        else:
            ax.set_xlabel("coordinate 1")
            ax.set_ylabel("coordinate 2")
            title += f" (coordinates 1-2 of {real.shape[1]})"
        ax.scatter(real[:, 0], real[:, 1], s=3, c="black", alpha=0.5, label="real")
        ax.scatter(fake[:, 0], fake[:, 1], s=3, c="orange", alpha=0.6, label="generated")
    ax.set_title(title)
    ax.legend(loc="upper right", markerscale=4)


def tile(images: Tensor, columns: int) -> Tensor:
    """``(N, C, H, W)`` images in [-1, 1] as one ``(rows*(H+1)-1, columns*(W+1)-1, C)``
    picture in [0, 1], one pixel of white between them."""
    n, c, h, w = images.shape
    rows = (n + columns - 1) // columns
    canvas = torch.ones(rows * (h + 1) - 1, columns * (w + 1) - 1, c)
    unit = ((images.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1)
    for i in range(n):
        r, col = divmod(i, columns)
        canvas[r * (h + 1):r * (h + 1) + h, col * (w + 1):col * (w + 1) + w] = unit[i]
    return canvas


def grid_columns(n: int) -> int:
    """10 columns up to 100 images, a square grid beyond."""
    return min(n, 10) if n <= 100 else math.ceil(math.sqrt(n))


def draw_images(ax, images: Tensor, title: str, columns: int | None = None) -> None:
    """A grid of images in [-1, 1], (N, C, H, W), as one picture on ``ax``."""
    picture = tile(images, columns or grid_columns(len(images))).numpy()
    ax.imshow(picture[..., 0] if picture.shape[2] == 1 else picture, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.axis("off")
    ax.set_title(title)


def samples(path: str, panels: list[tuple[str, Tensor]], title: str, real: Tensor | None = None,
            critic=None, device=None, columns: int | None = None) -> str:
    """One panel per ``(label, samples)``, side by side (the EMA generator's beside the
    raw one's): an image grid for images (of ``columns`` columns: a conditional run's
    classes), points with ``real`` and the critic for points."""
    plt = pyplot()
    images = panels[0][1].dim() == 4
    columns = columns or grid_columns(len(panels[0][1]))
    if images:
        picture = tile(panels[0][1], columns)
        width = max(3.0, min(9.0, 0.09 * picture.shape[1]))  # inches per panel
        size = (width * len(panels), width * picture.shape[0] / picture.shape[1] + 0.6)
    else:
        size = (6 * len(panels), 6 if real.shape[1] > 1 else 4)
    fig, axes = plt.subplots(1, len(panels), figsize=size, squeeze=False)
    for ax, (label, fake) in zip(axes[0], panels):
        name = f"{title}\n{label}" if label else title
        if images:
            draw_images(ax, fake, name, columns)
        else:
            draw_points(fig, ax, real, fake, critic, device, name)
    return _save(fig, path)


#: Objectives whose critic's gap E D(x) - E D(G(z)) estimates W1.
WASSERSTEIN_OBJECTIVES = ("wgan", "wgan-gp")


def curves(path: str, records: list[dict], objective: str = "wgan-gp") -> str:
    """Losses, the critic's gap and exact W1 against the generator step, and the image
    metrics (FID and KID, precision and recall, the Inception Score) when the run has them. The gap
    ``E D(x) - E D(G(z))`` estimates W1 for the Wasserstein objectives only; for the
    others it is labelled as the discriminator's gap."""
    plt = pyplot()
    scored = [r for r in records if "fid" in r]
    with_is = bool(scored) and all("is" in r for r in scored)
    panels = 2 + 2 * bool(scored) + with_is
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4))
    ax_loss, ax_w = axes[:2]
    trained = [r for r in records if "critic_loss" in r]
    for key in ("critic_loss", "generator_loss"):
        ax_loss.plot([r["step"] for r in trained], [r[key] for r in trained], label=key.replace("_", " "))
    ax_loss.set_xlabel("generator step")
    ax_loss.legend()
    ax_loss.set_title("losses")
    wasserstein = objective in WASSERSTEIN_OBJECTIVES
    ax_w.plot([r["step"] for r in trained], [r["wasserstein"] for r in trained],
              label="W estimate (critic)" if wasserstein else "discriminator gap E D(x) - E D(G(z))")
    evaluated = [r for r in records if "w1" in r]
    ax_w.plot([r["step"] for r in evaluated], [r["w1"] for r in evaluated], "o-", label="exact W1 (POT)")
    ax_w.set_xlabel("generator step")
    ax_w.legend()
    ax_w.set_title("Wasserstein distance" if wasserstein else "exact W1 and the discriminator's gap")
    if scored:
        steps, features = [r["step"] for r in scored], scored[-1]["features"]
        axes[2].plot(steps, [r["fid"] for r in scored], "o-", label="FID")
        axes[2].plot(steps, [r["kid"] for r in scored], "s--", label="KID")
        for key in ("precision", "recall"):
            axes[3].plot(steps, [r[key] for r in scored], "o-", label=key)
        axes[3].set_ylim(-0.05, 1.05)
        for ax, title in zip(axes[2:4], ("FID and KID", "precision and recall")):
            ax.set_xlabel("generator step")
            ax.legend()
            ax.set_title(f"{title} on {features} features")
        if with_is:
            axes[4].errorbar(steps, [r["is"] for r in scored], yerr=[r["is_std"] for r in scored], fmt="o-",
                             label="IS (std over splits)")
            axes[4].set_xlabel("generator step")
            axes[4].legend()
            axes[4].set_title(f"Inception Score on {features} logits")
    return _save(fig, path)


def _save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def run_plots(trainer, n: int = 1000) -> list[str]:
    """samples.png (the EMA generator's samples beside the raw one's when the run
    keeps an EMA) and curves.png of a trainer's run folder."""
    out = trainer.cfg.out
    title = f"{trainer.cfg.objective} on {trainer.data.name}, step {trainer.step}"
    count = 100 if trainer.data.is_image else n
    columns = None
    if trainer.num_classes:  # a column per class, 10 samples each
        count, columns = 10 * trainer.num_classes, trainer.num_classes
        title += ", columns: classes 0.." + str(trainer.num_classes - 1)
    panels = [(label, trainer.sample(count, seeded(trainer.cfg.seed + 7), raw=raw))
              for label, raw in trainer.sample_labels()]
    real = None if trainer.data.is_image else trainer.data.sample(n, seeded(trainer.cfg.seed + 8))
    paths = [samples(os.path.join(out, "samples.png"), panels, title, real, trainer.critic, trainer.device,
                     columns)]
    log = os.path.join(out, "metrics.jsonl")
    if os.path.exists(log):
        paths.append(curves(os.path.join(out, "curves.png"), read_log(log), trainer.cfg.objective))
    return paths
