"""The package's user-facing error: a problem with the user's input, reported as one line
(:class:`UserError`, :func:`one_line`). The commands turn it into exit code 2 (:mod:`emnist_dist.cli`).
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input. The message is one line: culprit, problem, expectation."""


def one_line(error: BaseException | str, limit: int = 240) -> str:
    """An error's message on one line, shortened (e.g. ``load_state_dict`` lists every key)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
