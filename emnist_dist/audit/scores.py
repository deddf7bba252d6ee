"""Out-of-fold scores on disk: safetensors (tensors plus string metadata; nothing that unpickles).

One file per fold (``fold_K/heldout_scores.safetensors``) and their union
(``oof_probs.safetensors``), the input of the ranking, so it can be redone without retraining
(the run folder names both: ``RunFolder.heldout_scores``, ``RunFolder.oof_scores``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import UserError
from ..files import atomic_path
from .dihedral import TRANSFORMS

FORMAT = {"transforms": list(TRANSFORMS), "targets": "class x symmetry"}
"""What the scores mean: written into every file, checked on reading."""


@dataclass
class Scores:
    """Scores of training glyphs by models that never trained on them.

    Attributes:
        index: int64 ``(N,)`` rows of the split's training part (as the source stores it).
        labels: int64 ``(N,)`` their given labels.
        probs: float32 ``(N, C)`` class probabilities of the glyphs as stored, given that they are upright.
        label_probs: float32 ``(N, 8)``: column ``s``, the probability of the given label and that
            ``TRANSFORMS[s]`` turns the glyph upright (column 0: it is upright as stored).
        meta: ``split``, ``class_names``, ``rows`` (size of the training part), ``excluded``, ``folds``.
    """

    index: torch.Tensor
    labels: torch.Tensor
    probs: torch.Tensor
    label_probs: torch.Tensor
    meta: dict = field(default_factory=dict)


def save_scores(path: str | Path, scores: Scores) -> None:
    """Write ``scores`` atomically; the metadata goes in the safetensors header as JSON strings."""
    tensors = {name: getattr(scores, name).contiguous() for name in ("index", "labels", "probs", "label_probs")}
    metadata = {key: json.dumps(value) for key, value in {**scores.meta, **FORMAT}.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)


def load_scores(path: str | Path) -> Scores:
    """Read a file written by :func:`save_scores`; a missing or foreign file raises :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: missing; expected the out-of-fold scores of an audit run (run it without "
                        "audit.rank_only first)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = {key: json.loads(value) for key, value in (f.metadata() or {}).items()}
            tensors = {name: f.get_tensor(name) for name in ("index", "labels", "probs", "label_probs")}
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not an audit scores file ({err.__class__.__name__})") from None
    if {key: meta.get(key) for key in FORMAT} != FORMAT:
        raise UserError(f"{path}: scored as {({key: meta.get(key) for key in FORMAT})}; expected {FORMAT} (an older "
                        "audit's scores: rerun the audit without audit.rank_only)")
    return Scores(**tensors, meta=meta)


def merge_folds(parts: list[Scores]) -> Scores:
    """The union of the folds' scores, sorted by row; each kept training row exactly once.

    Raises :class:`UserError` when the folds disagree on the data or do not cover the training
    part (files from different runs in one output_dir).
    """
    first = parts[0].meta
    for part in parts[1:]:
        if {k: part.meta.get(k) for k in ("split", "rows", "excluded")} != {k: first[k] for k in ("split", "rows", "excluded")}:
            raise UserError(f"fold scores disagree on the data ({part.meta} vs {first}); expected one audit's folds")
    index = torch.cat([p.index for p in parts])
    order = torch.argsort(index)
    expected = first["rows"] - first["excluded"]
    if len(index) != expected or len(torch.unique(index)) != expected:
        raise UserError(f"the folds scored {len(index)} rows ({len(torch.unique(index))} distinct); expected each of "
                        f"the {expected} training rows once: rerun the audit with --resume never")
    meta = {k: v for k, v in first.items() if k not in ("fold", *FORMAT)}
    return Scores(index[order], torch.cat([p.labels for p in parts])[order], torch.cat([p.probs for p in parts])[order],
                  torch.cat([p.label_probs for p in parts])[order], meta)
