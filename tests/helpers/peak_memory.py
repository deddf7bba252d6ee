"""Run ``python -m MODULE ARGS`` in a child process and learn its own peak memory and CPU time.

A child's ``ru_maxrss`` from ``wait4`` is no use here: Linux carries the parent's high-water mark across fork and
exec, so it starts from pytest's peak (1 GB or more once a test has loaded a model). The child therefore writes, at
exit, its own ``VmHWM`` (from /proc/self/status, which exec resets) and its CPU seconds to a file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_REPORTING_MAIN = (
    "import atexit, resource, runpy, sys; report = sys.argv.pop(1); module = sys.argv.pop(1); "
    "usage = lambda: resource.getrusage(resource.RUSAGE_SELF); "
    "atexit.register(lambda: open(report, 'w').write(open('/proc/self/status').read() "
    "+ f'CPU: {usage().ru_utime + usage().ru_stime}\\n')); "
    "runpy.run_module(module, run_name='__main__', alter_sys=True)"
)


@dataclass
class MeasuredRun:
    returncode: int
    stdout: str
    stderr: str
    peak_mb: float  # the child's own peak resident memory
    cpu_s: float  # the child's own user + system CPU seconds


def run_measured(module: str, args: list[str], report: Path, threads: int | None = 1) -> MeasuredRun:
    """``python -m module args`` as a user runs it, with its own peak memory and CPU time (``report`` is scratch)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    proc = subprocess.run([sys.executable, "-c", _REPORTING_MAIN, str(report), module, *args], capture_output=True,
                          text=True, env=env)
    fields = dict(line.split(":", 1) for line in report.read_text().splitlines() if ":" in line)
    return MeasuredRun(proc.returncode, proc.stdout, proc.stderr, int(fields["VmHWM"].split()[0]) / 1024,
                       float(fields["CPU"]))
