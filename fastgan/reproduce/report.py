"""What every experiment of ``fastgan reproduce`` hands back: its claims (each with the
measured value and whether it holds), the numbers behind its figure, and the figure,
written as ``NAME.json`` and ``NAME.png``."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field


@dataclass
class Claim:
    """One claim of a paper: its statement, what this run measured, and whether the
    measurement meets the test stated beside it (decided before the run)."""

    text: str
    measured: str
    holds: bool

    def line(self) -> str:
        return f"{self.text}: {self.measured} -> {'holds' if self.holds else 'does not hold'}"


@dataclass
class Report:
    """An experiment's outcome: ``claims``, ``data`` (plain numbers and lists), and the
    matplotlib ``figure`` to save."""

    name: str
    source: str
    claims: list[Claim]
    data: dict = field(default_factory=dict)
    figure: object = None


def _plain(value):
    """JSON-safe numbers: infinities and NaN as the strings "inf", "-inf" and "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy and torch scalars and arrays
        return _plain(value.tolist())
    return value


def write(report: Report, out_dir: str, settings: dict) -> tuple[str, str]:
    """``out_dir/NAME.json`` (settings, claims, data) and ``out_dir/NAME.png``."""
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, f"{report.name}.json")
    png_path = os.path.join(out_dir, f"{report.name}.png")
    body = {"experiment": report.name, "source": report.source, "settings": settings,
            "claims": [{"claim": c.text, "measured": c.measured, "holds": c.holds} for c in report.claims],
            "data": report.data}
    with open(json_path, "w") as f:
        json.dump(_plain(body), f, indent=1)
    from fastgan.plots import pyplot

    report.figure.savefig(png_path, dpi=110, bbox_inches="tight")
    pyplot().close(report.figure)
    return json_path, png_path


def markdown_table(reports: list[Report], command: str, minutes: float | None = None) -> str:
    """The claims of ``reports`` as a markdown table (experiment, claim, measured,
    verdict), under the command that produced them (and its wall time)."""
    lines = [f"Command: `{command}`", *([f"Wall time: {minutes:.1f} minutes"] if minutes is not None else []),
             "", "| experiment | claim | measured | verdict |", "|---|---|---|---|"]
    for report in reports:
        for claim in report.claims:
            cells = (report.name, claim.text, claim.measured, "holds" if claim.holds else "**does not hold**")
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
