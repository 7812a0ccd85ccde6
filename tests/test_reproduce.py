"""`fastgan reproduce`: every experiment in --quick mode writes its figure and JSON and
reports each claim; the pieces with closed forms are checked against them."""
import json
import math
import os

import numpy as np
import pytest
import torch

from fastgan import objectives, reproduce
from fastgan.cli import main
from fastgan.reproduce import clipping_vs_gp, density_ratio, distances, wgan_correlation
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
    minutes = float(table[1].removeprefix("Wall time: ").removesuffix(" minutes"))
    assert minutes >= 0 and f"claims hold ({minutes:.1f} minutes)" in printed
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


# ---------------------------------------------------------------- v2 experiments


def _body(quick_run, name):
    return json.loads((quick_run[0] / f"{name}.json").read_text())


def test_vanishing_gradients_32_records_every_stage_and_its_verdict_follows_from_them(quick_run):
    body = _body(quick_run, "vanishing-gradients-32")
    s = body["settings"]
    assert s["stages"] == reproduce.settings("vanishing-gradients-32", True)["stages"]
    for stage in s["stages"]:
        p = body["data"]["stages"][str(stage)]
        assert p["iteration"] == list(range(0, s["d_iters"] + 1, s["every"]))
        assert all(0.0 <= a <= 1.0 for a in p["accuracy"]) and all(n > 0 for n in p["grad_norm_mean"])
        tail = [n for it, n in zip(p["iteration"], p["grad_norm_mean"]) if it > s["d_iters"] - s["tail"]]
        assert body["data"]["tail_over_max"][str(stage)] == pytest.approx(
            sum(tail) / len(tail) / max(p["grad_norm_mean"]))
    accuracy, decay = body["claims"]
    assert accuracy["holds"] == all(body["data"]["stages"][str(t)]["accuracy"][-1] >= 0.99 for t in s["stages"])
    assert decay["holds"] == all(r <= 0.01 for r in body["data"]["tail_over_max"].values())


def test_instance_noise_lines_anneals_sigma_linearly_and_judges_the_theta_paths(quick_run):
    body = _body(quick_run, "instance-noise-lines")
    s, d = body["settings"], body["data"]
    assert d["sigma"] == pytest.approx([s["sigma"] * (1 - k / s["steps"]) for k in range(s["steps"])])
    for obj, path in d["theta_paths"].items():
        assert len(path) == s["steps"] + 1 and path[0] == 1.0
        assert len(d["theta_grads"][obj]) == s["steps"] and all(math.isfinite(g) for g in d["theta_grads"][obj])
    noisy, plain = body["claims"]
    assert noisy["holds"] == (abs(d["theta_paths"]["noisy-gan"][-1]) <= 0.1)
    assert plain["holds"] == (min(abs(t) for t in d["theta_paths"]["gan"]) >= 0.5)


def test_clipping_vs_gp_v2_correlates_the_stored_surfaces_with_the_stored_density(quick_run):
    from scipy import stats

    body = _body(quick_run, "clipping-vs-gp-v2")
    g, d = body["settings"]["grid"], body["data"]
    assert len(d["grid_axis"]) == g
    for name in clipping_vs_gp.DATASETS:
        density = np.array(d["density"][name])
        assert density.shape == (g, g) and (density > 0).all()
        for method in ("clip", "gp"):
            values = np.array(d["surfaces"][f"{name}/{method}"])
            assert values.shape == (g, g)
            rho = stats.spearmanr(values.ravel(), density.ravel())[0]
            assert d["spearman"][name][method] == pytest.approx(rho)
    assert body["claims"][0]["holds"] == all(d["spearman"][n]["gp"] > d["spearman"][n]["clip"]
                                             for n in clipping_vs_gp.DATASETS)


def test_parallel_lines_v2_traces_the_gradient_every_few_iterations(quick_run):
    body = _body(quick_run, "parallel-lines-training-v2")
    s, d = body["settings"], body["data"]
    assert [p["theta"] for p in d["probes"]] == s["thetas"]
    for p in d["probes"]:
        trace = p["trace"]
        assert trace["iteration"] == list(range(0, s["d_iters"] + 1, s["every"]))
        ratio = abs(trace["grad"][-1]) / abs(trace["grad"][trace["iteration"].index(s["early"])])
        assert d["end_over_early"][str(p["theta"])] == pytest.approx(ratio)
        assert p["grad"] == trace["grad"][-1]
    assert body["claims"][0]["holds"] == all(r <= 0.1 for r in d["end_over_early"].values())


def test_wgan_correlation_v2_reads_a_point_every_few_steps_and_correlates_them(quick_run):
    from scipy import stats

    body = _body(quick_run, "wgan-correlation-v2")
    s, d = body["settings"], body["data"]
    wgan_gp, wgan, gan = body["claims"]
    assert "retrained" in wgan_gp["claim"] and "retrained" in wgan["claim"]
    assert "retrained" not in gan["claim"]  # the GAN's loss is read as in v1, on the v2 schedule
    assert wgan_correlation.plan("nsgan", 10, 2, retrain=5) == wgan_correlation.Plan(10, 2, 0)
    assert wgan_correlation.plan("wgan", 10, 2, retrain=5) == wgan_correlation.Plan(10, 2, 5)
    for obj, t in d["traces"].items():
        assert t["step"] == list(range(s["every"], s["steps"] + 1, s["every"]))
        assert d["correlations"][obj]["pearson"] == pytest.approx(stats.pearsonr(t["estimate"], t["w1"])[0])
        assert d["correlations"][obj]["spearman"] == pytest.approx(stats.spearmanr(t["estimate"], t["w1"])[0])


def test_the_retrained_critic_is_a_trained_copy_and_leaves_the_run_as_it_was():
    from fastgan.reproduce.training import stepwise_trainer

    def run(read: bool):
        trainer = stepwise_trainer("wgan-gp", "8gaussians", 4, seed=3, width=16, batch=32)
        copies = []
        for _ in range(4):
            trainer.train_step()
            if read:
                before = [p.detach().clone() for p in trainer.critic.parameters()]
                copies.append(wgan_correlation.retrained_critic(trainer, 3, seed=11))
                assert all(torch.equal(a, p) for a, p in zip(before, trainer.critic.parameters()))
        return trainer, copies

    plain, _ = run(read=False)
    read, copies = run(read=True)
    for a, b in zip(plain.generator.parameters(), read.generator.parameters()):
        assert torch.equal(a, b)
    moved = [not torch.equal(c, p) for c, p in zip(copies[-1].parameters(), read.critic.parameters())]
    assert all(moved[:-1])  # every parameter but the output bias, which the WGAN loss does not see
    again = wgan_correlation.retrained_critic(read, 3, seed=11)  # its own seeded RNG: repeatable
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), copies[-1].parameters()))


def test_gaussian_kde_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    for d in (1, 2, 3):
        samples = rng.normal(size=(57, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)
        points = rng.normal(size=(23, d)) * 2
        expected = stats.gaussian_kde(samples.T, bw_method="scott")(points.T)
        np.testing.assert_allclose(clipping_vs_gp.gaussian_kde(samples, points), expected, rtol=1e-10)


def test_digits32_are_the_digits_upsampled_bilinearly():
    from fastgan import data

    small, big = data.load("digits"), data.load("digits32")
    assert big.shape == (1, 32, 32) and big.data.shape == (1797, 1, 32, 32) and big.is_image
    assert torch.equal(big.labels, small.labels)
    flat_small, flat_big = small.data.flatten(1), big.data.flatten(1)
    # each output pixel is a convex combination of input pixels: the range of every image stays inside its own
    assert (flat_big.min(1).values >= flat_small.min(1).values - 1e-6).all()
    assert (flat_big.max(1).values <= flat_small.max(1).values + 1e-6).all()
    assert big.data.min() >= -1 and big.data.max() <= 1
    # half-pixel centres at scale 4: output 4i + 2 sits 1/8 of the way from input i to i + 1 (1-D weights
    # 7/8, 1/8), output 0 and 1 clamp onto input 0, in each direction
    x = small.data[5, 0].double()
    for (oi, oj) in ((2, 6), (10, 0), (0, 0), (30, 17)):
        def weights(o):
            c = max((o + 0.5) / 4 - 0.5, 0.0)
            i = min(int(c), 7)
            return i, min(i + 1, 7), c - i
        i0, i1, a = weights(oi)
        j0, j1, b = weights(oj)
        expected = ((1 - a) * ((1 - b) * x[i0, j0] + b * x[i0, j1]) + a * ((1 - b) * x[i1, j0] + b * x[i1, j1]))
        assert float(big.data[5, 0, oi, oj]) == pytest.approx(float(expected), abs=1e-6)
    torch.testing.assert_close(data.upsample(torch.full((2, 3, 4, 4), 0.25), 9), torch.full((2, 3, 9, 9), 0.25))


def test_generator_loss_is_each_objectives_own():
    d = torch.tensor([-2.0, 0.5, 3.0])
    assert objectives.generator_loss("wgan-gp", d) == -d.mean()
    assert objectives.generator_loss("wgan", d) == -d.mean()
    assert objectives.generator_loss("gan", d) == pytest.approx(float(torch.log(1 - torch.sigmoid(d)).mean()))
    for name in ("nsgan", "noisy-gan", "nsgan-r1"):
        assert objectives.generator_loss(name, d) == pytest.approx(float(-torch.log(torch.sigmoid(d)).mean()))


def test_a_shared_run_reads_each_plan_as_it_reads_alone():
    # wgan-correlation's steps are the first part of wgan-correlation-v2's run: `reproduce all` trains once
    short = dict(steps=4, every=2, samples=32, width=16)
    long = dict(steps=6, every=3, samples=32, width=16, retrain=2)
    for objective in ("wgan-gp", "wgan", "nsgan"):
        alone = [wgan_correlation.trace(objective, 1, **s) for s in (short, long)]
        with wgan_correlation.sharing([short, long]):
            shared = [wgan_correlation.trace(objective, 1, **short)]
            assert len(wgan_correlation._READ) == 1  # the long plan's readings, made by the same run
            shared.append(wgan_correlation.trace(objective, 1, **long))
            assert not wgan_correlation._READ
        assert shared == alone
        assert [t["step"] for t in alone] == [[2, 4], [3, 6]]


def test_trainers_that_write_nothing_use_a_scratch_folder_of_their_own(tmp_path, monkeypatch):
    """The experiments' hand-stepped trainers never meet a run folder's refusal (a
    checkpoint in the temp folder, say) and leave nothing behind."""
    from fastgan import run_folder
    from fastgan.reproduce.training import stepwise_trainer

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    run_folder.scratch.cache_clear()
    (tmp_path / "checkpoint.pt").write_text("someone's")
    trainer = stepwise_trainer("wgan-gp", "8gaussians", 2, seed=0, width=8, batch=16)
    trainer.train_step()
    assert os.path.dirname(trainer.cfg.out) == str(tmp_path) and os.listdir(trainer.cfg.out) == []
    run_folder.scratch.cache_clear()
