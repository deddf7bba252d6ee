"""Running the real training (and audit) entry points in subprocesses, as users and launchers do, or in this
process where a test's claim is the run rather than the process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]

# A run small enough for a test: synthetic Balanced (47 classes, 20 glyphs each, 3 test glyphs each:
# 141 test samples, an odd count so exact sharding over 2 ranks is exercised), timm's tiny
# test_efficientnet at 32 px.
SYNTHETIC = ["--data.split", "balanced", "--data.source", "synthetic",
             "--data.synthetic_train_per_class", "20", "--data.synthetic_test_per_class", "3"]
TINY = [*SYNTHETIC, "--data.image_size", "32", "--model.name", "test_efficientnet", "--model.pretrained", "false",
        "--train.epochs", "2", "--train.batch_size", "32", "--train.eval_batch_size", "64", "--train.lr", "1e-3",
        "--train.warmup_epochs", "0.5", "--train.T_0", "1", "--log.trackers", "[]", "--log.progress", "false",
        "--log.log_every", "1", "--cpu", "true"]


def env_for_tests(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", WANDB_MODE="offline", WANDB_DIR=str(tmp_path), WANDB_SILENT="true",
               HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    return env


def train_cmd(args: list[str], processes: int = 1, module: str = "emnist_dist.train") -> list[str]:
    if processes == 1:
        return [sys.executable, "-m", module, *args]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(REPO / "accelerate_configs" / "cpu_ddp.yaml"), "--num_processes", str(processes),
            "--main_process_port", str(free_port()), "-m", module, *args]


def run_train(args: list[str], tmp_path: Path, processes: int = 1, timeout: float = 300,
              extra_env: dict | None = None, module: str = "emnist_dist.train") -> subprocess.CompletedProcess:
    env = {**env_for_tests(tmp_path), **(extra_env or {})}
    return subprocess.run(train_cmd(args, processes, module), cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def train_in_process(args: list[str], main: Callable[[list[str]], int] | None = None) -> subprocess.CompletedProcess:
    """What ``python -m emnist_dist.train ARGS`` runs (``run_cli(main, ARGS)``: exit code, one-line errors, console
    lines; ``main``: another command's, e.g. the audit's), inside this process with stdout and stderr captured, as
    :func:`run_train` reports it. A new process spends ~9 CPU-s importing torch, timm and torchmetrics before it
    parses a flag; fits in one process leave it as they found it (tests/integration/test_trainer_api.py). Not for
    bf16: accelerate keeps the first run's precision for the rest of the process (run_train it)."""
    from emnist_dist.cli import run_cli
    from emnist_dist.train.__main__ import main as train_main

    main = main or train_main
    stdout, stderr = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as run_train's OMP_NUM_THREADS=1: two threads on a busy 2-core machine are far slower
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr):
            run_cli(main, args)
    except SystemExit as exit_:
        code = exit_.code
    finally:
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess([main.__module__, *args], code, stdout.getvalue(), stderr.getvalue())


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def final(out: Path) -> dict:
    return json.loads((out / "final.json").read_text())


def metrics_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def weights(out: Path) -> dict:
    return load_file(out / "model" / "model.safetensors")
