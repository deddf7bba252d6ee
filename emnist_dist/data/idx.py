"""IDX files (the NIST format), plain or gzip-compressed, parsed straight into numpy arrays.

Layout: a big-endian header (magic 2051 + n, rows, cols for images; magic 2049 + n for
labels) followed by a uint8 payload. The gzip stream is inflated chunk by chunk straight
into the output array: neither the compressed nor the decompressed file is ever held as a
second full copy (this is what keeps ``prepare`` near the cost of plain decompression).
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from typing import BinaryIO, Iterator

import numpy as np

from ..errors import UserError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
IMAGE_SIDE = 28
_CHUNK = 1 << 20


def read_idx(stream: BinaryIO, name: str, kind: str, gzipped: bool) -> np.ndarray:
    """Parse one IDX file into a writable uint8 array.

    Args:
        stream: binary file object (an open file or a zip member).
        name: how the file is named in error messages.
        kind: ``"images"`` -> ``(N, 28, 28)`` or ``"labels"`` -> ``(N,)``.
        gzipped: whether the stream is gzip-compressed (a ``.gz`` member).

    Raises:
        UserError: empty, truncated or non-gzip data, wrong magic, wrong image size, or a
            payload that does not match the header.
    """
    magic, ndim = (IMAGES_MAGIC, 3) if kind == "images" else (LABELS_MAGIC, 1)
    header_len = 4 + 4 * ndim
    chunks = _decompressed_chunks(stream, name, gzipped)
    head = bytearray()
    while len(head) < header_len and (chunk := next(chunks, None)) is not None:
        head += chunk
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

    out = np.empty(int(np.prod(dims)), dtype=np.uint8)
    view = memoryview(out)
    filled = 0
    for chunk in _chain(head[header_len:], chunks):
        if filled + len(chunk) > out.size:
            raise UserError(
                f"{name}: payload longer than the header's {_shape(dims)} ({out.size} bytes): expected exactly that"
            )
        view[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    if filled < out.size:
        raise UserError(
            f"{name}: payload has {filled} bytes but the header says {_shape(dims)} = {out.size}: "
            "expected a complete file (truncated?)"
        )
    return out.reshape(dims)


def _shape(dims: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in dims)


def _chain(first: bytes | bytearray, rest: Iterator[bytes]) -> Iterator[bytes | bytearray]:
    yield first
    yield from rest


def _decompressed_chunks(stream: BinaryIO, name: str, gzipped: bool) -> Iterator[bytes]:
    """Yield the file's (decompressed) bytes chunk by chunk; read errors become UserError."""
    # zlib with wbits=31 parses the gzip header and checks the CRC-32 and length trailer.
    inflater = zlib.decompressobj(wbits=31) if gzipped else None
    read_any = False
    while True:
        try:
            data = stream.read(_CHUNK)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
            raise UserError(f"{name}: unreadable ({err}): expected an intact file") from None
        if not data:
            break
        read_any = True
        if inflater is not None:
            try:
                data = inflater.decompress(data)
            except zlib.error as err:
                raise UserError(
                    f"{name}: not a valid gzip stream ({err}): expected a gzip-compressed IDX file"
                ) from None
            if inflater.unused_data:
                raise UserError(f"{name}: data after the end of the gzip stream: expected a single gzip member")
        yield data
    if inflater is not None and read_any and not inflater.eof:
        raise UserError(f"{name}: gzip stream ends early (truncated file): expected a complete .gz file")
