"""SIGTERM/SIGUSR1 as a request to stop: the trainer checkpoints and raises ``Preempted`` at its next sync
point; the audit stops between its folds. One class for both, so both keep the same main-thread rule."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

import torch
from accelerate import PartialState
from accelerate.utils import reduce

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignal:
    """Remembers a SIGTERM/SIGUSR1 while :meth:`listening`; the caller stops at its next safe point."""

    def __init__(self):
        self.received: str | None = None

    @contextmanager
    def listening(self) -> Iterator["StopSignal"]:
        """Handle the stop signals inside the ``with`` block, then put the previous handlers back.

        Python lets only the main thread install handlers; elsewhere (a worker thread of a tuning
        library) the block runs without them and the process's own handling stays in force.
        """
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name

    def any_rank_received(self) -> bool:
        """Whether any rank received one (called on every rank, so all of them stop together)."""
        flag = torch.tensor([float(self.received is not None)], device=PartialState().device)
        return bool(reduce(flag, reduction="sum").item())
