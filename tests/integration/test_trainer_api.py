"""The trainer as a library object: ``Trainer(cfg).fit()`` in one process, as a notebook or a tuning loop runs it.

Each fit is a real (tiny) training run in this process: synthetic Balanced, timm's test_efficientnet at 32 px,
a few steps. The references are the files the run wrote (final.json, the checkpoint folder, the folder's bytes)
and the process state read before the fit.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import threading

import pytest
import torch
from filelock import FileLock, Timeout

from emnist_dist.config import parse_config
from emnist_dist.cli import log_to_console
from emnist_dist.data.resize import to_model_input
from emnist_dist.errors import UserError
from emnist_dist.model_folder.artifact import load_model
from emnist_dist.train import Preempted, RunFolder, Trainer
from emnist_dist.train.trainer import debug_config
from emnist_dist.train.checkpoint import checkpoint_step, published_checkpoints, verify_checkpoint
from tests.helpers.train_runs import TINY, metrics_lines

@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


def config(cache: str, out, *flags: str):
    return parse_config([*TINY, "--data.synthetic_train_per_class", "10", "--train.epochs", "1",
                         "--train.max_steps", "4", "--data.cache_dir", cache, "--output_dir", str(out), *flags])


def on_training_forward(trainer: Trainer, action) -> list:
    """Call ``action(n)`` inside the n-th training forward pass (n from 1); returns what the calls returned."""
    seen = []

    def hook(module, args, output):
        if module.training:
            seen.append(action(len(seen) + 1))

    trainer.network.register_forward_hook(hook)
    return seen


def folder_bytes(out) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_fits_in_one_process_leave_it_as_they_found_it(tmp_path, cache):
    mine = lambda signum, frame: None  # noqa: E731 - the caller's own handler, which fit must put back
    previous = signal.signal(signal.SIGUSR1, mine)
    term = signal.getsignal(signal.SIGTERM)
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        finals = []
        for name in ("a", "b"):
            trainer = Trainer(config(cache, tmp_path / name, "--debug", "true", "--data.subset", "400"))
            during = on_training_forward(trainer, lambda n: (torch.is_anomaly_enabled(), signal.getsignal(signal.SIGUSR1),
                                                             signal.getsignal(signal.SIGTERM)))
            finals.append(trainer.fit())
            # debug mode: anomaly detection and the trainer's own stop handlers while it trained
            assert all(anomaly and usr1 is not mine and handler is not term for anomaly, usr1, handler in during)
            assert finals[-1] == json.loads((tmp_path / name / "final.json").read_text())
            assert finals[-1]["step"] == 4
            # test/acc is the exported weights' accuracy on the test split (re-derived from the folder alone)
            model, info = load_model(tmp_path / name / "model")
            with torch.no_grad():
                logits = model(to_model_input(trainer.data.test_images, info.image_size, info.mean, info.std))
            right = float((logits.argmax(1) == trainer.data.test_labels).float().mean())
            assert finals[-1]["test/acc"] == pytest.approx(right, abs=1e-6)
            # ... and afterwards the process as it was: handlers, anomaly mode, environment, process group
            assert signal.getsignal(signal.SIGUSR1) is mine and signal.getsignal(signal.SIGTERM) is term
            assert not torch.is_anomaly_enabled() and "CUDA_LAUNCH_BLOCKING" not in os.environ
            assert torch.distributed.is_initialized()
        assert finals[0]["test/acc"] == finals[1]["test/acc"]  # the same seed: the same run twice
    finally:
        torch.distributed.destroy_process_group()
        signal.signal(signal.SIGUSR1, previous)


def test_a_refused_resume_raises_and_leaves_the_folder_untouched(tmp_path, cache):
    """The edit loop's training run (not marked slow): one 4-step fit in this process."""
    out = tmp_path / "run"
    Trainer(config(cache, out)).fit()
    before = folder_bytes(out)
    with pytest.raises(UserError, match=r"trained with other settings: model.drop_rate \(0.3 -> 0.5\)"):
        Trainer(config(cache, out, "--model.drop_rate", "0.5")).fit()
    assert folder_bytes(out) == before
    lock = FileLock(out / ".lock", timeout=0)  # the refused run let go of the run folder
    lock.acquire()
    lock.release()
    # found by the hostile pass of 2026-12-07: a resume refused in a new output_dir left it behind, holding .lock
    user_file = tmp_path / "notes.txt"
    user_file.write_text("mine\n")
    fresh = tmp_path / "new" / "run"
    with pytest.raises(UserError, match="not a folder"):
        Trainer(config(cache, fresh, "--resume", str(user_file))).fit()
    assert not (tmp_path / "new").exists() and user_file.read_text() == "mine\n"


@pytest.mark.slow
def test_a_second_fit_on_a_folder_this_process_is_training_in_is_refused_naming_the_lock(tmp_path, cache):
    """Two threads of one process fitting into one output_dir: the second is refused (the first keeps the folder,
    its lock and its files), not run beside it."""
    out = tmp_path / "run"
    first = Trainer(config(cache, out))
    refusals = []

    def second_fit() -> None:
        try:
            Trainer(config(cache, out, "--model.drop_rate", "0.5")).fit()
        except UserError as err:
            refusals.append(str(err))

    def during_first(n: int) -> bool | None:
        if n == 1:
            thread = threading.Thread(target=second_fit)
            thread.start()
            thread.join()
        if n == 2:  # the refused run has not let go of the first run's lock
            try:
                FileLock(out / ".lock", timeout=0).acquire()
            except Timeout:
                return True
            return False
        return None

    held = on_training_forward(first, during_first)
    final = first.fit()
    assert refusals == [f"output_dir={out}: in use by another training run (it holds {out / '.lock'}): "
                        "wait for it to finish, or use another output_dir"]
    assert held[1] is True
    assert parse_config(["--config", str(out / "config.yaml")]).model.drop_rate == 0.3  # the first run's config
    assert final == json.loads((out / "final.json").read_text())


@pytest.mark.slow
def test_preemption_raises_after_checkpointing_and_the_next_fit_resumes(tmp_path, cache):
    out = tmp_path / "run"
    usr1 = signal.getsignal(signal.SIGUSR1)
    trainer = Trainer(config(cache, out, "--train.max_steps", "6"))
    on_training_forward(trainer, lambda n: n == 3 and os.kill(os.getpid(), signal.SIGUSR1))
    with pytest.raises(Preempted, match="SIGUSR1 received: checkpoint saved at step 3") as stopped:
        trainer.fit()
    assert stopped.value.step == 3
    (newest,) = published_checkpoints(RunFolder(out).checkpoints)
    assert checkpoint_step(newest) == 3 and verify_checkpoint(newest) is None
    assert not (out / "final.json").exists()
    assert signal.getsignal(signal.SIGUSR1) is usr1

    final = Trainer(config(cache, out, "--train.max_steps", "6")).fit()
    assert final["step"] == 6


@pytest.mark.slow
def test_the_learning_rate_logged_is_the_rate_each_step_used(tmp_path, cache, capsys):
    log_to_console()
    out, lr = tmp_path / "run", 1e-3
    Trainer(config(cache, out, "--train.epochs", "2", "--train.max_steps", "null", "--train.batch_size", "64",
                   "--train.eval_batch_size", "128", "--train.lr", str(lr),
                   "--train.warmup_epochs", "0", "--train.T_0", "1", "--train.eta_min", "0")).fit()
    records = metrics_lines(out)
    steps_per_epoch = records[0]["step"]  # one evaluation per epoch

    def used(step: int) -> float:
        """The rate optimizer step ``step`` (from 1) used: cosine from lr to 0 over each epoch, then a restart."""
        return lr * (1 + math.cos(math.pi * ((step - 1) % steps_per_epoch) / steps_per_epoch)) / 2

    # Each epoch's last step ran at the bottom of its cycle, not at the peak the restart sets for the next step.
    assert [r["lr"] for r in records] == pytest.approx([used(r["step"]) for r in records], rel=1e-9)
    assert [r["step"] for r in records] == [steps_per_epoch, 2 * steps_per_epoch] and records[-1]["lr"] < lr / 10
    console = capsys.readouterr().out
    lines = re.findall(r"^step (\d+)/\d+ epoch \d+ loss \S+ lr (\S+) ", console, re.M)
    assert [int(step) for step, _ in lines] == list(range(1, 2 * steps_per_epoch + 1))
    # One meaning of epoch: the console's epoch of each evaluated step is the one metrics.jsonl records.
    console_epoch = {int(step): int(epoch) for step, epoch in re.findall(r"^step (\d+)/\d+ epoch (\d+) ", console, re.M)}
    assert [console_epoch[r["step"]] for r in records] == [r["epoch"] for r in records] == [1, 2]
    assert [float(rate) for _, rate in lines] == pytest.approx([used(int(step)) for step, _ in lines], rel=6e-3)


def test_sync_point_before_fit_logs_instead_of_failing(tmp_path, cache, capsys):
    log_to_console()
    trainer = Trainer(config(cache, tmp_path / "run"))
    trainer.train_step()
    trainer.sync_point()  # the clock starts at construction; fit() restarts it
    assert re.search(r"^step 1/4 epoch 1 loss \S+ ", capsys.readouterr().out, re.M)


def test_debug_mode_defaults_to_a_2048_sample_subset_and_20_steps():
    # The README's promise: --debug true trains a 2,048-sample stratified subset for 20 steps, a log line per step.
    cfg = debug_config(parse_config(["--debug", "true"]))
    assert (cfg.data.subset, cfg.train.max_steps, cfg.log.log_every) == (2048, 20, 1)
    own = debug_config(parse_config(["--debug", "true", "--data.subset", "400", "--train.max_steps", "4"]))
    assert (own.data.subset, own.train.max_steps) == (400, 4)
