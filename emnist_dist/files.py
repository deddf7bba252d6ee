"""Writing run files so that a crash never leaves a half-written one."""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``.

    The temporary name carries the process id, so concurrent writers (e.g. ranks sharing a cache)
    never write into each other's temporary file; readers see the old or the new file, never a part.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
