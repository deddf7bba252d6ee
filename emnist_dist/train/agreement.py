"""Making every process of a run take the same decision and fail the same way.

A decision about shared files (which checkpoint to resume, whether the run folder may be used) is
taken once, by the main process, and sent to the others; a problem met by any process (a failed
write, an unreadable file) is collected from all of them. Either way every process then returns
the same value or raises the same one-line ``UserError``: none is left waiting in a collective for
a peer that already gave up (which ends in a gloo/NCCL timeout and pages of tracebacks).
"""

from __future__ import annotations

from typing import Callable, TypeVar

from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, gather_object

from ..errors import UserError

T = TypeVar("T")


def main_decides(accelerator: Accelerator, decide: Callable[[], T]) -> T:
    """Run ``decide()`` on the main process only; every process returns its result or raises its UserError.

    The result must be picklable (it travels over the process group, never through a file).
    """
    outcome: list = [None]
    if accelerator.is_main_process:
        try:
            outcome = [(True, decide())]
        except UserError as err:
            outcome = [(False, str(err))]
    if accelerator.num_processes > 1:
        broadcast_object_list(outcome)
    ok, value = outcome[0]
    if not ok:
        raise UserError(value)
    return value


def all_succeed(accelerator: Accelerator, problem: str | None) -> None:
    """Raise the first process's problem (a one-line message) on every process, if any process had one."""
    problems = gather_object([problem]) if accelerator.num_processes > 1 else [problem]
    found = [p for p in problems if p]
    if found:
        raise UserError(found[0])
