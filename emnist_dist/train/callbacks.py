"""Observing a training run from the outside, and stopping it cleanly: :class:`TrainerCallback`.

``Trainer(cfg, callbacks=[...])`` calls each callback, on every process, at one event:

- ``on_validation(event)`` after each validation (the record is already in ``metrics.jsonl`` and the
  trackers). :class:`ValidationEvent` carries the epoch, the step and the record (``val/acc``,
  ``val/balanced_acc``, ``val/macro_f1``, ``val/loss``, ``val_ema/...`` with EMA on, ``train/loss``, ``lr``,
  ``images_per_s``: the keys ``metrics.jsonl`` holds). Validation metrics are reduced across processes,
  so every process sees the same numbers.

A callback returns ``None`` to let the run go on, or a short reason (a string) to stop it. A stop asked
on any process stops every process at that step (:func:`stop_requested` agrees on it across the
process group): ``fit`` then raises :class:`RunStopped`, after closing the trackers and releasing the
run folder, and without testing or exporting (the test split is never touched by a stopped run).
The folder keeps its config, metrics and checkpoints. Validation runs every ``train.eval_every``
epochs and after the last step; a callback that raises ends the run with that exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from accelerate import Accelerator


@dataclass(frozen=True)
class ValidationEvent:
    """One validation: ``epoch`` (epochs begun so far, as in ``metrics.jsonl``), ``step`` (optimizer steps done)
    and ``record`` (that evaluation's ``metrics.jsonl`` record)."""

    epoch: int
    step: int
    record: dict = field(default_factory=dict)


class TrainerCallback:
    """Base class: override the events you need; the default lets the run go on."""

    def on_validation(self, event: ValidationEvent) -> str | None:
        """Called after each validation on every process; return a reason to stop the run, else None."""
        return None


class RunStopped(Exception):
    """A callback stopped the run at ``step``; the message is its reason (the first process's that asked)."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


def stop_requested(callbacks: Sequence[TrainerCallback], event: ValidationEvent,
                   accelerator: Accelerator) -> str | None:
    """Ask every callback; returns a reason to stop when any callback on any process asked, else None
    (the same answer on every process: one collective whatever the callbacks answered)."""
    reasons = [reason for reason in (callback.on_validation(event) for callback in callbacks) if reason]
    asked = torch.tensor([int(bool(reasons))], device=accelerator.device)
    if not bool(accelerator.gather(asked).any()):
        return None
    return reasons[0] if reasons else "stopped by a callback on another process"
