"""From out-of-fold scores to a ranked list of suspicious glyphs.

- Label issues: confident learning (cleanlab's ``find_label_issues``) over the out-of-fold
  class probabilities; the suggested label is the most probable other class.
- Pre-augmented glyphs: a glyph whose own label becomes ``transform_ratio`` times more probable,
  and at least ``transform_min_prob``, under one of the seven other symmetries of the square is
  flagged with that symmetry (its label is then kept: the label is right, the orientation wrong).
  This comes first when both apply: a turned glyph also looks mislabelled as stored.

Every flagged glyph's ``score`` is cleanlab's label quality of the stored glyph
(``get_label_quality_scores``; 0 = surely wrong, 1 = surely right); the list is sorted by it,
most suspicious first.
"""

from __future__ import annotations

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

from ..config import AuditConfig
from .dihedral import TRANSFORMS
from .scores import Scores

COLUMNS = ["index", "label", "suggested", "score", "issue"]
LABEL_ISSUE = "label"


def rank_issues(scores: Scores, cfg: AuditConfig, class_names: list[str]) -> list[dict]:
    """Rows ``{index, label, suggested, score, issue}`` (labels as class names), most suspicious first."""
    labels = scores.labels.numpy()
    probs = scores.probs.double().numpy()
    probs /= probs.sum(axis=1, keepdims=True)  # float32 softmax rows sum to 1 only within ~1e-7
    label_issue = find_label_issues(labels, probs, filter_by=cfg.filter_by, n_jobs=1)
    quality = get_label_quality_scores(labels, probs, method=cfg.score_method)
    rows = np.arange(len(labels))
    others = probs.copy()
    others[rows, labels] = -1.0
    runner_up = others.argmax(axis=1)

    label_probs = scores.label_probs.double().numpy()
    best = 1 + label_probs[:, 1:].argmax(axis=1)
    turned = label_probs[rows, best]
    transformed = (turned >= cfg.transform_min_prob) & (turned >= cfg.transform_ratio * label_probs[:, 0])

    flagged = np.flatnonzero(label_issue | transformed)
    index = scores.index.numpy()
    flagged = flagged[np.lexsort((index[flagged], quality[flagged]))]
    return [
        {
            "index": int(index[i]),
            "label": class_names[labels[i]],
            "suggested": class_names[labels[i] if transformed[i] else runner_up[i]],
            "score": round(float(quality[i]), 6),
            "issue": TRANSFORMS[best[i]] if transformed[i] else LABEL_ISSUE,
        }
        for i in flagged
    ]


def summarize(issues: list[dict], total: int, class_names: list[str]) -> dict:
    """Counts of flagged glyphs per issue kind and per given label (every class listed, in class order)."""
    per_issue = {kind: 0 for kind in (LABEL_ISSUE, *TRANSFORMS[1:])}
    per_class = {name: 0 for name in class_names}
    for row in issues:
        per_issue[row["issue"]] += 1
        per_class[row["label"]] += 1
    return {"scored": total, "flagged": len(issues), "per_issue": per_issue, "per_class": per_class}


def summary_line(summary: dict) -> str:
    """One line: flagged of scored, then the non-zero counts per issue kind and per class."""
    kinds = ", ".join(f"{k} {n}" for k, n in summary["per_issue"].items() if n)
    classes = " ".join(f"{c}:{n}" for c, n in summary["per_class"].items() if n)
    return (f"audit: {summary['flagged']} of {summary['scored']} training glyphs flagged"
            f" ({kinds or 'none'}); per class: {classes or 'none'}")
