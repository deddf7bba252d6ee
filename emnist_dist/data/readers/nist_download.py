"""The official download (source ``nist``): NIST's ``gzip.zip``, from its server or a mirror, md5-checked."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

from ...errors import UserError
from ..download import download

NIST_URL = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"
NIST_MD5 = "58c8d27c78d21e728a6bc7b3cc06412e"
NIST_SIZE = 561_753_746  # bytes of the archive with NIST_MD5 (as tensorflow_datasets records it)
ZIP_SIGNATURE = b"PK\x03\x04"
MIRRORS_ENV = "EMNIST_DIST_NIST_MIRRORS"


def download_nist(cache_dir: Path, progress: bool, mirrors: Sequence[str] = ()) -> Path:
    """The NIST archive in ``cache_dir/downloads/``, downloaded unless already there and intact."""
    md5 = nist_md5()
    size = _size_from_env() or (NIST_SIZE if md5 == NIST_MD5 else None)
    return download(nist_urls(mirrors), cache_dir / "downloads" / "gzip.zip", md5, progress,
                    size=size, signature=ZIP_SIGNATURE)


def _size_from_env() -> int | None:
    """``$EMNIST_DIST_NIST_SIZE``: the byte size of another copy of the archive (with ``$EMNIST_DIST_NIST_MD5``)."""
    value = os.environ.get("EMNIST_DIST_NIST_SIZE", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) == 0:
        raise UserError(f"EMNIST_DIST_NIST_SIZE={value!r}: expected the archive's size in bytes, a positive integer")
    return int(value)


def nist_md5() -> str:
    """md5 of the NIST archive: the official one, or ``$EMNIST_DIST_NIST_MD5`` for another copy.

    Raises:
        UserError: the variable is set but is not 32 hexadecimal digits (found before anything is downloaded).
    """
    value = os.environ.get("EMNIST_DIST_NIST_MD5", NIST_MD5).strip()
    if not re.fullmatch(r"[0-9a-fA-F]{32}", value):
        raise UserError(f"EMNIST_DIST_NIST_MD5={value!r}: expected an md5 digest, 32 hexadecimal digits")
    return value.lower()


def nist_urls(mirrors: Sequence[str] = ()) -> list[str]:
    """The servers of the NIST archive in the order they are tried, each once.

    The official URL (or ``$EMNIST_DIST_NIST_URL``), then ``mirrors``, then the URLs in
    ``$EMNIST_DIST_NIST_MIRRORS`` (separated by spaces or commas).
    """
    urls = [os.environ.get("EMNIST_DIST_NIST_URL", NIST_URL), *mirrors,
            *re.split(r"[\s,]+", os.environ.get(MIRRORS_ENV, "").strip())]
    return list(dict.fromkeys(url for url in urls if url))
