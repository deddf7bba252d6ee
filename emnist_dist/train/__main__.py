"""``python -m emnist_dist.train --config FILE [--section.key VALUE ...]`` (also under ``accelerate launch``).

Exit codes: 0 finished; 2 bad input (one line on stderr); 3 the loss became NaN/inf (one ``error:``
line naming the first non-finite step); 75 stopped by SIGTERM/SIGUSR1 after saving a checkpoint
(run again with ``--resume auto``).
"""

from __future__ import annotations

import os
from typing import Callable

from ..cli import run_cli
from ..config import parse_config
from .outcomes import Diverged, Preempted

EXIT_DIVERGED = 3
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: a checkpoint was saved, run again with --resume auto


def exit_code(run: Callable[[], object]) -> int:
    """For a command line: run ``run()`` and map its outcome to the exit code: 0, 3 (:class:`Diverged`, its
    message as one ``error:`` line) or 75 (:class:`Preempted`); then end the process group, which the
    command's process formed (``fit`` leaves it up)."""
    import torch  # here, as in main(): the command refuses bad input before torch loads
    from accelerate import PartialState

    try:
        run()
        return 0
    except Diverged as err:
        PartialState().print(f"error: {err}")
        return EXIT_DIVERGED
    except Preempted:
        return EXIT_PREEMPTED
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    """Parse the config and train; returns the exit code."""
    cfg = parse_config(argv)
    if cfg.debug:  # this process's CUDA calls become synchronous (an error names the kernel that failed)
        os.environ.setdefault("CUDA_LAUNCH_BLOCKING", "1")
    # Imported once the config is good: torch, timm and torchmetrics take ~10 s to load, and a mistyped flag,
    # a bad value or --help/--print_config answers in about a second without them.
    from .trainer import Trainer

    return exit_code(lambda: Trainer(cfg).fit())


def cli() -> None:
    """Console script entry point (``emnist-train``)."""
    run_cli(main)


if __name__ == "__main__":
    cli()
