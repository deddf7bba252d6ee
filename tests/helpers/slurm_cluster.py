"""A throwaway SLURM cluster on loopback, for testing the batch templates against the real thing.

``slurm_cluster(root)`` writes ``slurm.conf`` and ``gres.conf`` under ``root``, starts one
``slurmctld -D`` and one ``slurmd -D -N nodeK`` per node (Debian's build allows several slurmd on
one host, each on its own port), waits until every node is idle, yields a :class:`SlurmCluster`
to submit and watch jobs with, then cancels what is left and stops exactly the daemons it started.

The nodes declare more CPUs, memory and GPUs than the host has (``config_overrides``) so that the
templates' real ``#SBATCH`` requests schedule; the GPUs are GRES backed by empty placeholder files
(SLURM drops file-less GPUs). Everything talks over 127.0.0.1 with ``auth/none``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

NODE_CPUS = 64
NODE_MEMORY_MB = 512_000
NODE_GPUS = 8
FINISHED_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                   "DEADLINE", "PREEMPTED"}


def slurm_missing_reason() -> str | None:
    """Why a loopback cluster cannot run here, or None when it can."""
    for tool in ("slurmctld", "slurmd", "sbatch", "scontrol", "srun"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (Debian: apt-get install slurm-wlm)"
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs"
    return None


def free_loopback_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 (held open together so none repeats)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def write_config(root: Path, nodes: int) -> Path:
    """Write slurm.conf, gres.conf and the GPU placeholder files under ``root``; return slurm.conf."""
    ctld_port, *node_ports = free_loopback_ports(1 + nodes)
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(NODE_GPUS):
        (root / f"gpu{i}").touch()
    node_lines = "\n".join(
        f"NodeName=node{i} NodeHostname=localhost NodeAddr=127.0.0.1 Port={port} "
        f"CPUs={NODE_CPUS} RealMemory={NODE_MEMORY_MB} Gres=gpu:{NODE_GPUS} State=UNKNOWN"
        for i, port in enumerate(node_ports)
    )
    conf = root / "slurm.conf"
    conf.write_text(
        f"""\
ClusterName=emnisttest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
SlurmdParameters=config_overrides
ReturnToService=2
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# finished jobs stay visible to scontrol for an hour: a test may look at a job long after it ended
MinJobAge=3600
KillWait=10
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd-%n.log
SlurmctldDebug=debug
SlurmdDebug=debug
{node_lines}
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
    )
    (root / "gres.conf").write_text(f"Name=gpu File={root}/gpu[0-{NODE_GPUS - 1}]\n")
    return conf


@dataclass
class SlurmCluster:
    """Client side of a running loopback cluster."""

    root: Path
    conf: Path
    nodes: int

    @property
    def env(self) -> dict[str, str]:
        """This process's environment pointed at the cluster, without an outer job's SLURM_* variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
        env["SLURM_CONF"] = str(self.conf)
        return env

    def run(self, *cmd: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster; text output captured."""
        kwargs.setdefault("env", self.env)
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60, **kwargs)

    def sbatch(self, *args: str, env: dict[str, str | None] | None = None, cwd: Path | None = None) -> int:
        """Submit a batch job (``sbatch --parsable ARGS``) and return its id; ``env`` values of None unset."""
        job_env = {k: v for k, v in {**self.env, **(env or {})}.items() if v is not None}
        out = self.run("sbatch", "--parsable", *args, env=job_env, cwd=cwd)
        return int(out.stdout.strip().split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        """``scontrol show job`` as a dict (JobState, Restarts, ExitCode, Reason, ...)."""
        text = self.run("scontrol", "show", "job", "--oneliner", str(job_id)).stdout
        return dict(re.findall(r"(\w+)=(\S*)", text))

    def wait_job(self, job_id: int, until, timeout: float, what: str = "") -> dict[str, str]:
        """Poll the job until ``until(job_dict)`` holds; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if until(job):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id}: {what or 'condition'} not reached in {timeout:.0f}s: {job}")
            time.sleep(0.5)

    def release_requeued(self, job_id: int) -> None:
        """Start a requeued job now instead of after SLURM's hold (``BeginTime``, about 2 minutes).

        Call it once the job shows ``PENDING`` again (no longer ``COMPLETING``): the requeue has then
        revoked the old job credential on every node. slurmd compares credential times in whole
        seconds, so a launch whose new credential is from that same second counts as revoked
        ("Killing non-startable batch JobId=N: Job credential revoked", the job ends FAILED 1:0);
        release it only once the clock has moved on to the next second.
        """
        time.sleep(1.1 - time.time() % 1)
        self.run("scontrol", "update", f"jobid={job_id}", "starttime=now")

    def wait_finished(self, job_id: int, timeout: float) -> dict[str, str]:
        """Wait until the job has ended (completed, failed, cancelled, ...)."""
        return self.wait_job(job_id, lambda j: j.get("JobState") in FINISHED_STATES, timeout, "end")

    def node_states(self) -> dict[str, str]:
        """Node name -> state (idle, allocated, down, ...)."""
        out = self.run("sinfo", "--noheader", "--Node", "--format=%N %T").stdout
        return dict(line.split() for line in out.splitlines() if line.strip())

    def job_ids(self) -> list[int]:
        """Jobs still pending or running."""
        out = self.run("squeue", "--noheader", "--format=%i").stdout
        return [int(x) for x in out.split()]

    def logs_tail(self, lines: int = 30) -> str:
        """The end of every daemon log, for error messages."""
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)


def _stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Stop one daemon we started: SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def slurm_cluster(root: Path, nodes: int = 2, start_timeout: float = 30) -> Iterator[SlurmCluster]:
    """Start slurmctld + ``nodes`` slurmd on loopback under ``root``; yield the cluster; stop them.

    On exit, jobs still queued or running are cancelled and waited for (so no job step outlives
    its slurmd), then the daemons this call started are stopped by PID.
    """
    # slurmd opens a Unix socket per job step in its spool folder, e.g. spool/node0/node0_12.4294967291; a path
    # longer than 107 bytes cannot be bound, and every job then ends "launch_failed_requeued_held".
    longest_socket = root / "spool" / f"node{nodes - 1}" / f"node{nodes - 1}_{10**6}.4294967291"
    socket_bytes = len(os.fsencode(longest_socket))
    if socket_bytes > 107:
        raise ValueError(f"{root}: too long a path for slurmd's job-step sockets ({longest_socket}, "
                         f"{socket_bytes} bytes, at most 107): use a shorter folder")
    root.mkdir(parents=True, exist_ok=True)
    conf = write_config(root, nodes)
    cluster = SlurmCluster(root, conf, nodes)
    daemons: list[subprocess.Popen] = []

    def start(*cmd: str, log: str) -> None:
        with open(root / "log" / log, "wb") as out:
            daemons.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=cluster.env))

    try:
        start("slurmctld", "-D", "-f", str(conf), log="slurmctld.stdout")
        for i in range(nodes):
            start("slurmd", "-D", "-N", f"node{i}", "-f", str(conf), log=f"slurmd-node{i}.stdout")
        deadline = time.monotonic() + start_timeout
        while True:
            dead = [p.args for p in daemons if p.poll() is not None]
            if dead:
                raise RuntimeError(f"SLURM daemon exited at start: {dead}\n{cluster.logs_tail()}")
            states = cluster.node_states() if _controller_up(cluster) else {}
            if len(states) == nodes and all(s == "idle" for s in states.values()):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"nodes not idle after {start_timeout}s: {states}\n{cluster.logs_tail()}")
            time.sleep(0.2)
        yield cluster
    finally:
        try:
            _cancel_all(cluster)
        finally:
            for proc in reversed(daemons):  # slurmd before slurmctld
                _stop(proc)


def _controller_up(cluster: SlurmCluster) -> bool:
    return "is UP" in cluster.run("scontrol", "ping", check=False).stdout


def _cancel_all(cluster: SlurmCluster, timeout: float = 60) -> None:
    """Cancel the jobs left on this cluster and wait until their processes are gone."""
    if not _controller_up(cluster):
        return
    ids = cluster.job_ids()
    if ids:
        cluster.run("scancel", *map(str, ids), check=False)
    deadline = time.monotonic() + timeout
    while cluster.job_ids() and time.monotonic() < deadline:
        time.sleep(0.5)
