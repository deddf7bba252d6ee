"""The run folder (``output_dir``): one run at a time, and never resumed with settings that changed.

- :func:`claim_run_folder` creates the folder and holds an exclusive lock on ``output_dir/.lock``
  (``filelock``; the operating system drops it when the process dies, even by ``kill -9``), so a
  second run into the same folder stops at once instead of interleaving checkpoints.
- :func:`run_identity` is what a checkpoint remembers about the run; :func:`identity_changes`
  names what a resuming configuration changed. Every setting is part of the identity except
  those in :data:`MAY_CHANGE_ON_RESUME` (length, evaluation/logging/checkpoint cadence,
  trackers, performance switches, where things are).
- :func:`discard_previous_run` is ``--resume never`` in a folder that holds a run.
- :func:`truncate_metrics` rewinds ``metrics.jsonl`` to a resumed step (a line torn by a crash is dropped).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from accelerate import Accelerator
from filelock import FileLock, Timeout

from ..config import Config, config_to_dict
from ..errors import UserError
from ..files import write_error, write_text_atomic
from .agreement import main_decides

LOCK_FILE = ".lock"
# Settings a resumed run may change; everything else must match the checkpoint. A key ending in
# "." covers its whole section.
MAY_CHANGE_ON_RESUME = (
    "train.epochs",
    "train.max_steps",
    "train.eval_every",
    "train.eval_batch_size",
    "train.mixed_precision",
    "checkpoint.",
    "log.",
    "model.compile",
    "model.channels_last",
    "data.cache_dir",
    "output_dir",
    "resume",
    "cpu",
    "debug",
)
_HELD: dict[Path, FileLock] = {}


def claim_run_folder(accelerator: Accelerator, output_dir: str | os.PathLike) -> None:
    """Create ``output_dir`` and lock it for this run until the process ends (the main process holds the lock).

    Raises:
        UserError: on every process, when the folder cannot be created or written (a file in the
            way, read-only, no permission) or another run holds it.
    """
    out = Path(output_dir)
    main_decides(accelerator, lambda: _claim(out))


def _claim(out: Path) -> None:
    if out.resolve() in _HELD:
        return
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"output_dir={out}: {parent} is a file: expected a folder (or a path to create)")
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = FileLock(out / LOCK_FILE, timeout=0)
        lock.acquire()
    except Timeout:
        raise UserError(
            f"output_dir={out}: in use by another training run (it holds {out / LOCK_FILE}): "
            "wait for it to finish, or use another output_dir"
        ) from None
    except OSError as err:
        raise write_error(out, err) from None
    _HELD[out.resolve()] = lock


def run_identity(cfg: Config) -> dict:
    """The settings a checkpoint is bound to: the flattened config minus :data:`MAY_CHANGE_ON_RESUME`."""
    flat = _flatten(json.loads(json.dumps(config_to_dict(cfg))))
    return {key: value for key, value in flat.items() if not _may_change(key)}


def identity_changes(saved: dict, current: dict) -> list[str]:
    """``key (old -> new)`` for every identity setting that differs, sorted by key."""
    absent = "<absent>"
    return [
        f"{key} ({saved.get(key, absent)} -> {current.get(key, absent)})"
        for key in sorted(set(saved) | set(current))
        if saved.get(key, absent) != current.get(key, absent)
    ]


def _may_change(key: str) -> bool:
    return any(key == allowed or (allowed.endswith(".") and key.startswith(allowed)) for allowed in MAY_CHANGE_ON_RESUME)


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def discard_previous_run(output_dir: str | os.PathLike) -> list[str]:
    """Remove what a previous run left that a new run must not mix with its own; returns the names removed.

    That is ``checkpoints/`` (which ``--resume auto`` would otherwise pick up later),
    ``metrics.jsonl`` and ``final.json``. ``model/`` and tracker logs are replaced as the new run writes them.
    """
    out = Path(output_dir)
    removed = []
    try:
        for name in ("checkpoints", "metrics.jsonl", "final.json"):
            path = out / name
            if path.is_dir():
                doomed = path.with_name(f".{name}.discarded-{os.getpid()}")
                os.replace(path, doomed)  # gone from view at once; a kill mid-delete leaves no half folder
                shutil.rmtree(doomed)
                removed.append(name)
            elif path.exists():
                path.unlink()
                removed.append(name)
    except OSError as err:
        raise write_error(out, err) from None
    return removed


def truncate_metrics(path: str | os.PathLike, step: int) -> None:
    """On resume, drop evaluation records written after ``step`` (they will be redone).

    A line that is not a JSON record (cut short when a process was killed mid-write) is dropped too.
    """
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text(errors="replace").splitlines()
    kept = [line for line in lines if _record_step(line) is not None and _record_step(line) <= step]
    if kept != lines:
        write_text_atomic(path, "".join(line + "\n" for line in kept))


def _record_step(line: str) -> int | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) else None
