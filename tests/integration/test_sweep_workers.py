"""Sweep workers for real: a 2-task SLURM job array on the loopback cluster (tests/helpers/slurm_cluster.py) with
one task preempted (USR1) mid-trial and requeued; a DDP trial (2 processes, gloo, under accelerate launch); and
two local workers (--workers 2) stopped by SIGTERM, then resumed by the same command."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.slurm_cluster import slurm_cluster, slurm_missing_reason
from tests.conftest import missing_system_dependency
from tests.helpers.train_runs import env_for_tests, train_cmd
from tests.helpers.sweep_study import fashion_sweep_data, read_trial_record, read_trials, write_base_config, write_space

REPO = Path(__file__).resolve().parents[2]
JOB_TIMEOUT = 300
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root, source = fashion_sweep_data(tmp_path_factory)
    space = write_space(root / "space.yaml", {"train.lr": {"distribution": "log_uniform_values", "min": 5e-4,
                                                            "max": 3e-3},
                                              "augment.translate": {"values": [0.0, 0.1]}})
    return root, write_base_config(root / "base.yaml", source, root / "cache"), space


def job_log(cluster, job: str) -> str:
    path = Path(cluster.job(job)["StdOut"])
    return path.read_text(errors="replace") if path.exists() else ""


def test_job_array_workers_share_the_study_and_a_preempted_trial_resumes(data, tmp_path, tmp_path_factory):
    reason = slurm_missing_reason()
    if reason:
        missing_system_dependency(reason)
    root, base, space = data
    study = root / "array_study"
    trials = 4  # two tasks, each with more than one trial to claim on average
    (tmp_path / "logs").mkdir()
    with slurm_cluster(tmp_path_factory.mktemp("slurm"), nodes=2) as cluster:  # a short path: see slurm_cluster
        env = {"EMNIST_REPO": str(REPO), "EMNIST_ACTIVATE": f'export PATH="{Path(sys.executable).parent}:$PATH"',
               "EMNIST_CPU": "1", "PROCS_PER_NODE": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
               "CONFIG": str(base), "SPACE": str(space), "STUDY_DIR": str(study), "TRIALS": str(trials),
               "PYTHONPATH": str(REPO)}
        array = cluster.sbatch("--array=0-1", str(REPO / "slurm" / "sweep.sh"), env=env, cwd=tmp_path)
        first, second = f"{array}_0", f"{array}_1"
        # USR1 to task 0 once its first trial is visibly training (progress lines every 2 steps of 32)
        cluster.wait_job(first, lambda j: re.search(r"^step \d+/32", job_log(cluster, first), re.M) is not None,
                         JOB_TIMEOUT, "training")
        cluster.run("scancel", "--batch", "--signal=USR1", first)
        cluster.wait_job(first, lambda j: j["Restarts"] == "1" and j["JobState"] == "PENDING", 120, "requeue")
        cluster.release_requeued(first)
        for task in (first, second):
            job = cluster.wait_finished(task, JOB_TIMEOUT)
            assert (job["JobState"], job["ExitCode"]) == ("COMPLETED", "0:0"), job_log(cluster, task)
        logs = job_log(cluster, first) + job_log(cluster, second)

    before_signal = job_log_text = logs.split("SIGUSR1 received: checkpointing at step")[0]
    interrupted = int(re.findall(r"trial (\d{4}) on process 0", before_signal)[-1])
    (stop_step,) = {int(s) for s in re.findall(r"SIGUSR1 received: checkpointing at step (\d+)", logs)}
    rows = read_trials(study)
    assert [int(r["number"]) for r in rows] == list(range(trials))  # every trial number exactly once
    assert {r["state"] for r in rows} == {"COMPLETE"}, rows
    assert sorted(p.name for p in (study / "trials").iterdir()) == [f"{n:04d}" for n in range(trials)]
    # the interrupted trial resumed from the checkpoint the signal made, under its own number, not from scratch
    assert read_trial_record(study, interrupted)["attempts"] == [-1, stop_step]
    checkpoint = study / "trials" / f"{interrupted:04d}" / "checkpoints" / f"step_{stop_step:08d}"
    assert f"resumed from {checkpoint} at step {stop_step}" in logs, job_log_text
    assert 0 < stop_step < 32
    assert all(read_trial_record(study, n)["attempts"] == [-1] for n in range(trials) if n != interrupted)
    assert not list((study / "leases").iterdir())
    assert (study / "best.yaml").is_file()


def test_ddp_trial_gets_the_same_parameters_on_both_ranks(data):
    root, base, space = data
    study = root / "ddp_study"
    args = ["--config", str(base), "--space", str(space), "--study", str(study), "--trials", "1", "--train.epochs", "1"]
    result = subprocess.run(train_cmd(args, processes=2, module="emnist_dist.sweep"), cwd=root,
                            env={**env_for_tests(root), "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                            timeout=JOB_TIMEOUT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    received = dict(re.findall(r"trial 0000 on process (\d): (\{.*\})", result.stdout))
    assert set(received) == {"0", "1"}, result.stdout
    assert json.loads(received["0"]) == json.loads(received["1"])
    (row,) = read_trials(study)  # rank 1 never asked the study for a trial of its own
    assert row["state"] == "COMPLETE" and float(row["train.lr"]) == json.loads(received["0"])["train.lr"]
    final = json.loads((study / "trials" / "0000" / "final.json").read_text())
    assert final["world_size"] == 2 and final["ranks_in_sync"]


def test_local_workers_stop_on_sigterm_and_the_same_command_resumes_their_trials(data):
    root, base, space = data
    study = root / "local_study"
    # 12 epochs (192 steps) per trial: the second worker starts its trial (imports, data) long before the first can
    # finish, so the signal finds both mid-trial (with the base config's 32 steps, a slow start lost that race in CI)
    epochs, steps = 12, 12 * 16
    command = [sys.executable, "-m", "emnist_dist.sweep", "--config", str(base), "--space", str(space),
               "--study", str(study), "--trials", "2", "--workers", "2", "--train.epochs", str(epochs)]
    env = {**env_for_tests(root), "PYTHONPATH": str(REPO)}
    sweep = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in sweep.stdout:  # both workers training their first trial: stop the command
        lines.append(line)
        if sum("training test_resnet on" in seen for seen in lines) == 2:
            sweep.send_signal(signal.SIGTERM)
            break
    lines += sweep.stdout.read().splitlines(keepends=True)
    assert sweep.wait(timeout=JOB_TIMEOUT) == 75, "".join(lines)
    stopped = {int(s) for s in re.findall(r"SIGTERM received: checkpointing at step (\d+)", "".join(lines))}
    assert [r["state"] for r in read_trials(study)] == ["WAITING", "WAITING"], "".join(lines)

    again = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert [(r["number"], r["state"]) for r in read_trials(study)] == [("0", "COMPLETE"), ("1", "COMPLETE")]
    resumed = {read_trial_record(study, n)["attempts"][1] for n in (0, 1)}
    assert resumed == stopped and all(0 < step < steps for step in stopped)  # from the checkpoints the signal made
