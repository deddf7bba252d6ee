"""``python -m emnist_dist.train --config FILE [--section.key VALUE ...]`` (also under ``accelerate launch``).

Exit codes: 0 finished; 2 bad input (one line on stderr); 3 the loss became NaN/inf (one ``error:``
line naming the first non-finite step); 75 stopped by SIGTERM/SIGUSR1 after saving a checkpoint
(run again with ``--resume auto``).
"""

from __future__ import annotations

import os

from ..config import parse_config
from ..errors import run_cli
from .trainer import Trainer, exit_code


def main(argv: list[str] | None = None) -> int:
    """Parse the config and train; returns the exit code."""
    cfg = parse_config(argv)
    if cfg.debug:  # this process's CUDA calls become synchronous (an error names the kernel that failed)
        os.environ.setdefault("CUDA_LAUNCH_BLOCKING", "1")
    return exit_code(lambda: Trainer(cfg).fit())


def cli() -> None:
    """Console script entry point (``emnist-train``)."""
    run_cli(main)


if __name__ == "__main__":
    cli()
