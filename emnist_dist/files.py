"""Writing files so that a crash never leaves a half-written one: the package's one atomic writer.

Everything is first written under a temporary name beside its destination (same folder, so the
final rename is atomic on POSIX) and renamed into place only when complete. Temporary names carry
the process id, so concurrent writers (ranks sharing a folder) never write into each other's file,
and readers see the old or the new version, never a part.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def temporary_sibling(path: str | os.PathLike) -> Path:
    """A hidden, process-unique name beside ``path`` for writing it before the rename."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to (a file, or a folder built inside it).

    On success it is renamed over ``path`` (a folder replaces an existing folder: the old one is
    moved aside first and deleted after). On any error the temporary is removed and ``path`` is
    untouched. Use it for libraries that write to a path (``savefig``, ``save_file``, ONNX)::

        with atomic_path(out / "model.safetensors") as tmp:
            save_file(tensors, tmp)
    """
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        if tmp.is_dir() and path.is_dir():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    return write_bytes_atomic(path, text.encode())
