"""Bad input gets an error that names the argument."""
import pytest
import torch

import fastgan
from fastgan.ops import critic_loss
from fastgan.ops.critic import mlp_spec

from conftest import make_critic


@pytest.fixture
def critic():
    return make_critic(3, (6, 5), "lrelu", dtype=torch.float32, seed=0)


def batches(B=4, d=3, dtype=torch.float32):
    return torch.randn(B, d, dtype=dtype), torch.randn(B, d, dtype=dtype)


def test_batch_sizes_differ(backend, critic):
    real, _ = batches(4)
    _, fake = batches(5)
    with pytest.raises(ValueError, match="same batch size"):
        critic.wgan_gp_loss(real, fake)


@pytest.mark.parametrize("which", ["real", "fake"])
def test_feature_size_wrong(backend, critic, which):
    real, fake = batches()
    bad = torch.randn(4, 7)
    with pytest.raises(ValueError, match=rf"{which} must have shape \(batch, 3\)"):
        critic.wgan_gp_loss(bad if which == "real" else real, bad if which == "fake" else fake)


def test_forward_feature_size_wrong(backend, critic):
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\)"):
        critic(torch.randn(4, 2))


def test_dtype_mismatch_with_parameters(backend, critic):
    real, fake = batches(dtype=torch.float64)
    with pytest.raises(TypeError, match="parameter 0 has dtype torch.float32 but real has dtype torch.float64"):
        critic.wgan_gp_loss(real, fake)


def test_dtype_mismatch_between_batches(backend, critic):
    real, _ = batches()
    fake = torch.randn(4, 3, dtype=torch.float64)
    with pytest.raises(TypeError, match="fake has dtype torch.float64 but real"):
        critic.wgan_gp_loss(real, fake)


def test_unsupported_dtype(backend, critic):
    real, fake = batches(dtype=torch.float16)
    with pytest.raises(TypeError, match="real has dtype torch.float16"):
        critic.wgan_gp_loss(real, fake)
    with pytest.raises(TypeError, match="x has dtype torch.int64"):
        critic(torch.ones(2, 3, dtype=torch.int64))


def test_device_mismatch_is_reported(backend, critic):
    real, fake = batches()
    meta = torch.empty(4, 3, device="meta")
    with pytest.raises(ValueError, match="fake is on meta but real is on cpu"):
        critic_loss(real, meta, list(critic.parameters()))


@pytest.mark.parametrize("which", ["real", "fake"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_inputs(backend, critic, which, value):
    real, fake = batches()
    (real if which == "real" else fake)[1, 2] = value
    with pytest.raises(ValueError, match=f"{which} contains NaN or infinite values"):
        critic.wgan_gp_loss(real, fake)


@pytest.mark.parametrize("which", ["real", "fake"])
def test_inputs_requiring_grad_in_critic_step(backend, critic, which):
    real, fake = batches()
    (real if which == "real" else fake).requires_grad_(True)
    with pytest.raises(ValueError, match=f"{which} requires grad, but this is the critic step.*detach"):
        critic.wgan_gp_loss(real, fake)
    with pytest.raises(ValueError, match="critic step"):
        critic.wgan_loss(real, fake)


@pytest.mark.parametrize("eps,match", [
    (torch.rand(5), r"eps must hold one weight per sample, shape \(4,\) or \(4, 1, \.\.\.\), got \(5,\)"),
    (torch.rand(4, 2), r"eps must hold one weight per sample"),
    (torch.rand(1, 4), r"eps must hold one weight per sample"),
    (torch.tensor([0.1, float("nan"), 0.3, 0.4]), "eps contains NaN"),
    (torch.ones(4, dtype=torch.int64), "eps must be a floating tensor"),
])
def test_bad_eps(backend, critic, eps, match):
    real, fake = batches()
    with pytest.raises((ValueError, TypeError), match=match):
        critic.wgan_gp_loss(real, fake, eps=eps)


@pytest.mark.parametrize("kw,match", [
    ({"lam": -1.0}, "lam must be >= 0"),
    ({"lam": float("nan")}, "lam must be finite"),
    ({"center": float("inf")}, "center must be finite"),
])
def test_bad_penalty_settings(backend, critic, kw, match):
    real, fake = batches()
    with pytest.raises(ValueError, match=match):
        critic.wgan_gp_loss(real, fake, **kw)


def test_empty_batch(backend, critic):
    real, fake = batches(B=0)
    with pytest.raises(ValueError, match="empty"):
        critic.wgan_gp_loss(real, fake)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        fastgan.FusedMLPCritic(2, (4,), "gelu")
    with pytest.raises(ValueError, match="at least one hidden layer"):
        fastgan.FusedMLPCritic(2, ())
    with pytest.raises(ValueError, match="negative_slope must be >= 0"):
        fastgan.FusedMLPCritic(2, (4,), "lrelu", -0.1)


def test_from_sequential_rejects_other_shapes():
    from torch import nn
    with pytest.raises(ValueError, match="Linear\\(h, 1\\)"):
        fastgan.FusedMLPCritic.from_sequential(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="one activation throughout"):
        fastgan.FusedMLPCritic.from_sequential(
            nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 1)))
    with pytest.raises(ValueError, match="supports ReLU"):
        fastgan.FusedMLPCritic.from_sequential(nn.Sequential(nn.Linear(2, 3), nn.GELU(), nn.Linear(3, 1)))


def test_bad_param_list(backend):
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="at least one hidden layer"):
        critic_loss(x, x, [torch.randn(1, 2), torch.randn(1)])
    with pytest.raises(ValueError, match=r"parameter 2 \(a weight\) must be \(1, 4\), got \(1, 5\)"):
        critic_loss(x, x, [torch.randn(4, 2), torch.randn(4), torch.randn(1, 5), torch.randn(1)])


def test_extension_checks_shapes_itself():
    # The C++ op validates too, for callers that go around the Python layer.
    critic = make_critic(3, (6, 5), "lrelu", dtype=torch.float32)
    params = [p.detach() for p in critic.parameters()]
    spec = mlp_spec(params, "lrelu", 0.2)
    params[2] = torch.randn(5, 4)
    real, fake = batches(2)
    with pytest.raises(RuntimeError, match=r"graph node 2 \(linear\) expects \(rows, 4\) input"):
        torch.ops.fastgan.graph_step(real, fake, torch.rand(2), None, params, spec.ints, spec.floats, 1, 10.0, 0.0,
                                     1.0, False, True, False)
