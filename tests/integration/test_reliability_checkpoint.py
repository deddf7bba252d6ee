"""Checkpoints and the run folder under attack and under faults: planted pickles, damaged files, kill -9
mid-save, a full disk, a read-only folder, a second run in the same folder, a torn metrics line.

The saving and loading are the trainer's own functions on a tiny but complete training state
(tests/helpers/tiny_training.py); the reference for "resumed correctly" is the same state trained
on without interruption.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import random
import shutil
import signal
import time
from pathlib import Path

import pytest
import timm
import torch
from accelerate import Accelerator
from filelock import FileLock
from PIL import Image
from safetensors.torch import load_file

from emnist_dist.config import Config, save_config
from emnist_dist.errors import UserError
from emnist_dist.model_folder.artifact import ModelInfo, save_model
from emnist_dist.train.checkpoint import (
    checkpoint_step,
    load_checkpoint,
    published_checkpoints,
    save_checkpoint,
    verify_checkpoint,
)
from emnist_dist.cli import log_to_console
from emnist_dist.train.resume import choose_resume
from emnist_dist.train.run_folder import RunFolder, run_identity
from tests.helpers.tiny_training import TinyRun

IDENTITY = {"model.name": "tiny", "train.lr": 0.001}
FILES = ["ema.safetensors", "manifest.json", "model.safetensors", "optimizer.pt", "rank_0.pt", "run_state.json",
         "scheduler.pt"]


@pytest.fixture(scope="module")
def accelerator():
    return Accelerator(cpu=True)


@pytest.fixture(autouse=True)
def console(capsys):
    """The package's log lines on the (captured) stdout, as the command line shows them."""
    log_to_console()


def save(accelerator, run, out, keep_last=3, protect_step=None):
    return save_checkpoint(accelerator, RunFolder(out).checkpoints, run.progress.step, run.parts, identity=IDENTITY,
                           keep_last=keep_last, protect_step=protect_step)


def published(out: Path) -> list[Path]:
    """The published checkpoints of run folder ``out``, oldest first."""
    return published_checkpoints(RunFolder(out).checkpoints)


def trained(accelerator, steps, seed=1, width=16):
    run = TinyRun(accelerator, seed=seed, width=width)
    for _ in range(steps):
        run.step()
    return run


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"differ: {different[:5]}"


def one_line_error(call) -> str:
    with pytest.raises(UserError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message
    return message


# --- what a checkpoint is ----------------------------------------------------------------------


def test_resume_continues_exactly_like_the_uninterrupted_run(accelerator, tmp_path):
    uninterrupted = trained(accelerator, 2)
    save(accelerator, uninterrupted, tmp_path)
    for _ in range(3):
        uninterrupted.step()
    expected = uninterrupted.snapshot()

    resumed = TinyRun(accelerator, seed=2)  # other initial weights and random streams
    path = choose_resume(accelerator, RunFolder(tmp_path), "auto", IDENTITY)
    assert load_checkpoint(accelerator, path, resumed.parts, seed=0) == 1
    assert resumed.progress.step == 2
    for _ in range(3):
        resumed.step()
    assert_same(resumed.snapshot(), expected)


def test_every_file_is_safetensors_json_or_plain_tensors_and_the_manifest_lists_them(accelerator, tmp_path):
    path = save(accelerator, trained(accelerator, 1), tmp_path)
    assert sorted(p.name for p in path.iterdir()) == FILES
    for name in ("model.safetensors", "ema.safetensors"):
        load_file(path / name)
    for name in ("optimizer.pt", "scheduler.pt", "rank_0.pt"):
        torch.load(path / name, weights_only=True)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["files"] == {
        name: {"bytes": (path / name).stat().st_size, "sha256": hashlib.sha256((path / name).read_bytes()).hexdigest()}
        for name in FILES if name != "manifest.json"
    }


class Payload:
    """Unpickling this creates ``marker``: the shape of any code-running pickle."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def planted(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A live payload file (checked: a plain unpickler runs it) and the marker it would create."""
    marker = tmp_path / f"pwned-{name}"
    payload = tmp_path / f"payload-{name}"
    if name.endswith(".pt"):
        torch.save({"state": Payload(marker)}, payload)
        torch.load(payload, weights_only=False)
    else:
        payload.write_bytes(pickle.dumps(Payload(marker)))
        pickle.loads(payload.read_bytes())
    assert marker.exists(), "the payload is not live: the test would prove nothing"
    marker.unlink()
    return payload, marker


def restate_manifest(path: Path, name: str) -> None:
    """What an attacker who rewrites the manifest too would do."""
    manifest = json.loads((path / "manifest.json").read_text())
    data = (path / name).read_bytes()
    manifest["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (path / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("name", ["rank_0.pt", "optimizer.pt", "scheduler.pt"])
def test_a_planted_pickle_with_a_matching_manifest_is_refused_without_running(accelerator, tmp_path, name):
    path = save(accelerator, trained(accelerator, 1), tmp_path / "run")
    payload, marker = planted(tmp_path, name)
    shutil.copy(payload, path / name)
    restate_manifest(path, name)
    assert verify_checkpoint(path) is None  # the manifest cannot tell: loading must refuse it
    chosen = choose_resume(accelerator, RunFolder(tmp_path / "elsewhere"), str(path), IDENTITY)
    message = one_line_error(lambda: load_checkpoint(accelerator, chosen, TinyRun(accelerator, 0).parts, seed=0))
    assert message.startswith(f"checkpoint {path}: cannot be loaded (") and "Weights only load failed" in message
    assert not marker.exists()


def test_a_planted_pickle_is_refused_before_loading(accelerator, tmp_path, capsys):
    path = save(accelerator, trained(accelerator, 1), tmp_path / "run")
    payload, marker = planted(tmp_path, "rank_0.pt")
    shutil.copy(payload, path / "rank_0.pt")
    message = one_line_error(lambda: choose_resume(accelerator, RunFolder(tmp_path / "elsewhere"), str(path), IDENTITY))
    assert message.startswith(f"resume={path}: rank_0.pt has 1")
    message = one_line_error(lambda: choose_resume(accelerator, RunFolder(tmp_path / "run"), "auto", IDENTITY))
    assert "none of its 1 checkpoints is intact" in message
    assert capsys.readouterr().out.count("damaged") == 1
    assert not marker.exists()


@pytest.mark.parametrize("name", ["custom_checkpoint_0.pkl", "random_states_0.pkl", ".DS_Store"])
def test_a_file_the_manifest_does_not_list_is_never_read_and_costs_no_checkpoint(accelerator, tmp_path, name, capsys):
    run = trained(accelerator, 1)
    save(accelerator, run, tmp_path)
    run.step()
    newest = save(accelerator, run, tmp_path)
    marker = None
    if name.endswith(".pkl"):  # what accelerate's load_state would unpickle
        payload, marker = planted(tmp_path, name)
        shutil.copy(payload, newest / name)
    else:  # what macOS Finder leaves in every folder it shows
        (newest / name).write_bytes(b"\0\0\0\1Bud1" + bytes(100))
    capsys.readouterr()

    assert choose_resume(accelerator, RunFolder(tmp_path), "auto", IDENTITY) == newest
    assert capsys.readouterr().out.splitlines() == [
        f"warning: checkpoint {newest} holds {name}, which its manifest does not list: ignored (never read)"]
    resumed = TinyRun(accelerator, seed=5)
    load_checkpoint(accelerator, newest, resumed.parts, seed=0)
    assert resumed.progress.step == 2 and (marker is None or not marker.exists())
    assert_same(dict(resumed.model.state_dict()), dict(run.model.state_dict()))
    # The run goes on: the next save rotates by age only, and the newest keeps its stray file.
    resumed.step()
    third = save(accelerator, resumed, tmp_path, keep_last=2)
    assert published(tmp_path) == [newest, third] and (newest / name).is_file()


def test_resuming_from_behind_an_intact_checkpoint_is_refused_and_deletes_nothing(accelerator, tmp_path):
    run = trained(accelerator, 1)
    older = save(accelerator, run, tmp_path)
    run.step()
    newest = save(accelerator, run, tmp_path)
    elsewhere = tmp_path / "copy" / "step_00000002"
    shutil.copytree(newest, elsewhere)
    for start, step in ((older, 1), (elsewhere, 2)):  # a copy of the same step from elsewhere is behind it too
        message = one_line_error(lambda: choose_resume(accelerator, RunFolder(tmp_path), str(start), IDENTITY))
        assert message == (f"resume={start}: output_dir={tmp_path} holds a later intact checkpoint (step_00000002) "
                           f"that continuing from step {step} would delete: resume from it with --resume auto, "
                           f"or move it out of {tmp_path}/checkpoints")
    assert published(tmp_path) == [older, newest] and verify_checkpoint(newest) is None

    truncate(newest / "model.safetensors")  # damaged: nothing worth keeping ahead of step 1 any more
    assert choose_resume(accelerator, RunFolder(tmp_path), str(older), IDENTITY) == older


# --- damaged checkpoints -----------------------------------------------------------------------


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "truncated weights": (lambda p: truncate(p / "model.safetensors"), "model.safetensors has"),
    "truncated random states": (lambda p: truncate(p / "rank_0.pt"), "rank_0.pt has"),
    "a flipped byte in the optimizer": (lambda p: flip_a_byte(p / "optimizer.pt"), "optimizer.pt does not match"),
    "a deleted schedule": (lambda p: (p / "scheduler.pt").unlink(), "scheduler.pt is missing"),
    "no manifest (an interrupted save of an older version)": (lambda p: (p / "manifest.json").unlink(),
                                                              "no manifest.json"),
    "a torn manifest": (lambda p: truncate(p / "manifest.json"), "unreadable manifest.json"),
    "a run state without the run's settings (manifest restated)": (
        lambda p: without_identity(p), "run_state.json has no identity (the settings it was trained with)"),
}


def without_identity(path: Path) -> None:
    state = json.loads((path / "run_state.json").read_text())
    del state["identity"]
    (path / "run_state.json").write_text(json.dumps(state))
    restate_manifest(path, "run_state.json")


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_newest_checkpoint_is_reported_in_one_line_and_the_older_one_is_used(
        accelerator, tmp_path, damage, capsys):
    run = trained(accelerator, 1)
    older = save(accelerator, run, tmp_path)
    run.step()
    newest = save(accelerator, run, tmp_path)
    spoil, reason = DAMAGE[damage]
    spoil(newest)
    capsys.readouterr()

    assert choose_resume(accelerator, RunFolder(tmp_path), "auto", IDENTITY) == older
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: checkpoint {newest} is damaged (") and reason in lines[0]
    resumed = TinyRun(accelerator, seed=5)
    load_checkpoint(accelerator, older, resumed.parts, seed=0)
    assert resumed.progress.step == 1

    message = one_line_error(lambda: choose_resume(accelerator, RunFolder(tmp_path), str(newest), IDENTITY))
    assert message.startswith(f"resume={newest}: ") and reason in message


def test_an_accelerate_save_state_folder_is_not_taken_for_a_checkpoint(accelerator, tmp_path, capsys):
    run = trained(accelerator, 1)
    ours = save(accelerator, run, tmp_path)
    foreign = tmp_path / "checkpoints" / "step_00000009"
    accelerator.save_state(str(foreign))  # model.safetensors + random_states_0.pkl ...: unpickled by load_state
    assert any(p.suffix == ".pkl" for p in foreign.iterdir())
    assert choose_resume(accelerator, RunFolder(tmp_path), "auto", IDENTITY) == ours
    assert "step_00000009 is damaged (no manifest.json" in capsys.readouterr().out


# --- the run's settings --------------------------------------------------------------------------

MAY_CHANGE = {"train.epochs", "train.max_steps", "train.eval_every", "train.eval_batch_size", "train.mixed_precision",
              "checkpoint.every_steps", "checkpoint.keep_last", "log.trackers", "log.wandb_mode", "log.project",
              "log.run_name", "log.log_every", "log.progress", "model.compile", "model.channels_last",
              "data.cache_dir", "output_dir", "resume", "cpu", "debug", "audit.rank_only", "audit.filter_by",
              "audit.score_method", "audit.transform_ratio", "audit.transform_min_prob",
              "audit.sheet_size", "audit.top"}  # as documented in the README


def test_every_setting_but_the_documented_ones_is_bound_to_the_checkpoint():
    every_key = set()
    for section in dataclasses.fields(Config):
        value = getattr(Config(), section.name)
        if dataclasses.is_dataclass(value):
            every_key |= {f"{section.name}.{f.name}" for f in dataclasses.fields(value)}
        else:
            every_key.add(section.name)
    assert MAY_CHANGE < every_key
    assert set(run_identity(Config())) == every_key - MAY_CHANGE


def test_a_resume_that_changes_bound_settings_is_refused_naming_them(accelerator, tmp_path):
    cfg = Config()
    run = trained(accelerator, 1)
    save_checkpoint(accelerator, RunFolder(tmp_path).checkpoints, 1, run.parts, identity=run_identity(cfg), keep_last=2)

    changed = Config()
    changed.model.name, changed.train.lr, changed.seed, changed.data.split = "resnet18", 0.5, 3, "digits"
    message = one_line_error(lambda: choose_resume(accelerator, RunFolder(tmp_path), "auto", run_identity(changed)))
    for change in ("model.name (efficientnet_b3 -> resnet18)", "train.lr (0.0001 -> 0.5)", "seed (0 -> 3)",
                   "data.split (byclass -> digits)"):
        assert change in message
    assert message.startswith(f"output_dir={tmp_path} holds a run that was trained with other settings")
    assert "use a new output_dir, or --resume never" in message

    allowed = Config()
    allowed.train.epochs, allowed.train.max_steps, allowed.log.trackers = 99, 7, ["wandb"]
    allowed.checkpoint.every_steps, allowed.train.eval_every, allowed.output_dir = 5, 3, "moved"
    assert checkpoint_step(choose_resume(accelerator, RunFolder(tmp_path), "auto", run_identity(allowed))) == 1


def test_resume_never_discards_the_previous_run(accelerator, tmp_path, capsys):
    save(accelerator, trained(accelerator, 1), tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "step": 1}\n')
    (tmp_path / "final.json").write_text('{"test/acc": 0.5, "step": 1}')
    assert choose_resume(accelerator, RunFolder(tmp_path), "never", IDENTITY) is None
    assert "discarded the previous run's checkpoints, metrics.jsonl, final.json" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert choose_resume(accelerator, RunFolder(tmp_path), "auto", IDENTITY) is None


def test_resume_never_discards_only_this_packages_checkpoints(accelerator, tmp_path, capsys):
    ours = save(accelerator, trained(accelerator, 1), tmp_path)
    others = {"other_project.ckpt": b"weights of another project", "step_00000000/model.bin": b"not ours",
              "step_00000009/model.bin": b"not ours",
              "step_00000010/manifest.json": b'{"step": 3, "files": {}}'}  # a step name, but not our manifest
    for name, data in others.items():
        (tmp_path / "checkpoints" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "checkpoints" / name).write_bytes(data)
    assert choose_resume(accelerator, RunFolder(tmp_path), "never", IDENTITY) is None
    assert not ours.exists()
    assert {name: (tmp_path / "checkpoints" / name).read_bytes() for name in others} == others
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"resume=never: kept what emnist_dist did not write in {tmp_path}/checkpoints: "
        "other_project.ckpt, step_00000000, step_00000009, step_00000010")
    run = trained(accelerator, 1)  # and the saves of the new run never rotate them out, older or later
    for _ in range(3):
        run.step()
        save(accelerator, run, tmp_path, keep_last=1)
    assert {name: (tmp_path / "checkpoints" / name).read_bytes() for name in others} == others


# What a folder may hold where a run writes, and emnist_dist did not write: (path, content).
FOREIGN = {
    "another program's final.json": ("final.json", b'{"accuracy": 0.91}'),
    "a CSV as metrics.jsonl": ("metrics.jsonl", b"epoch,loss\n1,0.5\n"),
    "records without an epoch": ("metrics.jsonl", b'{"step": 1, "loss": 0.5}\n'),
    "another tool's config.yaml": ("config.yaml", b"lr: 0.1\nbatch_size: 64\n"),
    "a file of the user's in model/": ("model/important.bin", b"\x00\x01 the user's"),
    "another library's model folder": ("model/config.json", b'{"architectures": ["BertModel"]}'),
    "a file named model": ("model", b"a file"),
    "a file named checkpoints": ("checkpoints", b"a file"),
    "best weights that are no safetensors": ("checkpoints/best_model.safetensors", b"PK\x03\x04 a zip"),
    "a photo as curves.png": ("curves.png", None),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A model folder as training exports it (untrained weights: only the files matter here)."""
    info = ModelInfo(architecture="test_resnet", class_names=list("0123456789"), image_size=32, mean=0.2, std=0.3,
                     split="digits")
    network = timm.create_model("test_resnet", in_chans=1, num_classes=10)
    return save_model(network, tmp_path_factory.mktemp("exported") / "model", info)


@pytest.mark.parametrize("resume", ["never", "auto"])
@pytest.mark.parametrize("case", FOREIGN)
def test_what_emnist_dist_did_not_write_where_a_run_writes_is_refused_and_kept(accelerator, tmp_path, exported, case,
                                                                                 resume):
    name, data = FOREIGN[case]
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:  # a real PNG, but not one Matplotlib drew
        Image.new("L", (8, 8), 128).save(path)
        data = path.read_bytes()
    else:
        path.write_bytes(data)
    if name.startswith("model/"):  # beside the two files an export writes
        for own in ("model.safetensors", "config.json"):
            if not (tmp_path / "model" / own).exists():
                shutil.copy(exported / own, tmp_path / "model" / own)
    before = {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    message = one_line_error(lambda: choose_resume(accelerator, RunFolder(tmp_path), resume, IDENTITY))
    assert message.startswith(f"output_dir={tmp_path} holds what emnist_dist did not write, where a run writes its "
                              f"own files: {name} (expected ")
    assert message.endswith(": move it away, or use another output_dir")
    assert {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


# --- publishing ------------------------------------------------------------------------------------


def test_saving_a_step_again_publishes_a_new_generation_and_rotation_keeps_the_newest_and_the_best(accelerator, tmp_path):
    run = trained(accelerator, 1)
    first = save(accelerator, run, tmp_path, keep_last=2)
    again = save(accelerator, run, tmp_path, keep_last=2)
    assert (first.name, again.name) == ("step_00000001", "step_00000001_g1")
    assert published(tmp_path) == [again]  # the older generation goes once the new one is in place
    for _ in range(3):  # the best by validation at step 1: its newest generation stays
        run.step()
        save(accelerator, run, tmp_path, keep_last=2, protect_step=1)
    assert [p.name for p in published(tmp_path)] == ["step_00000001_g1", "step_00000003", "step_00000004"]

    # resumed from step 3 because step 4 is damaged: the next save drops the abandoned step 4
    truncate(tmp_path / "checkpoints" / "step_00000004" / "model.safetensors")
    resumed = TinyRun(accelerator, seed=3)
    load_checkpoint(accelerator, tmp_path / "checkpoints" / "step_00000003", resumed.parts, seed=0)
    resumed.step()
    resumed.step()
    save(accelerator, resumed, tmp_path, keep_last=1)
    assert [p.name for p in published(tmp_path)] == ["step_00000005"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000005"]


SCENARIOS = {  # already saved (steps), the save that is killed (step), keep_last
    "first save": ((), 1, 2),
    "the same step saved again": ((1, 2), 2, 2),
    "a new step that rotates the old one out": ((1,), 2, 1),
}


def phase(folder: Path, before: set[str]) -> str:
    """Where a killed save stopped, read off what it left (``before``: the folders it started from)."""
    if list(folder.glob(".step_*.partial")):
        return f"writing ({len(list(next(folder.glob('.step_*.partial')).iterdir()))} of 8 files)"
    if list(folder.glob(".step_*.deleting")):
        return "deleting the rotated-out folder"
    now = {p.name for p in published_checkpoints(folder)}
    return "not started" if now == before else "published"


def writing(phases: dict[str, int]) -> int:
    """How many kills came while the save was writing its files."""
    return sum(n for where, n in phases.items() if where.startswith("writing"))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_kill_9_at_random_points_of_a_save_never_leaves_a_damaged_checkpoint(accelerator, tmp_path, scenario):
    saved, step, keep_last = SCENARIOS[scenario]
    # At least 50 kills, and more (up to 150) until 25 landed inside the save and 12 while it wrote its files: on
    # a loaded machine the fork and the child's start-up take longer, and more kills come before the save.
    least, most, inside_wanted, writing_wanted = 50, 150, 25, 12
    run = TinyRun(accelerator, seed=1, width=128)
    template = tmp_path / "template"
    weights = {}
    for k in sorted({*saved, step}):
        while run.progress.step < k:
            run.step()
        weights[k] = {key: value.clone() for key, value in run.model.state_dict().items()}
        if k in saved:
            save(accelerator, run, template, keep_last)
    before = {p.name for p in published(template)}

    # Kill times are drawn uniformly over a horizon that adapts to how long a save takes here and
    # now (the machine's load varies): it shrinks after a kill that came when the save had already
    # finished and grows slowly otherwise, so most kills land inside the save.
    horizon = 0.1
    rng = random.Random(14)
    phases, late = {}, 0
    resumed = TinyRun(accelerator, seed=9, width=128)
    trial = 0

    def enough_landed() -> bool:
        return trial - late >= inside_wanted and writing(phases) >= writing_wanted

    while trial < least or (trial < most and not enough_landed()):
        out = tmp_path / f"trial{trial}"
        if saved:
            shutil.copytree(template, out)
        pid = os.fork()
        if pid == 0:  # the child saves, and is killed somewhere in the middle
            code = 1
            try:
                save(accelerator, run, out, keep_last)
                code = 0
            finally:
                os._exit(code)
        time.sleep(rng.uniform(0, horizon))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status):  # the save was over before the kill: no kill point
            assert os.WEXITSTATUS(status) == 0, "the save failed in the child"
            late += 1
            horizon *= 0.7
        else:
            horizon *= 1.1
            where = phase(out / "checkpoints", before)
            phases[where] = phases.get(where, 0) + 1

        visible = published(out)
        assert all(verify_checkpoint(p) is None for p in visible), f"trial {trial}: a damaged checkpoint"
        chosen = choose_resume(accelerator, RunFolder(out), "auto", IDENTITY)
        if saved:
            assert chosen is not None and checkpoint_step(chosen) in (max(saved), step)
        else:
            assert chosen is None or checkpoint_step(chosen) == step
        if chosen is not None:
            load_checkpoint(accelerator, chosen, resumed.parts, seed=0)
            assert_same(dict(resumed.model.state_dict()), weights[checkpoint_step(chosen)])
        save(accelerator, run, out, keep_last)  # the next save sweeps whatever the killed one left
        assert not [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
        trial += 1
    print(f"\n{scenario}: {trial - late} of {trial} kills landed inside the save; where: {dict(sorted(phases.items()))}")
    assert trial - late >= inside_wanted
    assert writing(phases) >= writing_wanted


# --- a full disk and an unwritable folder ----------------------------------------------------------


def test_a_full_disk_fails_the_save_in_one_line_and_keeps_the_previous_checkpoint(accelerator, tiny_filesystem):
    out = tiny_filesystem(400_000)
    run = trained(accelerator, 1, width=64)
    previous = save(accelerator, run, out)
    free = shutil.disk_usage(out).free
    (out / "filler").write_bytes(b"\0" * (free - 60_000))
    run.step()
    message = one_line_error(lambda: save(accelerator, run, out))
    assert message.startswith("checkpoint at step 2: ") and "No space left on device" in message
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [previous.name]
    assert verify_checkpoint(previous) is None


def test_a_read_only_run_folder_fails_the_save_in_one_line(accelerator, tmp_path, read_only):
    out = tmp_path / "run"
    run = trained(accelerator, 1)
    previous = save(accelerator, run, out)
    read_only(out)
    run.step()
    message = one_line_error(lambda: save(accelerator, run, out))
    assert "could not be written (Read-only file system)" in message or "(Permission denied)" in message
    assert [p.name for p in (out / "checkpoints").iterdir()] == [previous.name]


def test_a_file_in_the_way_of_the_published_name_fails_the_save_in_one_line_and_is_kept(accelerator, tmp_path):
    checkpoints = RunFolder(tmp_path).checkpoints
    checkpoints.mkdir()
    (checkpoints / "step_00000001").write_bytes(b"the user's")
    message = one_line_error(lambda: save(accelerator, trained(accelerator, 1), tmp_path))
    assert message == (f"checkpoint at step 1: {checkpoints}: could not be written (Not a directory): "
                       "expected a writable folder with free space")
    assert [(p.name, p.read_bytes()) for p in checkpoints.iterdir()] == [("step_00000001", b"the user's")]


# --- the run folder ----------------------------------------------------------------------------------


def test_a_folder_held_by_another_run_is_refused(accelerator, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with FileLock(out / ".lock"):  # another training run, as far as the operating system can tell
        message = one_line_error(lambda: RunFolder(out).claim(accelerator))
    assert message == (f"output_dir={out}: in use by another training run (it holds {out}/.lock): "
                       "wait for it to finish, or use another output_dir")
    held = RunFolder(out)  # free again: taken, for as long as the folder object that claimed it lives
    held.claim(accelerator)
    with pytest.raises(TimeoutError):
        FileLock(out / ".lock", timeout=0).acquire()
    del held


def test_an_output_dir_under_a_file_is_one_line(accelerator, tmp_path):
    (tmp_path / "notes.txt").write_text("a file")
    message = one_line_error(lambda: RunFolder(tmp_path / "notes.txt" / "run").claim(accelerator))
    assert message == (f"output_dir={tmp_path}/notes.txt/run: {tmp_path}/notes.txt is a file: "
                       "expected a folder (or a path to create)")


def test_a_read_only_output_dir_is_one_line(accelerator, tmp_path, read_only):
    read_only(tmp_path)
    message = one_line_error(lambda: RunFolder(tmp_path / "run").claim(accelerator))
    assert message.startswith(f"{tmp_path}/run: could not be written (")
    assert "Read-only file system" in message or "Permission denied" in message
    assert not (tmp_path / "run").exists()


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(accelerator, tiny_filesystem):
    out = tiny_filesystem(64 * 1024) / "run"
    RunFolder(out).claim(accelerator)
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
    RunFolder(path.parent).truncate_metrics(20)
    assert [json.loads(line) for line in path.read_text().splitlines()] == records
    RunFolder(path.parent).truncate_metrics(10)
    assert [json.loads(line) for line in path.read_text().splitlines()] == records[:1]
