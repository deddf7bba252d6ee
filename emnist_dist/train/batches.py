"""Device-resident batching: the whole split lives on the device as uint8.

EMNIST is small (ByClass: 698k x 28 x 28 bytes = 547 MB), so instead of a per-image
DataLoader the split is moved to the device once and each batch is a single index
gather there (the airbench approach). Training batches are rank-sharded so that a DDP
step over W processes sees exactly the samples of the single-process step; evaluation
shards are exact (every sample once, none padded), because a device-resident loader
gets no de-duplication from ``accelerator.gather_for_metrics``.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from ..errors import UserError


class TrainLoader:
    """Whole training split resident on ``device`` as uint8; equal, even-sized, rank-sharded batches.

    Each epoch draws ONE permutation from ``(seed, epoch)`` on a CPU ``torch.Generator``,
    so it is identical on every rank and on any device. Global batch ``i`` is
    ``perm[i*B:(i+1)*B]``; rank ``r`` takes the contiguous block ``[r*B/W:(r+1)*B/W]``
    of it. The tail that does not fill a global batch is dropped, so every rank yields
    the same number of batches (no DDP hang) and every batch is even (MixUp pairs).

    Args:
        images: uint8 ``(N, 1, H, W)`` (or ``(N, H, W)``, given a channel axis).
        labels: integer ``(N,)`` class indices.
        batch_size: the GLOBAL batch, summed over ranks (``train.batch_size``).
        seed: run seed; with the epoch it fixes the order.
        rank, world_size: this process and the number of processes.
        device: where the split is kept and the batches are produced.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        images = _check_split(images, labels)
        if batch_size % world_size or (batch_size // world_size) % 2:
            raise UserError(
                f"train.batch_size={batch_size} with {world_size} processes: each process needs an even, "
                f"equal share; expected a multiple of {2 * world_size}"
            )
        if len(images) < batch_size:
            raise UserError(
                f"train.batch_size={batch_size}: the training split has only {len(images)} samples; "
                "expected at least one full batch"
            )
        if seed < 0:
            raise UserError(f"seed={seed}: expected a non-negative integer")
        self.images = images.to(device)
        self.labels = labels.to(device=device, dtype=torch.int64)
        self.batch_size = batch_size
        self.local_batch_size = batch_size // world_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.batch = 0

    def __len__(self) -> int:
        """Batches per epoch, the same on every rank."""
        return len(self.images) // self.batch_size

    def permutation(self, epoch: int) -> torch.Tensor:
        """The epoch's order of all N samples (CPU, identical on every rank and device)."""
        # SeedSequence hashes (seed, epoch) into one well-spread seed: nearby runs and
        # epochs get unrelated orders, unlike e.g. seed + epoch.
        mixed = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
        generator = torch.Generator().manual_seed(mixed)
        return torch.randperm(len(self.images), generator=generator)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield this rank's ``(uint8 images (B/W,1,H,W), int64 labels (B/W,))`` from the current position."""
        perm = self.permutation(self.epoch).to(self.images.device)
        while self.batch < len(self):
            start = self.batch * self.batch_size + self.rank * self.local_batch_size
            index = perm[start : start + self.local_batch_size]
            self.batch += 1  # advanced before yielding: a checkpoint taken now resumes after this batch
            yield self.images[index], self.labels[index]

    def state_dict(self) -> dict:
        """``{"epoch": e, "batch": index of the NEXT global batch, "batch_size", "samples"}``.

        The position counts global batches, which do not depend on the number of processes: a
        state saved by N processes resumes on M with the same global batches in the same order
        (each process then takes its ``1/M`` block of them).
        """
        return {"epoch": self.epoch, "batch": self.batch, "batch_size": self.batch_size, "samples": len(self.images)}

    def load_state_dict(self, state: dict) -> None:
        """Resume at ``state``.

        Raises:
            UserError: the state was saved with another global batch or another number of samples
                (its position would point at other samples).
        """
        saved = (int(state["batch_size"]), int(state["samples"]))
        if saved != (self.batch_size, len(self.images)):
            raise UserError(
                f"the checkpoint's loader state is for global batch {saved[0]} over {saved[1]} samples: "
                f"expected global batch {self.batch_size} over {len(self.images)} samples"
            )
        self.seek(int(state["epoch"]), int(state["batch"]))

    def seek(self, epoch: int, batch: int) -> None:
        """Position the stream at global batch ``batch`` of ``epoch`` (0 starts the epoch)."""
        self.epoch, self.batch = epoch, batch


def eval_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    *,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(uint8 images, int64 labels)`` batches of THIS rank's exact evaluation shard.

    The shards are contiguous ``torch.tensor_split`` blocks: across ranks every sample
    is evaluated exactly once, none padded or duplicated (shard sizes differ by at most
    one). ``batch_size`` is per rank; the last batch may be smaller.
    """
    images = _check_split(images, labels)
    if batch_size < 1:
        raise UserError(f"train.eval_batch_size={batch_size}: expected a positive integer")
    shard = torch.tensor_split(torch.arange(len(images)), world_size)[rank]
    if len(shard) == 0:
        return
    lo, hi = int(shard[0]), int(shard[-1]) + 1
    shard_images = images[lo:hi].to(device)
    shard_labels = labels[lo:hi].to(device=device, dtype=torch.int64)
    for start in range(0, hi - lo, batch_size):
        yield shard_images[start : start + batch_size], shard_labels[start : start + batch_size]


def _check_split(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N,1,H,W)`` images (a channel axis added to ``(N,H,W)``) matching ``(N,)`` labels."""
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"expected images (N,1,H,W) and labels (N,), got {tuple(images.shape)} and {tuple(labels.shape)}"
        )
    return images
