"""A short WGAN-GP run of the fused critic on the 8-gaussians toy data (`make demo`).

The hyperparameters are those of the WGAN-GP reference toy code: 512-wide 3-layer
nets, Adam 1e-4 with betas (0.5, 0.9), lam 0.1, 5 critic steps per generator step,
batches of 256. It prints the critic's W estimate, which falls as the generator
learns, with the critic loss and the penalty, and saves a plot of the samples and
of the W estimate (default: runs/demo/wgan_gp_8gaussians.png).
"""
import argparse
import os
import time

import torch
from torch import nn

import fastgan
from fastgan.data import eight_gaussians


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="generator steps")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/demo", help="folder of the plot")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    data = eight_gaussians()
    critic = fastgan.FusedMLPCritic(2, (512, 512, 512), activation="relu")
    generator = nn.Sequential(nn.Linear(2, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                              nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 2))
    opt_d = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.9))
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-4, betas=(0.5, 0.9))
    backend = fastgan.backends.resolve(torch.device("cpu"))
    print(f"fastgan {fastgan.__version__}: WGAN-GP on 8gaussians, fused critic on backend '{backend}'")
    print(f"{'step':>6} {'W estimate':>11} {'critic loss':>12} {'penalty':>9} {'steps/s':>8}")

    start = time.perf_counter()
    w_sum = loss_sum = pen_sum = 0.0
    count = 0
    history = []
    for step in range(1, args.steps + 1):
        for _ in range(5):
            real = data.sample(args.batch)
            with torch.no_grad():
                fake = generator(torch.randn(args.batch, 2))
            opt_d.zero_grad(set_to_none=True)
            out = critic.wgan_gp_loss(real, fake, lam=0.1)
            out.loss.backward()
            opt_d.step()
            w_sum += out.wasserstein.item()
            loss_sum += out.loss.item()
            pen_sum += out.penalty.item()
            count += 1
        critic.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        (-critic(generator(torch.randn(args.batch, 2))).mean()).backward()
        opt_g.step()
        critic.requires_grad_(True)
        history.append((step, out.wasserstein.item()))
        if step % 50 == 0 or step == 1:
            rate = step / (time.perf_counter() - start)
            print(f"{step:>6} {w_sum / count:>11.4f} {loss_sum / count:>12.4f} {pen_sum / count:>9.4f} {rate:>8.1f}")
            w_sum = loss_sum = pen_sum = 0.0
            count = 0
    with torch.no_grad():
        samples = generator(torch.randn(1024, 2))
    plot(history, data.sample(1024), samples, args.out)


def plot(history, real, fake, out_dir):
    """Real and generated samples, and the W estimate per generator step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_s, ax_w) = plt.subplots(1, 2, figsize=(10, 4.5))
    ax_s.scatter(real[:, 0], real[:, 1], s=4, alpha=0.5, label="real")
    ax_s.scatter(fake[:, 0], fake[:, 1], s=4, alpha=0.5, label="generated")
    ax_s.set_title("8gaussians after training")
    ax_s.set_aspect("equal")
    ax_s.legend(loc="upper right")
    steps, w = zip(*history)
    ax_w.plot(steps, w, lw=0.8)
    ax_w.set_xlabel("generator step")
    ax_w.set_ylabel("W estimate (last critic step)")
    ax_w.set_title("critic's W estimate")
    fig.tight_layout()
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "wgan_gp_8gaussians.png")
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
