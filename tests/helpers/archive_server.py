"""Loopback HTTP servers for the official archive (fixtures registered in tests/conftest.py).

``archive_server`` serves a generated ``gzip.zip`` holding balanced and digits, honours Range requests, records
the Range header of every request, can cut the next response short (``cut_after``) or wait before
answering (``delay``, to make concurrent downloads overlap), and points the ``nist`` source at itself
through the environment (inherited by subprocesses). ``bad_mirror`` starts servers that fail the
ways real mirrors do: an HTML page answered with 200, another file (wrong size), a cut connection, a body
without a length that never ends, a redirect loop.
"""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers.emnist_raw import random_split, write_gzip_zip


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.payload`` after ``server.delay`` seconds; ``server.cut_after`` makes the next response
    stop after that many bytes."""

    def do_GET(self):
        server = self.server
        server.ranges.append(self.headers.get("Range"))
        time.sleep(server.delay)
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
    server.payload, server.cut_after, server.ranges, server.delay = payload, None, [], 0.0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("EMNIST_DIST_NIST_URL", f"http://127.0.0.1:{server.server_port}/EMNIST/gzip.zip")
    monkeypatch.setenv("EMNIST_DIST_NIST_MD5", hashlib.md5(payload).hexdigest())
    server.raws = raws
    yield server
    server.shutdown()
    server.server_close()


class _BadMirrorHandler(BaseHTTPRequestHandler):
    """``server.fault``: ``html`` (an HTML page, announced as 200 MB), ``wrong_size`` (a zip-looking file of 200 MB),
    ``truncate`` (the archive's first ``server.cut`` bytes, then the connection closes), ``endless`` (the archive,
    then zeros, without a Content-Length: up to 200 MB) or ``redirect_loop`` (302 to itself). Large bodies are
    streamed until the client hangs up; ``server.sent`` counts what got out."""

    def do_GET(self):
        server = self.server
        server.ranges.append(self.headers.get("Range"))
        if server.fault == "redirect_loop":
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        if server.fault == "endless":
            self.send_header("Content-Type", "application/zip")
            self.end_headers()
            self.close_connection = True  # no length: the body ends when the connection does
            try:
                self.wfile.write(server.payload)
                server.sent = len(server.payload)
                while server.sent < 200 * 10**6:
                    self.wfile.write(bytes(1 << 16))
                    server.sent += 1 << 16
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        if server.fault == "truncate":
            self.send_header("Content-Length", str(len(server.payload)))
            self.end_headers()
            self.wfile.write(server.payload[: server.cut])
            self.close_connection = True
            return
        html = server.fault == "html"
        self.send_header("Content-Type", "text/html; charset=utf-8" if html else "application/zip")
        self.send_header("Content-Length", str(200 * 10**6))
        self.end_headers()
        chunk = (b"<!DOCTYPE html><html><body>Service unavailable</body></html>" if html else b"PK\x03\x04")
        chunk = chunk.ljust(1 << 16, b" ")
        try:
            while server.sent < 200 * 10**6:
                self.wfile.write(chunk)
                server.sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def bad_mirror(archive_server):
    """``bad_mirror(fault)`` starts a failing loopback server (see _BadMirrorHandler) and returns it (``.url``)."""
    servers = []

    def start(fault: str, cut: int = 0):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _BadMirrorHandler)
        server.fault, server.cut, server.sent, server.ranges = fault, cut, 0, []
        server.payload = archive_server.payload
        server.url = f"http://127.0.0.1:{server.server_port}/{fault}/gzip.zip"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
