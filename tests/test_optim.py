"""Weight clipping and ClippedRMSprop against torch's own clamp_ and RMSprop."""
import copy

import pytest
import torch

import fastgan
from fastgan.ops import clip_


def tensors(dtypes=(torch.float64,), seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(70001,), (33, 17), (5,), (0,), (3, 4, 5)]
    return [torch.randn(s, generator=g, dtype=dt) * 0.05 for dt in dtypes for s in shapes]


def test_clip_equals_clamp(backend):
    ps = tensors((torch.float64, torch.float32))
    ref = [p.clone().clamp_(-0.01, 0.01) for p in ps]
    clip_(ps, 0.01)
    assert all(torch.equal(a, b) for a, b in zip(ps, ref))


def test_clip_parameters_of_a_module_and_non_contiguous(backend):
    net = torch.nn.Sequential(torch.nn.Linear(7, 9), torch.nn.Linear(9, 1)).double()
    ref = copy.deepcopy(net)
    clip_(net.parameters(), 0.05)
    for p in ref.parameters():
        p.data.clamp_(-0.05, 0.05)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), ref.parameters()))
    t = torch.randn(6, 8, dtype=torch.float64).t()
    expected = t.clone().clamp_(-0.3, 0.3)
    clip_([t], 0.3)
    assert torch.equal(t, expected)


def test_clip_rejects_negative_c():
    with pytest.raises(ValueError, match="c must be >= 0"):
        clip_([torch.zeros(3)], -1.0)


VARIANTS = [dict(), dict(momentum=0.9), dict(centered=True),
            dict(weight_decay=0.01, momentum=0.5, centered=True)]


def run_pair(kw, dtype, steps, lr=5e-3, clip=0.01):
    """fastgan.ClippedRMSprop and torch RMSprop + clamp_ on the same gradients."""
    ps = [torch.nn.Parameter(t) for t in tensors((dtype,)) if t.numel()]
    qs = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    ours = fastgan.ClippedRMSprop(ps, lr=lr, clip=clip, **kw)
    theirs = torch.optim.RMSprop(qs, lr=lr, **kw)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p, q in zip(ps, qs):
            p.grad = torch.randn(p.shape, generator=g, dtype=dtype)
            q.grad = p.grad.clone()
        ours.step()
        theirs.step()
        with torch.no_grad():
            for q in qs:
                if clip is not None:
                    q.clamp_(-clip, clip)
    return ps, qs, ours, theirs


@pytest.mark.parametrize("kw", VARIANTS)
def test_clipped_rmsprop_is_bit_for_bit_torch_in_float64(kw):
    # The CPU extension and the eager reference; the Triton interpreter is checked
    # below (its fma is not fused, so it rounds differently).
    for name in ("cpu", "eager"):
        with fastgan.use_backend(name):
            ps, qs, _, _ = run_pair(kw, torch.float64, steps=50)
        assert all(torch.equal(p, q) for p, q in zip(ps, qs)), name


@pytest.mark.parametrize("kw", VARIANTS)
def test_clipped_rmsprop_is_bit_for_bit_torch_in_float32_on_cpu(kw):
    with fastgan.use_backend("cpu"):
        ps, qs, _, _ = run_pair(kw, torch.float32, steps=20)
    assert all(torch.equal(p, q) for p, q in zip(ps, qs))


@pytest.mark.parametrize("kw", VARIANTS)
def test_clipped_rmsprop_triton_matches_torch(kw):
    with fastgan.use_backend("triton"):
        ps, qs, _, _ = run_pair(kw, torch.float64, steps=10)
    assert max(((p - q).norm() / q.norm()).item() for p, q in zip(ps, qs)) < 1e-12
    with fastgan.use_backend("triton"):
        ps, qs, _, _ = run_pair(kw, torch.float32, steps=10)
    assert max(((p - q).norm() / q.norm()).item() for p, q in zip(ps, qs)) < 1e-5


def test_clipped_rmsprop_state_dict_round_trip_and_torch_compatibility():
    kw = dict(momentum=0.9, centered=True)
    ps, qs, ours, theirs = run_pair(kw, torch.float64, steps=5)
    saved = copy.deepcopy(ours.state_dict())
    assert set(saved["state"][0]) == set(theirs.state_dict()["state"][0])
    # A fresh optimizer loaded from the state dict continues exactly like the original.
    clones = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    resumed = fastgan.ClippedRMSprop(clones, lr=5e-3, **kw)
    resumed.load_state_dict(saved)
    # torch's RMSprop accepts the same state.
    torch.optim.RMSprop([torch.nn.Parameter(p.detach().clone()) for p in ps], lr=5e-3, **kw).load_state_dict(saved)
    g = torch.Generator().manual_seed(9)
    for _ in range(5):
        for p, c in zip(ps, clones):
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
            c.grad = p.grad.clone()
        ours.step()
        resumed.step()
    assert all(torch.equal(p, c) for p, c in zip(ps, clones))


def test_clipped_rmsprop_rejects_bad_hyperparameters():
    p = [torch.nn.Parameter(torch.zeros(2))]
    for kw in (dict(lr=-1.0), dict(clip=-0.1), dict(eps=-1.0), dict(momentum=-0.5)):
        with pytest.raises(ValueError, match="Invalid"):
            fastgan.ClippedRMSprop(p, **kw)


def test_clipped_rmsprop_without_clip_is_rmsprop():
    with fastgan.use_backend("cpu"):
        ps, qs, _, _ = run_pair({}, torch.float64, steps=10, lr=0.05, clip=None)
    assert max(p.abs().max().item() for p in ps) > 0.1  # beyond any clip: no clamp happened
    assert all(torch.equal(p, q) for p, q in zip(ps, qs))
