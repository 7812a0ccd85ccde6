"""Your own conv GAN on your own images, trained by fastgan's Trainer (WGAN-GP).

    python examples/train_own_gan.py [STEPS]
"""
import sys

import torch
from sklearn.datasets import load_digits
from torch import nn

import fastgan


def networks(latent_dim=32):
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(latent_dim, 256), nn.ReLU(), nn.Unflatten(1, (64, 2, 2)),
                              nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                              nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Tanh())  # (B, 1, 8, 8)
    critic = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(32, 64, 4, 2, 1),
                           nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(256, 1))
    return generator, critic


def images():
    return torch.tensor(load_digits().images, dtype=torch.float32).unsqueeze(1) / 8 - 1  # in [-1, 1]


if __name__ == "__main__":
    # overwrite=True: a second run of this example replaces the first (without it, a
    # folder that holds a run is refused: continue it with Trainer.resume instead)
    cfg = fastgan.TrainConfig(objective="wgan-gp", steps=int(sys.argv[1]) if len(sys.argv) > 1 else 500,
                              batch=64, latent_dim=32, out="runs/own_gan", overwrite=True)
    generator, critic = networks()
    trainer = fastgan.Trainer(cfg, generator=generator, critic=critic, data=images())
    print(trainer.run()["last"])
    # continue it later: fastgan.Trainer.resume("runs/own_gan", generator=..., critic=..., data=images(), steps=N)
