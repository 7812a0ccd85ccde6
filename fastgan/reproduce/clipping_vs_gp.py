"""``clipping-vs-gp``: Gulrajani et al. (2017), Figure 1.

(a) Value surfaces: against a fixed generator, the real data plus unit-variance
Gaussian noise, a critic (the toy code's ReLU MLP, 2 -> 512 x 3 -> 1) is trained on
``8gaussians``, ``25gaussians`` and ``swissroll`` with weight clipping (RMSprop 5e-5,
c = 0.01) and with the gradient penalty (Adam 1e-4, betas (0.5, 0.9), lam 0.1). How
simple a surface is gets one number: the share of its variance over the plotted grid
that a quadratic in (x, y) explains (R^2).

(b) Gradient norms through a deep critic (12 ReLU layers) on ``swissroll``, trained the
same ways with c in {0.1, 0.01, 0.001} and with the penalty: the norm of the critic
loss's gradient with respect to each layer's output (the backward signal), averaged
over minibatches. "Explode or vanish" means that the first layer's norm is more than
ten times, or less than a tenth of, the last layer's.

``clipping-vs-gp-v2`` measures (a) the way the figure shows it: the same critics'
values over a 64 x 64 grid against a Gaussian kernel density estimate of 1000 real
samples (Scott's bandwidth), by Spearman's rank correlation. A critic that resolves
the data's modes ranks the grid the way the density does; a flat-topped one does not.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from scipy import stats
from torch import nn

from fastgan import FusedMLPCritic, data, objectives
from fastgan.plots import pyplot
from fastgan.reproduce.report import Claim, Report
from fastgan.reproduce.training import critic_optimizer, critic_step

SETTINGS = {
    "full": {"steps": 2000, "width": 512, "grid": 100, "depth": 12, "deep_width": 256, "deep_steps": 500,
             "grad_batches": 10, "batch": 256},
    "quick": {"steps": 10, "width": 32, "grid": 20, "depth": 4, "deep_width": 16, "deep_steps": 5,
              "grad_batches": 2, "batch": 64},
}
DATASETS = ("8gaussians", "25gaussians", "swissroll")
CLIPS = (0.1, 0.01, 0.001)
EXTENT = 3.0  # the surfaces are drawn over [-3, 3]^2
SPREAD = 10.0  # "explode or vanish": first / last layer norm beyond this factor either way


def train_critic(critic: FusedMLPCritic, dataset, method: float | str, steps: int, batch: int) -> FusedMLPCritic:
    """``steps`` critic steps against the real data plus N(0, 1) noise; ``method`` is
    a clipping bound c (RMSprop 5e-5) or "gp" (the toy defaults of WGAN-GP)."""
    objective = "wgan-gp" if method == "gp" else "wgan"
    opt = critic_optimizer(objective, critic, clip=None if method == "gp" else method)
    for _ in range(steps):
        real = dataset.sample(batch)
        critic_step(objective, critic, opt, real, dataset.sample(batch) + torch.randn(batch, 2))
    return critic


def quadratic_r2(values: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> float:
    """The share of the variance of ``values`` over the grid that a least-squares
    quadratic in (x, y) explains."""
    x, y, v = xs.ravel(), ys.ravel(), values.ravel()
    basis = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
    coef, *_ = np.linalg.lstsq(basis, v, rcond=None)
    residual = v - basis @ coef
    return float(1.0 - residual.var() / v.var()) if v.var() > 0 else 1.0


def square_grid(points_per_side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor]:
    """The plotted square ``[-EXTENT, EXTENT]^2``: its axis, the meshgrid ``xs, ys``, and
    the grid points as a float32 ``(n * n, 2)`` tensor, row by row."""
    axis = np.linspace(-EXTENT, EXTENT, points_per_side)
    xs, ys = np.meshgrid(axis, axis)
    return axis, xs, ys, torch.from_numpy(np.stack([xs.ravel(), ys.ravel()], axis=1)).float()


@functools.lru_cache(maxsize=1)
def surface_critics(seed: int, steps: int, width: int, batch: int) -> dict:
    """The critics whose value surfaces are compared, each trained from ``seed``:
    ``(data set, "clip" or "gp") -> FusedMLPCritic`` (clipping at c = 0.01). Trained once
    per process for the same settings: ``clipping-vs-gp-v2`` reads the very critics
    whose surfaces ``clipping-vs-gp`` drew (in ``reproduce all``, at no training cost);
    only read from them."""
    critics = {}
    for name in DATASETS:
        dataset = data.load(name)
        for method in ("clip", "gp"):
            torch.manual_seed(seed)
            critics[name, method] = train_critic(FusedMLPCritic(2, (width,) * 3, "relu"), dataset,
                                                 0.01 if method == "clip" else "gp", steps, batch)
    return critics


def critic_values(critic: FusedMLPCritic, points: torch.Tensor, side: int) -> np.ndarray:
    """The critic's value at the grid ``points``, as a ``(side, side)`` array."""
    with torch.no_grad():
        return critic(points).reshape(side, side).numpy()


def surfaces(seed: int, steps: int, width: int, grid_side: int, batch: int) -> dict:
    axis, xs, ys, points = square_grid(grid_side)
    out = {}
    for key, critic in surface_critics(seed, steps, width, batch).items():
        values = critic_values(critic, points, grid_side)
        out[key] = {"values": values, "r2_quadratic": quadratic_r2(values, xs, ys)}
    out["axis"] = axis
    return out


def layer_gradient_norms(critic: FusedMLPCritic, dataset, batches: int, batch: int) -> list[float]:
    """The mean, over ``batches`` minibatches, of the norm of the WGAN critic loss's
    gradient with respect to each Linear layer's output, first layer first."""
    seq = critic.to_sequential()
    totals = None
    for _ in range(batches):
        real = dataset.sample(batch)
        fake = dataset.sample(batch) + torch.randn(batch, 2)
        outputs, h = [], torch.cat([real, fake])
        for module in seq:
            h = module(h)
            if isinstance(module, nn.Linear):
                h.retain_grad()
                outputs.append(h)
        objectives.critic_wgan_loss(h[:batch], h[batch:]).backward()
        norms = np.array([float(o.grad.norm()) for o in outputs])
        totals = norms if totals is None else totals + norms
    return (totals / batches).tolist()


def deep_gradients(seed: int, depth: int, deep_width: int, deep_steps: int, grad_batches: int, batch: int) -> dict:
    dataset = data.load("swissroll")
    out = {}
    for method in (*CLIPS, "gp"):
        torch.manual_seed(seed)
        critic = train_critic(FusedMLPCritic(2, (deep_width,) * depth, "relu"), dataset, method, deep_steps, batch)
        out[f"c={method}" if method != "gp" else "gp"] = layer_gradient_norms(critic, dataset, grad_batches, batch)
    return out


def run(seed: int, steps: int, width: int, grid: int, depth: int, deep_width: int, deep_steps: int,
        grad_batches: int, batch: int) -> Report:
    surf = surfaces(seed, steps, width, grid, batch)
    norms = deep_gradients(seed, depth, deep_width, deep_steps, grad_batches, batch)
    spread = {k: v[0] / v[-1] for k, v in norms.items()}
    r2 = {name: {m: surf[name, m]["r2_quadratic"] for m in ("clip", "gp")} for name in DATASETS}
    clipped = [k for k in spread if k != "gp"]
    claims = [
        Claim(f"weight clipping makes the gradients explode or vanish through a {depth}-layer critic "
              f"(first / last layer norm > {SPREAD:g} or < {1 / SPREAD:g}, each c)",
              ", ".join(f"{spread[k]:.2e} ({k})" for k in clipped),
              all(spread[k] > SPREAD or spread[k] < 1 / SPREAD for k in clipped)),
        Claim(f"the gradient penalty does not (first / last within [{1 / SPREAD:g}, {SPREAD:g}])",
              f"{spread['gp']:.2e}", 1 / SPREAD <= spread["gp"] <= SPREAD),
        Claim("clipped critics have simpler value surfaces: a quadratic explains more of them (R^2) "
              "than of the penalty's, on each data set",
              ", ".join(f"{name} {r2[name]['clip']:.3f} vs {r2[name]['gp']:.3f}" for name in DATASETS),
              all(r2[name]["clip"] > r2[name]["gp"] for name in DATASETS)),
    ]
    data_out = {"surface_r2_quadratic": r2, "layer_gradient_norms": norms, "first_over_last": spread,
                "surfaces": {f"{name}/{m}": surf[name, m]["values"] for name in DATASETS for m in ("clip", "gp")},
                "grid_axis": surf["axis"]}
    return Report("clipping-vs-gp", "Gulrajani et al. (2017), Figure 1", claims, data_out,
                  _figure(surf, norms, r2, seed))


def _figure(surf, norms, r2, seed):
    plt = pyplot()
    fig = plt.figure(figsize=(15, 8.5))
    grid = fig.add_gridspec(2, 4)
    axis = surf["axis"]
    gen = torch.Generator().manual_seed(seed)
    for col, name in enumerate(DATASETS):
        real = data.load(name).sample(300, gen)
        for row, method in enumerate(("clip", "gp")):
            ax = fig.add_subplot(grid[row, col])
            ax.contourf(axis, axis, surf[name, method]["values"], levels=20, cmap="RdBu_r")
            ax.scatter(real[:, 0], real[:, 1], s=2, c="black")
            ax.set_title(f"{name}, {'clipping c=0.01' if method == 'clip' else 'gradient penalty'}\n"
                         f"quadratic R^2 {r2[name][method]:.3f}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    ax = fig.add_subplot(grid[:, 3])
    for label, values in norms.items():
        ax.plot(range(1, len(values) + 1), values, "o-", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("critic layer (1 = input side)")
    ax.set_ylabel("gradient norm at the layer's output")
    ax.set_title("swissroll, deep critic")
    ax.legend()
    fig.suptitle("WGAN critics against real + N(0, 1): weight clipping against the gradient penalty")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- v2: against the density

DENSITY_SETTINGS = {
    "full": {"steps": 2000, "width": 512, "grid": 64, "samples": 1000, "batch": 256},
    "quick": {"steps": 10, "width": 32, "grid": 16, "samples": 100, "batch": 64},
}


def gaussian_kde(samples: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The Gaussian kernel density estimate of ``samples`` ``(n, d)`` at ``points``
    ``(m, d)``: the kernel's covariance is the samples' covariance (``ddof`` 1) times
    Scott's factor squared, ``n ** (-2 / (d + 4))``, as in ``scipy.stats.gaussian_kde``."""
    n, d = samples.shape
    cov = np.atleast_2d(np.cov(samples, rowvar=False)) * n ** (-2.0 / (d + 4))
    chol = np.linalg.cholesky(cov)
    # whitened differences: z = L^-1 (x - s), density N(0, cov) = exp(-|z|^2 / 2) / ((2 pi)^(d/2) det L)
    white_points = np.linalg.solve(chol, points.T).T
    white_samples = np.linalg.solve(chol, samples.T).T
    sq = ((white_points[:, None, :] - white_samples[None, :, :]) ** 2).sum(-1)
    norm = (2 * np.pi) ** (d / 2) * np.prod(np.diag(chol))
    return np.exp(-0.5 * sq).mean(axis=1) / norm


def density_correlation(seed: int, steps: int, width: int, grid: int, samples: int, batch: int) -> Report:
    """v2 of the surface claim: the Spearman correlation, over a ``grid`` x ``grid``
    square, between each critic's value and the Gaussian KDE of ``samples`` real points
    (the same points for both critics of a data set)."""
    axis, _, _, points = square_grid(grid)
    critics = surface_critics(seed, steps, width, batch)
    density, values, rho = {}, {}, {}
    for name in DATASETS:
        real = data.load(name).sample(samples, torch.Generator().manual_seed(seed + 1)).double().numpy()
        density[name] = gaussian_kde(real, points.double().numpy()).reshape(grid, grid)
        for method in ("clip", "gp"):
            values[name, method] = critic_values(critics[name, method], points, grid)
            rho[name, method] = float(stats.spearmanr(values[name, method].ravel(), density[name].ravel())[0])
    claims = [Claim("the penalty critic's value follows the data density more closely than the clipped critic's: "
                    f"Spearman correlation with a Gaussian KDE (Scott's rule, {samples} real samples) over a "
                    f"{grid}x{grid} grid, higher for the penalty on each data set",
                    ", ".join(f"{name} {rho[name, 'gp']:.3f} (penalty) vs {rho[name, 'clip']:.3f} (clipping)"
                              for name in DATASETS),
                    all(rho[name, "gp"] > rho[name, "clip"] for name in DATASETS))]
    data_out = {"spearman": {name: {m: rho[name, m] for m in ("clip", "gp")} for name in DATASETS},
                "density": {name: density[name] for name in DATASETS},
                "surfaces": {f"{name}/{m}": values[name, m] for name in DATASETS for m in ("clip", "gp")},
                "grid_axis": axis}
    return Report("clipping-vs-gp-v2", "Gulrajani et al. (2017), Figure 1a", claims, data_out,
                  _density_figure(axis, density, values, rho))


def _density_figure(axis, density, values, rho):
    plt = pyplot()
    fig, axes = plt.subplots(3, len(DATASETS), figsize=(12, 12))
    for col, name in enumerate(DATASETS):
        axes[0, col].contourf(axis, axis, density[name], levels=20, cmap="Greys")
        axes[0, col].set_title(f"{name}: Gaussian KDE of the real samples", fontsize=9)
        for row, method in enumerate(("clip", "gp"), start=1):
            ax = axes[row, col]
            ax.contourf(axis, axis, values[name, method], levels=20, cmap="RdBu_r")
            ax.contour(axis, axis, density[name], levels=6, colors="black", linewidths=0.6)
            label = "clipping c=0.01" if method == "clip" else "gradient penalty"
            ax.set_title(f"{label}: Spearman with the KDE {rho[name, method]:.3f}", fontsize=9)
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("critic values against the data density (black: the KDE's contours)")
    fig.tight_layout()
    return fig
