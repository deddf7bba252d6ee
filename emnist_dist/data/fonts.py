"""The synthetic stand-in's fonts: matplotlib's bundled TrueType fonts only, and their fingerprint.

The stand-in must be the same data on every machine, so it draws only from the fonts that the
``matplotlib`` dependency ships (DejaVu, STIX, Computer Modern; each with its licence in the same
folder), never from fonts a machine happens to have installed. Which of them draw a split's
characters, and the SHA-256 of those files in order, depend only on the matplotlib release; the
fingerprint goes into the cache key and the data's description (so into ``final.json``), so a
different font set is a different stand-in, visibly.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

import matplotlib
from matplotlib import ft2font

# Families whose code points do not draw the plain letter (fallback boxes, math symbols).
_NOT_TEXT = re.compile(r"last resort|cmex|cmsy|symbol", re.IGNORECASE)


def font_folder() -> Path:
    """matplotlib's folder of bundled TrueType fonts."""
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@functools.lru_cache(maxsize=8)
def font_files(chars: str) -> tuple[Path, ...]:
    """matplotlib's bundled fonts that draw every character in ``chars``, one per (family, style), by file name."""
    fonts: dict[tuple[str, str], Path] = {}
    for path in sorted(font_folder().glob("*.ttf")):
        try:
            font = ft2font.FT2Font(str(path))
        except (RuntimeError, OSError):  # unreadable font file: skip it
            continue
        if _NOT_TEXT.search(font.family_name) or not all(font.get_char_index(ord(c)) for c in chars):
            continue
        fonts.setdefault((font.family_name, font.style_name), path)
    return tuple(sorted(fonts.values()))


@functools.lru_cache(maxsize=8)
def font_fingerprint(chars: str) -> str:
    """SHA-256 (hex) over the name and bytes of each of ``font_files(chars)``, in order."""
    digest = hashlib.sha256()
    for path in font_files(chars):
        data = path.read_bytes()
        digest.update(f"{path.name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()
