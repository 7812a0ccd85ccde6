"""Profiling hooks: every phase of a training step runs in ``span(name)``, an NVTX range
(seen by Nsight Systems) and a ``torch.profiler.record_function`` (seen by
torch.profiler), and ``Profile`` records a few steps with torch.profiler.
"""
from __future__ import annotations

import contextlib
import os

import torch

try:
    import nvtx as _nvtx
except ImportError:  # NVTX ranges are optional: record_function still names the phase
    _nvtx = None

#: The phases of a training step, in order.
PHASES = ("data", "critic_forward_backward", "penalty", "clip", "critic_optimizer", "generator_step")


def _profiler_on() -> bool:
    # record_function costs ~12 us even with no profiler running; skip it then
    return getattr(torch.autograd.profiler, "_is_profiler_enabled", True)


@contextlib.contextmanager
def span(name: str):
    """An NVTX range and, while torch.profiler records, a record_function, both named
    ``fastgan/<name>``; nothing inside a torch.compile'd region (the compiled graph is
    one range of its own in the trace)."""
    if torch.compiler.is_compiling():
        yield
        return
    label = f"fastgan/{name}"
    with (_nvtx.annotate(label) if _nvtx is not None else contextlib.nullcontext()), \
            (torch.profiler.record_function(label) if _profiler_on() else contextlib.nullcontext()):
        yield


class Profile:
    """torch.profiler over ``steps`` training steps (``step()`` after each); at the end it
    writes a Chrome trace to ``trace_path`` and returns the top ops table."""

    def __init__(self, steps: int, trace_path: str):
        if steps < 1:
            raise ValueError(f"the profile needs at least one step, got {steps}")
        self.steps, self.trace_path, self.done = steps, trace_path, 0
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        self._profiler = torch.profiler.profile(activities=activities)
        self._profiler.__enter__()

    def step(self) -> str | None:
        """Counts a step; after the last one, stops and returns the top-ops table."""
        self.done += 1
        return self.stop() if self.done >= self.steps else None

    def stop(self) -> str:
        """Stops recording, writes the trace and returns the top-ops table."""
        self._profiler.__exit__(None, None, None)
        os.makedirs(os.path.dirname(os.path.abspath(self.trace_path)), exist_ok=True)
        self._profiler.export_chrome_trace(self.trace_path)
        sort = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
        return self._profiler.key_averages().table(sort_by=sort, row_limit=20)
