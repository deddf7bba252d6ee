"""Shared fixtures and markers.

Every test file gets the small trained model (tests/helpers/trained_model.py), real file-system
faults (tests/helpers/filesystems.py) and a loopback server for the archive
(tests/helpers/archive_server.py). Tests marked ``cuda`` skip where no CUDA device is visible
(``pytest -m cuda`` selects them on a GPU machine).
"""

import pytest
import torch

pytest_plugins = ["tests.helpers.trained_model", "tests.helpers.filesystems", "tests.helpers.archive_server"]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
