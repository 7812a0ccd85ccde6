"""A run's checkpoint state on its own (fastgan/run_state.py): the settings a resumed run
takes from it."""
import dataclasses
import os

import pytest

from fastgan import checkpoint, run_state
from fastgan.config import ConfigError, TrainConfig


def saved(**user):
    return {"config": dataclasses.asdict(TrainConfig(steps=50, out="elsewhere")), "user": user}


def test_the_resumed_settings_are_the_saved_ones_with_the_overrides(tmp_path):
    path = os.path.join(str(tmp_path), "checkpoint.pt")
    cfg = run_state.resumed_config(path, saved(), networks=False, data=False, overrides={"steps": 80})
    assert cfg.steps == 80 and cfg.schedule_steps == 50  # the schedules keep their end
    assert cfg.out == str(tmp_path) and not cfg.overwrite


def test_a_run_of_your_own_networks_or_data_needs_them_again(tmp_path):
    path = os.path.join(str(tmp_path), "checkpoint.pt")
    with pytest.raises(checkpoint.CheckpointError, match=r"generator=\.\.\., critic=\.\.\., data=\.\.\."):
        run_state.resumed_config(path, saved(networks=True, data=True), networks=False, data=False, overrides={})
    with pytest.raises(ConfigError, match="overwrite cannot be combined with resuming"):
        run_state.resumed_config(path, saved(), networks=False, data=False, overrides={"overwrite": True})


def test_a_checkpoint_from_before_the_image_settings_resumes_with_their_defaults(tmp_path):
    """Checkpoints written before ``arch``, ``augment``, ``conditional`` and
    ``cond_critic`` existed hold no such keys: they were DCGAN, unaugmented,
    unconditional runs, and resume as such (the settings compare equal)."""
    path = os.path.join(str(tmp_path), "checkpoint.pt")
    old = saved()
    for key in ("arch", "augment", "conditional", "cond_critic"):
        del old["config"][key]
    cfg = run_state.resumed_config(path, old, networks=False, data=False, overrides={})
    assert (cfg.arch, cfg.augment, cfg.conditional, cfg.cond_critic) == ("dcgan", "none", False, None)
    filled = run_state.saved_config(old)
    checkpoint.check_matches(path, filled, dataclasses.asdict(cfg), ["arch", "augment", "conditional",
                                                                      "cond_critic"])
