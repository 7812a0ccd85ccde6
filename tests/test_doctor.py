"""fastgan doctor and the self-check behind `auto` on a GPU."""
import os
import subprocess
import sys
import warnings

import pytest
import torch

import fastgan
from fastgan import backends, cli, verify


def test_doctor_checks_every_backend_here():
    checks = {c.backend: c for c in fastgan.doctor()}
    assert set(checks) == {"eager", "cpu", "cuda", "triton"}
    for name in ("eager", "cpu"):
        assert checks[name].available and checks[name].passed, checks[name]
        assert checks[name].device == "cpu"
        assert "float64 max rel err" in checks[name].detail
    if not torch.cuda.is_available():
        assert not checks["cuda"].available and checks["cuda"].passed is None
        assert "GPU" in checks["cuda"].detail or "CUDA" in checks["cuda"].detail
        # conftest runs Triton through its interpreter: checked on CPU tensors.
        assert checks["triton"].passed and checks["triton"].device == "cpu", checks["triton"]


def run_doctor(*flags):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-m", "fastgan", "doctor", *flags], capture_output=True,
                         text=True, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    return {line.split()[0]: line for line in out.stdout.splitlines()[1:]}, out.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the report of a machine without GPU")
def test_doctor_cli_reports_no_gpu_and_exits_zero():
    lines, text = run_doctor()
    assert "no GPU is present" in text.splitlines()[0]
    assert lines["cpu"].split()[1] == "ok"
    assert lines["cuda"].split()[1] == "unavailable:"
    assert lines["triton"].split()[1] == "unavailable:" and "TRITON_INTERPRET" in lines["triton"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the report of a machine without GPU")
def test_doctor_interpret_checks_triton_on_cpu():
    lines, _ = run_doctor("--interpret")
    assert lines["triton"].split()[1:4] == ["ok", "on", "cpu:"], lines["triton"]
    assert "float64 max rel err" in lines["triton"]


def test_doctor_fails_when_a_backend_is_wrong(monkeypatch, capsys):
    # Break the C++ step's gradients: the check must catch it and the command exit 1.
    from fastgan.ops import graph

    real_step_function = graph._step_function

    def broken(backend, *args):
        step = real_step_function(backend, *args)
        if backend != "cpu":
            return step

        def wrong(*a):
            loss, w, pen, grads = step(*a)
            return loss, w, pen, [g * 1.001 for g in grads]
        return wrong

    monkeypatch.setattr(graph, "_step_function", broken)
    check = verify.self_check("cpu", "cpu")
    assert check.available and check.passed is False
    assert "FAILED" in check.detail
    assert cli.main(["doctor"]) == 1
    assert "FAILED: cpu" in capsys.readouterr().err


def fake_gpu(monkeypatch, passes):
    """Pretend a CUDA backend is built and a GPU present, with a self-check verdict."""
    calls = []
    monkeypatch.setattr(backends, "unavailable_reason", lambda name: None)
    monkeypatch.setattr(backends, "_warned_fallbacks", set())
    monkeypatch.setattr(verify, "_verified", lambda name, device: calls.append((name, device)) or passes)
    return calls


def test_auto_on_gpu_uses_a_backend_that_passed(monkeypatch):
    calls = fake_gpu(monkeypatch, passes=True)
    assert backends.resolve(torch.device("cuda", 0)) == "cuda"
    assert calls == [("cuda", "cuda:0")]


def test_auto_on_gpu_tries_triton_when_cuda_fails(monkeypatch):
    fake_gpu(monkeypatch, passes=True)
    monkeypatch.setattr(verify, "_verified", lambda name, device: name == "triton")
    assert backends.resolve(torch.device("cuda", 0)) == "triton"


def test_auto_on_gpu_falls_back_when_the_check_fails(monkeypatch):
    fake_gpu(monkeypatch, passes=False)
    with pytest.warns(RuntimeWarning, match="cuda: it failed its self-check.*triton: it failed"):
        assert backends.resolve(torch.device("cuda", 0)) == "eager"


def test_verify_zero_skips_the_check(monkeypatch):
    calls = fake_gpu(monkeypatch, passes=False)
    monkeypatch.setenv("FASTGAN_VERIFY", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backends.resolve(torch.device("cuda", 0)) == "cuda"
    assert calls == []


def test_verification_is_cached_per_process(monkeypatch):
    verify._verified.cache_clear()
    runs = []
    real = verify.self_check
    monkeypatch.setattr(verify, "self_check", lambda b, d: runs.append(1) or real(b, d))
    assert verify.verified("cpu", torch.device("cpu"))
    assert verify.verified("cpu", torch.device("cpu"))
    assert runs == [1]
    verify._verified.cache_clear()


def test_gpu_check_without_a_gpu_runs_the_doctor_and_says_so(tmp_path):
    """`make gpu-check` on this CPU machine (its build stage skipped here: the suite's
    set-up built the extension): the doctor runs, the missing GPU is said, exit 0."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "GPU_CHECK_BUILD": "0", "GPU_CHECK_OUT": str(tmp_path), "PYTHON": sys.executable}
    env.pop("TRITON_INTERPRET", None)
    result = subprocess.run(["bash", os.path.join(root, "bench", "gpu_check.sh")], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no GPU is present" in result.stdout
    summary = (tmp_path / "summary.txt").read_text()
    assert "doctor: exit 0" in summary and "machine: exit 0" in summary
    assert "cpu     ok" in (tmp_path / "doctor.txt").read_text()


def _wheel(folder, name: str) -> None:
    """A minimal wheel of a module ``name`` holding ``VALUE = 7``."""
    import zipfile

    info = f"{name}-1.0.dist-info"
    files = {f"{name}/__init__.py": "VALUE = 7\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(folder / f"{name}-1.0-py3-none-any.whl", "w") as z:
        for path, text in files.items():
            z.writestr(path, text)


def test_gpu_check_installs_the_wheels_of_missing_packages_and_names_the_rest(tmp_path):
    """The GPU machine's image lacks packages the tests import: gpu-check installs those
    it has wheels for (`make gpu-wheels`) into the wheels' site folder and names the
    others in summary.txt."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "fastgan_probe_present")
    env = {**os.environ, "GPU_CHECK_BUILD": "0", "GPU_CHECK_OUT": str(tmp_path / "out"), "PYTHON": sys.executable,
           "GPU_CHECK_WHEELS": str(wheels),
           "GPU_CHECK_OPTIONAL": "fastgan_probe_present:fastgan_probe_present fastgan_probe_absent:fastgan_probe_absent"}
    env.pop("TRITON_INTERPRET", None)
    result = subprocess.run(["bash", os.path.join(root, "bench", "gpu_check.sh")], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "wheels: exit 0" in summary and "doctor: exit 0" in summary
    assert "missing packages: fastgan_probe_absent;" in summary and "fastgan_probe_present" not in summary
    assert (wheels / "site" / "fastgan_probe_present" / "__init__.py").read_text() == "VALUE = 7\n"


def test_a_test_that_needs_a_missing_package_is_skipped_only_where_gpu_check_says_so(tmp_path):
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    (tmp_path / "test_needs.py").write_text("def test_needs():\n    import fastgan_probe_absent  # noqa: F401\n")
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "conftest", "-p", "no:cacheprovider",
               str(tmp_path / "test_needs.py")]
    env = {**os.environ, "PYTHONPATH": here + os.pathsep + os.environ.get("PYTHONPATH", "")}
    told = subprocess.run(command, env={**env, "FASTGAN_TEST_MISSING": "fastgan_probe_absent"}, capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert told.returncode == 0 and "1 skipped" in told.stdout, told.stdout
    assert "needs fastgan_probe_absent, which this machine lacks" in told.stdout
    env.pop("FASTGAN_TEST_MISSING", None)
    untold = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert untold.returncode == 1 and "1 failed" in untold.stdout, untold.stdout
