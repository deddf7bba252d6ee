"""The run folder: one run at a time, one line for an unusable folder, a metrics file that survives a crash."""

from __future__ import annotations

import json

import pytest
from accelerate import Accelerator
from filelock import FileLock

from emnist_dist.config import Config, save_config
from emnist_dist.errors import UserError
from emnist_dist.train.run_folder import claim_run_folder, truncate_metrics


@pytest.fixture(scope="module")
def accelerator():
    return Accelerator(cpu=True)


def one_line_error(call) -> str:
    with pytest.raises(UserError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_folder_held_by_another_run_is_refused(accelerator, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with FileLock(out / ".lock"):  # another training run, as far as the operating system can tell
        message = one_line_error(lambda: claim_run_folder(accelerator, out))
    assert message == (f"output_dir={out}: in use by another training run (it holds {out}/.lock): "
                       "wait for it to finish, or use another output_dir")
    claim_run_folder(accelerator, out)  # free again: taken
    with pytest.raises(TimeoutError):
        FileLock(out / ".lock", timeout=0).acquire()


def test_an_output_dir_under_a_file_is_one_line(accelerator, tmp_path):
    (tmp_path / "notes.txt").write_text("a file")
    message = one_line_error(lambda: claim_run_folder(accelerator, tmp_path / "notes.txt" / "run"))
    assert message == (f"output_dir={tmp_path}/notes.txt/run: {tmp_path}/notes.txt is a file: "
                       "expected a folder (or a path to create)")


def test_a_read_only_output_dir_is_one_line(accelerator, tmp_path, read_only):
    read_only(tmp_path)
    message = one_line_error(lambda: claim_run_folder(accelerator, tmp_path / "run"))
    assert message.startswith(f"{tmp_path}/run: could not be written (")
    assert "Read-only file system" in message or "Permission denied" in message
    assert not (tmp_path / "run").exists()


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(accelerator, tiny_filesystem):
    out = tiny_filesystem(64 * 1024) / "run"
    claim_run_folder(accelerator, out)
    (out / "filler").write_bytes(b"\0" * 60 * 1024)
    while True:  # fill the last blocks too
        try:
            with open(out / f"filler{len(list(out.iterdir()))}", "wb") as f:
                f.write(b"\0" * 4096)
        except OSError:
            break
    message = one_line_error(lambda: save_config(Config(), out / "config.yaml"))
    assert message == f"{out}/config.yaml: could not be written (No space left on device): " \
                      "expected a writable folder with free space"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".lock"]


def test_a_torn_last_metrics_line_is_dropped_on_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [{"epoch": 1, "step": 10, "val/acc": 0.5}, {"epoch": 2, "step": 20, "val/acc": 0.6}]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"epoch": 3, "step": 3')  # killed mid-append
    truncate_metrics(path, 20)
    assert [json.loads(line) for line in path.read_text().splitlines()] == records
    truncate_metrics(path, 10)
    assert [json.loads(line) for line in path.read_text().splitlines()] == records[:1]
