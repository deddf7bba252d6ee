"""Shared fixtures: the small trained model (tests/helpers/trained_model.py) is available to every test file."""

pytest_plugins = ["tests.helpers.trained_model"]
