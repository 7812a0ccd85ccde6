"""The projection node (csrc/graph/projection.cpp): a conditional critic
``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>`` traced from the user's module, its labels
the graph's second input, against the eager autograd oracle: float64 to 1e-10, float32
to 1e-5 relative, with and without a LayerNorm or GroupNorm in phi, for every loss."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fastgan
from conftest import BACKENDS, DEVICE, max_grad_err, rel_err
from fastgan import reference
from fastgan.nn import FusedCritic
from fastgan.ops.graph import UnsupportedLayer
from fastgan.ops.trace import fused_critic_loss

FUSED = [BACKENDS[0], "triton"]


class ProjectionCritic(nn.Module):
    """A small SNGAN/StudioGAN-style projection critic: conv features (a per-sample norm
    optional), a smooth hidden layer phi, then ``linear(h) + sum(embed(y) * h)``."""

    def __init__(self, classes=5, norm=None, form="torch.sum", size=8):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 2, 1)
        self.norm = {None: nn.Identity(), "group": nn.GroupNorm(1, 4),
                     "layer": nn.LayerNorm([4, size // 2, size // 2])}[norm]
        self.hidden = nn.Linear(4 * (size // 2) ** 2, 7)
        self.linear = nn.Linear(7, 1)
        self.embed = nn.Embedding(classes, 7)
        self.form = form

    def forward(self, x, y):
        h = F.softplus(self.hidden(F.leaky_relu(self.norm(self.conv(x)), 0.2).flatten(1)))
        if self.form == "torch.sum":  # StudioGAN's form
            return self.linear(h) + torch.sum(torch.mul(self.embed(y), h), 1, keepdim=True)
        if self.form == "method":
            return self.linear(h) + (h * self.embed(y)).sum(dim=1, keepdim=True)
        out = self.linear(h)  # mimicry's form: in place
        out += torch.sum(self.embed(y) * h, dim=1, keepdim=True)
        return out


def _batches(dtype, seed, b=6, classes=5, size=8):
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(b, 3, size, size, generator=g, dtype=dtype)
    fake = torch.randn(b, 3, size, size, generator=g, dtype=dtype)
    labels, fake_labels = torch.randint(0, classes, (b,), generator=g), torch.randint(0, classes, (b,), generator=g)
    return tuple(t.to(DEVICE) for t in (real, fake, labels, fake_labels, torch.rand(b, generator=g, dtype=dtype)))


def _fused_and_eager(critic, loss, dtype, backend, seed, same_labels=False):
    real, fake, labels, fake_labels, eps = _batches(dtype, seed)
    fake_labels = None if same_labels else fake_labels
    kw = dict(loss=loss, lam=10.0, eps=eps if loss == "wgan-gp" else None, lam2=2.5 if loss == "r1" else 0.0)
    with fastgan.use_backend(backend):
        out = fused_critic_loss(critic, real, fake, labels=labels, fake_labels=fake_labels, **kw)
    critic.zero_grad(set_to_none=True)
    out.loss.backward()
    fused = [p.grad.clone() for p in critic.parameters()]
    oracle = critic.double() if dtype != torch.float64 else critic
    critic.zero_grad(set_to_none=True)
    ys = (labels, labels if fake_labels is None else fake_labels)
    ref = reference.chain_loss(oracle, real.double(), fake.double(), loss, 10.0,
                               None if kw["eps"] is None else kw["eps"].double(), 1.0, False, kw["lam2"], labels=ys)
    ref.loss.backward()
    return out, fused, ref, [p.grad for p in oracle.parameters()]


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("norm", [None, "layer", "group"])
@pytest.mark.parametrize("loss", ["wgan-gp", "r1", "wgan"])
def test_float64_parity_with_eager(backend, norm, loss):
    torch.manual_seed(1)
    critic = ProjectionCritic(norm=norm).double().to(DEVICE)
    out, fused, ref, grads = _fused_and_eager(critic, loss, torch.float64, backend, seed=2)
    assert rel_err(out.loss, ref.loss) < 1e-10 and rel_err(out.penalty, ref.penalty) < 1e-10
    assert rel_err(out.wasserstein, ref.wasserstein) < 1e-10
    assert max_grad_err(fused, grads) < 1e-10
    assert critic.embed.weight.grad is not None  # (the class embedding is trained)


@pytest.mark.parametrize("form", ["torch.sum", "method", "in place"])
@pytest.mark.parametrize("norm", [None, "group"])
def test_float32_parity_with_the_float64_oracle(form, norm):
    torch.manual_seed(3)
    critic = ProjectionCritic(norm=norm, form=form).to(DEVICE)
    out, fused, ref, grads = _fused_and_eager(critic, "wgan-gp", torch.float32, BACKENDS[0], seed=4)
    assert rel_err(out.loss, ref.loss) < 1e-5
    assert max_grad_err(fused, grads) < 1e-5


def test_one_label_tensor_serves_both_batches_and_the_interpolates():
    torch.manual_seed(5)
    critic = ProjectionCritic().double().to(DEVICE)
    out, fused, ref, grads = _fused_and_eager(critic, "wgan-gp", torch.float64, BACKENDS[0], seed=6,
                                              same_labels=True)
    assert rel_err(out.loss, ref.loss) < 1e-10 and max_grad_err(fused, grads) < 1e-10


def test_the_labels_change_the_loss():
    torch.manual_seed(7)
    critic = FusedCritic.from_module(ProjectionCritic().double().to(DEVICE))
    real, fake, labels, _, eps = _batches(torch.float64, 8)
    a = critic.wgan_gp_loss(real, fake, eps=eps, labels=labels).loss
    b = critic.wgan_gp_loss(real, fake, eps=eps, labels=(labels + 1) % 5).loss
    assert not torch.allclose(a, b)


class OneHotCritic(ProjectionCritic):
    def forward(self, x, y):
        h = F.softplus(self.hidden(self.conv(x).flatten(1)))
        return self.linear(torch.cat([h, F.one_hot(y, 7).to(h.dtype)], 1)[:, :7])


class NoKeepdim(ProjectionCritic):
    def forward(self, x, y):
        h = F.softplus(self.hidden(self.conv(x).flatten(1)))
        return self.linear(h).squeeze(1) + torch.sum(self.embed(y) * h, 1)


class PaddedEmbedding(ProjectionCritic):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 7, padding_idx=0)


@pytest.mark.parametrize("module, named", [(OneHotCritic, "uses the labels other than in a projection"),
                                           (NoKeepdim, "uses the labels other than in a projection"),
                                           (PaddedEmbedding, "an Embedding with padding_idx")])
def test_other_uses_of_the_labels_are_refused_by_name(module, named):
    with pytest.raises(UnsupportedLayer, match=named):
        FusedCritic.from_module(module())


def test_bad_labels_are_named():
    critic = FusedCritic.from_module(ProjectionCritic().to(DEVICE))
    real, fake, labels, _, _ = _batches(torch.float32, 9)
    with pytest.raises(ValueError, match="this critic is conditional: pass the real batch's classes"):
        critic.wgan_gp_loss(real, fake)
    with pytest.raises(ValueError, match=r"labels must be an int64 tensor of shape \(6,\)"):
        critic.wgan_gp_loss(real, fake, labels=labels.int())
    with pytest.raises(ValueError, match=r"fake_labels must be an int64 tensor of shape \(6,\)"):
        critic.wgan_gp_loss(real, fake, labels=labels, fake_labels=labels[:3])
    plain = fastgan.FusedMLPCritic(3, (4,))
    with pytest.raises(ValueError, match="labels are only taken by a conditional critic"):
        plain.wgan_gp_loss(torch.randn(4, 3), torch.randn(4, 3), labels=torch.zeros(4, dtype=torch.long))
