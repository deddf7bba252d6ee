"""The one place the config becomes training components, and the one place the transform order is written.

The trainer, the checkpoint test helper and the overhead benchmark build their parts here:
:func:`build_network` (the timm network), :func:`build_components` (loss, optimizer, schedule,
EMA, augmentation) and :class:`Augmentation` (a device batch of uint8 glyphs -> model input and
soft targets). A new augmentation is a config field plus a line in :func:`build_components` and
one in :meth:`Augmentation.__call__`; :meth:`Augmentation.random_streams` puts its random stream
into every checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from timm.utils import ModelEmaV3

from ..config import Config
from ..data.resize import normalize
from .augment import RandomAffine
from .loss import WeightedKLDivLoss, class_weights
from .mixup import MixUpCutMix, smooth_one_hot
from .network import create_model
from .optim import build_optimizer, build_scheduler


def build_network(cfg: Config, num_classes: int) -> torch.nn.Module:
    """The timm network with a 1-channel stem, in channels_last when asked (CPU; the caller moves it)."""
    network = create_model(cfg.model.name, num_classes, pretrained=cfg.model.pretrained,
                           drop_rate=cfg.model.drop_rate, drop_path_rate=cfg.model.drop_path_rate)
    if cfg.model.channels_last:
        network = network.to(memory_format=torch.channels_last)
    return network


class Augmentation:
    """Device batch -> (model input, soft targets), in the training order: random affine + resize (one
    ``grid_sample``), normalise, channels_last, then MixUp/CutMix (or label-smoothed one-hot targets)."""

    def __init__(self, cfg: Config, num_classes: int, mean: float, std: float, seed: int):
        aug = cfg.augment
        self.image_size, self.mean, self.std = cfg.data.image_size, mean, std
        self.channels_last = cfg.model.channels_last
        self.num_classes, self.label_smoothing = num_classes, aug.label_smoothing
        self.mixup_off_epoch = aug.mixup_off_epoch
        self.affine = RandomAffine(aug.degrees, aug.translate, aug.scale, aug.shear, seed=seed)
        self.mixer = MixUpCutMix(num_classes, mixup_alpha=aug.mixup_alpha, cutmix_alpha=aug.cutmix_alpha,
                                 prob=aug.mix_prob, switch_prob=aug.switch_prob,
                                 label_smoothing=aug.label_smoothing, seed=seed)

    def mixing(self, epoch: int) -> bool:
        """Whether MixUp/CutMix is on in ``epoch``."""
        return self.mixer.enabled and (self.mixup_off_epoch is None or epoch < self.mixup_off_epoch)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = normalize(self.affine.resize(images, self.image_size), self.mean, self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.mixing(epoch):
            return self.mixer(x, labels)
        return x, smooth_one_hot(labels, self.num_classes, self.label_smoothing)

    def random_streams(self) -> dict[str, Any]:
        """The per-process random streams a checkpoint saves (``state_dict``/``load_state_dict``/``reseed``)."""
        return {"affine": self.affine, "mixup": self.mixer}


@dataclass
class Components:
    """What one optimizer step needs besides the network and the batches."""

    loss_fn: WeightedKLDivLoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: ModelEmaV3 | None
    augmentation: Augmentation


def build_components(cfg: Config, network: torch.nn.Module, class_counts: torch.Tensor, *, mean: float, std: float,
                     steps_per_epoch: int, seed: int, device: torch.device | str = "cpu") -> Components:
    """Loss, optimizer, schedule, EMA and augmentation for ``network`` from ``cfg``.

    Args:
        class_counts: training samples per class (the loss's class weights come from them).
        mean, std: the normalisation of the resized training glyphs.
        steps_per_epoch: optimizer steps per epoch (the schedule counts in them).
        seed: the augmentation's seed (give each process its own).
    """
    t = cfg.train
    loss_fn = WeightedKLDivLoss(class_weights(class_counts, t.class_weighting, beta=t.effective_number_beta)).to(device)
    optimizer = build_optimizer(network, t.optimizer, lr=t.lr, weight_decay=t.weight_decay, betas=t.betas,
                                momentum=t.momentum)
    scheduler = build_scheduler(optimizer, steps_per_epoch=steps_per_epoch, warmup_epochs=t.warmup_epochs,
                                T_0=t.T_0, T_mult=t.T_mult, eta_min=t.eta_min)
    return Components(loss_fn, optimizer, scheduler, build_ema(cfg, network),
                      Augmentation(cfg, len(class_counts), mean, std, seed))


def build_ema(cfg: Config, model: torch.nn.Module) -> ModelEmaV3 | None:
    """timm's weight EMA with warmup (or None when off).

    Without warmup the average keeps most of the random initial weights (and their BatchNorm
    statistics) for about ``1 / (1 - decay)`` steps, so short runs evaluate at chance. With
    timm's warmup the decay starts near 0 and rises as ``1 - (1 + step) ** -0.75`` towards ``ema_decay``.
    """
    if not cfg.model.ema:
        return None
    return ModelEmaV3(model, decay=cfg.model.ema_decay, use_warmup=True, warmup_power=0.75)
