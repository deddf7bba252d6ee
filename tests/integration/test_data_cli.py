"""``python -m emnist_dist.data prepare|inspect`` and ``load_emnist``."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.helpers.emnist_raw import RawSplit, random_split, write_gzip_zip
from PIL import Image

from emnist_dist.config import DataConfig
from emnist_dist.data import load_emnist, load_split
from emnist_dist.data.__main__ import main
from emnist_dist.data.glyph_grid import sample_mosaic
from emnist_dist.cli import run_cli


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    captured = capsys.readouterr()
    assert exit_info.value.code == 0, captured.err
    return captured.out, captured.err


def test_prepare_prints_the_cache_path_last(tmp_path):
    """A real process, as scripts use it: $(python -m emnist_dist.data prepare ... | tail -n1)."""
    cmd = [sys.executable, "-m", "emnist_dist.data", "prepare", "--split", "digits", "--source", "synthetic"]
    cmd += ["--synthetic-train-per-class", "3", "--synthetic-test-per-class", "1", "--cache-dir", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    path = done.stdout.strip().splitlines()[-1]
    assert load_split(path, "train")[0].shape == (30, 1, 28, 28)
    assert "SYNTHETIC stand-in for digits (not EMNIST)" in done.stderr  # progress and info go to stderr


def test_inspect_counts_imbalance_and_picture(tmp_path, capsys):
    labels = np.repeat(np.arange(10, dtype=np.uint8), [12, 3, 3, 3, 3, 3, 3, 3, 3, 4])  # 12 zeros, 3 ones ...
    images = np.random.default_rng(0).integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
    raw = RawSplit("digits", images, labels, images[:10], np.arange(10, dtype=np.uint8))
    archive = write_gzip_zip(tmp_path / "gzip.zip", raw)
    png = tmp_path / "grid.png"
    out, _ = run(
        [
            "inspect",
            "--split",
            "digits",
            "--source",
            str(archive),
            "--cache-dir",
            str(tmp_path / "c"),
            "--out",
            str(png),
            "--per-class",
            "4",
        ],
        capsys,
    )
    lines = out.splitlines()
    assert lines[0] == f"EMNIST digits ({archive})"
    assert (
        "    0       12        1" in lines and "    9        4        1" in lines and "total       40       10" in lines
    )
    assert "imbalance (train, largest/smallest class): 4.0x ('0' 12, '1' 3)" in out
    assert lines[-1] == f"wrote {png}"
    with Image.open(png) as picture:
        assert picture.format == "PNG" and picture.width > 200 and picture.height > 200


def test_inspect_refuses_an_existing_out_before_preparing(tmp_path, capsys):
    """Found by the hostile pass: ``inspect --out X`` replaced an existing X."""
    png = tmp_path / "grid.png"
    png.write_bytes(b"a user's picture")
    cache = tmp_path / "c"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["inspect", "--split", "digits", "--source", "synthetic", "--synthetic-train-per-class", "2",
                       "--synthetic-test-per-class", "1", "--cache-dir", str(cache), "--out", str(png)])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and captured.out == ""
    assert captured.err == f"error: --out {png}: already exists; expected a new file (nothing is overwritten)\n"
    assert png.read_bytes() == b"a user's picture" and not cache.exists()  # nothing prepared either


def test_mosaic_puts_each_class_in_its_row():
    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 1, 28, 28) * 40
    labels = torch.tensor([1, 0, 1, 2, 0, 1])
    mosaic = sample_mosaic(images, labels, num_classes=3, per_class=2)
    assert mosaic.shape == (3 * 30, 3 * 30)  # 3 rows; a label cell + 2 samples per row

    def cell(row, col):
        return mosaic[row * 30 + 1 : row * 30 + 29, col * 30 + 1 : col * 30 + 29]

    assert [cell(0, 1).max(), cell(0, 2).max()] == [40, 160]  # class 0: samples 1 and 4
    assert [cell(1, 1).max(), cell(1, 2).max()] == [0, 80]  # class 1: samples 0 and 2 (the third is left out)
    assert [cell(2, 1).max(), cell(2, 2).max()] == [120, 0]  # class 2: one sample, then an empty cell
    assert cell(0, 0).max() == 0  # the label cell stays dark for the text


def test_load_emnist(tmp_path):
    raw = random_split("balanced", 470, 94, seed=51)  # 10 samples per class, 2 per class in test
    archive = write_gzip_zip(tmp_path / "gzip.zip", raw)
    cfg = DataConfig(
        split="balanced", source=str(archive), cache_dir=str(tmp_path / "c"), image_size=32, val_fraction=0.2
    )
    data = load_emnist(cfg, seed=0, progress=False)
    assert (len(data.train_labels), len(data.val_labels), len(data.test_labels)) == (376, 94, 94)
    assert data.train_class_counts.tolist() == [8] * 47 and torch.bincount(data.val_labels).tolist() == [2] * 47
    assert data.train_images.shape == (376, 1, 28, 28) and data.train_images.dtype == torch.uint8
    # train + val are exactly the training split, each image with its own label
    upright = raw.train_images.transpose(0, 2, 1)
    both = torch.cat([data.train_images, data.val_images])[:, 0].numpy()
    both_labels = torch.cat([data.train_labels, data.val_labels]).numpy()
    key = {img.tobytes(): label for img, label in zip(upright, raw.train_labels.astype(np.int64))}
    assert len({img.tobytes() for img in both}) == 470 and all(
        key[img.tobytes()] == y for img, y in zip(both, both_labels)
    )
    assert data.test_labels.tolist() == raw.test_labels.tolist()
    # mean and std of the training part resized to 32x32 (bilinear), computed here directly
    resized = F.interpolate(torch.from_numpy(raw.train_images).double()[:, None] / 255, size=(32, 32),
                            mode="bilinear", align_corners=False)
    assert (data.mean, data.std) == pytest.approx((resized.mean().item(), resized.std(unbiased=False).item()),
                                                  abs=1e-6)
    assert data.description == f"EMNIST balanced ({archive})" and data.is_synthetic is False
    assert data.class_names[36] == "a" and len(data.class_names) == 47

    subset = load_emnist(DataConfig(**{**cfg.__dict__, "subset": 94}), seed=0, progress=False)
    assert subset.train_class_counts.tolist() == [2] * 47 and torch.equal(subset.val_labels, data.val_labels)


def test_load_emnist_synthetic_says_so(tmp_path):
    cfg = DataConfig(
        split="digits", cache_dir=str(tmp_path), synthetic_train_per_class=10, synthetic_test_per_class=2, image_size=28
    )
    data = load_emnist(cfg, seed=0, progress=False)
    assert data.is_synthetic and data.source == "synthetic"
    assert data.description.startswith("SYNTHETIC stand-in for digits (not EMNIST), fonts sha256:")
    assert len(data.train_labels) + len(data.val_labels) == 100 and len(data.test_labels) == 20
