"""The exported model folder: a timm model folder (``model.safetensors`` + ``config.json``).

``config.json`` is in timm's own format, so ``timm.create_model("local-dir:DIR", pretrained=True)``
(or ``"hf-hub:OWNER/NAME"`` after a push) builds the 1-channel network with its head, weights
and label names without emnist_dist::

    {"architecture": "efficientnet_b3", "num_classes": 62, "label_names": ["0", ..., "z"],
     "model_args": {"in_chans": 1, ...},
     "pretrained_cfg": {"input_size": [1, 112, 112], "mean": [0.17], "std": [0.33],
                        "interpolation": "bilinear", "crop_pct": 1.0, ...},
     "emnist_dist": {"format_version": 2, "split": "byclass", "source": "nist",
                     "framing": {...}, "metrics": {"test/acc": ...}}}

timm ignores the ``emnist_dist`` block: the split, the data source, the framing measured from
the training glyphs (:mod:`.framing`) and the test metrics. Folders of the first format (a flat
``architecture, class_names, image_size, mean, std, split, source, metrics``) are still read;
their models were trained on EMNIST-framed data, so they get :data:`NIST_FRAMING`.

The folder is written atomically (built under a temporary name, then renamed), so a crash never
leaves a folder that looks complete.
"""

from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from ..data.splits import class_names_problem
from ..errors import UserError
from ..files import atomic_path
from .framing import NIST_FRAMING, Framing

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"  # the Hub model card (reports.card)
ONNX_FILE = "model.onnx"  # the ONNX export (export.onnx_conversion)
# The files emnist_dist writes into a model folder: training (weights, config.json), model_card, onnx_export.
MODEL_FOLDER_FILES = (WEIGHTS_FILE, CONFIG_FILE, CARD_FILE, ONNX_FILE)
FORMAT_VERSION = 2
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 1024
"""Accepted input sizes: smaller cannot show a character, larger is no EMNIST model."""


@dataclass
class ModelInfo:
    """What config.json holds about an exported model."""

    architecture: str
    """A timm architecture name as ``timm.list_models()`` lists it, built with in_chans=1."""
    class_names: list[str]
    """Class names in output-index order (timm's label_names)."""
    image_size: int
    """Side length the 28x28 upright glyphs are resized to (bilinear) before normalising."""
    mean: float
    std: float
    split: str
    """EMNIST split the model was trained on."""
    source: str = ""
    """Where the training data came from (synthetic runs say so)."""
    metrics: dict = field(default_factory=dict)
    """Test metrics of the exported weights, when known."""
    framing: Framing = NIST_FRAMING
    """How the training glyphs sit in their frame; user images are converted to match."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def weights_bytes(model: torch.nn.Module) -> bytes:
    """The model's state dict as safetensors bytes (on the CPU, contiguous): the model folder's and the
    checkpoints' weights."""
    return safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})


def save_model(model: torch.nn.Module, out_dir: str | os.PathLike, info: ModelInfo) -> Path:
    """Write ``out_dir`` as a timm model folder (weights, config.json with the emnist_dist block); returns it.

    timm's own writer (``timm.models.save_for_hf``) writes both files, on a CPU copy in the
    default memory format (safetensors refuses channels_last tensors).
    """
    from timm.models import save_for_hf

    model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper: save the network itself
    export = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format)
    emnist_dist = {"format_version": FORMAT_VERSION, "split": info.split, "source": info.source,
                   "framing": info.framing.to_dict(), "metrics": info.metrics}
    data_config = {"input_size": (1, info.image_size, info.image_size), "mean": (info.mean,), "std": (info.std,),
                   "interpolation": "bilinear", "crop_pct": 1.0}
    # The source checkpoint's tag and licence (e.g. ImageNet weights) do not describe these weights.
    model_config = {"label_names": list(info.class_names), "emnist_dist": emnist_dist,
                    "pretrained_cfg": {"tag": f"emnist_{info.split}", "license": "mit"}}
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        save_for_hf(export, str(tmp), model_config=model_config, safe_serialization=True, data_config=data_config)
    return out_dir


def read_model_info(model_dir: str | os.PathLike) -> ModelInfo:
    """Read and check ``config.json`` (either format); anything missing or malformed raises UserError."""
    path = Path(model_dir) / CONFIG_FILE
    if not Path(model_dir).is_dir():
        raise UserError(f"{model_dir}: not a folder; expected a model folder holding {WEIGHTS_FILE} and {CONFIG_FILE}")
    if not path.is_file():
        raise UserError(f"{path}: missing; expected the {CONFIG_FILE} written by emnist_dist training")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err.__class__.__name__}); expected the {CONFIG_FILE} "
                        "written by emnist_dist training") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: holds a JSON {type(raw).__name__}; expected an object")
    return _timm_format(raw, path) if "pretrained_cfg" in raw else _first_format(raw, path)


def _timm_format(raw: dict, path: Path) -> ModelInfo:
    check = _Checker(path)
    cfg = check.of(raw, "pretrained_cfg", dict)
    ours = check.of(raw, "emnist_dist", dict)
    num_classes = check.of(raw, "num_classes", int)
    names = check.names(raw, "label_names")
    if len(names) != num_classes:
        raise UserError(f"{path}: label_names holds {len(names)} names but num_classes is {num_classes}; "
                        "expected one name per class")
    in_chans = check.of(check.of(raw, "model_args", dict), "in_chans", int, "model_args.in_chans")
    input_size = check.of(cfg, "input_size", list, "pretrained_cfg.input_size")
    if in_chans != 1 or len(input_size) != 3 or input_size[0] != 1 or input_size[1] != input_size[2]:
        raise UserError(f"{path}: model_args.in_chans {in_chans} and pretrained_cfg.input_size {input_size}: "
                        "expected a 1-channel square input, [1, S, S]")
    mean, std = (check.single(cfg, key) for key in ("mean", "std"))
    framing = Framing.from_dict(ours["framing"], str(path)) if "framing" in ours else NIST_FRAMING
    return ModelInfo(architecture=check.architecture(raw), class_names=names,
                     image_size=check.size(input_size[1], "pretrained_cfg.input_size"), mean=mean,
                     std=check.positive(std, "pretrained_cfg.std"), split=check.of(ours, "split", str, "emnist_dist.split"),
                     source=check.of(ours, "source", str, "emnist_dist.source", default=""),
                     metrics=check.metrics(ours.get("metrics", {}), "emnist_dist.metrics"), framing=framing)


def _first_format(raw: dict, path: Path) -> ModelInfo:
    """The flat config.json of the first emnist_dist version."""
    check = _Checker(path)
    return ModelInfo(architecture=check.architecture(raw), class_names=check.names(raw, "class_names"),
                     image_size=check.size(check.of(raw, "image_size", int), "image_size"),
                     mean=check.number(raw, "mean"), std=check.positive(check.number(raw, "std"), "std"),
                     split=check.of(raw, "split", str), source=check.of(raw, "source", str, default=""),
                     metrics=check.metrics(raw.get("metrics", {}), "metrics"))


class _Checker:
    """Typed reads from config.json; each problem is one UserError naming the file and the field."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, value: object, expected: str) -> UserError:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return UserError(f"{self.path}: {key} is {shown}; expected {expected}")

    def of(self, raw: dict, key: str, kind: type, label: str | None = None, default=None):
        label = label or key
        if key not in raw:
            if default is not None:
                return default
            raise UserError(f"{self.path}: no {label!r}; expected the {CONFIG_FILE} written by emnist_dist training")
        value = raw[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise self.fail(label, value, f"a JSON {_JSON_NAMES[kind]}")
        return value

    def architecture(self, raw: dict) -> str:
        """A plain timm architecture name: ``hf-hub:``/``local-dir:`` would make timm read another place."""
        import timm

        name = self.of(raw, "architecture", str)
        if name not in timm.list_models():
            raise self.fail("architecture", name, "a timm architecture name (one of timm.list_models()); "
                            "a model folder never points to the Hub or another folder")
        return name

    def names(self, raw: dict, key: str) -> list[str]:
        """Distinct, visible class names: predictions are shown by name, so each must tell one class."""
        names = self.of(raw, key, list)
        problem = class_names_problem(names)
        if problem is not None:
            raise self.fail(key, names, f"a distinct, visible, printable name per class ({problem})")
        return names

    def finite(self, value: object, label: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(label, value, "a finite number")
        return float(value)

    def number(self, raw: dict, key: str) -> float:
        return self.finite(raw.get(key), key)

    def single(self, cfg: dict, key: str) -> float:
        label = f"pretrained_cfg.{key}"
        values = self.of(cfg, key, list, label)
        if len(values) != 1:
            raise self.fail(label, values, "one value (one input channel)")
        return self.finite(values[0], label)

    def positive(self, value: float, label: str) -> float:
        if value <= 0:
            raise self.fail(label, value, "a positive number")
        return value

    def size(self, value: object, label: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not MIN_IMAGE_SIZE <= value <= MAX_IMAGE_SIZE:
            raise self.fail(label, value, f"an image size from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels")
        return value

    def metrics(self, value: object, label: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(label, value, "an object of metric names and numbers")
        for key, number in value.items():
            self.finite(number, f"{label}[{key!r}]")
        return value


_JSON_NAMES = {str: "string", int: "integer", list: "list", dict: "object"}


def load_model(model_dir: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ModelInfo]:
    """Rebuild the timm network from ``config.json`` and load its weights, in eval mode."""
    import timm

    info = read_model_info(model_dir)
    weights = Path(model_dir) / WEIGHTS_FILE
    if not weights.is_file():
        raise UserError(f"{weights}: missing; expected the weights file written by emnist_dist training")
    model = timm.create_model(info.architecture, pretrained=False, in_chans=1, num_classes=info.num_classes)
    try:
        state = load_file(weights)
    except (SafetensorError, OSError) as err:
        raise UserError(f"{weights}: not a readable safetensors file ({err})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise UserError(
            f"{weights}: weights do not match {info.architecture!r} with {info.num_classes} classes "
            f"as config.json says ({first})"
        ) from None
    return model.to(device).eval(), info
