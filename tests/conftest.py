"""The `cuda` marker: a test that needs a CUDA device.

Where torch sees none, such a test is skipped, unless SSD1B_REQUIRE_CUDA=1 (tests/device/run.sh sets it on the GPU
machine): then "no CUDA" is a failure, and so is any other skip of a CUDA test, so that a GPU run cannot pass by
skipping what it was for.
"""

from __future__ import annotations

import os

import pytest
import torch

REQUIRE_CUDA = "SSD1B_REQUIRE_CUDA"


def cuda_required() -> bool:
    return os.environ.get(REQUIRE_CUDA, "") == "1"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("cuda") is None or torch.cuda.is_available():
        return
    if cuda_required():
        pytest.fail(f"{REQUIRE_CUDA}=1 but torch {torch.__version__} sees no CUDA device", pytrace=False)
    pytest.skip("needs a CUDA device")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.skipped and cuda_required() and item.get_closest_marker("cuda") is not None:
        report.outcome = "failed"
        report.longrepr = f"{REQUIRE_CUDA}=1: a CUDA test was skipped ({_skip_reason(report)})"
    return report


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
