"""The W&B sweep file: a valid sweep definition whose every parameter is a working config override."""

from pathlib import Path

import pytest
import yaml

from emnist_dist.config import parse_config

REPO = Path(__file__).resolve().parents[2]
SWEEP = yaml.safe_load((REPO / "sweeps" / "byclass_b3.yaml").read_text())


def test_sweep_definition_is_well_formed():
    assert SWEEP["method"] in ("grid", "random", "bayes")
    assert SWEEP["metric"] == {"name": "val/acc", "goal": "maximize"}  # a key metrics.jsonl really logs
    command = SWEEP["command"]
    assert command[:5] == ["${env}", "accelerate", "launch", "-m", "emnist_dist.train"] and command[-1] == "${args}"
    for name, spec in SWEEP["parameters"].items():
        assert ("values" in spec) != ("distribution" in spec), name
        if "distribution" in spec:
            assert spec["distribution"] in ("uniform", "log_uniform_values", "q_uniform", "int_uniform")
            assert spec["min"] < spec["max"], name


def candidate_values(spec: dict) -> list:
    return list(spec["values"]) if "values" in spec else [spec["min"], spec["max"]]


@pytest.mark.parametrize("name", sorted(SWEEP["parameters"]))
def test_every_parameter_parses_as_an_override(name, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("WANDB_RUN_ID", "abc123")
    fixed = [str(a) for a in SWEEP["command"][5:-1]]
    section, key = name.split(".")
    for value in candidate_values(SWEEP["parameters"][name]):
        # `${args}` expands to `--name=value` per parameter (W&B's sweep-configuration reference; wandb's
        # agent formats the value with str()).
        cfg = parse_config([*fixed, f"--{name}={value}"])
        actual = getattr(getattr(cfg, section), key)
        assert actual == (pytest.approx(value) if isinstance(value, float) else value)
        assert cfg.output_dir == "runs/sweeps/abc123"  # one folder per trial
        assert cfg.resume == "never"
