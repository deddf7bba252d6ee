"""Resuming real training runs: 1 -> 2 -> 1 processes, a refused change of settings, a damaged newest checkpoint.

The reference is the same run trained without interruption in one process. The single-process runs go through
the command line's entry point inside the test's process (the claim is the run's, not the process's); the
two-process run is a real ``accelerate launch``. Without dropout,
MixUp or augmentation (and with LayerNorm, so no per-rank batch statistics), DDP over two
processes computes the single-process step up to float rounding, so a resumed run that kept the
global batch and the sample order ends with the reference's weights; any other batch or order
would give visibly different ones.
"""

from __future__ import annotations

import pytest
import torch
import yaml

from tests.helpers.train_runs import TINY, final, run_train, train_in_process, weights

pytestmark = pytest.mark.slow

DETERMINISTIC = [*TINY, "--model.name", "test_vit", "--model.drop_rate", "0", "--model.drop_path_rate", "0",
                 "--augment.mix_prob", "0", "--train.optimizer", "sgd", "--train.lr", "0.05",
                 "--train.warmup_epochs", "0", "--data.val_fraction", "0"]


def test_a_run_resumes_across_process_counts_and_refuses_changed_settings(tmp_path):
    args = [*DETERMINISTIC, "--data.cache_dir", str(tmp_path / "cache")]
    reference = train_in_process([*args, "--output_dir", str(tmp_path / "reference"), "--train.max_steps", "6"])
    assert reference.returncode == 0, reference.stderr[-2000:]

    out = tmp_path / "run"
    first = train_in_process([*args, "--output_dir", str(out), "--train.max_steps", "2"])
    assert first.returncode == 0, first.stderr[-2000:]

    # Another model, learning rate and seed in the same folder: refused, naming them; config.yaml untouched.
    config_before = (out / "config.yaml").read_bytes()
    changed = train_in_process([*args, "--output_dir", str(out), "--train.max_steps", "4", "--model.name",
                                "test_efficientnet", "--train.lr", "0.01", "--seed", "1"])
    errors = [line for line in changed.stderr.splitlines() if line.startswith("error:")]
    assert changed.returncode == 2 and len(errors) == 1 and "Traceback" not in changed.stderr, changed.stderr[-2000:]
    assert errors[0] == (f"error: output_dir={out} holds a run that was trained with other settings: "
                         "model.name (test_vit -> test_efficientnet), seed (0 -> 1), train.lr (0.05 -> 0.01); these "
                         "cannot change on resume: use a new output_dir, or --resume never to start over")
    assert (out / "config.yaml").read_bytes() == config_before

    # 1 -> 2 processes, with a longer run and a new checkpoint cadence (both may change on resume).
    second = run_train([*args, "--output_dir", str(out), "--train.max_steps", "4", "--checkpoint.every_steps", "1"],
                       tmp_path, processes=2)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "written by 1 process(es), this run has 2: same global batch and sample order" in second.stdout
    assert final(out)["world_size"] == 2 and final(out)["ranks_in_sync"] is True and final(out)["step"] == 4
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["max_steps"] == 4 and saved["checkpoint"]["every_steps"] == 1  # config.yaml tells the truth

    # The newest checkpoint (step 4) is damaged and metrics.jsonl ends in a torn line: 2 -> 1 from step 3.
    newest = sorted((out / "checkpoints").glob("step_*"))[-1]
    assert newest.name.startswith("step_00000004")
    model_file = newest / "model.safetensors"
    model_file.write_bytes(model_file.read_bytes()[:1000])
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 1, "st')
    third = train_in_process([*args, "--output_dir", str(out), "--train.max_steps", "6"])
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"warning: checkpoint {newest} is damaged (model.safetensors has 1000 bytes" in third.stdout
    assert f"resumed from {out / 'checkpoints' / 'step_00000003'} at step 3" in third.stdout
    assert "written by 2 process(es), this run has 1" in third.stdout
    assert final(out)["step"] == 6 and final(out)["world_size"] == 1
    assert "st" not in (out / "metrics.jsonl").read_text()

    expected, got = weights(tmp_path / "reference"), weights(out)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-5)
