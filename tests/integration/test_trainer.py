"""The training run end to end: files, DDP over two real gloo processes, exact resume, failures."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest
import torch
import yaml
from sklearn.metrics import balanced_accuracy_score, f1_score

from emnist_dist.data import class_names
from emnist_dist.data.fonts import font_fingerprint
from emnist_dist.model_folder.artifact import load_model
from emnist_dist.data.resize import to_model_input
from tests.helpers.train_runs import (REPO, TINY, env_for_tests, final, free_port, metrics_lines, run_train, train_cmd,
                                      train_in_process, weights)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


# Every random stream a resume must restore: EMA, affine augmentation, dropout, MixUp/CutMix (TINY's default).
REFERENCE = [*TINY, "--model.ema", "true", "--model.ema_decay", "0.9", "--augment.degrees", "10",
             "--augment.translate", "0.05", "--model.drop_rate", "0.2"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache):
    """One uninterrupted single-process run of REFERENCE, shared: (its output, its folder)."""
    tmp = tmp_path_factory.mktemp("reference")
    out = tmp / "run"
    result = run_train([*REFERENCE, "--data.cache_dir", cache, "--output_dir", str(out)], tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, out


def test_single_process_run_writes_the_contract(reference, cache):
    result, out = reference
    assert "SYNTHETIC" in result.stdout  # never passed off as EMNIST

    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["name"] == "test_efficientnet" and saved["data"]["val_fraction"] == 0.1

    records = metrics_lines(out)
    assert [r["epoch"] for r in records] == [1, 2]
    for key in ("epoch", "step", "val/acc", "val/balanced_acc", "val/macro_f1", "train/loss", "lr", "images_per_s"):
        assert key in records[-1]

    result_final = final(out)
    for key in ("test/acc", "test/balanced_acc", "test/macro_f1", "test/weighted_f1", "world_size", "test/num_samples"):
        assert key in result_final
    assert result_final["world_size"] == 1 and result_final["test/num_samples"] == 47 * 3
    assert result_final["synthetic"] is True and result_final["step"] == records[-1]["step"]
    balanced_fonts = font_fingerprint("".join(class_names("balanced")))  # the stand-in's font set, on record
    assert result_final["data"].endswith(f"fonts sha256:{balanced_fonts[:16]}")

    # The exported folder alone reproduces the reported test accuracy (re-derived here, not read back).
    model, info = load_model(out / "model")
    from emnist_dist.data import load_emnist
    from emnist_dist.config import DataConfig

    data = load_emnist(DataConfig(split="balanced", source="synthetic", cache_dir=cache, image_size=32,
                                  synthetic_train_per_class=20, synthetic_test_per_class=3), seed=0, progress=False)
    assert info.class_names == data.class_names and info.mean == pytest.approx(data.mean)
    with torch.no_grad():
        preds = model(to_model_input(data.test_images, info.image_size, info.mean, info.std)).argmax(1)
        val_preds = model(to_model_input(data.val_images, info.image_size, info.mean, info.std)).argmax(1)
    assert float((preds == data.test_labels).float().mean()) == pytest.approx(result_final["test/acc"], abs=1e-6)
    assert result_final["test/balanced_acc"] == pytest.approx(balanced_accuracy_score(data.test_labels, preds))
    assert result_final["test/macro_f1"] == pytest.approx(f1_score(data.test_labels, preds, average="macro"))
    # The exported weights are the best by validation: their accuracy on the validation part (re-derived) is the
    # one metrics.jsonl recorded for them at their epoch, and scikit-learn's F1 / balanced accuracy agree with it.
    # best_epoch: the first epoch of the highest validation accuracy of either weights (by hand from metrics.jsonl)
    scores = [max(r["val/acc"], r["val_ema/acc"]) for r in records]
    assert result_final["best_epoch"] == records[scores.index(max(scores))]["epoch"]
    best = next(r for r in records if r["epoch"] == result_final["best_epoch"])
    prefix = "val" if result_final["best_weights"] == "raw" else "val_ema"
    assert best[f"{prefix}/acc"] == pytest.approx(float((val_preds == data.val_labels).float().mean()), abs=1e-6)
    assert best[f"{prefix}/acc"] == pytest.approx(result_final["best_val_acc"])
    assert best[f"{prefix}/balanced_acc"] == pytest.approx(balanced_accuracy_score(data.val_labels, val_preds))
    assert best[f"{prefix}/macro_f1"] == pytest.approx(f1_score(data.val_labels, val_preds, average="macro"))

    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert "best_model.safetensors" in checkpoints
    assert not any(name.startswith(".") for name in checkpoints)  # no unfinished or half-deleted checkpoint
    # 940 glyphs - 94 for validation = 846 = 26 batches of 32 per epoch: one checkpoint at the end of each of
    # the 2 epochs, both kept (keep_last=2), and nothing else.
    steps = sorted(int(re.fullmatch(r"step_(\d+)", n).group(1)) for n in checkpoints if n.startswith("step_"))
    assert steps == [26, 52] and result_final["step"] == 52


def test_two_real_processes_shard_exactly_and_stay_in_sync(tmp_path, cache):
    out = tmp_path / "ddp"
    result = run_train([*TINY, "--data.cache_dir", cache, "--output_dir", str(out)], tmp_path, processes=2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on 2 process(es)" in result.stdout
    result_final = final(out)
    assert result_final["world_size"] == 2  # measured inside the run, not assumed
    assert result_final["test/num_samples"] == 47 * 3  # odd count: nothing dropped, padded or duplicated
    assert result_final["ranks_in_sync"] is True


def test_one_ddp_step_equals_one_single_process_step(tmp_path, cache):
    """Global batch 32 split 16/16 over two ranks == the same 32 in one process (no MixUp, no dropout,
    no BatchNorm: test_vit uses LayerNorm; SGD so the update is linear in the gradient)."""
    args = [*TINY, "--data.cache_dir", cache, "--model.name", "test_vit", "--model.drop_rate", "0",
            "--model.drop_path_rate", "0", "--augment.mix_prob", "0", "--train.optimizer", "sgd",
            "--train.lr", "0.5", "--train.warmup_epochs", "0", "--train.max_steps", "1", "--data.val_fraction", "0"]
    one = run_train([*args, "--output_dir", str(tmp_path / "one")], tmp_path)
    two = run_train([*args, "--output_dir", str(tmp_path / "two")], tmp_path, processes=2)
    assert one.returncode == 0 and two.returncode == 0, (one.stderr[-2000:], two.stderr[-2000:])
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert final(tmp_path / "two")["world_size"] == 2
    assert final(tmp_path / "one")["step"] == final(tmp_path / "two")["step"] == 1


def test_sigterm_mid_epoch_then_resume_is_bit_exact(tmp_path, cache, reference):
    args = [*REFERENCE, "--data.cache_dir", cache]
    _, ref = reference
    out = tmp_path / "interrupted"
    proc = subprocess.Popen(train_cmd([*args, "--output_dir", str(out)]), cwd=REPO, env=env_for_tests(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # wait until training is a few steps into the first epoch
        if line.startswith("step 3/"):
            proc.send_signal(signal.SIGTERM)
            break
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 75, stderr[-2000:]
    assert "SIGTERM received" in stdout
    (checkpoint,) = [p for p in (out / "checkpoints").iterdir() if p.name.startswith("step_")]
    stopped_at = int(checkpoint.name.split("_")[1])
    assert 3 <= stopped_at < 26  # mid-epoch: an epoch has 26 steps
    assert not (out / "final.json").exists()

    resumed = run_train([*args, "--output_dir", str(out), "--resume", "auto"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed from {checkpoint}" in resumed.stdout
    a, b = weights(ref), weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    assert final(out)["step"] == final(ref)["step"]
    assert [r["val/acc"] for r in metrics_lines(out)] == [r["val/acc"] for r in metrics_lines(ref)]


def test_a_dying_rank_ends_the_job_nonzero_within_a_minute(tmp_path, cache):
    args = [*TINY, "--data.cache_dir", cache, "--train.epochs", "50", "--output_dir", str(tmp_path / "run")]
    launcher = subprocess.Popen(train_cmd(args, processes=2), cwd=REPO, env=env_for_tests(tmp_path),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in launcher.stdout:
        if line.startswith("step 2/"):
            break
    workers = [p for p in psutil.Process(launcher.pid).children(recursive=True)
               if p.environ().get("RANK") == "1"]
    assert workers, "rank 1 not found among the launcher's children"
    workers[0].kill()
    start = time.monotonic()
    launcher.stdout.close()
    code = launcher.wait(timeout=60)
    assert code != 0 and time.monotonic() - start < 60


def test_nonfinite_loss_stops_naming_the_step(tmp_path, cache):
    out = tmp_path / "nan"
    # A checkpoint is due at step 5, the first sync point: by then the weights are long non-finite.
    result = train_in_process([*TINY, "--data.cache_dir", cache, "--output_dir", str(out), "--train.optimizer", "sgd",
                               "--train.lr", "1e30", "--train.warmup_epochs", "0", "--train.clip_grad_norm", "null",
                               "--checkpoint.every_steps", "5"])
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    # Step 1's loss comes from the initial weights (finite); its update by 1e30 x the gradient overflows float32,
    # so step 2 is the first non-finite one, in epoch 1 (epochs count from 1, as in every log line).
    assert "train.loss is not finite at step 2 (epoch 1)" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "final.json").exists() and not (out / "model").exists()
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())


@pytest.mark.parametrize("extra, culprit", [
    (["--model.name", "efficientnet_b99"], "efficientnet_b99"),
    (["--train.batch_size", "33"], "train.batch_size"),
])  # unknown keys and wrong types: tests/test_config.py (in-process, and once through the CLI)
def test_bad_config_is_one_line_and_writes_nothing(tmp_path, cache, extra, culprit):
    out = tmp_path / "bad"
    result = train_in_process([*TINY, "--data.cache_dir", cache, "--output_dir", str(out), *extra])
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error:") and culprit in lines[-1], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_a_batch_that_does_not_split_into_even_shards_is_refused(tmp_path, cache):
    out = tmp_path / "bad"
    result = run_train([*TINY, "--data.cache_dir", cache, "--output_dir", str(out), "--train.batch_size", "34"],
                       tmp_path, processes=2)
    # Both ranks refuse with one line and exit 2 (the launcher then reports the failed ranks in its own words).
    error = "error: train.batch_size=34 with 2 processes: each process needs an even, equal share; expected a multiple of 4"
    assert result.returncode != 0 and error in result.stderr.splitlines(), result.stderr[-3000:]
    assert "exitcode  : 2" in result.stderr.split("Root Cause")[-1]
    assert "emnist_dist/" not in result.stderr  # no traceback through our code
    assert not out.exists()


# Two real gloo ranks compare the weights of a small network (with BatchNorm buffers) that rank 1 changes in
# three ways a DDP desync could: one weight off by 1e-3, two weights swapped (the same sum), a buffer moved.
IN_SYNC_PROBE = r"""
import json, torch
from accelerate import Accelerator
from emnist_dist.train.distributed import ranks_in_sync

accelerator = Accelerator(cpu=True)
def network():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.LazyLinear(3))
changes = {"none": lambda n: None,
           "one_weight": lambda n: n[0].weight.data[0, 0, 0, 0].add_(1e-3),
           "two_swapped": lambda n: n[0].weight.data[0, 0, 0, :2].copy_(n[0].weight.data[0, 0, 0, :2].flip(0)),
           "buffer": lambda n: n[1].running_mean.add_(0.5)}
seen = {}
for name, change in changes.items():
    net = network()
    net(torch.zeros(1, 1, 5, 5))
    if accelerator.process_index == 1:
        with torch.no_grad():
            change(net)
    seen[name] = ranks_in_sync(accelerator, net)
if accelerator.is_main_process:
    print(json.dumps({"world_size": accelerator.num_processes, **seen}))
"""


def test_ranks_in_sync_tells_identical_weights_from_each_kind_of_difference(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(IN_SYNC_PROBE)
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
                             str(free_port()), str(script)], cwd=REPO, env=env_for_tests(tmp_path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"world_size": 2, "none": True, "one_weight": False, "two_swapped": False, "buffer": False}
