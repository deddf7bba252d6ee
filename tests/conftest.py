"""Shared fixtures and markers.

Every test file gets the small trained model (tests/helpers/trained_model.py), real file-system
faults (tests/helpers/filesystems.py) and a loopback server for the archive
(tests/helpers/archive_server.py). Tests marked ``cuda`` skip where no CUDA device is visible
(``pytest -m cuda`` selects them on a GPU machine). Under pytest-xdist (on by default, pyproject.toml) a file's
tests run together on one worker.

A test whose system dependency is missing calls :func:`missing_system_dependency`: it skips with its reason
on a developer's machine and fails under ``CI=true``, naming what to install, so CI never goes green by
skipping what it was meant to run.
"""

import os
from typing import NoReturn

import pytest
import torch

pytest_plugins = ["tests.helpers.trained_model", "tests.helpers.filesystems", "tests.helpers.archive_server"]


def missing_system_dependency(reason: str) -> NoReturn:
    """Skip the calling test (or fixture) for ``reason``, which names what to install; under ``CI=true`` fail."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"CI=true and a system dependency is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_configure(config):
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:  # a pytest-xdist worker: share the cores with the other workers instead of fighting for them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # The workers take whole files (--dist=loadfile) in this order: the files with slow tests first, so that
        # the last to start, when a worker may be left alone, are short ones.
        slow = {item.path for item in items if item.get_closest_marker("slow") is not None}
        items.sort(key=lambda item: item.path not in slow)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
