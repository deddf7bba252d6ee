"""The cache under faults: damaged files, a read-only or full cache, kill -9 mid-prepare, concurrent prepares."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from datasets import load_from_disk

from emnist_dist.data import image_stats, load_split, prepare
from emnist_dist.data.__main__ import main
from emnist_dist.cli import log_to_console, run_cli
from emnist_dist.errors import UserError
from tests.helpers.train_runs import REPO, env_for_tests

SMALL = dict(synthetic_train_per_class=300, synthetic_test_per_class=5)  # 3 Arrow record batches of 1000


def arrow_file(cache: Path, part: str = "train") -> Path:
    (found,) = (cache / part).glob("*.arrow")
    return found


def truncate_after_two_record_batches(path: Path) -> None:
    """Cut the Arrow stream exactly after its second record batch: a shorter, perfectly readable file."""
    with pa.OSFile(str(path)) as source:
        reader = pa.ipc.open_stream(source)
        reader.read_next_batch()
        reader.read_next_batch()
        end = source.tell()
    os.truncate(path, end)


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def set_format(cache: Path, version: int) -> None:
    meta = json.loads((cache / "emnist_dist.json").read_text())
    (cache / "emnist_dist.json").write_text(json.dumps({**meta, "format": version}))


def set_train_rows(cache: Path, rows: int) -> None:
    meta = json.loads((cache / "emnist_dist.json").read_text())
    (cache / "emnist_dist.json").write_text(json.dumps({**meta, "rows": {**meta["rows"], "train": rows}}))


DAMAGE = {
    "train Arrow file cut at a record-batch boundary": (lambda c: truncate_after_two_record_batches(arrow_file(c)),
                                                        "train/data-00000-of-00001.arrow has"),
    "a flipped byte in the test Arrow file": (lambda c: flip_a_byte(arrow_file(c, "test")),
                                              "data-00000-of-00001.arrow does not match its SHA-256"),
    "a deleted state.json": (lambda c: (c / "train" / "state.json").unlink(), "train/state.json is missing"),
    "a torn metadata file": (lambda c: (c / "emnist_dist.json").write_text('{"split": "dig'),
                             "no readable emnist_dist.json"),
    "a cache of an older emnist_dist": (lambda c: set_format(c, 1), "written by another emnist_dist version"),
    "an empty part (older emnist_dist versions cached them)": (lambda c: set_train_rows(c, 0),
                                                               "its train part holds 0 rows"),
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    cache = prepare("digits", "synthetic", tmp_path_factory.mktemp("reference"), progress=False, **SMALL)
    return load_split(cache, "train"), load_split(cache, "test")


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_cache_is_rebuilt_saying_so(tmp_path, reference, damage, capsys):
    cache = prepare("digits", "synthetic", tmp_path, progress=False, **SMALL)
    spoil, reason = DAMAGE[damage]
    spoil(cache)
    log_to_console()  # a command's console: the data layer logs, the console shows its records on stderr
    capsys.readouterr()
    assert prepare("digits", "synthetic", tmp_path, progress=False, **SMALL) == cache
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cache {cache} is damaged (") and reason in lines[0]
    assert lines[0].endswith("rebuilding it from synthetic")
    for part, (images, labels) in zip(("train", "test"), reference):
        got_images, got_labels = load_split(cache, part)
        assert torch.equal(got_images, images) and torch.equal(got_labels, labels)


def test_a_damaged_cache_holding_a_users_file_is_not_rebuilt_over_it(tmp_path, reference, capsys):
    """Found by the hostile pass: rebuilding replaced the entry's folder, and a user's file in it went with it."""
    cache = prepare("digits", "synthetic", tmp_path, progress=False, **SMALL)
    image_stats(cache, 32)  # the statistics file a training run adds is the entry's own
    flip_a_byte(arrow_file(cache, "test"))
    (cache / "train" / "notes.txt").write_text("mine")
    with pytest.raises(UserError) as refused:
        prepare("digits", "synthetic", tmp_path, progress=False, **SMALL)
    assert str(refused.value) == (
        f"cache {cache} is damaged (test/data-00000-of-00001.arrow does not match its SHA-256 in emnist_dist.json) "
        "and holds what emnist_dist did not write: train/notes.txt: expected only its dataset files (move them out, "
        "then run again to rebuild it)")
    assert (cache / "train" / "notes.txt").read_text() == "mine"
    (cache / "train" / "notes.txt").unlink()
    prepare("digits", "synthetic", tmp_path, progress=False, **SMALL)
    assert torch.equal(load_split(cache, "test")[0], reference[1][0])


def test_a_cut_arrow_file_is_silent_to_datasets_but_not_to_load_split(tmp_path):
    cache = prepare("digits", "synthetic", tmp_path, progress=False, **SMALL)
    truncate_after_two_record_batches(arrow_file(cache))
    assert load_from_disk(str(cache))["train"].num_rows == 2000  # what used to be trained on, silently
    with pytest.raises(UserError, match="its train part holds 2000 rows: expected 3000"):
        load_split(cache, "train")


def test_a_damaged_read_only_cache_says_in_one_line_that_it_cannot_be_rebuilt(tmp_path, read_only, capsys):
    cache = prepare("digits", "synthetic", tmp_path / "shared", progress=False, **SMALL)
    truncate_after_two_record_batches(arrow_file(cache))
    read_only(tmp_path / "shared")
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["prepare", "--split", "digits", "--source", "synthetic", "--cache-dir", str(tmp_path / "shared"),
                       "--synthetic-train-per-class", "300", "--synthetic-test-per-class", "5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: cache {cache} is damaged (train/data-00000-of-00001.arrow has ")
    assert f"and cannot be rebuilt: {tmp_path / 'shared'} is not writable (" in err[0]


def test_a_damaged_cache_whose_source_is_gone_says_so_in_one_line(tmp_path, archive_server):
    cache = prepare("digits", "nist", tmp_path, progress=False)
    flip_a_byte(arrow_file(cache))
    (tmp_path / "downloads" / "gzip.zip").unlink()
    archive_server.shutdown()
    archive_server.server_close()
    with pytest.raises(UserError) as err:
        prepare("digits", "nist", tmp_path, progress=False)
    message = str(err.value)
    assert message.startswith(f"cache {cache} is damaged (train/data-00000-of-00001.arrow does not match its SHA-256")
    assert ") and could not be rebuilt: http://127.0.0.1:" in message and "download failed" in message
    assert "\n" not in message


def test_a_read_only_cache_serves_new_image_sizes_from_memory(tmp_path, read_only):
    writable = prepare("digits", "synthetic", tmp_path / "writable", progress=False, **SMALL)
    shared = prepare("digits", "synthetic", tmp_path / "shared", progress=False, **SMALL)
    read_only(tmp_path / "shared")
    assert prepare("digits", "synthetic", tmp_path / "shared", progress=False, **SMALL) == shared
    assert image_stats(shared, 40) == image_stats(writable, 40)  # computed, not stored: the folder is read-only
    assert "40" in json.loads((writable / "image_stats.json").read_text())
    assert not (shared / "image_stats.json").exists()


def test_kill_9_during_prepare_leaves_nothing_the_next_prepare_does_not_sweep(tmp_path, reference):
    cache_dir = tmp_path / "cache"
    args = ["prepare", "--split", "digits", "--source", "synthetic", "--cache-dir", str(cache_dir),
            "--synthetic-train-per-class", "300", "--synthetic-test-per-class", "5"]
    proc = subprocess.Popen([sys.executable, "-m", "emnist_dist.data", *args], cwd=REPO,
                            env=env_for_tests(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(cache_dir.glob(".digits-*.tmp-*/train")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = list(cache_dir.glob(".digits-*.tmp-*"))
    assert left, "the kill came too late to leave a temporary folder"

    cache = prepare("digits", "synthetic", cache_dir, progress=False, **SMALL)
    assert not any(p.exists() for p in left)
    assert sorted(p.name for p in cache_dir.iterdir() if not p.name.endswith(".lock")) == [cache.name]
    assert torch.equal(load_split(cache, "train")[0], reference[0][0])


def test_concurrent_prepares_share_one_download(tmp_path, archive_server):
    """Three processes on one cache (nodes sharing a file system): two want balanced, one digits."""
    archive_server.delay = 2.0  # the first download is still running when the others arrive
    cache_dir = tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, "-m", "emnist_dist.data", "prepare", "--split", split, "--source",
                               "nist", "--cache-dir", str(cache_dir)], cwd=REPO, env=env_for_tests(tmp_path),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for split in ("balanced", "balanced", "digits")]
    results = [(proc.wait(timeout=300), proc.stdout.read(), proc.stderr.read()) for proc in procs]
    for code, out, err in results:
        assert code == 0, err[-2000:]
        assert "Traceback" not in err
    assert archive_server.ranges == [None]  # one download, reused by the others
    assert results[0][1] == results[1][1]  # the same cache folder, built once
    assert any("waiting for another process" in err for _, _, err in results)
    for split, (_, out, _) in zip(("balanced", "balanced", "digits"), results):
        images, labels = load_split(Path(out.strip().splitlines()[-1]), "train")
        raw = archive_server.raws[split]
        assert np.array_equal(images[:, 0].numpy(), raw.train_images.transpose(0, 2, 1))


@pytest.mark.parametrize("kind", ["character device", "fifo"])
def test_a_source_that_is_not_a_file_or_folder_is_one_line(tmp_path, capsys, kind):
    if kind == "fifo":
        source = tmp_path / "pipe"
        os.mkfifo(source)
    else:
        source = Path("/dev/null")
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["prepare", "--split", "digits", "--source", str(source), "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and err == [
        f"error: source '{source}': not a regular file or folder: expected gzip.zip, parquet or a folder"]
    assert not (tmp_path / "c").exists()


def test_a_full_cache_dir_is_one_line_and_keeps_nothing(tiny_filesystem, capsys):
    cache_dir = tiny_filesystem(1_000_000)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["prepare", "--split", "digits", "--source", "synthetic", "--cache-dir", str(cache_dir),
                       "--synthetic-train-per-class", "300", "--synthetic-test-per-class", "5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and err[-1].startswith(f"error: {cache_dir}/digits-synthetic-300x5-seed0-fonts")
    assert ": could not be written (No space left on device)" in err[-1]
    assert [p.name for p in cache_dir.iterdir() if not p.name.endswith(".lock")] == []
    assert shutil.disk_usage(cache_dir).used < 100_000
