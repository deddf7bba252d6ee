"""What a study found, as files: ``trials.csv``, ``best.yaml``, pictures, and the summary lines.

All of it is derived from the study (the journal) and the trials' run folders, so any worker, or
``python -m emnist_dist.sweep --study DIR --summary``, can rewrite it at any time; files are
replaced atomically. Only validation metrics rank trials: the test split never chooses anything.
"""

from __future__ import annotations

import csv
import io
import logging
import warnings
from pathlib import Path

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from ..errors import one_line
from ..files import atomic_path, write_text_atomic
from ..train.run_folder import RunFolder
from .study import StudyFolder, trial_name

logger = logging.getLogger(__name__)
PICTURES = {
    "optimization_history.png": optuna.visualization.matplotlib.plot_optimization_history,
    "param_importances.png": optuna.visualization.matplotlib.plot_param_importances,
    "parallel_coordinate.png": optuna.visualization.matplotlib.plot_parallel_coordinate,
}


def csv_columns(metric: str, keys: list[str]) -> list[str]:
    """``number, state, METRIC, KEY..., seconds``."""
    return ["number", "state", metric, *keys, "seconds"]


def trials_csv(trials: list[FrozenTrial], metric: str, keys: list[str]) -> str:
    """The study's trials, one row each by number: Optuna's state name, the trial's value of the metric (the best
    of its validations when COMPLETE, the last reported when PRUNED, empty otherwise), its parameters by config
    key, and the seconds its attempts spent."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(csv_columns(metric, keys))
    for trial in sorted(trials, key=lambda t: t.number):
        seconds = trial.user_attrs.get("seconds")
        writer.writerow([trial.number, trial.state.name, "" if trial.value is None else repr(trial.value),
                         *("" if trial.params.get(k) is None else trial.params[k] for k in keys),
                         "" if seconds is None else f"{seconds:.1f}"])
    return out.getvalue()


def ranked(study: optuna.Study) -> list[FrozenTrial]:
    """The COMPLETE trials, best first (ties: the earlier trial first)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    sign = -1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1
    return sorted(done, key=lambda t: (sign * t.value, t.number))


def best_config(folder: StudyFolder, trial: FrozenTrial, metric: str) -> str:
    """The best trial's resolved config (its run folder's config.yaml) as a file to train again: ``output_dir`` is
    ``DIR/best`` and the tracker run name the study's."""
    config = yaml.safe_load(RunFolder(folder.trial_dir(trial.number)).config.read_text())
    config["output_dir"] = str(folder.root / "best")
    config["log"]["run_name"] = f"{folder.name}-best"
    header = (f"# The best trial of study {folder.root} by {metric}: "
              f"trial {trial_name(trial.number)}, value {trial.value!r}.\n"
              f"#   python -m emnist_dist.train --config {folder.best}\n")
    return header + yaml.safe_dump(config, sort_keys=False)


def write_results(study: optuna.Study, folder: StudyFolder, metric: str, keys: list[str]) -> None:
    """``trials.csv`` and ``best.yaml`` (once a trial is COMPLETE)."""
    write_text_atomic(folder.csv, trials_csv(study.get_trials(deepcopy=False), metric, keys))
    best = ranked(study)
    if best:
        write_text_atomic(folder.best, best_config(folder, best[0], metric))


def write_pictures(study: optuna.Study, folder: StudyFolder) -> list[Path]:
    """Optuna's matplotlib pictures of the study (history, parameter importances, parallel coordinates); those
    that need more finished trials than there are yet are skipped. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    for name, plot in PICTURES.items():
        if complete < (2 if name == "param_importances.png" else 1):
            continue
        # Optuna's plots call plt.style.use("ggplot"), which changes matplotlib's style for the whole process:
        # rc_context puts it back, so the pictures drawn after a sweep in the same process keep their colours.
        with matplotlib.rc_context():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.simplefilter("ignore", UserWarning)  # matplotlib: a parameter with a single value so far
                try:
                    axes = plot(study)
                except (ValueError, RuntimeError) as err:  # e.g. importances of parameters that never varied
                    logger.warning(f"{name} not drawn: {one_line(err)}")
                    continue
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.set_size_inches(10, 6)
            figure.tight_layout()
            with atomic_path(folder.root / name) as tmp:
                figure.savefig(tmp, format="png", dpi=100)
            plt.close(figure)
        written.append(folder.root / name)
    return written


def summary_lines(study: optuna.Study, metric: str, keys: list[str], top: int = 5) -> list[str]:
    """The study's counts by state, then the ``top`` best trials with their parameters."""
    trials = study.get_trials(deepcopy=False)
    counts = {}
    for trial in trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    lines = [f"study {study.study_name}: {len(trials)} trials (" +
             ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) + ")"]
    best = ranked(study)[:top]
    if not best:
        return lines + ["no trial is COMPLETE yet"]
    lines.append(f"best by {metric} ({study.direction.name.lower()}):")
    for trial in best:
        params = " ".join(f"{k}={trial.params[k]}" for k in keys if k in trial.params)
        lines.append(f"  {trial_name(trial.number)}  {metric}={trial.value:.4f}  {params}")
    return lines
