"""Writing files so that a crash never leaves a half-written one: the package's one atomic writer.

Everything is first written under a temporary name beside its destination (same folder, so the
final rename is atomic on POSIX), flushed to the disk (``fsync``) and renamed into place only when
complete; the folder holding it is flushed after the rename, so the new name survives a power cut
too. Temporary names carry the process id, so concurrent writers (ranks sharing a folder) never
write into each other's file, and readers see the old or the new version, never a part.

A process killed with ``kill -9`` cannot clean up after itself: its hidden temporaries stay until
:func:`sweep_temporaries` removes them (callers do so where they know no other writer is active).
An ``OSError`` while writing (a read-only folder, a full disk, a file where a folder should be)
becomes a one-line :class:`~emnist_dist.errors.UserError` naming the destination.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UserError

_CHUNK = 1 << 20


def temporary_sibling(path: str | os.PathLike) -> Path:
    """A hidden, process-unique name beside ``path`` for writing it before the rename."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to (a file, or a folder built inside it).

    On success it is flushed and renamed over ``path`` (a folder replaces an existing folder: the
    old one is moved aside first and deleted after). On any error the temporary is removed and
    ``path`` is untouched; an ``OSError`` is re-raised as a one-line ``UserError``. Use it for
    libraries that write to a path (``savefig``, ``save_file``, ONNX)::

        with atomic_path(out / "model.safetensors") as tmp:
            save_file(tensors, tmp)
    """
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        fsync_tree(tmp)
        if tmp.is_dir() and path.is_dir():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        fsync_tree(path.parent, recursive=False)
    except OSError as err:
        raise write_error(path, err) from None
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


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to a log-like file (``metrics.jsonl``); a torn last line is dropped on resume."""
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError as err:
        raise write_error(path, err) from None


def write_error(path: str | os.PathLike, err: OSError) -> UserError:
    """The one-line error for an ``OSError`` met while writing ``path``."""
    reason = err.strerror or type(err).__name__
    return UserError(f"{path}: could not be written ({reason}): expected a writable folder with free space")


def check_writable_folder(what: str, folder: Path) -> None:
    """Refuse, before any work, an output ``folder`` that cannot be written (``what`` names the option): a probe
    file is created there and removed at once (permission bits alone miss read-only mounts and root's rights).

    Raises:
        UserError: the folder is missing, not a folder, read-only or not writable by this user.
    """
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        reason = err.strerror or err
        raise UserError(f"{what}: cannot write in {folder} ({reason}): expected a writable folder") from None


def fsync_tree(path: str | os.PathLike, recursive: bool = True) -> None:
    """Flush a file, or a folder's entries (and, when ``recursive``, every file below it), to the disk."""
    path = Path(path)
    if recursive and path.is_dir():
        for child in path.rglob("*"):
            if child.is_file():
                _fsync(child)
    _fsync(path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sweep_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries that writers of ``path`` left behind (a ``kill -9`` mid-write); returns them.

    Only call it while no other process can be writing ``path`` (e.g. holding a lock on it):
    a live writer's temporary looks the same as a dead one's.
    """
    path = Path(path)
    found = sorted(path.parent.glob(f".{path.name}.tmp-*")) + sorted(path.parent.glob(f".{path.name}.old-*"))
    for stale in found:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    return found


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
