"""Every Python block of the docs and the README runs.

The blocks of each page run in order, as one script in a namespace of its own (all pages in one process, which
imports torch once), in a working directory holding the repository's ``docs/``, a copy of its ``configs/`` (the
quickstart on a 25th of its training glyphs, a fifth of its test glyphs) and the model folder the README's first
set-up command trains (``runs/quickstart``, here for one epoch). A block marked
``<!-- docs-test: not-run: REASON -->`` is left out.
"""

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.helpers.docs_pages import ROOT, blocks, pages
from tests.helpers.train_runs import env_for_tests

MARKER_LINE = re.compile(r"^<!-- docs-test: .* -->$")
# Runs {page: script} (JSON on stdin): each script in a fresh namespace; prints one JSON line per page.
RUNNER = r"""
import json, sys, traceback
for page, script in json.loads(sys.stdin.read()).items():
    try:
        exec(compile(script, page, "exec"), {"__name__": "__main__"})
        print(json.dumps({"page": page, "error": None}), flush=True)
    except BaseException:
        print(json.dumps({"page": page, "error": traceback.format_exc()[-3000:]}), flush=True)
"""


def runnable_scripts() -> dict[str, str]:
    scripts = {}
    for page in pages():
        found = [b for b in blocks(page) if b.language == "python" and b.not_run is None]
        if found:
            scripts[str(page.relative_to(ROOT))] = "\n".join(b.text for b in found)
    return scripts


@pytest.mark.slow
def test_every_python_block_runs(tmp_path):
    (tmp_path / "docs").symlink_to(ROOT / "docs")
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    # The pages train quickstart runs five times (an epoch each): on a 25th of its synthetic training glyphs and a
    # fifth of its test glyphs here (24 CPU-s a run instead of 32 with a fifth of its training glyphs: most of a
    # run is fixed cost). What is checked is that each block runs, not what it trains to.
    quickstart = tmp_path / "configs" / "quickstart.yaml"
    recipe = yaml.safe_load(quickstart.read_text())
    recipe["data"]["synthetic_train_per_class"] //= 25
    recipe["data"]["synthetic_test_per_class"] //= 5
    quickstart.write_text(yaml.safe_dump(recipe))
    env = env_for_tests(tmp_path)
    # the README's first set-up command, one epoch: the model folder the pages use
    first = subprocess.run([sys.executable, "-m", "emnist_dist.train", "--config", "configs/quickstart.yaml",
                            "--train.epochs", "1", "--log.progress", "false"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    scripts = runnable_scripts()
    assert {"README.md", "docs/guide/getting-started.md", "docs/guide/using-a-model.md"} <= set(scripts)
    result = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(scripts), cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=1200)
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"page"')]
    assert [r["page"] for r in reports] == list(scripts), result.stderr[-3000:]
    failed = [f"{r['page']}:\n{r['error']}" for r in reports if r["error"]]
    assert not failed, "\n".join(failed)


def test_every_not_run_marker_sits_on_a_code_block_and_gives_a_reason():
    for page in pages():
        shown = set()  # lines inside fenced blocks show markers, they do not mark
        for block in blocks(page):
            shown.update(range(block.line, block.end + 1))
        lines = page.read_text().splitlines()
        markers = [n for n, line in enumerate(lines, 1) if MARKER_LINE.match(line.strip()) and n not in shown]
        marked = [b for b in blocks(page) if b.not_run is not None]
        assert markers == [b.line - 1 for b in marked], f"{page}: a docs-test marker not right above a fenced block"
        assert all(b.not_run.strip() for b in marked)
