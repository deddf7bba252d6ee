"""Training throughput for the console and the metrics: a running loss and images/s, and a duration's text."""

from __future__ import annotations

import time

import torch


def format_duration(seconds: float) -> str:
    """``h:mm:ss``."""
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ThroughputWindow:
    """Running training loss and images/s, since the last log line and over the epoch.

    The loss is summed on the device; it is read (one host sync) only by :meth:`flush`.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.reset_epoch()
        self._start_window()

    def _start_window(self) -> None:
        self.loss_sum = torch.zeros((), device=self.device)
        self.steps = 0
        self.images = 0
        self.t0 = time.perf_counter()

    def reset_epoch(self) -> None:
        self.epoch_loss_sum, self.epoch_steps, self.epoch_images = 0.0, 0, 0
        self.epoch_t0 = time.perf_counter()

    def add(self, loss: torch.Tensor, images: int) -> None:
        self.loss_sum += loss
        self.steps += 1
        self.images += images

    def flush(self) -> dict:
        loss_sum = float(self.loss_sum)  # the host sync
        seconds = time.perf_counter() - self.t0
        stats = {"loss": loss_sum / max(1, self.steps), "images_per_s": self.images / max(seconds, 1e-9)}
        self.epoch_loss_sum += loss_sum
        self.epoch_steps += self.steps
        self.epoch_images += self.images
        self._start_window()
        return stats

    def epoch_loss(self) -> float:
        self.flush()
        return self.epoch_loss_sum / max(1, self.epoch_steps)

    def epoch_images_per_s(self) -> float:
        return self.epoch_images / max(time.perf_counter() - self.epoch_t0, 1e-9)
