"""The commands' console lines (emnist_dist.cli.ConsoleFormatter): a warning says so once, other records are bare."""

from __future__ import annotations

import logging

from emnist_dist.cli import ConsoleFormatter


def line(level: int, message: str) -> str:
    return ConsoleFormatter().format(logging.LogRecord("emnist_dist.x", level, __file__, 1, message, None, None))


def test_a_warning_is_marked_once_and_other_records_are_bare():
    assert line(logging.WARNING, "[RANK 0] checkpoint c is damaged") == "warning: checkpoint c is damaged"
    assert line(logging.INFO, "[RANK 0] resumed from c at step 3") == "resumed from c at step 3"
