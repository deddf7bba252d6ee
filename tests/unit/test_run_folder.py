"""What a run folder recognises as its own metrics log: JSON records with an epoch, whatever their key order
(the reference: records written with json.dumps by hand, not by the trainer)."""

from __future__ import annotations

import json

from emnist_dist.model_folder.artifact import MODEL_FOLDER_FILES
from emnist_dist.train.run_folder import RunFolder


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
