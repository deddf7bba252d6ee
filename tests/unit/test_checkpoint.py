"""What the checkpoint functions make of checkpoint folders written by hand: the manifest (sizes and SHA-256 by
hashlib) and the run state are built here, not by the saver, so each verdict is checked against the layout the
module docstring describes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from emnist_dist.train.checkpoint import is_own_checkpoint, published_checkpoints, sweep_unfinished, verify_checkpoint

PARTS = {"model.safetensors": b"weights", "optimizer.pt": b"moments", "scheduler.pt": b"schedule"}


def write_checkpoint(path: Path, world_size: int = 1, ranks: int | None = None, manifest_format: int = 1,
                     extra: dict | None = None) -> Path:
    """A checkpoint folder with ``ranks`` (default ``world_size``) random-state files, listed in its manifest."""
    path.mkdir(parents=True)
    run_state = json.dumps({"format": 1, "step": 3, "world_size": world_size, "identity": {"seed": 0}}).encode()
    files = {**PARTS, **{f"rank_{r}.pt": b"streams %d" % r for r in range(world_size if ranks is None else ranks)},
             "run_state.json": run_state}
    for name, data in files.items():
        (path / name).write_bytes(data)
    listed = {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()} for name, data in files.items()}
    manifest = {"format": manifest_format, "step": 3, "files": {**listed, **(extra or {})}}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def test_an_intact_checkpoint_of_two_processes_passes(tmp_path):
    assert verify_checkpoint(write_checkpoint(tmp_path / "step_00000003", world_size=2)) is None


def test_a_random_state_file_of_a_process_the_run_state_counts_is_required(tmp_path):
    path = write_checkpoint(tmp_path / "step_00000003", world_size=3, ranks=1)
    assert verify_checkpoint(path) == "rank_1.pt is missing"


def test_a_file_that_is_no_folder_is_not_a_checkpoint(tmp_path):
    (tmp_path / "step_00000003").write_bytes(b"a file")
    assert verify_checkpoint(tmp_path / "step_00000003") == "not a folder"


def test_another_checkpoint_format_is_named(tmp_path):
    path = write_checkpoint(tmp_path / "step_00000003", manifest_format=2)
    assert verify_checkpoint(path) == "checkpoint format 2: expected 1"


@pytest.mark.parametrize("name", ["../outside.bin", "sub/inside.bin"])
def test_a_manifest_entry_that_is_not_a_file_of_the_folder_itself_is_never_read(tmp_path, name):
    """Both files exist and match their entries: only the folder's own files are part of a checkpoint."""
    data = b"a file beside the checkpoint"
    entry = {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}}
    path = write_checkpoint(tmp_path / "step_00000003", extra=entry)
    (tmp_path / "outside.bin").write_bytes(data)
    (path / "sub").mkdir()
    (path / "sub" / "inside.bin").write_bytes(data)
    assert verify_checkpoint(path) == f"{name} is missing"


def test_checkpoints_are_ordered_by_step_and_generation_as_numbers(tmp_path):
    names = ["step_100000000", "step_00000001_g10", "step_00000002", "step_00000001_g2", "step_00000001"]
    for name in names:
        (tmp_path / name).mkdir()
    (tmp_path / "step_00000003").write_bytes(b"a file")  # no folder: not a checkpoint
    assert [p.name for p in published_checkpoints(tmp_path)] == [
        "step_00000001", "step_00000001_g2", "step_00000001_g10", "step_00000002", "step_100000000"]


def test_only_a_folder_of_a_checkpoint_name_whose_manifest_names_its_step_is_own(tmp_path):
    ours = write_checkpoint(tmp_path / "step_00000003")
    assert is_own_checkpoint(ours)
    (tmp_path / "step_00000004").mkdir()  # no manifest
    other = write_checkpoint(tmp_path / "other")  # a manifest of step 3, another name
    ours.rename(tmp_path / "step_00000005")  # a manifest of another step
    (tmp_path / "step_00000006").symlink_to(tmp_path / "step_00000005")  # a link to a checkpoint: not deleted through
    assert not any(is_own_checkpoint(tmp_path / name) for name in ("step_00000004", other, "step_00000005",
                                                                    "step_00000006"))


def test_the_sweep_removes_only_what_killed_saves_and_deletions_left(tmp_path):
    left = [tmp_path / ".step_00000003.partial", tmp_path / ".step_00000002.deleting"]
    kept = [tmp_path / "step_00000002", tmp_path / "notes", tmp_path / ".cache"]
    for path in left + kept:
        (path / "sub").mkdir(parents=True)
    assert sorted(sweep_unfinished(tmp_path)) == sorted(left)
    assert sorted(tmp_path.iterdir()) == sorted(kept)
