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
  a fresh start (``never`` discards a previous run's checkpoints and records first). Whatever the
  setting, it first refuses a folder holding, where a run writes, something this package did not
  write (:meth:`RunFolder.not_written_here`): nothing a run overwrites or deletes is anyone else's.
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
from .checkpoint import (
    RUN_STATE,
    checkpoint_step,
    checkpoints_dir,
    delete_checkpoint,
    is_own_checkpoint,
    published_checkpoints,
    sweep_unfinished,
    unlisted_files,
    verify_checkpoint,
)

logger = get_logger(__name__)
# Every name in a run folder, here only; other modules ask a RunFolder for the path.
CONFIG_YAML = "config.yaml"
METRICS_LOG = "metrics.jsonl"
FINAL_FILE = "final.json"
BEST_WEIGHTS_FILE = "best_model.safetensors"  # inside checkpoints/
MODEL_DIR = "model"
CONFUSION_FILE = "confusion_matrix.png"
CURVES_FILE = "curves.png"
TENSORBOARD_DIR = "tensorboard"
WANDB_ID_FILE = "wandb_run_id"
LABEL_ISSUES_CSV = "label_issues.csv"  # the audit's outputs
LABEL_ISSUES_PNG = "label_issues.png"
EXCLUDE_FILE = "exclude.txt"
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
    ``tensorboard/`` and ``wandb_id``; an audit's ``label_issues_csv``, ``label_issues_png`` and ``exclude``.
    """

    def __init__(self, output_dir: str | os.PathLike):
        self.root = Path(output_dir)
        self.config = self.root / CONFIG_YAML
        self.metrics = self.root / METRICS_LOG
        self.final = self.root / FINAL_FILE
        self.checkpoints = checkpoints_dir(self.root)
        self.best_weights = self.checkpoints / BEST_WEIGHTS_FILE
        self.model = self.root / MODEL_DIR
        self.confusion_matrix = self.root / CONFUSION_FILE
        self.curves = self.root / CURVES_FILE
        self.tensorboard = self.root / TENSORBOARD_DIR
        self.wandb_id = self.root / WANDB_ID_FILE
        self.label_issues_csv = self.root / LABEL_ISSUES_CSV
        self.label_issues_png = self.root / LABEL_ISSUES_PNG
        self.exclude = self.root / EXCLUDE_FILE
        self.lock = self.root / LOCK_FILE
        self._held: FileLock | None = None

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

    # -- resuming ---------------------------------------------------------------------------------

    def choose_resume(self, accelerator: Accelerator, resume: str, identity: dict) -> Path | None:
        """The checkpoint this run continues from (the same on every process), or None to start afresh.

        ``never``: None, after discarding a previous run in the folder. ``auto``: the newest intact
        checkpoint in the folder (damaged newer ones are reported and skipped), None when there is
        none. ``PATH``: that checkpoint, which must be intact and not behind an intact one in the
        folder. Files a chosen checkpoint's manifest does not list are named in a warning (never read).

        Raises:
            UserError: on every process: the folder holds what this package did not write where a run
                writes (:meth:`not_written_here`), the chosen checkpoint was saved with other settings
                (naming them), ``PATH`` is damaged or behind an intact checkpoint of the folder, or
                ``auto`` finds checkpoints but none intact. Nothing in the folder has changed then.
        """
        chosen = main_decides(accelerator, lambda: self._choose(resume, identity))
        return Path(chosen) if chosen is not None else None

    def _choose(self, resume: str, identity: dict) -> str | None:
        foreign = self.not_written_here()
        if foreign:
            raise UserError(f"output_dir={self.root} holds what emnist_dist did not write, where a run writes its "
                            f"own files: {'; '.join(foreign)}: move {'it' if len(foreign) == 1 else 'them'} away, "
                            "or use another output_dir")
        if resume == "never":
            self._discard_previous_run()
            return None
        if resume != "auto":
            problem = verify_checkpoint(resume)
            if problem:
                raise UserError(f"resume={resume}: {problem}: expected an intact emnist_dist checkpoint folder")
            _check_identity(Path(resume), identity, f"checkpoint {resume}")
            self._refuse_abandoning(Path(resume), resume)
            _warn_unlisted(Path(resume))
            return resume
        found = published_checkpoints(self.root)
        for path in reversed(found):
            problem = verify_checkpoint(path)
            if problem is None:
                _check_identity(path, identity, f"output_dir={self.root} holds a run that")
                _warn_unlisted(path)
                return str(path)
            logger.warning(f"checkpoint {path} is damaged ({problem}); trying the previous one")
        if found:
            raise UserError(f"output_dir={self.root}: none of its {len(found)} checkpoints is intact: "
                            "resume from a copy with --resume PATH, or start over with --resume never")
        return None

    def _refuse_abandoning(self, chosen: Path, resume: str) -> None:
        """Refuse to continue from ``chosen`` while this folder holds an intact checkpoint of a later step (or a
        later save of the same step): the saves of the continued run would rotate it out. A checkpoint from
        another folder counts as older than every save of its step here."""
        here = chosen.resolve().parent == self.checkpoints.resolve()
        start = (checkpoint_step(chosen), _generation(chosen) if here else -1)
        later = [path for path in published_checkpoints(self.root)
                 if (checkpoint_step(path), _generation(path)) > start and is_own_checkpoint(path)
                 and verify_checkpoint(path) is None]
        if later:
            raise UserError(f"resume={resume}: output_dir={self.root} holds a later intact checkpoint "
                            f"({', '.join(path.name for path in later)}) that continuing from step {start[0]} "
                            f"would delete: resume from it with --resume auto, or move it out of {self.checkpoints}")

    def _discard_previous_run(self) -> None:
        """``resume=never``: remove what a previous run left that a new run must not mix with its own (after
        :meth:`not_written_here` found nothing foreign): this package's checkpoint folders and unfinished saves
        in ``checkpoints/`` (which ``--resume auto`` would otherwise pick up later), ``best_model.safetensors``,
        ``metrics.jsonl`` and ``final.json``. Anything else in ``checkpoints/`` stays (and is named). ``model/``
        and tracker logs are replaced as the new run writes them."""
        removed, kept = [], []
        try:
            if self.checkpoints.is_dir():
                doomed = [path for path in published_checkpoints(self.root) if is_own_checkpoint(path)]
                for path in doomed:
                    delete_checkpoint(path)
                swept = sweep_unfinished(self.checkpoints)
                if self.best_weights.is_file():
                    self.best_weights.unlink()
                    doomed.append(self.best_weights)
                if doomed or swept:
                    removed.append(self.checkpoints.name)
                kept = sorted(path.name for path in self.checkpoints.iterdir())
                if not kept:
                    self.checkpoints.rmdir()
            for path in (self.metrics, self.final):
                if path.is_file():
                    path.unlink()
                    removed.append(path.name)
        except OSError as err:
            raise write_error(self.root, err) from None
        if removed:
            logger.info(f"resume=never: discarded the previous run's {', '.join(removed)} in {self.root}")
        if kept:
            logger.info(f"resume=never: kept what emnist_dist did not write in {self.checkpoints}: {', '.join(kept)}")

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


def _generation(path: Path) -> int:
    return int(path.name.partition("_g")[2] or 0)


def _warn_unlisted(path: Path) -> None:
    unlisted = unlisted_files(path)
    if unlisted:
        logger.warning(f"checkpoint {path} holds {', '.join(unlisted)}, which its manifest does not list: "
                       "ignored (never read)")


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


def _check_identity(path: Path, identity: dict, what: str) -> None:
    saved = json.loads((path / RUN_STATE).read_text())["identity"]
    changes = identity_changes(saved, identity)
    if changes:
        raise UserError(f"{what} was trained with other settings: {', '.join(changes)}; these cannot change "
                        "on resume: use a new output_dir, or --resume never to start over")


def _record(line: str) -> dict | None:
    """A metrics.jsonl line as a record (a JSON object with an integer ``step``), or None."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("step"), int) else None
