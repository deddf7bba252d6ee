"""A tiny audit in this process, for the edit loop (``pytest -m "not slow"``): two folds trained by the project's
trainer, each scoring the glyphs it never saw, then the ranking; and the requests the audit refuses before any work.

What the audit finds on real images with known defects, DDP, resuming and a stop signal: test_audit.py (slow).
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from emnist_dist.audit.pipeline import main as audit_main
from emnist_dist.errors import UserError
from tests.helpers.audit_folds import TINY_AUDIT, TINY_AUDIT_GLYPHS, assert_scores_are_the_fold_models
from tests.helpers.defects import read_issues


@pytest.fixture(scope="module")
def tiny_audit(tmp_path_factory):
    """The folder holding ``cache/`` and ``audit/``, a finished TINY_AUDIT run trained in this process."""
    root = tmp_path_factory.mktemp("tiny_audit")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as tests/helpers/trained_model.py: one thread is faster on a busy 2-core machine
    try:
        assert audit_main([*TINY_AUDIT, "--data.cache_dir", str(root / "cache"), "--output_dir",
                           str(root / "audit")]) == 0
    finally:
        torch.set_num_threads(threads)
    return root


def test_every_training_glyph_is_scored_by_the_fold_that_never_saw_it(tiny_audit):
    out = tiny_audit / "audit"
    assert_scores_are_the_fold_models(out, tiny_audit / "cache", world_size=1)
    assert json.loads((out / "summary.json").read_text())["scored"] == TINY_AUDIT_GLYPHS
    ranking = read_issues(out, "scores.csv")  # every glyph once, most suspicious first
    assert sorted(int(row["index"]) for row in ranking) == list(range(TINY_AUDIT_GLYPHS))
    assert [float(row["score"]) for row in ranking] == sorted(float(row["score"]) for row in ranking)


@pytest.mark.parametrize("args, message", [
    (["--data.fold", "1"], "data.fold=1: the audit holds out every fold in turn"),
    (["--resume", "."], "resume=.: expected auto or never"),
    (["--audit.rank_only", "true"], "oof_probs.safetensors: missing"),
])
def test_bad_requests_are_one_line_errors(tmp_path, args, message):
    with pytest.raises(UserError, match=message):
        audit_main(["--output_dir", str(tmp_path / "a"), "--cpu", "true", *args])
    assert not (tmp_path / "a").exists()


def test_scores_of_another_split_are_refused(tiny_audit, tmp_path):
    out = tmp_path / "other"
    out.mkdir()
    shutil.copy(tiny_audit / "audit" / "oof_probs.safetensors", out)
    with pytest.raises(UserError, match="scores of split 'digits'; data.split is 'mnist'"):
        audit_main(["--output_dir", str(out), "--cpu", "true", "--audit.rank_only", "true", "--data.split", "mnist"])
    assert sorted(p.name for p in out.iterdir()) == ["oof_probs.safetensors"]  # nothing written
