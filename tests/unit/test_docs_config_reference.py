"""The configuration reference is generated from the config dataclasses: every key, its default and its help.

References: the keys and defaults of ``Config()`` flattened (``config_to_dict`` + ``flatten_config``), and the
text ``python -m emnist_dist.train --help`` prints (jsonargparse reads the same field docstrings).
"""

import contextlib
import io
import sys
import typing

import pytest
import yaml

from emnist_dist.config import Config, build_parser, config_to_dict, flatten_config
from tests.helpers.docs_pages import DOCS

sys.path.insert(0, str(DOCS / "_ext"))
from config_reference import config_rows, type_name  # noqa: E402  (the docs' own extension)


def test_every_key_with_its_default_in_declaration_order():
    rows = list(config_rows())
    defaults = flatten_config(config_to_dict(Config()))
    assert [key for key, *_ in rows] == list(defaults)
    for key, _, default, _ in rows:
        expected = list(defaults[key]) if isinstance(defaults[key], tuple) else defaults[key]
        assert yaml.safe_load(default) == expected, key  # the default as a YAML config reads it back


def test_help_is_what_train_help_prints():
    parser = build_parser()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    printed = "".join(out.getvalue().split())  # argparse wraps lines, also at hyphens
    for key, _, _, help_text in config_rows():
        assert help_text, f"{key}: no docstring"
        assert "".join(help_text.split()) in printed, key


def test_types_as_a_reader_writes_them():
    assert type_name(int) == "int"
    assert type_name(typing.Optional[str]) == "str or null"
    assert type_name(int | None) == "int or null"
    assert type_name(typing.Literal["lion", "adamw"]) == "one of lion, adamw"
    assert type_name(tuple[float, float]) == "tuple[float, float]"
    assert type_name(typing.Union[bool, str]) == "bool or str"
    rows = {key: kind for key, kind, _, _ in config_rows()}
    assert rows["train.optimizer"] == "one of lion, adamw, sgd"
    assert rows["data.subset"] == "int or null"
