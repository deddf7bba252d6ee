"""``python -m emnist_dist.read`` (and predict) on the photos of a hostile pass: each fault found once, now a test.

The model is the small digit model trained in the test session (typed digits read like its rendered
training glyphs); the photos come from tests/helpers/hostile_photos.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emnist_dist.cli import run_cli
from emnist_dist.predict import main as predict_main
from emnist_dist.read import main
from tests.helpers.hostile_photos import (blocks_png, dash_photo, deep_grey_png, dotted_png, form_field, speckled,
                                          transparent_ink_png, typed_digits)
from tests.helpers.line_photos import words_photo
from tests.helpers.peak_memory import run_measured


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def read_texts(model_dir: Path, photos: list[Path], capsys, *options: str) -> tuple[int, list[str], str]:
    code, out, err = run(["--model", str(model_dir), *map(str, photos), "--json", "--cpu", *options], capsys)
    return code, [json.loads(line)["text"] for line in out.splitlines()], err


def test_annotate_refuses_an_existing_file_and_never_touches_the_photo(tmp_path, trained_model_dir, capsys):
    photo = words_photo(tmp_path / "words.png")
    kept = photo.read_bytes()
    code, out, err = run(["--model", str(trained_model_dir), str(photo), "--annotate", str(photo)], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "already exists" in err and str(photo) in err
    assert photo.read_bytes() == kept

    other = tmp_path / "drawing.png"
    other.write_bytes(b"a user's file")
    code, out, err = run(["--model", str(trained_model_dir), str(photo), "--annotate", str(other)], capsys)
    assert code == 2 and "already exists" in err and other.read_bytes() == b"a user's file"

    folder = tmp_path / "drawn"
    folder.mkdir()
    (folder / "00001_words.png").write_bytes(b"an earlier drawing")
    code, out, err = run(["--model", str(trained_model_dir), str(photo), str(photo), "--annotate", str(folder)], capsys)
    assert code == 2 and "00001_words.png" in err and "already exists" in err
    assert sorted(p.name for p in folder.iterdir()) == ["00001_words.png"]
    assert (folder / "00001_words.png").read_bytes() == b"an earlier drawing"

    code, out, err = run(["--model", str(trained_model_dir), str(photo), "--annotate", str(tmp_path / "new.png")],
                         capsys)
    assert code == 0 and out.strip().endswith("12 345")
    with Image.open(tmp_path / "new.png") as drawn:
        assert drawn.size == Image.open(photo).size


def test_annotate_names_a_png_file_or_a_folder_and_a_name_like_a_file_is_refused(tmp_path, trained_model_dir,
                                                                                  capsys):
    """Found by the hostile pass: ``--annotate x.txt`` became a folder named x.txt."""
    photo = words_photo(tmp_path / "words.png")
    for photos, out in (([photo], tmp_path / "x.txt"), ([photo, photo], tmp_path / "drawn.png")):
        code, printed, err = run(["--model", str(trained_model_dir), *map(str, photos), "--annotate", str(out)], capsys)
        assert (code, printed) == (2, "") and err == (
            f"error: --annotate {out}: would be a new folder named like a file ({out.suffix}); expected a "
            ".png/.jpg/.jpeg/.webp file for one photo, else a folder name without a suffix\n")
        assert not out.exists()
    glyphs = tmp_path / "glyphs.png"  # predict's --save-glyphs takes a folder by the same rule
    with pytest.raises(SystemExit) as exit_info:
        run_cli(predict_main, ["--model", str(trained_model_dir), str(photo), "--save-glyphs", str(glyphs)])
    assert exit_info.value.code == 2 and "would be a new folder named like a file (.png)" in capsys.readouterr().err
    assert not glyphs.exists()


def test_annotate_into_a_place_that_cannot_be_written_is_refused_before_reading(tmp_path, trained_model_dir, capsys):
    """Found by the hostile pass: the failure came after the photos were read."""
    photo = words_photo(tmp_path / "words.png")
    out = tmp_path / "missing" / "drawn.png"
    code, printed, err = run(["--model", str(trained_model_dir), str(photo), "--annotate", str(out)], capsys)
    assert (code, printed) == (2, "")  # nothing read
    assert err == (f"error: --annotate {out}: cannot write in {out.parent} (No such file or directory): "
                   "expected a writable folder\n")


@pytest.mark.parametrize("suffix", [".png", ".tiff"])
def test_twelve_bit_images_are_scaled_by_their_own_range(tmp_path, trained_model_dir, capsys, suffix):
    photo = deep_grey_png(tmp_path / f"deep{suffix}", "4072 518", bits=12)
    with Image.open(photo) as im:  # really 16-bit storage holding 12-bit values
        assert im.mode.startswith("I") and np.asarray(im).max() <= 4095
    code, texts, err = read_texts(trained_model_dir, [photo], capsys, "--charset", "digits")
    assert (code, texts, err) == (0, ["4072 518"], "")

    grey, boxes = typed_digits("7")
    single = tmp_path / f"seven{suffix}"
    Image.fromarray(np.round(grey / 255 * 4095).astype(np.uint16)).save(single)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(predict_main, ["--model", str(trained_model_dir), str(single), "--json", "--cpu"])
    assert exit_info.value.code == 0
    assert json.loads(capsys.readouterr().out)["predictions"][0]["label"] == "7"


def test_long_strips_are_read_at_their_own_resolution(tmp_path, trained_model_dir, capsys):
    rng = np.random.default_rng(5)
    digits = "".join(map(str, rng.integers(0, 10, 32)))
    grey, _ = typed_digits(digits, height=150, gap=2.0)  # about 12,600 x 360 pixels
    wide = tmp_path / "wide.png"
    Image.fromarray(grey).save(wide)
    strip_digits = "".join(map(str, rng.integers(0, 10, 150)))
    grey, _ = typed_digits(strip_digits, height=100, gap=1.0, margin=50)
    strip = np.full((200, 30_000), grey[0, 0], np.uint8)  # a 30,000 x 200 strip
    strip[:, : grey.shape[1]] = grey[:200]
    strip_path = tmp_path / "strip.png"
    Image.fromarray(strip).save(strip_path)
    assert Image.open(wide).width >= 11_000 and Image.open(strip_path).size == (30_000, 200)
    code, texts, err = read_texts(trained_model_dir, [wide, strip_path], capsys, "--charset", "digits")
    assert (code, err) == (0, "")
    assert texts == [digits, strip_digits]


def test_a_photo_too_thin_for_any_resolution_names_its_real_size(tmp_path, trained_model_dir, capsys):
    thin = tmp_path / "thin.png"
    Image.fromarray(np.full((4, 30_000), 200, np.uint8)).save(thin)
    code, texts, err = read_texts(trained_model_dir, [thin], capsys)
    assert code == 1 and texts == [] and err.count("\n") == 1 and "30000x4" in err


@pytest.mark.parametrize("height", [1, 2])
def test_a_thin_horizontal_stroke_gets_one_line_and_the_next_photos_are_read(tmp_path, trained_model_dir, capsys,
                                                                            height):
    dash = dash_photo(tmp_path / "dash.png", height)
    words = words_photo(tmp_path / "words.png")
    code, texts, err = read_texts(trained_model_dir, [dash, words], capsys)
    assert code == 1 and texts == ["12 345"]
    assert err.count("\n") == 1 and err.startswith(f"error: {dash}: ") and "Traceback" not in err


def test_ten_thousand_dots_are_refused_in_bounded_memory_and_the_next_photo_is_read(tmp_path, trained_model_dir):
    dots = dotted_png(tmp_path / "dots.png", 10_000)
    assert dots.stat().st_size < 60_000
    words = words_photo(tmp_path / "words.png")
    run = run_measured("emnist_dist.read", ["--model", str(trained_model_dir), str(dots), str(words), "--cpu"],
                       tmp_path / "status.txt")
    assert run.returncode == 1 and run.stdout.strip() == f"{words}: 12 345"
    assert run.stderr.count("\n") == 1 and run.stderr.startswith(f"error: {dots}: ") and "marks" in run.stderr
    # Measured after the fix: 960 MB in a child of a fresh shell; before the fix: 2,800 MB and a traceback.
    assert run.peak_mb < 1500, run.peak_mb


def test_a_page_of_character_sized_blocks_is_refused_in_seconds_and_the_next_photo_is_read(tmp_path,
                                                                                           trained_model_dir):
    """Found by the hostile pass: 1,990 squares of 12x12 (a 3 KB PNG, under the marks cap) were cut into 35,820
    candidate characters, each framed and classified: more than 56 s of CPU, killed at 120 s. 250 squares: 43 s."""
    blocks = blocks_png(tmp_path / "blocks.png", 1990)
    words = words_photo(tmp_path / "words.png")
    run = run_measured("emnist_dist.read", ["--model", str(trained_model_dir), str(blocks), str(words), "--cpu"],
                       tmp_path / "status.txt")
    assert run.returncode == 1 and run.stdout.strip() == f"{words}: 12 345", run.stderr
    assert run.stderr == (f"error: {blocks}: its 1,990 marks could be cut into 35,820 characters; at most 4,000 are "
                          "weighed (expected lines of handwriting, not a page of marks)\n")
    assert run.cpu_s < 30, run.cpu_s  # measured after the fix: about 10 s, most of it start-up


def test_pairs_of_specks_are_dust_not_glyphs(tmp_path, trained_model_dir, capsys):
    grey, _ = typed_digits("4072 518")
    dusty = tmp_path / "dusty.png"
    Image.fromarray(speckled(grey, 500)).save(dusty)
    code, texts, err = read_texts(trained_model_dir, [dusty], capsys, "--charset", "digits")
    assert (code, texts, err) == (0, ["4072 518"], "")


@pytest.mark.parametrize("white_ink", [True, False], ids=["white-ink-on-transparency", "transparent-ink"])
def test_ink_drawn_in_the_alpha_channel_is_read(tmp_path, trained_model_dir, capsys, white_ink):
    photo = transparent_ink_png(tmp_path / "alpha.png", "4072 518", white_ink)
    code, texts, err = read_texts(trained_model_dir, [photo], capsys, "--charset", "digits")
    assert (code, texts, err) == (0, ["4072 518"], "")


@pytest.mark.parametrize("frame", ["plain", "boxes", "comb", "rule"])
def test_numbers_in_form_boxes_or_on_a_rule_read_as_the_plain_ones(tmp_path, trained_model_dir, capsys, frame):
    photo = tmp_path / f"{frame}.png"
    Image.fromarray(form_field("4072518", frame)).save(photo)
    code, texts, err = read_texts(trained_model_dir, [photo], capsys, "--charset", "digits")
    assert (code, texts, err) == (0, ["4072518"], "")
