"""Shared fixtures and markers.

The small trained model (tests/helpers/trained_model.py) is available to every test file. Tests
marked ``cuda`` skip where no CUDA device is visible (``pytest -m cuda`` selects them on a GPU machine).
"""

import pytest
import torch

pytest_plugins = ["tests.helpers.trained_model"]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
