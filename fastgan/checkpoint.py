"""Checkpoints of a training run: written atomically (a temporary file in the same
folder, flushed to disk, then renamed over the old one), read with clear errors for a
missing, corrupt, foreign or mismatched file.
"""
from __future__ import annotations

import os

import torch

FORMAT = "fastgan-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used, with the reason."""


def save(path: str, state: dict) -> None:
    """Writes ``state`` (tensors, state dicts and plain Python values) to ``path``
    atomically: a reader sees the old checkpoint or the new one, never a partial file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(path: str) -> dict:
    """Reads a checkpoint written by :func:`save` (tensors only, no code is unpickled)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file can fail anywhere in the unpickler
        if isinstance(exc, MemoryError):
            raise
        raise CheckpointError(f"{path} is corrupt or not a checkpoint: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a fastgan checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state.get('version')}; this fastgan "
                              f"reads version {VERSION}")
    return state


def check_matches(path: str, saved: dict, current: dict, keys) -> None:
    """Raises when the run settings ``keys`` differ between the checkpoint's config and
    the current one (e.g. resuming a run with another objective or model)."""
    diffs = [f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}"
             for k in keys if saved.get(k) != current.get(k)]
    if diffs:
        raise CheckpointError(f"{path} was written by a different run ({'; '.join(diffs)})")
