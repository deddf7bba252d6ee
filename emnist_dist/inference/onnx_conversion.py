"""Export a model folder to ONNX and check it against PyTorch with onnxruntime.

    python -m emnist_dist.onnx_export --model runs/x/model     # writes runs/x/model/model.onnx

The ONNX graph takes ``input``: float32 ``(batch, 1, S, S)``, the glyphs already resized
to ``S = image_size`` and normalised with the model's mean/std (``to_model_input``), and
returns ``logits`` ``(batch, num_classes)``; the batch axis is dynamic. The class names,
image size, mean and std are stored in the ONNX metadata (``metadata_props``).

Parity: on batches of 1 and 7 inputs, every ONNX logit must be within
``ATOL + RTOL * |torch logit|`` of PyTorch's, and the argmax must agree wherever PyTorch's
top two logits differ by more than that tolerance. The file is only put in place when
the check passes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import CliParser, UserError
from ..files import atomic_path
from .artifact import ModelInfo, load_model

ONNX_FILE = "model.onnx"
ATOL = 1e-4
RTOL = 1e-4
PARITY_BATCHES = (1, 7)


class ParityError(Exception):
    """The ONNX model does not reproduce PyTorch's outputs within the tolerance."""


def _require_onnx():
    """Import the optional ONNX stack, or say how to install it."""
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError as err:
        raise UserError(f"ONNX export needs the optional packages onnx, onnxscript and onnxruntime ({err}); "
                        'install them with: pip install -e ".[onnx]"') from None
    return onnx, onnxruntime


def export_onnx(model: torch.nn.Module, info: ModelInfo, path: str | os.PathLike, opset: int | None = None) -> Path:
    """Write ``model`` (CPU, eval mode) as ONNX with a dynamic batch axis and the model's metadata."""
    onnx, _ = _require_onnx()
    example = torch.zeros(2, 1, info.image_size, info.image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own progress chatter and deprecation notes
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, verbose=False,
                                    input_names=["input"], output_names=["logits"],
                                    dynamic_shapes=({0: torch.export.Dim("batch")},))
    proto = program.model_proto
    metadata = {"class_names": json.dumps(info.class_names), "image_size": str(info.image_size),
                "mean": repr(info.mean), "std": repr(info.std), "architecture": info.architecture,
                "split": info.split, "framing": json.dumps(info.framing.to_dict()),
                "input": "float32 (batch, 1, image_size, image_size): upright glyphs, ink bright, resized "
                         "(bilinear) and normalised as (x / 255 - mean) / std"}
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    path = Path(path)
    onnx.save(proto, path)
    return path


def check_parity(model: torch.nn.Module, info: ModelInfo, path: str | os.PathLike, seed: int = 0) -> float:
    """Compare onnxruntime with PyTorch on random batches; returns the max abs logit difference.

    Raises ParityError when a logit is off by more than ``ATOL + RTOL * |logit|`` or a
    clear argmax differs (see the module docstring).
    """
    _, ort = _require_onnx()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch in PARITY_BATCHES:
        x = torch.randn(batch, 1, info.image_size, info.image_size, generator=gen)
        with torch.inference_mode():
            expected = model(x).float().numpy()
        got = session.run(["logits"], {"input": x.numpy()})[0]
        if got.shape != expected.shape:
            raise ParityError(f"{path}: ONNX output shape {got.shape} != PyTorch {expected.shape}")
        diff = np.abs(got - expected)
        worst = max(worst, float(diff.max()))
        if not np.all(diff <= ATOL + RTOL * np.abs(expected)):
            raise ParityError(f"{path}: ONNX logits differ from PyTorch by up to {diff.max():.3g} "
                               f"(tolerance {ATOL:g} + {RTOL:g} * |logit|)")
        top2 = np.sort(expected, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 2 * (ATOL + RTOL * np.abs(top2[:, 1]))
        if np.any((got.argmax(1) != expected.argmax(1)) & clear):
            raise ParityError(f"{path}: ONNX and PyTorch predict different classes")
    return worst


def export_and_check(model_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                     opset: int | None = None) -> tuple[Path, float]:
    """Export ``model_dir`` to ``out`` (default ``model_dir/model.onnx``) and check parity.

    A missing folder of ``out`` is created. The file is written to a temporary name and only
    renamed into place after the check passes. Returns the path and the max abs logit difference.
    """
    _require_onnx()
    model, info = load_model(model_dir, "cpu")
    out = Path(out) if out else Path(model_dir) / ONNX_FILE
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; expected the path of the .onnx file to write")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out}: cannot create its folder {out.parent} ({err.strerror or err})") from None
    with atomic_path(out) as tmp:
        export_onnx(model, info, tmp, opset)
        worst = check_parity(model, info, tmp)
    return out, worst


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="python -m emnist_dist.onnx_export",
                       description="Export an exported model folder to ONNX (dynamic batch) and check parity.")
    parser.add_argument("--model", required=True, help="Exported model folder (output_dir/model).")
    parser.add_argument("--out", help=f"ONNX file to write (default: MODEL/{ONNX_FILE}); missing folders are created.")
    parser.add_argument("--opset", type=int, help="ONNX opset version (default: the exporter's recommendation).")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        path, worst = export_and_check(args.model, args.out, args.opset)
    except ParityError as err:
        print(f"error: parity check failed: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    print(f"parity with PyTorch: max |logit difference| {worst:.2e} (tolerance {ATOL:g} + {RTOL:g} * |logit|), "
          f"batches {', '.join(map(str, PARITY_BATCHES))}")
    return 0
