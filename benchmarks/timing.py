"""The one timing method of the benchmarks: warm-up calls, then a counted run of calls in one clock span."""

from __future__ import annotations

import time

import torch


def calls_per_s(call, count: int, warmup: int, device: torch.device) -> float:
    """``warmup`` untimed calls of ``call()``, then ``count`` calls inside one ``time.perf_counter`` span.

    The device is synchronised before the span starts and before it ends, so queued CUDA work is
    neither counted from before nor left out at the end.
    """
    for _ in range(warmup):
        call()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(count):
        call()
    synchronize(device)
    return count / (time.perf_counter() - start)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
