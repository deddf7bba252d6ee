"""The README is the front door: short, its set-up commands the ones CI runs, its links lead somewhere."""

import re

from tests.helpers.docs_pages import ROOT, blocks

README = ROOT / "README.md"
INSTALL_AND_TRAIN = ("python3 -m venv .venv && .venv/bin/pip install -e . && "
                     ".venv/bin/python -m emnist_dist.train --config configs/quickstart.yaml")
INSTALL_AND_TEST = 'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/python -m pytest -q'


def test_at_most_250_lines():
    assert len(README.read_text().splitlines()) <= 250


def test_the_two_set_up_commands_and_ci_runs_the_second_verbatim():
    shell = [b.text.strip() for b in blocks(README) if b.language == "bash"]
    assert shell[:2] == [INSTALL_AND_TRAIN, INSTALL_AND_TEST]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == INSTALL_AND_TEST


def test_relative_links_and_pictures_exist():
    text = README.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert len(local) > 10
    missing = [t for t in local if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, missing
