"""The `cuda` marker (tests/conftest.py): skipped without CUDA, a failure instead under SSD1B_REQUIRE_CUDA=1."""

from __future__ import annotations

import pytest
import torch

pytest_plugins = ["pytester"]

CUDA_TEST = "import pytest\n\n@pytest.mark.cuda\ndef test_on_the_gpu():\n    {body}\n"


def outcomes(pytester: pytest.Pytester, body: str) -> dict[str, int]:
    pytester.makepyfile(CUDA_TEST.format(body=body))
    pytester.makeini("[pytest]\nmarkers =\n    cuda: needs a CUDA device\n")
    quiet = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q")  # hypothesis' summary imports for seconds
    return pytester.runpytest_inprocess("-p", "tests.conftest", *quiet).parseoutcomes()


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_without_cuda_a_cuda_test_is_skipped(pytester: pytest.Pytester, no_cuda, monkeypatch) -> None:
    monkeypatch.delenv("SSD1B_REQUIRE_CUDA", raising=False)
    assert outcomes(pytester, "pass") == {"skipped": 1}


def test_required_cuda_that_is_missing_fails(pytester: pytest.Pytester, no_cuda, monkeypatch) -> None:
    monkeypatch.setenv("SSD1B_REQUIRE_CUDA", "1")
    assert outcomes(pytester, "pass") == {"errors": 1}


def test_required_cuda_turns_a_skip_inside_the_test_into_a_failure(pytester: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("SSD1B_REQUIRE_CUDA", "1")
    assert outcomes(pytester, 'pytest.skip("no room on the device")') == {"failed": 1}
    monkeypatch.delenv("SSD1B_REQUIRE_CUDA")
    assert outcomes(pytester, 'pytest.skip("no room on the device")') == {"skipped": 1}
