"""Where a run continues: :func:`choose_resume` reads the ``resume`` setting against the run folder.

``never`` starts afresh after discarding a previous run's checkpoints and records; ``auto`` continues from the
newest intact checkpoint of the folder (one whose manifest is missing or disagrees with its files is reported
in one line and the next older one is tried); ``PATH`` continues from that checkpoint. Whatever the setting,
a folder holding, where a run writes, something this package did not write is refused first
(:meth:`~.run_folder.RunFolder.not_written_here`): nothing a run overwrites or deletes is anyone else's.
"""

from __future__ import annotations

import json
from pathlib import Path

from accelerate import Accelerator
from accelerate.logging import get_logger

from ..errors import UserError
from ..files import write_error
from .agreement import main_decides
from .checkpoint import (
    RUN_STATE,
    checkpoint_order,
    delete_checkpoint,
    is_own_checkpoint,
    published_checkpoints,
    sweep_unfinished,
    unlisted_files,
    verify_checkpoint,
)
from .run_folder import RunFolder, identity_changes

logger = get_logger(__name__)


def choose_resume(accelerator: Accelerator, folder: RunFolder, resume: str, identity: dict) -> Path | None:
    """The checkpoint the run in ``folder`` continues from (the same on every process), or None to start afresh.

    ``never``: None, after discarding a previous run in the folder. ``auto``: the newest intact
    checkpoint in the folder (damaged newer ones are reported and skipped), None when there is
    none. ``PATH``: that checkpoint, which must be intact and not behind an intact one in the
    folder. Files a chosen checkpoint's manifest does not list are named in a warning (never read).

    Raises:
        UserError: on every process: the folder holds what this package did not write where a run
            writes (:meth:`~.run_folder.RunFolder.not_written_here`), the chosen checkpoint was saved with
            other settings (naming them), ``PATH`` is damaged or behind an intact checkpoint of the folder,
            or ``auto`` finds checkpoints but none intact. Nothing in the folder has changed then.
    """
    chosen = main_decides(accelerator, lambda: _choose(folder, resume, identity))
    return Path(chosen) if chosen is not None else None


def _choose(folder: RunFolder, resume: str, identity: dict) -> str | None:
    foreign = folder.not_written_here()
    if foreign:
        raise UserError(f"output_dir={folder.root} holds what emnist_dist did not write, where a run writes its "
                        f"own files: {'; '.join(foreign)}: move {'it' if len(foreign) == 1 else 'them'} away, "
                        "or use another output_dir")
    if resume == "never":
        _discard_previous_run(folder)
        return None
    if resume != "auto":
        problem = verify_checkpoint(resume)
        if problem:
            raise UserError(f"resume={resume}: {problem}: expected an intact emnist_dist checkpoint folder")
        _check_identity(Path(resume), identity, f"checkpoint {resume}")
        _refuse_abandoning(folder, Path(resume), resume)
        _warn_unlisted(Path(resume))
        return resume
    found = published_checkpoints(folder.checkpoints)
    for path in reversed(found):
        problem = verify_checkpoint(path)
        if problem is None:
            _check_identity(path, identity, f"output_dir={folder.root} holds a run that")
            _warn_unlisted(path)
            return str(path)
        logger.warning(f"checkpoint {path} is damaged ({problem}); trying the previous one")
    if found:
        raise UserError(f"output_dir={folder.root}: none of its {len(found)} checkpoints is intact: "
                        "resume from a copy with --resume PATH, or start over with --resume never")
    return None


def _refuse_abandoning(folder: RunFolder, chosen: Path, resume: str) -> None:
    """Refuse to continue from ``chosen`` while the folder holds an intact checkpoint of a later step (or a
    later save of the same step): the saves of the continued run would rotate it out. A checkpoint from
    another folder counts as older than every save of its step here."""
    here = chosen.resolve().parent == folder.checkpoints.resolve()
    step, generation = checkpoint_order(chosen)
    start = (step, generation if here else -1)
    later = [path for path in published_checkpoints(folder.checkpoints)
             if checkpoint_order(path) > start and is_own_checkpoint(path) and verify_checkpoint(path) is None]
    if later:
        raise UserError(f"resume={resume}: output_dir={folder.root} holds a later intact checkpoint "
                        f"({', '.join(path.name for path in later)}) that continuing from step {step} "
                        f"would delete: resume from it with --resume auto, or move it out of {folder.checkpoints}")


def _discard_previous_run(folder: RunFolder) -> None:
    """``resume=never``: remove what a previous run left that a new run must not mix with its own (after
    ``not_written_here`` found nothing foreign): this package's checkpoint folders and unfinished saves
    in ``checkpoints/`` (which ``--resume auto`` would otherwise pick up later), ``best_model.safetensors``,
    ``metrics.jsonl`` and ``final.json``. Anything else in ``checkpoints/`` stays (and is named). ``model/``
    and tracker logs are replaced as the new run writes them."""
    removed, kept = [], []
    checkpoints = folder.checkpoints
    try:
        if checkpoints.is_dir():
            doomed = [path for path in published_checkpoints(checkpoints) if is_own_checkpoint(path)]
            for path in doomed:
                delete_checkpoint(path)
            swept = sweep_unfinished(checkpoints)
            if folder.best_weights.is_file():
                folder.best_weights.unlink()
                doomed.append(folder.best_weights)
            if doomed or swept:
                removed.append(checkpoints.name)
            kept = sorted(path.name for path in checkpoints.iterdir())
            if not kept:
                checkpoints.rmdir()
        for path in (folder.metrics, folder.final):
            if path.is_file():
                path.unlink()
                removed.append(path.name)
    except OSError as err:
        raise write_error(folder.root, err) from None
    if removed:
        logger.info(f"resume=never: discarded the previous run's {', '.join(removed)} in {folder.root}")
    if kept:
        logger.info(f"resume=never: kept what emnist_dist did not write in {checkpoints}: {', '.join(kept)}")


def _check_identity(path: Path, identity: dict, what: str) -> None:
    saved = json.loads((path / RUN_STATE).read_text())["identity"]
    changes = identity_changes(saved, identity)
    if changes:
        raise UserError(f"{what} was trained with other settings: {', '.join(changes)}; these cannot change "
                        "on resume: use a new output_dir, or --resume never to start over")


def _warn_unlisted(path: Path) -> None:
    unlisted = unlisted_files(path)
    if unlisted:
        logger.warning(f"checkpoint {path} holds {', '.join(unlisted)}, which its manifest does not list: "
                       "ignored (never read)")
