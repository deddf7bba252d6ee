"""User-facing errors: one clear line, exit code 2, no traceback.

Every command-line entry point runs through :func:`run_cli`, so a problem with the
user's input (a file, a value, a folder) is reported as a single line naming the
culprit and what was expected, while genuine bugs still show a full traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

USER_ERROR_EXIT_CODE = 2


class UserError(Exception):
    """A problem with the user's input. The message is one line: culprit, problem, expectation."""


def one_line(error: BaseException | str, limit: int = 240) -> str:
    """An error's message on one line, shortened (e.g. ``load_state_dict`` lists every key)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class CliParser(argparse.ArgumentParser):
    """argparse whose errors are one-line :class:`UserError` s (exit 2 through run_cli, no usage dump)."""

    def error(self, message: str):
        raise UserError(f"{self.prog}: {message}")


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run ``main(argv)`` and exit with its return code; a UserError becomes one line on stderr and exit 2."""
    try:
        code = main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
