"""What a run folder recognises as its own (a metrics log of JSON records with an epoch, whatever their key order;
a saved config; an exported model's config.json), how it rewinds the metrics log and where it takes its lock.
The references: records written with json.dumps by hand, the config's own writer, configs written by hand."""

from __future__ import annotations

import json

import pytest
from accelerate import Accelerator

from emnist_dist.config import Config, save_config
from emnist_dist.model_folder.artifact import MODEL_FOLDER_FILES
from emnist_dist.train.run_folder import RunFolder, identity_changes


def metrics_verdict(tmp_path, text: str) -> list[str]:
    folder = RunFolder(tmp_path)
    folder.metrics.write_text(text)
    return folder.not_written_here()


def test_records_in_any_key_order_are_the_runs_own(tmp_path):
    records = [{"step": 10, "epoch": 1, "val/acc": 0.5}, {"val/acc": 0.6, "epoch": 2, "step": 20}]
    text = "".join(json.dumps(r) + "\n" for r in records)
    assert metrics_verdict(tmp_path, text) == []
    assert metrics_verdict(tmp_path, text + '{"val/acc": 0.7, "ep') == []  # a last line torn by a killed run


def test_other_json_lines_are_not(tmp_path):
    expected = ["metrics.jsonl (expected one JSON record with epoch and step per line)"]
    assert metrics_verdict(tmp_path, '{"step": 10, "loss": 1.0}\n') == expected
    assert metrics_verdict(tmp_path, '{"epoch": 1, "step": 10}\nnot json\n') == expected
    assert metrics_verdict(tmp_path, '{"epoch": 1, "step": 10}\nplain text') == expected
    assert metrics_verdict(tmp_path, '{"epoch": 1, "step": "10"}\n') == expected  # a step that is no integer
    (tmp_path / "metrics.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")  # not even text
    assert RunFolder(tmp_path).not_written_here() == expected


def test_a_metrics_line_torn_inside_a_character_is_dropped_on_rewind(tmp_path):
    """A killed write can leave bytes that are not UTF-8: the line goes, the records before it stay."""
    folder = RunFolder(tmp_path)
    record = json.dumps({"epoch": 1, "step": 10})
    folder.metrics.write_bytes(record.encode() + b"\n" + b'{"epoch": 2, "note": "\xc3')
    folder.truncate_metrics(10)
    assert folder.metrics.read_text() == record + "\n"


def test_a_saved_config_and_an_exported_models_config_are_the_runs_own(tmp_path):
    folder = RunFolder(tmp_path)
    save_config(Config(), folder.config)
    folder.final.write_text(json.dumps({"test/acc": 0.9, "step": 3}))
    folder.model.mkdir()
    (folder.model / "config.json").write_text(json.dumps({"class_names": ["0", "1"], "split": "digits"}))  # flat,
    assert folder.not_written_here() == []  # as the first emnist_dist version wrote it
    (folder.model / "config.json").write_text(json.dumps({"architecture": "resnet18", "emnist_dist": {}}))
    assert folder.not_written_here() == []


@pytest.mark.parametrize("name, text, expected", [
    ("config.yaml", "data: {}\nmodel: [unclosed\n", "config.yaml (expected the resolved config a run saves)"),
    ("config.yaml", "data: {}\nmodel: {}\n", "config.yaml (expected the resolved config a run saves)"),
    ("final.json", '{"step": 3}', "final.json (expected a JSON object of test metrics)"),
    ("final.json", '{"test/acc": 0.9}', "final.json (expected a JSON object of test metrics)"),
    ("confusion_matrix.png", "not a picture", "confusion_matrix.png (expected a PNG written by Matplotlib)"),
    ("curves.png", "not a picture", "curves.png (expected a PNG written by Matplotlib)"),
])
def test_files_of_a_runs_name_but_not_its_content_are_named(tmp_path, name, text, expected):
    (tmp_path / name).write_text(text)
    assert RunFolder(tmp_path).not_written_here() == [expected]


def test_claiming_creates_the_missing_parent_folders(tmp_path):
    folder = RunFolder(tmp_path / "runs" / "2026" / "first")
    folder.claim(Accelerator(cpu=True))
    try:
        assert folder.root.is_dir() and folder.lock.is_file()
    finally:
        folder.release()


def test_a_users_file_in_model_is_named_alone(tmp_path):
    """Found by the hostile pass: the refusal also named a model/config.json that did not exist."""
    folder = RunFolder(tmp_path)
    folder.model.mkdir()
    (folder.model / "notes.txt").write_text("mine")
    assert folder.not_written_here() == [f"model/notes.txt (expected only {', '.join(MODEL_FOLDER_FILES)})"]
    (folder.model / "config.json").write_text("{}")  # there, and not a model's: named too
    assert folder.not_written_here() == [
        "model/config.json (expected the config.json of a model emnist_dist exported)",
        f"model/notes.txt (expected only {', '.join(MODEL_FOLDER_FILES)})",
    ]


def test_a_setting_only_one_side_has_is_a_change_even_when_its_value_is_null():
    """A checkpoint of an older version lacks a setting added since (and the reverse): named, never taken as equal."""
    saved, current = {"model.name": "resnet18", "train.lr": 0.1}, {"model.name": "resnet18", "data.exclude": None}
    assert identity_changes(saved, current) == ["data.exclude (<absent> -> None)", "train.lr (0.1 -> <absent>)"]
    assert identity_changes(current, saved) == ["data.exclude (None -> <absent>)", "train.lr (<absent> -> 0.1)"]
