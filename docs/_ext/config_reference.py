"""The ``config-reference`` directive: one table row per configuration key (key, type, default, help).

Generated at build time from the dataclasses of :mod:`emnist_dist.config`: the keys and types from the fields,
the defaults from ``Config()``, the help from the field docstrings, read by ``docstring_parser`` (the library
jsonargparse uses for ``--help``), so the page and ``--help`` cannot disagree.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator

import docstring_parser
import yaml
from docutils import nodes
from sphinx.util.docutils import SphinxDirective

from emnist_dist.config import Config

HEADER = ("key", "type", "default", "help")


def type_name(kind: object) -> str:
    """A field's type as a reader writes it: ``int``, ``str or null``, ``one of lion, adamw, sgd``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin in (list, tuple):
        inner = ", ".join(type_name(a) for a in args if a is not Ellipsis)
        return f"{origin.__name__}[{inner}]"
    return getattr(kind, "__name__", str(kind))


def yaml_value(value: object) -> str:
    """A default as it is written in a YAML config or on the command line (``null``, ``false``, ``[a, b]``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


def config_rows(cls: type = Config, instance: object | None = None, prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """``(key, type, default, help)`` for every leaf field of the config tree, in declaration order."""
    instance = cls() if instance is None else instance
    hints = typing.get_type_hints(cls)
    helps = {p.arg_name: " ".join((p.description or "").split()) for p in docstring_parser.parse_from_object(cls).params}
    for field in dataclasses.fields(cls):
        value = getattr(instance, field.name)
        if dataclasses.is_dataclass(value):
            yield from config_rows(type(value), value, f"{prefix}{field.name}.")
        else:
            yield f"{prefix}{field.name}", type_name(hints[field.name]), yaml_value(value), helps.get(field.name, "")


def _literal_row(cells: tuple[str, ...], header: bool = False) -> nodes.row:
    row = nodes.row()
    for index, text in enumerate(cells):
        paragraph = nodes.paragraph()
        paragraph += nodes.literal(text=text) if index in (0, 2) and not header else nodes.Text(text)
        row += nodes.entry("", paragraph)
    return row


class ConfigReference(SphinxDirective):
    """``{config-reference}``: the table of every configuration key."""

    def run(self) -> list[nodes.Node]:
        group = nodes.tgroup(cols=len(HEADER))
        for width in (22, 18, 14, 46):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        head += _literal_row(HEADER, header=True)
        body = nodes.tbody()
        for cells in config_rows():
            body += _literal_row(cells)
        group += head
        group += body
        return [nodes.table("", group, classes=["config-reference"])]


def setup(app):
    app.add_directive("config-reference", ConfigReference)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
