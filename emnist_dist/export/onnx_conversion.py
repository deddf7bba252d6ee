"""Export a model folder to ONNX and check it against PyTorch with onnxruntime
(what ``python -m emnist_dist.onnx_export`` runs: :func:`export_and_check`).

The ONNX graph takes ``input``: float32 ``(batch, 1, S, S)``, the glyphs already resized
to ``S = image_size`` and normalised with the model's mean/std (``to_model_input``), and
returns ``logits`` ``(batch, num_classes)``; the batch axis is dynamic. The class names,
image size, mean and std are stored in the ONNX metadata (``metadata_props``).

Parity: on batches of 1 and 7 inputs, every ONNX logit must be within
``ATOL + RTOL * |torch logit|`` of PyTorch's, and the argmax must agree wherever PyTorch's
top two logits differ by more than that tolerance. The file is only written when the check
passes. An existing file is replaced only when it is an earlier export of this command.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..files import write_bytes_atomic
from ..model_folder.artifact import ONNX_FILE, ModelInfo, load_model

ATOL = 1e-4
RTOL = 1e-4
PARITY_BATCHES = (1, 7)
MIN_OPSET = 18
"""The lowest opset torch's exporter (``dynamo=True``) has operators for. Asked for less, it exports at
18 and tries onnx's version converter, which fails on common layers (ReduceMean's axes) and then keeps
opset 18 without an error; so lower opsets are refused (and the written opset is checked)."""
METADATA_KEYS = ("class_names", "image_size", "mean", "std", "architecture")
"""Metadata every export of this command carries: what marks a file as one it may replace."""


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


def check_opset(opset: int | None) -> None:
    """Refuse an opset the exporter cannot write or the installed onnx does not know, in one line."""
    if opset is None:
        return
    onnx, _ = _require_onnx()
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise UserError(f"--opset {opset}: expected an ONNX opset from {MIN_OPSET} (the lowest torch's exporter "
                        f"writes) to {newest} (the newest onnx {onnx.__version__} knows)")


def to_onnx(model: torch.nn.Module, info: ModelInfo, opset: int | None = None):
    """``model`` (CPU, eval mode) as an ONNX ``ModelProto`` with a dynamic batch axis and the model's metadata.

    ``opset`` None takes the exporter's default; otherwise the model is written at exactly that opset,
    or a UserError says which one the exporter wrote instead.
    """
    check_opset(opset)
    example = torch.zeros(2, 1, info.image_size, info.image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own progress chatter and deprecation notes
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, verbose=False,
                                    input_names=["input"], output_names=["logits"],
                                    dynamic_shapes=({0: torch.export.Dim("batch")},))
    proto = program.model_proto
    written = {entry.domain: entry.version for entry in proto.opset_import}.get("")
    if opset is not None and written != opset:
        raise UserError(f"--opset {opset}: torch's exporter wrote opset {written} for {info.architecture!r} "
                        "instead; expected a newer opset")
    metadata = {"class_names": json.dumps(info.class_names), "image_size": str(info.image_size),
                "mean": repr(info.mean), "std": repr(info.std), "architecture": info.architecture,
                "split": info.split, "framing": json.dumps(info.framing.to_dict()),
                "input": "float32 (batch, 1, image_size, image_size): upright glyphs, ink bright, resized "
                         "(bilinear) and normalised as (x / 255 - mean) / std"}
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto


def check_parity(model: torch.nn.Module, info: ModelInfo, onnx_model: str | os.PathLike | bytes, seed: int = 0) -> float:
    """Compare onnxruntime running ``onnx_model`` (a file or its bytes) with PyTorch on random batches.

    Returns the max abs logit difference.

    Raises ParityError when a logit is off by more than ``ATOL + RTOL * |logit|`` or a
    clear argmax differs (see the module docstring).
    """
    _, ort = _require_onnx()
    source = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch in PARITY_BATCHES:
        x = torch.randn(batch, 1, info.image_size, info.image_size, generator=gen)
        with torch.inference_mode():
            expected = model(x).float().numpy()
        got = session.run(["logits"], {"input": x.numpy()})[0]
        if got.shape != expected.shape:
            raise ParityError(f"ONNX output shape {got.shape} != PyTorch {expected.shape}")
        diff = np.abs(got - expected)
        worst = max(worst, float(diff.max()))
        if not np.all(diff <= ATOL + RTOL * np.abs(expected)):
            raise ParityError(f"ONNX logits differ from PyTorch by up to {diff.max():.3g} "
                               f"(tolerance {ATOL:g} + {RTOL:g} * |logit|)")
        top2 = np.sort(expected, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 2 * (ATOL + RTOL * np.abs(top2[:, 1]))
        if np.any((got.argmax(1) != expected.argmax(1)) & clear):
            raise ParityError("ONNX and PyTorch predict different classes")
    return worst


def onnx_destination(model_dir: str | os.PathLike, out: str | None) -> Path:
    """The file ``--out`` names: itself, or ``model.onnx`` inside it when it names a folder (ends with a
    separator or is an existing folder); by default ``model_dir/model.onnx``.

    Raises UserError when that path is a folder, or a file this command did not write (never overwritten).
    """
    if not out:
        path = Path(model_dir) / ONNX_FILE
    elif out.endswith(tuple(sep for sep in (os.sep, os.altsep) if sep)) or Path(out).is_dir():
        path = Path(out) / ONNX_FILE
    else:
        path = Path(out)
    if path.is_dir():
        raise UserError(f"--out {path}: is a folder; expected the path of the .onnx file to write")
    if path.exists() and not _is_earlier_export(path):
        raise UserError(f"--out {path}: exists and is not an ONNX model written by emnist_dist.onnx_export; "
                        "expected a new file name (other files are never overwritten)")
    return path


def _is_earlier_export(path: Path) -> bool:
    """Whether ``path`` is an ONNX model holding this command's metadata."""
    from google.protobuf.message import DecodeError  # onnx's own dependency, its parse error

    onnx, _ = _require_onnx()
    if not path.is_file() or path.stat().st_size >= 2**31:  # protobuf's limit: no single-file ONNX model is larger
        return False
    try:
        proto = onnx.load(path, load_external_data=False)
    except (DecodeError, OSError, ValueError):
        return False
    return set(METADATA_KEYS) <= {entry.key for entry in proto.metadata_props}


def export_and_check(model_dir: str | os.PathLike, out: str | None = None,
                     opset: int | None = None) -> tuple[Path, float]:
    """Export ``model_dir`` to ONNX (where :func:`onnx_destination` says) and check parity.

    Everything is checked before anything is written: the model is exported and compared in memory,
    then a missing folder of the destination is created and the file written atomically.
    Returns the path and the max abs logit difference.
    """
    check_opset(opset)
    path = onnx_destination(model_dir, out)
    model, info = load_model(model_dir, "cpu")
    data = to_onnx(model, info, opset).SerializeToString()
    try:
        worst = check_parity(model, info, data)
    except ParityError as err:
        raise ParityError(f"{path}: not written: {err}") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {path}: cannot create its folder {path.parent} ({err.strerror or err})") from None
    write_bytes_atomic(path, data)
    return path, worst
