"""Resumable, md5-checked HTTP download with a progress bar (standard library + tqdm)."""

from __future__ import annotations

import hashlib
import http.client
import os
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from ..errors import UserError

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
    it start over); ``dest`` appears, by rename, only once the md5 matches.

    Raises:
        UserError: network failure (the ``.part`` file is kept for resuming) or md5 mismatch
            (the ``.part`` file is removed).
    """
    dest = Path(dest)
    if dest.exists():
        if file_md5(dest) == md5:
            return dest
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
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
                open(part, "ab" if start else "wb") as f,
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
    os.replace(part, dest)
    return dest


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
