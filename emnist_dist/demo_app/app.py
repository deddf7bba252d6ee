"""The draw-a-character web demo: a Gradio app around an exported model folder.

The page has a sketchpad (mouse or finger) and an upload box for a photo. It shows the
top 5 classes with probabilities, the 28x28 glyph the model actually saw, and a hint when
the top classes are characters that handwriting cannot tell apart (c/C, o/O/0, l/I/1 ...).
A second part, "Write a line", has a wide canvas and a photo upload for a line (or lines) of
handwriting; it shows the text read and the photo with each character's box and label.

Every prediction, from the page or from the API endpoint ``/predict``, goes through
:func:`classify`, which calls exactly what ``python -m emnist_dist.predict`` calls for one
image file; every line read, from the page or from ``/read``, goes through what
``python -m emnist_dist.read`` calls (:func:`emnist_dist.reading.line_reader.read_photo`).
Uploaded photos reach that code undecoded (``preprocess=False``: Gradio's own decoding fails on a
decompression bomb with a bare "the app raised an exception"), so a file over ``MAX_PIXELS``
megapixels or not an image is refused before decoding, in one line naming the file (never a server
path); Gradio refuses uploads over ``MAX_UPLOAD`` while they arrive. :func:`export_space` writes a Hugging Face Space folder running this app.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image

from ..errors import UserError, one_line
from ..model_folder.artifact import ModelInfo, load_model
from ..reading.line_reader import Reading, annotate, read_photo
from ..model_folder.predictor import predict_logits, top_k
from ..model_folder.preprocess import to_model_framing

TOP_K = 5
CANVAS = (400, 400)
BRUSH_RADIUS = 10
"""Pen radius on the 400x400 canvas: a character drawn across most of it gets EMNIST-like 2-3 pixel strokes at 28x28."""
SHOWN_GLYPH_SIDE = 224
"""The 28x28 glyph is shown enlarged 8x with nearest-neighbour pixels, so each pixel stays visible."""
LOOK_ALIKES = (frozenset("oO0"), frozenset("lI1"), frozenset("sS5"), frozenset("zZ2"), frozenset("gq9"))
"""Characters that handwriting often cannot tell apart, besides upper/lower case of one letter."""
HINT_MIN_PROB = 0.1
"""A runner-up look-alike is mentioned only when the model gives it at least this probability."""
LINE_CANVAS = (1000, 300)
"""The "Write a line" canvas: room for about eight characters of the single-character canvas's pen size."""
MAX_UPLOAD = "50mb"
"""Larger uploads are refused by Gradio while they arrive (``launch(max_file_size=...)``)."""
CACHE_CLEANUP = (600, 3600)
"""Every 10 minutes, uploads older than an hour are deleted from Gradio's cache."""
SPACE_REQUIREMENTS = ("torch", "timm", "safetensors", "numpy", "pillow", "scipy")
"""Distributions the demo imports besides gradio (a Space installs gradio from its README's sdk_version)."""


def classify(model: torch.nn.Module, info: ModelInfo, image: str | os.PathLike,
             device: torch.device | str = "cpu") -> tuple[dict[str, float], np.ndarray]:
    """One image file -> (the top-5 ``{label: probability}``, the uint8 28x28 glyph the model saw).

    The same calls as ``python -m emnist_dist.predict`` makes for a file (the conversion to the
    framing of the model's own training glyphs); raises UserError for an image without a usable character.
    """
    glyph = to_model_framing(image, info.framing)
    probs = predict_logits(model, info, glyph[None], device).softmax(dim=1)
    return {p["label"]: p["prob"] for p in top_k(probs, info.class_names, TOP_K)[0]}, glyph


def public_error(err: Exception, path: str | os.PathLike) -> str:
    """An error about an uploaded file as one line naming the file as uploaded, not its server path."""
    return one_line(str(err).replace(str(path), Path(path).name))


def uploaded_file(payload: dict | None) -> str | None:
    """The server path of an image input's raw value (the events take it unprocessed: ``preprocess=False``)."""
    return payload.get("path") if payload else None


def refuse(err: UserError, path: str) -> gr.Error:
    """A reading error for the page or API client: one line naming the file, not its server path.

    The upload is left to Gradio's cache clean-up (``CACHE_CLEANUP``) like every other: identical uploads
    share one cached file, so deleting it here would answer the others "no such file" instead of the reason.
    """
    return gr.Error(public_error(err, path))


def _look_alike(a: str, b: str) -> bool:
    return a.lower() == b.lower() or any(a in group and b in group for group in LOOK_ALIKES)


def look_alike_hint(confidences: dict[str, float]) -> str:
    """A Markdown hint when a likely runner-up is a case twin or look-alike of the top class, else ""."""
    ranked = sorted(confidences.items(), key=lambda item: item[1], reverse=True)
    if not ranked:
        return ""
    best = ranked[0][0]
    twins = [(label, prob) for label, prob in ranked[1:] if prob >= HINT_MIN_PROB and _look_alike(best, label)]
    if not twins:
        return ""
    shown = ", ".join(f"`{label}` ({100 * prob:.0f} %)" for label, prob in [ranked[0], *twins])
    kind = "differ only by case" if all(label.lower() == best.lower() for label, _ in twins) else "look alike"
    return (f"**Hint:** {shown} {kind} in handwriting; EMNIST itself labels such glyphs inconsistently, "
            "so the model cannot always tell them apart.")


def trained_on(info: ModelInfo) -> str:
    """What the model was trained on, in words (synthetic runs say so plainly)."""
    if info.source == "synthetic":
        return f"a synthetic stand-in for EMNIST {info.split} (not EMNIST)"
    return f"EMNIST {info.split}"


def _pen() -> gr.Brush:
    return gr.Brush(default_size=BRUSH_RADIUS, colors=["#000000"], color_mode="fixed")


def build_app(model: torch.nn.Module, info: ModelInfo, device: torch.device | str = "cpu") -> gr.Blocks:
    """The page: sketchpad and photo upload on the left; top 5, the glyph seen and the hint on the right."""

    def predict(payload: dict | None) -> tuple[dict[str, float], tuple[np.ndarray, str]]:
        """The ``/predict`` endpoint and the page's photo box: the Label value (+ glyph and hint, page only)."""
        image = uploaded_file(payload)
        if image is None:
            raise gr.Error("No image: upload a photo of one character, or draw one.")
        try:
            confidences, glyph = classify(model, info, image, device)
        except UserError as err:
            raise refuse(err, image) from None
        return confidences, (glyph, look_alike_hint(confidences))

    def read(payload: dict | None) -> tuple[dict, tuple[Reading, str]]:
        """The ``/read`` endpoint and the line photo box: ``python -m emnist_dist.read --json``'s object for
        the photo without ``path`` (+ the reading and the photo for the annotated view, page only).

        ``path`` would name a server file, and gradio_client takes any returned object with a ``path`` for a
        file to download (and fails with 403 Forbidden).
        """
        return read_file(uploaded_file(payload))

    def read_file(image: str | None) -> tuple[dict, tuple[Reading, str]]:
        if image is None:
            raise gr.Error("No image: upload a photo of a line of handwriting, or write one.")
        try:
            reading = read_photo(model, info, image, device=device, name=Path(image).name)
        except UserError as err:
            raise refuse(err, image) from None
        return {key: value for key, value in reading.to_json().items() if key != "path"}, (reading, image)

    def read_drawing(sketch: dict | None) -> tuple[dict, tuple[Reading, str]]:
        if not sketch or sketch.get("composite") is None:
            raise gr.Error("Write a line on the canvas first.")
        return read_file(sketch["composite"])

    def show_read(seen: tuple[Reading, str]) -> tuple[str, Image.Image]:
        reading, image = seen
        with Image.open(image) as photo:
            return "\n".join(reading.line_texts()), annotate(photo, reading)

    def predict_drawing(sketch: dict | None) -> tuple[dict[str, float], tuple[np.ndarray, str]]:
        if not sketch or sketch.get("composite") is None:
            raise gr.Error("Draw one character on the canvas first.")
        return predict({"path": sketch["composite"]})

    def show_seen(seen: tuple[np.ndarray, str]) -> tuple[Image.Image, str]:
        glyph, hint = seen
        return Image.fromarray(glyph).resize((SHOWN_GLYPH_SIDE,) * 2, Image.Resampling.NEAREST), hint

    metrics = f", test accuracy {100 * info.metrics['test/acc']:.2f} %" if "test/acc" in info.metrics else ""
    with gr.Blocks(title="emnist_dist demo", delete_cache=CACHE_CLEANUP) as app:
        gr.Markdown(f"`{info.architecture}` trained on {trained_on(info)}: "
                    f"{info.num_classes} classes ({' '.join(info.class_names)}){metrics}.")
        with gr.Tab("One character"):
            with gr.Row():
                with gr.Column():
                    with gr.Tab("Draw"):
                        sketch = gr.Sketchpad(type="filepath", format="png", canvas_size=CANVAS,
                                              height=CANVAS[1] + 120, brush=_pen(), layers=False, transforms=(),
                                              elem_id="sketch", label="Draw one character (pick the brush on the left first)")
                        draw_button = gr.Button("Predict", variant="primary", elem_id="predict-drawing")
                    with gr.Tab("Photo"):
                        # image_mode=None: the uploaded file reaches the preprocessing untouched, as with predict.
                        photo = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard", "webcam"],
                                             label="Photo or scan of one character", elem_id="photo")
                        photo_button = gr.Button("Predict", variant="primary", elem_id="predict-photo")
                with gr.Column():
                    label = gr.Label(num_top_classes=TOP_K, label="Top 5", elem_id="top5")
                    glyph = gr.Image(label="What the model saw (28x28)", interactive=False, buttons=["download"],
                                     height=SHOWN_GLYPH_SIDE, elem_id="glyph")
                    hint = gr.Markdown(elem_id="hint")
        with gr.Tab("Write a line", elem_id="line-tab"):
            with gr.Tab("Write"):
                line_sketch = gr.Sketchpad(type="filepath", format="png", canvas_size=LINE_CANVAS,
                                           height=LINE_CANVAS[1] + 120, brush=_pen(), layers=False, transforms=(),
                                           elem_id="line-sketch",
                                           label="Write a line of separate characters (pick the brush first)")
                line_draw_button = gr.Button("Read", variant="primary", elem_id="read-drawing")
            with gr.Tab("Photo"):
                line_photo = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard", "webcam"],
                                          label="Photo or scan of handwritten lines", elem_id="line-photo")
                line_photo_button = gr.Button("Read", variant="primary", elem_id="read-photo")
            text = gr.Textbox(label="Text read", lines=2, interactive=False, buttons=["copy"], elem_id="line-text")
            annotated = gr.Image(label="Boxes and labels", interactive=False, buttons=["download"],
                                 elem_id="annotated")
        seen = gr.State()  # not part of the API: clients of /predict get the Label value alone
        gr.on([photo.upload, photo_button.click], predict, photo, [label, seen], api_name="predict", preprocess=False,
              api_description="Top 5 classes of an image of one handwritten character (a gr.Label value).").then(
            show_seen, seen, [glyph, hint], api_visibility="private")
        draw_button.click(predict_drawing, sketch, [label, seen], api_visibility="private").then(
            show_seen, seen, [glyph, hint], api_visibility="private")
        result, read_seen = gr.JSON(visible=False), gr.State()
        gr.on([line_photo.upload, line_photo_button.click], read, line_photo, [result, read_seen], api_name="read",
              preprocess=False,
              api_description="The text of handwritten lines on a photo, with each character's box, label, "
                              "probability and top 5 (what python -m emnist_dist.read --json prints).").then(
            show_read, read_seen, [text, annotated], api_visibility="private")
        line_draw_button.click(read_drawing, line_sketch, [result, read_seen], api_visibility="private").then(
            show_read, read_seen, [text, annotated], api_visibility="private")
    return app


SPACE_APP = '''"""Hugging Face Space: draw a character and see what the EMNIST model thinks.

Written by `python -m emnist_dist.demo --export-space`; runs the same demo on ./model.
"""

import os
from pathlib import Path

from emnist_dist.demo import main
from emnist_dist.cli import run_cli

# Spaces set GRADIO_SERVER_NAME (0.0.0.0) and GRADIO_SERVER_PORT; elsewhere this stays on loopback.
argv = ["--model", str(Path(__file__).parent / "model"), "--host", os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")]
if "GRADIO_SERVER_PORT" in os.environ:
    argv += ["--port", os.environ["GRADIO_SERVER_PORT"]]
run_cli(main, argv)
'''


def export_space(model_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write a Hugging Face Space folder running this demo: app.py, requirements.txt, README.md,
    the emnist_dist package and the model folder. Built beside ``out_dir`` and renamed into place.

    The package is copied whole (its model-folder and reading modules are what the app runs); the
    requirements pin the versions this export runs with.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if out_dir.exists():
        raise UserError(f"{out_dir}: already exists; expected a new folder for the Space")
    _, info = load_model(model_dir)  # refuse a model folder that would not load in the Space
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        package = Path(__file__).resolve().parents[1]
        shutil.copytree(package, tmp / package.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copytree(model_dir, tmp / "model")
        # Plain writes: the whole folder appears at once by the rename below.
        (tmp / "app.py").write_text(SPACE_APP)
        (tmp / "requirements.txt").write_text(
            "".join(f"{name}=={importlib.metadata.version(name)}\n" for name in SPACE_REQUIREMENTS))
        (tmp / "README.md").write_text(
            f"---\ntitle: EMNIST {info.split} demo\nsdk: gradio\nsdk_version: {gr.__version__}\n"
            f"app_file: app.py\npinned: false\n---\n\n"
            f"Draw one character and see what `{info.architecture}`, trained on {trained_on(info)}, thinks. "
            "Written by `python -m emnist_dist.demo --export-space`; the model folder is `model/`.\n")
        os.replace(tmp, out_dir)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"{out_dir}: cannot write the Space folder ({err})") from None
    return out_dir
