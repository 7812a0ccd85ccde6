"""A run folder's own files: which of them show that a folder holds a run, and their
removal when a new run replaces it (``--overwrite``). Nothing else in the folder is
touched."""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

#: The files and folders a run writes (checkpoint, log, plots, profile, TensorBoard).
RUN_FILES = ("checkpoint.pt", "metrics.jsonl", "samples.png", "curves.png", "trace.json", "tensorboard")
#: The files whose presence means the folder holds a run.
MARKERS = ("checkpoint.pt", "metrics.jsonl")


def held_run(folder: str) -> list[str]:
    """The markers of a run in ``folder`` (empty when it holds none)."""
    return [name for name in MARKERS if os.path.exists(os.path.join(folder, name))]


def refusal(folder: str) -> str | None:
    """Why a new run may not start in ``folder`` (it holds one), or None."""
    held = held_run(folder)
    if not held:
        return None
    return (f"{folder} already holds a run ({', '.join(held)}): continue it (--resume RUN_DIR, Trainer.resume) "
            "or replace it (--overwrite, overwrite=True)")


def clear(folder: str) -> list[str]:
    """Removes the run files in ``folder``; returns the names removed."""
    removed = []
    for name in RUN_FILES:
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
        else:
            continue
        removed.append(name)
    return removed


@functools.cache
def scratch() -> str:
    """An empty folder of this process, removed at its exit, for trainers that write
    nothing (the experiments' and the bench's): it never holds a run."""
    folder = tempfile.mkdtemp(prefix="fastgan-scratch-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
