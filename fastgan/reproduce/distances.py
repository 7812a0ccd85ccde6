"""``distances``: Arjovsky et al. (2017), Example 1. ``P_0 = (0, U[0, 1])`` and
``P_theta = (theta, U[0, 1])`` have disjoint supports for theta != 0, so TV, KL and
JSD jump to their maxima as soon as theta leaves 0, while W1 = |theta| moves smoothly.

TV, KL and JSD are computed from the densities: each distribution is its uniform
density on its segment, discretised at the midpoints of a y-grid into weighted atoms,
and the divergences are sums over the union of both atom sets (exact for these
measures: atoms of different segments never coincide unless theta = 0). W1 is computed
from independent samples by exact optimal transport (POT); since every pair of points
is at least |theta| apart in x, and at most |theta| plus their y-distance,
``|theta| <= W1_n(theta) <= |theta| + W1_n(0)`` for the same two y-samples, where
``W1_n(0)`` is the two-sample floor, which shrinks as ``0.70 / sqrt(n)``.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from fastgan import metrics
from fastgan.plots import pyplot
from fastgan.reproduce.report import Claim, Report

JSD_CONVENTION = "JSD(P, Q) = KL(P || M) / 2 + KL(Q || M) / 2, M = (P + Q) / 2, natural log (max log 2)"
SETTINGS = {"full": {"thetas": 41, "grid": 2000, "samples": 1000},
            "quick": {"thetas": 9, "grid": 200, "samples": 100}}


def segment_atoms(theta: float, grid: int) -> dict[tuple[float, float], float]:
    """The uniform density on ``{theta} x [0, 1]`` as ``grid`` equal atoms at the
    midpoints of the y-grid."""
    return {(theta, (j + 0.5) / grid): 1.0 / grid for j in range(grid)}


def divergences(p: dict, q: dict) -> dict[str, float]:
    """TV, KL both ways and JSD between two atomic measures (atom -> mass)."""
    support = sorted(set(p) | set(q))
    a = np.array([p.get(x, 0.0) for x in support])
    b = np.array([q.get(x, 0.0) for x in support])

    def kl(u, v):
        if np.any((u > 0) & (v == 0)):
            return math.inf
        mask = u > 0
        return float(np.sum(u[mask] * np.log(u[mask] / v[mask])))

    m = (a + b) / 2
    return {"tv": 0.5 * float(np.abs(a - b).sum()), "kl_0_theta": kl(a, b), "kl_theta_0": kl(b, a),
            "jsd": 0.5 * kl(a, m) + 0.5 * kl(b, m)}


def run(seed: int, thetas: int, grid: int, samples: int) -> Report:
    grid_thetas = np.linspace(-1.0, 1.0, thetas)  # odd count: holds theta = 0 exactly
    gen = torch.Generator().manual_seed(seed)
    y0, y1 = torch.rand(samples, generator=gen), torch.rand(samples, generator=gen)
    real = torch.stack([torch.zeros(samples), y0], dim=1)
    rows = []
    for theta in grid_thetas:
        theta = float(theta)
        row = divergences(segment_atoms(0.0, grid), segment_atoms(theta, grid))
        row.update(theta=theta, w1=metrics.w1(torch.stack([torch.full((samples,), theta), y1], dim=1), real))
        rows.append(row)
    floor = next(r["w1"] for r in rows if r["theta"] == 0.0)
    off = [r for r in rows if r["theta"] != 0.0]
    zero = next(r for r in rows if r["theta"] == 0.0)
    slack = 1e-9
    w1_ok = all(abs(r["theta"]) - slack <= r["w1"] <= abs(r["theta"]) + floor + slack for r in rows)
    deviation = max(abs(r["w1"] - abs(r["theta"])) for r in off)
    jsds = [r["jsd"] for r in off]
    claims = [
        Claim("W1(P_0, P_theta) = |theta|",
              f"max |W1_n - |theta|| = {deviation:.4f} over the {len(off)} thetas != 0 in [-1, 1], inside the bound "
              f"|theta| <= W1_n <= |theta| + W1_n(0) = |theta| + {floor:.4f} (n = {samples})" if w1_ok else
              f"max |W1_n - |theta|| = {deviation:.4f}, outside the bound of the two-sample floor {floor:.4f}",
              w1_ok),
        Claim("JSD(P_0, P_theta) = log 2 for theta != 0",
              f"{min(jsds):.6f} to {max(jsds):.6f} (log 2 = {math.log(2):.6f}); {JSD_CONVENTION}",
              all(abs(j - math.log(2)) < 1e-9 for j in jsds)),
        Claim("KL(P_0 || P_theta) = KL(P_theta || P_0) = +inf for theta != 0",
              f"+inf at {sum(math.isinf(r['kl_0_theta']) and math.isinf(r['kl_theta_0']) for r in off)} "
              f"of {len(off)} thetas",
              all(math.isinf(r["kl_0_theta"]) and math.isinf(r["kl_theta_0"]) for r in off)),
        Claim("TV(P_0, P_theta) = 1 for theta != 0",
              f"{min(r['tv'] for r in off):.6f} to {max(r['tv'] for r in off):.6f}",
              all(abs(r["tv"] - 1.0) < 1e-9 for r in off)),
        Claim("all are 0 at theta = 0",
              f"TV {zero['tv']:g}, KL {zero['kl_0_theta']:g} and {zero['kl_theta_0']:g}, JSD {zero['jsd']:g}; "
              f"W1 from samples {floor:.4f}, the two-sample floor (<= 2 / sqrt(n) = {2 / math.sqrt(samples):.4f})",
              zero["tv"] == zero["kl_0_theta"] == zero["kl_theta_0"] == zero["jsd"] == 0.0
              and floor <= 2 / math.sqrt(samples)),
    ]
    return Report("distances", "Arjovsky, Chintala & Bottou (2017), Example 1", claims,
                  {"jsd_convention": JSD_CONVENTION, "rows": rows, "w1_two_sample_floor": floor},
                  _figure(rows))


def _figure(rows):
    plt = pyplot()
    theta = np.array([r["theta"] for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(theta, [r["w1"] for r in rows], "o-", label="W1 from samples (POT)")
    axes[0].plot(theta, np.abs(theta), "k--", label="|theta|")
    axes[0].set_title("Earth-Mover distance")
    top = 1.6
    kl = [top if math.isinf(r["kl_0_theta"]) else r["kl_0_theta"] for r in rows]
    axes[1].plot(theta, kl, "v", color="gray", label=f"KL (drawn at {top} where +inf)")
    axes[1].plot(theta, [r["tv"] for r in rows], "s-", label="TV")
    axes[1].plot(theta, [r["jsd"] for r in rows], "o-", label="JSD")
    axes[1].axhline(math.log(2), color="k", ls=":", lw=1, label="log 2")
    axes[1].set_title("TV, KL and Jensen-Shannon")
    for ax in axes:
        ax.set_xlabel("theta")
        ax.legend()
    fig.suptitle("P_0 = (0, U[0,1]) against P_theta = (theta, U[0,1])")
    fig.tight_layout()
    return fig
