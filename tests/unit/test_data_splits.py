"""EMNIST split facts against DESIGN.md §2, torchvision's class lists and the NIST mapping files."""

import pytest
from tests.helpers.emnist_raw import mapping_text
from torchvision.datasets import EMNIST

from emnist_dist.data import SPLITS, class_names
from emnist_dist.errors import UserError

# DESIGN.md §2: split -> (train, test, classes)
DESIGN_TABLE = {
    "byclass": (697_932, 116_323, 62),
    "bymerge": (697_932, 116_323, 47),
    "balanced": (112_800, 18_800, 47),
    "letters": (124_800, 20_800, 26),
    "digits": (240_000, 40_000, 10),
    "mnist": (60_000, 10_000, 10),
}


def test_six_splits_with_their_sizes():
    assert {name: (s.train_size, s.test_size, len(s.class_names)) for name, s in SPLITS.items()} == DESIGN_TABLE


@pytest.mark.parametrize("split", DESIGN_TABLE)
def test_class_names_agree_with_torchvision(split):
    expected = EMNIST.classes_split_dict[split]
    if split == "letters":  # torchvision keeps the raw numbering: index 0 is an unused "N/A"
        assert expected[0] == "N/A"
        expected = expected[1:]
    assert class_names(split) == expected


@pytest.mark.parametrize("split", DESIGN_TABLE)
def test_class_names_agree_with_the_nist_mapping_file(split):
    """Raw label -> character as emnist-{split}-mapping.txt states it; class id = raw label - first label."""
    rows = [list(map(int, line.split())) for line in mapping_text(split).splitlines()]
    first = rows[0][0]
    assert first == (1 if split == "letters" else 0)
    # letters rows are "label upper lower": the class is the letter, named in lower case
    chars = {label - first: chr(codes[-1]) for label, *codes in rows}
    assert class_names(split) == [chars[i] for i in range(len(chars))]


def test_unknown_split_is_a_user_error():
    with pytest.raises(UserError, match=r"unknown EMNIST split 'byclas': expected one of byclass, bymerge"):
        class_names("byclas")


def test_class_names_returns_a_copy():
    class_names("digits").append("x")
    assert class_names("digits") == list("0123456789")
