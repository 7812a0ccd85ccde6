"""gradient_penalty, r1_penalty, dragan_penalty and the fused row op, against the eager
recipes, on every backend."""
import warnings

import pytest
import torch
from torch import nn

import fastgan
from fastgan import reference
from fastgan.ops import row_penalty

from conftest import max_grad_err, rel_err


def conv_critic(dtype=torch.float64, act=None, seed=0):
    torch.manual_seed(seed)
    act = act or nn.LeakyReLU(0.2)
    return nn.Sequential(nn.Conv2d(3, 5, 3, stride=2, padding=1), act,
                         nn.Conv2d(5, 7, 3, stride=2, padding=1), act,
                         nn.Flatten(), nn.Linear(7 * 2 * 2, 1)).to(dtype)


def batch(B=5, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, 3, 7, 7, generator=g, dtype=dtype),
            torch.randn(B, 3, 7, 7, generator=g, dtype=dtype) * 0.7 + 0.2,
            torch.rand(B, generator=g, dtype=dtype))


def eager_gp(critic, real, fake, eps, lam=10.0, center=1.0, one_sided=False):
    """The popular recipe, written out."""
    e = eps.view(-1, 1, 1, 1)
    x_hat = (e * real + (1 - e) * fake).requires_grad_(True)
    out = critic(x_hat)
    (g,) = torch.autograd.grad(out, x_hat, torch.ones_like(out), create_graph=True)
    n = g.flatten(1).norm(2, dim=1)
    d = (n - center).clamp(min=0) if one_sided else n - center
    return lam * (d ** 2).mean()


def grads_of(critic, value):
    """Parameter gradients of value; zeros where the value does not depend on a
    parameter (a penalty does not see the output layer's bias)."""
    critic.zero_grad(set_to_none=True)
    value.backward()
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in critic.parameters()]


@pytest.mark.parametrize("lam,center,one_sided", [(10.0, 1.0, False), (3.0, 0.6, True), (0.0, 1.0, False)])
def test_gradient_penalty_matches_eager_float64(backend, lam, center, one_sided):
    critic = conv_critic()
    real, fake, eps = batch()
    ref = eager_gp(critic, real, fake, eps, lam, center, one_sided)
    ref_grads = grads_of(critic, ref)
    out = fastgan.gradient_penalty(critic, real, fake, lam=lam, eps=eps, center=center, one_sided=one_sided)
    assert rel_err(out, ref) < 1e-10
    assert max_grad_err(grads_of(critic, out), ref_grads) < 1e-10


def test_gradient_penalty_float32_matches_float64_oracle(backend):
    critic = conv_critic()
    real, fake, eps = batch(B=6)
    ref = eager_gp(critic, real, fake, eps)
    ref_grads = grads_of(critic, ref)
    critic32 = critic.float()
    out = fastgan.gradient_penalty(critic32, real.float(), fake.float(), eps=eps.float())
    assert rel_err(out, ref) < 1e-5
    assert max_grad_err(grads_of(critic32, out), ref_grads) < 1e-5


def test_gradient_penalty_with_a_zero_gradient_sample(backend):
    # ReLU critic whose first conv sees only negative pre-activations for sample 0.
    critic = conv_critic(act=nn.ReLU())
    with torch.no_grad():
        critic[0].weight.abs_()
        critic[0].bias.zero_()
    real, fake, eps = batch()
    real[0] = fake[0] = -1.0
    ref = eager_gp(critic, real, fake, eps)
    ref_grads = grads_of(critic, ref)
    out = fastgan.gradient_penalty(critic, real, fake, eps=eps)
    grads = grads_of(critic, out)
    assert all(torch.isfinite(g).all() for g in grads)
    assert rel_err(out, ref) < 1e-10
    assert max_grad_err(grads, ref_grads) < 1e-10


def test_gradient_penalty_draws_eps_from_torch_rng(backend):
    critic = conv_critic()
    real, fake, _ = batch()
    torch.manual_seed(7)
    out = fastgan.gradient_penalty(critic, real, fake)
    torch.manual_seed(7)
    eps = torch.rand(real.shape[0], 1, 1, 1, dtype=real.dtype)
    assert rel_err(out, eager_gp(critic, real, fake, eps.view(-1))) < 1e-10


def test_gradient_penalty_on_the_fused_mlp_critic(backend):
    critic = fastgan.FusedMLPCritic(4, (9, 7), "tanh", dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    eps = torch.rand(6, generator=g, dtype=torch.float64)
    seq = critic.to_sequential()
    ref_grads = grads_of(seq, reference.eager_wgan_gp_loss(seq, real, fake, eps).loss)
    out = critic(fake).mean() - critic(real).mean() + fastgan.gradient_penalty(critic, real, fake, eps=eps)
    assert max_grad_err(grads_of(critic, out), ref_grads) < 1e-10


def test_r1_penalty_matches_eager(backend):
    critic = conv_critic()
    real, _, _ = batch()
    x = real.clone().requires_grad_(True)
    out = critic(x)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    ref = 0.5 * 4.0 * g.flatten(1).pow(2).sum(1).mean()
    ref_grads = grads_of(critic, ref)
    r1 = fastgan.r1_penalty(critic, real, gamma=4.0)
    assert rel_err(r1, ref) < 1e-10
    assert max_grad_err(grads_of(critic, r1), ref_grads) < 1e-10


def test_dragan_penalty_matches_eager(backend):
    critic = conv_critic()
    real, _, eps = batch()
    noise = torch.rand(real.shape, generator=torch.Generator().manual_seed(5), dtype=real.dtype)
    x_p = real + 0.5 * real.std() * noise
    ref = eager_gp(critic, x_p, real, eps)  # x^ = real + eps (x_p - real)
    ref_grads = grads_of(critic, ref)
    out = fastgan.dragan_penalty(critic, real, eps=eps, noise=noise)
    assert rel_err(out, ref) < 1e-10
    assert max_grad_err(grads_of(critic, out), ref_grads) < 1e-10


@pytest.mark.parametrize("one_sided", [False, True])
def test_row_penalty_gradcheck_and_gradgradcheck(backend, one_sided):
    g = torch.randn(4, 3, 5, dtype=torch.float64) * 0.5
    g[2] = 0.0  # a zero-norm sample
    g.requires_grad_(True)
    f = lambda g: row_penalty(g, 0.8, one_sided)  # noqa: E731
    assert torch.autograd.gradcheck(f, (g,))
    assert torch.autograd.gradgradcheck(lambda g: row_penalty(g + 0.1, 0.8, one_sided), (g,))


def test_row_penalty_zero_norm_gradient_is_exactly_zero(backend):
    g = torch.randn(3, 6, dtype=torch.float64)
    g[1] = 0.0
    g.requires_grad_(True)
    row_penalty(g).backward()
    assert torch.equal(g.grad[1], torch.zeros(6, dtype=torch.float64))
    assert torch.isfinite(g.grad).all()


@pytest.mark.parametrize("call,match", [
    (lambda c, r, f: fastgan.gradient_penalty(c, r, f[:3]), "same shape"),
    (lambda c, r, f: fastgan.gradient_penalty(c, r, f.float()), "fake has dtype torch.float32"),
    (lambda c, r, f: fastgan.gradient_penalty(c, r, f, eps=torch.rand(4, dtype=torch.float64)), "one weight per sample"),
    (lambda c, r, f: fastgan.gradient_penalty(c, r.fill_(float("nan")), f), "real contains NaN"),
    (lambda c, r, f: fastgan.gradient_penalty(c, r, f.index_fill_(0, torch.tensor([1]), float("inf"))),
     "fake contains NaN or infinite"),
    (lambda c, r, f: fastgan.r1_penalty(c, r.index_fill_(0, torch.tensor([2]), float("nan"))), "real contains NaN"),
    (lambda c, r, f: fastgan.dragan_penalty(c, r, noise=torch.full_like(r, float("nan"))), "noise contains NaN"),
    (lambda c, r, f: fastgan.gradient_penalty(c, r, f, lam=-1.0), "lam must be >= 0"),
    (lambda c, r, f: fastgan.r1_penalty(c, r[:0]), "non-empty batch"),
    (lambda c, r, f: fastgan.dragan_penalty(c, r, noise=f[:2]), "noise must be shaped like real"),
])
def test_bad_penalty_input(call, match):
    real, fake, _ = batch()
    with pytest.raises((ValueError, TypeError), match=match):
        call(conv_critic(), real, fake)


def test_huge_finite_batches_are_not_mistaken_for_nan():
    # their sum overflows to inf; the element-wise check then finds every value finite
    big = torch.full((4, 3, 5, 5), 3e38)
    assert torch.isinf(big.sum())
    penalty = fastgan.gradient_penalty(lambda x: (x * 0).sum(dim=(1, 2, 3)), big, big, lam=2.0)
    assert float(penalty) == 2.0


def bn_critic(features=3):
    return nn.Sequential(nn.Linear(features, 8), nn.BatchNorm1d(8), nn.LeakyReLU(0.2), nn.Linear(8, 1)).double()


@pytest.mark.parametrize("penalty", ["gp", "r1", "dragan"])
def test_a_batchnorm_critic_is_warned_once_per_critic(penalty):
    real, fake = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    call = {"gp": lambda c: fastgan.gradient_penalty(c, real, fake),
            "r1": lambda c: fastgan.r1_penalty(c, real),
            "dragan": lambda c: fastgan.dragan_penalty(c, real)}[penalty]
    critic = bn_critic()
    with pytest.warns(fastgan.penalties.BatchNormPenaltyWarning,
                      match=r"layer 1 \(BatchNorm1d\) mixes the samples of a batch.*Gulrajani et al. 2017") as said:
        call(critic)
        call(critic)
    assert len(said) == 1
    with pytest.warns(fastgan.penalties.BatchNormPenaltyWarning):  # another critic: said again
        call(bn_critic())
    with warnings.catch_warnings():  # per-sample norms say nothing; users can filter the warning
        warnings.simplefilter("error")
        call(nn.Sequential(nn.Linear(3, 8), nn.LayerNorm(8), nn.Linear(8, 1)).double())
        call(lambda x: x.sum(1))
        warnings.filterwarnings("ignore", category=fastgan.FastganWarning)
        call(bn_critic())


def test_sync_batchnorm_counts_and_groupnorm_does_not():
    with pytest.warns(fastgan.penalties.BatchNormPenaltyWarning, match=r"layer body.0 \(SyncBatchNorm\)"):
        fastgan.penalties.warn_batch_mixing(nn.ModuleDict({"body": nn.Sequential(nn.SyncBatchNorm(4))}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastgan.penalties.warn_batch_mixing(nn.Sequential(nn.GroupNorm(1, 4), nn.InstanceNorm2d(4)))


@pytest.mark.parametrize("objective", ["wgan-gp", "nsgan-r1"])
def test_the_trainer_warns_a_batchnorm_critic_with_a_penalty_once(tmp_path, objective):
    """One warning at the start, none from the drop-in penalty's calls after it; a run
    without a penalty says nothing."""
    cfg = fastgan.TrainConfig(objective=objective, steps=2, n_critic=2, batch=16, latent_dim=2, eval_every=0,
                              eval_samples=20, progress=False, out=str(tmp_path / "run"))
    generator = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    with pytest.warns(fastgan.penalties.BatchNormPenaltyWarning, match=r"layer 1 \(BatchNorm1d\)") as said:
        trainer = fastgan.Trainer(cfg, generator=generator, critic=bn_critic(2).float(), data=torch.randn(64, 2))
        assert len(said) == 1  # at the start
        trainer.run()
    assert len(said) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastgan.Trainer(fastgan.TrainConfig(**{**cfg.__dict__, "objective": "wgan", "out": str(tmp_path / "w")}),
                        generator=generator, critic=bn_critic(2).float(), data=torch.randn(64, 2)).run()
