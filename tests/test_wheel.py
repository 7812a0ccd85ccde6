"""A wheel that works: ``pip wheel .`` packs every subpackage and the extension, and
the package installed from it, in a fresh virtual environment away from the source
tree, runs its commands (the rest of the suite runs against the editable install,
which cannot see a package missing from the wheel)."""
import glob
import os
import subprocess
import sys
import sysconfig
import zipfile

import pytest

import fastgan

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the wheel, the fresh environment's bin folder, a working folder outside the tree)."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("FASTGAN_FORCE_CUDA", "PYTHONPATH")}
    env.setdefault("MAX_JOBS", "2")  # the CPU extension only: CI compiles the .cu files in make
    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-build-isolation", "--no-deps", "--quiet",
                    "-w", str(tmp / "dist")], cwd=ROOT, env=env, check=True)
    (wheel,) = glob.glob(str(tmp / "dist" / "fastgan-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The dependencies (torch, numpy, ...) come from this environment's site-packages,
    # named in a .pth file: its own .pth files (the editable install's) are not read.
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(purelib, "dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                    "--no-deps", "--no-index", wheel], check=True, env=env)
    work = tmp / "elsewhere"
    work.mkdir()
    return wheel, venv / "bin", work


def run(installed, *args, timeout=300):
    _, bin_dir, work = installed
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRITON_INTERPRET")}
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=work, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_the_wheel_holds_every_subpackage_and_the_extension(installed):
    names = zipfile.ZipFile(installed[0]).namelist()
    for package in ("fastgan", "fastgan/ops", "fastgan/benchmarks", "fastgan/reproduce", "fastgan/kernels"):
        assert f"{package}/__init__.py" in names, package
    assert any(n.startswith("fastgan/_C") and n.endswith(".so") for n in names)


def test_the_installed_package_is_the_wheel_not_the_source_tree(installed):
    result = run(installed, "python", "-c", "import fastgan, fastgan._C; print(fastgan.__file__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(installed[1].parent)), result.stdout


def test_version(installed):
    result = run(installed, "fastgan", "--version")
    assert result.returncode == 0 and result.stdout.strip() == f"fastgan {fastgan.__version__}"


def test_doctor(installed):
    result = run(installed, "fastgan", "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cpu" in result.stdout and "FAILED" not in result.stdout + result.stderr


def test_reproduce_distances_quick(installed):
    result = run(installed, "fastgan", "reproduce", "distances", "--quick", "--out", "out")
    assert result.returncode == 0, result.stderr
    assert "claims hold" in result.stdout
    assert os.path.exists(installed[2] / "out" / "distances.json")


def test_bench_help(installed):
    result = run(installed, "fastgan", "bench", "--help")
    assert result.returncode == 0, result.stderr
    assert "--suite" in result.stdout and "critic-step" in result.stdout
