"""The training run as a library object: ``Trainer(cfg).fit()`` returns the final test metrics.

The same code runs single-process (CPU or one GPU) and under ``accelerate launch`` (DDP on
one node or many). :class:`Trainer` holds the run; read top to bottom it is the whole run:

1. ``__init__``: the Accelerator (precision, accumulation, trackers), the split as uint8 tensors
   (training part on the device), and the components (``components.py``: model, loss, optimizer,
   schedule, EMA, augmentation).
2. ``fit``: claim the run folder (``run_folder.py``) and resume (``resume.py``), then
   ``while step < total: train_step(); maybe log / validate / checkpoint / stop``.
3. ``train_step``: one optimizer step (all its accumulated micro-batches): device batch ->
   resize + affine -> normalise -> MixUp/CutMix -> weighted KL -> backward -> clip -> the optimizer (``train.optimizer``).
   It never waits for the device: the loss and the first non-finite step stay on the device
   and are read at the next log / evaluation / checkpoint boundary (a "sync point").
4. ``validate``: raw and EMA weights on the validation part; the best by validation is kept.
5. ``finish``: the best and the last weights on the test split, ``final.json``, ``model/``.

The epoch is derived from the step (``epoch = step // steps_per_epoch``), so the run state is
one integer plus the best-so-far record, and the batch order after a resume follows from it.

``fit`` raises, never exits: :class:`~emnist_dist.errors.UserError` for bad input (one line naming
the setting or file), :class:`Diverged` when the loss became NaN/inf (the run stops at the next sync
point, naming the first non-finite step; nothing non-finite is checkpointed or exported) and
:class:`Preempted` when SIGTERM/SIGUSR1 arrived (after saving a checkpoint: resume with
``resume=auto``); :class:`~.callbacks.RunStopped` when a callback asked to stop after a validation.
It leaves the process as it found it: its signal handlers are installed only while it runs,
anomaly detection (debug mode) is switched back, and the process group stays up.
The command line maps these outcomes to exit codes (:func:`emnist_dist.train.__main__.exit_code`).
The Accelerator and the DDP helpers are in ``distributed.py``, the stop signals in ``stop_signal.py``,
the running loss and images/s in ``throughput.py``.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from accelerate.logging import get_logger
from safetensors.torch import load_file
from tqdm.auto import tqdm

from ..config import Config, check_config, save_config
from ..data import EmnistData, load_emnist
from ..data.resize import to_model_input
from ..errors import UserError
from ..files import write_text_atomic
from ..model_folder.artifact import ModelInfo, save_model
from ..model_folder.framing import measure_framing
from ..reports.run_plots import write_run_pictures
from ..metrics import EvalMetrics
from .batches import TrainLoader, eval_batches
from .callbacks import RunStopped, TrainerCallback, ValidationEvent, stop_requested
from .checkpoint import CheckpointParts, CheckpointSaver
from .components import build_components, build_network
from .distributed import broadcast_buffers, build_accelerator, ranks_in_sync
from .outcomes import Diverged, Preempted
from .resume import choose_resume
from .run_folder import RunFolder, run_identity
from .stop_signal import StopSignal
from .throughput import ThroughputWindow, format_duration
from .tracking import log_image, start_tracking

logger = get_logger(__name__)


@dataclass
class RunState:
    """Where the run stands; saved in every checkpoint. The epoch is ``step // steps_per_epoch``."""

    step: int = 0
    best_val_acc: float = -1.0
    best_step: int = -1
    best_epoch: int = -1
    best_weights: str = "raw"  # "raw" or "ema": which weights scored best_val_acc

    def state_dict(self) -> dict:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)


class Trainer:
    """One training run: everything is built from ``cfg`` here; :meth:`fit` trains (resuming when asked)."""

    def __init__(self, cfg: Config, data_transform: Callable[[EmnistData], EmnistData] | None = None,
                 callbacks: Sequence[TrainerCallback] = ()):
        """Args:
            cfg: the run; a config built in code is checked with the command line's rules first (a bad value
                raises a one-line :class:`~emnist_dist.errors.UserError` naming the field).
            data_transform: applied to the loaded split before anything is built from it (the audit gives
                its fold models (class x symmetry) targets this way); the network gets one output per
                class name it returns.
            callbacks: observers of the run, which may stop it (``callbacks.py``; give the same on every process).
        """
        self.callbacks = list(callbacks)
        cfg = check_config(cfg)
        if cfg.debug:
            cfg = debug_config(cfg)
        self.cfg = cfg
        self.folder = RunFolder(cfg.output_dir)
        self.stop = StopSignal()
        self.accelerator = accelerator = build_accelerator(cfg)
        self.device = accelerator.device

        with accelerator.main_process_first():  # rank 0 prepares the cache, the others then reuse it
            data = load_emnist(cfg.data, cfg.seed, progress=accelerator.is_main_process)
        self.data = data = data_transform(data) if data_transform else data
        self.num_classes = len(data.class_names)
        logger.info(f"data: {data.description}: {len(data.train_labels)} train, {len(data.val_labels)} val, "
                    f"{len(data.test_labels)} test, {self.num_classes} classes; mean {data.mean:.4f} std {data.std:.4f}")
        self.loader = TrainLoader(data.train_images, data.train_labels, cfg.train.batch_size, seed=cfg.seed,
                                  rank=accelerator.process_index, world_size=accelerator.num_processes,
                                  device=self.device)
        accum = cfg.train.grad_accum_steps
        self.steps_per_epoch = len(self.loader) // accum
        if self.steps_per_epoch < 1:
            raise UserError(f"train.grad_accum_steps={accum}: larger than the {len(self.loader)} batches "
                            "of an epoch; expected at most that many")
        self.total_steps = self.steps_per_epoch * cfg.train.epochs
        if cfg.train.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.train.max_steps)

        # The plain module: evaluated, averaged by the EMA and exported. Evaluation never goes
        # through DDP (its shards differ in size across ranks) nor torch.compile (its last batch
        # has another shape, which would recompile).
        self.network = build_network(cfg, self.num_classes).to(self.device)
        parts = build_components(cfg, self.network, data.train_class_counts, mean=data.mean, std=data.std,
                                 steps_per_epoch=self.steps_per_epoch,
                                 seed=cfg.seed * 1000 + accelerator.process_index, device=self.device)
        self.loss_fn, self.ema, self.augmentation = parts.loss_fn, parts.ema, parts.augmentation
        # Stepped by hand once per optimizer step and never passed to prepare(): a prepared
        # scheduler steps num_processes times per call.
        self.scheduler = parts.scheduler
        model = torch.compile(self.network) if cfg.model.compile else self.network
        self.model, self.optimizer = accelerator.prepare(model, parts.optimizer)

        self.state = RunState()
        # Everything a checkpoint holds; the loader's saved position is checked against this run's
        # global batch and sample count, then re-derived from the step.
        self.saver = CheckpointSaver(accelerator, self.folder, CheckpointParts(
            model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, progress=self.state,
            loader=self.loader, ema=self.ema, per_rank=self.augmentation.random_streams()),
            identity=run_identity(cfg), keep_last=cfg.checkpoint.keep_last, seed=cfg.seed)
        self._start_epoch(self.epoch)
        self.first_nonfinite = torch.zeros((), dtype=torch.int64, device=self.device)  # 0: none yet
        self.step_lr = float("nan")  # the learning rate the latest optimizer step used (set by train_step)
        self.window = ThroughputWindow(self.device)
        self.last_val: dict = {}
        self.bar = tqdm(disable=True)  # fit() shows the real one
        self.started, self.first_step = time.perf_counter(), 0  # begin() restarts the clock

    # -- the run ----------------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The epoch the next step belongs to, 0-based: the index of the batch order and the augmentation
        stream. Users never see it; logs and records count epochs from 1 (:meth:`epoch_of`)."""
        return self.state.step // self.steps_per_epoch

    def epoch_of(self, step: int) -> int:
        """The epoch, counted from 1 as every log line and record shows it, that optimizer step ``step``
        (counted from 1) belongs to; for a step count, the epochs it has begun."""
        return -(-step // self.steps_per_epoch)

    @property
    def epochs_begun(self) -> int:
        """Epochs the steps so far have started (completed ones, plus a partial last one under max_steps)."""
        return self.epoch_of(self.state.step)

    def fit(self) -> dict:
        """Train to ``total_steps``, validating and checkpointing on the way; returns the final metrics
        (what ``final.json`` holds).

        Raises:
            UserError: the run folder is in use or cannot be written, or the resume is refused (the folder
                is then untouched).
            Diverged: the loss became NaN/inf.
            Preempted: SIGTERM/SIGUSR1 arrived; a checkpoint of the step reached was saved first.
            RunStopped: a callback asked to stop after a validation (nothing tested or exported).
        """
        with ExitStack() as scope:
            scope.enter_context(self.stop.listening())
            if self.cfg.debug:  # switched back when the block ends
                scope.enter_context(torch.autograd.set_detect_anomaly(True))
            scope.callback(self.folder.release)
            self.begin()
            scope.callback(self._end_tracking)
            self._train()
            final = self.finish()
            logger.info(f"test/acc {final['test/acc']:.4f} ({final['best_weights']} weights of epoch "
                        f"{final['best_epoch']}, best by validation); model exported to {self.folder.model}")
            return final

    def _train(self) -> None:
        cfg, state = self.cfg, self.state
        while state.step < self.total_steps:
            self.train_step()
            epoch_done = state.step % self.steps_per_epoch == 0 or state.step == self.total_steps
            checkpoint_due = epoch_done or bool(cfg.checkpoint.every_steps
                                                and state.step % cfg.checkpoint.every_steps == 0)
            if checkpoint_due or state.step % cfg.log.log_every == 0:
                self.sync_point()
            if epoch_done:
                if self.epochs_begun % cfg.train.eval_every == 0 or state.step == self.total_steps:
                    event = ValidationEvent(self.epochs_begun, state.step, self.validate())
                    if reason := stop_requested(self.callbacks, event, self.accelerator):
                        raise RunStopped(f"stopped at step {state.step}: {reason}", state.step)
                self._start_epoch(self.epoch)
            if checkpoint_due:
                self.saver.save(state.step)
        self.bar.close()

    def _end_tracking(self) -> None:
        """Close the trackers this run started (the process group is left to whoever created the process)."""
        self.bar.close()
        for tracker in self.accelerator.trackers:
            tracker.finish()

    def train_step(self) -> torch.Tensor:
        """One optimizer step over ``grad_accum_steps`` micro-batches; returns the mean loss (on the device).

        Nothing here waits for the device: no ``.item()``, no host-side branching on tensor values.
        """
        cfg, accelerator = self.cfg, self.accelerator
        step_loss = torch.zeros((), device=self.device)
        for _ in range(cfg.train.grad_accum_steps):
            images, labels = next(self.batches)
            with accelerator.accumulate(self.model):
                x, targets = self.augmentation(images, labels, self.epoch)
                with accelerator.autocast():
                    logits = self.model(x)
                loss = self.loss_fn(logits, targets)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.train.clip_grad_norm:
                    accelerator.clip_grad_norm_(self.model.parameters(), cfg.train.clip_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            loss = loss.detach().float()
            step_loss += loss / cfg.train.grad_accum_steps
            self.first_nonfinite = torch.where((self.first_nonfinite == 0) & ~torch.isfinite(loss),
                                               self.state.step + 1, self.first_nonfinite)
        # The rate this step used, read before the scheduler moves on: logs and metrics.jsonl report it
        # (after the step the scheduler already holds the next step's rate: a warm restart at the end of
        # an epoch would read as the rate jumping back to its peak).
        self.step_lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.network, step=self.state.step)
        self.state.step += 1
        self.window.add(step_loss, cfg.train.batch_size * cfg.train.grad_accum_steps)
        self.bar.update(1)
        return step_loss

    def sync_point(self) -> None:
        """Read the device once: stop on a non-finite loss or a stop signal (all ranks agree), else log.

        Raises:
            Diverged: some rank's loss was not finite.
            Preempted: some rank received a stop signal (after the checkpoint of this step is saved).
        """
        state = self.state
        flags = torch.stack([self.first_nonfinite,
                             torch.tensor(int(self.stop.received is not None), device=self.device)])
        flags = self.accelerator.gather(flags[None]).cpu()  # (world_size, 2): the one host sync
        bad_steps = flags[:, 0][flags[:, 0] > 0]
        if len(bad_steps):
            first = int(bad_steps.min())
            raise Diverged(f"train.loss is not finite at step {first} (epoch {self.epoch_of(first)}); "
                           "stopping without checkpointing or exporting. Lower train.lr, raise train.warmup_epochs, "
                           "or use bf16 instead of fp16.", first)
        self.log_progress()
        if flags[:, 1].any():
            received = self.stop.received or "stop signal"
            logger.info(f"{received} received: checkpointing at step {state.step}")
            self.saver.save(state.step)
            raise Preempted(f"{received} received: checkpoint saved at step {state.step}; "
                            "run again with resume=auto to continue", state.step)

    def log_progress(self) -> None:
        """Training loss, learning rate and throughput to the trackers, and to the console."""
        stats = self.window.flush()
        stats["lr"] = self.step_lr
        step = self.state.step
        self.accelerator.log({f"train/{k}": v for k, v in stats.items()}, step=step)
        if self.bar.disable:  # batch jobs and logs: plain lines instead of a redrawn progress bar
            seconds_per_step = (time.perf_counter() - self.started) / max(1, step - self.first_step)
            eta = format_duration(seconds_per_step * (self.total_steps - step))
            logger.info(f"step {step}/{self.total_steps} epoch {self.epoch_of(step)} "
                        f"loss {stats['loss']:.4f} lr {stats['lr']:.3g} images/s {stats['images_per_s']:.0f} eta {eta}")
        else:
            self.bar.set_postfix(loss=f"{stats['loss']:.4f}", img_s=f"{stats['images_per_s']:.0f}",
                                 val_acc=f"{self.last_val.get('val/acc', float('nan')):.4f}")

    # -- evaluation -------------------------------------------------------------------------------

    def validate(self) -> dict:
        """Evaluate raw (and EMA) weights on the validation part, log it, keep the best weights."""
        data, state = self.data, self.state
        epoch = self.epochs_begun
        if len(data.val_labels) == 0:  # no validation split: the last weights are the best
            state.best_step, state.best_epoch = state.step, epoch
            return {}
        record = {"epoch": epoch, "step": state.step}
        scores = {}
        for kind, net in self.candidates():
            values = self.evaluate(net, data.val_images, data.val_labels).compute()
            prefix = "val" if kind == "raw" else "val_ema"
            record.update({f"{prefix}/{k}": v for k, v in values.items() if k != "num_samples"})
            scores[kind] = values["acc"]
        record.update({"train/loss": self.window.epoch_loss(), "lr": self.step_lr,
                       "images_per_s": self.window.epoch_images_per_s()})
        if self.device.type == "cuda":
            record["peak_gpu_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        self.window.reset_epoch()
        kind = max(scores, key=scores.get)  # raw wins ties: listed first
        if scores[kind] > state.best_val_acc:
            state.best_val_acc, state.best_step, state.best_epoch, state.best_weights = \
                scores[kind], state.step, epoch, kind
            self.saver.keep_best(dict(self.candidates())[kind])
        self.accelerator.log(record, step=state.step)
        if self.accelerator.is_main_process:
            self.folder.append_metrics(record)
        self.last_val = record
        return record

    def candidates(self) -> list[tuple[str, torch.nn.Module]]:
        """The weights worth evaluating: the trained ones, and their EMA when on."""
        return [("raw", self.network)] + ([("ema", self.ema.module)] if self.ema is not None else [])

    @torch.no_grad()
    def evaluate(self, net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> EvalMetrics:
        """Metrics over an exact shard per rank, reduced across ranks (called on every rank)."""
        cfg, accelerator = self.cfg, self.accelerator
        broadcast_buffers(accelerator, net)
        was_training = net.training
        net.eval()
        metrics = EvalMetrics(self.data.class_names, device=self.device)
        per_rank = max(1, cfg.train.eval_batch_size // accelerator.num_processes)
        for x, y in eval_batches(images, labels, per_rank, rank=accelerator.process_index,
                                 world_size=accelerator.num_processes, device=self.device):
            x = to_model_input(x, cfg.data.image_size, self.data.mean, self.data.std)
            if cfg.model.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with accelerator.autocast():
                logits = net(x).float()
            metrics.update(logits, y, F.cross_entropy(logits, y))
        net.train(was_training)
        return metrics

    def finish(self) -> dict:
        """Test the last and the best weights, write ``final.json``, export the best weights to ``model/``."""
        data, state, accelerator = self.data, self.state, self.accelerator
        is_main = accelerator.is_main_process
        last = {kind: self.evaluate(net, data.test_images, data.test_labels) for kind, net in self.candidates()}
        in_sync = ranks_in_sync(accelerator, self.network)
        best_path = self.folder.best_weights
        accelerator.wait_for_everyone()
        net = dict(self.candidates())[state.best_weights]
        if len(data.val_labels) and best_path.is_file() and state.best_step != state.step:
            net.load_state_dict(load_file(best_path))
            best_metrics = self.evaluate(net, data.test_images, data.test_labels)
        else:  # no validation split, or the best step is the last one: the best weights were just evaluated
            best_metrics = last[state.best_weights]
        best = best_metrics.compute()
        final = {
            **{f"test/{k}": v for k, v in best.items() if k not in ("loss", "num_samples")},
            "test/loss": best["loss"], "test/num_samples": best["num_samples"],
        }
        for kind, metrics in last.items():
            prefix = "test_last" if kind == "raw" else "test_last_ema"
            final.update({f"{prefix}/{k}": v for k, v in metrics.compute().items() if k != "num_samples"})
        final.update({
            "best_weights": state.best_weights, "best_epoch": state.best_epoch, "best_step": state.best_step,
            "best_val_acc": state.best_val_acc, "step": state.step, "epoch": self.epochs_begun,
            "world_size": accelerator.num_processes, "ranks_in_sync": in_sync,
            "split": data.split, "data": data.description, "synthetic": data.is_synthetic,
            "excluded": data.excluded,
        })
        confusion = best_metrics.confusion.compute().cpu()
        accelerator.log({k: v for k, v in final.items() if isinstance(v, (int, float))}, step=state.step)
        if is_main:
            info = ModelInfo(architecture=self.cfg.model.name, class_names=data.class_names,
                             image_size=self.cfg.data.image_size, mean=data.mean, std=data.std, split=data.split,
                             source=self.cfg.data.source, framing=measure_framing(data.train_images),
                             metrics={k: v for k, v in final.items() if k.startswith("test/")})
            save_model(net, self.folder.model, info)
            write_text_atomic(self.folder.final, json.dumps(final, indent=2) + "\n")
            image = write_run_pictures(self.folder, confusion, data.class_names)
            log_image(accelerator, "test/confusion_matrix", image, state.step)
        accelerator.wait_for_everyone()
        return final

    # -- run folder and checkpoints ----------------------------------------------------------------

    def begin(self) -> None:
        """Claim the run folder, resume when ``cfg.resume`` asks (the folder refuses a resume that changes what
        must not change), write the resolved config, trim evaluations past the resumed step, start the trackers,
        the progress bar and the clock."""
        cfg, accelerator = self.cfg, self.accelerator
        self.folder.claim(accelerator)  # only now: a bad config or model has written nothing
        try:
            path = choose_resume(accelerator, self.folder, cfg.resume, run_identity(cfg))
        except UserError:
            self.folder.abandon()  # a folder this run created holds nothing but the lock: removed again
            raise
        if path is not None:
            self.saver.load(path)
            logger.info(f"resumed from {path} at step {self.state.step} (epoch {self.epochs_begun})")
            self._start_epoch(self.epoch)
        if accelerator.is_main_process:
            save_config(cfg, self.folder.config)
            self.folder.truncate_metrics(self.state.step)
        start_tracking(accelerator, cfg, {"data.description": self.data.description,
                                          "world_size": accelerator.num_processes})
        logger.info(f"training {cfg.model.name} on {accelerator.num_processes} process(es) ({self.device}, "
                    f"precision {accelerator.mixed_precision}): {self.steps_per_epoch} steps/epoch, "
                    f"{self.total_steps} steps")
        # A redrawn progress bar only on an interactive terminal; batch jobs get plain log lines.
        interactive = cfg.log.progress and sys.stdout.isatty() and "SLURM_JOB_ID" not in os.environ
        self.bar = tqdm(total=self.total_steps, initial=self.state.step, desc="train", dynamic_ncols=True,
                        disable=not (interactive and accelerator.is_main_process))
        self.started, self.first_step = time.perf_counter(), self.state.step

    def _start_epoch(self, epoch: int) -> None:
        """Point the batch stream at ``epoch``, after the micro-batches its finished steps used."""
        done = (self.state.step - epoch * self.steps_per_epoch) * self.cfg.train.grad_accum_steps
        self.loader.seek(epoch, done)
        self.batches = iter(self.loader)


def debug_config(cfg: Config) -> Config:
    """Debug mode's settings (a copy): a small stratified subset, a few steps, a log line per step.
    :meth:`Trainer.fit` also turns on anomaly detection for its duration."""
    cfg = copy.deepcopy(cfg)
    cfg.data.subset = cfg.data.subset or 2048
    cfg.train.max_steps = cfg.train.max_steps or 20
    cfg.log.log_every = 1
    return cfg
