"""Tracker choice: every tracker Accelerate supports, and W&B's online/offline choice for any W&B server."""

from __future__ import annotations

import importlib.util

import pytest
from accelerate.utils import LoggerType

from emnist_dist.config import parse_config
from emnist_dist.errors import UserError
from emnist_dist.train.tracking import resolve_wandb_mode

ACCELERATE_TRACKERS = [kind.value for kind in LoggerType if kind is not LoggerType.ALL]


@pytest.mark.parametrize("name", ACCELERATE_TRACKERS)
def test_every_accelerate_tracker_is_taken_when_its_package_is_installed(name):
    # Each tracker's import name is its name (tensorboard, wandb, mlflow, comet_ml, ...).
    if importlib.util.find_spec(name) is not None:
        assert parse_config(["--log.trackers", f"[{name}]"]).log.trackers == [name]
    else:
        with pytest.raises(UserError) as err:
            parse_config(["--log.trackers", f"[tensorboard, {name}]"])
        assert str(err.value) == f"log.trackers contains {name!r} but its package is not installed: pip install {name}"


def test_a_tracker_accelerate_does_not_know_is_refused_with_the_list():
    with pytest.raises(UserError) as err:
        parse_config(["--log.trackers", "[tensorbord]"])
    message = str(err.value)
    assert message.startswith("log.trackers contains 'tensorbord': expected any of ")
    assert sorted(message.split("expected any of ", 1)[1].split(", ")) == sorted(ACCELERATE_TRACKERS)
    assert "\n" not in message


def netrc_file(tmp_path, monkeypatch, text: str) -> None:
    path = tmp_path / "netrc"
    path.write_text(text)
    path.chmod(0o600)
    monkeypatch.setenv("NETRC", str(path))


@pytest.fixture
def no_wandb_key(tmp_path, monkeypatch):
    """No key anywhere: no WANDB_API_KEY, no WANDB_BASE_URL, an empty HOME and no NETRC."""
    for var in ("WANDB_API_KEY", "WANDB_BASE_URL", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.mark.parametrize("mode", ["online", "offline", "disabled"])
def test_an_explicit_mode_is_kept(no_wandb_key, mode):
    assert resolve_wandb_mode(mode) == mode


def test_auto_is_offline_without_a_key(no_wandb_key):
    assert resolve_wandb_mode("auto") == "offline"


def test_auto_is_online_with_an_api_key_in_the_environment(no_wandb_key, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert resolve_wandb_mode("auto") == "online"


def test_auto_reads_the_netrc_in_home(no_wandb_key):
    (no_wandb_key / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    (no_wandb_key / ".netrc").chmod(0o600)
    assert resolve_wandb_mode("auto") == "online"


def test_auto_reads_the_netrc_named_by_NETRC(no_wandb_key, tmp_path, monkeypatch):
    netrc_file(tmp_path, monkeypatch, "machine api.wandb.ai login user password " + "k" * 40 + "\n")
    assert resolve_wandb_mode("auto") == "online"


def test_auto_honours_a_self_hosted_server(no_wandb_key, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org:8443")
    # a key for W&B's cloud is no key for this server
    netrc_file(tmp_path, monkeypatch, "machine api.wandb.ai login user password " + "k" * 40 + "\n")
    assert resolve_wandb_mode("auto") == "offline"
    # `wandb login --host https://wandb.example.org:8443` stores the key under host:port
    netrc_file(tmp_path, monkeypatch, "machine wandb.example.org:8443 login user password " + "k" * 40 + "\n")
    assert resolve_wandb_mode("auto") == "online"


def test_auto_is_offline_when_the_netrc_cannot_be_parsed(no_wandb_key, tmp_path, monkeypatch):
    netrc_file(tmp_path, monkeypatch, "machine\n")
    assert resolve_wandb_mode("auto") == "offline"
