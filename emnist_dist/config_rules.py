"""The checks of a configuration that its types cannot express (ranges, fields that depend on each other,
installed trackers): :func:`validate`, run on every parsed or code-built config by :mod:`emnist_dist.config`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    from .config import AuditConfig, Config

_NULLABLE = ("train.max_steps", "checkpoint.every_steps")


def validate(config: Config) -> None:
    """Checks that span fields or that the types cannot express; raises UserError."""
    t, d = config.train, config.data
    if t.epochs < 1:
        raise UserError(f"train.epochs={t.epochs}: expected an integer >= 1")
    if t.batch_size < 2 or t.batch_size % 2:
        raise UserError(
            f"train.batch_size={t.batch_size}: expected an even number >= 2 (MixUp/CutMix pairs each batch with its reverse)"
        )
    if not (t.lr > 0 and math.isfinite(t.lr)):
        raise UserError(f"train.lr={t.lr}: expected a positive learning rate")
    positive = {
        "train.grad_accum_steps": t.grad_accum_steps,
        "train.eval_every": t.eval_every,
        "train.eval_batch_size": t.eval_batch_size,
        "train.max_steps": t.max_steps,
        "checkpoint.every_steps": config.checkpoint.every_steps,
        "checkpoint.keep_last": config.checkpoint.keep_last,
        "log.log_every": config.log.log_every,
    }
    for name, value in positive.items():
        if value is not None and value < 1:
            raise UserError(f"{name}={value}: expected an integer >= 1" + (" (or null)" if name in _NULLABLE else ""))
    if t.clip_grad_norm is not None and not t.clip_grad_norm > 0:
        raise UserError(f"train.clip_grad_norm={t.clip_grad_norm}: expected a positive norm (or null for no clipping)")
    if not 0.0 <= d.val_fraction < 1.0:
        raise UserError(f"data.val_fraction={d.val_fraction}: expected a fraction in [0, 1)")
    if d.image_size < 8:
        raise UserError(f"data.image_size={d.image_size}: expected at least 8 pixels")
    if d.folds < 2:
        raise UserError(f"data.folds={d.folds}: expected an integer >= 2")
    if d.fold is not None and not 0 <= d.fold < d.folds:
        raise UserError(f"data.fold={d.fold}: expected null or a fold number in 0..{d.folds - 1} (data.folds={d.folds})")
    if not all(0.0 <= beta < 1.0 for beta in t.betas):
        raise UserError(f"train.betas={list(t.betas)}: expected two numbers in [0, 1)")
    if not config.output_dir.strip():
        raise UserError("output_dir='': expected the run's folder (a path)")
    check_project(config.log.project)
    validate_audit(config.audit)
    check_trackers(config.log.trackers)
    if config.resume not in ("never", "auto") and not Path(config.resume).exists():
        raise UserError(f"resume={config.resume!r}: expected never, auto, or an existing checkpoint folder")


def check_project(project: str) -> None:
    """``log.project`` names a folder under ``output_dir/tensorboard`` and a W&B project (at most 128 characters):
    one plain name, so the tracker files stay inside the run folder."""
    if project in ("", ".", "..") or any(c in project for c in "/\\\0") or len(project) > 128:
        raise UserError(f"log.project={project[:60]!r}{'...' if len(project) > 60 else ''}: expected a plain name "
                        "(no / or \\, not . or .., at most 128 characters)")


def check_trackers(names: list[str]) -> None:
    """Each name must be a tracker Accelerate supports and its package must be installed (Accelerate itself
    skips a tracker whose package is missing, silently)."""
    if not names:
        return
    import accelerate.utils  # here: importing accelerate (and torch) is only needed to check trackers

    supported = [kind.value for kind in accelerate.utils.LoggerType if kind is not accelerate.utils.LoggerType.ALL]
    for name in names:
        if name not in supported:
            raise UserError(f"log.trackers contains {name!r}: expected any of {', '.join(supported)}")
        if not getattr(accelerate.utils, f"is_{name}_available")():
            raise UserError(f"log.trackers contains {name!r} but its package is not installed: pip install {name}")


def validate_audit(a: AuditConfig) -> None:
    """The audit section's own checks (part of :func:`validate`)."""
    if a.transform_ratio < 1:
        raise UserError(f"audit.transform_ratio={a.transform_ratio}: expected a ratio >= 1")
    if a.top is not None and a.top < 1:
        raise UserError(f"audit.top={a.top}: expected a positive number of glyphs (or null: the flagged ones)")
    if not 0 < a.transform_min_prob <= 1:
        raise UserError(f"audit.transform_min_prob={a.transform_min_prob}: expected a probability in (0, 1]")
    if a.sheet_size < 1:
        raise UserError(f"audit.sheet_size={a.sheet_size}: expected an integer >= 1")
