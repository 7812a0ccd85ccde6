"""The parts of a run built from its settings, on their own (fastgan/build.py)."""
import pytest
import torch
from torch import nn

from fastgan import build, data as datasets, objectives
from fastgan.config import TrainConfig
from fastgan.optim import ClippedRMSprop

CPU = torch.device("cpu")


def test_the_built_in_networks_fit_the_data():
    for name, latent in (("8gaussians", 2), ("digits", 64)):
        data = datasets.load(name)
        g, d, latent_dim = build.networks(TrainConfig(data=name, width=16), data, CPU, torch.float64)
        assert latent_dim == latent and next(g.parameters()).dtype == torch.float64
        assert d(g(torch.zeros(3, latent_dim, dtype=torch.float64))).numel() == 3


def test_your_networks_are_checked_with_one_forward():
    data = datasets.load("8gaussians")
    with pytest.raises(ValueError, match=r"generator: makes samples of shape \(3,\), the data's are \(2,\)"):
        build.networks(TrainConfig(latent_dim=4), data, CPU, torch.float32, nn.Linear(4, 3), nn.Linear(3, 1))
    with pytest.raises(ValueError, match="critic: must return one value per sample"):
        build.networks(TrainConfig(latent_dim=4), data, CPU, torch.float32, nn.Linear(4, 2), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="latent_dim must be given"):
        build.networks(TrainConfig(), data, CPU, torch.float32, nn.Linear(4, 2), nn.Linear(2, 1))
    g = nn.Linear(4, 2)
    g.latent_dim = 4
    assert build.networks(TrainConfig(), data, CPU, torch.float32, g, nn.Linear(2, 1))[2] == 4


def test_the_optimisers_follow_the_objective_and_the_overrides():
    g, d = nn.Linear(2, 2), nn.Linear(2, 1)
    opt_d, opt_g, lr = build.optimizers(TrainConfig(objective="wgan"), objectives.defaults("wgan", False), g, d, 0.01)
    assert isinstance(opt_d, ClippedRMSprop) and isinstance(opt_g, torch.optim.RMSprop)
    cfg = TrainConfig(objective="wgan-gp", lr=3e-4, beta2=0.99)
    opt_d, opt_g, lr = build.optimizers(cfg, objectives.defaults("wgan-gp", False), g, d, 0.0)
    assert lr == 3e-4 and opt_d.param_groups[0]["betas"][1] == 0.99 and opt_d.param_groups[0]["fused"]
