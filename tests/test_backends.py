"""Backend selection: set_backend, use_backend, FASTGAN_BACKEND, available_backends."""
import subprocess
import sys

import pytest
import torch

import fastgan
from fastgan import backends


def test_default_is_auto(monkeypatch):
    monkeypatch.delenv("FASTGAN_BACKEND", raising=False)
    assert fastgan.get_backend() == "auto"


def test_available_backends_here():
    available = fastgan.available_backends()
    assert available[:2] == ["eager", "cpu"]
    assert "auto" not in available


def test_use_backend_nests_and_restores():
    with fastgan.use_backend("eager"):
        assert fastgan.get_backend() == "eager"
        with fastgan.use_backend("cpu"):
            assert backends.resolve(torch.device("cpu")) == "cpu"
        assert fastgan.get_backend() == "eager"
    assert fastgan.get_backend() == "auto"


def test_set_backend_changes_what_runs():
    calls = []
    original = fastgan.reference.chain_loss

    def spy(*args, **kw):
        calls.append(1)
        return original(*args, **kw)

    critic = fastgan.FusedMLPCritic(2, (4,))
    real, fake = torch.randn(3, 2), torch.randn(3, 2)
    fastgan.reference.chain_loss = spy
    try:
        with fastgan.use_backend("cpu"):
            critic.wgan_gp_loss(real, fake)
        assert calls == []
        with fastgan.use_backend("eager"):
            critic.wgan_gp_loss(real, fake)
        assert calls == [1]
    finally:
        fastgan.reference.chain_loss = original


def test_set_backend_persists_in_context():
    def run():
        fastgan.set_backend("eager")
        return fastgan.get_backend()

    import contextvars
    assert contextvars.copy_context().run(run) == "eager"
    assert fastgan.get_backend() == "auto"


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        fastgan.set_backend("fast")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_unavailable_says_why():
    with pytest.raises(fastgan.BackendUnavailableError, match="backend 'cuda' is unavailable: .*(GPU|CUDA)"):
        fastgan.set_backend("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_triton_without_gpu_or_interpreter_says_why():
    code = """
import fastgan
assert 'triton' not in fastgan.available_backends()
try:
    fastgan.set_backend('triton')
except fastgan.BackendUnavailableError as e:
    print(e)
"""
    out = run_python(code, TRITON_INTERPRET="0")
    assert out.returncode == 0, out.stderr
    assert "backend 'triton' is unavailable: no CUDA GPU" in out.stdout
    assert "TRITON_INTERPRET=1" in out.stdout


def test_triton_runs_cpu_tensors_only_when_interpreting():
    assert backends.interpreting()  # conftest switches the interpreter on
    with fastgan.use_backend("triton"):
        assert backends.resolve(torch.device("cpu")) == "triton"
        with pytest.raises(fastgan.BackendUnavailableError, match="'triton' runs on CUDA tensors"):
            backends.resolve(torch.device("meta"))


def test_cpu_backend_refuses_other_devices():
    with fastgan.use_backend("cpu"):
        with pytest.raises(fastgan.BackendUnavailableError, match="runs on CPU tensors, got meta"):
            backends.resolve(torch.device("meta"))


def run_python(code, **env):
    import os
    full_env = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env)


def test_environment_variable_selects_backend():
    out = run_python("import fastgan; print(fastgan.get_backend())", FASTGAN_BACKEND="eager")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "eager"


def test_bad_environment_variable_is_named():
    out = run_python("import fastgan; fastgan.get_backend()", FASTGAN_BACKEND="gpu")
    assert out.returncode != 0
    assert "FASTGAN_BACKEND" in out.stderr and "unknown backend 'gpu'" in out.stderr


def test_auto_falls_back_with_one_warning_when_extension_missing():
    # Simulate a machine where fastgan._C failed to build.
    code = """
import sys, warnings
sys.modules['fastgan._C'] = None
import torch, fastgan
assert fastgan.available_backends() == ['eager'], fastgan.available_backends()
critic = fastgan.FusedMLPCritic(2, (4,))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    for _ in range(3):
        critic.wgan_gp_loss(torch.randn(3, 2), torch.randn(3, 2)).loss.backward()
msgs = [str(w.message) for w in caught if 'falls back' in str(w.message)]
assert len(msgs) == 1, msgs
assert 'not built' in msgs[0], msgs
try:
    fastgan.set_backend('cpu')
except fastgan.BackendUnavailableError as e:
    print('refused:', e)
"""
    out = run_python(code, TRITON_INTERPRET="0")
    assert out.returncode == 0, out.stderr
    assert "refused: fastgan backend 'cpu' is unavailable: the C++ extension fastgan._C is not built" in out.stdout


def test_compiled_code_follows_the_selection():
    """torch.compile reads the latest selection (a plain global it guards: a change
    recompiles), and a block's selection ends with the block."""
    import torch._dynamo

    torch._dynamo.reset()
    compiled = torch.compile(lambda x: x + len(fastgan.get_backend()), fullgraph=True)
    zero = torch.zeros(())
    with fastgan.use_backend("eager"):
        assert compiled(zero) == len("eager")
        with fastgan.use_backend("cpu"):
            assert compiled(zero) == len("cpu")
        assert compiled(zero) == len("eager")
    assert compiled(zero) == len("auto")
    torch._dynamo.reset()
