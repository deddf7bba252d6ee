"""``data.exclude``: a file of training-part row indices to leave out (the audit's ``exclude.txt``)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError


def read_exclude(path: str | Path, num_rows: int) -> torch.Tensor:
    """The sorted, distinct row indices listed in ``path``, int64.

    One index per line: the glyph's row in the split's training part as the source stores it
    (0-based). Blank lines and lines starting with ``#`` are skipped; anything else, or an index
    outside ``0..num_rows-1``, raises :class:`UserError` naming the file and line.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"data.exclude={path}: cannot read it ({err.__class__.__name__}); "
                        "expected a text file of row indices, one per line") from None
    rows = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not text.isdecimal():
            raise UserError(f"{path} line {number}: {text[:40]!r} is not a row index; expected one integer >= 0 per line")
        if int(text) >= num_rows:
            raise UserError(f"{path} line {number}: row {text} is outside the training part (rows 0..{num_rows - 1})")
        rows.append(int(text))
    return torch.unique(torch.tensor(rows, dtype=torch.int64))
