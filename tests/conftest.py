"""Shared fixtures for every test file: the small trained model (tests/helpers/trained_model.py), real
file-system faults (tests/helpers/filesystems.py) and a loopback server for the archive
(tests/helpers/archive_server.py)."""

pytest_plugins = ["tests.helpers.trained_model", "tests.helpers.filesystems", "tests.helpers.archive_server"]
