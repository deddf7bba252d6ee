"""From out-of-fold scores to a complete ranking of the training glyphs, most suspicious first.

Two qualities per glyph, each in [0, 1] (1 = nothing wrong), both from the joint (class x symmetry)
fold models (``dihedral.py``):

- orientation: ``P(label, upright as stored) / max_s P(label, upright once turned by s)``. A glyph that
  looks the same turned (0, 8, o, x, a bag) is as probable upright as turned, so it scores about 1
  and does not flood the list.
- label: cleanlab's label quality (``get_label_quality_scores``) of the class probabilities given that
  the glyph is upright.

The score is the lower of the two; the issue is the turn that makes the glyph upright (``rot90`` ...)
when the orientation is the lower one, else ``label`` (the label is then suggested to be the most
probable other class). Every glyph is ranked (``scores.csv``). Flagged (``label_issues.csv``,
``exclude.txt``): label issues found by confident learning (cleanlab's ``find_label_issues``), and
glyphs whose own label becomes ``transform_ratio`` times more probable, and at least
``transform_min_prob``, once turned.
"""

from __future__ import annotations

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

from ..config import AuditConfig
from .dihedral import TRANSFORMS
from .scores import Scores

COLUMNS = ["index", "label", "suggested", "score", "issue"]
RANKING_COLUMNS = [*COLUMNS, "flagged"]
LABEL_ISSUE = "label"


def rank_glyphs(scores: Scores, cfg: AuditConfig, class_names: list[str]) -> list[dict]:
    """Every glyph as a row ``{index, label, suggested, score, issue, flagged}`` (labels as class names, flagged
    0/1), most suspicious first (ties by index)."""
    labels = scores.labels.numpy()
    probs = scores.probs.double().numpy()
    probs /= probs.sum(axis=1, keepdims=True)  # float32 softmax rows sum to 1 only within ~1e-7
    label_issue = find_label_issues(labels, probs, filter_by=cfg.filter_by, n_jobs=1)
    label_quality = get_label_quality_scores(labels, probs, method=cfg.score_method)
    rows = np.arange(len(labels))
    others = probs.copy()
    others[rows, labels] = -1.0
    runner_up = others.argmax(axis=1)

    label_probs = scores.label_probs.double().numpy()
    best = 1 + label_probs[:, 1:].argmax(axis=1)
    turned = label_probs[rows, best]
    orientation_quality = label_probs[:, 0] / np.maximum(label_probs.max(axis=1), 1e-30)
    transformed = (turned >= cfg.transform_min_prob) & (turned >= cfg.transform_ratio * label_probs[:, 0])
    turn_issue = transformed | (orientation_quality < label_quality)
    score = np.minimum(orientation_quality, label_quality)
    flagged = label_issue | transformed

    index = scores.index.numpy()
    return [
        {
            "index": int(index[i]),
            "label": class_names[labels[i]],
            "suggested": class_names[labels[i] if turn_issue[i] else runner_up[i]],
            "score": round(float(score[i]), 6),
            "issue": TRANSFORMS[best[i]] if turn_issue[i] else LABEL_ISSUE,
            "flagged": int(flagged[i]),
        }
        for i in np.lexsort((index, score))
    ]


def select_issues(ranking: list[dict], top: int | None) -> list[dict]:
    """label_issues.csv's rows: the flagged glyphs, or with ``top`` the first ``top`` of the ranking whatever
    their flag; most suspicious first."""
    if top is not None:
        return ranking[:top]
    return [row for row in ranking if row["flagged"]]


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
