"""``python -m emnist_dist.audit --config FILE [--section.key VALUE ...]``: find suspicious training glyphs.

The training config tree plus ``audit.*``; runs single-process, under ``accelerate launch`` and on
SLURM like training. Writes into ``output_dir``: ``fold_K/`` (the fold runs), ``oof_probs.safetensors``
(out-of-fold scores), ``scores.csv`` (every glyph ranked), ``label_issues.csv``, ``label_issues.png``,
``exclude.txt`` and, last, ``summary.json``; prints the summary line. Exit codes as training's (75: stopped, run again).
"""

from __future__ import annotations

import json
from pathlib import Path

from accelerate import PartialState

from ..config import Config, parse_config, save_config
from ..data import load_split, prepare_data
from ..cli import run_cli
from ..errors import UserError
from ..files import write_text_atomic
from ..reports.confusion import save_figure, write_csv
from .contact_sheet import contact_sheet_figure
from ..train.run_folder import RunFolder
from ..train.__main__ import exit_code
from .folds import check_reusable, run_folds
from .ranking import COLUMNS, RANKING_COLUMNS, rank_glyphs, select_issues, summarize, summary_line
from .scores import load_scores

DESCRIPTION = ("Audit an EMNIST split's training part: K-fold out-of-fold probabilities from the project's trainer, "
               "then label issues (confident learning) and pre-augmented (rotated/flipped) glyphs, ranked.")
AUDIT_DEFAULTS = {
    "model.name": "resnet10t",
    "data.image_size": 32,
    "train.epochs": 10,
    "train.lr": 5e-4,
    "train.warmup_epochs": 1.0,
    "train.T_0": 9.0,
    "output_dir": "runs/audit",
}
"""Where the audit's defaults differ from training's: a small, fast model (any timm model can be given)."""


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(argv, prog="python -m emnist_dist.audit", description=DESCRIPTION, defaults=AUDIT_DEFAULTS)
    if cfg.data.fold is not None:
        raise UserError(f"data.fold={cfg.data.fold}: the audit holds out every fold in turn; leave data.fold unset "
                        "(data.folds sets how many)")
    if cfg.resume not in ("auto", "never"):
        raise UserError(f"resume={cfg.resume}: expected auto or never (each fold resumes from its own checkpoints)")
    return exit_code(lambda: print_summary(audit(cfg)))


def print_summary(summary: dict) -> None:
    """The command's result: the summary line (the main process's; the others' summary is empty)."""
    if summary:
        print(summary_line(summary), flush=True)


def audit(cfg: Config) -> dict:
    """Train and score the folds (unless ``audit.rank_only``), then rank; returns the summary (main process).

    Raises:
        Preempted, Diverged: as ``Trainer.fit`` (a fold's training stopped or diverged).
    """
    state = PartialState(cpu=cfg.cpu)
    config_path = RunFolder(cfg.output_dir).config
    if not cfg.audit.rank_only:
        check_reusable(cfg)
        if state.is_main_process:
            config_path.parent.mkdir(parents=True, exist_ok=True)
            save_config(cfg, config_path)
        run_folds(cfg, state)
    summary = {}
    if state.is_main_process:
        summary = write_report(cfg)
        save_config(cfg, config_path)  # the settings of the ranking now on disk
    state.wait_for_everyone()
    return summary


def write_report(cfg: Config) -> dict:
    """Rank ``oof_probs.safetensors`` and write scores.csv, label_issues.csv/.png, exclude.txt, summary.json; returns
    the summary."""
    folder = RunFolder(cfg.output_dir)
    scores = load_scores(folder.oof_scores)
    if scores.meta["split"] != cfg.data.split:
        raise UserError(f"{folder.oof_scores}: scores of split {scores.meta['split']!r}; data.split is "
                        f"{cfg.data.split!r}: expected the same")
    images, labels = load_split(prepare_data(cfg.data, progress=False), "train")
    if scores.meta["rows"] != len(labels) or not bool((labels[scores.index] == scores.labels).all()):
        raise UserError(f"{folder.oof_scores}: the training part of {cfg.data.source!r} is not the one the audit scored "
                        "(sizes or labels differ): run the audit again without audit.rank_only")
    names = scores.meta["class_names"]
    ranking = rank_glyphs(scores, cfg.audit, names)
    write_csv(ranking, folder.scores_csv, RANKING_COLUMNS)
    issues = select_issues(ranking, cfg.audit.top)
    write_csv([{key: row[key] for key in COLUMNS} for row in issues], folder.label_issues_csv, COLUMNS)
    top = issues[: cfg.audit.sheet_size]
    glyphs = images[[row["index"] for row in top], 0].numpy()
    source = Path(cfg.data.source).name if Path(cfg.data.source).exists() else cfg.data.source
    title = f"Audit of {scores.meta['split']} ({source}): the {len(top)} most suspicious of {len(scores.labels)} training glyphs"
    save_figure(contact_sheet_figure(top, glyphs, title), folder.label_issues_png)
    write_text_atomic(folder.exclude, "".join(f"{row['index']}\n" for row in issues))
    summary = summarize(issues, len(scores.labels), names)
    write_text_atomic(folder.audit_summary, json.dumps(summary, indent=2) + "\n")  # last: marks the audit done
    return summary


def cli() -> None:
    """Console script entry point (``emnist-audit``)."""
    run_cli(main)
