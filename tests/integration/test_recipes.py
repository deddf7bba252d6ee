"""Every shipped recipe in configs/, trained end to end through the CLI as users run it, trackers on.

Each file is changed only by data, model, size and epoch overrides (synthetic glyphs, timm's tiny
test_efficientnet at 32 px, 2 epochs; the CPU recipe keeps its own small model and trains on real
handwriting, scikit-learn's digits written as MNIST-format files); the trackers it names stay on: W&B offline (WANDB_MODE=offline,
no API key) and TensorBoard. What the trackers hold is read back with their own readers -- W&B's
documented `wandb leet inspect --json` for an offline run's transaction log, TensorBoard's
EventAccumulator for the event files -- and compared with the run's own metrics.jsonl and final.json.
One recipe is stopped by SIGTERM and resumed: both halves must log to one W&B run.
"""

from __future__ import annotations

import functools
import io
import json
import math
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers.mnist_format import write_sklearn_digits
from tests.helpers.train_runs import REPO, env_for_tests, final, metrics_lines, train_cmd

pytestmark = pytest.mark.slow

RECIPES = sorted(p.name for p in (REPO / "configs").glob("*.yaml"))
INTERRUPTED = "byclass_b3.yaml"  # trained in two halves: SIGTERM, then --resume auto
CPU_RECIPE = "cpu.yaml"  # its model is the recipe: only its data, size and epochs shrink
EXIT_PREEMPTED = 75
RUN_TIMEOUT = 300


def shrink(name: str, root: Path, out: Path) -> list[str]:
    """Data, model, size and epoch overrides; nothing else of the recipe changes."""
    cache = root / "cache"
    if name == CPU_RECIPE:
        digits = root / "sklearn-digits"
        if not digits.exists():
            write_sklearn_digits(digits)
        return ["--data.source", str(digits), "--data.cache_dir", str(cache), "--data.image_size", "32",
                "--train.epochs", "2", "--output_dir", str(out)]
    return ["--data.source", "synthetic", "--data.cache_dir", str(cache), "--data.synthetic_train_per_class", "12",
            "--data.synthetic_test_per_class", "1", "--data.image_size", "32", "--model.name", "test_efficientnet",
            "--model.pretrained", "false", "--train.epochs", "2", "--train.batch_size", "32",
            "--train.eval_batch_size", "256", "--output_dir", str(out)]


@dataclass
class RecipeRun:
    recipe: dict
    out: Path
    logs: list[str]  # the console output of each process, in order


def tracker_env(tmp_path: Path) -> dict:
    """The tests' environment with no W&B key anywhere: log.wandb_mode auto must choose offline."""
    env = env_for_tests(tmp_path)
    env.pop("WANDB_API_KEY", None)
    env.pop("WANDB_BASE_URL", None)
    env.update(NETRC=str(tmp_path / "no-netrc"), WANDB_CACHE_DIR=str(tmp_path / "wandb-cache"),
               WANDB_CONFIG_DIR=str(tmp_path / "wandb-config"))
    return env


def run_to_end(cmd: list[str], env: dict) -> str:
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


def run_and_stop(cmd: list[str], env: dict) -> str:
    """Start a run, send SIGTERM once training has started, return its output; it must exit 75."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, deadline = [], time.monotonic() + RUN_TIMEOUT
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("training "):
                proc.send_signal(signal.SIGTERM)
                break
            assert time.monotonic() < deadline, "".join(lines)
        rest, _ = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(lines) + rest
    assert proc.returncode == EXIT_PREEMPTED, output[-3000:]
    return output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """trained(recipe file name) -> RecipeRun; each recipe is trained once for the whole module."""
    root = tmp_path_factory.mktemp("recipes")
    runs: dict[str, RecipeRun] = {}

    def _trained(name: str) -> RecipeRun:
        if name not in runs:
            out = root / Path(name).stem
            cmd = train_cmd(["--config", f"configs/{name}", *shrink(name, root, out)])
            env = tracker_env(root)
            if name == INTERRUPTED:
                logs = [run_and_stop(cmd, env), run_to_end([*cmd, "--resume", "auto"], env)]
            else:
                logs = [run_to_end(cmd, env)]
            runs[name] = RecipeRun(yaml.safe_load((REPO / "configs" / name).read_text()), out, logs)
        return runs[name]

    return _trained


@functools.cache
def wandb_records(run_folder: Path) -> list[dict]:
    """The records of an offline run's .wandb log, through W&B's own reader (read once per folder)."""
    result = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_folder)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def wandb_offline_runs(out: Path) -> list[Path]:
    return sorted((out / "wandb").glob("offline-run-*"))


def wandb_history(out: Path) -> list[dict]:
    """Every history row of every offline run folder of the run, in order."""
    return [record["history"]["item"] for folder in wandb_offline_runs(out) for record in wandb_records(folder)
            if record["type"] == "history"]


@functools.cache
def tensorboard_events(out: Path, project: str) -> EventAccumulator:
    """The run's TensorBoard event files (Accelerate writes them per project), through TensorBoard's own reader
    (read once per run)."""
    events = EventAccumulator(str(out / "tensorboard" / project))
    events.Reload()
    return events


def tensorboard_scalars(out: Path, project: str) -> dict[str, dict[int, float]]:
    """tag -> {step: value} from the run's TensorBoard event files."""
    events = tensorboard_events(out, project)
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def assert_holds_metrics(logged: dict[str, dict[int, float]], out: Path) -> None:
    """A tracker's {key: {step: value}} holds every validation record of metrics.jsonl and the test metrics
    of final.json, at their steps (float32 in TensorBoard)."""
    records = metrics_lines(out)
    assert records and "val/acc" in records[-1]
    for record in records:
        for key, value in record.items():
            if key.startswith("val/"):
                assert logged[key][record["step"]] == pytest.approx(value, rel=1e-6, abs=1e-7), key
    result = final(out)
    for key in ("test/acc", "test/balanced_acc", "test/macro_f1", "test/weighted_f1", "test/loss"):
        assert logged[key][result["step"]] == pytest.approx(result[key], rel=1e-6, abs=1e-7), key
    assert set(logged["val/acc"]) == {r["step"] for r in records}  # one point per evaluation, none repeated


def by_key_and_step(rows: list[dict]) -> dict[str, dict[int, float]]:
    logged: dict[str, dict[int, float]] = {}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
                logged.setdefault(key, {})[row["_step"]] = value
    return logged


def test_the_shipped_recipes_are_the_ones_tested():
    assert {"quickstart.yaml", "byclass_b3.yaml", "balanced_b2.yaml", CPU_RECIPE} <= set(RECIPES)
    assert INTERRUPTED in RECIPES


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_trains_and_its_trackers_hold_the_metrics(trained, name):
    run = trained(name)
    trackers = run.recipe.get("log", {}).get("trackers", ["tensorboard"])
    assert set(trackers) <= {"wandb", "tensorboard"}, f"{name}: add a reader for {trackers}"
    assert final(run.out)["split"] == run.recipe["data"]["split"]
    project = run.recipe.get("log", {}).get("project", "emnist_dist")

    assert (run.out / "tensorboard").is_dir() == ("tensorboard" in trackers)
    if "tensorboard" in trackers:
        assert_holds_metrics(tensorboard_scalars(run.out, project), run.out)
        # the confusion matrix the tracker got is the run folder's picture, pixel for pixel
        (logged,) = tensorboard_events(run.out, project).Images("test/confusion_matrix")
        assert logged.step == final(run.out)["step"]
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(logged.encoded_image_string))),
                                      np.asarray(Image.open(run.out / "confusion_matrix.png").convert("RGB")))

    assert (run.out / "wandb").is_dir() == ("wandb" in trackers)
    if "wandb" in trackers:
        assert_holds_metrics(by_key_and_step(wandb_history(run.out)), run.out)
        run_record = next(r["run"] for r in wandb_records(wandb_offline_runs(run.out)[-1]) if r["type"] == "run")
        assert run_record["project"] == project


def test_a_stopped_and_resumed_recipe_continues_the_same_wandb_run(trained):
    run = trained(INTERRUPTED)
    stopped, resumed = run.logs
    stop_step = int(re.search(r"SIGTERM received: checkpointing at step (\d+)", stopped).group(1))
    assert re.search(rf"resumed from \S+step_0*{stop_step} at step {stop_step}\b", resumed), resumed[-2000:]
    folders = wandb_offline_runs(run.out)
    assert len(folders) == 2  # one offline folder per process ...
    run_ids = {r["run"]["run_id"] for folder in folders for r in wandb_records(folder) if r["type"] == "run"}
    assert run_ids == {(run.out / "wandb_run_id").read_text().strip()}  # ... and one W&B run
    (run_id,) = run_ids
    assert all(folder.name.endswith(f"-{run_id}") for folder in folders)


def test_the_cpu_recipe_trains_its_own_model_on_real_handwriting(trained):
    run = trained(CPU_RECIPE)
    result = final(run.out)
    assert result["data"].startswith("MNIST-format mnist") and not result["synthetic"]
    assert result["test/num_samples"] == 450  # the digits' stratified quarter
    exported = json.loads((run.out / "model" / "config.json").read_text())
    assert exported["architecture"] == run.recipe["model"]["name"]
    assert exported["label_names"] == list("0123456789")
    assert result["best_weights"] in ("raw", "ema") and "val_ema/acc" in metrics_lines(run.out)[-1]
