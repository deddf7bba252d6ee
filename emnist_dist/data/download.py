"""Resumable, md5-checked HTTP download with a progress bar (standard library + tqdm + filelock)."""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from filelock import FileLock, Timeout
from tqdm import tqdm

from ..errors import UserError
from ..files import fsync_tree, write_error

_CHUNK = 1 << 20


def file_md5(path: Path) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: Path, md5: str, progress: bool = True, timeout: float = 60.0) -> Path:
    """Make ``dest`` a verified copy of ``url`` and return it.

    An existing ``dest`` with the right md5 is reused. Otherwise bytes go to ``dest.part``,
    which a later call resumes with an HTTP Range request (a server that ignores Range makes
    it start over); ``dest`` appears, by rename, only once the md5 matches. (Not the package's
    atomic writer: its temporaries vanish on failure, and this one must survive for resuming.)

    Processes downloading the same ``dest`` at once (jobs sharing a cache) take turns on a lock
    file beside it (``filelock``): one downloads, the others wait and then reuse its file.

    Raises:
        UserError: network failure (the ``.part`` file is kept for resuming), md5 mismatch
            (the ``.part`` file is removed), or a folder that cannot be written.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(dest.with_name(dest.name + ".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if progress:
                print(f"waiting for another process downloading {dest} ...", file=sys.stderr, flush=True)
            lock.acquire()
    except OSError as err:
        raise write_error(dest, err) from None
    try:
        return _download_locked(url, dest, md5, progress, timeout)
    finally:
        lock.release()


def _download_locked(url: str, dest: Path, md5: str, progress: bool, timeout: float) -> Path:
    if dest.exists():
        if file_md5(dest) == md5:
            return dest
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={start}-"} if start else {}
    total = None
    try:
        with urlopen(Request(url, headers=headers), timeout=timeout) as response:
            if start and response.status != 206:
                start = 0
            length = response.headers.get("Content-Length")
            total = start + int(length) if length is not None else None
            with (
                _PartFile(part, append=bool(start)) as f,
                tqdm(
                    total=total, initial=start, unit="B", unit_scale=True, desc=dest.name, disable=not progress
                ) as bar,
            ):
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
    except HTTPError as err:
        if err.code != 416:  # 416: nothing left to send, the .part file is already complete
            raise UserError(
                f"{url}: download failed (HTTP {err.code} {err.reason}): expected the file to be served"
            ) from None
    except (URLError, OSError, http.client.HTTPException) as err:
        _interrupted(url, part, getattr(err, "reason", None) or repr(err))
    if total is not None and part.stat().st_size < total:  # http.client returns a short body silently
        _interrupted(url, part, f"connection closed at {part.stat().st_size} of {total} bytes")
    got = file_md5(part)
    if got != md5:
        part.unlink()
        raise UserError(f"{url}: downloaded file has md5 {got}: expected {md5} (removed it; run again to retry)")
    fsync_tree(part)
    os.replace(part, dest)
    fsync_tree(dest.parent, recursive=False)
    return dest


class _PartFile:
    """The ``.part`` file, whose write errors (a full disk) are reported as such, not as a network failure."""

    def __init__(self, path: Path, append: bool):
        self.path = path
        try:
            self.file = open(path, "ab" if append else "wb", buffering=0)  # errors surface at write()
        except OSError as err:
            raise write_error(path, err) from None

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:  # an unbuffered write may take only part of the data
                view = view[self.file.write(view) :]
        except OSError as err:
            raise write_error(self.path, err) from None

    def __enter__(self) -> "_PartFile":
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


def _interrupted(url: str, part: Path, reason: object) -> None:
    received = part.stat().st_size if part.exists() else 0
    what = (
        f"interrupted after {received} bytes ({reason}); kept in {part}, run again to resume"
        if received
        else f"failed ({reason}); run again to retry"
    )
    raise UserError(
        f"{url}: download {what}, or download it elsewhere and pass the local file (--source /path/to/gzip.zip)"
    )
