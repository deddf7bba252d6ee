"""IDX files (the NIST format), plain or gzip-compressed, parsed straight into numpy arrays.

Layout: a big-endian header (magic 2051 + n, rows, cols for images; magic 2049 + n for
labels) followed by a uint8 payload. The stored file is read whole (a gzip member is about a
third of its payload), its header checked against what the file can hold, and the payload
inflated by one ``zlib.decompress`` call into a buffer of exactly the size the header announces;
the array is a view of that buffer. Streaming the inflation in chunks copied every byte once more
and made the allocator hand out fresh memory per chunk (measured: 0.2-0.3 s of CPU per ByClass
member more than one call), and a call without the size hint grows its output block by block and
then joins the blocks, another full copy.
"""

from __future__ import annotations

import math
import struct
import zipfile
import zlib
from typing import BinaryIO

import numpy as np

from ..errors import UserError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
IMAGE_SIDE = 28
_GZIP = 31  # zlib's wbits for a gzip stream: parses the gzip header, checks the CRC-32 and length trailer
_DEFLATE_MAX_RATIO = 1032  # the most deflate (gzip) can expand its input
_HEAD_PROBE = 1 << 16  # compressed bytes inflated to read the header


def read_idx(stream: BinaryIO, name: str, kind: str, gzipped: bool) -> np.ndarray:
    """Parse one IDX file into a read-only uint8 array.

    Args:
        stream: binary file object (an open file or a zip member), read to its end.
        name: how the file is named in error messages.
        kind: ``"images"`` -> ``(N, 28, 28)`` or ``"labels"`` -> ``(N,)``.
        gzipped: whether the stream is gzip-compressed (a ``.gz`` member).

    Raises:
        UserError: empty, truncated or non-gzip data, wrong magic, wrong image size, a header
            claiming more than the file can hold (checked before anything is allocated for it),
            or a payload that does not match the header.
    """
    magic, ndim = (IMAGES_MAGIC, 3) if kind == "images" else (LABELS_MAGIC, 1)
    header_len = 4 + 4 * ndim
    try:
        stored = stream.read()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise UserError(f"{name}: unreadable ({err}): expected an intact file") from None
    head = _gunzip_head(stored, name, header_len) if gzipped and stored else stored[:header_len]
    if not head:
        raise UserError(f"{name}: empty file: expected an IDX {kind} file")
    found = int.from_bytes(head[:4], "big")
    if len(head) < 4 or found != magic:
        raise UserError(f"{name}: IDX magic number {found}: expected {magic} (an IDX {kind} file)")
    if len(head) < header_len:
        raise UserError(f"{name}: IDX header cut short ({len(head)} of {header_len} bytes): expected a complete file")
    dims = struct.unpack(f">{ndim}I", head[4:header_len])
    if kind == "images" and dims[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise UserError(f"{name}: images are {dims[1]}x{dims[2]}: expected 28x28")
    claimed = math.prod(dims)
    if gzipped and claimed > len(stored) * _DEFLATE_MAX_RATIO:
        raise UserError(
            f"{name}: the header says {_shape(dims)} = {claimed} bytes but the file holds {len(stored)} compressed "
            f"bytes (at most {len(stored) * _DEFLATE_MAX_RATIO} once decompressed): expected a header that "
            "matches the payload"
        )
    # One byte of room beyond the expected size: a buffer filled exactly would make zlib grow it
    # (and join the pieces) just to find the end of the stream.
    data = _gunzip(stored, name, header_len + claimed + 1) if gzipped else stored
    del stored
    payload = len(data) - header_len
    if payload < claimed:
        raise UserError(
            f"{name}: payload has {payload} bytes but the header says {_shape(dims)} = {claimed}: "
            "expected a complete file (truncated?)"
        )
    if payload > claimed:
        raise UserError(
            f"{name}: payload longer than the header's {_shape(dims)} ({claimed} bytes): expected exactly that"
        )
    return np.frombuffer(data, dtype=np.uint8, count=claimed, offset=header_len).reshape(dims)


def _gunzip_head(stored: bytes, name: str, header_len: int) -> bytes:
    """The first ``header_len`` inflated bytes of the gzip file ``stored`` (fewer if it has fewer)."""
    try:
        return zlib.decompressobj(wbits=_GZIP).decompress(memoryview(stored)[:_HEAD_PROBE], header_len)
    except zlib.error as err:
        raise _gzip_error(name, err) from None


def _gunzip(stored: bytes, name: str, size_hint: int) -> bytes:
    """Inflate the whole gzip file ``stored`` into one buffer of ``size_hint`` bytes (grown if need be).

    Data after the end of the gzip stream, which ``zlib.decompress`` ignores, is found from the
    stream's length trailer (the last 4 bytes of a single-member gzip file: the length mod 2^32).
    """
    try:
        data = zlib.decompress(stored, wbits=_GZIP, bufsize=size_hint)
    except zlib.error as err:
        raise _gzip_error(name, err) from None
    if stored[-4:] != (len(data) & 0xFFFFFFFF).to_bytes(4, "little"):
        raise UserError(f"{name}: data after the end of the gzip stream: expected a single gzip member")
    return data


def _gzip_error(name: str, err: zlib.error) -> UserError:
    if "incomplete or truncated" in str(err):
        return UserError(f"{name}: gzip stream ends early (truncated file): expected a complete .gz file")
    return UserError(f"{name}: not a valid gzip stream ({err}): expected a gzip-compressed IDX file")


def _shape(dims: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in dims)
