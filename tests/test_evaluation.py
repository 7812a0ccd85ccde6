"""A run's evaluation on its own (fastgan/evaluation.py): its own RNG, the metrics each
data set gets."""
import torch

from fastgan import data as datasets
from fastgan.config import TrainConfig
from fastgan.evaluation import Evaluation


def test_the_same_samples_each_time_and_the_training_stream_untouched():
    cfg = TrainConfig(data="8gaussians", eval_samples=200, seed=3)
    ev = Evaluation(cfg, datasets.load("8gaussians"), torch.device("cpu"))
    drawn = []

    def sample(n, generator):
        x = torch.randn(n, 2, generator=generator)
        drawn.append(x)
        return x

    torch.manual_seed(0)
    state = torch.get_rng_state()
    first, second = ev.run(sample), ev.run(sample)
    assert torch.equal(torch.get_rng_state(), state)
    assert first == second and torch.equal(drawn[0], drawn[1])
    assert {"w1", "modes"} <= set(first) and first["w1"] > 0


def test_ranks_that_do_not_evaluate_load_no_model():
    cfg = TrainConfig(data="digits", eval_samples=50)
    ev = Evaluation(cfg, datasets.load("digits"), torch.device("cpu"), metric_models=False)
    assert ev.classifier is None and ev.features is None
