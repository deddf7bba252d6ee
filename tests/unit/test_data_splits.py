"""EMNIST split facts against the NIST mapping files and raw label files (tests/helpers/emnist_raw.py
writes them in the NIST formats, independently of the package), torchvision's class lists, and the
published per-class counts."""

import pytest
from tests.helpers.emnist_raw import mapping_text, random_split, write_idx_folder
from torchvision.datasets import EMNIST

from emnist_dist.data import SPLITS, class_names
from emnist_dist.data.readers import read_path
from emnist_dist.errors import UserError

NIST_SPLITS = ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")


def mapping_rows(split: str) -> list[list[int]]:
    """``emnist-{split}-mapping.txt`` as integer rows: ``label ascii`` (letters: ``label upper lower``)."""
    return [list(map(int, line.split())) for line in mapping_text(split).splitlines()]


def test_the_six_nist_splits():
    assert tuple(SPLITS) == NIST_SPLITS


@pytest.mark.parametrize("split", NIST_SPLITS)
def test_class_names_and_label_offset_agree_with_the_nist_mapping_file(split):
    """Raw label -> character as emnist-{split}-mapping.txt states it; class id = raw label - offset."""
    rows = mapping_rows(split)
    info = SPLITS[split]
    assert info.raw_label_offset == rows[0][0]
    # letters rows are "label upper lower": the class is the letter, named in lower case
    assert info.class_names == [chr(codes[-1]) for _, *codes in rows]
    assert [label - info.raw_label_offset for label, *_ in rows] == list(range(info.num_classes))


@pytest.mark.parametrize("split", NIST_SPLITS)
def test_raw_nist_labels_read_as_the_mapped_characters(split, tmp_path):
    """Every raw label in NIST-format files comes out as the class whose name the mapping file gives it."""
    char_of_raw = {label: chr(codes[-1]) for label, *codes in mapping_rows(split)}
    raw = random_split(split, n_train=3 * len(char_of_raw), n_test=len(char_of_raw), seed=1)
    arrays = read_path(write_idx_folder(tmp_path, raw), SPLITS[split])
    names = class_names(split)
    for part in ("train", "test"):
        raw_labels, class_ids = getattr(raw, f"{part}_labels"), getattr(arrays, f"{part}_labels")
        assert [names[c] for c in class_ids] == [char_of_raw[int(label)] for label in raw_labels]


# Samples per class of the balanced splits (Cohen et al. 2017, "EMNIST", Table II): train, test.
PER_CLASS = {"balanced": (2_400, 400), "letters": (4_800, 800), "digits": (24_000, 4_000), "mnist": (6_000, 1_000)}


@pytest.mark.parametrize("split", PER_CLASS)
def test_balanced_split_sizes_are_per_class_counts_times_the_mapped_classes(split):
    """MNIST's classes are not exactly balanced, but its 60,000/10,000 are 6,000/1,000 times its 10 digits."""
    train, test = PER_CLASS[split]
    classes = len(mapping_rows(split))
    assert (SPLITS[split].train_size, SPLITS[split].test_size) == (train * classes, test * classes)


def test_byclass_and_bymerge_are_the_whole_set_relabelled():
    """Both hold all 814,255 NIST characters, split alike; ByMerge folds 15 upper/lower pairs into one class."""
    byclass, bymerge = SPLITS["byclass"], SPLITS["bymerge"]
    assert byclass.train_size + byclass.test_size == 814_255
    assert (bymerge.train_size, bymerge.test_size) == (byclass.train_size, byclass.test_size)
    folded = {chr(c) for _, c in mapping_rows("byclass")} - {chr(c) for _, c in mapping_rows("bymerge")}
    assert len(folded) == 15 and all(c.islower() for c in folded)


@pytest.mark.parametrize("split", NIST_SPLITS)
def test_class_names_agree_with_torchvision(split):
    expected = EMNIST.classes_split_dict[split]
    if split == "letters":  # torchvision keeps the raw numbering: index 0 is an unused "N/A"
        assert expected[0] == "N/A"
        expected = expected[1:]
    assert class_names(split) == expected


def test_unknown_split_is_a_user_error():
    with pytest.raises(UserError, match=r"unknown EMNIST split 'byclas': expected one of byclass, bymerge"):
        class_names("byclas")


def test_class_names_returns_a_copy():
    class_names("digits").append("x")
    assert class_names("digits") == list("0123456789")
