"""``python -m emnist_dist.sweep --config FILE --space SWEEP.yaml --study DIR --trials N [--workers K]
[--section.key VALUE ...]``, and ``python -m emnist_dist.sweep --study DIR --summary``.

Exit codes: 0 the study has its N trials (or this worker found none left to run); 2 bad input (one
line on stderr, before any trial starts when it is the config or the sweep file); 3 never (a diverged
trial is FAIL and the sweep goes on); 75 a stop signal (SIGTERM/SIGUSR1) interrupted a trial after its
checkpoint: run the same command again to resume it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import optuna
import torch

from ..cli import CliParser, run_cli
from ..errors import UserError, one_line
from ..train.__main__ import EXIT_PREEMPTED
from .results import summary_lines, write_pictures, write_results
from .space import check_values, read_space
from .study import StudyFolder, load_existing, open_study
from .worker import Sweep, run_worker

SET_PER_TRIAL = ("--output_dir", "--resume")


def build_parser() -> CliParser:
    parser = CliParser(
        prog="python -m emnist_dist.sweep",
        description="Hyperparameter search with Optuna over a W&B sweep file, stored in --study DIR (no server); "
        "every other --section.key VALUE overrides the --config for all trials, as for python -m emnist_dist.train.")
    parser.add_argument("--config", help="the base training config (YAML), as for python -m emnist_dist.train")
    parser.add_argument("--space", help="W&B sweep file: method, metric, parameters, early_terminate")
    parser.add_argument("--study", required=True, help="study folder: journal, trials/NNNN/, trials.csv, best.yaml")
    parser.add_argument("--trials", type=int, help="trials the study should hold in all (the grid's size at most)")
    parser.add_argument("--workers", type=int, default=1, help="local worker processes (default 1; SLURM: one per "
                        "array task)")
    parser.add_argument("--stale-after", type=float, default=120.0, help="seconds without a heartbeat after which "
                        "a running trial's worker counts as gone (default 120)")
    parser.add_argument("--summary", action="store_true", help="print the best trials of --study DIR and rewrite its "
                        "trials.csv, best.yaml and pictures")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the sweep (or its summary); returns the exit code. An OS error on the study
    folder (read-only, a trial folder replaced by a file) is one line naming it."""
    try:
        return run_sweep(argv)
    except OSError as err:
        raise UserError(f"{one_line(err)}: expected a readable and writable --study folder as the sweep wrote it") from None


def run_sweep(argv: list[str] | None) -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep logs each trial's outcome itself
    args, overrides = build_parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    folder = StudyFolder(args.study)
    if args.summary:
        return summarize(folder)
    for flag, value in (("--config", args.config), ("--space", args.space), ("--trials", args.trials)):
        if value is None:
            raise UserError(f"{flag} is required (or --summary)")
    if args.trials < 1 or args.workers < 1 or args.stale_after <= 0:
        raise UserError(f"--trials {args.trials} --workers {args.workers} --stale-after {args.stale_after}: "
                        "expected positive numbers")
    taken = [a for a in overrides if a.split("=", 1)[0] in SET_PER_TRIAL]
    if taken:
        raise UserError(f"{taken[0]}: set by the sweep for each trial (DIR/trials/NNNN, resume auto): leave it out")
    space = read_space(args.space)
    base_args = ["--config", args.config, *overrides]
    base = check_values(space, base_args)
    if base.data.val_fraction <= 0:
        raise UserError("data.val_fraction=0: a sweep chooses by validation (never by test): expected a fraction > 0")
    trials = min(args.trials, space.grid_size() or args.trials)
    sweep = Sweep(folder, space, base_args, base, trials, args.stale_after)
    if args.workers > 1:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UserError("--workers: one worker per launch under accelerate launch / torchrun; expected --workers 1")
        child = ["--config", args.config, "--space", args.space, "--study", args.study, "--trials", str(trials),
                 "--stale-after", str(args.stale_after), *overrides]
        return run_local_workers(sweep, child, args.workers)
    worker = int(os.environ.get("EMNIST_SWEEP_WORKER") or os.environ.get("SLURM_ARRAY_TASK_ID") or 0)
    try:
        return run_worker(sweep, worker)
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def run_local_workers(sweep: Sweep, child_args: list[str], count: int) -> int:
    """Start ``count`` workers of the study as processes of this command, forward SIGTERM/SIGUSR1 to them, wait;
    then write the study's results. Returns 75 when any worker was interrupted, else the first failure's code."""
    study, _ = open_study(sweep.folder, sweep.space, sweep.identity(), seed=sweep.base.seed, worker=0,
                       epochs=sweep.base.train.epochs)  # created once here (bad input stops before any worker)
    workers = [subprocess.Popen([sys.executable, "-m", "emnist_dist.sweep", *child_args],
                                env={**os.environ, "EMNIST_SWEEP_WORKER": str(i)}) for i in range(count)]
    codes = wait_forwarding_signals(workers)
    with sweep.folder.claims():
        write_results(study, sweep.folder, sweep.space.metric, sweep.space.keys)
    write_pictures(study, sweep.folder)
    if EXIT_PREEMPTED in codes:
        return EXIT_PREEMPTED
    return next((code for code in codes if code), 0)


def wait_forwarding_signals(workers: list[subprocess.Popen]) -> list[int]:
    """Wait for ``workers`` and return their exit codes. SIGTERM/SIGUSR1 received meanwhile are passed on to those
    still running, and SIGINT (Ctrl-C) as SIGTERM: the workers checkpoint, never die mid-save or run on orphaned.
    The previous handlers are back on return."""

    def forward(signum, frame) -> None:
        for process in workers:
            if process.poll() is None:
                process.send_signal(signum)

    def stop_gracefully(signum, frame) -> None:
        forward(signal.SIGTERM, frame)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, stop_gracefully)
    try:
        return [process.wait() for process in workers]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def summarize(folder: StudyFolder) -> int:
    """Rewrite the study's results and print its best trials."""
    storage = folder.storage() if folder.journal.is_file() else None
    study = load_existing(folder, storage)
    definition = study.user_attrs.get("space") or {}
    metric, keys = definition.get("metric", "value"), list(definition.get("parameters", {}))
    with folder.claims():
        write_results(study, folder, metric, keys)
    write_pictures(study, folder)
    print("\n".join(summary_lines(study, metric, keys)))
    return 0


def cli() -> None:
    """Console script entry point (``emnist-sweep``)."""
    run_cli(main)


if __name__ == "__main__":
    cli()
