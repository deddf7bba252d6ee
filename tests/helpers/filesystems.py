"""Real file-system faults for tests: a tiny file system (ENOSPC) and a read-only folder.

Registered for every test module by tests/conftest.py (``pytest_plugins``). A full disk needs a
real small file system: a ``tmpfs`` mounted for the test, so those tests run as root (as in CI's
container) and are skipped otherwise. Root ignores permission bits, so a read-only folder is a
read-only bind mount as root and ``chmod a-w`` otherwise.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture
def tiny_filesystem(tmp_path):
    """``make(size_bytes) -> Path``: a fresh tmpfs of that size, unmounted after the test."""
    mounts = []

    def make(size_bytes: int, name: str = "tiny") -> Path:
        if os.geteuid() != 0:
            pytest.skip("a tiny file system needs root (mount -t tmpfs)")
        path = tmp_path / name
        path.mkdir()
        result = _mount("-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path))
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounts.append(path)
        return path

    yield make
    for path in reversed(mounts):
        subprocess.run(["umount", "--lazy", str(path)], capture_output=True)  # even while a file is open


@pytest.fixture
def read_only():
    """``freeze(folder)``: make ``folder`` and everything in it read-only until the test ends."""
    undo = []

    def freeze(folder: Path) -> Path:
        if os.geteuid() == 0:
            result = _mount("--bind", str(folder), str(folder))
            if result.returncode == 0:
                undo.append(lambda: subprocess.run(["umount", "--lazy", str(folder)], capture_output=True))
                result = _mount("-o", "remount,bind,ro", str(folder))
            if result.returncode:
                pytest.skip(f"cannot make a read-only bind mount here: {result.stderr.strip()}")
        else:
            paths = [folder, *folder.rglob("*")]
            modes = {p: p.stat().st_mode for p in paths}
            for p in paths:
                p.chmod(modes[p] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
            undo.append(lambda: [p.chmod(mode) for p, mode in modes.items()])
        return folder

    yield freeze
    for step in reversed(undo):
        step()
