"""Resumable checkpoints under ``output_dir/checkpoints/``.

Each checkpoint is one folder ``step_XXXXXXXX`` written by Accelerate's ``save_state``
(model, optimizer, grad scaler, per-process RNG, registered objects such as the scheduler,
the training progress and the EMA) plus one ``rank_state_R.pt`` per process for what
differs between ranks (the augmentation generators). It is written under a ``.tmp``
name and renamed only once every rank has finished, so a crash mid-write never leaves a
folder that looks complete; only complete folders are ever resumed from.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator

from ..errors import UserError

_NAME = re.compile(r"^step_(\d{8})$")


def checkpoints_dir(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / "checkpoints"


def complete_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
    folder = checkpoints_dir(output_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and _NAME.match(p.name)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def resolve_resume(resume: str, output_dir: str | os.PathLike) -> Path | None:
    """``never`` -> None; ``auto`` -> the latest complete checkpoint or None; else the given folder."""
    if resume == "never":
        return None
    if resume == "auto":
        found = complete_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not (path / "rank_state_0.pt").is_file():
        raise UserError(f"resume={resume}: not a complete emnist_dist checkpoint folder (no rank_state_0.pt)")
    return path


def save_checkpoint(accelerator: Accelerator, output_dir: str | os.PathLike, step: int, rank_state: dict,
                    *, keep_last: int, protect_step: int | None = None) -> Path:
    """Write checkpoint ``step`` from every rank, publish it atomically, then drop old ones.

    Args:
        rank_state: this process's own state (saved as ``rank_state_{process_index}.pt``).
        keep_last: how many of the newest checkpoints to keep.
        protect_step: a step never deleted by the rotation (the best-by-validation checkpoint).
    """
    folder = checkpoints_dir(output_dir)
    final = folder / f"step_{step:08d}"
    tmp = folder / f"step_{step:08d}.tmp"
    if accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    torch.save(rank_state, tmp / f"rank_state_{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():  # the same step saved twice (e.g. a signal right after an epoch-end save)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _rotate(output_dir, keep_last, protect_step)
    accelerator.wait_for_everyone()
    return final


def _rotate(output_dir: str | os.PathLike, keep_last: int, protect_step: int | None) -> None:
    found = complete_checkpoints(output_dir)
    protected = f"step_{protect_step:08d}" if protect_step is not None else None
    for path in found[: max(0, len(found) - keep_last)]:
        if path.name != protected:
            shutil.rmtree(path)


def load_checkpoint(accelerator: Accelerator, path: str | os.PathLike) -> dict:
    """Restore everything ``save_checkpoint`` wrote; returns this process's rank state."""
    path = Path(path)
    rank_file = path / f"rank_state_{accelerator.process_index}.pt"
    if not rank_file.is_file():
        raise UserError(
            f"{path}: has no state for process {accelerator.process_index}; it was written by fewer "
            "processes, resume with the same number of processes"
        )
    accelerator.load_state(str(path))
    return torch.load(rank_file, map_location="cpu", weights_only=False)
