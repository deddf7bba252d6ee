"""The ``nist`` source against a loopback HTTP server that honours Range requests."""

import numpy as np
import pytest

from emnist_dist.data import load_split, prepare
from emnist_dist.data.__main__ import main
from emnist_dist.errors import UserError, run_cli


def assert_matches(cache, raw):
    images, labels = load_split(cache, "train")
    assert np.array_equal(images[:, 0].numpy(), raw.train_images.transpose(0, 2, 1))
    assert np.array_equal(labels.numpy(), raw.train_labels)


def test_download_once_shared_by_splits(tmp_path, archive_server):
    cache_root = tmp_path / "cache"
    balanced = prepare("balanced", "nist", cache_root, progress=False)
    digits = prepare("digits", "nist", cache_root, progress=False)
    assert archive_server.ranges == [None]  # one plain request for both splits
    assert (cache_root / "downloads" / "gzip.zip").read_bytes() == archive_server.payload
    assert_matches(balanced, archive_server.raws["balanced"])
    assert_matches(digits, archive_server.raws["digits"])


def test_md5_mismatch(tmp_path, archive_server, monkeypatch, capsys):
    monkeypatch.setenv("EMNIST_DIST_NIST_MD5", "0" * 32)
    cache_root = tmp_path / "cache"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["prepare", "--split", "digits", "--source", "nist", "--cache-dir", str(cache_root)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2
    assert err.startswith("error: http://127.0.0.1:") and "gzip.zip: downloaded file has md5" in err
    assert f"expected {'0' * 32}" in err
    # the bad download is removed too (empty lock files stay)
    assert [p.name for p in cache_root.rglob("*") if p.is_file() and p.suffix != ".lock"] == []


def test_interrupted_download_resumes(tmp_path, archive_server):
    cache_root = tmp_path / "cache"
    cut = len(archive_server.payload) // 3
    archive_server.cut_after = cut
    with pytest.raises(UserError, match=r"download interrupted after \d+ bytes .* run again to resume"):
        prepare("digits", "nist", cache_root, progress=False)
    part = cache_root / "downloads" / "gzip.zip.part"
    assert part.stat().st_size == cut
    assert not any(p.name.startswith("digits") for p in cache_root.iterdir())

    cache = prepare("digits", "nist", cache_root, progress=False)
    assert archive_server.ranges == [None, f"bytes={cut}-"]
    assert not part.exists()
    assert (cache_root / "downloads" / "gzip.zip").read_bytes() == archive_server.payload
    assert_matches(cache, archive_server.raws["digits"])
