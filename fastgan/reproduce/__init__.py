"""``fastgan reproduce``: the seed papers' central claims, each checked by one small
experiment that writes a figure (``NAME.png``), the numbers behind it (``NAME.json``)
and one line per claim: the claim, the measured value, and whether it holds.

The tests each claim is held to are fixed in the experiments' code, before any run;
no experiment is tuned until a claim holds. ``--quick`` runs a smaller version (fewer
steps, samples and grid points) whose numbers are a smoke test, not a reproduction.
"""
from __future__ import annotations

import time

from fastgan.reproduce import (clipping_vs_gp, density_ratio, distances, gan_gradients, parallel_lines,
                               wgan_correlation)
from fastgan.reproduce.report import Claim, Report, markdown_table, write

#: name -> (function(seed, **settings) -> Report, {"full": settings, "quick": settings})
EXPERIMENTS = {
    "distances": (distances.run, distances.SETTINGS),
    "vanishing-gradients": (gan_gradients.vanishing_gradients, gan_gradients.PROBE_SETTINGS),
    "unstable-updates": (gan_gradients.unstable_updates, gan_gradients.PROBE_SETTINGS),
    "instance-noise": (gan_gradients.instance_noise, gan_gradients.NOISE_SETTINGS),
    "wgan-correlation": (wgan_correlation.run, wgan_correlation.SETTINGS),
    "clipping-vs-gp": (clipping_vs_gp.run, clipping_vs_gp.SETTINGS),
    "parallel-lines-training": (parallel_lines.run, parallel_lines.SETTINGS),
    "density-ratio": (density_ratio.run, density_ratio.SETTINGS),
    # v2: protocols closer to the papers' for the claims v1 could not confirm (v1 is kept as it was)
    "vanishing-gradients-32": (gan_gradients.vanishing_gradients_32, gan_gradients.VANISHING_32_SETTINGS),
    "instance-noise-lines": (parallel_lines.instance_noise_lines, parallel_lines.NOISE_SETTINGS),
    "clipping-vs-gp-v2": (clipping_vs_gp.density_correlation, clipping_vs_gp.DENSITY_SETTINGS),
    "parallel-lines-training-v2": (parallel_lines.gradient_decay, parallel_lines.GRADIENT_SETTINGS),
    "wgan-correlation-v2": (wgan_correlation.run, wgan_correlation.V2_SETTINGS),
}

__all__ = ["EXPERIMENTS", "Claim", "Report", "markdown_table", "run", "run_all", "settings"]


def settings(name: str, quick: bool) -> dict:
    """The settings ``name`` runs with (its full or its quick size)."""
    return dict(EXPERIMENTS[name][1]["quick" if quick else "full"])


def run_all(names: list[str], quick: bool, out_dir: str, seed: int = 0, log=print) -> list[Report]:
    """:func:`run` for each of ``names`` in turn; the experiments that train the same
    runs share them (:func:`wgan_correlation.sharing`), with the numbers they have alone."""
    shared = [settings(name, quick) for name in names if name in ("wgan-correlation", "wgan-correlation-v2")]
    with wgan_correlation.sharing(shared):
        return [run(name, quick, out_dir, seed, log) for name in names]


def run(name: str, quick: bool, out_dir: str, seed: int = 0, log=print) -> Report:
    """Runs experiment ``name``, writes its JSON and PNG to ``out_dir``, and logs one
    line per claim."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}: expected one of {', '.join(EXPERIMENTS)}")
    chosen = settings(name, quick)
    start = time.perf_counter()
    report = EXPERIMENTS[name][0](seed, **chosen)
    seconds = time.perf_counter() - start
    json_path, png_path = write(report, out_dir, {"quick": quick, "seed": seed, "seconds": seconds, **chosen})
    log(f"== {name} ({report.source}){' --quick' if quick else ''}, {seconds:.0f} s")
    for claim in report.claims:
        log("  " + claim.line())
    log(f"  wrote {png_path} and {json_path}")
    return report
