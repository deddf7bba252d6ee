"""Optimizer (Lion by default) and the warmup + cosine-with-restarts schedule."""

from __future__ import annotations

from typing import get_args

import torch
from lion_pytorch import Lion
from timm.optim import param_groups_weight_decay
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts, LinearLR, LRScheduler, SequentialLR

from ..config import OptimizerName
from ..errors import UserError

OPTIMIZERS = get_args(OptimizerName)


def build_optimizer(
    model: torch.nn.Module,
    name: str,
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.99),
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """``lion`` (lion-pytorch), ``adamw`` (torch) or ``sgd`` (Nesterov), without weight decay on 1-d parameters.

    Biases and normalisation weights (parameters with ``ndim <= 1``) and the model's own
    ``no_weight_decay()`` names (e.g. position embeddings) go to a group with
    ``weight_decay=0``; the rest decay (timm's ``param_groups_weight_decay``).
    Build it from the unwrapped model, before ``accelerator.prepare``.

    Raises:
        UserError: unknown optimizer name.
    """
    if name not in OPTIMIZERS:
        raise UserError(f"train.optimizer={name!r}: expected one of {', '.join(OPTIMIZERS)}")
    skip = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    groups = param_groups_weight_decay(model, weight_decay, no_weight_decay_list=skip)
    if name == "lion":
        return Lion(groups, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    steps_per_epoch: int,
    warmup_epochs: float,
    T_0: float,
    T_mult: int = 1,
    eta_min: float = 0.0,
) -> LRScheduler:
    """Linear warmup then ``CosineAnnealingWarmRestarts``, in optimizer steps, chained by ``SequentialLR``.

    Step it once per OPTIMIZER step (after ``optimizer.step()``; with gradient
    accumulation only on the steps that update, and ``steps_per_epoch`` counting those),
    so warmup rises smoothly instead of in epoch-sized stairs. Do not pass it through
    ``accelerator.prepare``: a prepared scheduler steps ``num_processes`` times per
    call, which would run the schedule N times too fast under N processes.

    With ``W = round(warmup_epochs * steps_per_epoch)`` the learning rate at step ``k`` is
    ``lr * (k + 1) / (W + 1)`` for ``k < W`` (never 0, reaching ``lr`` at ``k = W``), then
    cosine restarts from ``lr`` down to ``eta_min`` over cycles of
    ``max(1, round(T_0 * steps_per_epoch))`` steps, each ``T_mult`` times longer than the
    last. ``W == 0`` gives the cosine alone (``SequentialLR`` must not get a 0-length stage).

    Raises:
        UserError: no step per epoch, negative warmup, non-positive ``T_0``, ``T_mult < 1``.
    """
    if steps_per_epoch < 1:
        raise UserError(
            "an epoch has no optimizer step: expected train.batch_size * train.grad_accum_steps "
            "to be at most the number of training samples"
        )
    if warmup_epochs < 0:
        raise UserError(f"train.warmup_epochs={warmup_epochs}: expected a value >= 0")
    if T_0 <= 0:
        raise UserError(f"train.T_0={T_0}: expected a positive number of epochs")
    if T_mult < 1:
        raise UserError(f"train.T_mult={T_mult}: expected an integer >= 1")
    warmup_steps = round(warmup_epochs * steps_per_epoch)
    cycle_steps = max(1, round(T_0 * steps_per_epoch))
    if warmup_steps == 0:
        return CosineAnnealingWarmRestarts(optimizer, T_0=cycle_steps, T_mult=T_mult, eta_min=eta_min)
    warmup = LinearLR(optimizer, start_factor=1.0 / (warmup_steps + 1), end_factor=1.0, total_iters=warmup_steps)
    cosine = CosineAnnealingWarmRestarts(optimizer, T_0=cycle_steps, T_mult=T_mult, eta_min=eta_min)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])
