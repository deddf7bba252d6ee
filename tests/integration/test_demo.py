"""``python -m emnist_dist.demo``: its API through gradio_client, its page in a real headless Chromium, its Space export.

The app runs as users start it (the README command, on a free loopback port), once for this
module, on the small digit model trained in the test session.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import gradio_client
import matplotlib
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from selenium import webdriver

from emnist_dist.cli import run_cli
from emnist_dist.demo_app.app import look_alike_hint
from emnist_dist.predict import main as predict_main
from emnist_dist.read import main as read_main
from tests.conftest import missing_system_dependency
from tests.helpers.line_photos import GOAL_STYLE, huge_png, line_photo, synthetic_glyphs, words_photo

FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
STARTUP_TIMEOUT_S = 300
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 8) -> list[tuple]:
    """Points on an ellipse from ``start`` to ``end`` degrees (0 = right, 90 = down, as on a screen)."""
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in (start + (end - start) * i / n for i in range(n + 1))]


DIGIT_STROKES = {
    # Pen strokes (polylines, in a unit box: x right, y down) the way people write digits. The page's brush draws
    # a straight segment between two pen points, and a headless Chromium on a busy CI machine re-renders the
    # canvas after every pen move (~1.4 CPU-s each), so curves get only as many points as their shape needs.
    "0": [_arc(0.5, 0.5, 0.3, 0.45, -90, 270, 6)],
    "1": [[(0.4, 0.14), (0.55, 0.03), (0.55, 0.97)]],
    "2": [_arc(0.5, 0.3, 0.3, 0.25, 190, 380, 3) + [(0.2, 0.95), (0.85, 0.95)]],
    "3": [_arc(0.5, 0.27, 0.28, 0.23, 200, 450, 3) + _arc(0.5, 0.72, 0.32, 0.25, -90, 160, 3)],
    "4": [[(0.62, 0.03), (0.15, 0.65), (0.88, 0.65)], [(0.66, 0.3), (0.66, 0.97)]],
    "5": [[(0.8, 0.04), (0.3, 0.04), (0.25, 0.45)] + _arc(0.48, 0.68, 0.32, 0.27, -120, 150, 3)],
    "6": [[(0.72, 0.04), (0.45, 0.25)] + _arc(0.5, 0.7, 0.28, 0.27, 200, 560, 5)],
    "7": [[(0.15, 0.04), (0.85, 0.04), (0.4, 0.97)]],
    "8": [_arc(0.5, 0.26, 0.22, 0.22, 90, 450, 4), _arc(0.5, 0.73, 0.27, 0.24, -90, 270, 4)],
    "9": [_arc(0.47, 0.3, 0.27, 0.25, 0, 360, 8) + [(0.7, 0.97)]],
}
DRAWN_BOX_PX = 240
"""Side of the box the strokes are drawn into on the page's canvas."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_env(tmp: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(tmp / "gradio-files"), **extra}


def serve(argv: list[str], port: int, log: Path, **kwargs) -> tuple[subprocess.Popen, str]:
    """Start a demo process; returns it and its URL once the page answers (fails with the log if it never does)."""
    url = f"http://127.0.0.1:{port}/"
    proc = subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT, **kwargs)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    stop(proc)
    pytest.fail(f"the demo did not start ({' '.join(argv)}):\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def demo_server(trained_model_dir, tmp_path_factory):
    """The README's command on a free loopback port, served for the whole module: (URL, Gradio's upload folder)."""
    tmp = tmp_path_factory.mktemp("demo")
    port = free_port()
    proc, url = serve([sys.executable, "-m", "emnist_dist.demo", "--model", str(trained_model_dir), "--port", str(port)],
                      port, tmp / "demo.log", env=demo_env(tmp))
    yield url, tmp / "gradio-files"
    stop(proc)


@pytest.fixture(scope="module")
def demo_url(demo_server):
    return demo_server[0]


def photo(path: Path, char: str, ink=(20, 20, 60), paper=(245, 240, 225), mode="RGB") -> Path:
    """A photo-like image of one character: dark ink on light paper, off-centre."""
    image = Image.new("RGB", (300, 200), paper)
    ImageDraw.Draw(image).text((60, 25), char, fill=ink, font=ImageFont.truetype(str(FONTS / "DejaVuSans.ttf"), 120))
    image.convert(mode).save(path)
    return path


def predict_cli(model_dir: Path, paths: list[Path], capsys) -> list[list[dict]]:
    """``python -m emnist_dist.predict --json --top-k 5`` on ``paths``: the reference the demo must reproduce."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(predict_main, ["--model", str(model_dir), *map(str, paths), "--json", "--top-k", "5"])
    assert exit_info.value.code == 0
    return [json.loads(line)["predictions"] for line in capsys.readouterr().out.splitlines()]


def test_api_predict_returns_the_label_that_predict_computes(demo_url, trained_model_dir, tmp_path, capsys):
    photos = [photo(tmp_path / "three.png", "3"),
              photo(tmp_path / "seven.jpg", "7", ink=(240, 240, 240), paper=(15, 15, 15), mode="L"),  # light on dark
              photo(tmp_path / "five.webp", "5", ink=(90, 30, 30))]
    client = gradio_client.Client(demo_url, verbose=False)
    api = client.view_api(print_info=False, return_format="dict")
    assert list(api["named_endpoints"]) == ["/predict", "/read"] and not api["unnamed_endpoints"]
    assert [p["component"] for p in api["named_endpoints"]["/predict"]["parameters"]] == ["Image"]
    assert [r["component"] for r in api["named_endpoints"]["/predict"]["returns"]] == ["Label"]
    assert [p["component"] for p in api["named_endpoints"]["/read"]["parameters"]] == ["Image"]
    assert [r["component"] for r in api["named_endpoints"]["/read"]["returns"]] == ["Json"]

    results = [client.predict(gradio_client.handle_file(str(p)), api_name="/predict") for p in photos]
    for result, expected, path in zip(results, predict_cli(trained_model_dir, photos, capsys), photos):
        assert result["label"] == expected[0]["label"], path
        assert [c["label"] for c in result["confidences"]] == [p["label"] for p in expected]
        assert [c["confidence"] for c in result["confidences"]] == pytest.approx([p["prob"] for p in expected], abs=1e-5)
    assert [r["label"] for r in results] == ["3", "7", "5"]

    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    for endpoint in ("/predict", "/read"):
        with pytest.raises(gradio_client.exceptions.AppError) as refused:
            client.predict(gradio_client.handle_file(str(blank)), api_name=endpoint)
        assert str(refused.value).startswith("blank.png: no ink found")  # the file's name, not its server path


def test_api_read_returns_what_read_computes(demo_url, trained_model_dir, tmp_path, capsys):
    rng = np.random.default_rng(3)
    glyphs = synthetic_glyphs(30, seed=77)
    samples = [line_photo(*glyphs, rng, GOAL_STYLE, lines=lines) for lines in (1, 2)]
    photos = [tmp_path / "line.jpg", tmp_path / "lines.png"]
    for sample, path in zip(samples, photos):
        sample.image.save(path)
    photos.append(words_photo(tmp_path / "words.png"))
    client = gradio_client.Client(demo_url, verbose=False)
    results = [client.predict(gradio_client.handle_file(str(p)), api_name="/read") for p in photos]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(read_main, ["--model", str(trained_model_dir), *map(str, photos), "--json"])
    assert exit_info.value.code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert results == [{key: value for key, value in r.items() if key != "path"} for r in records]
    assert results[-1]["text"] == "12 345" and results[1]["text"].count("\n") == 1


def test_huge_and_oversized_uploads_are_refused_in_one_line(demo_server, tmp_path):
    url, uploads = demo_server
    client = gradio_client.Client(url, verbose=False)
    huge = huge_png(tmp_path / "huge.png")  # 400 megapixels in a few kilobytes
    for endpoint in ("/predict", "/read"):
        with pytest.raises(gradio_client.exceptions.AppError) as refused:
            client.predict(gradio_client.handle_file(str(huge)), api_name=endpoint)
        assert str(refused.value).startswith("huge.png: cannot read as an image (Image size (400000000 pixels) ")
        assert "\n" not in str(refused.value)

    import httpx  # gradio_client's HTTP library

    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (51 << 20))  # over the 50 MB limit
    with big.open("rb") as f:
        response = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.png", f)}, timeout=120)
    assert response.status_code == 413 and "maximum allowed size" in response.text
    assert not list(uploads.rglob("big.png"))
    with pytest.raises(ValueError, match="exceeds the maximum file size of 52428800 bytes"):  # the client knows it too
        client.predict(gradio_client.handle_file(str(big)), api_name="/read")


def test_look_alike_hint_names_case_twins_and_look_alikes_only():
    assert "`c` (55 %), `C` (40 %) differ only by case" in look_alike_hint({"c": 0.55, "C": 0.40, "e": 0.05})
    assert "`0` (50 %), `O` (30 %), `o` (15 %) look alike" in look_alike_hint({"0": 0.5, "O": 0.3, "o": 0.15})
    assert "`l` (60 %), `1` (30 %) look alike" in look_alike_hint({"l": 0.6, "1": 0.3, "7": 0.1})
    assert look_alike_hint({"c": 0.95, "C": 0.04}) == ""  # an unlikely twin is not worth a hint
    assert look_alike_hint({"7": 0.6, "1": 0.4}) == ""  # a confusion, but not a look-alike pair


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through its chromedriver (nothing downloaded)."""
    if not (CHROMIUM and CHROMEDRIVER):
        missing_system_dependency("the browser test needs Debian's chromium and chromium-driver "
                                  "(apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.mark.slow  # a headless browser or a second demo server: about a minute or more
def test_browser_draws_digits_on_the_canvas_and_reads_the_prediction(demo_url, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def glyph_src():
        images = browser.find_elements(By.CSS_SELECTOR, "#glyph img")
        return images[0].get_attribute("src") if images else None

    def click(label: str):
        browser.find_element(By.CSS_SELECTOR, f"#sketch button[aria-label='{label}']").click()

    browser.get(demo_url)
    canvas = WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#sketch canvas"))[-1]
    shown, started = {}, time.monotonic()
    for digit, strokes in DIGIT_STROKES.items():
        click("Clear canvas")
        click("Brush")  # what a user does first; clearing the canvas deselects it
        pen = ActionChains(browser, duration=0)
        for stroke in strokes:  # offsets from the canvas centre, in CSS pixels
            points = [(round((x - 0.5) * DRAWN_BOX_PX), round((y - 0.5) * DRAWN_BOX_PX)) for x, y in stroke]
            pen.move_to_element_with_offset(canvas, *points[0]).click_and_hold()
            for point in points[1:]:
                pen.move_to_element_with_offset(canvas, *point)
            pen.release()
        pen.perform()
        before = glyph_src()
        browser.find_element(By.ID, "predict-drawing").click()
        WebDriverWait(browser, 60).until(lambda b: glyph_src() not in (None, before))  # the glyph follows the label
        label = browser.find_element(By.ID, "top5")
        top1 = label.find_element(By.CSS_SELECTOR, "[data-testid='label-output-value']").text
        rows = label.text.splitlines()[2:]  # "Top 5", the top class, then "class", "NN%" per row
        classes, percents = rows[0::2], [float(p.rstrip("%")) for p in rows[1::2]]
        assert len(classes) == 5 and classes[0] == top1 and percents == sorted(percents, reverse=True), label.text
        shown[digit] = top1
    screenshot = tmp_path / "demo.png"
    browser.save_screenshot(str(screenshot))
    right = sum(shown[d] == d for d in DIGIT_STROKES)
    print(f"drawn digits: top-1 {right}/{len(DIGIT_STROKES)} {shown} in {time.monotonic() - started:.0f} s; "
          f"screenshot {screenshot}")
    assert right >= 7, shown


LINE = "4071"
LINE_BOX_PX = 150
"""Each digit of the written line is drawn in a box this high, centres 200 CSS pixels apart."""


@pytest.mark.slow  # a headless browser or a second demo server: about a minute or more
def test_browser_writes_a_line_and_reads_a_photo_of_one(demo_url, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shown_text() -> str:
        return browser.find_element(By.CSS_SELECTOR, "#line-text textarea").get_attribute("value")

    def annotated_src():
        images = browser.find_elements(By.CSS_SELECTOR, "#annotated img")
        return images[0].get_attribute("src") if images else None

    browser.get(demo_url)
    WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.XPATH, "//button[@role='tab'][.='Write a line']"))
    browser.find_element(By.XPATH, "//button[@role='tab'][.='Write a line']").click()
    canvas = WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#line-sketch canvas"))[-1]
    browser.find_element(By.CSS_SELECTOR, "#line-sketch button[aria-label='Brush']").click()
    pen = ActionChains(browser, duration=0)
    for k, digit in enumerate(LINE):
        centre = 200 * k - 300
        for stroke in DIGIT_STROKES[digit]:
            points = [(centre + round((x - 0.5) * LINE_BOX_PX * 0.7), round((y - 0.5) * LINE_BOX_PX)) for x, y in stroke]
            pen.move_to_element_with_offset(canvas, *points[0]).click_and_hold()
            for point in points[1:]:
                pen.move_to_element_with_offset(canvas, *point)
            pen.release()
    pen.perform()
    browser.find_element(By.ID, "read-drawing").click()
    WebDriverWait(browser, 60).until(lambda b: shown_text() and annotated_src())
    written = shown_text()
    assert len(written) == len(LINE) and sum(a == b for a, b in zip(written, LINE)) >= 3, written

    before = annotated_src()
    browser.find_element(By.XPATH, "//*[@id='line-tab']//button[@role='tab'][.='Photo']").click()
    upload = WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#line-photo input[type=file]"))
    upload[0].send_keys(str(words_photo(tmp_path / "words.png")))  # read on upload
    WebDriverWait(browser, 60).until(lambda b: annotated_src() not in (None, before))
    assert shown_text() == "12 345"
    browser.save_screenshot(str(tmp_path / "read_line.png"))
    print(f"written line {LINE!r} read as {written!r}; screenshot {tmp_path / 'read_line.png'}")


@pytest.mark.slow  # a headless browser or a second demo server: about a minute or more
def test_export_space_folder_runs_the_same_demo(demo_url, trained_model_dir, tmp_path):
    space = tmp_path / "space"
    env = demo_env(tmp_path)
    done = subprocess.run([sys.executable, "-m", "emnist_dist.demo", "--model", str(trained_model_dir),
                           "--export-space", str(space)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == str(space), done.stderr
    assert {p.name for p in space.iterdir()} == {"app.py", "requirements.txt", "README.md", "emnist_dist", "model"}
    for f in trained_model_dir.iterdir():
        assert (space / "model" / f.name).read_bytes() == f.read_bytes()
    assert "sdk: gradio" in (space / "README.md").read_text()

    # The Space's own copy of the package is what it imports, and its requirements cover those imports.
    env.pop("PYTHONPATH", None)
    loaded = json.loads(subprocess.run(
        [sys.executable, "-c", "import json, sys, emnist_dist.demo, emnist_dist.demo_app.app; print(json.dumps("
         "{n: m.__file__ for n, m in sys.modules.items() if n.split('.')[0] == 'emnist_dist' and m.__file__}))"],
        cwd=space, env=env, capture_output=True, text=True, check=True).stdout)
    assert all(Path(f).resolve().is_relative_to(space.resolve()) for f in loaded.values()), loaded
    distributions = importlib.metadata.packages_distributions()
    required = {line.split("==")[0].lower() for line in (space / "requirements.txt").read_text().split()} | {"gradio"}
    for file in loaded.values():
        for node in ast.walk(ast.parse(Path(file).read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for top in {n.split(".")[0] for n in names} - set(sys.stdlib_module_names) - {"emnist_dist"}:
                assert {d.lower() for d in distributions[top]} & required, f"{file} imports {top}"

    port = free_port()
    proc, url = serve([sys.executable, "app.py"], port, tmp_path / "space.log", cwd=space,
                      env={**env, "GRADIO_SERVER_PORT": str(port)})
    try:
        image = gradio_client.handle_file(str(photo(tmp_path / "four.png", "4")))
        in_space = gradio_client.Client(url, verbose=False).predict(image, api_name="/predict")
    finally:
        stop(proc)
    assert in_space == gradio_client.Client(demo_url, verbose=False).predict(image, api_name="/predict")
    assert in_space["label"] == "4"


def test_bad_model_folder_and_existing_space_folder_are_one_line_errors(trained_model_dir, tmp_path, capsys):
    from emnist_dist.demo import main

    def run(argv):
        with pytest.raises(SystemExit) as exit_info:
            run_cli(main, argv)
        return exit_info.value.code, capsys.readouterr().err

    code, err = run(["--model", str(tmp_path / "missing")])
    assert code == 2 and err.startswith("error: ") and "missing: not a folder" in err and err.count("\n") == 1
    taken = tmp_path / "taken"
    taken.mkdir()
    code, err = run(["--model", str(trained_model_dir), "--export-space", str(taken)])
    assert code == 2 and "taken: already exists" in err and err.count("\n") == 1
    assert list(taken.iterdir()) == [] and [p.name for p in tmp_path.iterdir()] == ["taken"]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = run(["--model", str(trained_model_dir), "--port", str(port)])
    assert code == 2 and f"--port {port}: cannot serve there" in err and err.count("\n") == 1
