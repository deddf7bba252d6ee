"""data.exclude and data.fold in the data layer: which rows of the stored training part go where."""

import re

import numpy as np
import pytest
import torch
from tests.helpers.emnist_raw import random_split, write_gzip_zip

from emnist_dist.config import DataConfig
from emnist_dist.data import load_emnist
from emnist_dist.errors import UserError


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exclude")
    raw = random_split("digits", 200, 30, seed=3)
    return raw, DataConfig(split="digits", source=str(write_gzip_zip(tmp / "gzip.zip", raw)), cache_dir=str(tmp / "c"),
                           image_size=28, val_fraction=0.2)


def upright(raw, rows):
    return torch.from_numpy(raw.train_images.transpose(0, 2, 1)[rows].copy())[:, None]


def test_excluded_rows_leave_training_and_validation_only(source, tmp_path):
    raw, cfg = source
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("17\n3\n\n# hand-checked\n150\n17\n")
    data = load_emnist(DataConfig(**{**cfg.__dict__, "exclude": str(exclude)}), seed=0, progress=False)
    assert data.excluded == 3 and data.train_rows == 200 and len(data.heldout_labels) == 0
    kept = torch.cat([data.train_index, data.val_index])
    assert sorted(kept.tolist()) == sorted(set(range(200)) - {3, 17, 150})
    # every sample is the stored row it claims to be, with its label (the raw arrays are the reference)
    assert torch.equal(data.train_images, upright(raw, data.train_index.numpy()))
    assert torch.equal(data.val_labels, torch.from_numpy(raw.train_labels[data.val_index.numpy()].astype(np.int64)))
    assert len(data.test_labels) == 30  # test data are never touched
    assert torch.equal(data.test_labels, torch.from_numpy(raw.test_labels.astype(np.int64)))


def test_folds_hold_out_each_kept_row_once(source, tmp_path):
    raw, cfg = source
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("0\n199\n")
    held = []
    for fold in range(4):
        data = load_emnist(DataConfig(**{**cfg.__dict__, "exclude": str(exclude), "fold": fold, "folds": 4}),
                           seed=1, progress=False)
        out = set(data.heldout_index.tolist())
        assert not out & set(torch.cat([data.train_index, data.val_index]).tolist())
        assert len(out) + len(data.train_labels) + len(data.val_labels) == 198
        assert torch.equal(data.heldout_images, upright(raw, data.heldout_index.numpy()))
        assert torch.equal(data.heldout_labels,
                           torch.from_numpy(raw.train_labels[data.heldout_index.numpy()].astype(np.int64)))
        held += data.heldout_index.tolist()
    assert sorted(held) == list(range(1, 199))


@pytest.mark.parametrize("text, message", [
    ("5\nseven\n", "line 2: 'seven' is not a row index"),
    ("-1\n", "line 1: '-1' is not a row index"),
    ("12\n200\n", "line 2: row 200 is outside the training part (rows 0..199)"),
])
def test_bad_exclude_files_are_one_line_errors(source, tmp_path, text, message):
    _, cfg = source
    exclude = tmp_path / "exclude.txt"
    exclude.write_text(text)
    with pytest.raises(UserError, match=re.escape(message)) as err:
        load_emnist(DataConfig(**{**cfg.__dict__, "exclude": str(exclude)}), seed=0, progress=False)
    assert str(exclude) in str(err.value) and "\n" not in str(err.value)


def test_missing_exclude_file(source, tmp_path):
    _, cfg = source
    with pytest.raises(UserError, match=r"data.exclude=.*nope.txt: cannot read it"):
        load_emnist(DataConfig(**{**cfg.__dict__, "exclude": str(tmp_path / "nope.txt")}), seed=0, progress=False)
