"""The study folder: an Optuna study in a journal file, trial run folders, and who runs which trial.

``--study DIR`` holds::

    study.journal       Optuna's JournalStorage (JournalFileBackend): every change to the study, appended
    study.journal.lock  held while one worker appends (JournalFileOpenLock: O_EXCL create, safe on NFSv3+)
    claims.lock         held while one worker hands out trials (the same kind of lock)
    leases/NNNN         "worker W runs trial NNNN"; W touches it every few seconds (a heartbeat)
    trials/NNNN/        trial NNNN's run folder (``Trainer``'s output_dir)

No database server: any worker that sees the folder (a shared filesystem) joins the study. Optuna's
heartbeat (``RetryFailedTrialCallback``) works only with its RDB storage, not the journal, so the leases
do that job here: a RUNNING trial whose lease is gone or has not been touched for ``stale_after``
seconds lost its worker. :func:`claim_trial` (under the claims lock) first takes such trials back: one
with a checkpoint newer than where its last attempt started goes back to WAITING and resumes from it;
one without is retried once from scratch (WAITING again), then marked FAIL. Then it hands out a
WAITING trial (same number, same parameters) before asking the sampler for a new one. A preempted
worker puts its trial back to WAITING itself, so the next worker resumes it at once.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import TrialState

from ..errors import UserError, one_line
from ..files import write_text_atomic
from ..train.checkpoint import checkpoint_step, published_checkpoints
from ..train.run_folder import RunFolder
from .space import SearchSpace

logger = logging.getLogger(__name__)  # the main process's alone: no accelerate state needed
STUDY_FILE = "study.journal"
RETRIES = 1
"""How often a trial whose worker died without leaving a newer checkpoint starts again before it is FAIL."""


def trial_name(number: int) -> str:
    """``0007``: the trial's folder name."""
    return f"{number:04d}"


class StudyFolder:
    """The paths of ``--study DIR`` and its locks."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.journal = self.root / STUDY_FILE
        self.trials = self.root / "trials"
        self.leases = self.root / "leases"
        self.csv = self.root / "trials.csv"
        self.best = self.root / "best.yaml"

    @property
    def name(self) -> str:
        """The study's name: the folder's (also the W&B group of its trials)."""
        return self.root.resolve().name

    def trial_dir(self, number: int) -> Path:
        return self.trials / trial_name(number)

    def trial_record(self, number: int) -> Path:
        """``trials/NNNN/trial.json``: the finished trial's state, value, parameters and reason."""
        return self.trial_dir(number) / "trial.json"

    def lease(self, number: int) -> Path:
        return self.leases / trial_name(number)

    def storage(self) -> JournalStorage:
        """The journal storage (the folder must exist)."""
        path = str(self.journal)
        try:  # replay the whole journal now: a damaged line surfaces as whatever its parser raises
            storage = JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
            storage.get_all_studies()
            return storage
        except (ValueError, KeyError, TypeError, AssertionError) as err:  # UnicodeDecodeError, JSONDecodeError too
            raise UserError(f"{self.journal}: damaged ({one_line(err) or type(err).__name__}): expected the journal "
                            "Optuna wrote (restore it from a copy, or start a new --study DIR)") from None

    @contextmanager
    def claims(self) -> Iterator[None]:
        """Hold the claims lock: one worker at a time hands out trials and writes the results."""
        lock = JournalFileOpenLock(str(self.root / "claims"))
        lock.acquire()
        try:
            yield
        finally:
            lock.release()


def create_folder(folder: StudyFolder) -> None:
    """Create ``--study DIR`` and its sub-folders (nothing when they exist). A folder holding no study yet must
    hold nothing but what its workers create first: a user's files there are never overwritten."""
    if folder.root.is_dir() and not folder.journal.exists():
        early = {folder.trials.name, folder.leases.name, f"{STUDY_FILE}.lock", "claims.lock"}
        foreign = sorted(p.name for p in folder.root.iterdir() if p.name not in early)
        if foreign:
            raise UserError(f"--study {folder.root}: holds no study but other files ({', '.join(foreign[:3])}): "
                            "expected a new or empty folder, or the DIR of a study")
    try:
        for path in (folder.root, folder.trials, folder.leases):
            path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--study {folder.root}: cannot be created ({err.strerror}): expected a writable folder") from None


def load_existing(folder: StudyFolder, storage: JournalStorage) -> optuna.Study:
    """The study a folder holds (for reading: its sampler and pruner are Optuna's defaults)."""
    names = optuna.get_all_study_names(storage) if folder.journal.is_file() else []
    if not names:
        raise UserError(f"--study {folder.root}: holds no study ({STUDY_FILE} not found or empty): expected the DIR "
                        "a sweep was run with")
    return optuna.load_study(study_name=names[0], storage=storage)


def open_study(folder: StudyFolder, space: SearchSpace, identity: dict, seed: int, worker: int,
               epochs: int) -> tuple[optuna.Study, JournalStorage]:
    """Create the study in ``folder`` or join it; refuse a sweep file or base config that differs from the study's.
    Returns the study and its storage.

    ``identity``: the base config's settings every trial shares (flattened). The sampler's seed is drawn from
    ``seed``, the ``worker`` index and the trials already in the study, so that workers (and a worker's restarts)
    do not draw the same values. ``epochs``: the base config's, Hyperband's longest trial.
    """
    create_folder(folder)
    storage = folder.storage()
    if not optuna.get_all_study_names(storage):
        with folder.claims():
            study = optuna.create_study(study_name=folder.name, storage=storage, direction=space.goal,
                                        load_if_exists=True)
            if "space" not in study.user_attrs:
                study.set_user_attr("space", space.definition())
                study.set_user_attr("base", identity)
    study = load_existing(folder, storage)
    study.sampler = space.make_sampler(seed * 1_000_003 + worker * 1009 + len(study.get_trials(deepcopy=False)))
    study.pruner = space.make_pruner(epochs)
    _check_same(study, "space", _jsonable(space.definition()), f"the sweep file differs from the one study {folder.root} was started with")
    _check_same(study, "base", _jsonable(identity), f"the base config differs from the one study {folder.root} was started with")
    return study, storage


def _jsonable(value):
    return json.loads(json.dumps(value))


def _check_same(study: optuna.Study, key: str, value, problem: str) -> None:
    saved = study.user_attrs.get(key)
    if saved == value:
        return
    if isinstance(saved, dict) and isinstance(value, dict):
        changed = sorted(k for k in saved.keys() | value.keys() if saved.get(k) != value.get(k))
        problem += f" ({', '.join(changed[:5])})"
    raise UserError(f"{problem}: expected the same settings, or a new --study DIR")


@dataclass
class Claim:
    """A trial this worker runs: its number, its parameters (by config key), the Optuna trial and the lease."""

    number: int
    params: dict
    trial: optuna.Trial
    lease: Lease


class Lease:
    """``leases/NNNN``: which worker runs the trial; its modification time is the worker's heartbeat."""

    def __init__(self, path: Path, token: str):
        self.path, self.token = path, token

    @classmethod
    def take(cls, path: Path) -> Lease:
        token = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "id": uuid.uuid4().hex})
        write_text_atomic(path, token)
        return cls(path, token)

    def held(self) -> bool:
        """Whether this worker still holds it (another one takes over a lease it found stale)."""
        try:
            return self.path.read_text() == self.token
        except OSError:
            return False

    def beat(self) -> None:
        try:
            os.utime(self.path)
        except OSError as err:  # a filesystem hiccup: the next beat tries again
            logger.warning(f"heartbeat of {self.path} failed: {err}")

    def drop(self) -> None:
        if self.held():
            self.path.unlink()


@contextmanager
def heartbeat(lease: Lease, interval: float) -> Iterator[None]:
    """Touch the lease every ``interval`` seconds from a background thread while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            lease.beat()

    thread = threading.Thread(target=beat, name="sweep-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def is_stale(path: Path, stale_after: float) -> bool:
    """A lease that is missing or untouched for ``stale_after`` seconds."""
    try:
        return time.time() - path.stat().st_mtime > stale_after
    except FileNotFoundError:
        return True


def latest_checkpoint_step(trial_dir: Path) -> int:
    """The step of the newest checkpoint in a trial's run folder, -1 when it has none."""
    found = published_checkpoints(RunFolder(trial_dir).checkpoints)
    return max((checkpoint_step(path) for path in found), default=-1)


def trial_id(storage: JournalStorage, study: optuna.Study, number: int) -> int:
    """The storage's id of trial ``number`` (what the storage's own methods take)."""
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)


def reap_orphans(study: optuna.Study, storage: JournalStorage, folder: StudyFolder, stale_after: float) -> None:
    """Take back the RUNNING trials whose worker is gone (see the module's docstring)."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        lease = folder.lease(trial.number)
        if not is_stale(lease, stale_after):
            continue
        tid = trial_id(storage, study, trial.number)
        step = latest_checkpoint_step(folder.trial_dir(trial.number))
        retries = trial.user_attrs.get("retries", 0)
        if step > trial.user_attrs.get("started_from", -1):
            logger.info(f"trial {trial.number}: its worker is gone; it resumes from its checkpoint of step {step}")
        elif retries < RETRIES:
            logger.info(f"trial {trial.number}: its worker died without a new checkpoint; retrying it")
            storage.set_trial_user_attr(tid, "retries", retries + 1)
        else:
            logger.info(f"trial {trial.number}: its worker died again without a new checkpoint: FAIL")
            storage.set_trial_user_attr(tid, "reason", "its worker died twice without a new checkpoint")
            study.tell(trial.number, state=TrialState.FAIL)
            lease.unlink(missing_ok=True)
            continue
        storage.set_trial_state_values(tid, TrialState.WAITING)
        lease.unlink(missing_ok=True)


def claim_trial(study: optuna.Study, storage: JournalStorage, folder: StudyFolder, space: SearchSpace,
                n_trials: int, stale_after: float) -> Claim | None:
    """Under the claims lock: the next trial for this worker (WAITING ones first), or None when the study has
    its ``n_trials`` trials and none is waiting."""
    reap_orphans(study, storage, folder, stale_after)
    trials = study.get_trials(deepcopy=False)
    waiting = any(t.state == TrialState.WAITING for t in trials)
    if not waiting:
        if len(trials) >= n_trials:
            return None
        if space.method == "grid":  # the grid's points in the file's order, one per new trial
            study.enqueue_trial(space.grid_point(len(trials)))
    trial = study.ask()
    params = {p.key: p.suggest(trial) for p in space.parameters}
    start = latest_checkpoint_step(folder.trial_dir(trial.number))
    trial.set_user_attr("started_from", start)
    trial.set_user_attr("attempts", [*trial.user_attrs.get("attempts", []), start])
    return Claim(trial.number, params, trial, Lease.take(folder.lease(trial.number)))
