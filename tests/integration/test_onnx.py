"""ONNX export with its parity check (emnist_dist.onnx_export) and the model card (emnist_dist.model_card)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from huggingface_hub import ModelCard

from emnist_dist.cli import run_cli
from emnist_dist.model_folder.artifact import load_model
from emnist_dist.model_card import main as card_main
from emnist_dist.export.onnx_conversion import ATOL, MIN_OPSET, RTOL, ParityError, check_parity, to_onnx
from emnist_dist.onnx_export import main as export_main
from emnist_dist.data.synthetic import render_glyphs
from emnist_dist.data.resize import to_model_input


def run(main, argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory, trained_model_dir):
    """The CLI's export (through ``python -m``) of the trained model into a copy of its folder."""
    model_dir = tmp_path_factory.mktemp("onnx") / "model"
    shutil.copytree(trained_model_dir, model_dir)
    done = subprocess.run([sys.executable, "-m", "emnist_dist.onnx_export", "--model", str(model_dir)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"wrote {model_dir / 'model.onnx'}" in done.stdout and "parity with PyTorch" in done.stdout
    return model_dir


def test_onnx_matches_pytorch_on_real_glyphs_with_any_batch_size(onnx_model):
    model, info = load_model(onnx_model)
    session = ort.InferenceSession(str(onnx_model / "model.onnx"), providers=["CPUExecutionProvider"])
    images, _ = render_glyphs(info.class_names, 3, seed=11)
    x = to_model_input(torch.from_numpy(images).unsqueeze(1), info.image_size, info.mean, info.std)
    with torch.inference_mode():
        expected = model(x).numpy()
    for batch in (1, 4, len(x)):  # the batch axis is dynamic
        got = np.concatenate([session.run(["logits"], {"input": x[i : i + batch].numpy()})[0]
                              for i in range(0, len(x), batch)])
        assert np.abs(got - expected).max() <= ATOL + RTOL * np.abs(expected).max()
        np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))
    assert not list(onnx_model.glob(".*tmp*"))


def test_onnx_metadata_describes_the_input(onnx_model):
    proto = onnx.load(str(onnx_model / "model.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    config = json.loads((onnx_model / "config.json").read_text())
    assert json.loads(meta["class_names"]) == config["label_names"]
    assert int(meta["image_size"]) == config["pretrained_cfg"]["input_size"][1]
    assert float(meta["mean"]) == config["pretrained_cfg"]["mean"][0]
    assert float(meta["std"]) == config["pretrained_cfg"]["std"][0]
    assert json.loads(meta["framing"]) == config["emnist_dist"]["framing"]
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value  # symbolic, not a fixed size


def test_parity_check_catches_a_model_that_differs(tmp_path, trained_model_dir):
    model, info = load_model(trained_model_dir)
    path = tmp_path / "m.onnx"
    onnx.save(to_onnx(model, info), path)
    assert check_parity(model, info, path) <= ATOL
    with torch.no_grad():
        model.fc.bias.add_(0.01)  # PyTorch now disagrees with the exported file
    with pytest.raises(ParityError, match="differ"):
        check_parity(model, info, path)


def test_export_of_a_broken_model_folder_is_one_line(tmp_path, trained_model_dir, capsys):
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model_dir, model_dir)
    (model_dir / "model.safetensors").unlink()
    code, out, err = run(export_main, ["--model", str(model_dir)], capsys)
    assert code == 2 and err.count("\n") == 1 and "model.safetensors" in err
    assert not (model_dir / "model.onnx").exists()


def test_model_card_states_synthetic_data_metrics_classes_preprocessing_and_limits(tmp_path, onnx_model, capsys):
    model_dir = tmp_path / "run" / "model"
    shutil.copytree(onnx_model, model_dir)
    eval_dir = tmp_path / "run" / "eval"
    eval_dir.mkdir()
    (eval_dir / "metrics.json").write_text(json.dumps({"test/acc": 0.9123, "test/balanced_acc": 0.9, "split": "digits",
                                                       "test/num_samples": 500, "tta": True, "synthetic": True}))
    code, out, _ = run(card_main, ["--model", str(model_dir)], capsys)
    assert code == 0 and str(eval_dir / "metrics.json") in out  # found beside the model by default
    card = (model_dir / "README.md").read_text()
    config = json.loads((model_dir / "config.json").read_text())
    metrics, framing = config["emnist_dist"]["metrics"], config["emnist_dist"]["framing"]
    # The Hub's own reader of the card: metadata and a model-index holding the export's test metrics.
    data = ModelCard.load(model_dir / "README.md").data
    assert (data.library_name, data.license, data.pipeline_tag) == ("timm", "mit", "image-classification")
    assert "synthetic-data" in data.tags and data.datasets is None  # no Hub dataset to name
    results = {(r.metric_type, r.metric_name): r.metric_value for r in data.eval_results}
    assert results == {("accuracy", "accuracy"): pytest.approx(metrics["test/acc"], abs=1e-6)}
    assert all(r.dataset_split == "test" and "SYNTHETIC" in r.dataset_name for r in data.eval_results)
    assert "model-index:" in card
    assert "SYNTHETIC data, not on EMNIST" in card
    assert f"{100 * metrics['test/acc']:.2f}%" in card  # recorded at export
    assert "91.23%" in card and "test-time augmentation" in card  # from the evaluate report
    assert " ".join(f"{i}:{c}" for i, c in enumerate(config["label_names"])) in card
    assert f"mean = {config['pretrained_cfg']['mean'][0]:.6g}" in card and "Otsu" in card
    assert f"spans {100 * framing['box']:.0f}% of the frame" in card and "MIT licence" in card
    assert "model.onnx" in card and "## Intended use" in card and "c/C" in card and "o/O/0" in card
    assert not list(model_dir.glob(".*tmp*"))


@pytest.mark.parametrize("token, message", [(None, "no Hugging Face token"),
                                            ("hf_dummy", "upload failed (OfflineModeIsEnabled")])
def test_push_to_hub_offline_is_one_clear_line(tmp_path, trained_model_dir, capsys, monkeypatch, token, message):
    from huggingface_hub import constants

    model_dir = tmp_path / "model"
    shutil.copytree(trained_model_dir, model_dir)
    # huggingface_hub reads these at import: set its constants, not only the environment.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # never reach the network from a test
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_token"))  # ignore a stored login
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    code, out, err = run(card_main, ["--model", str(model_dir), "--push-to-hub", "someone/emnist-digits"], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err and "someone/emnist-digits" in err
    assert (model_dir / "README.md").is_file()  # the card is written before the upload is tried


def test_model_card_eval_file_that_is_not_json(tmp_path, trained_model_dir, capsys):
    bad = tmp_path / "metrics.json"
    bad.write_text("nope")
    code, _, err = run(card_main, ["--model", str(trained_model_dir), "--eval", str(bad)], capsys)
    assert code == 2 and err.count("\n") == 1 and str(bad) in err


def test_out_into_a_missing_folder_creates_it_and_blocked_paths_are_one_line(tmp_path, trained_model_dir, capsys):
    out = tmp_path / "exports" / "v1" / "digits.onnx"
    code, stdout, _ = run(export_main, ["--model", str(trained_model_dir), "--out", str(out)], capsys)
    assert code == 0 and f"wrote {out}" in stdout
    assert onnx.load(str(out)).graph.output[0].name == "logits"
    (tmp_path / "exports" / "model.onnx").mkdir()  # the file a folder --out would get is itself a folder
    code, _, err = run(export_main, ["--model", str(trained_model_dir), "--out", str(tmp_path / "exports")], capsys)
    assert code == 2 and err.count("\n") == 1 and "is a folder" in err
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, _, err = run(export_main, ["--model", str(trained_model_dir), "--out", str(blocker / "m.onnx")], capsys)
    assert code == 2 and err.count("\n") == 1 and "cannot create its folder" in err


def test_out_naming_a_folder_writes_model_onnx_into_it_and_replaces_only_an_earlier_export(tmp_path, trained_model_dir,
                                                                                           capsys):
    """``python -m emnist_dist.onnx_export --out newdir/ --opset 19`` creates the folder and writes the opset asked
    for; ``--out newdir`` (now a folder) writes into it again, replacing that earlier export."""
    new_dir, written = tmp_path / "newdir", tmp_path / "newdir" / "model.onnx"
    code, stdout, err = run(export_main, ["--model", str(trained_model_dir), "--out", f"{new_dir}{os.sep}", "--opset",
                                          "19"], capsys)
    assert code == 0 and f"wrote {written}" in stdout, err
    assert new_dir.is_dir() and [p.name for p in new_dir.iterdir()] == ["model.onnx"]
    assert onnx.load(written).graph.output[0].name == "logits"
    # read back with onnx's own loader: the default domain's opset is the one given (not the exporter's 18)
    assert {entry.domain: entry.version for entry in onnx.load(written).opset_import}[""] == 19
    first = written.stat().st_ino
    code, stdout, _ = run(export_main, ["--model", str(trained_model_dir), "--out", str(new_dir)], capsys)
    assert code == 0 and f"wrote {written}" in stdout
    assert [p.name for p in new_dir.iterdir()] == ["model.onnx"] and written.stat().st_ino != first  # a new file
    assert onnx.load(written).graph.output[0].name == "logits"


def _foreign_onnx(path):
    """A valid ONNX model (an Identity) that emnist_dist did not write."""
    tensor = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [tensor],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph), path)


@pytest.mark.parametrize("name, make", [
    ("notes.txt", lambda path: path.write_text("my notes\n")),
    ("empty.onnx", lambda path: path.write_bytes(b"")),  # parses as an empty ONNX model
    ("other.onnx", _foreign_onnx),
])
def test_out_never_overwrites_a_file_this_command_did_not_write(tmp_path, trained_model_dir, capsys, name, make):
    target = tmp_path / name
    make(target)
    before = target.read_bytes()
    code, out, err = run(export_main, ["--model", str(trained_model_dir), "--out", str(target)], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err == (f"error: --out {target}: exists and is not an ONNX model written by emnist_dist.onnx_export; "
                   "expected a new file name (other files are never overwritten)\n")
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("opset", [7, MIN_OPSET - 1, onnx.defs.onnx_opset_version() + 1])
def test_an_opset_the_exporter_cannot_write_is_one_line_and_nothing_is_written(tmp_path, trained_model_dir, capsys,
                                                                               opset):
    out = tmp_path / "new" / "m.onnx"
    code, stdout, err = run(export_main, ["--model", str(trained_model_dir), "--out", str(out), "--opset", str(opset)],
                            capsys)
    assert code == 2 and stdout == "" and err.count("\n") == 1
    assert err.startswith(f"error: --opset {opset}: expected an ONNX opset from {MIN_OPSET} ")
    assert not (tmp_path / "new").exists()


def test_model_card_of_a_hub_dataset_names_it_and_indexes_every_test_metric():
    from emnist_dist.model_folder.artifact import ModelInfo
    from emnist_dist.reports.card import render_model_card
    from emnist_dist.model_folder.framing import NIST_FRAMING

    metrics = {"test/acc": 0.8861, "test/top5_acc": 0.9912, "test/balanced_acc": 0.8, "test/macro_f1": 0.79,
               "test/weighted_f1": 0.88, "test/case_insensitive_acc": 0.945, "test/loss": 0.4}
    info = ModelInfo("efficientnet_b3", [chr(c) for c in range(48, 58)] + [chr(c) for c in range(65, 91)]
                     + [chr(c) for c in range(97, 123)], 112, 0.17, 0.33, "byclass", "hf:someone/emnist-parquet",
                     metrics, NIST_FRAMING)
    card = ModelCard(str(render_model_card(info)))  # the Hub's parser, from the text
    assert card.data.datasets == ["someone/emnist-parquet"] and "synthetic-data" not in card.data.tags
    assert sorted(card.data.metrics) == ["accuracy", "balanced_accuracy", "f1"]
    values = {(r.metric_name, json.dumps(r.metric_args)): r.metric_value for r in card.data.eval_results}
    assert values == {("accuracy", "null"): 0.8861, ("top-5 accuracy", '{"top_k": 5}'): 0.9912,
                      ("balanced accuracy (mean per-class recall)", "null"): 0.8,
                      ("macro F1", '{"average": "macro"}'): 0.79, ("weighted F1", '{"average": "weighted"}'): 0.88,
                      ("case-insensitive accuracy", '{"case_insensitive": true}'): 0.945}
    assert {r.dataset_type for r in card.data.eval_results} == {"someone/emnist-parquet"}
    assert "SYNTHETIC" not in card.text and "predates measured framing" in card.text
