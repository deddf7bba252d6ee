"""Resumable checkpoints in the run folder's checkpoints folder (:attr:`~.run_folder.RunFolder.checkpoints`): nothing in them can run code, a crash
never leaves one that looks complete, and every file is verified before it is used.

One checkpoint is a folder ``step_XXXXXXXX`` (a second save of the same step, e.g. an epoch-end
save right after a periodic one, is a new generation ``step_XXXXXXXX_gN``; a published folder is
never modified)::

    model.safetensors   the model's weights (unwrapped from DDP / torch.compile)
    ema.safetensors     the weight EMA, when on
    optimizer.pt        optimizer.state_dict()   } tensors and plain values only, read back with
    scheduler.pt        scheduler.state_dict()   } torch.load(weights_only=True)
    rank_R.pt           process R's random streams: torch (CPU, CUDA), Python, NumPy and the per-process
                        augmentation generators (same format)
    run_state.json      progress, loader position, grad scaler, world size and the run identity
    manifest.json       size and SHA-256 of every file above, written last

Accelerate's ``save_state``/``load_state`` are not used: ``load_state`` unpickles
``random_states_*.pkl`` and ``custom_checkpoint_*.pkl``, so a planted file would run code.

Publishing: every process writes its files into the hidden ``.step_XXXXXXXX.partial`` and reports
their sizes and hashes; the main process writes the manifest, flushes everything to the disk and
renames the folder to a name not used before (one atomic rename). Old checkpoints are deleted only
after that, each renamed out of view first. A ``kill -9`` at any point leaves the previous
checkpoints intact and at most a hidden folder that the next save sweeps away (the run folder's
lock guarantees no other writer). Only this package's own checkpoints (:func:`is_own_checkpoint`:
the name pattern and a manifest naming that step) are ever deleted; anything else in
``checkpoints/`` is left where it is. The functions here take that folder (or a checkpoint in it);
the :class:`CheckpointSaver` is bound to the run folder it is given.

Resuming (the choice is :func:`~.resume.choose_resume`'s) verifies a checkpoint first (:func:`verify_checkpoint`).
Files the manifest does not list (a ``.DS_Store``) are never read: they do not make a checkpoint damaged
(:func:`unlisted_files` names them for a warning). A checkpoint written by
N processes resumes on M: the model, optimizer, schedule and position (in global batches) are the
same for every process count; the per-process random streams are restored when N == M and
reseeded from ``(seed, step, rank)`` otherwise.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import gather_object
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load

from ..errors import UserError, one_line
from ..files import file_sha256, fsync_tree, write_bytes_atomic, write_error
from ..model_folder.artifact import weights_bytes
from .agreement import all_succeed, main_decides
from .run_folder import RunFolder

logger = get_logger(__name__)
FORMAT = 1
MANIFEST = "manifest.json"
RUN_STATE = "run_state.json"
MODEL = "model.safetensors"
EMA = "ema.safetensors"
OPTIMIZER = "optimizer.pt"
SCHEDULER = "scheduler.pt"
_NAME = re.compile(r"^step_(\d{8,})(?:_g(\d+))?$")


@dataclass
class CheckpointParts:
    """What a checkpoint saves and restores.

    ``progress`` and ``loader`` have JSON-able ``state_dict``/``load_state_dict`` and are the same
    on every process; ``per_rank`` objects (``state_dict``/``load_state_dict``/``reseed(seed)``)
    hold each process's own random streams.
    """

    model: torch.nn.Module
    optimizer: Any
    scheduler: Any
    progress: Any
    loader: Any
    ema: torch.nn.Module | None = None
    per_rank: dict[str, Any] = field(default_factory=dict)


class CheckpointSaver:
    """The run's checkpoints, built once and bound to the run folder and the stateful parts (as timm's
    ``CheckpointSaver`` and torchtitan's ``CheckpointManager``): :meth:`save` with rotation, the best weights by
    validation (:meth:`keep_best`), :meth:`load`. ``parts.progress.best_step`` (-1: none yet) names the
    checkpoint the rotation never deletes."""

    def __init__(self, accelerator: Accelerator, folder: RunFolder, parts: CheckpointParts, *, identity: dict,
                 keep_last: int, seed: int):
        self.accelerator, self.folder, self.parts = accelerator, folder, parts
        self.identity, self.keep_last, self.seed = identity, keep_last, seed

    def save(self, step: int) -> Path:
        """A resumable checkpoint of ``step`` from every process (:func:`save_checkpoint`)."""
        best = self.parts.progress.best_step
        return save_checkpoint(self.accelerator, self.folder.checkpoints, step, self.parts, identity=self.identity,
                               keep_last=self.keep_last, protect_step=best if best >= 0 else None)

    def load(self, path: str | os.PathLike) -> int:
        """Restore the parts from ``path`` (:func:`load_checkpoint`); returns how many processes wrote it."""
        return load_checkpoint(self.accelerator, path, self.parts, seed=self.seed)

    def keep_best(self, net: torch.nn.Module) -> None:
        """Keep ``net``'s weights as the best by validation (main process; the others skip)."""
        if self.accelerator.is_main_process:
            self.folder.checkpoints.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(self.folder.best_weights, weights_bytes(net))


def published_checkpoints(folder: Path) -> list[Path]:
    """The published checkpoint folders (intact or not) in checkpoints folder ``folder``, oldest first by
    :func:`checkpoint_order`."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and _NAME.match(p.name)), key=checkpoint_order)


def is_own_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a checkpoint folder this package published, intact or not: its name is
    ``step_XXXXXXXX[_gN]`` and it holds a ``manifest.json`` naming that step. Only these are ever deleted."""
    path = Path(path)
    if not (_NAME.match(path.name) and path.is_dir() and not path.is_symlink()):
        return False
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("step") == checkpoint_step(path) \
        and isinstance(manifest.get("files"), dict)


def delete_checkpoint(path: Path) -> None:
    """Delete a checkpoint folder: renamed out of view first, so a kill mid-delete leaves no half checkpoint
    (the next save sweeps the hidden rest)."""
    doomed = path.with_name(f".{path.name}.deleting")
    os.rename(path, doomed)
    shutil.rmtree(doomed)


def sweep_unfinished(folder: Path) -> list[Path]:
    """Remove the hidden folders that killed saves and deletions left in ``folder``; returns them."""
    stale = [*folder.glob(".step_*.partial"), *folder.glob(".step_*.deleting")]
    for path in stale:
        shutil.rmtree(path)
    return stale


def checkpoint_step(path: str | os.PathLike) -> int:
    """The optimizer step a checkpoint folder was saved at."""
    return checkpoint_order(path)[0]


def checkpoint_order(path: str | os.PathLike) -> tuple[int, int]:
    """``(step, generation)`` of a checkpoint folder: a later save sorts after an earlier one."""
    match = _NAME.match(Path(path).name)
    return int(match.group(1)), int(match.group(2) or 0)


# --- saving ------------------------------------------------------------------------------------


def save_checkpoint(accelerator: Accelerator, folder: Path, step: int, parts: CheckpointParts,
                    *, identity: dict, keep_last: int, protect_step: int | None = None) -> Path:
    """Write checkpoint ``step`` from every process into checkpoints folder ``folder``, publish it atomically,
    then drop old ones.

    Args:
        identity: the run's settings (:func:`~.run_folder.run_identity`), checked when resuming.
        keep_last: how many of the newest checkpoints to keep.
        protect_step: a step never deleted by the rotation (the best-by-validation checkpoint).

    Raises:
        UserError: on every process, when any process could not write (full disk, read-only folder);
            the unfinished folder is removed and the previous checkpoints are untouched.
    """
    partial = folder / f".step_{step:08d}.partial"
    main_decides(accelerator, lambda: _begin(folder, partial, step))
    written, problem = {}, None
    try:
        written = _write_parts(accelerator, partial, step, parts, identity)
    except OSError as err:
        problem = str(_save_error(step, folder, err))
    reports = gather_object([(written, problem)]) if accelerator.num_processes > 1 else [(written, problem)]
    problems = [p for _, p in reports if p]
    if problems:  # every process raises the same line; the unfinished folder goes
        if accelerator.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
        raise UserError(problems[0])
    files = {name: entry for report, _ in reports for name, entry in report.items()}
    return Path(main_decides(accelerator, lambda: str(_publish(folder, partial, step, files, keep_last,
                                                               protect_step))))


def _begin(folder: Path, partial: Path, step: int) -> None:
    """Sweep what killed saves left behind and create the folder this save writes into."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        sweep_unfinished(folder)
        partial.mkdir()
    except OSError as err:
        raise _save_error(step, folder, err) from None


def _save_error(step: int, folder: Path, err: OSError) -> UserError:
    return UserError(f"checkpoint at step {step}: {write_error(folder, err)}")


def _write_parts(accelerator: Accelerator, partial: Path, step: int, parts: CheckpointParts,
                 identity: dict) -> dict:
    """Write this process's files; returns ``{name: {"bytes", "sha256"}}``."""
    written = {}
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(parts.model, keep_torch_compile=False)
        written |= _write(partial / MODEL, weights_bytes(model))
        if parts.ema is not None:
            written |= _write(partial / EMA, weights_bytes(parts.ema))
        written |= _write(partial / OPTIMIZER, _torch_bytes(parts.optimizer.state_dict()))
        written |= _write(partial / SCHEDULER, _torch_bytes(parts.scheduler.state_dict()))
        scaler = accelerator.scaler.state_dict() if accelerator.scaler is not None else None
        run_state = {"format": FORMAT, "step": step, "world_size": accelerator.num_processes,
                     "progress": parts.progress.state_dict(), "loader": parts.loader.state_dict(),
                     "scaler": scaler, "identity": identity}
        written |= _write(partial / RUN_STATE, (json.dumps(run_state, indent=1) + "\n").encode())
    rank_state = {"rng": _rng_state(accelerator.device),
                  "local": {name: obj.state_dict() for name, obj in parts.per_rank.items()}}
    written |= _write(partial / f"rank_{accelerator.process_index}.pt", _torch_bytes(rank_state))
    return written


def _torch_bytes(obj: Any) -> bytes:
    # Serialised in memory, then written by Python: torch.save to a path on a full disk fails with a
    # cryptic "unexpected pos" RuntimeError, where a plain write raises ENOSPC.
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> dict:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return {path.name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}}


def _publish(folder: Path, partial: Path, step: int, files: dict, keep_last: int, protect_step: int | None) -> Path:
    """Manifest last, flush, rename to a fresh name in ``folder``, then rotate (main process)."""
    try:
        manifest = {"format": FORMAT, "step": step, "files": dict(sorted(files.items()))}
        _write(partial / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
        fsync_tree(partial, recursive=False)
        final = _fresh_name(folder, step)
        os.rename(partial, final)
        fsync_tree(folder, recursive=False)
        _rotate(folder, final, keep_last, protect_step)
    except OSError as err:
        shutil.rmtree(partial, ignore_errors=True)
        raise _save_error(step, folder, err) from None
    return final


def _fresh_name(folder: Path, step: int) -> Path:
    taken = [generation for s, generation in map(checkpoint_order, published_checkpoints(folder)) if s == step]
    name = f"step_{step:08d}" if not taken else f"step_{step:08d}_g{max(taken) + 1}"
    return folder / name


def _rotate(folder: Path, newest: Path, keep_last: int, protect_step: int | None) -> None:
    """Keep ``newest``, the newest generation of the last ``keep_last`` steps up to its step and of
    ``protect_step``; delete the rest of this package's own checkpoints in ``folder``, including folders of later
    steps (damaged ones that resuming skipped: a run never resumes from behind an intact one)."""
    step = checkpoint_step(newest)
    found = [path for path in published_checkpoints(folder) if is_own_checkpoint(path)]
    latest = {}
    for path in found:  # oldest first: the newest generation of each step wins
        latest[checkpoint_step(path)] = path
    current = [path for s, path in sorted(latest.items()) if s <= step]
    keep = {newest, *current[-keep_last:]}
    if protect_step is not None and protect_step <= step and protect_step in latest:
        keep.add(latest[protect_step])
    for path in found:
        if path not in keep:
            delete_checkpoint(path)


# --- verifying ---------------------------------------------------------------------


def verify_checkpoint(path: str | os.PathLike) -> str | None:
    """What is wrong with checkpoint folder ``path`` (one phrase), or None when it is intact."""
    path = Path(path)
    if not path.is_dir():
        return "not a folder"
    if not (path / MANIFEST).is_file():
        return f"no {MANIFEST} (an unfinished save, or not a checkpoint of this emnist_dist version)"
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files = {name: (int(entry["bytes"]), str(entry["sha256"])) for name, entry in manifest["files"].items()}
        if manifest["format"] != FORMAT:
            return f"checkpoint format {manifest['format']}: expected {FORMAT}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"unreadable {MANIFEST}"
    for name, (size, digest) in files.items():
        file = path / name
        if Path(name).name != name or not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} has {file.stat().st_size} bytes where {MANIFEST} says {size}"
        if file_sha256(file) != digest:
            return f"{name} does not match its SHA-256 in {MANIFEST}"
    try:
        run_state = json.loads((path / RUN_STATE).read_text())
        world_size = int(run_state["world_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"unreadable {RUN_STATE}"
    if not isinstance(run_state.get("identity"), dict):
        return f"{RUN_STATE} has no identity (the settings it was trained with)"
    needed = [MODEL, OPTIMIZER, SCHEDULER, *(f"rank_{r}.pt" for r in range(world_size))]
    missing = [name for name in needed if name not in files]
    return f"{missing[0]} is missing" if missing else None


def unlisted_files(path: str | os.PathLike) -> list[str]:
    """The entries of checkpoint folder ``path`` its manifest does not list (never read), sorted."""
    path = Path(path)
    try:
        listed = set(json.loads((path / MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return sorted({p.name for p in path.iterdir()} - listed - {MANIFEST})


# --- loading -----------------------------------------------------------------------------------


def load_checkpoint(accelerator: Accelerator, path: str | os.PathLike, parts: CheckpointParts, *, seed: int) -> int:
    """Restore everything :func:`save_checkpoint` wrote (choose it with :func:`~.resume.choose_resume`: it verifies).

    Returns the number of processes that wrote the checkpoint. When it differs from this run's,
    the per-process random streams are reseeded from ``(seed, step, rank)`` instead of restored.

    Raises:
        UserError: on every process, when any process could not load its part.
    """
    path = Path(path)
    problem, written_by = None, 0
    try:
        written_by = _load_parts(accelerator, path, parts, seed)
    except (UserError, OSError, ValueError, KeyError, TypeError, RuntimeError, pickle.UnpicklingError,
            SafetensorError) as err:
        problem = f"checkpoint {path}: cannot be loaded ({one_line(err)}): expected a checkpoint saved by emnist_dist"
    all_succeed(accelerator, problem)
    if written_by != accelerator.num_processes:
        logger.info(f"checkpoint {path} was written by {written_by} process(es), this run has "
                          f"{accelerator.num_processes}: same global batch and sample order; the per-process random "
                          "streams (dropout, augmentation, MixUp) are reseeded, so the run is not bit-identical "
                          "to an uninterrupted one")
    return written_by


def _load_parts(accelerator: Accelerator, path: Path, parts: CheckpointParts, seed: int) -> int:
    state = json.loads((path / RUN_STATE).read_text())
    model = accelerator.unwrap_model(parts.model, keep_torch_compile=False)
    model.load_state_dict(safetensors_load((path / MODEL).read_bytes()))
    if parts.ema is not None:
        parts.ema.load_state_dict(safetensors_load((path / EMA).read_bytes()))
    parts.optimizer.load_state_dict(_torch_load(path / OPTIMIZER))
    parts.scheduler.load_state_dict(_torch_load(path / SCHEDULER))
    if accelerator.scaler is not None and state["scaler"] is not None:
        accelerator.scaler.load_state_dict(state["scaler"])
    parts.progress.load_state_dict(state["progress"])
    parts.loader.load_state_dict(state["loader"])
    rank = accelerator.process_index
    if state["world_size"] == accelerator.num_processes:
        rank_state = _torch_load(path / f"rank_{rank}.pt")
        _set_rng_state(rank_state["rng"], accelerator.device)
        for name, obj in parts.per_rank.items():
            obj.load_state_dict(rank_state["local"][name])
    else:
        seeds = np.random.SeedSequence([seed, int(state["step"]), rank]).generate_state(1 + len(parts.per_rank))
        torch.manual_seed(int(seeds[0]))  # CPU and every CUDA device
        random.seed(int(seeds[0]))
        np.random.seed(int(seeds[0]))
        for obj, obj_seed in zip(parts.per_rank.values(), seeds[1:]):
            obj.reseed(int(obj_seed))
    return int(state["world_size"])


def _torch_load(path: Path) -> Any:
    """Tensors and plain containers only: a pickled object that would run code is refused."""
    return torch.load(path, map_location="cpu", weights_only=True)


def _rng_state(device: torch.device) -> dict:
    numpy_state = np.random.get_state(legacy=False)
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {**numpy_state, "state": {"key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                                           "pos": numpy_state["state"]["pos"]}},
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = {"key": numpy_state["state"]["key"].numpy().astype(np.uint32),
                            "pos": numpy_state["state"]["pos"]}
    np.random.set_state(numpy_state)
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
