"""`fastgan reproduce`: every experiment in --quick mode writes its figure and JSON and
reports each claim; the pieces with closed forms are checked against them."""
import json
import math

import numpy as np
import pytest
import torch

from fastgan import reproduce
from fastgan.cli import main
from fastgan.reproduce import clipping_vs_gp, density_ratio, distances
from fastgan.reproduce.report import Claim, Report, write


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """`fastgan reproduce all --quick` once, its output folder and what it printed."""
    out = tmp_path_factory.mktemp("reproduce")
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["reproduce", "all", "--quick", "--out", str(out)]) == 0
    return out, printed.getvalue()


@pytest.mark.parametrize("name", list(reproduce.EXPERIMENTS))
def test_each_experiment_writes_its_figure_json_and_claims(quick_run, name):
    out, printed = quick_run
    body = json.loads((out / f"{name}.json").read_text())
    assert body["experiment"] == name and body["settings"]["quick"] is True
    assert body["settings"] == {**body["settings"], **reproduce.settings(name, quick=True)}
    assert body["claims"] and body["data"]
    section = printed.split(f"== {name} ")[1].split("\n==")[0]
    for claim in body["claims"]:
        assert isinstance(claim["holds"], bool) and claim["measured"]
        verdict = "holds" if claim["holds"] else "does not hold"
        assert f"{claim['claim']}: {claim['measured']} -> {verdict}" in section
    png = (out / f"{name}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_the_summary_counts_every_claim(quick_run):
    out, printed = quick_run
    claims = [c for name in reproduce.EXPERIMENTS for c in json.loads((out / f"{name}.json").read_text())["claims"]]
    assert f"{sum(c['holds'] for c in claims)} of {len(claims)} claims hold" in printed
    table = (out / "claims.md").read_text().splitlines()
    assert table[0] == "Command: `fastgan reproduce all --quick --seed 0`"
    rows = [line for line in table if line.startswith("| ") and not line.startswith("| experiment")]
    assert len(rows) == len(claims)
    assert sum(row.endswith("| holds |") for row in rows) == sum(c["holds"] for c in claims)


def test_unknown_experiment_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "no-such-experiment"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown experiment"):
        reproduce.run("no-such-experiment", True, "unused")


def test_divergences_of_atomic_measures_match_hand_computation():
    p, q = {"a": 0.5, "b": 0.5}, {"a": 0.5, "c": 0.5}
    d = distances.divergences(p, q)
    assert d["tv"] == pytest.approx(0.5)
    assert math.isinf(d["kl_0_theta"]) and math.isinf(d["kl_theta_0"])
    assert d["jsd"] == pytest.approx(0.5 * math.log(2))  # M = (.5, .25, .25)
    same = distances.divergences(p, dict(p))
    assert same == {"tv": 0.0, "kl_0_theta": 0.0, "kl_theta_0": 0.0, "jsd": 0.0}
    r = {"a": 0.25, "b": 0.75}
    assert distances.divergences(p, r)["kl_0_theta"] == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3))


def test_segments_at_different_theta_are_disjoint_and_equal_at_zero():
    d = distances.divergences(distances.segment_atoms(0.0, 50), distances.segment_atoms(1e-6, 50))
    assert d["tv"] == pytest.approx(1.0) and d["jsd"] == pytest.approx(math.log(2))
    assert distances.divergences(distances.segment_atoms(0.0, 50), distances.segment_atoms(0.0, 50))["jsd"] == 0.0


def test_density_ratio_closed_form_matches_monte_carlo():
    torch.manual_seed(0)
    x = density_ratio.sample_q(400_000)
    mc = float(density_ratio.log_ratio(x).mean())
    assert mc == pytest.approx(density_ratio.kl_closed_form(), rel=1e-2)
    assert density_ratio.kl_closed_form() == pytest.approx(0.5 * (2 * 0.49 + 1.25 - 2) - 2 * math.log(0.7))


def test_quadratic_r2_is_one_on_quadratics_and_less_on_ripples():
    axis = np.linspace(-3, 3, 30)
    xs, ys = np.meshgrid(axis, axis)
    assert clipping_vs_gp.quadratic_r2(1 + xs - 2 * ys + 0.5 * xs * ys + ys**2, xs, ys) == pytest.approx(1.0)
    assert clipping_vs_gp.quadratic_r2(np.sin(3 * xs) * np.cos(3 * ys), xs, ys) < 0.1


def test_report_json_writes_infinities_as_strings(tmp_path):
    from fastgan.plots import pyplot

    fig = pyplot().figure()
    report = Report("x", "src", [Claim("c", "inf", True)], {"kl": math.inf, "arr": np.array([1.0, -math.inf])}, fig)
    json_path, png_path = write(report, str(tmp_path), {"quick": True})
    body = json.loads(open(json_path).read())
    assert body["data"] == {"kl": "inf", "arr": [1.0, "-inf"]}
    assert body["claims"] == [{"claim": "c", "measured": "inf", "holds": True}]
    assert Claim("c", "1.0", False).line() == "c: 1.0 -> does not hold"
