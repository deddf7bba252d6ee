"""The ``nist`` source against a loopback HTTP server that honours Range requests."""

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from tests.helpers.emnist_raw import random_split, write_gzip_zip

from emnist_dist.data import load_split, prepare
from emnist_dist.data.__main__ import main
from emnist_dist.errors import UserError, run_cli


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.payload``; ``server.cut_after`` makes the next response stop after that many bytes."""

    def do_GET(self):
        server = self.server
        server.ranges.append(self.headers.get("Range"))
        start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0]) if self.headers.get("Range") else 0
        body = server.payload[start:]
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after is not None:
            body, server.cut_after = body[: server.cut_after], None
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def archive_server(tmp_path, monkeypatch):
    """A loopback server for a gzip.zip holding balanced and digits; the env points the nist source at it."""
    raws = {"balanced": random_split("balanced", 80, 30, seed=11), "digits": random_split("digits", 40, 20, seed=12)}
    payload = write_gzip_zip(tmp_path / "served.zip", *raws.values()).read_bytes()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.payload, server.cut_after, server.ranges = payload, None, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("EMNIST_DIST_NIST_URL", f"http://127.0.0.1:{server.server_port}/EMNIST/gzip.zip")
    monkeypatch.setenv("EMNIST_DIST_NIST_MD5", hashlib.md5(payload).hexdigest())
    server.raws = raws
    yield server
    server.shutdown()
    server.server_close()


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
