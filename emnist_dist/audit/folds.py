"""The K fold models: each trained by the project's own trainer, each scoring the part it never saw.

Fold ``k`` is an ordinary training run in ``output_dir/fold_k`` (``data.fold=k``), trained in this
process by ``Trainer(fold_config, with_symmetry_targets).fit()`` (a joint class x symmetry model, see
``dihedral.py``): its own config.yaml, checkpoints, final.json and model/,
so an interrupted audit resumes inside the fold it was training (``resume=auto``). Under
``accelerate launch`` every rank runs this same loop (training is collective) in the one process
group the launch formed; each rank scores a contiguous shard of the held-out part and rank 0
writes the fold's scores. Finished folds are not trained again, scored folds not scored again.
"""

from __future__ import annotations

import copy
import functools

import torch
from accelerate import PartialState
from accelerate.logging import get_logger
from accelerate.utils import gather

from ..config import Config
from ..data import load_emnist
from ..errors import UserError
from ..model_folder.artifact import load_model
from ..train import Preempted, RunFolder, Trainer
from ..train.stop_signal import StopSignal
from .dihedral import joint_class_names, score_joint, with_symmetry_targets
from .scores import Scores, load_scores, merge_folds, save_scores

logger = get_logger(__name__)

# A fold is reused only when trained as the audit would train it now: the resume rule, plus its length
# (which a resumed training run may change, but which changes the model that scored the fold).
FOLD_MUST_MATCH = ("train.epochs", "train.max_steps")


def run_folds(cfg: Config, state: PartialState) -> None:
    """Train and score every fold, then write ``output_dir/oof_probs.safetensors``.

    Raises:
        Preempted: SIGTERM/SIGUSR1 stopped a fold's training (after its checkpoint) or arrived between
            folds: run again to continue.
        Diverged: a fold's loss became NaN/inf.
    """
    reuse = cfg.resume == "auto"
    folds = [fold_config(cfg, k) for k in range(cfg.data.folds)]
    # SIGTERM/SIGUSR1 between trainings (during one the trainer handles them itself: it checkpoints and
    # raises Preempted); afterwards the previous handlers are back, so the ranking ends on a signal like any program.
    with StopSignal().listening() as stop:
        _train_and_score(folds, reuse, stop, state)
    if state.is_main_process:
        merged = merge_folds([load_scores(RunFolder(fold.output_dir).heldout_scores) for fold in folds])
        save_scores(RunFolder(cfg.output_dir).oof_scores, merged)
    state.wait_for_everyone()


def _train_and_score(folds: list[Config], reuse: bool, stop: StopSignal, state: PartialState) -> None:
    """The fold loop (on every rank)."""
    for k, fold in enumerate(folds):
        folder = RunFolder(fold.output_dir)
        if reuse and folder.heldout_scores.is_file():
            logger.info(f"audit: fold {k + 1}/{len(folds)} already scored ({folder.heldout_scores})")
        else:
            if not (reuse and folder.is_finished()):
                logger.info(f"audit: fold {k + 1}/{len(folds)}: training in {folder.root}")
                if state.is_main_process:
                    folder.heldout_scores.unlink(missing_ok=True)  # stale scores of an earlier model
                # its own signal handling while it runs; ours is back afterwards
                Trainer(fold, functools.partial(with_symmetry_targets, seed=fold.seed)).fit()
            scores = score_fold(fold, k, state)
            if state.is_main_process:
                save_scores(folder.heldout_scores, scores)
            logger.info(f"audit: fold {k + 1}/{len(folds)}: scored {len(scores.labels)} held-out glyphs")
        state.wait_for_everyone()
        if stop.any_rank_received():
            logger.info("audit: stop signal received: run again to continue with the next fold")
            raise Preempted("stop signal received between folds", step=0)


def fold_config(cfg: Config, k: int) -> Config:
    """The training run of fold ``k``: the audit's config holding out part ``k``, in ``output_dir/fold_k``."""
    fold = copy.deepcopy(cfg)
    fold.data.fold = k
    fold.output_dir = str(RunFolder(cfg.output_dir).fold(k))
    return fold


def check_reusable(cfg: Config) -> None:
    """With ``resume=auto``, refuse an output_dir whose fold folders were trained with settings a resume may not
    change, or with another length (checked before anything is written)."""
    if cfg.resume != "auto":
        return
    for k in range(cfg.data.folds):
        folder = RunFolder(fold_config(cfg, k).output_dir)
        changes = folder.settings_changed(fold_config(cfg, k), also=FOLD_MUST_MATCH)
        if changes:
            sections = sorted({change.split(".")[0] for change in changes})
            raise UserError(f"{folder.config}: this fold was trained with other {', '.join(sections)} settings than "
                            f"the audit's ({', '.join(changes)}); expected the same: use another output_dir, or "
                            "--resume never to retrain every fold")


def score_fold(fold: Config, k: int, state: PartialState) -> Scores:
    """The fold model's scores of its held-out glyphs (every rank a contiguous shard; all ranks get the whole)."""
    data = load_emnist(fold.data, fold.seed, progress=False)
    model, info = load_model(RunFolder(fold.output_dir).model, state.device)
    if info.class_names != joint_class_names(data.class_names):
        raise UserError(f"{RunFolder(fold.output_dir).model}: not a (class x symmetry) model of this split (an older "
                        "audit's fold?); expected one output per class and symmetry: rerun with --resume never")
    n, rank, world = len(data.heldout_labels), state.process_index, state.num_processes
    lo, hi = n * rank // world, n * (rank + 1) // world
    probs, label_probs = score_joint(model, info, data.heldout_images[lo:hi], data.heldout_labels[lo:hi],
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
