"""The K fold models: each trained by the project's own trainer, each scoring the part it never saw.

Fold ``k`` is an ordinary training run in ``output_dir/fold_k`` (``data.fold=k``, ``data.folds=K``):
its own config.yaml, checkpoints, final.json and model/, so an interrupted audit resumes inside
the fold it was training (``--resume auto``). Under ``accelerate launch`` every rank runs this same
loop (training is collective); each rank scores a contiguous shard of the held-out part and rank 0
writes the fold's scores. Finished folds are not trained again, scored folds not scored again.
"""

from __future__ import annotations

import copy
import dataclasses
import signal
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import gather, reduce

from ..config import Config, parse_config, save_config
from ..data import load_emnist
from ..errors import UserError
from ..inference.artifact import load_model
from ..train.trainer import EXIT_PREEMPTED
from ..train.trainer import main as train_main
from .dihedral import score_glyphs
from .scores import FOLD_FILE, OOF_FILE, Scores, load_scores, merge_folds, save_scores


def run_folds(cfg: Config, state: PartialState) -> int:
    """Train and score every fold, then write ``output_dir/oof_probs.safetensors``; returns an exit code.

    Non-zero when a fold's training did not finish (75: stopped by SIGTERM/SIGUSR1 after a
    checkpoint, run again to resume; 3: the loss diverged), or 75 when such a signal arrived
    between folds.
    """
    reuse = cfg.resume == "auto"
    folds = [fold_config(cfg, k) for k in range(cfg.audit.folds)]
    with StopRequest() as stop:
        code = _train_and_score(folds, reuse, stop, state)
    if code:
        return code
    if state.is_main_process:
        merged = merge_folds([load_scores(Path(fold.output_dir) / FOLD_FILE) for fold in folds])
        save_scores(Path(cfg.output_dir) / OOF_FILE, merged)
    state.wait_for_everyone()
    return 0


def _train_and_score(folds: list[Config], reuse: bool, stop: "StopRequest", state: PartialState) -> int:
    """The fold loop (on every rank); returns an exit code, 0 once every fold is scored."""
    for k, fold in enumerate(folds):
        out = Path(fold.output_dir)
        if reuse and (out / FOLD_FILE).is_file():
            state.print(f"audit: fold {k + 1}/{len(folds)} already scored ({out / FOLD_FILE})")
        else:
            if not (reuse and finished(out)):
                state.print(f"audit: fold {k + 1}/{len(folds)}: training in {out}")
                code = train_fold(fold, k, state)
                stop.listen()  # the trainer installed its own handlers for the run
                if code:
                    return code
            scores = score_fold(fold, k, state)
            if state.is_main_process:
                save_scores(out / FOLD_FILE, scores)
            state.print(f"audit: fold {k + 1}/{len(folds)}: scored {len(scores.labels)} held-out glyphs")
        state.wait_for_everyone()
        if stop.agreed():
            state.print("audit: stop signal received: run again to continue with the next fold")
            return EXIT_PREEMPTED
    return 0


def fold_config(cfg: Config, k: int) -> Config:
    """The training run of fold ``k``: the audit's config holding out part ``k``, in ``output_dir/fold_k``."""
    fold = copy.deepcopy(cfg)
    fold.data.fold, fold.data.folds = k, cfg.audit.folds
    fold.output_dir = str(Path(cfg.output_dir) / f"fold_{k}")
    return fold


def check_reusable(cfg: Config) -> None:
    """With ``resume=auto``, refuse an output_dir whose fold folders were trained with other data, model or
    training settings (checked before anything is written)."""
    if cfg.resume != "auto":
        return
    for k in range(cfg.audit.folds):
        fold = fold_config(cfg, k)
        saved_path = Path(fold.output_dir) / "config.yaml"
        if not saved_path.is_file():
            continue
        saved = parse_config(["--config", str(saved_path)])
        differ = [name for name in ("data", "model", "augment", "train", "seed")
                  if _comparable(saved, name) != _comparable(fold, name)]
        if differ:
            raise UserError(f"{saved_path}: this fold was trained with other {', '.join(differ)} settings than the "
                            "audit's; expected the same: use another output_dir, or --resume never to retrain every fold")


def _comparable(cfg: Config, name: str):
    value = getattr(cfg, name)
    return dataclasses.replace(value, cache_dir=None) if name == "data" else value  # the cache may move


def finished(out: Path) -> bool:
    """Whether the training run in ``out`` has written its final.json and model/."""
    return (out / "final.json").is_file() and (out / "model" / "config.json").is_file()


def train_fold(fold: Config, k: int, state: PartialState) -> int:
    """Run the trainer on the fold's config (written to its folder first, which the trainer then keeps)."""
    config_path = Path(fold.output_dir) / "config.yaml"
    if state.is_main_process:
        config_path.parent.mkdir(parents=True, exist_ok=True)
        (config_path.parent / FOLD_FILE).unlink(missing_ok=True)  # stale scores of an earlier model
        save_config(fold, config_path)
    state.wait_for_everyone()
    code = train_main(["--config", str(config_path)])
    rejoin_process_group(state, generation=k + 1)
    return code


def rejoin_process_group(state: PartialState, generation: int) -> None:
    """The trainer ends with ``Accelerator.end_training()``, which destroys the process group. The ranks
    still have folds to train and scores to gather together, so they form a new one: the same backend
    and the launcher's rendezvous (``env://``), as Accelerate formed the first.

    Under a launcher the rendezvous store outlives the group and still holds the first group's keys
    (peer addresses) under the same names: a rank that read one would connect to a closed socket and
    wait for ever (it happened under SLURM). Each new group therefore gets its own key prefix.
    """
    if state.num_processes > 1 and not torch.distributed.is_initialized():
        store, rank, world_size = next(torch.distributed.rendezvous("env://"))
        store = torch.distributed.PrefixStore(f"emnist_dist_audit/{generation}", store)
        torch.distributed.init_process_group(backend=state.backend, store=store, rank=rank, world_size=world_size)


def score_fold(fold: Config, k: int, state: PartialState) -> Scores:
    """The fold model's scores of its held-out glyphs (every rank a contiguous shard; all ranks get the whole)."""
    data = load_emnist(fold.data, fold.seed, progress=False)
    model, info = load_model(Path(fold.output_dir) / "model", state.device)
    n, rank, world = len(data.heldout_labels), state.process_index, state.num_processes
    lo, hi = n * rank // world, n * (rank + 1) // world
    probs, label_probs = score_glyphs(model, info, data.heldout_images[lo:hi], data.heldout_labels[lo:hi],
                                      state.device, batch_size=max(1, fold.train.eval_batch_size // world))
    if world > 1:
        probs, label_probs = gather_shards(probs, n, state), gather_shards(label_probs, n, state)
    meta = {"split": data.split, "class_names": data.class_names, "rows": data.train_rows, "excluded": data.excluded,
            "fold": k, "folds": fold.data.folds}
    return Scores(data.heldout_index, data.heldout_labels, probs, label_probs, meta)


def gather_shards(shard: torch.Tensor, total: int, state: PartialState) -> torch.Tensor:
    """Concatenate the ranks' contiguous shards of ``total`` rows in rank order (padded to one size to gather)."""
    world = state.num_processes
    size = -(-total // world)
    padded = torch.zeros((size, *shard.shape[1:]), dtype=shard.dtype)
    padded[: len(shard)] = shard
    gathered = gather(padded.to(state.device)).cpu().view(world, size, *shard.shape[1:])
    return torch.cat([gathered[r, : total * (r + 1) // world - total * r // world] for r in range(world)])


class StopRequest:
    """SIGTERM/SIGUSR1 arriving while the audit is between trainings (during a training run the trainer
    handles them itself: it checkpoints and returns 75). A context manager: on exit the default
    handlers are back, so the ranking after the folds ends on a signal like any program."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __enter__(self) -> "StopRequest":
        self.received = False
        self.listen()
        return self

    def __exit__(self, *exc) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)

    def listen(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.received = True

    def agreed(self) -> bool:
        """Whether any rank received one (called on every rank, so all of them stop together)."""
        flag = torch.tensor([float(self.received)], device=PartialState().device)
        return bool(reduce(flag, reduction="sum").item())
