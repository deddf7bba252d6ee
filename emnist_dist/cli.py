"""What every command shares: its argument parser (:class:`CliParser`), its console (:func:`log_to_console`)
and :func:`run_cli`, which reports a problem with the user's input as one line, exit code 2, no traceback,
while genuine bugs still show a full traceback.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from typing import Callable, Iterable, Iterator, TypeVar

from .errors import UserError

USER_ERROR_EXIT_CODE = 2
T = TypeVar("T")
R = TypeVar("R")


class CliParser(argparse.ArgumentParser):
    """argparse whose errors are one-line :class:`UserError` s (exit 2 through run_cli, no usage dump)."""

    def error(self, message: str):
        raise UserError(f"{self.prog}: {message}")


class ConsoleFormatter(logging.Formatter):
    """The bare message, ``warning: `` before a warning's. Accelerate's logger adapter prefixes every record with
    ``[RANK n]``; a command logs from the main process only, so the prefix is dropped to keep its lines as plain
    as ``print``'s."""

    def format(self, record: logging.LogRecord) -> str:
        message = re.sub(r"^\[RANK \d+\] ", "", record.getMessage())
        return f"warning: {message}" if record.levelno == logging.WARNING else message


class ConsoleHandler(logging.StreamHandler):
    """A handler writing to ``sys.stdout`` or ``sys.stderr`` (``stream_name``) as it is at each record (pytest's
    capture or a notebook replaces it)."""

    def __init__(self, stream_name: str):
        self.stream_name = stream_name
        super().__init__()

    @property
    def stream(self):
        return getattr(sys, self.stream_name)

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; the property answers instead
        pass


def log_to_console() -> None:
    """Show the package's log records (``accelerate.logging.get_logger``: main process only) as plain lines on
    stdout, the console output of a command, and the data layer's (its progress) on stderr: a data command's
    stdout is its result alone, a path a script reads. A library user configures ``logging`` as they like instead."""
    for name, stream_name in (("emnist_dist", "stdout"), ("emnist_dist.data", "stderr")):
        logger = logging.getLogger(name)
        if not any(isinstance(handler, ConsoleHandler) for handler in logger.handlers):
            handler = ConsoleHandler(stream_name)
            handler.setFormatter(ConsoleFormatter())
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run ``main(argv)`` and exit with its return code; a UserError becomes one line on stderr and exit 2.
    The package's log records go to stdout, the data layer's to stderr (:func:`log_to_console`)."""
    log_to_console()
    try:
        code = main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


class PerFileErrors:
    """The problems of a command that works through many files (predict, read): each is one ``error:`` line on
    stderr and the other files go on; :attr:`exit_code` is 1 when any file failed."""

    def __init__(self, messages: list[str] = ()):
        self.count = 0
        for message in messages:
            self.report(message)

    def report(self, message: str | UserError) -> None:
        print(f"error: {message}", file=sys.stderr)
        self.count += 1

    def each_ok(self, items: Iterable[T], work: Callable[[T], R]) -> Iterator[tuple[T, R]]:
        """``(item, work(item))`` for every item whose work did not raise a UserError (those are reported)."""
        for item in items:
            try:
                result = work(item)
            except UserError as err:
                self.report(err)
                continue
            yield item, result

    @property
    def exit_code(self) -> int:
        return 1 if self.count else 0
