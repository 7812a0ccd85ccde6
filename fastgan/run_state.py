"""A run's checkpoint: the state a trainer saves (settings, networks, optimisers, the
EMA, the loss scalers and every rank's RNG streams), the settings a resumed run takes
from it, and how the resumed trainer takes the rest back, so that it continues bit for
bit."""
from __future__ import annotations

import dataclasses
import os

import torch

from fastgan import checkpoint, distributed
from fastgan.config import RESUME_KEYS, ConfigError, TrainConfig


def state(trainer) -> dict:
    """``trainer``'s state; ``rng`` holds every rank's RNG states, in rank order (a
    collective in a distributed run: every rank calls it)."""
    rng = {"torch": torch.get_rng_state()}
    if trainer.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(trainer.device)
    return {"config": dataclasses.asdict(trainer.cfg), "user": trainer.user, "step": trainer.step,
            "elapsed": trainer.elapsed, "world_size": trainer.group.world_size,
            "generator": trainer.generator.state_dict(), "critic": trainer.critic.state_dict(),
            "opt_g": trainer.opt_g.state_dict(), "opt_d": trainer.opt_d.state_dict(),
            "rng": trainer.group.gather(rng), "ema": None if trainer.ema is None else trainer.ema.state_dict(),
            "scalers": [trainer.scaler_d.state_dict(), trainer.scaler_g.state_dict()]}


def saved_config(saved_state: dict) -> dict:
    """The settings of a checkpoint; settings added to fastgan after it was written
    take their defaults (``arch``: the DCGAN nets every earlier image run had)."""
    return {**{f.name: f.default for f in dataclasses.fields(TrainConfig)}, **saved_state["config"]}


def resumed_config(path: str, saved_state: dict, *, networks: bool, data: bool, overrides: dict) -> TrainConfig:
    """The settings of the run resuming the checkpoint at ``path`` (its folder becomes
    ``out``): the saved ones with ``overrides``. ``networks`` and ``data`` say whether
    the user gave them again, which a run of the user's own needs."""
    saved = saved_config(saved_state)
    user, needed = saved_state.get("user", {}), []
    if user.get("networks") and not networks:
        needed.append("generator=..., critic=...")
    if user.get("data") and not data:
        needed.append("data=...")
    if needed:
        raise checkpoint.CheckpointError(f"{path} is a run of your own networks or data: continue it from "
                                         f"Python with Trainer.resume(run_dir, {', '.join(needed)})")
    if overrides.get("overwrite"):
        raise ConfigError("overwrite", "cannot be combined with resuming a run (it would remove the run "
                                       "being resumed)")
    horizon = saved.get("schedule_steps") or saved["steps"]
    return TrainConfig(**{**saved, "schedule_steps": horizon, **overrides, "overwrite": False,
                          "out": os.path.dirname(os.path.abspath(path))})


def restore(trainer, path: str, saved_state: dict) -> None:
    """Gives ``trainer`` (built from :func:`resumed_config`) the rest of the checkpoint
    at ``path``: the networks, optimisers, EMA, scalers, step and RNG streams; says how
    the schedules are timed where the steps changed."""
    saved, cfg, group = saved_config(saved_state), trainer.cfg, trainer.group
    checkpoint.check_matches(path, saved, dataclasses.asdict(cfg), RESUME_KEYS)
    horizon = saved.get("schedule_steps") or saved["steps"]
    schedules = trainer.schedules()
    if schedules and group.is_main and trainer.horizon != horizon:
        print(f"fastgan: {' and '.join(schedules)} re-timed to end at step {trainer.horizon} "
              f"(it was {horizon}) from step {saved_state['step']} on")
    elif schedules and group.is_main and cfg.steps != saved["steps"]:
        print(f"fastgan: {cfg.steps} steps instead of {saved['steps']}: {' and '.join(schedules)} keep "
              f"their end at step {horizon} (--schedule-steps N re-times them)")
    try:
        trainer.generator.load_state_dict(saved_state["generator"])
        trainer.critic.load_state_dict(saved_state["critic"])
        trainer.opt_g.load_state_dict(saved_state["opt_g"])
        trainer.opt_d.load_state_dict(saved_state["opt_d"])
        if trainer.ema is not None:
            trainer.ema.load_state_dict(saved_state["ema"])
        if cfg.amp == "fp16":
            trainer.scaler_d.load_state_dict(saved_state["scalers"][0])
            trainer.scaler_g.load_state_dict(saved_state["scalers"][1])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise checkpoint.CheckpointError(f"{path} does not fit this run's networks: {exc}") from None
    trainer.step = trainer._checked = saved_state["step"]
    trainer.elapsed = saved_state["elapsed"]
    rngs = saved_state["rng"]
    if len(rngs) == group.world_size:  # the same ranks: each continues its own streams
        torch.set_rng_state(rngs[group.rank]["torch"])
        if "cuda" in rngs[group.rank] and trainer.device.type == "cuda":
            torch.cuda.set_rng_state(rngs[group.rank]["cuda"], trainer.device)
    else:  # another number of ranks: fresh streams per rank, derived from the step
        torch.manual_seed(distributed.stream_seed(cfg.seed, group.rank, trainer.step))
        if group.is_main:
            print(f"fastgan: {path} was written by {len(rngs)} rank(s), this run has {group.world_size}: "
                  "the models and optimisers continue, the random streams start afresh")
