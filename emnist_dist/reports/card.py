"""The Hub model card of a model folder (what ``python -m emnist_dist.model_card`` writes) and the upload.

:func:`render_model_card` states the data (plainly when it is the synthetic stand-in), the test metrics
(from config.json, and from an ``evaluate`` report's metrics, :func:`read_eval_metrics`), the classes,
the preprocessing, intended use and limits, with the Hub metadata (a model-index of the test metrics);
:func:`write_model_card` writes it as ``model/README.md``; :func:`push_to_hub` uploads the folder.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..errors import UserError
from ..files import write_text_atomic
from ..model_folder.artifact import CARD_FILE, ONNX_FILE, ModelInfo, read_model_info
from ..export.onnx_conversion import ATOL, RTOL
from .evaluation import EVAL_METRICS_FILE

LICENSE = "mit"
"""The project's licence (pyproject.toml, LICENSE), given to the weights it trains."""

# final.json key -> (label in the card's table, Hub metric id, metric arguments)
_METRICS = {
    "test/acc": ("accuracy", "accuracy", None),
    "test/top5_acc": ("top-5 accuracy", "accuracy", {"top_k": 5}),
    "test/balanced_acc": ("balanced accuracy (mean per-class recall)", "balanced_accuracy", None),
    "test/macro_f1": ("macro F1", "f1", {"average": "macro"}),
    "test/weighted_f1": ("weighted F1", "f1", {"average": "weighted"}),
    "test/case_insensitive_acc": ("case-insensitive accuracy", "accuracy", {"case_insensitive": True}),
}


def _metrics_table(metrics: dict) -> list[str]:
    rows = [f"| {label} | {100 * metrics[key]:.2f}% |" for key, (label, _, _) in _METRICS.items() if key in metrics]
    return ["| metric | value |", "| --- | --- |", *rows] if rows else ["(not recorded)"]


def card_data(info: ModelInfo, synthetic: bool) -> ModelCardData:
    """The card's metadata: library, licence, data, metrics and a model-index of the test metrics."""
    hub_dataset = info.source[3:] if info.source.startswith("hf:") else None
    if synthetic:
        dataset_id, dataset_name = "synthetic", f"SYNTHETIC stand-in for EMNIST {info.split} (rendered fonts, not EMNIST)"
    else:
        dataset_id, dataset_name = hub_dataset or "emnist", f"EMNIST {info.split}"
    results = [EvalResult(task_type="image-classification", task_name="Handwritten character recognition",
                          dataset_type=dataset_id, dataset_name=dataset_name, dataset_config=info.split,
                          dataset_split="test", metric_type=metric, metric_name=label, metric_args=args,
                          metric_value=round(float(info.metrics[key]), 6))
               for key, (label, metric, args) in _METRICS.items() if key in info.metrics]
    return ModelCardData(
        library_name="timm", license=LICENSE, pipeline_tag="image-classification",
        tags=["image-classification", "handwriting", "emnist", "timm"] + (["synthetic-data"] if synthetic else []),
        datasets=[hub_dataset] if hub_dataset else None,
        metrics=sorted({metric for key, (_, metric, _) in _METRICS.items() if key in info.metrics}) or None,
        model_name=f"emnist_dist {info.architecture} ({info.split})" if results else None,
        eval_results=results or None)


def render_model_card(info: ModelInfo, eval_metrics: dict | None = None, has_onnx: bool = False) -> ModelCard:
    """The model card: Hub metadata (model-index included) and the Markdown body."""
    synthetic = info.source == "synthetic" or bool(eval_metrics and eval_metrics.get("synthetic"))
    n = info.num_classes
    lines = [f"# EMNIST {info.split} classifier ({info.architecture})", "",
             f"Recognises one handwritten character per image: {n} classes of the EMNIST `{info.split}` split, "
             f"with a timm `{info.architecture}` network (1-channel input, {info.image_size}x{info.image_size}).", ""]
    if synthetic:
        lines += ["> **Trained on SYNTHETIC data, not on EMNIST.** The glyphs were rendered from fonts by "
                  "emnist_dist's offline stand-in. This model is a pipeline check: its metrics say nothing "
                  "about real handwriting and it should not be used to read it.", ""]
    lines += ["## Data", "",
              f"- split: `{info.split}` ({n} classes)",
              f"- source: `{info.source or 'not recorded'}`" + (" (synthetic font renderings)" if synthetic else ""),
              "- EMNIST (Cohen et al., 2017, arXiv:1702.05373) is derived from NIST Special Database 19: "
              "characters written by US Census Bureau employees and high-school students." if not synthetic else
              "- EMNIST itself was not used.", ""]
    lines += ["## Metrics", "", "On the test split, as recorded at export:", "", *_metrics_table(info.metrics), ""]
    if eval_metrics:
        lines += [f"From `emnist_dist.evaluate` on split `{eval_metrics.get('split')}` "
                  f"({eval_metrics.get('test/num_samples')} images"
                  + (", converted to the model's framing" if eval_metrics.get("reframed") else "")
                  + (", test-time augmentation" if eval_metrics.get("tta") else "") + "):", "",
                  *_metrics_table(eval_metrics), ""]
    lines += ["## Classes", "", "Output index -> character:", "", "```",
              " ".join(f"{i}:{c}" for i, c in enumerate(info.class_names)), "```", ""]
    framing = info.framing
    placed = ("its centre of mass at the centre of the frame (as MNIST)" if framing.centre == "mass"
              else "its bounding box centred (as EMNIST)")
    lines += ["## Input and preprocessing", "",
              "The network takes upright 28x28 glyphs (bright ink on black), resized bilinearly "
              f"to {info.image_size}x{info.image_size} and normalised as `(x / 255 - mean) / std` with "
              f"mean = {info.mean:.6g}, std = {info.std:.6g} (timm's `pretrained_cfg`).", "",
              (f"Framing of the training glyphs, measured from them at export: the ink's longer side spans "
               f"{100 * framing.box:.0f}% of the frame, strokes are {framing.stroke_low:.2g} to "
               f"{framing.stroke_high:.2g} pixels wide (10th to 90th percentile), the character sits with {placed}."
               if framing.measured else
               "This folder predates measured framing, so EMNIST's is assumed: the ink's longer side spans "
               f"{100 * framing.box:.0f}% of the frame, strokes at least {framing.stroke_low:.2g} pixels wide, "
               f"the character sits with {placed}.") + " Stored in `config.json` under `emnist_dist.framing`.", "",
              "`python -m emnist_dist.predict` turns a photo or scan into such a glyph: grayscale (transparency on "
              "white, EXIF orientation applied), uneven lighting evened out, binarisation with Otsu's threshold, "
              "polarity from the image border (dark ink on light paper is inverted), crop to the ink, strokes "
              "brought into the width range above, scaling to the measured size, placement as above, "
              "antialiased downsampling to 28x28, intensities stretched to 0..255.", ""]
    lines += ["## How to use", "", "```bash",
              "python -m emnist_dist.predict --model MODEL_DIR photo.jpg more_images/ --top-k 3",
              "python -m emnist_dist.evaluate --model MODEL_DIR", "```", "",
              "With timm alone (the photo must already be a glyph framed as above):", "", "```python",
              "import timm",
              'model = timm.create_model("local-dir:MODEL_DIR", pretrained=True)  # or "hf-hub:OWNER/NAME"',
              'labels = model.pretrained_cfg["label_names"]', "```", ""]
    if has_onnx:
        lines += [f"`{ONNX_FILE}` holds the same network for onnxruntime: input `input` float32 "
                  f"(batch, 1, {info.image_size}, {info.image_size}) normalised as above, output `logits` "
                  f"(batch, {n}); dynamic batch. It matched PyTorch within {ATOL:g} + {RTOL:g} * |logit|. "
                  "Class names, size, mean and std are also in its metadata.", ""]
    lines += ["## Intended use", "",
              "Reading single, isolated handwritten characters (digits and Latin letters) that are cut out one "
              "per image; teaching and benchmarking. Not for unattended decisions about people (forms, exams, "
              "identity documents) without a human check.", ""]
    lines += ["## Limits", "",
              "- Case: EMNIST scales every character to fill its frame, so size cannot tell upper from lower "
              "case; c/C, k/K, m/M, o/O, p/P, s/S, u/U, v/V, w/W, x/X, y/Y, z/Z are often indistinguishable "
              "and account for many byclass errors (hence the case-insensitive accuracy).",
              "- Look-alikes across classes: o/O/0, l/I/1/i, 2/Z/z, 5/S/s, 9/g/q, b/6, B/8.",
              "- bymerge/balanced merge the 15 letters whose cases look alike (C I J K L M O P S U V W X Y Z) into "
              "one class each; letters merges both cases of every letter under its lower-case name.",
              "- One character per image on plain paper: no segmentation of words or lines; noise specks or "
              "shadows enlarge the crop and hurt the prediction; thin strokes on large images come out faint.",
              "- Writers: NIST's American writers of the early 1990s; other handwriting styles (e.g. crossed 7, "
              "European 1) and other scripts are not covered. EMNIST also has some label noise.", ""]
    lines += ["## License", "", f"The weights are released under the {LICENSE.upper()} licence, like emnist_dist, "
              "the code that trained them.", ""]
    return ModelCard(f"---\n{card_data(info, synthetic).to_yaml()}\n---\n\n" + "\n".join(lines))


def write_model_card(model_dir: str | os.PathLike, eval_metrics: dict | None = None) -> Path:
    """Write ``model_dir/README.md`` atomically; returns its path."""
    info = read_model_info(model_dir)
    path = Path(model_dir) / CARD_FILE
    card = render_model_card(info, eval_metrics, has_onnx=(Path(model_dir) / ONNX_FILE).is_file())
    return write_text_atomic(path, str(card))


def read_eval_metrics(path: str | os.PathLike) -> dict:
    """An ``evaluate`` report's metrics.json (or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / EVAL_METRICS_FILE
    expected = "expected the metrics.json written by python -m emnist_dist.evaluate"
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read evaluation metrics ({err.__class__.__name__}); {expected}") from None
    if not isinstance(metrics, dict):
        raise UserError(f"{path}: holds a JSON {type(metrics).__name__}; {expected}")
    for key in _METRICS:
        value = metrics.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UserError(f"{path}: {key} is {value!r}; {expected} (finite numbers)")
    return metrics


def push_to_hub(model_dir: str | os.PathLike, repo_id: str, private: bool = False) -> str:
    """Upload the model folder to the Hub repo ``repo_id`` (created if needed); returns its URL."""
    from huggingface_hub import HfApi, get_token

    if get_token() is None:
        raise UserError(f"--push-to-hub {repo_id}: no Hugging Face token; log in with `hf auth login` "
                        "or set HF_TOKEN")
    api = HfApi()
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(model_dir), commit_message="Upload emnist_dist model")
    # The network stack's exception types differ between huggingface_hub versions (requests,
    # httpx): whatever stops the upload is reported as one line.
    except Exception as err:  # noqa: BLE001
        detail = str(err).splitlines()[0] if str(err) else ""
        raise UserError(f"--push-to-hub {repo_id}: upload failed ({err.__class__.__name__}: {detail})") from None
    return str(url)
