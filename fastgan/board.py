"""TensorBoard logging of a run (``--tensorboard``), through ``torch.utils.tensorboard``:
the scalars of every logged step, and at each evaluation the samples, an image grid for
images or the points over the 2-D critic surface, for every generator the run keeps
(the EMA one and the raw one). Written by rank 0 to ``RUN_DIR/tensorboard``."""
from __future__ import annotations

import os

from fastgan import plots


class Board:
    """A run's TensorBoard writer. A resumed run starts at its checkpoint's step and
    drops the events an interrupted process wrote after it (``purge_step``)."""

    def __init__(self, run_dir: str, start_step: int):
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = os.path.join(run_dir, "tensorboard")
        self.writer = SummaryWriter(self.log_dir, purge_step=start_step or None)

    def scalars(self, record: dict) -> None:
        """Every number of a log record (losses, gradient norms, metrics), at its step."""
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, record["step"])

    def pictures(self, trainer, n: int = 500) -> None:
        """The samples of each of the trainer's generators at its current step."""
        gen_seed = trainer.cfg.seed + 7
        for label, raw in trainer.sample_labels():
            tag = "samples/" + ("raw generator" if raw else "EMA generator")
            if trainer.data.is_image:
                fake = trainer.sample(64, plots.seeded(gen_seed), raw=raw)
                self.writer.add_image(tag, plots.tile(fake, 8), trainer.step, dataformats="HWC")
            else:
                fake = trainer.sample(n, plots.seeded(gen_seed), raw=raw)
                real = trainer.data.sample(n, plots.seeded(gen_seed + 1))
                fig, ax = plots.pyplot().subplots(figsize=(6, 6))
                plots.draw_points(fig, ax, real, fake, trainer.critic, trainer.device,
                                  f"step {trainer.step}{', ' + label if label else ''}")
                self.writer.add_figure(tag, fig, trainer.step)  # closes the figure

    def close(self) -> None:
        self.writer.close()
