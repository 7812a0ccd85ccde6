"""Parity of the fused WGAN(-GP) critic step with the eager autograd oracle.

Float64: loss, W estimate and every gradient to 1e-10 relative; float32: 1e-5.
"""

import pytest
import torch

from conftest import eager_step, fused_step, make_critic, max_grad_err, rel_err

ACTIVATIONS = ["relu", "lrelu", "tanh", "softplus", "silu"]
# Depths 1-4 with odd, non-power-of-two widths.
SHAPES = [(3, (7,)), (5, (13, 9)), (2, (17, 5, 11)), (6, (9, 7, 15, 3))]


def draw(B, d, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(B, d, generator=g, dtype=dtype)
    fake = torch.randn(B, d, generator=g, dtype=dtype) * 1.5 + 0.3
    eps = torch.rand(B, generator=g, dtype=dtype)
    return real, fake, eps


def check(critic, real, fake, eps, tol, **kw):
    seq = critic.to_sequential()
    ref = eager_step(seq, real, fake, eps, **kw)
    out, grads = fused_step(critic, real, fake, eps, **kw)
    assert rel_err(out.loss, ref.loss) < tol
    assert rel_err(out.wasserstein, ref.wasserstein) < tol
    assert rel_err(out.penalty, ref.penalty) < tol
    assert max_grad_err(grads, ref.grads) < tol


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("d0,hidden", SHAPES)
def test_float64_every_activation_and_depth(backend, activation, d0, hidden):
    critic = make_critic(d0, hidden, activation, seed=len(hidden))
    real, fake, eps = draw(11, d0, torch.float64, seed=d0)
    check(critic, real, fake, eps, 1e-10, lam=10.0)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("lam,center,one_sided", [(0.0, 1.0, False), (3.5, 0.7, False),
                                                  (10.0, 1.0, True), (2.0, 1.6, True)])
def test_float64_penalty_variants(backend, activation, lam, center, one_sided):
    critic = make_critic(4, (9, 6), activation, seed=3)
    real, fake, eps = draw(7, 4, torch.float64, seed=5)
    check(critic, real, fake, eps, 1e-10, lam=lam, center=center, one_sided=one_sided)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_float64_batch_of_one(backend, activation):
    critic = make_critic(3, (8, 5), activation, seed=1)
    real, fake, eps = draw(1, 3, torch.float64, seed=2)
    check(critic, real, fake, eps, 1e-10)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_float64_plain_wgan_loss(backend, activation):
    critic = make_critic(5, (10, 7, 3), activation, seed=4)
    real, fake, _ = draw(9, 5, torch.float64, seed=6)
    seq = critic.to_sequential()
    ref = eager_step(seq, real, fake, None)
    out, grads = fused_step(critic, real, fake, penalty=False)
    assert rel_err(out.loss, ref.loss) < 1e-10
    assert out.penalty.item() == 0.0
    assert max_grad_err(grads, ref.grads) < 1e-10


@pytest.mark.parametrize("one_sided", [False, True])
def test_float64_sample_with_zero_input_gradient(backend, one_sided):
    # Every first-layer unit has a positive weight on feature 0, so a sample far out on
    # -feature 0 switches all ReLUs off: its input gradient is exactly zero, and the
    # penalty's gradient there must be 0 (PyTorch's norm subgradient), not NaN.
    critic = make_critic(3, (6, 5), "relu", seed=7)
    with torch.no_grad():
        critic[0].weight[:, 0] = critic[0].weight[:, 0].abs() + 0.5
        critic[0].bias.zero_()
    real, fake, eps = draw(5, 3, torch.float64, seed=8)
    real[2] = fake[2] = torch.tensor([-100.0, 0.3, -0.2], dtype=torch.float64)
    check(critic, real, fake, eps, 1e-10, center=1.0, one_sided=one_sided)
    out, grads = fused_step(critic, real, fake, eps)
    assert all(torch.isfinite(g).all() for g in grads)


def test_float64_drawn_eps_uses_torch_rng(backend):
    critic = make_critic(4, (12, 9), "lrelu", seed=9)
    real, fake, _ = draw(10, 4, torch.float64, seed=10)
    torch.manual_seed(1234)
    out, grads = fused_step(critic, real, fake, None)
    torch.manual_seed(1234)
    eps = torch.rand(10, dtype=torch.float64)
    ref = eager_step(critic.to_sequential(), real, fake, eps)
    assert rel_err(out.loss, ref.loss) < 1e-10
    assert max_grad_err(grads, ref.grads) < 1e-10


def test_eps_of_shape_b_by_1(backend):
    critic = make_critic(3, (5,), "silu", seed=11)
    real, fake, eps = draw(6, 3, torch.float64, seed=12)
    a, grads_a = fused_step(critic, real, fake, eps)
    b, grads_b = fused_step(critic, real, fake, eps[:, None])
    assert a.loss.item() == b.loss.item()
    assert all(torch.equal(x, y) for x, y in zip(grads_a, grads_b))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_float32_matches_float64_oracle(backend, activation):
    # Float32 against the float64 oracle, at a realistic width.
    critic64 = make_critic(2, (64, 48, 33), activation, seed=13)
    real, fake, eps = draw(32, 2, torch.float64, seed=14)
    ref = eager_step(critic64.to_sequential(), real, fake, eps)
    critic32 = critic64.to(torch.float32)
    out, grads = fused_step(critic32, real.float(), fake.float(), eps.float())
    assert rel_err(out.loss, ref.loss) < 1e-5
    assert max_grad_err(grads[:-1], ref.grads[:-1]) < 1e-5
    # The output bias's gradient is 0 analytically (the real and fake seeds cancel).
    assert abs(grads[-1].item()) < 1e-6


def test_non_contiguous_inputs(backend):
    critic = make_critic(4, (7, 6), "tanh", seed=15)
    big = torch.randn(10, 8, dtype=torch.float64)
    real, fake = big[:, ::2], big.flip(0)[:, 1::2]
    assert not real.is_contiguous() and not fake.is_contiguous()
    eps = torch.rand(10, dtype=torch.float64)
    check(critic, real, fake, eps, 1e-10)


def test_backends_agree_on_a_toy_critic():
    import fastgan
    critic = make_critic(2, (31, 29, 27), "lrelu", seed=16)
    real, fake, eps = draw(16, 2, torch.float64, seed=17)
    results = {}
    for name in ("cpu", "eager"):
        with fastgan.use_backend(name):
            results[name] = fused_step(critic, real, fake, eps)
    (a, ga), (b, gb) = results["cpu"], results["eager"]
    assert rel_err(a.loss, b.loss) < 1e-12
    assert max_grad_err(ga, gb) < 1e-12


