"""Every bad input is one clear line: the CLI exits 2 with a message naming the flag,
file or value (no traceback); the API raises ValueError/TypeError naming the argument.

One table per side. Each row is (command or call, what the message must name)."""
import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from torch import nn

import fastgan
import fastgan.data
import fastgan.nn
from fastgan.cli import main
from fastgan.config import ConfigError, ConfigTypeError, TrainConfig
from fastgan.trainer import Trainer

SMALL = ["--batch", "8", "--width", "8", "--eval-samples", "20", "--eval-every", "0", "--no-progress"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad (and a few good) files of every kind the CLI reads, and one real run."""
    d = tmp_path_factory.mktemp("inputs")
    paths = {"dir": str(d)}

    def write(name, content, mode="w"):
        path = d / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, mode) as f:
            f.write(content)
        paths[name.replace(".", "_")] = str(path)

    write("text.txt", "hello")
    write("corrupt.npy", b"\x93NUMPY garbage", "wb")
    write("corrupt.npz", b"PK not a zip", "wb")
    np.save(d / "nan.npy", np.array([[0.0, np.nan]] * 4))
    np.save(d / "three_d.npy", np.zeros((4, 3, 5)))
    np.save(d / "odd_images.npy", np.zeros((4, 1, 18, 18)))
    np.save(d / "wide_images.npy", np.zeros((4, 1, 16, 12)))
    np.save(d / "plain_images.npy", np.zeros((4, 1, 8, 8), dtype=np.float32))
    np.savez(d / "float_y.npz", x=np.zeros((4, 1, 8, 8), np.float32), y=np.zeros(4, np.float32))
    np.savez(d / "negative_y.npz", x=np.zeros((4, 1, 8, 8), np.float32), y=np.array([0, 1, -1, 1]))
    np.savez(d / "short_y.npz", x=np.zeros((4, 1, 8, 8), np.float32), y=np.array([0, 1]))
    (d / "one_class" / "c0").mkdir(parents=True)
    mpimg.imsave(d / "one_class" / "c0" / "a.png", np.zeros((8, 8, 3)))
    for k, size in enumerate((8, 16)):
        (d / "uneven_classes" / f"c{k}").mkdir(parents=True)
        mpimg.imsave(d / "uneven_classes" / f"c{k}" / "a.png", np.zeros((size, size, 3)))
    np.save(d / "huge_images.npy", np.zeros((1, 1, 512, 512), dtype=np.float32))
    np.save(d / "strings.npy", np.array([["a", "b"]] * 4))
    np.savez(d / "two.npz", a=np.zeros((4, 2)), b=np.zeros((4, 2)))
    for name in ("nan.npy", "three_d.npy", "odd_images.npy", "wide_images.npy", "huge_images.npy", "plain_images.npy",
                 "float_y.npz", "negative_y.npz", "short_y.npz", "strings.npy", "two.npz"):
        paths[name.replace(".", "_")] = str(d / name)
    write("bad_images/a.png", b"\x89PNG\r\n\x1a\n not an image", "wb")
    write("empty_images/readme.txt", "no images here")
    write("float_steps.toml", "steps = 2.5\n")
    write("string_lr.toml", 'lr = "fast"\n')
    write("bool_batch.toml", "batch = true\n")
    write("syntax.toml", "steps = = 3\n")
    write("unknown.toml", "learning_rate = 1.0\n")
    write("not_a_checkpoint/checkpoint.pt", b"not a zip file", "wb")
    write("bench.csv", "a,b\n1,2\n")
    run = str(d / "run")
    assert main(["train", "--steps", "1", "--n-critic", "1", "--out", run, *SMALL]) == 0
    paths["run"] = run
    paths["file_as_out"] = paths["text_txt"]
    return paths


CLI_CASES = [
    # train: settings out of range or of the wrong kind
    (["train", "--objective", "lsgan"], "--objective"),
    (["train", "--steps", "0"], "--steps must be >= 1"),
    (["train", "--batch", "0"], "--batch must be >= 1"),
    (["train", "--n-critic", "0"], "--n-critic must be >= 1"),
    (["train", "--lr", "0"], "--lr must be > 0"),
    (["train", "--lr=-1e-4"], "--lr must be > 0"),
    (["train", "--lr", "nan"], "--lr must be finite"),
    (["train", "--beta1", "1.5"], "--beta1 must be < 1"),
    (["train", "--beta2", "-0.1"], "--beta2 must be >= 0"),
    (["train", "--lam", "-1"], "--lam must be >= 0"),
    (["train", "--lazy-penalty", "0"], "--lazy-penalty must be >= 1"),
    (["train", "--clip", "0"], "--clip must be > 0"),
    (["train", "--sigma", "-1"], "--sigma must be >= 0"),
    (["train", "--schedule-steps", "0"], "--schedule-steps must be >= 1"),
    (["train", "--width", "0"], "--width must be >= 1"),
    (["train", "--latent-dim", "0"], "--latent-dim must be >= 1"),
    (["train", "--eval-every", "-1"], "--eval-every must be >= 0"),
    (["train", "--eval-samples", "9"], "--eval-samples must be >= 10"),
    (["train", "--log-every", "0"], "--log-every must be >= 1"),
    (["train", "--checkpoint-every", "0"], "--checkpoint-every must be >= 1"),
    (["train", "--seed", "-1"], "--seed must be >= 0"),
    (["train", "--device", "tpu"], "--device must be cpu, cuda"),
    (["train", "--dtype", "float16"], "--dtype must be float32 or float64"),
    (["train", "--lr-decay", "cosine"], "--lr-decay must be none or linear"),
    (["train", "--noise-schedule", "step"], "--noise-schedule must be linear"),
    (["train", "--dist-timeout", "0"], "--dist-timeout must be > 0"),
    (["train", "--profile", "-2"], "--profile must be >= 0"),
    (["train", "--nproc-per-node", "0"], "--nproc-per-node must be >= 1"),
    (["train", "--nproc-per-node", "2", "--batch", "5"], "--batch 5 does not split evenly over --nproc-per-node 2"),
    (["train", "--nproc-per-node", "2", "--lr", "0"], "--lr must be > 0"),
    (["train", "--steps", "many"], "--steps"),  # argparse's own error
    # train: data
    (["train", "--data", "{dir}/nowhere.npy"], "nowhere.npy"),
    (["train", "--data", "{text_txt}"], "text.txt"),
    (["train", "--data", "{corrupt_npy}"], "corrupt.npy: cannot read the array"),
    (["train", "--data", "{corrupt_npz}"], "corrupt.npz: cannot read the array"),
    (["train", "--data", "{nan_npy}"], "nan.npy contains NaN"),
    (["train", "--data", "{three_d_npy}"], "three_d.npy: expected a non-empty (N, D) or (N, C, H, W)"),
    (["train", "--data", "{strings_npy}"], "strings.npy: cannot read the array"),
    (["train", "--data", "{two_npz}"], "two.npz: cannot read the array (it holds arrays"),
    (["train", "--data", "{odd_images_npy}"], "images of 18x18 pixels: --arch dcgan takes 8, 10, 12"),
    (["train", "--data", "{wide_images_npy}"], "(1, 16, 12): expected (D,) points or square (C, H, W) images"),
    (["train", "--data", "{huge_images_npy}"], "images of 512x512 pixels: --arch dcgan takes"),
    (["train", "--data", "digits", "--arch", "resnet"], "--data digits: images of 8x8 pixels: --arch resnet takes 16,"),
    (["train", "--arch", "vgg"], "--arch must be dcgan or resnet, got 'vgg'"),
    (["train", "--augment", "blur"], "--augment has 'blur'; expected none, or a comma-separated list of color,"),
    (["train", "--augment", "color,color"], "--augment names a transform twice"),
    (["train", "--augment", "color"], "--augment transforms images; the data 8gaussians are points of shape (2,)"),
    (["train", "--conditional"], "--conditional trains image GANs; the data 8gaussians are points"),
    (["train", "--conditional", "--data", "{plain_images_npy}"], "--conditional needs labelled data, and"),
    (["train", "--conditional", "--data", "{float_y_npz}"], "y: labels must be 4 integers, one per sample"),
    (["train", "--conditional", "--data", "{negative_y_npz}"], "labels must be classes 0..K-1 with K >= 2"),
    (["train", "--conditional", "--data", "{short_y_npz}"], "y: labels must be 4 integers, one per sample"),
    (["train", "--data", "{dir}/uneven_classes"], "in the class folders of"),
    (["train", "--data", "{dir}/one_class"], "nor two or more sub-folders of images, one per class"),
    (["train", "--cond-critic", "acgan"], "--cond-critic applies to conditional runs (--conditional)"),
    (["train", "--conditional", "--cond-critic", "hinge"], "--cond-critic must be projection or acgan"),
    (["train", "--data", "{dir}/bad_images"], "a.png: cannot decode the image"),
    (["train", "--data", "{dir}/empty_images"], "empty_images holds no images"),
    # train: output, config files, resume
    (["train", "--out", "{file_as_out}"], "--out"),
    (["train", "--config", "{dir}/missing.toml"], "missing.toml"),
    (["train", "--config", "{syntax_toml}"], "syntax.toml: not a valid TOML file"),
    (["train", "--config", "{float_steps_toml}"], "float_steps.toml: steps must be an integer, got 2.5"),
    (["train", "--config", "{string_lr_toml}"], "string_lr.toml: lr must be a number"),
    (["train", "--config", "{bool_batch_toml}"], "bool_batch.toml: batch must be an integer, got True"),
    (["train", "--config", "{unknown_toml}"], "unknown settings ['learning_rate']"),
    (["train", "--config", "{unknown_toml}", "--resume", "{run}"], "--config and --resume cannot be combined"),
    (["train", "--resume", "{dir}/nowhere"], "no checkpoint at"),
    (["train", "--resume", "{dir}/not_a_checkpoint"], "checkpoint.pt is corrupt or not a checkpoint"),
    (["train", "--resume", "{run}", "--objective", "wgan"], "objective: checkpoint 'wgan-gp', now 'wgan'"),
    (["train", "--resume", "{run}", "--steps", "0"], "--steps must be >= 1"),
    # sample, plot, reproduce, bench
    (["sample", "--checkpoint", "{run}/checkpoint.pt", "-n", "0", "--out", "{dir}/s.npy"], "-n must be >= 1"),
    (["sample", "--checkpoint", "{run}/checkpoint.pt", "--out", "{dir}/s.txt"], "--out"),
    (["sample", "--checkpoint", "{text_txt}", "--out", "{dir}/s.npy"], "text.txt is corrupt or not a checkpoint"),
    (["sample", "--checkpoint", "{run}/checkpoint.pt", "--out", "{file_as_out}/s.npy"], "--out"),
    (["sample", "--checkpoint", "{run}/checkpoint.pt", "--device", "tpu", "--out", "{dir}/s.npy"], "--device"),
    (["sample", "--checkpoint", "{run}/checkpoint.pt", "--class", "3", "--out", "{dir}/s.npy"],
     "--class 3: {run}/checkpoint.pt is not a conditional run"),
    (["plot", "{dir}/nowhere"], "no checkpoint at"),
    (["reproduce", "distances", "--seed", "-1"], "--seed must be >= 0"),
    (["reproduce", "nosuch"], "nosuch"),  # argparse's own error
    (["reproduce", "distances", "--out", "{file_as_out}/x"], "--out"),
    (["bench", "--reps", "0"], "--reps must be >= 1"),
    (["bench", "--warmup", "-1"], "--warmup must be >= 0"),
    (["bench", "--compare", "{dir}/missing.csv"], "missing.csv"),
    (["bench", "--compare", "{bench_csv}"], "bench.csv: not a fastgan bench CSV"),
    (["bench", "--out", "{file_as_out}/x"], "--out"),
]


@pytest.mark.parametrize("argv, named", CLI_CASES, ids=[" ".join(a)[:60] for a, _ in CLI_CASES])
def test_cli_bad_input_is_one_line_and_exit_2(files, argv, named, capsys, tmp_path):
    argv = [a.format(**files) for a in argv]
    if argv[0] == "train" and "--out" not in argv and "--resume" not in argv:
        argv += ["--out", str(tmp_path / "run")]
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse: usage line, then the error line
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert named.format(**files) in err, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 or lines[0].startswith("usage:"), err  # argparse: its usage, then one line
    assert named.format(**files) in lines[-1]


class Wrapper(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))

    def forward(self, x):
        return self.main(x)


class LabelledBy(torch.utils.data.Dataset):
    """Four (image, label) items with the given label."""

    def __init__(self, label):
        self.label = label

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.zeros(1, 8, 8), self.label if i else 0


def _mlp():
    return nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))


def _pairs(B=4, d=2):
    return torch.randn(B, d), torch.randn(B, d)


API_CASES = [
    (lambda: TrainConfig(steps=2.5).validate(), ConfigTypeError, "steps must be an integer"),
    (lambda: TrainConfig(lr="fast").validate(), TypeError, "lr must be a number"),
    (lambda: TrainConfig(progress=1).validate(), TypeError, "progress must be true or false"),
    (lambda: TrainConfig(width=0).validate(), ConfigError, "width must be >= 1"),
    (lambda: TrainConfig(beta2=1.0).validate(), ValueError, "beta2 must be < 1"),
    (lambda: Trainer(TrainConfig(data="no-such-set")), ValueError, "unknown data set 'no-such-set'"),
    (lambda: Trainer(TrainConfig(arch="resnet"), generator=_mlp(), critic=_mlp()), ConfigError,
     "arch chooses the built-in networks"),
    (lambda: fastgan.nn.DCGANCritic(18), ValueError, "image_size 18: the DCGAN nets take 8, 10"),
    (lambda: Trainer(TrainConfig(conditional=True), generator=_mlp(), critic=_mlp()), ConfigError,
     "conditional trains image GANs; the data 8gaussians are points"),
    (lambda: fastgan.nn.DCGANCritic(8, num_classes=3, head="hinge"), ValueError, "head must be projection or acgan"),
    (lambda: fastgan.data.from_user(LabelledBy("a")).num_classes, TypeError, "is 'a', not a class number"),
    (lambda: fastgan.data.from_user(LabelledBy(-2)).num_classes, ValueError, "labels must be classes 0..K-1"),
    (lambda: fastgan.nn.DCGANGenerator(16, 4), ValueError, "image_size 4: the DCGAN nets take"),
    (lambda: fastgan.gradient_penalty(lambda x: torch.cat([x.sum(1, keepdim=True)] * 2, 1), *_pairs()),
     ValueError, "one value per sample"),
    (lambda: fastgan.gradient_penalty(lambda x: x.sum(1).mean(), *_pairs()), ValueError, "one value per sample"),
    (lambda: fastgan.gradient_penalty(lambda x: x.detach().sum(1), *_pairs()), ValueError,
     "does not depend on its input"),
    (lambda: fastgan.gradient_penalty(lambda x: x.sum(1), *_pairs(), eps=torch.rand(4, 2)), ValueError,
     "eps must hold one weight per sample"),
    (lambda: fastgan.gradient_penalty(lambda x: x.sum(1), *_pairs(), eps=torch.ones(4, dtype=torch.long)),
     TypeError, "eps must be a floating tensor"),
    (lambda: fastgan.gradient_penalty(_mlp(), *_pairs(), lam=-1.0), ValueError, "lam must be >= 0"),
    (lambda: fastgan.r1_penalty(_mlp(), torch.randn(4, 2), gamma=float("nan")), ValueError, "gamma must be finite"),
    (lambda: fastgan.FusedMLPCritic(2, (4,)).wgan_gp_loss(*_pairs(), eps=torch.rand(4, 2)), ValueError,
     "eps must hold one weight per sample"),
    (lambda: fastgan.FusedMLPCritic(2, (4,)).wgan_gp_loss(*_pairs(), eps=[0.5] * 4), TypeError, "eps must be a tensor"),
    (lambda: fastgan.FusedMLPCritic.from_sequential(Wrapper()), TypeError, "from_sequential(model.main)"),
    (lambda: fastgan.FusedMLPCritic.from_sequential(nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(), nn.Linear(4, 1))),
     ValueError, "got Conv2d, ReLU, Linear"),
    (lambda: fastgan.FusedMLPCritic(2, (4,), "lrelu", -0.2), ValueError, "negative_slope must be >= 0"),
    (lambda: fastgan.ops.bias_act(torch.randn(3, 4), torch.zeros(4), dim=2), ValueError, "dim 2 is out of range"),
    (lambda: fastgan.ops.bias_act(torch.randn(3, 4), torch.zeros(3), dim=-3), ValueError, "dim -3 is out of range"),
    (lambda: fastgan.ops.bias_act(torch.randn(3, 4), dim=1.0), TypeError, "dim must be an int"),
    (lambda: fastgan.ops.bias_act(torch.randn(3, 4), act="swish"), ValueError, "unknown activation 'swish'"),
    (lambda: fastgan.ops.bias_act(torch.randn(3, 4), clamp=-1.0), ValueError, "clamp must be >= 0"),
]


@pytest.mark.parametrize("call, kind, named", API_CASES, ids=[c[2][:40] for c in API_CASES])
def test_api_bad_input_raises_naming_the_argument(call, kind, named):
    with pytest.raises(kind) as info:
        call()
    assert named in str(info.value)


def test_the_tables_hold_at_least_40_cases():
    assert len(CLI_CASES) + len(API_CASES) >= 40

