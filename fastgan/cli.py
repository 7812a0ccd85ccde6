"""The ``fastgan`` command line: ``train``, ``sample``, ``plot``, ``doctor``, ``bench``
and ``reproduce``."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tomllib
import time
import warnings
from typing import NoReturn

from fastgan import FastganWarning, NonFiniteError, __version__, run_folder
from fastgan.objectives import DESCRIPTIONS
from fastgan.config import TrainConfig

TRAIN_EPILOG = "objectives:\n" + "\n".join(f"  {name:<10} {text}" for name, text in DESCRIPTIONS.items()) + """

data: 8gaussians, 25gaussians, swissroll, parallel-lines, digits, digits32 (the digits
upsampled to 32x32), or the path of a .npy/.npz array (with --conditional, an .npz's y
holds the labels) or a folder of images (or of one sub-folder per class). With no
arguments, `fastgan train` is the demo: WGAN-GP with the fused critic on 8gaussians,
Adam 5e-4 decayed linearly over 1200 steps (about 2.5 minutes on 2 CPU cores).
Ctrl-C or SIGTERM saves a checkpoint; `fastgan train --resume RUN_DIR` continues it.
A new run into a folder that holds one is refused: --resume continues that run,
--overwrite replaces it."""


def _doctor(args) -> int:
    if args.interpret:
        # Before anything imports triton: its kernels then run on CPU tensors.
        os.environ["TRITON_INTERPRET"] = "1"
    from fastgan.verify import doctor, format_report

    checks = doctor()
    print(format_report(checks))
    failed = [c.backend for c in checks if c.available and not c.passed]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """A flag per TrainConfig field, defaulting to 'not given' so that a --config file
    and the checkpoint of --resume are overridden only by what the command line says."""
    for f in dataclasses.fields(TrainConfig):
        name = f.name.replace("_", "-")
        if f.metadata["type"] is bool and f.default:
            parser.add_argument(f"--no-{name}", dest=f.name, action="store_false", default=argparse.SUPPRESS,
                                help=f"turn off {f.metadata['help']}")
        elif f.metadata["type"] is bool:
            parser.add_argument(f"--{name}", dest=f.name, action="store_true", default=argparse.SUPPRESS,
                                help=f.metadata["help"])
        else:
            default = f.metadata["unset"] if f.default is None else f.default
            parser.add_argument(f"--{name}", dest=f.name, type=f.metadata["type"], default=argparse.SUPPRESS,
                                help=f"{f.metadata['help']} (default: {default})")


class UsageError(Exception):
    """A bad command line, file or value: printed as one line, exit status 2."""


def _read_config(path: str) -> dict:
    """The settings of a TOML file, by field name; errors name the file."""
    try:
        with open(path, "rb") as f:
            values = tomllib.load(f)
    except OSError as exc:
        raise UsageError(f"--config {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config {path}: not a valid TOML file ({exc})") from None
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k.replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"--config {path}: unknown settings {unknown}; known: {sorted(known)}")
    return values


def _config_error(exc, given: dict, config: str | None) -> str:
    """A setting's error, naming where its value came from: the flag, the file, or
    the checkpoint (or the demo)."""
    from fastgan.config import ConfigError

    if not isinstance(exc, ConfigError):
        return str(exc)
    flag = "--" + exc.setting.replace("_", "-")
    if exc.setting in given:
        return f"{flag} {exc.problem}"
    if config:
        return f"--config {config}: {exc.setting} {exc.problem}"
    return f"{exc.setting} {exc.problem}"


#: `fastgan train` with no arguments: WGAN-GP with the fused critic on 8gaussians, the
#: toy code's nets, penalty and betas, with Adam at 5e-4 decayed linearly to 0 over
#: 1,200 generator steps (about 2.5 minutes on 2 CPU cores) instead of the paper's 1e-4,
#: which needs many more steps to reach the same samples.
DEMO = {"objective": "wgan-gp", "data": "8gaussians", "steps": 1200, "lr": 5e-4, "lr_decay": "linear",
        "out": "runs/demo"}


def _launch(nproc: int, argv: list[str]) -> NoReturn:
    """Re-runs this ``fastgan train`` command as ``nproc`` ranks under torchrun (this
    process becomes torchrun, which forwards Ctrl-C and SIGTERM to every rank)."""
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc-per-node":
            skip = True
        elif not arg.startswith("--nproc-per-node="):
            rest.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "fastgan.cli", *rest]
    print("fastgan: " + " ".join(command[1:]), flush=True)
    os.execv(sys.executable, command)


def _train(args) -> int:
    from fastgan import distributed

    if args.nproc_per_node < 1:
        print(f"fastgan train: --nproc-per-node must be >= 1, got {args.nproc_per_node}", file=sys.stderr)
        return 2
    if args.nproc_per_node > 1:
        problem = _launch_problem(args)
        if problem:  # said once here, not once per rank under torchrun
            print(f"fastgan train: {problem}", file=sys.stderr)
            return 2
        _launch(args.nproc_per_node, args.argv)
    try:
        return _train_here(args)
    except distributed.PeerLost as exc:
        print(f"fastgan train: {exc}", file=sys.stderr)
        return 1
    finally:
        distributed.shutdown()


def _given(args) -> dict:
    """The TrainConfig settings the command line gave."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}


def _new_run_settings(args, given: dict) -> dict:
    """The settings of a new run: the --config file's and the flags', or the demo's when
    neither gives a setting of the run (``--overwrite`` alone still trains the demo)."""
    if not args.config and not set(given) - {"overwrite"}:
        return {**DEMO, **given}
    return {**(_read_config(args.config) if args.config else {}), **given}


def _launch_problem(args) -> str | None:
    """What is wrong with a new run's settings, checked before the ranks start (a
    resumed run's settings come from its checkpoint: its ranks check them)."""
    if args.resume:
        return None
    given = _given(args)
    try:
        cfg = TrainConfig(**_new_run_settings(args, given))
        cfg.validate()
    except (ValueError, UsageError) as exc:
        return _config_error(exc, given, args.config)
    refusal = run_folder.refusal(cfg.out)
    if refusal is not None and not cfg.overwrite:  # (each rank would refuse too: said once here)
        from fastgan.config import ConfigError

        return _config_error(ConfigError("out", refusal), given, args.config)
    if cfg.batch % args.nproc_per_node:
        return f"--batch {cfg.batch} does not split evenly over --nproc-per-node {args.nproc_per_node} processes"
    return None


def _train_here(args) -> int:
    """Trains in this process (one rank of a distributed run, or the whole run)."""
    from fastgan import plots
    from fastgan.checkpoint import CheckpointError
    from fastgan.trainer import Trainer

    given = _given(args)
    if args.resume and args.config:
        print("fastgan train: --config and --resume cannot be combined (a resumed run keeps its settings; "
              "flags may change steps, logging and output)", file=sys.stderr)
        return 2
    try:
        if args.resume:
            trainer = Trainer.resume(args.resume, **given)
        else:
            settings = _new_run_settings(args, given)
            if settings.items() >= DEMO.items() and os.environ.get("RANK", "0") == "0":  # once, not per rank
                print("fastgan: the demo (" + ", ".join(f"{k} {v}" for k, v in DEMO.items()) + ")")
            trainer = Trainer(TrainConfig(**settings))
    except (CheckpointError, ValueError, RuntimeError, UsageError) as exc:
        print(f"fastgan train: {_config_error(exc, given, args.config)}", file=sys.stderr)
        return 2
    cfg = trainer.cfg
    group = trainer.group
    ranks = f", {group.world_size} ranks of batch {trainer.batch}" if group.active else ""
    if group.is_main:
        print(f"fastgan: {cfg.objective} on {trainer.data.name}, {cfg.steps} generator steps from step "
              f"{trainer.step}, device {trainer.device}{ranks}, output in {cfg.out}")
    try:
        summary = trainer.run()
    except NonFiniteError as exc:
        kept = (f"the last checkpoint is {trainer.checkpoint_path}" if os.path.exists(trainer.checkpoint_path)
                else "no checkpoint was written")
        print(f"fastgan train: {exc}; stopped before saving them, {kept}", file=sys.stderr)
        return 1
    if not group.is_main:
        return 128 + int(summary["interrupted"]) if summary["interrupted"] is not None else 0
    paths = plots.run_plots(trainer)
    if summary["profile"]:
        print(summary["profile"])
        print(f"Chrome trace: {os.path.join(cfg.out, 'trace.json')}")
    _print_metrics("start", summary["first"])
    _print_metrics("end", summary["last"])
    print("outputs: " + ", ".join([summary["log"], summary["checkpoint"], *paths]))
    if summary["interrupted"] is not None:
        print(f"interrupted at step {summary['step']}; resume with: fastgan train --resume {cfg.out}")
        return 128 + int(summary["interrupted"])
    return 0


def _print_metrics(label: str, record: dict | None) -> None:
    if not record or "w1" not in record:
        return
    parts = [f"W1 {record['w1']:.4f}"]
    if "modes" in record:
        parts += [f"modes {record['modes']}", f"high quality {100 * record['high_quality']:.1f}%"]
    if "classes" in record:
        parts += [f"classes {record['classes']}/10", f"class KL {record['class_kl']:.3f}"]
    if "class_agreement" in record:
        parts += [f"class agreement {100 * record['class_agreement']:.1f}%"]
    if "fid" in record:
        parts += [f"on {record['features']} features: FID {record['fid']:.3f}, KID {record['kid']:.4f}, "
                  f"precision {record['precision']:.3f}, recall {record['recall']:.3f}"]
    if "is" in record:
        parts += [f"IS {record['is']:.3f} +- {record['is_std']:.3f} on its logits"]
    print(f"{label} (step {record['step']}): " + ", ".join(parts))


def _load_for_output(checkpoint_path: str, device: str):
    from fastgan.trainer import Trainer

    return Trainer.from_checkpoint(checkpoint_path, device=device, progress=False)


def _sample(args) -> int:
    import numpy as np
    import torch

    from fastgan import plots
    from fastgan.checkpoint import CheckpointError

    if args.n < 1:
        print(f"fastgan sample: -n must be >= 1, got {args.n}", file=sys.stderr)
        return 2
    if not args.out.endswith((".npy", ".png")):
        print(f"fastgan sample: --out {args.out}: must end in .npy or .png", file=sys.stderr)
        return 2
    try:
        _make_folder(os.path.dirname(os.path.abspath(args.out)), f"--out {args.out}")
        trainer = _load_for_output(args.checkpoint, args.device)
    except (CheckpointError, ValueError, RuntimeError, UsageError) as exc:
        print(f"fastgan sample: {_config_error(exc, {'device': args.device}, None)}", file=sys.stderr)
        return 2
    if args.cls is not None and not trainer.num_classes:
        print(f"fastgan sample: --class {args.cls}: {args.checkpoint} is not a conditional run", file=sys.stderr)
        return 2
    if args.cls is not None and not 0 <= args.cls < trainer.num_classes:
        print(f"fastgan sample: --class must be in 0..{trainer.num_classes - 1}, got {args.cls}", file=sys.stderr)
        return 2
    labels = None if args.cls is None else torch.full((args.n,), args.cls, dtype=torch.long)
    samples = trainer.sample(args.n, raw=args.raw, labels=labels)
    which = "raw generator" if args.raw or trainer.ema is None else "EMA generator"
    which += "" if args.cls is None else f", class {args.cls}"
    if args.out.endswith(".npy"):
        np.save(args.out, samples.numpy())
    else:
        title = f"{args.n} samples, {trainer.cfg.objective} on {trainer.data.name}, step {trainer.step}"
        title += "" if not trainer.num_classes or args.cls is not None else ", columns: the classes in turn"
        real = None if trainer.data.is_image else trainer.data.sample(args.n)
        plots.samples(args.out, [(which if trainer.ema is not None else "", samples)], title, real, trainer.critic,
                      trainer.device)
    print(f"wrote {args.n} samples of the {which} to {args.out}")
    return 0


def _make_folder(folder: str, flag: str) -> None:
    """Creates an output folder; a one-line error naming ``flag`` if it cannot."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{flag}: cannot create the folder {folder}: {exc.strerror}") from None


def _plot(args) -> int:
    from fastgan import plots
    from fastgan.checkpoint import CheckpointError

    try:
        trainer = _load_for_output(os.path.join(args.run_dir, "checkpoint.pt"), args.device)
    except (CheckpointError, ValueError, RuntimeError) as exc:
        print(f"fastgan plot: {_config_error(exc, {'device': args.device}, None)}", file=sys.stderr)
        return 2
    for path in plots.run_plots(trainer):
        print(f"wrote {path}")
    return 0


def _reproduce(args) -> int:
    from fastgan import reproduce

    if args.seed < 0:
        print(f"fastgan reproduce: --seed must be >= 0, got {args.seed}", file=sys.stderr)
        return 2
    try:
        _make_folder(args.out, f"--out {args.out}")
    except UsageError as exc:
        print(f"fastgan reproduce: {exc}", file=sys.stderr)
        return 2
    names = list(reproduce.EXPERIMENTS) if args.name == "all" else [args.name]
    start = time.perf_counter()
    reports = reproduce.run_all(names, args.quick, args.out, args.seed)
    minutes = (time.perf_counter() - start) / 60
    claims = [c for r in reports for c in r.claims]
    print(f"{sum(c.holds for c in claims)} of {len(claims)} claims hold ({minutes:.1f} minutes)")
    if args.name == "all":
        command = f"fastgan reproduce all{' --quick' if args.quick else ''} --seed {args.seed}"
        path = os.path.join(args.out, "claims.md")
        with open(path, "w") as f:
            f.write(reproduce.markdown_table(reports, command, minutes))
        print(f"wrote {path}")
    return 0


def _bench(rest: list[str]) -> int:
    from fastgan.benchmarks.cli import main as bench_main

    return bench_main(rest)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """fastgan's own warnings as one line, ``fastgan: warning: ...``; others as Python
    shows them."""
    if issubclass(category, FastganWarning):
        print(f"fastgan: warning: {message}", file=sys.stderr if file is None else file)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fastgan`` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    with warnings.catch_warnings():  # (the caller's way of showing warnings comes back after)
        warnings.showwarning = _show_warning
        if argv[:1] == ["bench"]:
            return _bench(argv[1:])
        args = build_parser().parse_args(argv)
        args.argv = argv
        return args.run(args)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command but ``bench`` (which parses its own arguments)."""
    parser = argparse.ArgumentParser(prog="fastgan", description="fastgan: fused WGAN kernels")
    parser.add_argument("--version", action="version", version=f"fastgan {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    doctor = commands.add_parser(
        "doctor", help="check every backend: built, device, parity with the reference",
        description="For each backend: whether it is built or importable, the device it "
                    "would run on, and a parity self-check against the reference there. "
                    "Exits 1 if an available backend fails its check.")
    doctor.add_argument("--interpret", action="store_true",
                        help="check the Triton backend through Triton's interpreter on the CPU")
    doctor.set_defaults(run=_doctor)

    train = commands.add_parser(
        "train", help="train a GAN (default: the WGAN-GP demo on 8gaussians)",
        description="Train one of the seed papers' objectives with the fused ops underneath. "
                    "Writes metrics.jsonl, checkpoint.pt, samples.png and curves.png to --out.",
        epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--config", help="a TOML file of settings (the flags' names); flags override it")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run checkpointed in RUN_DIR")
    train.add_argument("--nproc-per-node", type=int, default=1, metavar="N",
                       help="train data-parallel on N processes of this machine (torchrun; gloo on the CPU, "
                            "NCCL on GPUs, one GPU each); the batch is split between them")
    _add_config_flags(train)
    train.set_defaults(run=_train)

    sample = commands.add_parser("sample", help="draw samples from a checkpoint",
                                 description="Draw samples from a trained generator.")
    sample.add_argument("--checkpoint", required=True, help="a run's checkpoint.pt")
    sample.add_argument("-n", type=int, default=1000, help="how many samples (default 1000)")
    sample.add_argument("--out", required=True, help="samples.npy (an array) or samples.png (a picture)")
    sample.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default auto)")
    sample.add_argument("--raw", action="store_true",
                        help="sample the trained generator, not its EMA (for runs with --ema-decay)")
    sample.add_argument("--class", dest="cls", type=int, default=None, metavar="K",
                        help="samples of class K (conditional runs; default: each class in turn)")
    sample.set_defaults(run=_sample)

    plot = commands.add_parser("plot", help="redraw a run's samples.png and curves.png",
                               description="Redraw the plots of a run folder from its checkpoint "
                                           "and metrics.jsonl.")
    plot.add_argument("run_dir", help="a run folder (with checkpoint.pt and metrics.jsonl)")
    plot.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default auto)")
    plot.set_defaults(run=_plot)

    from fastgan.reproduce import EXPERIMENTS

    reproduce = commands.add_parser(
        "reproduce", help="check a claim of the seed papers on a small problem",
        description="Run one of the seed papers' experiments: it writes NAME.png and NAME.json to "
                    "--out and prints each claim, the measured value, and whether it holds.",
        epilog="experiments: " + ", ".join(EXPERIMENTS) + ", or all")
    reproduce.add_argument("name", choices=[*EXPERIMENTS, "all"], metavar="NAME",
                           help="an experiment (see below), or all")
    reproduce.add_argument("--quick", action="store_true", help="a small, fast version (a smoke test)")
    reproduce.add_argument("--out", default=os.path.join("runs", "reproduce"), help="the output folder")
    reproduce.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    reproduce.set_defaults(run=_reproduce)

    # listed for --help; `fastgan bench ...` goes to fastgan.benchmarks.cli before parsing
    commands.add_parser("bench", help="benchmark fastgan against its peers (fastgan bench --help)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
