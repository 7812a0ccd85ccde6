"""What a run writes as it trains: ``metrics.jsonl`` (one JSON line per logged step),
TensorBoard events (``--tensorboard``) and the progress bar. In a distributed run rank
0 alone writes; the other ranks hold a log that writes nothing."""
from __future__ import annotations

import json
import os

LOG_FILE = "metrics.jsonl"


def log_path(run_dir: str) -> str:
    return os.path.join(run_dir, LOG_FILE)


def truncate(run_dir: str, step: int) -> None:
    """Drops the lines logged after step ``step`` (an interrupted run's tail, before it
    resumes from its checkpoint); at step 0 every line goes (the start's evaluation is
    written again)."""
    path = log_path(run_dir)
    if not os.path.exists(path):
        return
    with open(path) as f:
        kept = [line for line in f if line.strip() and json.loads(line)["step"] <= step and step]
    with open(path, "w") as f:
        f.writelines(kept)


class RunLog:
    """The log of a run from ``start_step`` to ``steps``, appending to its
    ``metrics.jsonl``. ``writes`` is False on the ranks that write nothing."""

    def __init__(self, run_dir: str, start_step: int, steps: int, *, writes: bool, tensorboard: bool,
                 progress: bool):
        from tqdm import tqdm

        from fastgan.board import Board

        self.path = log_path(run_dir)
        self._file = open(self.path if writes else os.devnull, "a")
        self.board = Board(run_dir, start_step) if tensorboard and writes else None
        # disable=None: no bar when stderr is not a terminal (a log file, a pipe)
        self.bar = tqdm(total=steps, initial=start_step, disable=None if progress and writes else True,
                        unit="step", dynamic_ncols=True)

    def write(self, record: dict) -> None:
        """One logged step: its JSON line (flushed), its TensorBoard scalars and, where it
        has a W estimate, the bar's."""
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self.board is not None:
            self.board.scalars(record)
        if "wasserstein" in record:
            self.bar.set_postfix(W=f"{record['wasserstein']:.4f}", refresh=False)

    def pictures(self, trainer) -> None:
        """The samples (and the critic's surface) of ``trainer`` now, on TensorBoard."""
        if self.board is not None:
            self.board.pictures(trainer)

    def advance(self) -> None:
        """One step trained."""
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
        self._file.close()
        if self.board is not None:
            self.board.close()
