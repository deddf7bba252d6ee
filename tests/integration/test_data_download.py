"""The ``nist`` source against loopback HTTP servers: one that honours Range requests, and failing mirrors."""

import hashlib
import socket
from pathlib import Path

import numpy as np
import pytest

from emnist_dist.config import parse_config
from emnist_dist.data import load_split, prepare, prepare_data
from emnist_dist.data.__main__ import main
from emnist_dist.cli import run_cli
from emnist_dist.errors import UserError


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


@pytest.mark.parametrize("value", ["58c8d27c", "z" * 32, "58c8d27c78d21e728a6bc7b3cc06412e0"])
def test_a_malformed_md5_is_refused_before_the_download(tmp_path, archive_server, monkeypatch, capsys, value):
    """Found by the hostile pass: a malformed EMNIST_DIST_NIST_MD5 was found only after the whole download."""
    monkeypatch.setenv("EMNIST_DIST_NIST_MD5", value)
    cache_root = tmp_path / "cache"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["prepare", "--split", "digits", "--source", "nist", "--cache-dir", str(cache_root)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2
    assert err == f"error: EMNIST_DIST_NIST_MD5={value!r}: expected an md5 digest, 32 hexadecimal digits"
    assert archive_server.ranges == []  # no request was made
    assert [p.name for p in cache_root.rglob("*") if p.is_file() and p.suffix != ".lock"] == []


def test_an_upper_case_md5_is_the_same_digest(tmp_path, archive_server, monkeypatch):
    monkeypatch.setenv("EMNIST_DIST_NIST_MD5", hashlib.md5(archive_server.payload).hexdigest().upper())
    assert_matches(prepare("digits", "nist", tmp_path / "cache", progress=False), archive_server.raws["digits"])


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


def _down_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/EMNIST/gzip.zip"  # closed once the block ends


def run_prepare(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    return exit_info.value.code, capsys.readouterr()


def test_mirrors_are_tried_in_order_past_a_down_an_html_and_a_truncating_server(
    tmp_path, archive_server, bad_mirror, monkeypatch, capsys
):
    good = f"http://127.0.0.1:{archive_server.server_port}/gzip.zip"
    down = _down_url()
    monkeypatch.setenv("EMNIST_DIST_NIST_URL", down)  # the official server is down
    html, cut = bad_mirror("html"), bad_mirror("truncate", cut=len(archive_server.payload) // 3)
    monkeypatch.setenv("EMNIST_DIST_NIST_MIRRORS", good)  # tried after the --mirror ones
    cache_root = tmp_path / "cache"
    code, captured = run_prepare(["prepare", "--split", "digits", "--source", "nist", "--cache-dir", str(cache_root),
                                  "--mirror", html.url, "--mirror", cut.url], capsys)
    assert code == 0, captured.err
    tried = [line for line in captured.err.splitlines() if line.endswith("; trying the next server")]
    assert [line.split(": ", 1)[0] for line in tried] == [down, html.url, cut.url]
    assert "download failed (" in tried[0]
    assert "answered an HTML page (Content-Type text/html; charset=utf-8), not the file" in tried[1]
    assert f"download interrupted after {cut.cut} bytes (connection closed at {cut.cut} of " in tried[2]
    assert html.sent < 10 * 2**20  # given up from its first bytes, not after the 200 MB it announced
    assert archive_server.ranges == [f"bytes={cut.cut}-"]  # the good server resumed where the cut one stopped
    assert (cache_root / "downloads" / "gzip.zip").read_bytes() == archive_server.payload
    assert_matches(Path(captured.out.strip().splitlines()[-1]), archive_server.raws["digits"])


def test_every_server_failing_is_one_line_naming_each_and_why(tmp_path, archive_server, bad_mirror, monkeypatch,
                                                              capsys):
    down = _down_url()
    monkeypatch.setenv("EMNIST_DIST_NIST_URL", down)
    monkeypatch.setenv("EMNIST_DIST_NIST_SIZE", str(len(archive_server.payload)))
    html, wrong = bad_mirror("html"), bad_mirror("wrong_size")
    monkeypatch.setenv("EMNIST_DIST_NIST_MIRRORS", f"{html.url}, {wrong.url}")
    cache_root = tmp_path / "cache"
    code, captured = run_prepare(["prepare", "--split", "digits", "--source", "nist", "--cache-dir", str(cache_root)],
                                 capsys)
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in captured.err
    line = errors[0]
    assert line.startswith(f"error: 3 servers tried, none delivered gzip.zip: {down}: download failed (")
    assert f"; {html.url}: answered an HTML page (Content-Type text/html; charset=utf-8), not the file; " in line
    assert f"; {wrong.url}: serves 200000000 bytes: expected {len(archive_server.payload)} (another file); " in line
    assert line.endswith("run again to retry, or download it elsewhere and pass the local file "
                         "(--source /path/to/gzip.zip)")
    assert html.sent < 10 * 2**20 and wrong.sent < 10 * 2**20  # recognised from headers and first bytes
    assert [p.name for p in cache_root.rglob("*") if p.is_file() and p.suffix != ".lock"] == []


def test_data_mirrors_config_key(tmp_path, archive_server, monkeypatch):
    good = f"http://127.0.0.1:{archive_server.server_port}/gzip.zip"
    monkeypatch.setenv("EMNIST_DIST_NIST_URL", _down_url())
    cfg = parse_config(["--data.split", "digits", "--data.source", "nist", "--data.cache_dir", str(tmp_path),
                        "--data.mirrors", f"[{good}]"])
    assert cfg.data.mirrors == [good]
    assert_matches(prepare_data(cfg.data, progress=False), archive_server.raws["digits"])


def test_a_body_without_length_that_never_ends_is_stopped_past_the_expected_size(tmp_path, archive_server,
                                                                                 bad_mirror, monkeypatch, capsys):
    size = len(archive_server.payload)
    monkeypatch.setenv("EMNIST_DIST_NIST_SIZE", str(size))
    endless = bad_mirror("endless")
    monkeypatch.setenv("EMNIST_DIST_NIST_URL", endless.url)
    good = f"http://127.0.0.1:{archive_server.server_port}/gzip.zip"
    cache_root = tmp_path / "cache"
    code, captured = run_prepare(["prepare", "--split", "digits", "--source", "nist", "--cache-dir", str(cache_root),
                                  "--mirror", good], capsys)
    assert code == 0, captured.err
    (tried,) = [line for line in captured.err.splitlines() if line.endswith("; trying the next server")]
    assert tried.startswith(f"{endless.url}: sent more than the {size} bytes expected without announcing a length "
                            "(stopped at ")
    assert endless.sent < size + 16 * 2**20  # what the client read (1 MiB past the size at most) + socket buffers
    assert archive_server.ranges == [None]  # the stopped server's bytes were not resumed from
    assert (cache_root / "downloads" / "gzip.zip").read_bytes() == archive_server.payload


@pytest.mark.parametrize("where", ["url", "mirror", "mirrors_env", "config"])
def test_a_malformed_server_url_is_named_and_the_next_server_is_tried(tmp_path, archive_server, monkeypatch, where):
    good = f"http://127.0.0.1:{archive_server.server_port}/gzip.zip"
    bad = {"url": "http://[::1", "mirror": "not-a-url", "mirrors_env": "www.example.org/gzip.zip",
           "config": "http//typo/gzip.zip"}[where]
    monkeypatch.setenv("EMNIST_DIST_NIST_URL", bad if where == "url" else _down_url())
    monkeypatch.setenv("EMNIST_DIST_NIST_MIRRORS", f"{bad} {good}" if where == "mirrors_env" else "")
    mirrors = {"url": [good], "mirror": [bad, good], "mirrors_env": [], "config": [bad, good]}[where]
    cache_root = tmp_path / "cache"
    if where == "config":
        cfg = parse_config(["--data.split", "digits", "--data.source", "nist", "--data.cache_dir", str(cache_root),
                            "--data.mirrors", f"[{', '.join(mirrors)}]"])
        cache = prepare_data(cfg.data, progress=False)
    else:
        cache = prepare("digits", "nist", cache_root, progress=False, mirrors=mirrors)
    assert_matches(cache, archive_server.raws["digits"])


def test_malformed_server_urls_alone_are_one_line_naming_each(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMNIST_DIST_NIST_URL", "http://[::1")
    monkeypatch.setenv("EMNIST_DIST_NIST_MIRRORS", "")
    code, captured = run_prepare(["prepare", "--split", "digits", "--source", "nist", "--cache-dir",
                                  str(tmp_path / "cache"), "--mirror", "not-a-url"], capsys)
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in captured.err
    assert errors[0].startswith("error: 2 servers tried, none delivered gzip.zip: http://[::1: not a valid URL (")
    assert "; not-a-url: not a valid URL: expected http(s)://HOST/PATH; run again to retry" in errors[0]


def test_a_redirect_loop_is_one_line(tmp_path, archive_server, bad_mirror, monkeypatch, capsys):
    loop = bad_mirror("redirect_loop")
    monkeypatch.setenv("EMNIST_DIST_NIST_URL", loop.url)
    code, captured = run_prepare(["prepare", "--split", "digits", "--source", "nist", "--cache-dir",
                                  str(tmp_path / "cache")], capsys)
    errors = [line for line in captured.err.splitlines() if not line.startswith("preparing ")]
    assert code == 2 and len(errors) == 1, captured.err
    assert errors[0].startswith(f"error: {loop.url}: download failed (HTTP 302 The HTTP server returned a "
                                   "redirect error that would lead to an infinite loop. The last 30x error message "
                                   "was: Found); run again to retry")


def test_a_malformed_archive_size_in_the_environment_is_one_line(tmp_path, archive_server, monkeypatch, capsys):
    monkeypatch.setenv("EMNIST_DIST_NIST_SIZE", "562MB")
    code, captured = run_prepare(["prepare", "--split", "digits", "--source", "nist", "--cache-dir",
                                  str(tmp_path / "cache")], capsys)
    assert code == 2 and captured.err.strip().splitlines()[-1] == (
        "error: EMNIST_DIST_NIST_SIZE='562MB': expected the archive's size in bytes, a positive integer")
