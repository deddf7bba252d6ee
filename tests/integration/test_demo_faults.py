"""The demo server under a hostile pass: identical bad uploads at once, a page of dust, many requests.

One server (the README's command on a loopback port) for the module, started as test_demo.py starts its own.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import gradio_client
from PIL import Image

from tests.helpers.hostile_photos import dotted_png
from tests.helpers.line_photos import GOAL_STYLE, line_photo, synthetic_glyphs, words_photo
from tests.integration.test_demo import demo_env, free_port, serve, stop



@pytest.fixture(scope="module")
def server(trained_model_dir, tmp_path_factory):
    """(URL, the server's process id) of ``python -m emnist_dist.demo`` on a free loopback port."""
    tmp = tmp_path_factory.mktemp("demo")
    port = free_port()
    proc, url = serve([sys.executable, "-m", "emnist_dist.demo", "--model", str(trained_model_dir), "--port", str(port)],
                      port, tmp / "demo.log", env=demo_env(tmp, OMP_NUM_THREADS="1"))
    yield url, proc.pid
    stop(proc)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def test_identical_bad_uploads_arriving_together_all_get_the_reason(server, tmp_path):
    url, _ = server
    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)

    def send(endpoint: str) -> str:
        client = gradio_client.Client(url, verbose=False)
        try:
            client.predict(gradio_client.handle_file(str(blank)), api_name=endpoint)
        except gradio_client.exceptions.AppError as err:
            return str(err)
        return "accepted"

    for endpoint in ("/predict", "/read"):
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(send, [endpoint] * 12))
        assert all(a.startswith("blank.png: no ink found") for a in answers), (endpoint, answers)


def test_a_page_of_dust_is_refused_in_one_line_and_the_server_keeps_reading(server, tmp_path):
    url, pid = server
    client = gradio_client.Client(url, verbose=False)
    before = rss_mb(pid)
    with pytest.raises(gradio_client.exceptions.AppError) as refused:
        client.predict(gradio_client.handle_file(str(dotted_png(tmp_path / "dots.png", 10_000))), api_name="/read")
    assert str(refused.value).startswith("dots.png: ") and "marks" in str(refused.value)
    assert rss_mb(pid) - before < 300  # before the fix the server grew by gigabytes
    words = words_photo(tmp_path / "words.png")
    assert client.predict(gradio_client.handle_file(str(words)), api_name="/read")["text"] == "12 345"


@pytest.mark.slow
def test_memory_stays_flat_over_hundreds_of_requests(server, tmp_path):
    """The resident memory after 300 more reads of distinct photos is within a few megabytes of that after 60."""
    url, pid = server
    client = gradio_client.Client(url, verbose=False)
    rng = np.random.default_rng(11)
    glyphs = synthetic_glyphs(20, seed=99)
    photos = []
    for i in range(20):
        path = tmp_path / f"line_{i}.png"
        line_photo(*glyphs, rng, GOAL_STYLE).image.save(path)
        photos.append(path)

    def requests(n: int) -> float:
        for i in range(n):
            client.predict(gradio_client.handle_file(str(photos[i % len(photos)])), api_name="/read")
        time.sleep(1)
        return rss_mb(pid)

    warm = requests(60)
    after = requests(300)
    print(f"demo server RSS: {warm:.0f} MB after 60 reads, {after:.0f} MB after 360")
    assert after - warm < 40, (warm, after)
