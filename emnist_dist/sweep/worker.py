"""One sweep worker: claim a trial, train it in this process with ``Trainer(cfg).fit()``, record it, repeat.

Under ``accelerate launch`` (a multi-GPU trial) every process runs this loop: the main process alone
talks to the study (claims, reports, records) and sends each claim's number and parameters to the
others (:func:`~emnist_dist.train.agreement.main_decides`), so every rank trains the same trial.

Outcomes: the run finished -> COMPLETE with the best validation value of the metric; the pruning
callback stopped it -> PRUNED; the loss diverged -> FAIL (the worker goes on); SIGTERM/SIGUSR1 ->
the trainer saved a checkpoint, the trial goes back to WAITING and the worker exits 75 (the same
command resumes it); bad input or a bug -> FAIL and the error ends the worker. Every finished trial
leaves ``trial.json`` (number, state, value, parameters, reason) in its run folder.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass

import optuna
import torch
from accelerate import PartialState
from accelerate.logging import get_logger
from accelerate.utils import gather
from optuna.storages import JournalStorage
from optuna.trial import TrialState

from ..config import Config, config_to_dict, flatten_config, parse_config
from ..errors import UserError, one_line
from ..files import write_text_atomic
from ..train import Diverged, Preempted, RunStopped, Trainer, TrainerCallback, ValidationEvent
from ..train.agreement import main_decides
from ..train.run_folder import RunFolder
from ..train.__main__ import EXIT_PREEMPTED
from ..train.stop_signal import StopSignal
from .results import write_pictures, write_results
from .space import SearchSpace, override_args
from .study import Claim, StudyFolder, claim_trial, heartbeat, open_study, trial_id, trial_name

logger = get_logger(__name__)
# Settings the trials of one study may differ in without being different experiments.
FREE_SETTINGS = ("output_dir", "resume", "log.")


@dataclass
class Sweep:
    """What every worker of a study shares: the folder, the space, the base config and the limits."""

    folder: StudyFolder
    space: SearchSpace
    base_args: list[str]
    """``--config FILE`` and the ``--section.key VALUE`` overrides every trial gets."""
    base: Config
    n_trials: int
    stale_after: float = 120.0
    """Seconds without a heartbeat after which a RUNNING trial's worker counts as gone."""

    def identity(self) -> dict:
        """The base settings every trial of the study shares (trackers, logging and paths may differ)."""
        flat = flatten_config(config_to_dict(self.base))
        return {k: v for k, v in flat.items() if not k.startswith(FREE_SETTINGS)}

    def trial_config(self, number: int, params: dict) -> Config:
        """The trial's complete config: the base, its parameters, its run folder, ``resume=auto``."""
        extra = [] if self.base.log.run_name else ["--log.run_name", f"{self.folder.name}-{trial_name(number)}"]
        return parse_config([*self.base_args, *override_args(params), *extra,
                             "--output_dir", str(self.folder.trial_dir(number)), "--resume", "auto"])


class PruningCallback(TrainerCallback):
    """Reports the metric to the Optuna trial at each validation (step = epoch) and stops the run when the pruner
    says so. ``trial`` is None on the processes that do not talk to the study (they never ask to stop)."""

    def __init__(self, trial: optuna.Trial | None, metric: str):
        self.trial, self.metric = trial, metric

    def on_validation(self, event: ValidationEvent) -> str | None:
        value = event.record.get(self.metric)
        if value is None:  # the same record on every process: all of them stop here
            held = ", ".join(k for k in event.record if k.startswith("val"))
            raise UserError(f"metric.name={self.metric}: not in the validation records (they hold {held})")
        if self.trial is None:
            return None
        self.trial.report(value, event.epoch)
        if self.trial.should_prune():
            return f"pruned by the study's Hyperband at epoch {event.epoch} ({self.metric} {value:.4f})"
        return None


def best_value(metrics_log, metric: str, goal: str) -> float | None:
    """The best value of ``metric`` over a run's ``metrics.jsonl`` records, None when none holds it."""
    values = []
    if metrics_log.is_file():
        for line in metrics_log.read_text().splitlines():
            try:
                value = json.loads(line).get(metric)
            except (json.JSONDecodeError, AttributeError):
                continue
            if isinstance(value, (int, float)) and math.isfinite(value):
                values.append(float(value))
    if not values:
        return None
    return max(values) if goal == "maximize" else min(values)


def any_process(state: PartialState, flag: bool) -> bool:
    """True on every process when ``flag`` is true on any."""
    if state.num_processes == 1:
        return flag
    return bool(gather(torch.tensor([int(flag)], device=state.device)).any())


def run_worker(sweep: Sweep, worker: int) -> int:
    """Run trials until the study has its ``n_trials`` and none waits; returns the exit code (0, or 75 when a stop
    signal interrupted a trial, which then waits in the study for the same command to resume it)."""
    state = PartialState(cpu=sweep.base.cpu)
    group = os.environ.get("WANDB_RUN_GROUP")
    os.environ["WANDB_RUN_GROUP"] = group or sweep.folder.name  # each trial's W&B run, grouped by study
    try:
        return _run_trials(sweep, state, worker)
    finally:
        if group is None:
            os.environ.pop("WANDB_RUN_GROUP", None)


def _run_trials(sweep: Sweep, state: PartialState, worker: int) -> int:
    study = storage = None
    if state.is_main_process:
        study, storage = open_study(sweep.folder, sweep.space, sweep.identity(), seed=sweep.base.seed,
                                    worker=worker, epochs=sweep.base.train.epochs)
    stop = StopSignal()
    with stop.listening():
        while True:
            if any_process(state, stop.received is not None):  # arrived between trials: none is claimed
                logger.info(f"{stop.received or 'a stop signal'} received: stopping before the next trial")
                return EXIT_PREEMPTED
            claimed: list[Claim] = []

            def claim() -> dict | None:
                with sweep.folder.claims():
                    found = claim_trial(study, storage, sweep.folder, sweep.space, sweep.n_trials, sweep.stale_after)
                if found is None:
                    return None
                claimed.append(found)
                return {"number": found.number, "params": found.params}

            decision = main_decides(state, claim)
            if decision is None:
                break
            code = run_trial(sweep, state, (study, storage), decision["number"], decision["params"],
                             claimed[0] if claimed else None, stop)
            if code:
                return code
    if state.is_main_process:
        with sweep.folder.claims():
            write_results(study, sweep.folder, sweep.space.metric, sweep.space.keys)
        write_pictures(study, sweep.folder)
    return 0


def run_trial(sweep: Sweep, state: PartialState, study: tuple[optuna.Study, JournalStorage], number: int,
              params: dict, claim: Claim | None, stop: StopSignal) -> int:
    """Train one trial on every process; the main process (``claim`` given) records its outcome in ``study`` (the
    study and its storage). Returns 0 or 75."""
    logger.info(f"trial {trial_name(number)} on process {state.process_index}: {json.dumps(params)}",
                main_process_only=False)
    started = time.monotonic()
    folder = sweep.folder.trial_dir(number)
    outcome: tuple[TrialState | None, str] = (None, "")
    with heartbeat(claim.lease, interval=max(1.0, sweep.stale_after / 6)) if claim else nullcontext():
        try:
            cfg = sweep.trial_config(number, params)
            if any_process(state, stop.received is not None):
                raise Preempted(f"{stop.received or 'a stop signal'} received before trial {number} started", -1)
            trainer = Trainer(cfg, callbacks=[PruningCallback(claim.trial if claim else None, sweep.space.metric)])
            if any_process(state, stop.received is not None):
                raise Preempted(f"{stop.received or 'a stop signal'} received before trial {number} trained", -1)
            trainer.fit()
            outcome = (TrialState.COMPLETE, "finished")
            stop.received = stop.received or trainer.stop.received  # too late for this trial: before the next
        except RunStopped as err:
            outcome = (TrialState.PRUNED, str(err))
        except Diverged as err:
            outcome = (TrialState.FAIL, one_line(err))
        except Preempted as err:
            outcome = (TrialState.WAITING, str(err))
        except Exception as err:  # bad input or a bug: recorded, then it ends the worker
            if claim is not None:
                record(sweep, study, claim, TrialState.FAIL, one_line(err), time.monotonic() - started)
            raise
        except KeyboardInterrupt:
            if claim is not None:
                record(sweep, study, claim, TrialState.WAITING, "interrupted", time.monotonic() - started)
            raise
    if claim is not None:
        record(sweep, study, claim, *outcome, time.monotonic() - started)
    if outcome[0] == TrialState.WAITING:
        logger.info(f"trial {trial_name(number)} stopped ({outcome[1]}); it waits in the study: run the same command "
                    f"again to resume it from {folder}")
        return EXIT_PREEMPTED
    return 0


def record(sweep: Sweep, study: tuple[optuna.Study, JournalStorage], claim: Claim, state: TrialState, reason: str,
           seconds: float) -> None:
    """Write a trial's outcome to the study (main process, under the claims lock) and its ``trial.json``."""
    study, storage = study
    with sweep.folder.claims():
        if not claim.lease.held():
            logger.warning(f"trial {claim.number} was taken over by another worker (no heartbeat for "
                           f"{sweep.stale_after:.0f} s); this worker's outcome ({state.name}) is not recorded")
            return
        trial = claim.trial
        total = seconds + trial.user_attrs.get("seconds", 0.0)
        trial.set_user_attr("seconds", total)
        value = None
        if state == TrialState.COMPLETE:
            value = best_value(RunFolder(sweep.folder.trial_dir(claim.number)).metrics, sweep.space.metric,
                               sweep.space.goal)
            if value is None:
                state, reason = TrialState.FAIL, f"no validation record holds {sweep.space.metric}"
        if state == TrialState.WAITING:
            storage.set_trial_state_values(trial_id(storage, study, claim.number), TrialState.WAITING)
        else:
            if state != TrialState.COMPLETE:
                trial.set_user_attr("reason", reason)
            study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
            frozen = storage.get_trial(trial_id(storage, study, claim.number))
            write_text_atomic(sweep.folder.trial_record(claim.number), json.dumps({
                "number": claim.number, "state": state.name, sweep.space.metric: frozen.value,
                "params": claim.params, "reason": reason, "seconds": round(total, 1),
                "attempts": frozen.user_attrs.get("attempts", [])}, indent=2) + "\n")
        claim.lease.drop()
        write_results(study, sweep.folder, sweep.space.metric, sweep.space.keys)
    logger.info(f"trial {trial_name(claim.number)}: {state.name}" + (f" ({reason})" if reason else ""))
