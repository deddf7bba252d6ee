"""The exported model folder: ``model.safetensors`` + ``config.json``.

This is everything needed to predict without the training code's config: the timm
architecture name, the class names in index order, the input size and the
normalisation the network was trained with. Written atomically (temporary folder,
then rename), so a crash never leaves a folder that looks complete.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import UserError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


@dataclass
class ModelInfo:
    """What config.json holds about an exported model."""

    architecture: str
    """timm model name, built with in_chans=1."""
    class_names: list[str]
    """Class names in output-index order."""
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
    format_version: int = 1

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def save_weights(model: torch.nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write the model's state dict as safetensors (on the CPU), atomically."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp, metadata=metadata)
    os.replace(tmp, path)


def save_model(model: torch.nn.Module, out_dir: str | os.PathLike, info: ModelInfo) -> Path:
    """Write ``out_dir/model.safetensors`` and ``out_dir/config.json`` atomically; returns out_dir."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(model, tmp / WEIGHTS_FILE, metadata={"architecture": info.architecture})
    (tmp / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(info), indent=2) + "\n")
    if out_dir.exists():
        old = out_dir.with_name(out_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)
    return out_dir


def read_model_info(model_dir: str | os.PathLike) -> ModelInfo:
    """Read and check ``config.json``; a missing or malformed file raises UserError."""
    path = Path(model_dir) / CONFIG_FILE
    if not Path(model_dir).is_dir():
        raise UserError(f"{model_dir}: not a folder; expected a model folder holding {WEIGHTS_FILE} and {CONFIG_FILE}")
    if not path.is_file():
        raise UserError(f"{path}: missing; expected the {CONFIG_FILE} written by emnist_dist training")
    try:
        raw = json.loads(path.read_text())
        known = {f.name for f in dataclasses.fields(ModelInfo)}
        info = ModelInfo(**{k: v for k, v in raw.items() if k in known})
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not a valid model config ({err.__class__.__name__}); expected JSON with "
                        "architecture, class_names, image_size, mean, std, split") from None
    if not info.class_names or info.image_size < 1 or info.std <= 0:
        raise UserError(f"{path}: class_names must be non-empty, image_size >= 1 and std > 0")
    return info


def load_model(model_dir: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ModelInfo]:
    """Rebuild the timm network from ``config.json`` and load its weights, in eval mode."""
    import timm

    info = read_model_info(model_dir)
    weights = Path(model_dir) / WEIGHTS_FILE
    if not weights.is_file():
        raise UserError(f"{weights}: missing; expected the weights file written by emnist_dist training")
    try:
        model = timm.create_model(info.architecture, pretrained=False, in_chans=1, num_classes=info.num_classes)
    except RuntimeError as err:
        raise UserError(f"{Path(model_dir) / CONFIG_FILE}: unknown architecture {info.architecture!r} ({err})") from None
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
