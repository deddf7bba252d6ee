"""The synthetic stand-in is the same on every machine: fonts installed on (or missing from) a machine do not change it.

A fresh process renders the stand-in while a new font family sits in every place a machine's fonts
live: the system folder (``/usr/share/fonts``, replaced by a bind mount in a private mount
namespace, so the machine itself is untouched), the user folders (``~/.fonts``,
``~/.local/share/fonts``) and an empty matplotlib font cache; or with the system fonts hidden.
Its glyphs (pixel for pixel), font fingerprint and cache key must be those rendered here.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest
from fontTools.ttLib import TTFont

from emnist_dist.data import class_names
from emnist_dist.data.fonts import font_files, font_fingerprint, font_folder
from emnist_dist.data.readers import cache_name
from emnist_dist.data.synthetic import render_glyphs
from tests.conftest import missing_system_dependency
from tests.helpers.train_runs import REPO, env_for_tests

SPLIT = "digits"
_RENDER = f"""
import hashlib, json
from emnist_dist.data import class_names
from emnist_dist.data.fonts import font_files, font_fingerprint
from emnist_dist.data.readers import cache_name
from emnist_dist.data.synthetic import render_glyphs
images, labels = render_glyphs(class_names({SPLIT!r}), 20, seed=3)
chars = "".join(class_names({SPLIT!r}))
print(json.dumps({{"images": hashlib.sha256(images.tobytes()).hexdigest(), "labels": labels.tolist(),
                   "fingerprint": font_fingerprint(chars), "files": [p.name for p in font_files(chars)],
                   "cache_name": cache_name({SPLIT!r}, "synthetic", 300, 50, 0)}}))
"""


def stand_in_here() -> dict:
    images, labels = render_glyphs(class_names(SPLIT), 20, seed=3)
    chars = "".join(class_names(SPLIT))
    return {"images": hashlib.sha256(images.tobytes()).hexdigest(), "labels": labels.tolist(),
            "fingerprint": font_fingerprint(chars), "files": [p.name for p in font_files(chars)],
            "cache_name": cache_name(SPLIT, "synthetic", 300, 50, 0)}


def new_font_family(folder: Path) -> Path:
    """A TrueType font of a family no machine has ("Emnist Test Installed"), drawing every character."""
    font = TTFont(font_folder() / "DejaVuSansMono-Bold.ttf")
    for record in font["name"].names:
        if record.nameID in (1, 4, 16):
            record.string = "Emnist Test Installed"
    folder.mkdir(parents=True, exist_ok=True)
    font.save(folder / "EmnistTestInstalled.ttf")
    return folder / "EmnistTestInstalled.ttf"


def render_elsewhere(tmp_path: Path, system_fonts: Path) -> dict:
    """The stand-in rendered by a fresh process that sees ``system_fonts`` as /usr/share/fonts and a new user font."""
    home = tmp_path / "home"
    for user_folder in (home / ".fonts", home / ".local" / "share" / "fonts"):
        new_font_family(user_folder)
    env = {**env_for_tests(tmp_path), "HOME": str(home), "XDG_DATA_HOME": str(home / ".local" / "share"),
           "MPLCONFIGDIR": str(tmp_path / "mplconfig")}
    if not shutil.which("unshare"):
        missing_system_dependency("needs unshare to give a process its own /usr/share/fonts (apt-get install util-linux)")
    inner = f"mount --bind {system_fonts} /usr/share/fonts && exec {sys.executable} -c \"$0\""
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", inner, _RENDER], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and "mount" in done.stderr and "Traceback" not in done.stderr:
        missing_system_dependency(f"no private mount namespace here (unshare: {done.stderr.strip()}); "
                                  "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def here() -> dict:
    return stand_in_here()


def test_a_font_installed_in_the_system_and_user_folders_changes_nothing(tmp_path, here):
    system_fonts = tmp_path / "system_fonts"
    if Path("/usr/share/fonts").is_dir():
        shutil.copytree("/usr/share/fonts", system_fonts, symlinks=True)
    new_font_family(system_fonts / "truetype" / "emnist-test")
    assert render_elsewhere(tmp_path, system_fonts) == here


def test_hidden_system_fonts_change_nothing(tmp_path, here):
    (tmp_path / "no_fonts").mkdir()
    assert render_elsewhere(tmp_path, tmp_path / "no_fonts") == here


def fonts_drawing(chars: str) -> list[Path]:
    """The documented font choice, re-derived with fontTools: matplotlib's bundled fonts whose character map
    holds every character, text families only (not the fallback boxes or math symbols), the first file (by
    name) of each (family, style)."""
    chosen: dict[tuple[str, str], Path] = {}
    for path in sorted((Path(matplotlib.get_data_path()) / "fonts" / "ttf").glob("*.ttf")):
        font = TTFont(path, lazy=True)
        family, style = font["name"].getDebugName(1), font["name"].getDebugName(2)
        if not re.search(r"last resort|cmex|cmsy|symbol", family, re.IGNORECASE) and all(
                ord(c) in font.getBestCmap() for c in chars):
            chosen.setdefault((family, style), path)
    return sorted(chosen.values())


def test_the_fingerprint_is_the_sha256_of_the_font_files_in_order(here):
    files = fonts_drawing("".join(class_names(SPLIT)))
    assert here["files"] == [path.name for path in files] and "DejaVuSans.ttf" in here["files"]
    digest = hashlib.sha256()
    for path in files:  # independent re-derivation of the documented recipe
        digest.update(path.name.encode() + b"\0" + str(path.stat().st_size).encode() + b"\0" + path.read_bytes())
    assert here["fingerprint"] == digest.hexdigest()
    assert here["cache_name"] == f"{SPLIT}-synthetic-300x50-seed0-fonts{digest.hexdigest()[:12]}"
