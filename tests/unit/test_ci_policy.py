"""The CI rule in tests/conftest.py, run for real: an inner pytest session with our conftest."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = (Path(__file__).resolve().parents[1] / "conftest.py").read_text()
MARKERS = "[pytest]\nmarkers =\n    integration: x\n    gpu: x\n    docker: x\n"

TESTS = """
import pytest

def test_runs():
    assert True

@pytest.mark.integration
def test_needs_a_service():
    pytest.skip("no Kafka")

@pytest.mark.gpu
def test_needs_cuda():
    pytest.skip("no CUDA")
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(MARKERS)
    pytester.makepyfile(test_inner=TESTS)
    return pytester


def test_a_skipped_integration_test_fails_ci(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*CI: skipped tests fail the run*", "*test_needs_a_service*"])
    assert "test_needs_cuda: " not in result.stdout.str()


def test_outside_ci_skips_are_allowed(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == 0
    result.assert_outcomes(passed=1, skipped=2)


def test_no_tests_is_a_failure_in_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makeconftest(CONFTEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret != 0
