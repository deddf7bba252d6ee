"""A run folder is emnist_dist's own: what a real run wrote is recognised as the package's, anything else where a
run writes is refused before training (exit 2, one line, the folder untouched), and ``--resume never`` discards
only what the package wrote. Real runs of the command line's entry point (in this process: the claim is the run's,
not the process's); the reference is the folder's bytes before the run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.train_runs import TINY, train_in_process

pytestmark = pytest.mark.slow


def folder_bytes(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_a_run_never_overwrites_or_deletes_what_emnist_dist_did_not_write(tmp_path):
    out = tmp_path / "run"
    args = [*TINY, "--data.synthetic_train_per_class", "10", "--train.epochs", "1", "--train.max_steps", "2",
            "--data.cache_dir", str(tmp_path / "cache"), "--output_dir", str(out)]
    first = train_in_process(args)
    assert first.returncode == 0, first.stderr[-2000:]

    # Another project's checkpoint beside ours, the user's file in model/, a final.json from something else.
    other = b"another project's weights"
    (out / "checkpoints" / "other_project.ckpt").write_bytes(other)
    (out / "model" / "important.bin").write_bytes(b"the user's")
    own_final = (out / "final.json").read_bytes()
    (out / "final.json").write_text('{"accuracy": 0.91}\n')
    before = folder_bytes(out)
    refused = train_in_process([*args, "--resume", "never"])
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and len(errors) == 1 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert errors[0] == (f"error: output_dir={out} holds what emnist_dist did not write, where a run writes its own "
                         "files: final.json (expected a JSON object of test metrics); model/important.bin (expected "
                         "only model.safetensors, config.json, README.md, model.onnx): move them away, or use another "
                         "output_dir")
    assert folder_bytes(out) == before

    # Moved away (and final.json the run's own again): the run starts over, discarding only its own files.
    (out / "model" / "important.bin").unlink()
    (out / "final.json").write_bytes(own_final)
    again = train_in_process([*args, "--resume", "never"])
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"discarded the previous run's checkpoints, metrics.jsonl, final.json in {out}" in again.stdout
    assert f"kept what emnist_dist did not write in {out}/checkpoints: other_project.ckpt" in again.stdout
    assert (out / "checkpoints" / "other_project.ckpt").read_bytes() == other
