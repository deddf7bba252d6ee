"""A W&B sweep file read as an Optuna search space, and trials.csv as the csv module reads it back.

References: W&B's sweep-configuration reference (log_uniform bounds are natural logarithms, q_uniform
rounds to multiples of q, min/max of two integers is int_uniform) and Optuna's own distributions.
"""

from __future__ import annotations

import csv
import io
import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from emnist_dist.cli import run_cli
from emnist_dist.errors import UserError
from emnist_dist.sweep.__main__ import main as sweep_main, wait_forwarding_signals
from emnist_dist.sweep.results import trials_csv
from emnist_dist.sweep.space import parse_space, read_space
from emnist_dist.sweep.study import StudyFolder, create_folder

REPO = Path(__file__).resolve().parents[2]


def space(parameters: dict, **extra):
    return parse_space({"method": "random", "metric": {"name": "val/acc", "goal": "maximize"},
                        "parameters": parameters, **extra})


def drawn_distributions(parsed) -> dict:
    """The distributions Optuna records when a trial draws every parameter."""
    study = optuna.create_study(sampler=parsed.make_sampler(seed=0))
    trial = study.ask()
    for parameter in parsed.parameters:
        parameter.suggest(trial)
    return study.trials[0].distributions


def test_each_wandb_distribution_becomes_the_optuna_one():
    parsed = space({
        "train.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
        "train.weight_decay": {"distribution": "log_uniform", "min": -4, "max": -1},
        "augment.translate": {"distribution": "uniform", "min": 0.0, "max": 0.2},
        "train.epochs": {"distribution": "int_uniform", "min": 2, "max": 6},
        "augment.degrees": {"distribution": "q_uniform", "min": 0, "max": 10, "q": 5},
        "augment.scale": {"distribution": "q_uniform", "min": 0.0, "max": 0.2, "q": 0.05},
        "train.warmup_epochs": {"min": 1, "max": 3},  # two integers: int_uniform
        "train.T_0": {"min": 1.0, "max": 3},  # a float bound: uniform
        "train.optimizer": {"values": ["lion", "adamw"]},
        "seed": {"value": 3},
    })
    assert drawn_distributions(parsed) == {
        "train.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "train.weight_decay": FloatDistribution(math.exp(-4), math.exp(-1), log=True),
        "augment.translate": FloatDistribution(0.0, 0.2),
        "train.epochs": IntDistribution(2, 6),
        "augment.degrees": IntDistribution(0, 10, step=5),
        "augment.scale": FloatDistribution(0.0, 0.2, step=0.05),
        "train.warmup_epochs": IntDistribution(1, 3),
        "train.T_0": FloatDistribution(1.0, 3.0),
        "train.optimizer": CategoricalDistribution(["lion", "adamw"]),
        "seed": CategoricalDistribution([3]),
    }


def test_shipped_wandb_sweep_reads_as_tpe_with_hyperband():
    parsed = read_space(REPO / "sweeps" / "byclass_b3.yaml")  # program / command / project: W&B's, ignored
    assert (parsed.method, parsed.metric, parsed.goal) == ("bayes", "val/acc", "maximize")
    assert isinstance(parsed.make_sampler(seed=0), optuna.samplers.TPESampler)
    pruner = parsed.make_pruner(epochs=12)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert (pruner._min_resource, pruner._max_resource, pruner._reduction_factor) == (3, 12, 3)
    assert parsed.keys[0] == "train.optimizer" and len(parsed.keys) == 8
    assert isinstance(space({"train.lr": {"values": [1e-3]}}).make_pruner(epochs=3), optuna.pruners.NopPruner)


def test_grid_points_in_file_order_last_key_fastest():
    parsed = parse_space({"method": "grid", "metric": {"name": "val/acc", "goal": "maximize"}, "parameters": {
        "train.lr": {"values": [0.1, 0.2]},
        "train.epochs": {"distribution": "int_uniform", "min": 1, "max": 3},
    }})
    assert parsed.grid_size() == 6
    assert [parsed.grid_point(i) for i in range(6)] == [
        {"train.lr": lr, "train.epochs": e} for lr in (0.1, 0.2) for e in (1, 2, 3)]


@pytest.mark.parametrize("spec, culprit", [
    ({"method": "hyperopt"}, "method='hyperopt'"),
    ({"entity_typo": 1}, "unknown key 'entity_typo'"),
    ({"metric": {"name": "test/acc", "goal": "maximize"}}, "metric.name=test/acc"),
    ({"metric": {"name": "val/acc", "goal": "max"}}, "metric.goal='max'"),
    ({"parameters": {"train.lr": {"values": [1, 2], "probabilities": [0.5, 0.5]}}}, "probabilities"),
    ({"parameters": {"train.lr": {"distribution": "normal", "mu": 0, "sigma": 1}}}, "distribution='normal'"),
    ({"parameters": {"train.lr": {"distribution": "uniform", "min": 2, "max": 1}}}, "min=2 max=1: expected min < max"),
    ({"parameters": {"train.betas": {"values": [[0.9, 0.99]]}}}, "value [0.9, 0.99]"),
    ({"parameters": {"train": {"parameters": {"lr": {"values": [1]}}}}}, "nested parameters"),
    ({"method": "grid", "parameters": {"train.lr": {"distribution": "uniform", "min": 0, "max": 1}}}, "no grid"),
    ({"early_terminate": {"type": "median"}}, "early_terminate"),
])
def test_bad_sweep_file_is_refused_in_one_line(spec, culprit):
    base = {"method": "random", "metric": {"name": "val/acc", "goal": "maximize"},
            "parameters": {"train.lr": {"values": [1e-3]}}}
    with pytest.raises(UserError) as err:
        parse_space({**base, **spec})
    assert culprit in str(err.value) and "\n" not in str(err.value)


def test_trials_csv_columns_and_rows_read_back():
    lr, translate = FloatDistribution(1e-4, 1e-2, log=True), CategoricalDistribution([0.0, 0.1])
    trials = [
        create_trial(state=TrialState.PRUNED, value=0.25, params={"train.lr": 0.009, "augment.translate": 0.1},
                     distributions={"train.lr": lr, "augment.translate": translate}, user_attrs={"seconds": 4.04}),
        create_trial(state=TrialState.COMPLETE, value=0.875, params={"train.lr": 0.001, "augment.translate": 0.0},
                     distributions={"train.lr": lr, "augment.translate": translate}, user_attrs={"seconds": 12.26}),
        create_trial(state=TrialState.FAIL, params={"train.lr": 0.002}, distributions={"train.lr": lr}),
    ]
    for number, trial in enumerate(trials):
        trial.number = 2 - number  # written out of order: the file is sorted by number
    rows = list(csv.reader(io.StringIO(trials_csv(trials, "val/acc", ["train.lr", "augment.translate"]))))
    assert rows == [
        ["number", "state", "val/acc", "train.lr", "augment.translate", "seconds"],
        ["0", "FAIL", "", "0.002", "", ""],
        ["1", "COMPLETE", "0.875", "0.001", "0.0", "12.3"],
        ["2", "PRUNED", "0.25", "0.009", "0.1", "4.0"],
    ]


def test_a_binary_space_file_is_one_line_naming_it(tmp_path):
    space = tmp_path / "bin.yaml"
    space.write_bytes(bytes(range(128, 256)) * 8)  # not UTF-8
    with pytest.raises(UserError, match=r"--space .*bin.yaml: cannot be read .*expected a W&B sweep YAML file"):
        read_space(space)


def test_a_folder_of_the_users_files_is_never_made_a_study(tmp_path):
    """Files of the names a study writes (trials.csv, best.yaml) in a folder holding no study yet are the user's."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "trials.csv").write_text("my csv")
    with pytest.raises(UserError, match=r"holds no study but other files \(trials.csv\)"):
        create_folder(StudyFolder(folder))
    assert sorted(p.name for p in folder.iterdir()) == ["trials.csv"] and (folder / "trials.csv").read_text() == "my csv"
    create_folder(StudyFolder(tmp_path / "new"))  # a new folder, and the same again (as a second worker does)
    create_folder(StudyFolder(tmp_path / "new"))


@pytest.mark.parametrize("damage", [b"\x81\x82 not text\n", b"not json at all\n", b'{"op_code": 99, "worker_id": "x"}\n'])
def test_a_damaged_journal_is_one_line_naming_it(tmp_path, damage):
    folder = StudyFolder(tmp_path / "study")
    create_folder(folder)
    optuna.create_study(study_name="study", storage=folder.storage())
    first = folder.journal.read_bytes().splitlines(keepends=True)[0]
    with open(folder.journal, "ab") as journal:  # damage inside (Optuna takes a bad last line for a torn write)
        journal.write(damage + first)
    with pytest.raises(UserError, match=r"study.journal: damaged .*expected the journal Optuna wrote"):
        folder.storage()


def test_an_os_error_on_the_study_folder_is_one_line_naming_it(tmp_path, capsys):
    """Found by the hostile pass: an OSError on the study (here its journal replaced by a folder) was a traceback."""
    (tmp_path / "study" / "study.journal").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(sweep_main, ["--config", str(REPO / "configs" / "quickstart.yaml"), "--space",
                             str(REPO / "sweeps" / "cpu.yaml"), "--study", str(tmp_path / "study"), "--trials", "1",
                             "--data.cache_dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert err == (f"error: [Errno 21] Is a directory: '{tmp_path / 'study' / 'study.journal'}': expected a readable "
                   "and writable --study folder as the sweep wrote it\n")


# A stand-in worker: reports the signal that stops it in its exit code (75 for SIGTERM, as a sweep worker does).
SIGNAL_REPORTING_WORKER = ("import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(75)); "
                           "signal.signal(signal.SIGINT, lambda *_: sys.exit(130)); print('ready', flush=True); "
                           "time.sleep(60)")


def test_ctrl_c_reaches_local_workers_as_sigterm():
    """Found by the hostile pass: Ctrl-C ended the sweep command and left its workers training, orphaned."""
    workers = [subprocess.Popen([sys.executable, "-c", SIGNAL_REPORTING_WORKER], stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    for worker in workers:
        assert worker.stdout.readline() == "ready\n"
    before = signal.getsignal(signal.SIGINT)
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()  # Ctrl-C to this process alone
    assert wait_forwarding_signals(workers) == [75, 75]
    assert signal.getsignal(signal.SIGINT) is before
