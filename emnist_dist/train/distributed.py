"""The Accelerator of a run and the DDP helpers the trainer needs around it."""

from __future__ import annotations

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, set_seed
from timm.utils import distribute_bn

from ..config import Config
from ..errors import UserError
from .run_folder import RunFolder

logger = get_logger(__name__)


def build_accelerator(cfg: Config) -> Accelerator:
    """The Accelerator: device, precision (auto = bf16 where the GPU supports it), accumulation, trackers."""
    on_gpu = not cfg.cpu and torch.cuda.is_available()
    precision = cfg.train.mixed_precision
    if precision == "auto":
        precision = "bf16" if on_gpu and torch.cuda.is_bf16_supported() else "no"
    if precision == "fp16" and not on_gpu:
        raise UserError("train.mixed_precision=fp16: needs a CUDA GPU; expected bf16 or no on the CPU")
    accelerator = Accelerator(
        cpu=cfg.cpu,
        mixed_precision=precision,
        gradient_accumulation_steps=cfg.train.grad_accum_steps,
        log_with=cfg.log.trackers or None,
        project_config=ProjectConfiguration(project_dir=cfg.output_dir,
                                            logging_dir=str(RunFolder(cfg.output_dir).tensorboard)),
    )
    set_seed(cfg.seed)  # identical initial weights on every rank
    return accelerator


def broadcast_buffers(accelerator: Accelerator, model: torch.nn.Module) -> None:
    """Give every rank rank 0's BatchNorm statistics (timm's ``distribute_bn``). DDP broadcasts them only at
    the start of each forward, so after the last step every rank holds statistics of its own last batch."""
    if accelerator.num_processes > 1:
        distribute_bn(model, accelerator.num_processes, reduce=False)


def ranks_in_sync(accelerator: Accelerator, model: torch.nn.Module) -> bool:
    """True when every rank holds bit-identical weights (DDP must keep them so; a desync is a bug)."""
    with torch.no_grad():
        flat = torch.cat([t.detach().double().flatten() for t in model.state_dict().values()])
        positions = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=flat.device)
        fingerprint = torch.stack([flat.sum(), (flat * positions).sum(), flat.abs().max()])
    gathered = accelerator.gather(fingerprint[None]).cpu()
    in_sync = bool((gathered == gathered[0]).all())
    if not in_sync:
        logger.warning("the ranks' weights differ at the end of training (DDP desync)")
    return in_sync
