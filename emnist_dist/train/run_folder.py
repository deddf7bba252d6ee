"""The run folder (``output_dir``) and its one owner, :class:`RunFolder`.

A run folder holds one run at a time and is never resumed with settings that changed:

- :meth:`RunFolder.claim` creates the folder and holds an exclusive lock on ``output_dir/.lock``
  (``filelock``; the operating system drops it when the process dies, even by ``kill -9``), so a
  second run into the same folder stops at once instead of interleaving checkpoints.
- :func:`run_identity` is what a checkpoint remembers about the run; :func:`identity_changes`
  names what a resuming configuration changed. Every setting is part of the identity except
  those in :data:`MAY_CHANGE_ON_RESUME` (length, evaluation/logging/checkpoint cadence,
  trackers, performance switches, where things are, the audit's ranking settings).
- :meth:`RunFolder.not_written_here` names what sits where a run writes but is not this package's
  (``resume.py`` refuses such a folder before anything is overwritten or deleted).
- :meth:`RunFolder.truncate_metrics` rewinds ``metrics.jsonl`` to a resumed step (a line torn by
  a crash is dropped); :meth:`RunFolder.append_metrics` adds one evaluation record.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable

import yaml
from accelerate import Accelerator
from accelerate.logging import get_logger
from filelock import FileLock, Timeout
from PIL import Image
from safetensors import SafetensorError, safe_open

from ..config import Config, config_to_dict, flatten_config, parse_config
from ..errors import UserError
from ..files import append_line, write_error, write_text_atomic
from ..model_folder.artifact import CONFIG_FILE, MODEL_FOLDER_FILES
from .agreement import main_decides

logger = get_logger(__name__)
# Every name in a run folder, here only; other modules ask a RunFolder for the path.
CONFIG_YAML = "config.yaml"
METRICS_LOG = "metrics.jsonl"
FINAL_FILE = "final.json"
CHECKPOINTS_DIR = "checkpoints"
BEST_WEIGHTS_FILE = "best_model.safetensors"  # inside checkpoints/
MODEL_DIR = "model"
CONFUSION_FILE = "confusion_matrix.png"
CURVES_FILE = "curves.png"
TENSORBOARD_DIR = "tensorboard"
WANDB_ID_FILE = "wandb_run_id"
FOLD_DIR = "fold_{k}"  # the audit's: its fold runs, the held-out scores in each, and what it writes
HELDOUT_SCORES_FILE = "heldout_scores.safetensors"
OOF_SCORES_FILE = "oof_probs.safetensors"
SCORES_CSV = "scores.csv"
LABEL_ISSUES_CSV = "label_issues.csv"
LABEL_ISSUES_PNG = "label_issues.png"
EXCLUDE_FILE = "exclude.txt"
AUDIT_SUMMARY_FILE = "summary.json"
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


class RunFolder:
    """Everything about ``output_dir``: where each file lives, the lock, the resume rule, the metrics log.

    Paths: ``config`` (config.yaml), ``metrics`` (metrics.jsonl), ``final`` (final.json),
    ``checkpoints/`` (resumable state) with ``best_weights`` (the best-by-validation weights),
    ``model/`` (the exported model folder), ``confusion_matrix`` and ``curves`` (pictures), the trackers'
    ``tensorboard/`` and ``wandb_id``; an audit's fold runs (:meth:`fold`), a fold's ``heldout_scores``, the
    audit's ``oof_scores``, ``scores_csv``, ``label_issues_csv``, ``label_issues_png``, ``exclude`` and
    ``audit_summary``.
    """

    def __init__(self, output_dir: str | os.PathLike):
        self.root = Path(output_dir)
        self.config = self.root / CONFIG_YAML
        self.metrics = self.root / METRICS_LOG
        self.final = self.root / FINAL_FILE
        self.checkpoints = self.root / CHECKPOINTS_DIR
        self.best_weights = self.checkpoints / BEST_WEIGHTS_FILE
        self.model = self.root / MODEL_DIR
        self.confusion_matrix = self.root / CONFUSION_FILE
        self.curves = self.root / CURVES_FILE
        self.tensorboard = self.root / TENSORBOARD_DIR
        self.wandb_id = self.root / WANDB_ID_FILE
        self.heldout_scores = self.root / HELDOUT_SCORES_FILE
        self.oof_scores = self.root / OOF_SCORES_FILE
        self.scores_csv = self.root / SCORES_CSV
        self.label_issues_csv = self.root / LABEL_ISSUES_CSV
        self.label_issues_png = self.root / LABEL_ISSUES_PNG
        self.exclude = self.root / EXCLUDE_FILE
        self.audit_summary = self.root / AUDIT_SUMMARY_FILE
        self.lock = self.root / LOCK_FILE
        self._held: FileLock | None = None
        self._created: list[Path] = []  # the folders claim() made, deepest first

    def fold(self, k: int) -> Path:
        """The run folder of an audit's fold ``k``."""
        return self.root / FOLD_DIR.format(k=k)

    def claim(self, accelerator: Accelerator) -> None:
        """Create the folder and lock it for this run until the process ends or :meth:`release` (main process).

        Raises:
            UserError: on every process, when the folder cannot be created or written (a file in the
                way, read-only, no permission) or another run holds it.
        """
        main_decides(accelerator, self._claim)

    def _claim(self) -> None:
        out = self.root
        if self._held is not None:  # this run claimed it already
            return
        for parent in (out, *out.parents):
            if parent.exists():
                if not parent.is_dir():
                    raise UserError(f"output_dir={out}: {parent} is a file: expected a folder (or a path to create)")
                break
        try:
            self._created = [folder for folder in (out, *out.parents) if not folder.exists()]
            out.mkdir(parents=True, exist_ok=True)
            lock = FileLock(self.lock, timeout=0)
            lock.acquire()
        except Timeout:  # another process, or another run of this one (each claim opens the lock file anew)
            raise UserError(
                f"output_dir={out}: in use by another training run (it holds {self.lock}): "
                "wait for it to finish, or use another output_dir"
            ) from None
        except OSError as err:
            raise write_error(out, err) from None
        self._held = lock

    def release(self) -> None:
        """Give up the lock taken by :meth:`claim` (nothing when this folder object does not hold it)."""
        lock, self._held = self._held, None
        if lock is not None:
            lock.release()

    def abandon(self) -> None:
        """Undo a :meth:`claim` whose run was refused before it wrote anything: release the lock and remove the lock
        file and the folders the claim created (those still empty), so a refused run leaves no folder behind."""
        held = self._held is not None
        self.release()
        if held and self._created:
            self.lock.unlink(missing_ok=True)
            for folder in self._created:
                try:
                    folder.rmdir()
                except OSError:  # something else was put there meanwhile: leave it
                    break
        self._created = []

    def not_written_here(self) -> list[str]:
        """What sits where a run writes but is not this package's, ``"NAME (what was expected)"`` each.

        A run writes (and overwrites, or with ``resume=never`` deletes): ``config.yaml``, a YAML mapping of the
        run config's sections; ``metrics.jsonl``, JSON records with ``epoch`` and ``step`` (a last line torn by a
        killed run allowed); ``final.json``, a JSON object with ``test/acc`` and ``step``; ``model/``, an
        exported model folder (emnist_dist's ``config.json``, and no files but :data:`MODEL_FOLDER_FILES`);
        ``checkpoints/best_model.safetensors``, a safetensors file; ``confusion_matrix.png``, ``curves.png``,
        PNGs Matplotlib wrote. Checkpoint folders are told apart by ``is_own_checkpoint``, and only those
        are ever deleted, so other things in ``checkpoints/`` are left alone; so are tracker logs.
        """
        checks: list[tuple[Path, Callable[[Path], bool], str]] = [
            (self.config, _is_run_config, "expected the resolved config a run saves"),
            (self.metrics, _is_metrics_log, "expected one JSON record with epoch and step per line"),
            (self.final, _is_final_record, "expected a JSON object of test metrics"),
            (self.checkpoints, Path.is_dir, "expected a folder"),
            (self.best_weights, _is_safetensors, "expected a safetensors file"),
            (self.model, Path.is_dir, "expected an exported model folder"),
            (self.confusion_matrix, _is_matplotlib_png, "expected a PNG written by Matplotlib"),
            (self.curves, _is_matplotlib_png, "expected a PNG written by Matplotlib"),
        ]
        foreign = [f"{path.relative_to(self.root)} ({expected})" for path, ours, expected in checks
                   if (path.exists() or path.is_symlink()) and not ours(path)]
        if self.model.is_dir():
            config = self.model / CONFIG_FILE
            if (config.exists() or config.is_symlink()) and not _is_model_config(config):  # absent: nothing to name
                foreign.append(f"{config.relative_to(self.root)} (expected the config.json of a model emnist_dist "
                               "exported)")
            foreign += [f"{path.relative_to(self.root)} (expected only {', '.join(MODEL_FOLDER_FILES)})"
                        for path in sorted(self.model.iterdir()) if path.name not in MODEL_FOLDER_FILES]
        return foreign

    def settings_changed(self, cfg: Config, also: tuple[str, ...] = ()) -> list[str]:
        """What ``cfg`` changes against the run saved in this folder's config.yaml (``key (old -> new)``), by
        the resume rule; ``also`` names may-change settings that count here too. Empty when nothing is saved."""
        if not self.config.is_file():
            return []
        saved = parse_config(["--config", str(self.config)])
        return identity_changes(run_identity(saved, also), run_identity(cfg, also))

    def is_finished(self) -> bool:
        """Whether the run in this folder has written its final.json and model/."""
        return self.final.is_file() and (self.model / CONFIG_FILE).is_file()

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
        records = [(line, _record(line)) for line in lines]
        kept = [line for line, record in records if record is not None and record["step"] <= step]
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


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _is_run_config(path: Path) -> bool:
    try:
        saved = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return False
    sections = {field.name for field in dataclasses.fields(Config)}
    return isinstance(saved, dict) and {"data", "model", "train"} <= set(saved) <= sections


def _is_metrics_log(path: Path) -> bool:
    try:
        text = path.read_text()
    except (OSError, ValueError):
        return False
    lines = text.split("\n")
    torn = lines.pop()  # "" after a complete last line; else a line cut short by a killed run
    # A record is a JSON object with an epoch, whatever its key order; a torn one is the start of an object.
    return (torn == "" or torn.startswith("{")) and all("epoch" in (_record(line) or {}) for line in lines)


def _is_final_record(path: Path) -> bool:
    record = _read_json(path)
    return isinstance(record, dict) and "test/acc" in record and "step" in record


def _is_model_config(path: Path) -> bool:
    config = _read_json(path)
    # emnist_dist's block in timm's format, or the flat first format
    return isinstance(config, dict) and ("emnist_dist" in config or {"class_names", "split"} <= set(config))


def _is_safetensors(path: Path) -> bool:
    try:
        with safe_open(path, "pt"):
            return True
    except (SafetensorError, OSError):
        return False


def _is_matplotlib_png(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            return image.format == "PNG" and str(image.info.get("Software", "")).startswith("Matplotlib")
    except Exception:  # PIL raises many kinds (unidentified image, decompression bomb, OSError) for a foreign file
        return False


def _record(line: str) -> dict | None:
    """A metrics.jsonl line as a record (a JSON object with an integer ``step``), or None."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("step"), int) else None
