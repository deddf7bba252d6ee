"""``python -m emnist_dist.predict`` on a user's own images, with a model trained in the test session."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from emnist_dist.cli import run_cli
from emnist_dist.predict import main
from emnist_dist.model_folder.artifact import load_model
from tests.helpers.hostile_photos import dotted_png
from tests.helpers.peak_memory import run_measured
from tests.helpers.model_reference import assert_framed_as, model_probabilities

FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def draw_char(path: Path, char: str, *, size=(300, 200), at=(40, 20), font_px=110, font="DejaVuSerif.ttf",
              ink=(20, 20, 60), paper=(245, 240, 225), mode="RGB") -> Path:
    """A character drawn like a photo of writing: dark ink on light paper, off-centre on a wider canvas."""
    image = Image.new("RGB", size, paper)
    ImageDraw.Draw(image).text(at, char, fill=ink, font=ImageFont.truetype(str(FONTS / font), font_px))
    image.convert(mode).save(path)
    return path


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the CLI in-process through run_cli; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def reference_top_k(model_dir: Path, glyph_file: Path, k: int) -> list[dict]:
    """The top-k the JSON should hold, computed here from the glyph predict saved (--save-glyphs): it is framed
    as the model's training glyphs, and the model's softmax on it, re-derived, gives the k most likely labels."""
    model, info = load_model(model_dir)
    glyph = np.asarray(Image.open(glyph_file))
    assert_framed_as(glyph, info.framing)
    probs = model_probabilities(model, info, glyph[None])[0]
    order = probs.argsort(descending=True)[:k]
    return [{"label": info.class_names[i], "prob": float(probs[i])} for i in order]


def test_predicts_digits_drawn_dark_on_light_at_another_size_and_position(tmp_path, trained_model_dir, capsys):
    for d in range(10):
        draw_char(tmp_path / f"digit_{d}.png", str(d), at=(20 + 17 * d, 5 + 6 * d), font_px=90 + 4 * d)
    glyphs = tmp_path / "glyphs"
    code, out, err = run(["--model", str(trained_model_dir), str(tmp_path), "--json", "--top-k", "3", "--cpu",
                          "--save-glyphs", str(glyphs)], capsys)
    assert code == 0 and err == ""
    records = [json.loads(line) for line in out.splitlines()]
    assert [Path(r["path"]).name for r in records] == [f"digit_{d}.png" for d in range(10)]
    for r, glyph_file in zip(records, sorted(glyphs.iterdir()), strict=True):
        assert all(set(p) == {"label", "prob"} for p in r["predictions"])
        expected = reference_top_k(trained_model_dir, glyph_file, 3)
        assert [p["label"] for p in r["predictions"]] == [p["label"] for p in expected]
        assert [p["prob"] for p in r["predictions"]] == pytest.approx([p["prob"] for p in expected], abs=2e-6)
    right = sum(r["predictions"][0]["label"] == Path(r["path"]).stem[-1] for r in records)
    assert right >= 8, records


def test_human_output_shows_top_k_with_probabilities(tmp_path, trained_model_dir, capsys):
    a = draw_char(tmp_path / "a.png", "3", font="DejaVuSans.ttf")
    b = draw_char(tmp_path / "b.jpg", "7", ink=(250, 250, 250), paper=(10, 10, 10), mode="L")  # light on dark
    code, out, _ = run(["--model", str(trained_model_dir), str(a), str(b), "--top-k", "2"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    for line, path in zip(lines, (a, b)):
        head, rest = line.split(": ", 1)
        assert head == str(path)
        cells = rest.split("  ")
        assert len(cells) == 2
        percents = [float(cell.split(" ")[1].rstrip("%")) for cell in cells]
        assert percents[0] >= percents[1]
    code, out_json, _ = run(["--model", str(trained_model_dir), str(a), str(b), "--top-k", "2", "--json"], capsys)
    top = [json.loads(line)["predictions"][0]["label"] for line in out_json.splitlines()]
    assert [line.split(": ")[1].split(" ")[0] for line in lines] == top


def test_folders_are_searched_recursively_and_a_bad_file_does_not_stop_the_others(tmp_path, trained_model_dir, capsys):
    folder = tmp_path / "scans"
    (folder / "sub").mkdir(parents=True)
    draw_char(folder / "sub" / "one.png", "1")
    draw_char(folder / "two.jpg", "2")
    (folder / "notes.txt").write_text("not an image, and not an image suffix: skipped\n")
    (folder / "broken.png").write_text("not a PNG\n")
    code, out, err = run(["--model", str(trained_model_dir), str(folder), "--json"], capsys)
    assert code == 1
    assert [Path(json.loads(line)["path"]).name for line in out.splitlines()] == ["one.png", "two.jpg"]
    assert err.count("\n") == 1 and err.startswith("error: ") and str(folder / "broken.png") in err


def test_each_bad_input_is_one_line_on_stderr_and_the_exit_code_is_1(tmp_path, trained_model_dir, capsys):
    good = draw_char(tmp_path / "good.png", "5")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello\n")
    Image.new("L", (1, 1), 0).save(tmp_path / "tiny.png")
    Image.new("RGB", (120, 90), "white").save(tmp_path / "blank.png")
    (tmp_path / "empty_folder").mkdir()
    bad = ["missing.png", "empty.png", "text.png", "tiny.png", "blank.png", "empty_folder"]
    argv = ["--model", str(trained_model_dir), str(good), *(str(tmp_path / name) for name in bad)]
    code, out, err = run(argv, capsys)
    assert code == 1
    assert out.splitlines()[0].startswith(f"{good}: ")
    lines = err.splitlines()
    assert len(lines) == len(bad)
    for name in bad:
        assert sum(str(tmp_path / name) in line for line in lines) == 1, (name, lines)
    assert all(line.startswith("error: ") for line in lines) and "Traceback" not in err


def _broken_model(src: Path, dst: Path, problem: str) -> Path:
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    if problem == "no config":
        (dst / "config.json").unlink()
    elif problem == "no weights":
        (dst / "model.safetensors").unlink()
    elif problem == "fewer classes than the weights":
        config["label_names"], config["num_classes"] = config["label_names"][:9], 9
        (dst / "config.json").write_text(json.dumps(config))
    elif problem == "other architecture":
        config["architecture"] = "resnet18"
        (dst / "config.json").write_text(json.dumps(config))
    elif problem == "unknown architecture":
        config["architecture"] = "no_such_net"
        (dst / "config.json").write_text(json.dumps(config))
    elif problem == "config not JSON":
        (dst / "config.json").write_text("{ not json")
    elif problem == "weights not safetensors":
        (dst / "model.safetensors").write_bytes(b"garbage" * 10)
    return dst


@pytest.mark.parametrize("problem", ["no config", "no weights", "fewer classes than the weights", "other architecture",
                                     "unknown architecture", "config not JSON", "weights not safetensors"])
def test_model_folder_problems_are_one_line_and_exit_2(tmp_path, trained_model_dir, capsys, problem):
    model = _broken_model(trained_model_dir, tmp_path / "model", problem)
    image = draw_char(tmp_path / "x.png", "4")
    code, out, err = run(["--model", str(model), str(image)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and str(model) in err


def test_model_path_that_is_not_a_folder(tmp_path, capsys):
    code, _, err = run(["--model", str(tmp_path / "nothing"), "x.png"], capsys)
    assert code == 2 and err.count("\n") == 1 and "not a folder" in err


@pytest.mark.parametrize("argv, message", [
    (["--top-k", "0", "x.png"], "--top-k 0"),
    (["--batch-size", "0", "x.png"], "--batch-size 0"),
    (["--frobnicate", "x.png"], "unrecognized arguments"),
    ([], "required"),
])
def test_argument_errors_are_one_line(trained_model_dir, capsys, argv, message):
    code, _, err = run(["--model", str(trained_model_dir), *argv], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err


def test_small_batches_give_the_same_predictions_and_saved_glyphs_are_what_the_model_saw(tmp_path, trained_model_dir,
                                                                                          capsys):
    images = tmp_path / "imgs"
    images.mkdir()
    for i, char in enumerate("0123456"):
        draw_char(images / f"{i}.png", char, at=(30 + 10 * i, 10))
    (images / "3b.png").write_text("broken")  # a failure inside a chunk must not shift the others
    base = ["--model", str(trained_model_dir), str(images), "--json", "--top-k", "10"]
    code_all, all_at_once, _ = run(base, capsys)
    code_small, in_pairs, _ = run([*base, "--batch-size", "2", "--save-glyphs", str(tmp_path / "glyphs")], capsys)
    assert code_all == code_small == 1
    a = [json.loads(line) for line in all_at_once.splitlines()]
    b = [json.loads(line) for line in in_pairs.splitlines()]
    assert [r["path"] for r in a] == [r["path"] for r in b]
    for ra, rb in zip(a, b):
        pa = {p["label"]: p["prob"] for p in ra["predictions"]}
        pb = {p["label"]: p["prob"] for p in rb["predictions"]}
        assert pa.keys() == pb.keys() and all(abs(pa[k] - pb[k]) < 1e-5 for k in pa)
    saved = sorted((tmp_path / "glyphs").iterdir())
    assert [path.name.split("_", 1)[1] for path in saved] == [Path(r["path"]).name for r in b]
    for record, glyph_file in zip(b, saved, strict=True):  # the model's own probabilities on the saved glyph
        expected = reference_top_k(trained_model_dir, glyph_file, 10)
        assert [p["prob"] for p in record["predictions"]] == pytest.approx([p["prob"] for p in expected], abs=2e-6)


def test_save_glyphs_pointing_at_a_file_is_one_line(tmp_path, trained_model_dir, capsys):
    image = draw_char(tmp_path / "six.png", "6")
    taken = tmp_path / "glyphs.png"
    taken.write_bytes(b"a file, not a folder")
    code, out, err = run(["--model", str(trained_model_dir), str(image), "--save-glyphs", str(taken)], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err == f"error: --save-glyphs {taken}: is a file; expected a folder (it is created if missing)\n"
    code, _, err = run(["--model", str(trained_model_dir), str(image), "--save-glyphs", str(taken / "sub")], capsys)
    assert code == 2 and err.count("\n") == 1 and f"--save-glyphs {taken / 'sub'}: cannot create the folder" in err


def test_python_dash_m_entry_point(tmp_path, trained_model_dir):
    image = draw_char(tmp_path / "eight.png", "8")
    done = subprocess.run([sys.executable, "-m", "emnist_dist.predict", "--model", str(trained_model_dir), str(image),
                           "--json", "--cpu", "--save-glyphs", str(tmp_path / "glyphs")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["path"] == str(image)
    expected = reference_top_k(trained_model_dir, tmp_path / "glyphs" / "00000_eight.png", 3)
    assert [p["label"] for p in record["predictions"]] == [p["label"] for p in expected]
    assert [p["prob"] for p in record["predictions"]] == pytest.approx([p["prob"] for p in expected], abs=2e-6)


@pytest.mark.parametrize("dots", [625, 10_000])
def test_a_page_of_dots_is_answered_in_bounded_time_and_memory(tmp_path, trained_model_dir, dots):
    """A small PNG of scattered specks asks to thicken strokes a few pixels wide across the whole page by tens of
    pixels. Measured (one core, under load): 625 dots 37-68 s, 10,000 dots minutes with a square max-pool;
    about 5 s in all (startup included) with the separable one, whose answer is the same."""
    page = dotted_png(tmp_path / "dots.png", dots)
    assert page.stat().st_size < 60_000
    run = run_measured("emnist_dist.predict", ["--model", str(trained_model_dir), str(page), "--cpu"],
                       tmp_path / "status.txt")
    out, err = run.stdout, run.stderr
    answered = (run.returncode == 0 and out.startswith(f"{page}: ") and out.count("\n") == 1
                or run.returncode != 0 and err.count("\n") == 1 and err.startswith(f"error: {page}: "))
    assert answered, (out, err)
    assert run.cpu_s < 30 and run.peak_mb < 1500, (run.cpu_s, run.peak_mb)
