"""``--print_config`` prints the resolved configuration and exits 0 (it used to end with "error: 0", exit 2)."""

from __future__ import annotations

import subprocess
import sys

import yaml

from emnist_dist.config import Config, config_to_dict
from tests.helpers.train_runs import REPO


def test_print_config_prints_the_tree_and_exits_0(tmp_path):
    done = subprocess.run([sys.executable, "-m", "emnist_dist.train", "--config", str(REPO / "configs" / "quickstart.yaml"),
                           "--train.lr", "0.002", "--print_config"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    printed = yaml.safe_load(done.stdout)
    assert printed["train"]["lr"] == 0.002
    assert set(printed) >= set(config_to_dict(Config()))
