"""The typed config: precedence, types, one-line errors, and the saved file round-trip."""

import dataclasses
import os
import re
import subprocess
import sys
import threading

import pytest
import yaml

from emnist_dist.config import Config, check_config, config_to_dict, flatten_config, parse_config, save_config
from emnist_dist.errors import UserError


def test_defaults_then_file_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  split: balanced\ntrain:\n  epochs: 3\n  lr: 0.5\n")
    cfg = parse_config(["--config", str(path), "--train.lr", "0.25", "--cpu", "true"])
    assert cfg.data.split == "balanced"  # from the file
    assert cfg.train.epochs == 3  # from the file
    assert cfg.train.lr == 0.25  # the flag wins over the file
    assert cfg.cpu is True
    assert cfg.train.batch_size == Config().train.batch_size  # untouched default


@pytest.mark.parametrize("value, expected", [("true", True), ("false", False), ("/w/eff.safetensors", "/w/eff.safetensors")])
def test_pretrained_accepts_bool_or_path(value, expected):
    assert parse_config(["--model.pretrained", value]).model.pretrained == expected


def test_saved_config_reproduces_the_run(tmp_path):
    cfg = parse_config(["--data.split", "letters", "--log.trackers", "[wandb]", "--train.betas", "[0.8, 0.9]"])
    save_config(cfg, tmp_path / "config.yaml")
    assert parse_config(["--config", str(tmp_path / "config.yaml")]) == cfg
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["data"]["split"] == "letters"
    # in the dataclasses' order (data, augment, model, train ...), the order of --help and the docs, not sorted
    assert list(saved) == [f.name for f in dataclasses.fields(Config)]
    assert list(saved["train"]) == [f.name for f in dataclasses.fields(cfg.train)]


@pytest.mark.parametrize("argv, culprit", [
    (["--train.nope", "1"], "--train.nope"),
    (["--train.epochs", "abc"], "train.epochs"),
    (["--data.split", "kanji"], "data.split"),
    (["--cpu", "maybe"], "cpu"),
    (["--train.batch_size", "255"], "train.batch_size"),
    (["--train.epochs", "0"], "train.epochs"),
    (["--data.val_fraction", "1.5"], "data.val_fraction"),
    (["--log.trackers", "[mlflow]"], "log.trackers"),
    (["--resume", "/no/such/checkpoint"], "resume"),
    (["--log.log_every", "0"], "log.log_every=0"),
    (["--checkpoint.every_steps", "-1"], "checkpoint.every_steps=-1"),
    (["--checkpoint.keep_last", "0"], "checkpoint.keep_last=0"),
    # found by the hostile pass of 2026-12-07: a traceback from lion_pytorch, a run in the working directory,
    # tracker files outside output_dir, a file name too long for the OS
    (["--train.betas", "[0.9, 1.5]"], "train.betas=[0.9, 1.5]"),
    (["--output_dir", ""], "output_dir=''"),
    (["--train.epochs", "-1", "--print_config"], "train.epochs=-1"),  # printed, with exit 0
    (["--log.project", "../../escaped"], "log.project='../../escaped'"),
    (["--log.project", "x" * 300], "log.project='xxxx"),
    (["--train.eval_every", "0"], "train.eval_every=0"),
    (["--train.max_steps", "0"], "train.max_steps=0"),
    (["--train.clip_grad_norm", "-1"], "train.clip_grad_norm=-1"),
    (["--data.fold", "4"], "data.fold"),
    (["--data.folds", "1"], "data.folds"),
    (["--audit.transform_ratio", "0.5"], "audit.transform_ratio"),
    (["--audit.transform_min_prob", "0"], "audit.transform_min_prob"),
    (["--audit.sheet_size", "0"], "audit.sheet_size"),
    (["--audit.top", "0"], "audit.top=0"),
    (["--audit.filter_by", "vibes"], "audit.filter_by"),
])
def test_bad_values_name_the_culprit_in_one_line(argv, culprit):
    with pytest.raises(UserError) as err:
        parse_config(argv)
    message = str(err.value)
    assert culprit in message and "\n" not in message


def config_leaves(node, prefix: str = ""):
    """``(dotted key, default)`` of every leaf of the config tree, read from the dataclasses themselves."""
    for field in dataclasses.fields(node):
        value = getattr(node, field.name)
        if dataclasses.is_dataclass(value):
            yield from config_leaves(value, f"{prefix}{field.name}.")
        else:
            yield f"{prefix}{field.name}", value


def test_help_lists_every_field_with_its_default():
    out = subprocess.run([sys.executable, "-m", "emnist_dist.train", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    # One block per option: "  --key ARG  help text (type: T, default: D)", wrapped over lines.
    blocks = {m.group(1): " ".join(block.split()) for block in re.split(r"\n(?=  --)|\n\n", out.stdout)
              if (m := re.match(r"  (--[\w.]+)", block))}
    leaves = dict(config_leaves(Config()))
    assert len(leaves) >= 69 and "augment.mixup_off_epoch" in leaves and "audit.top" in leaves
    for key, default in leaves.items():
        assert f"--{key}" in blocks, key
        shown = blocks[f"--{key}"].rsplit("default: ", 1)[1].removesuffix(")")
        assert shown == ("null" if default is None else str(default)), (key, shown, default)


def test_cli_bad_flag_exits_2_with_one_line_before_torch_loads(tmp_path):
    # -X importtime logs every module the process imports to stderr ("import time: ... | name"); the error line
    # is the last line, and torch (several seconds to load) is not among the modules.
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "emnist_dist.train", "--train.epochs", "abc",
                          "--output_dir", str(tmp_path / "run")], capture_output=True, text=True)
    assert out.returncode == 2
    imported = {line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "jsonargparse" in imported and "torch" not in imported, sorted(imported)[:20]
    message = [line for line in out.stderr.splitlines() if not line.startswith("import time:")]
    assert len(message) == 1 and message[0].startswith("error:") and "train.epochs" in message[0], message
    assert not (tmp_path / "run").exists()


def test_parsing_from_threads_leaves_the_working_directory_alone(tmp_path, monkeypatch):
    """jsonargparse moves into a config file's folder while it reads it; from several threads at once, relative
    paths then resolve against each other's folders (configs/configs/x.yaml) and every thread sees the move."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "run.yaml").write_text("train:\n  epochs: 3\n")
    (tmp_path / "configs" / "train.yaml").write_text("lr: 0.5\n")
    monkeypatch.chdir(tmp_path)
    seen, errors, done = set(), [], threading.Event()

    def watch():
        while not done.is_set():
            seen.add(os.getcwd())

    def parse():
        for _ in range(10):
            try:
                cfg = parse_config(["--config", "configs/run.yaml", "--train", "configs/train.yaml"])
                assert (cfg.train.epochs, cfg.train.lr) == (3, 0.5)
            except Exception as err:  # noqa: BLE001 - every failure is collected and shown
                errors.append(f"{type(err).__name__}: {err}")

    watcher = threading.Thread(target=watch)
    watcher.start()
    workers = [threading.Thread(target=parse) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    watcher.join()
    assert errors == []
    assert seen == {str(tmp_path)}


@pytest.mark.parametrize("content, expected", [
    ("", "holds nothing: expected a YAML mapping"),
    ("- 1\n- 2\n", "holds list: expected a YAML mapping"),
    ("train: {lr: [\n", "cannot be read"),
])
def test_a_config_file_that_is_not_a_mapping_is_named_in_one_line(tmp_path, content, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(UserError) as err:
        parse_config(["--config", str(path)])
    assert str(err.value).startswith(f"--config {path}: ") and expected in str(err.value)
    assert "\n" not in str(err.value)


def _alias_bomb(path):
    """A few hundred bytes that stand for 9**8 strings once the aliases are followed ("billion laughs")."""
    lines = ['a0: &a0 ["lol"]'] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path.write_text("\n".join(lines) + "\ndata: {split: *a8}\n")


@pytest.mark.parametrize("make, expected", [
    (lambda path: os.mkfifo(path), "not a regular file"),  # reading would wait for a writer forever
    (lambda path: path.symlink_to("/dev/zero"), "not a regular file"),  # reading would fill the memory
    (lambda path: path.write_text("# padding\n" * 120_000), "larger than 1 MiB"),
    (_alias_bomb, "uses YAML aliases"),
])  # found by the hostile pass of 2026-12-07: each hung the command or filled the memory (10.7 GB in 10 s)
def test_a_config_file_that_cannot_be_settings_is_refused_before_it_is_read_whole(tmp_path, make, expected):
    path = tmp_path / "settings.yaml"
    make(path)
    with pytest.raises(UserError) as err:
        parse_config(["--config", str(path)])
    assert str(err.value).startswith(f"--config {path}: ") and expected in str(err.value)
    assert "\n" not in str(err.value)


def _built_in_code(**changes) -> Config:
    """A Config as a notebook builds one: ``section__key=value`` set on the dataclasses, no parsing."""
    cfg = Config()
    for name, value in changes.items():
        section, _, key = name.rpartition("__")
        setattr(getattr(cfg, section) if section else cfg, key, value)
    return cfg


@pytest.mark.parametrize("changes, culprit", [
    ({"train__epochs": 0}, "train.epochs=0"),
    ({"train__lr": -1}, "train.lr=-1"),
    ({"train__lr": "fast"}, "train.lr"),
    ({"train__betas": [0.9]}, "train.betas"),
    ({"data__image_size": -5}, "data.image_size=-5"),
    ({"data__split": "kanji"}, "data.split"),
    ({"train__batch_size": 255}, "train.batch_size=255"),
    ({"seed": None}, "seed=None"),
    ({"data": None}, "config.data is a NoneType: expected a DataConfig"),
    # found by the hostile pass: the command line refuses these, a config built in code passed them
    ({"train__lr": float("nan")}, "train.lr=nan"),
    ({"train__lr": float("inf")}, "train.lr=inf"),
    ({"train__epoch": 5}, "config.train.epoch: not a setting"),
    ({"epochs": 5}, "config.epochs: not a setting"),
])
def test_a_config_built_in_code_is_checked_by_the_trainer_before_anything_is_written(tmp_path, changes, culprit):
    from emnist_dist.train import Trainer

    cfg = _built_in_code(output_dir=str(tmp_path / "run"), **changes)
    with pytest.raises(UserError) as err:
        Trainer(cfg)
    assert culprit in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


def test_a_null_inside_a_section_an_unknown_key_and_a_dict_are_refused_in_exact_lines():
    with pytest.raises(UserError) as err:
        check_config(_built_in_code(train__lr=None))
    assert str(err.value) == "train.lr=None: expected a value (this setting cannot be null)"
    with pytest.raises(UserError) as err:
        check_config(_built_in_code(epochs=5))
    expected = ", ".join(f.name for f in dataclasses.fields(Config))
    assert str(err.value) == f"config.epochs: not a setting: expected one of {expected}"
    with pytest.raises(UserError) as err:
        check_config({"train": {"epochs": 3}})  # the YAML's dict, not a Config
    assert str(err.value) == ("config is a dict: expected an emnist_dist.config.Config "
                              "(parse_config([...]) or Config(...))")


def test_a_config_built_in_code_gets_the_command_lines_conversions():
    cfg = check_config(_built_in_code(train__epochs="3", train__lr="1e-3", train__betas=[0.8, 0.9]))
    assert cfg == parse_config(["--train.epochs", "3", "--train.lr", "1e-3", "--train.betas", "[0.8, 0.9]"])
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.betas) == (3, 1e-3, (0.8, 0.9))


def test_every_range_check_accepts_its_own_limit():
    """The smallest (or largest) value each rule allows passes; the values just past them are refused above."""
    limits = {"train.epochs": 1, "train.batch_size": 2, "train.grad_accum_steps": 1, "train.eval_every": 1,
              "train.eval_batch_size": 1, "train.max_steps": 1, "train.clip_grad_norm": 1e-9,
              "checkpoint.every_steps": 1, "checkpoint.keep_last": 1, "log.log_every": 1, "data.val_fraction": 0.0,
              "data.image_size": 8, "data.folds": 2, "data.fold": 1, "audit.transform_ratio": 1.0, "audit.top": 1,
              "audit.transform_min_prob": 1.0, "audit.sheet_size": 1}
    config = parse_config([arg for key, value in limits.items() for arg in (f"--{key}", str(value))])
    assert {key: flatten_config(config_to_dict(config))[key] for key in limits} == limits
