"""The run folder (``output_dir``) and its one owner, :class:`RunFolder`.

A run folder holds one run at a time and is never resumed with settings that changed:

- :meth:`RunFolder.claim` creates the folder and holds an exclusive lock on ``output_dir/.lock``
  (``filelock``; the operating system drops it when the process dies, even by ``kill -9``), so a
  second run into the same folder stops at once instead of interleaving checkpoints.
- :func:`run_identity` is what a checkpoint remembers about the run; :func:`identity_changes`
  names what a resuming configuration changed. Every setting is part of the identity except
  those in :data:`MAY_CHANGE_ON_RESUME` (length, evaluation/logging/checkpoint cadence,
  trackers, performance switches, where things are, the audit's ranking settings).
- :meth:`RunFolder.choose_resume` is the ``resume`` setting: the checkpoint to continue from, or
  a fresh start (``never`` discards a previous run's checkpoints and records first).
- :meth:`RunFolder.truncate_metrics` rewinds ``metrics.jsonl`` to a resumed step (a line torn by
  a crash is dropped); :meth:`RunFolder.append_metrics` adds one evaluation record.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from accelerate import Accelerator
from accelerate.logging import get_logger
from filelock import FileLock, Timeout

from ..config import Config, config_to_dict, flatten_config, parse_config
from ..errors import UserError
from ..files import append_line, write_error, write_text_atomic
from ..inference.run_plots import CONFUSION_FILE, CURVES_FILE, METRICS_LOG
from .agreement import main_decides
from .checkpoint import RUN_STATE, checkpoints_dir, published_checkpoints, verify_checkpoint

logger = get_logger(__name__)
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
    "audit.",
    "model.compile",
    "model.channels_last",
    "data.cache_dir",
    "output_dir",
    "resume",
    "cpu",
    "debug",
)
_HELD: dict[Path, FileLock] = {}


class RunFolder:
    """Everything about ``output_dir``: where each file lives, the lock, the resume rule, the metrics log.

    Paths: ``config`` (config.yaml), ``metrics`` (metrics.jsonl), ``final`` (final.json),
    ``checkpoints/`` (resumable state) with ``best_weights`` (the best-by-validation weights),
    ``model/`` (the exported model folder), ``confusion_matrix`` and ``curves`` (pictures).
    """

    def __init__(self, output_dir: str | os.PathLike):
        self.root = Path(output_dir)
        self.config = self.root / "config.yaml"
        self.metrics = self.root / METRICS_LOG
        self.final = self.root / "final.json"
        self.checkpoints = checkpoints_dir(self.root)
        self.best_weights = self.checkpoints / "best_model.safetensors"
        self.model = self.root / "model"
        self.confusion_matrix = self.root / CONFUSION_FILE
        self.curves = self.root / CURVES_FILE
        self.lock = self.root / LOCK_FILE

    def claim(self, accelerator: Accelerator) -> None:
        """Create the folder and lock it for this run until the process ends or :meth:`release` (main process).

        Raises:
            UserError: on every process, when the folder cannot be created or written (a file in the
                way, read-only, no permission) or another run holds it.
        """
        main_decides(accelerator, self._claim)

    def _claim(self) -> None:
        out = self.root
        if out.resolve() in _HELD:
            return
        for parent in (out, *out.parents):
            if parent.exists():
                if not parent.is_dir():
                    raise UserError(f"output_dir={out}: {parent} is a file: expected a folder (or a path to create)")
                break
        try:
            out.mkdir(parents=True, exist_ok=True)
            lock = FileLock(self.lock, timeout=0)
            lock.acquire()
        except Timeout:
            raise UserError(
                f"output_dir={out}: in use by another training run (it holds {self.lock}): "
                "wait for it to finish, or use another output_dir"
            ) from None
        except OSError as err:
            raise write_error(out, err) from None
        _HELD[out.resolve()] = lock

    def release(self) -> None:
        """Give up the lock taken by :meth:`claim` in this process (nothing when not held)."""
        lock = _HELD.pop(self.root.resolve(), None)
        if lock is not None:
            lock.release()

    # -- resuming ---------------------------------------------------------------------------------

    def choose_resume(self, accelerator: Accelerator, resume: str, identity: dict) -> Path | None:
        """The checkpoint this run continues from (the same on every process), or None to start afresh.

        ``never``: None, after discarding a previous run in the folder. ``auto``: the newest intact
        checkpoint in the folder (damaged newer ones are reported and skipped), None when there is
        none. ``PATH``: that checkpoint, which must be intact.

        Raises:
            UserError: on every process: the chosen checkpoint was saved with other settings (naming
                them), ``PATH`` is damaged, or ``auto`` finds checkpoints but none intact. Nothing
                in the folder has changed then.
        """
        chosen = main_decides(accelerator, lambda: self._choose(resume, identity))
        return Path(chosen) if chosen is not None else None

    def _choose(self, resume: str, identity: dict) -> str | None:
        if resume == "never":
            removed = self.discard_previous_run()
            if removed:
                logger.info(f"resume=never: discarded the previous run's {', '.join(removed)} in {self.root}")
            return None
        if resume != "auto":
            problem = verify_checkpoint(resume)
            if problem:
                raise UserError(f"resume={resume}: {problem}: expected an intact emnist_dist checkpoint folder")
            _check_identity(Path(resume), identity, f"checkpoint {resume}")
            return resume
        found = published_checkpoints(self.root)
        for path in reversed(found):
            problem = verify_checkpoint(path)
            if problem is None:
                _check_identity(path, identity, f"output_dir={self.root} holds a run that")
                return str(path)
            logger.warning(f"warning: checkpoint {path} is damaged ({problem}); trying the previous one")
        if found:
            raise UserError(f"output_dir={self.root}: none of its {len(found)} checkpoints is intact: "
                            "resume from a copy with --resume PATH, or start over with --resume never")
        return None

    def discard_previous_run(self) -> list[str]:
        """Remove what a previous run left that a new run must not mix with its own; returns the names removed.

        That is ``checkpoints/`` (which ``--resume auto`` would otherwise pick up later),
        ``metrics.jsonl`` and ``final.json``. ``model/`` and tracker logs are replaced as the new run writes them.
        """
        removed = []
        try:
            for path in (self.checkpoints, self.metrics, self.final):
                if path.is_dir():
                    doomed = path.with_name(f".{path.name}.discarded-{os.getpid()}")
                    os.replace(path, doomed)  # gone from view at once; a kill mid-delete leaves no half folder
                    shutil.rmtree(doomed)
                    removed.append(path.name)
                elif path.exists():
                    path.unlink()
                    removed.append(path.name)
        except OSError as err:
            raise write_error(self.root, err) from None
        return removed

    def settings_changed(self, cfg: Config, also: tuple[str, ...] = ()) -> list[str]:
        """What ``cfg`` changes against the run saved in this folder's config.yaml (``key (old -> new)``), by
        the resume rule; ``also`` names may-change settings that count here too. Empty when nothing is saved."""
        if not self.config.is_file():
            return []
        saved = parse_config(["--config", str(self.config)])
        return identity_changes(run_identity(saved, also), run_identity(cfg, also))

    def is_finished(self) -> bool:
        """Whether the run in this folder has written its final.json and model/."""
        return self.final.is_file() and (self.model / "config.json").is_file()

    # -- the metrics log --------------------------------------------------------------------------

    def append_metrics(self, record: dict) -> None:
        """Add one evaluation record to metrics.jsonl."""
        append_line(self.metrics, json.dumps(record))

    def truncate_metrics(self, step: int) -> None:
        """On resume, drop evaluation records written after ``step`` (they will be redone).

        A line that is not a JSON record (cut short when a process was killed mid-write) is dropped too.
        """
        if not self.metrics.is_file():
            return
        lines = self.metrics.read_text(errors="replace").splitlines()
        kept = [line for line in lines if _record_step(line) is not None and _record_step(line) <= step]
        if kept != lines:
            write_text_atomic(self.metrics, "".join(line + "\n" for line in kept))


def run_identity(cfg: Config, also: tuple[str, ...] = ()) -> dict:
    """The settings a checkpoint is bound to: the flattened config minus :data:`MAY_CHANGE_ON_RESUME`
    (except the keys in ``also``)."""
    flat = flatten_config(json.loads(json.dumps(config_to_dict(cfg))))
    return {key: value for key, value in flat.items() if key in also or not _may_change(key)}


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


def _check_identity(path: Path, identity: dict, what: str) -> None:
    saved = json.loads((path / RUN_STATE).read_text())["identity"]
    changes = identity_changes(saved, identity)
    if changes:
        raise UserError(f"{what} was trained with other settings: {', '.join(changes)}; these cannot change "
                        "on resume: use a new output_dir, or --resume never to start over")


def _record_step(line: str) -> int | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) else None
