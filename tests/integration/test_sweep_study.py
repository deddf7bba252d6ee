"""python -m emnist_dist.sweep in this process, on real Fashion-MNIST images: pruning, best.yaml, refusals,
and the leases that take back a trial whose worker died."""

from __future__ import annotations

import os
import time
from pathlib import Path

import matplotlib
import pytest
import yaml
from optuna.trial import TrialState

from emnist_dist.config import parse_config
from emnist_dist.cli import run_cli
from emnist_dist.sweep.__main__ import main
from emnist_dist.sweep.space import check_values, read_space
from emnist_dist.sweep.study import StudyFolder, claim_trial, open_study
from emnist_dist.train import Trainer
from tests.helpers.sweep_study import (fashion_sweep_data, read_trial_record, read_trials, val_records, write_base_config,
                                       write_space)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root, source = fashion_sweep_data(tmp_path_factory)
    return root, write_base_config(root / "base.yaml", source, root / "cache")


@pytest.mark.slow
def test_pruner_stops_a_hopeless_trial_and_best_yaml_trains_the_best_again(data, monkeypatch, capsys):
    root, base = data
    monkeypatch.chdir(root)
    space = write_space(root / "prune.yaml", {"train.lr": {"values": [1e-3, 1.0]}}, method="grid",
                        early_terminate={"type": "hyperband", "min_iter": 1})
    study = root / "prune"
    def style():  # every setting but the backend, which the sweep sets to Agg
        return {k: v for k, v in matplotlib.rcParams.items() if not k.startswith("backend")}

    before = style()
    assert main(["--config", str(base), "--space", str(space), "--study", str(study), "--trials", "5"]) == 0
    # Optuna's plots switch matplotlib to its ggplot style: the sweep puts the process's style back
    assert style() == before
    rows = read_trials(study)  # the grid has 2 points: 2 trials, in the file's order
    assert [(r["number"], r["state"], r["train.lr"]) for r in rows] == [("0", "COMPLETE", "0.001"),
                                                                          ("1", "PRUNED", "1.0")]
    assert list(rows[0]) == ["number", "state", "val/acc", "train.lr", "seconds"]
    assert float(rows[1]["val/acc"]) < float(rows[0]["val/acc"])
    pruned = study / "trials" / "0001"
    record = read_trial_record(study, 1)
    assert record["state"] == "PRUNED" and "Hyperband at epoch 1" in record["reason"]
    assert [r["epoch"] for r in val_records(pruned)] == [1]  # stopped after the first of 2 epochs' validations
    assert not (pruned / "final.json").exists() and not (pruned / "model").exists()  # never tested nor exported
    for picture in ("optimization_history.png", "parallel_coordinate.png"):
        assert (study / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    best = yaml.safe_load((study / "best.yaml").read_text())
    assert best["train"]["lr"] == 1e-3 and best["output_dir"] == str(study / "best")
    final = Trainer(parse_config(["--config", str(study / "best.yaml")])).fit()
    assert final["best_val_acc"] == float(rows[0]["val/acc"])  # the same seed on the CPU: the same run

    capsys.readouterr()
    assert main(["--study", str(study), "--summary"]) == 0
    out = capsys.readouterr().out
    assert "2 trials (1 COMPLETE, 1 PRUNED)" in out and f"0000  val/acc={float(rows[0]['val/acc']):.4f}" in out


@pytest.mark.parametrize("space, config", [("byclass_b3", "byclass_b3"), ("cpu", "cpu")])
def test_shipped_sweep_files_fit_their_recipes(space, config, monkeypatch):
    monkeypatch.chdir(REPO)
    parsed = read_space(REPO / "sweeps" / f"{space}.yaml")
    base = check_values(parsed, ["--config", f"configs/{config}.yaml"])  # every value parses as an override
    assert base.data.val_fraction > 0 and parsed.metric == "val/acc"


@pytest.mark.parametrize("parameters, culprit", [
    ({"train.lrr": {"values": [1e-3]}}, "parameters.train.lrr: not a config key (did you mean train.lr?)"),
    ({"train.optimizer": {"values": ["lion", "adam"]}}, "parameters.train.optimizer: value 'adam' refused"),
    ({"train.batch_size": {"values": [32, 33]}}, "parameters.train.batch_size: value 33 refused"),
])
def test_bad_parameter_is_refused_in_one_line_before_any_trial(data, tmp_path, capsys, parameters, culprit):
    _, base = data
    space = write_space(tmp_path / "space.yaml", parameters)
    with pytest.raises(SystemExit) as exited:
        run_cli(main, ["--config", str(base), "--space", str(space), "--study", str(tmp_path / "s"), "--trials", "2"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.startswith(f"error: {culprit}") and err.count("\n") == 1, err
    assert not (tmp_path / "s").exists()


def test_trial_whose_worker_died_is_retried_once_then_failed(tmp_path):
    space = read_space(write_space(tmp_path / "space.yaml", {"train.lr": {"values": [1e-3, 2e-3]}}))
    folder = StudyFolder(tmp_path / "study")
    study, storage = open_study(folder, space, {"seed": 0}, seed=0, worker=0, epochs=2)

    def claim():
        return claim_trial(study, storage, folder, space, n_trials=1, stale_after=60)

    first = claim()
    assert claim() is None  # its worker is alive (the lease is fresh) and the study has its 1 trial
    long_ago = time.time() - 61
    os.utime(first.lease.path, (long_ago, long_ago))  # the worker died: no heartbeat for over a minute
    again = claim()  # no checkpoint in its run folder: retried from scratch, the same number and parameters
    assert (again.number, again.params) == (first.number, first.params)
    assert study.trials[0].user_attrs["retries"] == 1
    os.utime(again.lease.path, (long_ago, long_ago))  # died again
    assert claim() is None
    (trial,) = study.trials
    assert trial.state == TrialState.FAIL and "died twice" in trial.user_attrs["reason"]
    assert not first.lease.path.exists()
