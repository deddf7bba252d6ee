"""The atomic writer: all or nothing, one line for an OS fault, and its leftovers after kill -9 swept."""

from __future__ import annotations

import hashlib
import os
import signal

import pytest

from emnist_dist.errors import UserError
from emnist_dist.files import atomic_path, file_sha256, sweep_temporaries, write_text_atomic


def test_a_failed_write_leaves_the_old_version_and_no_temporary(tmp_path):
    target = tmp_path / "model"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "weights").write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "weights").write_text("half")
        raise RuntimeError("the exporter crashed")
    assert (target / "weights").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with atomic_path(target) as tmp:  # a folder replaces a folder
        tmp.mkdir()
        (tmp / "weights").write_text("new")
    assert (target / "weights").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_kill_9_mid_write_keeps_the_old_file_and_the_leftover_is_swept(tmp_path):
    target = write_text_atomic(tmp_path / "config.yaml", "old\n")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # a writer killed after writing half of its temporary
        try:
            with atomic_path(target) as tmp:
                tmp.write_text("half of the new")
                os.write(write_end, b"x")
                signal.pause()
        finally:
            os._exit(1)
    os.read(read_end, 1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert target.read_text() == "old\n"
    leftover = tmp_path / f".config.yaml.tmp-{pid}"
    assert leftover.exists()
    assert sweep_temporaries(target) == [leftover] and not leftover.exists()
    assert target.read_text() == "old\n"


def test_an_os_fault_is_one_line_naming_the_destination(tmp_path, read_only):
    read_only(tmp_path)
    with pytest.raises(UserError) as err:
        write_text_atomic(tmp_path / "final.json", "{}")
    assert str(err.value).startswith(f"{tmp_path}/final.json: could not be written (")
    assert "\n" not in str(err.value)


def test_file_sha256_is_hashlibs(tmp_path):
    data = os.urandom(3 << 20)  # more than one read chunk
    (tmp_path / "blob").write_bytes(data)
    assert file_sha256(tmp_path / "blob") == hashlib.sha256(data).hexdigest()
