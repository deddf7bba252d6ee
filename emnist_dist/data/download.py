"""Resumable, md5-checked HTTP download from a list of servers, with a progress bar (standard library + tqdm + filelock)."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
from pathlib import Path
from typing import Sequence
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from filelock import FileLock, Timeout
from tqdm import tqdm

from ..errors import UserError, one_line
from ..files import fsync_tree, write_error

logger = logging.getLogger(__name__)  # plain logging, as in cache.py

_CHUNK = 1 << 20


def file_md5(path: Path) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _ServerFailed(Exception):
    """One server did not deliver the file; the message says why (the next server is tried)."""


def download(
    urls: Sequence[str],
    dest: Path,
    md5: str,
    progress: bool = True,
    timeout: float = 60.0,
    *,
    size: int | None = None,
    signature: bytes | None = None,
) -> Path:
    """Make ``dest`` a verified copy of the file served at ``urls`` (copies of one file, tried in order).

    An existing ``dest`` with the right md5 is reused. Otherwise bytes go to ``dest.part``,
    which the next server (or a later call) resumes with an HTTP Range request (a server that
    ignores Range makes it start over); ``dest`` appears, by rename, only once the md5 matches.
    A URL that is not ``http(s)://HOST/...`` counts as a server that failed (the next is tried).
    (Not the package's atomic writer: its temporaries vanish on failure, and this one must survive
    for resuming.) A server is given up at once, before its body is read, when its headers or
    first bytes show the wrong thing: an HTML page (an error or login page answered with 200), a
    file of another ``size``, or data that does not start with ``signature``; a server whose body runs
    past ``size`` (one that announced no length) is stopped there and its bytes removed.

    Processes downloading the same ``dest`` at once (jobs sharing a cache) take turns on a lock
    file beside it (``filelock``): one downloads, the others wait and then reuse its file.

    Raises:
        UserError: no server delivered the file (one line naming every server and why; a partial
            ``.part`` file is kept for resuming, one with the wrong md5 removed), or a folder that
            cannot be written.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(dest.with_name(dest.name + ".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if progress:
                logger.info(f"waiting for another process downloading {dest} ...")
            lock.acquire()
    except OSError as err:
        raise write_error(dest, err) from None
    try:
        if dest.exists():
            if file_md5(dest) == md5:
                return dest
            dest.unlink()
        failures = []
        for url in urls:
            try:
                return _fetch(url, dest, md5, progress, timeout, size, signature)
            except _ServerFailed as err:
                failures.append(one_line(f"{url}: {err}", 400))
                if progress and len(urls) > 1:
                    logger.info(f"{failures[-1]}; trying the next server")
        part = _part_path(dest)
        kept = (f"the {part.stat().st_size} bytes received are kept in {part}: run again to resume"
                if part.exists() else "run again to retry")
        tried = f"{len(failures)} servers tried, none delivered {dest.name}: " if len(failures) > 1 else ""
        raise UserError(f"{tried}{'; '.join(failures)}; {kept}, or download it elsewhere and pass the local file "
                        "(--source /path/to/gzip.zip)")
    finally:
        lock.release()


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _fetch(
    url: str, dest: Path, md5: str, progress: bool, timeout: float, size: int | None, signature: bytes | None
) -> Path:
    """One server's attempt; raises _ServerFailed saying what went wrong."""
    _check_url(url)
    part = _part_path(dest)
    start = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={start}-"} if start else {}
    total = None
    try:
        with urlopen(Request(url, headers=headers), timeout=timeout) as response:
            if start and response.status != 206:
                start = 0
            total = _announced_size(response, start)
            first = response.read(_CHUNK)
            _check_start(response, first if not start else None, total, size, signature)
            with (
                _PartFile(part, append=bool(start)) as f,
                tqdm(
                    total=total, initial=start, unit="B", unit_scale=True, desc=dest.name, disable=not progress
                ) as bar,
            ):
                chunk, received = first, start
                while chunk:
                    f.write(chunk)
                    bar.update(len(chunk))
                    received += len(chunk)
                    if size is not None and received > size:  # only a body without a length gets here
                        break
                    chunk = response.read(_CHUNK)
    except HTTPError as err:
        if err.code != 416:  # 416: nothing left to send, the .part file is already complete
            raise _ServerFailed(f"download failed (HTTP {err.code} {err.reason})") from None
    except (URLError, OSError, http.client.HTTPException) as err:
        _interrupted(part, getattr(err, "reason", None) or repr(err))
    if size is not None and part.stat().st_size > size:
        received = part.stat().st_size
        part.unlink()
        raise _ServerFailed(f"sent more than the {size} bytes expected without announcing a length (stopped at "
                            f"{received} bytes, removed them): expected the archive")
    if total is not None and part.stat().st_size < total:  # http.client returns a short body silently
        _interrupted(part, f"connection closed at {part.stat().st_size} of {total} bytes")
    got = file_md5(part)
    if got != md5:
        part.unlink()
        raise _ServerFailed(f"downloaded file has md5 {got}: expected {md5} (removed it)")
    fsync_tree(part)
    os.replace(part, dest)
    fsync_tree(dest.parent, recursive=False)
    return dest


def _check_url(url: str) -> None:
    """Give up a URL that cannot name a server (``not-a-url``, ``http://[::1``) before asking anything."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks the port is a number in range
    except ValueError as err:
        raise _ServerFailed(f"not a valid URL ({err}): expected http(s)://HOST/PATH") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _ServerFailed("not a valid URL: expected http(s)://HOST/PATH")


def _announced_size(response, start: int) -> int | None:
    """The whole file's size as the headers state it (Content-Range of a 206, else Content-Length)."""
    content_range = response.headers.get("Content-Range", "")
    if response.status == 206 and "/" in content_range and content_range.rsplit("/", 1)[1].isdigit():
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    return start + int(length) if length is not None and length.isdigit() else None


def _check_start(response, first: bytes | None, total: int | None, size: int | None, signature: bytes | None) -> None:
    """Give a server up from its headers and first bytes (``first`` is None when resuming mid-file)."""
    content_type = response.headers.get("Content-Type", "")
    head = (first or b"")[:64].lstrip().lower()
    if content_type.startswith("text/html") or head.startswith((b"<!doctype html", b"<html")):
        raise _ServerFailed(f"answered an HTML page (Content-Type {content_type or 'not given'}), not the file")
    if size is not None and total is not None and total != size:
        raise _ServerFailed(f"serves {total} bytes: expected {size} (another file)")
    if signature is not None and first is not None and not first.startswith(signature):
        raise _ServerFailed(f"answered data starting with {first[:8]!r}: expected {signature!r} (another file)")


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


def _interrupted(part: Path, reason: object) -> None:
    received = part.stat().st_size if part.exists() else 0
    raise _ServerFailed(f"download interrupted after {received} bytes ({reason})" if received
                        else f"download failed ({reason})")
