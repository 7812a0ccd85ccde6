"""The benchmark harness: interleaved repetitions of every peer of a config, the
statistics and ratios of each, peak memory, and the CSV / markdown / compare outputs.

A peer that fails (torch.compile on a double backward, a CUDA-graph capture that the
step does not allow) is a row with its error, not a silent skip. On the CPU each
repetition is timed by the wall clock; on a GPU by CUDA events, and a peer can also be
captured once into a CUDA graph and replayed (:func:`cuda_graph`).
"""
from __future__ import annotations

import csv
import datetime
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

#: The CSV columns, in order.
SCHEMA = ("suite", "config", "peer", "backend", "status", "median_ms", "p20_ms", "p80_ms", "ratio_to_eager",
          "floor_ms", "fraction_of_floor", "peak_mem_mb", "mem_method", "timing", "error", "reps", "threads",
          "torch", "fastgan", "device", "date")


@dataclass
class Peer:
    """One way to run a config: ``fn`` does one repetition; ``backend`` names the
    fastgan backend it uses (empty for torch's own peers). A frame that dynamo failed
    to compile once runs eagerly ever after, which would time eager under the name
    torch.compile; so compiled peers start from reset caches."""

    name: str
    fn: Callable[[], object]
    backend: str = ""
    compiled: bool = False


@dataclass
class Measured:
    peer: Peer
    times: list[float] = field(default_factory=list)
    error: str = ""
    peak_mem_mb: float | None = None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def memory_method(device: torch.device) -> str:
    return "cuda allocator peak" if device.type == "cuda" else "torch.profiler allocation records"


def peak_memory_mb(fn: Callable[[], object], device: torch.device) -> float:
    """Peak memory of one call of ``fn`` above what was allocated before it (see
    memory_method): on CUDA the caching allocator's peak statistics; on the CPU the
    running sum, in time order, of every allocation and free the profiler recorded
    (inside C++ ops too, whose own totals would hide frees made before allocations)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    from torch._C._profiler import _EventType

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    changes, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.typed[0] == _EventType.Allocation and node.typed[1].device.type == "cpu":
            changes.append((node.start_time_ns, node.typed[1].alloc_size))
        stack.extend(node.children)
    running = peak = 0
    for _, change in sorted(changes):
        running += change
        peak = max(peak, running)
    return peak / 2**20


def timing_method(device: torch.device) -> str:
    return "cuda events" if device.type == "cuda" else "wall clock"


def _wall_clock(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _cuda_events(fn: Callable[[], object]) -> float:
    """Seconds between two events recorded on the current stream around ``fn``, after
    the work queued before it has finished."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.current_stream().synchronize()
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3


def cuda_graph(peer: Peer, warmup: int = 3) -> Peer:
    """``peer`` captured into a CUDA graph on its first call (after ``warmup`` calls
    on a side stream, as capture requires) and replayed on every call. A step that
    cannot be captured (a host synchronisation, a CPU tensor copied in) raises on that
    first call, which :func:`measure` records as the peer's error."""
    graph = None

    def replay():
        nonlocal graph
        if graph is None:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    peer.fn()
            torch.cuda.current_stream().wait_stream(side)
            captured = torch.cuda.CUDAGraph()
            with torch.cuda.graph(captured):
                peer.fn()
            graph = captured
        graph.replay()

    return Peer(f"{peer.name} (cuda graph)", replay, peer.backend)


def measure(peers: list[Peer], reps: int, warmup: int, device: torch.device) -> list[Measured]:
    """Warms every peer up, then times ``reps`` interleaved repetitions (peer after
    peer within a repetition) by :func:`timing_method`. A peer that raises is measured
    no further and keeps its error."""
    timed = _cuda_events if device.type == "cuda" else _wall_clock
    results = [Measured(p) for p in peers]
    for r in results:
        if r.peer.compiled:
            torch._dynamo.reset()
        try:
            for _ in range(warmup):
                r.peer.fn()
            r.peak_mem_mb = peak_memory_mb(r.peer.fn, device)
        except Exception as exc:  # noqa: BLE001  (any failure is the peer's result)
            r.error = _error_line(exc)
    for _ in range(reps):
        for r in results:
            if r.error:
                continue
            r.times.append(timed(r.peer.fn))
    return results


def quantiles(times: list[float]) -> tuple[float, float, float]:
    """(median, p20, p80) of ``times``."""
    ordered = sorted(times)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return statistics.median(ordered), pick(0.2), pick(0.8)


def rows(suite: str, config: str, measured: list[Measured], device: torch.device,
         floor_s: float | None = None, baseline: str = "eager") -> list[dict]:
    """One CSV row per peer. ``ratio_to_eager`` is the baseline peer's median over
    this peer's (above 1: faster than eager); ``fraction_of_floor`` is the GEMM floor
    (measured in the same run) over this peer's median."""
    import fastgan

    base = next((quantiles(m.times)[0] for m in measured if m.peer.name == baseline and m.times), None)
    method = memory_method(device)
    out = []
    for m in measured:
        row = dict.fromkeys(SCHEMA, "")
        row.update(suite=suite, config=config, peer=m.peer.name, backend=m.peer.backend,
                   status="error" if m.error else "ok", error=m.error, reps=len(m.times),
                   threads=torch.get_num_threads(), torch=torch.__version__, fastgan=fastgan.__version__,
                   device=device_name(device), date=datetime.date.today().isoformat(), mem_method=method,
                   timing=timing_method(device))
        if m.times:
            median, p20, p80 = quantiles(m.times)
            row.update(median_ms=median * 1e3, p20_ms=p20 * 1e3, p80_ms=p80 * 1e3)
            if base is not None:
                row["ratio_to_eager"] = base / median
            if floor_s is not None:
                row.update(floor_ms=floor_s * 1e3, fraction_of_floor=floor_s / median)
        if m.peak_mem_mb is not None:
            row["peak_mem_mb"] = m.peak_mem_mb
        out.append(row)
    return out


def _fmt(value, spec: str) -> str:
    return "" if value == "" or value is None else format(float(value), spec)


def write(all_rows: list[dict], out_dir: str, stem: str, command: str) -> list[str]:
    """``out_dir/stem.csv`` (every column of SCHEMA) and ``out_dir/stem.md`` (the
    command, the machine, and a table)."""
    os.makedirs(out_dir, exist_ok=True)
    csv_path, md_path = os.path.join(out_dir, f"{stem}.csv"), os.path.join(out_dir, f"{stem}.md")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(SCHEMA))
        writer.writeheader()
        writer.writerows(all_rows)
    first = all_rows[0]
    with open(md_path, "w") as f:
        f.write(f"Command: `{command}`\n\n{first['device']}, {first['threads']} threads, torch "
                f"{first['torch']}, fastgan {first['fastgan']}, {first['date']}. Median (p20-p80) of "
                f"interleaved repetitions after warm-up, timed by {first['timing']}; ratio = eager's "
                f"median over the peer's; peak memory by {first['mem_method']}.\n\n")
        f.write("| suite | config | peer | median ms (p20-p80) | vs eager | of GEMM floor | peak MB |\n")
        f.write("|---|---|---|---|---|---|---|\n")
        for r in all_rows:
            peer = r["peer"] + (f" ({r['backend']})" if r["backend"] else "")
            if r["status"] == "error":
                f.write(f"| {r['suite']} | {r['config']} | {peer} | fails: {r['error']} | | | |\n")
                continue
            times = f"{_fmt(r['median_ms'], '.2f')} ({_fmt(r['p20_ms'], '.2f')}-{_fmt(r['p80_ms'], '.2f')})"
            ratio = f"{_fmt(r['ratio_to_eager'], '.2f')}x" if r["ratio_to_eager"] != "" else ""
            floor = f"{100 * float(r['fraction_of_floor']):.0f}%" if r["fraction_of_floor"] != "" else ""
            f.write(f"| {r['suite']} | {r['config']} | {peer} | {times} | {ratio} | {floor} | "
                    f"{_fmt(r['peak_mem_mb'], '.1f')} |\n")
    return [csv_path, md_path]


def read_csv(path: str) -> list[dict]:
    """The rows of a CSV written by :func:`write`; ValueError if it is not one."""
    with open(path, newline="") as f:
        try:
            rows = list(csv.DictReader(f))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"not a CSV file ({exc})") from None
    needed = {"suite", "config", "peer", "backend", "status", "median_ms"}
    if not rows or not needed <= set(rows[0]):
        raise ValueError(f"not a fastgan bench CSV (expected the columns {', '.join(sorted(needed))})")
    return rows


def compare(new_rows: list[dict], old_csv: str) -> list[str]:
    """One line per (suite, config, peer, backend) in both runs: old and new medians and
    the speed-up (old over new); rows only in one run are named too."""
    old = {(r["suite"], r["config"], r["peer"], r["backend"]): r for r in read_csv(old_csv)}
    lines = []
    for r in new_rows:
        key = (r["suite"], r["config"], r["peer"], r["backend"])
        before = old.pop(key, None)
        name = " / ".join(k for k in key if k)
        if before is None:
            lines.append(f"{name}: new")
        elif before["status"] != "ok" or r["status"] != "ok":
            lines.append(f"{name}: {before['status']} -> {r['status']}")
        else:
            a, b = float(before["median_ms"]), float(r["median_ms"])
            lines.append(f"{name}: {a:.3f} ms -> {b:.3f} ms ({a / b:.2f}x)")
    lines += [f"{' / '.join(k for k in key if k)}: gone" for key in old]
    return lines


def plot_scaling(all_rows: list[dict], path: str) -> str | None:
    """Time and fraction of the GEMM floor of the scaling suite's two sweeps."""
    rows = [r for r in all_rows if r["suite"] == "scaling" and r["status"] == "ok"]
    if not rows:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, sweep, label in ((axes[0], "batch", "batch B (width 512)"), (axes[1], "width", "width (B = 256)")):
        part = [r for r in rows if r["config"].startswith(sweep)]
        xs = [int(r["config"].split("B=")[1]) if sweep == "batch" else int(r["config"].split("width ")[-1].split(",")[0])
              for r in part]
        ax.plot(xs, [r["median_ms"] for r in part], "o-", label="fused step (ms)")
        ax.plot(xs, [r["floor_ms"] for r in part], "s--", label="GEMM floor (ms)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("ms")
        twin = ax.twinx()
        twin.plot(xs, [100 * r["fraction_of_floor"] for r in part], "^:", color="gray", label="% of floor")
        twin.set_ylabel("% of GEMM floor")
        twin.set_ylim(0, 110)
        ax.legend(loc="upper left")
    fig.suptitle(f"fused WGAN-GP critic step, {rows[0]['device']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
