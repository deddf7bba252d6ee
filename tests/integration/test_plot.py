"""``python -m emnist_dist.plot``: learning curves of one run or several, from metrics.jsonl."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib
import numpy as np
import pytest
from PIL import Image

from emnist_dist.cli import run_cli
from emnist_dist.reports.run_plots import curves_figure, read_metrics_log
from emnist_dist.plot import main
from tests.helpers.train_runs import REPO


def write_run(folder, records) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def records(scale: float) -> list[dict]:
    return [{"epoch": e, "step": 10 * e, "val/acc": scale * e / 4, "val/balanced_acc": scale * e / 5,
             "val/top5_acc": min(1.0, scale * e / 3), "train/loss": 2.0 / e, "lr": 1e-3 / e} for e in (1, 2, 3)]


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_the_figure_plots_the_records_against_epochs(tmp_path):
    write_run(tmp_path / "a", records(0.9))
    write_run(tmp_path / "b", records(0.6))
    runs = {name: read_metrics_log(tmp_path / name) for name in ("a", "b")}
    loss, accuracy, lr = curves_figure(runs).axes
    for i, name in enumerate(runs):
        assert list(loss.lines[i].get_xdata()) == [1, 2, 3]
        assert list(loss.lines[i].get_ydata()) == [r["train/loss"] for r in runs[name]]
        assert list(lr.lines[i].get_ydata()) == [r["lr"] for r in runs[name]]
        assert [list(line.get_ydata()) for line in accuracy.lines[3 * i : 3 * i + 3]] == \
            [[r[k] for r in runs[name]] for k in ("val/acc", "val/balanced_acc", "val/top5_acc")]
    assert lr.get_yscale() == "log" and [t.get_text() for t in loss.get_legend().get_texts()] == ["a", "b"]


def test_one_run_redraws_its_curves_and_several_are_compared(tmp_path, capsys, monkeypatch):
    write_run(tmp_path / "a", records(0.9))
    write_run(tmp_path / "b", records(0.6))
    code, out, _ = run([str(tmp_path / "a")], capsys)
    assert code == 0 and out == f"wrote {tmp_path / 'a' / 'curves.png'}\n"
    monkeypatch.chdir(tmp_path)
    done = subprocess.run([sys.executable, "-m", "emnist_dist.plot", "a", "b"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and done.stdout == "wrote curves_compared.png\n", done.stderr
    with Image.open(tmp_path / "curves_compared.png") as png:
        assert png.format == "PNG" and png.size == (1500, 450)
        compared = np.asarray(png.convert("RGB")).astype(int)
    with Image.open(tmp_path / "a" / "curves.png") as png:
        single = np.asarray(png.convert("RGB")).astype(int)
    # matplotlib's colour cycle draws the first run in C0 (blue) and the second in C1 (orange): the comparison
    # shows both runs' lines, the single run's picture only the first run's.
    def pixels_of(picture, colour):
        return int((np.abs(picture - np.array(matplotlib.colors.to_rgb(colour)) * 255).max(axis=2) < 40).sum())
    assert pixels_of(compared, "C0") > 500 and pixels_of(compared, "C1") > 500
    assert pixels_of(single, "C0") > 500 and pixels_of(single, "C1") == 0


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "not a folder"),
    (lambda p: p.mkdir(), "metrics.jsonl: cannot read (FileNotFoundError)"),
    (lambda p: write_run(p, []) or (p / "metrics.jsonl").write_text('{"epoch": 1}\nnot json\n'), "line 2 is not"),
])
def test_bad_run_folders_are_one_line(tmp_path, capsys, setup, message):
    run_dir = tmp_path / "run"
    setup(run_dir)
    code, out, err = run([str(run_dir)], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err and str(run_dir) in err
    assert not (run_dir / "curves.png").exists()


def test_out_into_a_missing_folder_is_one_line(tmp_path, capsys):
    write_run(tmp_path / "a", records(0.9))
    code, _, err = run([str(tmp_path / "a"), "--out", str(tmp_path / "no" / "c.png")], capsys)
    assert code == 2 and err.count("\n") == 1 and "no folder" in err
