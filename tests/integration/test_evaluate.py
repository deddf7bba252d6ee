"""``python -m emnist_dist.evaluate`` and the report pieces (emnist_dist.report)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from emnist_dist.data import load_split, prepare
from emnist_dist.cli import run_cli
from emnist_dist.evaluate import main
from emnist_dist.reports.evaluation import default_out_dir
from emnist_dist.model_folder.artifact import load_model
from emnist_dist.model_folder.predictor import predict_logits, shift
from emnist_dist.reports.confusion import (
    confused_pairs,
    confusion_matrix,
    confusion_matrix_figure,
    per_class_table,
)
from emnist_dist.data.resize import to_model_input
from tests.helpers.figure_pixels import figure_pixels
from tests.helpers.framed_data import DIGITS, write_parquet_source

REPORT_FILES = {"metrics.json", "per_class.csv", "confused_pairs.csv", "confusion_matrix.png",
                "worst_misclassified.png"}


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """The synthetic digits cache (default sizes: 300 train + 50 test glyphs per class), prepared once."""
    root = tmp_path_factory.mktemp("cache")
    prepare("digits", "synthetic", root, progress=False)
    return root


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_evaluate_end_to_end_on_a_synthetic_cache(tmp_path, trained_model_dir, cache_dir, capsys):
    out = tmp_path / "report"
    code, stdout, stderr = run(["--model", str(trained_model_dir), "--data.cache_dir", str(cache_dir),
                                "--out", str(out), "--cpu"], capsys)
    assert code == 0, stderr
    assert {p.name for p in out.iterdir()} == REPORT_FILES
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "digits" and metrics["synthetic"] is True and metrics["tta"] is False
    assert metrics["test/num_samples"] == 500
    # Hand computation from the per-class CSV: accuracy = sum(recall * support) / N, balanced = mean recall,
    # macro F1 = mean F1.
    rows = _read_csv(out / "per_class.csv")
    assert [r["class"] for r in rows] == list("0123456789")
    support = np.array([int(r["support"]) for r in rows])
    recall = np.array([float(r["recall"]) for r in rows])
    assert support.sum() == 500
    assert metrics["test/acc"] == pytest.approx((recall * support).sum() / support.sum(), abs=1e-6)
    assert metrics["test/balanced_acc"] == pytest.approx(recall.mean(), abs=1e-6)
    assert metrics["test/macro_f1"] == pytest.approx(np.mean([float(r["f1"]) for r in rows]), abs=1e-6)
    # ... and from an independent forward pass of the exported model on the cached test split.
    model, info = load_model(trained_model_dir)
    images, labels = load_split(prepare("digits", "synthetic", cache_dir, progress=False), "test")
    with torch.inference_mode():
        logits = model(to_model_input(images, info.image_size, info.mean, info.std))
    preds = logits.argmax(1)
    assert metrics["test/acc"] == pytest.approx(float((preds == labels).float().mean()), abs=1e-6)
    assert metrics["test/top5_acc"] == pytest.approx(
        float((logits.topk(5, dim=1).indices == labels[:, None]).any(dim=1).float().mean()), abs=1e-6)
    assert metrics["test/acc"] > 0.8
    assert metrics["reframed"] is False and metrics["data_framing"]["centre"] == info.framing.centre
    assert "test/case_insensitive_acc" not in metrics  # digits: no letter case
    # Printed: every metric, then the per-class table (header, one row per class as in per_class.csv, a blank
    # line), then the most confused pairs (as in confused_pairs.csv), then the report location.
    lines = stdout.splitlines()
    metric_keys = [k for k in metrics if k.startswith("test/") and k != "test/num_samples"]
    assert "test/top5_acc" in metric_keys and metrics["test/acc"] <= metrics["test/top5_acc"]
    assert lines[1 : 1 + len(metric_keys)] == [f"  {k:<26} {100 * metrics[k]:6.2f}%" for k in metric_keys]
    header = lines.index(f"{'class':>5} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}")
    table = [line.split() for line in lines[header + 1 : header + 11]]
    assert table == [[r["class"], f"{float(r['precision']):.4f}", f"{float(r['recall']):.4f}",
                      f"{float(r['f1']):.4f}", r["support"]] for r in rows]
    assert lines[header + 11] == ""
    pairs = _read_csv(out / "confused_pairs.csv")
    # The small model reads (nearly) all these digits right: the printed pairs are checked below, on glyphs framed
    # unlike its training glyphs; here the block is there exactly when a pair is.
    assert ("most confused (true -> predicted):" in lines) == bool(pairs)
    assert lines[-1] == f"report written to {out}"
    # Confused pairs: the off-diagonal counts of the confusion matrix, most first.
    wrong = int((preds != labels).sum())
    assert sum(int(p["count"]) for p in pairs) == wrong
    assert [int(p["count"]) for p in pairs] == sorted((int(p["count"]) for p in pairs), reverse=True)
    # Each pair's count is how often the independent forward pass mistook its true class for its prediction.
    for p in pairs:
        true, pred = "0123456789".index(p["true"]), "0123456789".index(p["pred"])
        assert int(p["count"]) == int(((labels == true) & (preds == pred)).sum()), p
    with Image.open(out / "confusion_matrix.png") as png:
        assert png.format == "PNG" and min(png.size) >= 400
    with Image.open(out / "worst_misclassified.png") as png:  # 6 columns, a row per 6 mistakes
        assert png.format == "PNG" and png.size[0] >= 6 * 150 and png.size[1] >= 150 * -(-min(wrong, 36) // 6)


def test_default_report_folder_is_beside_the_model(tmp_path):
    assert default_out_dir(tmp_path / "run" / "model") == (tmp_path / "run" / "eval").resolve()


def test_test_time_augmentation_averages_shifted_logits(trained_model_dir, cache_dir):
    model, info = load_model(trained_model_dir)
    images, _ = load_split(prepare("digits", "synthetic", cache_dir, progress=False), "test")
    images = images[:16]
    with torch.inference_mode():
        views = [model(to_model_input(shift(images, dy, dx), info.image_size, info.mean, info.std))
                 for dy, dx in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))]
    expected = torch.stack(views).mean(0)
    got = predict_logits(model, info, images, batch_size=5, tta=True)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    plain = predict_logits(model, info, images, batch_size=5)
    torch.testing.assert_close(plain, views[0], atol=1e-5, rtol=1e-5)


def test_shift_moves_pixels_and_fills_with_background():
    x = torch.arange(1, 26, dtype=torch.uint8).view(1, 1, 5, 5)
    down = shift(x, 1, 0)
    assert torch.equal(down[..., 1:, :], x[..., :-1, :]) and down[..., 0, :].eq(0).all()
    left = shift(x, 0, -1)
    assert torch.equal(left[..., :, :-1], x[..., :, 1:]) and left[..., :, -1].eq(0).all()


def test_per_class_table_and_pairs_against_a_hand_count():
    names = ["c", "C", "0"]
    targets = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    preds = torch.tensor([0, 0, 1, 1, 1, 0, 2, 2, 2, 0])
    # By hand: class c: TP 2, predicted 4 times (2 + C->c 1 + 0->c 1), support 4.
    #          class C: TP 1, predicted 3 times, support 2.   class 0: TP 3, predicted 3 times, support 4.
    rows = {r["class"]: r for r in per_class_table(preds, targets, names)}
    assert rows["c"]["precision"] == pytest.approx(2 / 4) and rows["c"]["recall"] == pytest.approx(2 / 4)
    assert rows["C"]["precision"] == pytest.approx(1 / 3) and rows["C"]["recall"] == pytest.approx(1 / 2)
    assert rows["0"]["precision"] == pytest.approx(1.0) and rows["0"]["recall"] == pytest.approx(3 / 4)
    assert rows["C"]["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert [rows[n]["support"] for n in names] == [4, 2, 4]
    cm = confusion_matrix(preds, targets, 3)
    assert cm.tolist() == [[2, 2, 0], [1, 1, 0], [1, 0, 3]]
    pairs = confused_pairs(cm, names)
    assert [(p["true"], p["pred"], p["count"]) for p in pairs] == [("c", "C", 2), ("C", "c", 1), ("0", "c", 1)]
    assert pairs[0]["rate"] == pytest.approx(0.5) and pairs[0]["case_only"] and not pairs[2]["case_only"]


def test_confusion_figure_draws_each_true_class_as_a_row_normalised_to_one():
    import matplotlib

    names = ["c", "C", "0"]
    cm = torch.tensor([[2, 2, 0], [1, 1, 0], [1, 0, 3]])
    # By hand: row t holds cm[t] / sum(cm[t]); a column-normalised or transposed picture differs in 5 of 9 cells.
    rates = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.25, 0.0, 0.75]])
    figure = confusion_matrix_figure(cm, names)
    pixels = figure_pixels(figure)
    ax = figure.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    assert [t.get_text() for t in ax.get_yticklabels()] == names == [t.get_text() for t in ax.get_xticklabels()][:3]
    # Every cell's colour, read from the rendered pixels beside the cell's corner (clear of its percentage):
    # matplotlib's own viridis at the square-root colour scale of the hand-computed rate.
    viridis = matplotlib.colormaps["viridis"]
    height = pixels.shape[0]
    for true in range(3):
        for pred in range(3):
            x, y = ax.transData.transform((pred - 0.35, true - 0.35))
            drawn = pixels[int(height - y), int(x)].astype(int)
            expected = np.round(np.array(viridis(np.sqrt(rates[true, pred]))[:3]) * 255).astype(int)
            assert np.abs(drawn - expected).max() <= 3, (true, pred, drawn, expected)
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert texts == {(0, 0): "50", (0, 1): "50", (1, 0): "50", (1, 1): "50", (2, 0): "25", (2, 2): "75"}


def test_confusion_figure_at_62_classes_is_large_enough_to_read():
    names = [chr(c) for c in range(48, 58)] + [chr(c) for c in range(65, 91)] + [chr(c) for c in range(97, 123)]
    cm = torch.eye(62, dtype=torch.long) * 50
    array = figure_pixels(confusion_matrix_figure(cm, names))
    assert array.dtype == np.uint8 and array.shape[2] == 3
    assert min(array.shape[:2]) >= 62 * 25  # at least ~25 pixels per class at 100 dpi


@pytest.mark.parametrize("extra, message", [
    (["--data.split", "letters"], "classes are not"),
    (["--data.split", "nonsense"], "unknown EMNIST split"),
    (["--batch-size", "0"], "--batch-size 0"),
    (["--bogus"], "unrecognized arguments"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, trained_model_dir, capsys, extra, message):
    code, out, err = run(["--model", str(trained_model_dir), "--out", str(tmp_path / "r"), *extra], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("kind", ["file", "file as parent"])
def test_an_out_that_is_a_file_is_refused_before_evaluating(tmp_path, trained_model_dir, capsys, kind):
    """Found by the hostile pass: ``--out mine.png`` evaluated the whole test split, then ended in a traceback."""
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"the user's picture")
    out = mine if kind == "file" else mine / "report"
    code, stdout, err = run(["--model", str(trained_model_dir), "--out", str(out)], capsys)
    assert code == 2 and err == f"error: --out {out}: {mine} is not a folder: expected a report folder (new or existing)\n"
    assert stdout == "" and mine.read_bytes() == b"the user's picture"  # refused before any glyph was read


def test_a_model_without_a_recorded_source_needs_data_source(tmp_path, trained_model_dir, capsys):
    model = tmp_path / "model"
    shutil.copytree(trained_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["emnist_dist"]["source"] = ""
    (model / "config.json").write_text(json.dumps(config))
    code, _, err = run(["--model", str(model), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and err.count("\n") == 1 and "--data.source" in err
    assert not (tmp_path / "r").exists()


def test_python_dash_m_entry_point(tmp_path, trained_model_dir):
    # A missing model folder: proves the entry point and its one-line error (no data is prepared).
    done = subprocess.run([sys.executable, "-m", "emnist_dist.evaluate", "--model", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and str(tmp_path / "none") in done.stderr


def test_test_glyphs_framed_unlike_the_training_glyphs_are_converted_first(tmp_path, trained_model_dir, capsys):
    # The model learnt the synthetic glyphs' framing; these digits are framed as MNIST frames them.
    source = write_parquet_source(tmp_path / "mnist_framed", "mnist", DIGITS, 1, 30)
    results, printed_by = {}, {}
    for name, flags in (("auto", []), ("always", []), ("tta", ["--tta"]), ("never", [])):
        reframe = "never" if name == "tta" else name
        out = tmp_path / name
        code, stdout, stderr = run(["--model", str(trained_model_dir), "--data.source", str(source), "--data.cache_dir",
                                    str(tmp_path / "cache"), "--out", str(out), "--reframe", reframe, "--cpu", *flags],
                                   capsys)
        assert code == 0, stderr
        results[name], printed_by[name] = json.loads((out / "metrics.json").read_text()), stdout
        assert results[name]["data_framing"]["centre"] == "mass"
    assert results["auto"]["reframed"] is True and results["never"]["reframed"] is False
    # --reframe always converts these glyphs as auto decided to; --tta averages the five one-pixel shifts' logits,
    # re-done here with the model on the cached test glyphs.
    assert results["always"]["reframed"] is True and results["always"]["test/acc"] == results["auto"]["test/acc"]
    model, info = load_model(trained_model_dir)
    images, labels = load_split(prepare("digits", str(source), tmp_path / "cache", progress=False), "test")
    with torch.inference_mode():
        views = [model(to_model_input(shift(images, dy, dx), info.image_size, info.mean, info.std))
                 for dy, dx in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))]
    tta_acc = float((torch.stack(views).mean(0).argmax(1) == labels).float().mean())
    plain_acc = float((views[0].argmax(1) == labels).float().mean())
    assert results["tta"]["tta"] is True and results["tta"]["test/acc"] == pytest.approx(tta_acc, abs=1e-6)
    assert results["never"]["tta"] is False and results["never"]["test/acc"] == pytest.approx(plain_acc, abs=1e-6)
    assert tta_acc != plain_acc  # the two differ on these glyphs: the flag is seen
    # Unconverted, the model confuses digits: the pairs file and the printed list agree with a hand count from the
    # per-class table (each class's missed samples are its pairs' counts).
    pairs = _read_csv(tmp_path / "never" / "confused_pairs.csv")
    rows = _read_csv(tmp_path / "never" / "per_class.csv")
    missed = {r["class"]: round(int(r["support"]) * (1 - float(r["recall"]))) for r in rows}
    assert pairs and sum(int(p["count"]) for p in pairs) == sum(missed.values())
    assert all(sum(int(p["count"]) for p in pairs if p["true"] == c) == n for c, n in missed.items())
    assert sum(missed.values()) == round(30 * 10 * (1 - results["never"]["test/acc"]))
    lines = printed_by["never"].splitlines()
    start = lines.index("most confused (true -> predicted):") + 1
    printed = [line.split(":")[0].strip() for line in lines[start : start + min(10, len(pairs))]]
    assert printed == [f"{p['true']} -> {p['pred']}" for p in pairs[:10]]
    assert results["auto"]["test/acc"] >= max(results["never"]["test/acc"], 0.95)
