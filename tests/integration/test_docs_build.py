"""The docs build with warnings as errors, as the README's command builds them, and a broken link, anchor or
API object fails the build."""

import subprocess
import sys

import pytest

from emnist_dist.config import Config, config_to_dict, flatten_config
from tests.helpers.docs_pages import DOCS, ROOT

pytestmark = pytest.mark.slow


def build(source, out, config_dir=DOCS):
    """``python -m sphinx -W -b html SOURCE OUT`` (the documented command) with the docs' conf.py."""
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "-b", "html", "-c", str(config_dir), "-q",
                           str(source), str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_the_docs_build_without_a_warning(tmp_path):
    result = build(DOCS, tmp_path)
    assert result.returncode == 0, result.stderr[-5000:]
    assert result.stderr.strip() == ""
    configuration = (tmp_path / "guide" / "configuration.html").read_text()
    for key in flatten_config(config_to_dict(Config())):  # the generated table has every key
        assert f"<code class=\"docutils literal notranslate\"><span class=\"pre\">{key}</span></code>" in configuration, key
    training = (tmp_path / "api" / "training.html").read_text()
    assert 'id="emnist_dist.train.Trainer.fit"' in training  # the API reference comes from the docstrings
    assert "Train to" in training


def test_a_broken_link_anchor_or_object_fails_the_build(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "index.md").write_text(
        "# Broken\n\n## A heading\n\n"
        "[a page that is not there](no-such-page.md)\n\n"
        "[a heading that is not there](#no-such-heading)\n\n"
        "```{autofunction} emnist_dist.config.no_such_function\n```\n")
    result = build(source, tmp_path / "html")
    assert result.returncode != 0
    assert "no-such-page" in result.stderr
    assert "no-such-heading" in result.stderr
    assert "no_such_function" in result.stderr
