"""A tiny but complete training state for checkpoint tests, stepped like the trainer steps its own.

It has everything a checkpoint must carry: weights with dropout and BatchNorm buffers, Lion
momentum, warmup + cosine schedule, a weight EMA, the device loader's position and the
per-process augmentation and MixUp streams, all built by the trainer's own builder
(``emnist_dist.train.components``) from a config written in code; only the network is a tiny one.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from accelerate import Accelerator

from emnist_dist.config import Config
from emnist_dist.train.batches import TrainLoader
from emnist_dist.train.checkpoint import CheckpointParts
from emnist_dist.train.components import build_components

CLASSES = 10
BATCHES_PER_EPOCH = 8


class Progress:
    """The run's position, as JSON (the trainer keeps more fields; the format is the same)."""

    def __init__(self):
        self.step = 0

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]


def tiny_config(seed: int) -> Config:
    """The trainer's config for the tiny run: Lion, 0.5-epoch warmup, 1-epoch cosine, EMA, affine + MixUp/CutMix."""
    cfg = Config(seed=seed)
    cfg.data.image_size = 28
    cfg.model.channels_last = False
    cfg.model.ema, cfg.model.ema_decay = True, 0.9
    cfg.train.lr, cfg.train.weight_decay, cfg.train.warmup_epochs, cfg.train.T_0 = 1e-3, 0.1, 0.5, 1
    cfg.train.class_weighting = "none"
    cfg.augment.degrees, cfg.augment.translate = 10, 0.1
    return cfg


class TinyRun:
    """``width`` sets the size of the weights (16 -> ~3k parameters; 256 -> ~70k)."""

    def __init__(self, accelerator: Accelerator, seed: int, width: int = 16):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(1, width, 3, padding=1), torch.nn.BatchNorm2d(width), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Dropout(0.3),
            torch.nn.Linear(16 * width, CLASSES),
        )
        parts = build_components(tiny_config(seed), model, torch.full((CLASSES,), 100), mean=0.0, std=1.0,
                                 steps_per_epoch=BATCHES_PER_EPOCH, seed=seed)
        self.scheduler, self.ema, self.augmentation, self.loss_fn = \
            parts.scheduler, parts.ema, parts.augmentation, parts.loss_fn
        self.model, self.optimizer = accelerator.prepare(model, parts.optimizer)
        images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        self.loader = TrainLoader(images, torch.arange(64) % CLASSES, 64 // BATCHES_PER_EPOCH, seed=0)
        self.progress = Progress()
        self.parts = CheckpointParts(model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                                     progress=self.progress, loader=self.loader, ema=self.ema,
                                     per_rank=self.augmentation.random_streams())
        self._batches = None

    def step(self) -> None:
        """One optimizer step on the next batch (the loader continues from a loaded position)."""
        if self._batches is None:
            self._batches = iter(self.loader)
        images, labels = next(self._batches)
        x, targets = self.augmentation(images, labels, epoch=self.progress.step // BATCHES_PER_EPOCH)
        loss = self.loss_fn(self.model(x), targets)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.scheduler.step()
        self.ema.update(self.model, step=self.progress.step)
        self.progress.step += 1

    def snapshot(self) -> dict:
        """Everything that must continue identically: weights, EMA, lr, and the global random streams."""
        return {
            **{f"model.{k}": v.clone() for k, v in self.model.state_dict().items()},
            **{f"ema.{k}": v.clone() for k, v in self.ema.state_dict().items()},
            "lr": torch.tensor(self.scheduler.get_last_lr()),
            "torch": torch.rand(4),
            "python": torch.tensor([random.random()]),
            "numpy": torch.from_numpy(np.random.rand(2)),
        }
