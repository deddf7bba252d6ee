"""Train an EMNIST classifier: ``python -m emnist_dist.train --config FILE [--section.key VALUE ...]``.

The same script runs single-process (CPU or one GPU) and under ``accelerate launch`` (DDP on
one node or many). Read top to bottom, it is the whole run:

1. parse the typed config, build the Accelerator (precision, accumulation, trackers);
2. load the split (one uint8 tensor per part) and put the training part on the device;
3. build model, loss, optimizer, schedule, augmentation; resume from a checkpoint if asked;
4. train: device batches -> resize/augment/normalise -> MixUp/CutMix -> weighted KL -> Lion;
5. evaluate on validation every ``eval_every`` epochs, checkpoint, keep the best weights;
6. evaluate best and last weights on the test split, write ``final.json``, export ``model/``.

Exit codes: 0 finished; 2 bad input (one line on stderr); 3 the loss became NaN/inf
(the run stops at that step, naming it; nothing is skipped silently); 75 stopped by SIGTERM/
SIGUSR1 after saving a checkpoint (resume with ``--resume auto``).
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from safetensors.torch import load_file
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, resolve_resume, save_checkpoint
from ..config import Config, parse_config, save_config
from ..data import EmnistData, load_emnist
from ..errors import UserError, run_cli
from ..inference.artifact import ModelInfo, save_model, save_weights
from ..files import write_text_atomic
from .batches import TrainLoader, eval_batches
from .loss import WeightedKLDivLoss, class_weights
from ..metrics import EvalMetrics
from .mixup import MixUpCutMix, smooth_one_hot
from .network import create_model
from .optim import build_optimizer, build_scheduler
from .tracking import log_image, start_tracking
from .augment import RandomAffine
from ..data.resize import normalize, resize_to_float, to_model_input

EXIT_DIVERGED = 3
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: a checkpoint was saved, run again with --resume auto


@dataclass
class Progress:
    """Where the run stands; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    best_val_acc: float = -1.0
    best_step: int = -1
    best_epoch: int = -1
    world_size: int = 1

    def state_dict(self) -> dict:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)


class StopSignal:
    """Remembers a SIGTERM/SIGUSR1 so the loop can checkpoint at the next step boundary."""

    def __init__(self):
        self.received: str | None = None
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(argv)
    if cfg.debug:
        cfg = debug_config(cfg)
    stop = StopSignal()
    accelerator = build_accelerator(cfg)
    out = Path(cfg.output_dir)
    is_main = accelerator.is_main_process
    say = accelerator.print

    # -- data: the whole split as uint8 tensors; the training part lives on the device ----------
    with accelerator.main_process_first():  # rank 0 prepares the cache, the others then reuse it
        data = load_emnist(cfg.data, cfg.seed, progress=is_main)
    num_classes = len(data.class_names)
    say(f"data: {data.description}: {len(data.train_labels)} train, {len(data.val_labels)} val, "
        f"{len(data.test_labels)} test, {num_classes} classes; mean {data.mean:.4f} std {data.std:.4f}")
    loader = TrainLoader(data.train_images, data.train_labels, cfg.train.batch_size, seed=cfg.seed,
                         rank=accelerator.process_index, world_size=accelerator.num_processes,
                         device=accelerator.device)
    steps_per_epoch = len(loader) // cfg.train.grad_accum_steps
    if steps_per_epoch < 1:
        raise UserError(f"train.grad_accum_steps={cfg.train.grad_accum_steps}: larger than the "
                        f"{len(loader)} batches of an epoch; expected at most that many")

    # -- model, loss, optimizer, schedule, augmentation -----------------------------------------
    model = create_model(cfg.model.name, num_classes, pretrained=cfg.model.pretrained,
                         drop_rate=cfg.model.drop_rate, drop_path_rate=cfg.model.drop_path_rate)
    if cfg.model.channels_last and accelerator.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    weights = class_weights(data.train_class_counts, cfg.train.class_weighting,
                            beta=cfg.train.effective_number_beta)
    loss_fn = WeightedKLDivLoss(weights).to(accelerator.device)
    optimizer = build_optimizer(model, cfg.train.optimizer, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
                                betas=cfg.train.betas, momentum=cfg.train.momentum)
    # The schedule is stepped by hand once per optimizer step and never passed to prepare():
    # a prepared scheduler would step num_processes times per call (DESIGN §5).
    scheduler = build_scheduler(optimizer, steps_per_epoch=steps_per_epoch, warmup_epochs=cfg.train.warmup_epochs,
                                T_0=cfg.train.T_0, T_mult=cfg.train.T_mult, eta_min=cfg.train.eta_min)
    if cfg.model.compile:
        model = torch.compile(model)
    model, optimizer = accelerator.prepare(model, optimizer)
    ema = build_ema(cfg, accelerator.unwrap_model(model))
    progress = Progress()
    accelerator.register_for_checkpointing(scheduler, progress, loader, *([ema] if ema else []))
    rank_seed = cfg.seed * 1000 + accelerator.process_index
    aug = cfg.augment
    affine = RandomAffine(aug.degrees, aug.translate, aug.scale, aug.shear, seed=rank_seed)
    mixer = MixUpCutMix(num_classes, mixup_alpha=aug.mixup_alpha, cutmix_alpha=aug.cutmix_alpha, prob=aug.mix_prob,
                        switch_prob=aug.switch_prob, label_smoothing=aug.label_smoothing, seed=rank_seed)

    resume_from = resolve_resume(cfg.resume, out)
    if resume_from is not None:
        rank_state = load_checkpoint(accelerator, resume_from)
        affine.load_state_dict(rank_state["affine"])
        mixer.load_state_dict(rank_state["mixup"])
        say(f"resumed from {resume_from} at step {progress.step} (epoch {progress.epoch}, "
            f"batch {loader.state_dict()['batch']})")
        if progress.world_size != accelerator.num_processes:
            say(f"warning: the checkpoint was written by {progress.world_size} processes, this run has "
                f"{accelerator.num_processes}: training continues with the same global batch, but not "
                "bit-identically to an uninterrupted run")
    progress.world_size = accelerator.num_processes
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        truncate_metrics(out / "metrics.jsonl", progress.step)
    start_tracking(accelerator, cfg, {"data.description": data.description, "world_size": accelerator.num_processes})

    def checkpoint() -> None:
        save_checkpoint(accelerator, out, progress.step, {"affine": affine.state_dict(), "mixup": mixer.state_dict()},
                        keep_last=cfg.checkpoint.keep_last,
                        protect_step=progress.best_step if progress.best_step >= 0 else None)

    # -- training ---------------------------------------------------------------------------------
    say(f"training {cfg.model.name} on {accelerator.num_processes} process(es) ({accelerator.device}, "
        f"precision {accelerator.mixed_precision}): {steps_per_epoch} steps/epoch, {cfg.train.epochs} epochs")
    total_steps = steps_per_epoch * cfg.train.epochs
    if cfg.train.max_steps is not None:
        total_steps = min(total_steps, cfg.train.max_steps)
    bar = tqdm(total=total_steps, initial=progress.step, disable=not (is_main and cfg.log.progress),
               desc="train", dynamic_ncols=True)
    window = ThroughputWindow(accelerator.device)
    last_val: dict = {}
    model.train()
    while progress.epoch < cfg.train.epochs and progress.step < total_steps:
        epoch = progress.epoch
        if loader.state_dict()["epoch"] != epoch:
            loader.set_epoch(epoch)
        mixing = mixer.enabled and (aug.mixup_off_epoch is None or epoch < aug.mixup_off_epoch)
        epoch_start = time.perf_counter()
        for images, labels in loader:
            with accelerator.accumulate(model):
                x = resize_to_float(images, cfg.data.image_size, augment=affine if affine.enabled else None)
                x = normalize(x, data.mean, data.std)
                if cfg.model.channels_last and x.is_cuda:
                    x = x.contiguous(memory_format=torch.channels_last)
                if mixing:
                    x, targets = mixer(x, labels)
                else:
                    targets = smooth_one_hot(labels, num_classes, aug.label_smoothing)
                loss = loss_fn(model(x), targets)
                # One reduction per micro-step makes every rank agree on stopping (DESIGN §5).
                flags = torch.stack([torch.tensor(float(stop.received is not None), device=loss.device),
                                     (~torch.isfinite(loss.detach())).float()])
                flags = accelerator.reduce(flags, reduction="sum").tolist()
                if flags[1]:
                    say(f"error: train.loss is {loss.item()} at step {progress.step + 1} (epoch {epoch}); "
                        "stopping. Lower train.lr, raise train.warmup_epochs, or use bf16 instead of fp16.")
                    accelerator.end_training()
                    return EXIT_DIVERGED
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.train.clip_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.train.clip_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            window.add(loss.detach(), len(labels) * accelerator.num_processes)
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            if ema is not None:
                ema.update(accelerator.unwrap_model(model), step=progress.step)
            progress.step += 1
            bar.update(1)
            if progress.step % cfg.log.log_every == 0 or progress.step == total_steps:
                stats = window.flush()
                stats["lr"] = scheduler.get_last_lr()[0]
                accelerator.log({f"train/{k}": v for k, v in stats.items()}, step=progress.step)
                if bar.disable:  # batch jobs (SLURM logs): plain lines instead of a progress bar
                    say(f"step {progress.step}/{total_steps} epoch {epoch} loss {stats['loss']:.4f} "
                        f"lr {stats['lr']:.3g} images/s {stats['images_per_s']:.0f}")
                bar.set_postfix(loss=f"{stats['loss']:.4f}", img_s=f"{stats['images_per_s']:.0f}",
                                val_acc=f"{last_val.get('val/acc', float('nan')):.4f}")
            if flags[0]:
                say(f"{stop.received or 'stop signal'} received: checkpointing at step {progress.step}")
                checkpoint()
                accelerator.end_training()
                return EXIT_PREEMPTED
            if cfg.checkpoint.every_steps and progress.step % cfg.checkpoint.every_steps == 0:
                checkpoint()
            if progress.step >= total_steps or progress.step % steps_per_epoch == 0:
                break
        epoch_time = time.perf_counter() - epoch_start
        epoch_done = progress.step % steps_per_epoch == 0
        if epoch_done:
            progress.epoch += 1
        finished = progress.epoch >= cfg.train.epochs or progress.step >= total_steps
        if (epoch_done and progress.epoch % cfg.train.eval_every == 0) or finished:
            last_val = validate(cfg, accelerator, model, ema, data, progress, window, epoch_time,
                                scheduler.get_last_lr()[0], is_main)
            bar.set_postfix(val_acc=f"{last_val.get('val/acc', float('nan')):.4f}")
        checkpoint()
    bar.close()

    # -- final evaluation on the test split and export ----------------------------------------
    final = finish(cfg, accelerator, model, ema, data, progress, is_main)
    say(f"test/acc {final['test/acc']:.4f} (best-by-validation weights, epoch {final['best_epoch']}); "
        f"model exported to {out / 'model'}")
    accelerator.end_training()
    return 0


def debug_config(cfg: Config) -> Config:
    """Debug mode: a small stratified subset, a few steps, anomaly detection, synchronous CUDA."""
    cfg.data.subset = cfg.data.subset or 2048
    cfg.train.max_steps = cfg.train.max_steps or 20
    cfg.log.log_every = 1
    torch.autograd.set_detect_anomaly(True)
    os.environ.setdefault("CUDA_LAUNCH_BLOCKING", "1")
    return cfg


def build_accelerator(cfg: Config) -> Accelerator:
    """The Accelerator: device, precision (auto = bf16 where the GPU supports it), accumulation, trackers."""
    precision = cfg.train.mixed_precision
    if precision == "auto":
        use_bf16 = not cfg.cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        precision = "bf16" if use_bf16 else "no"
    accelerator = Accelerator(
        cpu=cfg.cpu,
        mixed_precision=precision,
        gradient_accumulation_steps=cfg.train.grad_accum_steps,
        log_with=cfg.log.trackers or None,
        project_config=ProjectConfiguration(project_dir=cfg.output_dir,
                                            logging_dir=str(Path(cfg.output_dir) / "tensorboard")),
    )
    set_seed(cfg.seed)  # identical initial weights on every rank
    return accelerator


def build_ema(cfg: Config, model: torch.nn.Module):
    """timm's weight EMA, or None when off."""
    if not cfg.model.ema:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=cfg.model.ema_decay)


def eval_model(accelerator: Accelerator, model, ema) -> torch.nn.Module:
    """The weights that are evaluated and exported: the EMA when on, else the trained model (unwrapped:
    evaluation shards differ in size across ranks, so it must not go through DDP's collectives)."""
    return ema.module if ema is not None else accelerator.unwrap_model(model)


@torch.no_grad()
def evaluate(cfg: Config, accelerator: Accelerator, model: torch.nn.Module, data: EmnistData,
             images: torch.Tensor, labels: torch.Tensor) -> EvalMetrics:
    """Metrics over an exact shard per rank, reduced across ranks (called on every rank)."""
    broadcast_buffers(accelerator, model)
    was_training = model.training
    model.eval()
    metrics = EvalMetrics(data.class_names, device=accelerator.device)
    per_rank = max(1, cfg.train.eval_batch_size // accelerator.num_processes)
    for x, y in eval_batches(images, labels, per_rank, rank=accelerator.process_index,
                             world_size=accelerator.num_processes, device=accelerator.device):
        x = to_model_input(x, cfg.data.image_size, data.mean, data.std)
        if cfg.model.channels_last and x.is_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with accelerator.autocast():
            logits = model(x).float()
        metrics.update(logits, y, F.cross_entropy(logits, y))
    model.train(was_training)
    return metrics


def broadcast_buffers(accelerator: Accelerator, model: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics). DDP broadcasts them only at the start of
    each forward, so after the last step every rank holds statistics of its own last batch."""
    if accelerator.num_processes > 1:
        for buffer in model.buffers():
            torch.distributed.broadcast(buffer.data, src=0)


def validate(cfg, accelerator, model, ema, data, progress, window, epoch_time, lr, is_main) -> dict:
    """Evaluate on the validation split, log it, keep the best weights; returns the logged record."""
    if len(data.val_labels) == 0:  # no validation split: the last weights are the best
        progress.best_step, progress.best_epoch = progress.step, progress.epoch
        return {}
    net = eval_model(accelerator, model, ema)
    values = evaluate(cfg, accelerator, net, data, data.val_images, data.val_labels).compute()
    record = {"epoch": progress.epoch, "step": progress.step,
              **{f"val/{k}": v for k, v in values.items() if k != "num_samples"},
              "train/loss": window.epoch_loss(), "lr": lr,
              "images_per_s": window.epoch_images_per_s(), "epoch_time_s": epoch_time}
    if torch.cuda.is_available() and accelerator.device.type == "cuda":
        record["peak_gpu_mem_gb"] = torch.cuda.max_memory_allocated(accelerator.device) / 2**30
    window.reset_epoch()
    if values["acc"] > progress.best_val_acc:
        progress.best_val_acc, progress.best_step, progress.best_epoch = values["acc"], progress.step, progress.epoch
        if is_main:
            save_best_weights(net, Path(cfg.output_dir))
    accelerator.log(record, step=progress.step)
    if is_main:
        with open(Path(cfg.output_dir) / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
    return record


def save_best_weights(model: torch.nn.Module, output_dir: Path) -> None:
    """The best-by-validation weights, kept whatever the checkpoint rotation deletes."""
    path = output_dir / "checkpoints" / "best_model.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_weights(model, path)


def finish(cfg, accelerator, model, ema, data, progress, is_main) -> dict:
    """Test the last and the best weights, write final.json, export the best weights to model/."""
    out = Path(cfg.output_dir)
    net = eval_model(accelerator, model, ema)
    broadcast_buffers(accelerator, net)
    in_sync = ranks_in_sync(accelerator, net)
    last_metrics = evaluate(cfg, accelerator, net, data, data.test_images, data.test_labels)
    last = last_metrics.compute()
    best_path = out / "checkpoints" / "best_model.safetensors"
    accelerator.wait_for_everyone()
    if len(data.val_labels) and best_path.is_file():
        net.load_state_dict(load_file(best_path))
        best_metrics = evaluate(cfg, accelerator, net, data, data.test_images, data.test_labels)
    else:  # no validation split: the best weights are the last ones, already evaluated
        best_metrics = last_metrics
    best = best_metrics.compute()
    confusion = best_metrics.confusion.compute().cpu()
    final = {
        **{f"test/{k}": v for k, v in best.items() if k not in ("loss", "num_samples")},
        "test/loss": best["loss"], "test/num_samples": best["num_samples"],
        **{f"test_last/{k}": v for k, v in last.items() if k != "num_samples"},
        "best_epoch": progress.best_epoch, "best_step": progress.best_step, "best_val_acc": progress.best_val_acc,
        "step": progress.step, "epoch": progress.epoch, "world_size": accelerator.num_processes,
        "ranks_in_sync": in_sync,
        "split": data.split, "data": data.description, "synthetic": data.is_synthetic,
        "excluded": data.excluded,
    }
    accelerator.log({k: v for k, v in final.items() if isinstance(v, (int, float))}, step=progress.step)
    if is_main:
        info = ModelInfo(architecture=cfg.model.name, class_names=data.class_names, image_size=cfg.data.image_size,
                         mean=data.mean, std=data.std, split=data.split, source=cfg.data.source,
                         metrics={k: v for k, v in final.items() if k.startswith("test/")})
        save_model(net, out / "model", info)
        write_text_atomic(out / "final.json", json.dumps(final, indent=2) + "\n")
        log_image(accelerator, "test/confusion_matrix", confusion_image(confusion, data.class_names), progress.step)
    accelerator.wait_for_everyone()
    return final


def ranks_in_sync(accelerator: Accelerator, model: torch.nn.Module) -> bool:
    """True when every rank holds bit-identical weights (DDP must keep them so; a desync is a bug)."""
    with torch.no_grad():
        flat = torch.cat([t.detach().double().flatten() for t in model.state_dict().values()])
        positions = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=flat.device)
        fingerprint = torch.stack([flat.sum(), (flat * positions).sum(), flat.abs().max()])
    gathered = accelerator.gather(fingerprint[None]).cpu()
    in_sync = bool((gathered == gathered[0]).all())
    if not in_sync:
        accelerator.print("warning: the ranks' weights differ at the end of training (DDP desync)")
    return in_sync


def confusion_image(confusion: torch.Tensor, class_names: list[str]):
    """The row-normalised confusion matrix as an RGB array (for the trackers)."""
    from ..inference.reports import confusion_matrix_figure, figure_to_array

    return figure_to_array(confusion_matrix_figure(confusion, class_names))


def truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop evaluation records written after the checkpoint (they will be redone)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


class ThroughputWindow:
    """Running training loss and images/s, since the last log line and over the epoch."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset_epoch()
        self._start_window()

    def _start_window(self) -> None:
        self.loss_sum = torch.zeros((), device=self.device)
        self.batches = 0
        self.images = 0
        self.t0 = time.perf_counter()

    def reset_epoch(self) -> None:
        self.epoch_loss_sum, self.epoch_batches, self.epoch_images = 0.0, 0, 0
        self.epoch_t0 = time.perf_counter()

    def add(self, loss: torch.Tensor, images: int) -> None:
        self.loss_sum += loss.float()
        self.batches += 1
        self.images += images

    def flush(self) -> dict:
        loss_sum = float(self.loss_sum)  # one host sync per log line
        seconds = time.perf_counter() - self.t0
        stats = {"loss": loss_sum / max(1, self.batches), "images_per_s": self.images / max(seconds, 1e-9)}
        self.epoch_loss_sum += loss_sum
        self.epoch_batches += self.batches
        self.epoch_images += self.images
        self._start_window()
        return stats

    def epoch_loss(self) -> float:
        self.flush()
        return self.epoch_loss_sum / max(1, self.epoch_batches)

    def epoch_images_per_s(self) -> float:
        return self.epoch_images / max(time.perf_counter() - self.epoch_t0, 1e-9)


def cli() -> None:
    """Console script entry point (``emnist-train``)."""
    run_cli(main)
