"""The suite's skip policy (tests/conftest.py): a missing system dependency skips a test on a developer's
machine and fails it under ``CI=true``, in both cases naming what to install."""

import pytest

from tests.conftest import missing_system_dependency

REASON = "needs the frobnicator (apt-get install frobnicator)"


def test_a_missing_system_dependency_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        missing_system_dependency(REASON)
    assert str(skipped.value) == REASON


@pytest.mark.parametrize("value", ["true", "True", "1"])
def test_a_missing_system_dependency_fails_under_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception) as failed:
        missing_system_dependency(REASON)
    assert str(failed.value) == f"CI=true and a system dependency is missing: {REASON}"
