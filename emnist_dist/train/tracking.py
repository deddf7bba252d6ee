"""Experiment tracking through Accelerate's trackers (Weights & Biases, TensorBoard, or any other it supports).

A resumed run continues the same W&B run: its id is kept in the run folder (``RunFolder.wandb_id``) (a W&B
sweep agent's own ``WANDB_RUN_ID`` takes precedence).
"""

from __future__ import annotations

import netrc
import os
import secrets
import string
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from accelerate import Accelerator

from ..config import Config, config_to_dict, flatten_config
from .run_folder import RunFolder


def resolve_wandb_mode(mode: str) -> str:
    """``auto`` is online when an API key for the W&B server is configured, else offline.

    The server is ``$WANDB_BASE_URL`` (a self-hosted one) or W&B's cloud; the key is ``$WANDB_API_KEY``
    or the netrc entry for the server's host[:port] in ``$NETRC`` or ``~/.netrc`` (where ``wandb login``
    stores it; for a key kept elsewhere set ``log.wandb_mode online``). wandb has no public call that
    answers "is a key configured" without contacting the server, hence this lookup.
    """
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").netloc
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):  # no netrc file, or one that cannot be read: no key
        return "offline"
    return "online" if entry and entry[2] else "offline"


def flat_config(cfg: Config) -> dict:
    """``{"train.lr": 1e-4, ...}`` with scalar values only (what TensorBoard hparams accept)."""
    flat = flatten_config(config_to_dict(cfg))
    return {key: ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            for key, value in flat.items()}


def start_tracking(accelerator: Accelerator, cfg: Config, extra: dict) -> None:
    """Initialise the configured trackers with the flattened config plus ``extra`` facts about the run."""
    if not cfg.log.trackers:
        return
    init_kwargs = {}
    if "wandb" in cfg.log.trackers:
        run_id = os.environ.get("WANDB_RUN_ID")
        if run_id is None and accelerator.is_main_process:
            run_id = _wandb_run_id(RunFolder(cfg.output_dir).wandb_id)
        init_kwargs["wandb"] = {
            "mode": resolve_wandb_mode(cfg.log.wandb_mode),
            "dir": cfg.output_dir,
            "name": cfg.log.run_name or Path(cfg.output_dir).name,
            "id": run_id,
            "resume": "allow",
        }
    accelerator.init_trackers(cfg.log.project, config={**flat_config(cfg), **extra}, init_kwargs=init_kwargs)


def _wandb_run_id(path: Path) -> str:
    """The run's W&B id, made once and kept in the run folder so a resume continues the same run.
    W&B accepts any id of letters and digits; wandb has no public id generator, so ``secrets`` draws it."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        alphabet = string.ascii_lowercase + string.digits
        path.write_text("".join(secrets.choice(alphabet) for _ in range(12)))
    return path.read_text().strip()


def log_image(accelerator: Accelerator, name: str, image: np.ndarray, step: int) -> None:
    """Log one RGB ``(H, W, 3)`` uint8 image to every active tracker."""
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.log_images({name: image[None]}, step=step, dataformats="NHWC")
        elif tracker.name == "wandb":
            tracker.log_images({name: [image]}, step=step)
