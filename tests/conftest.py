"""Shared fixtures: the small trained model (tests/trained_model.py) is available to every test file."""

pytest_plugins = ["trained_model"]
