"""Shared test setup: golden-file updates and tools that a user's machine may lack."""

from __future__ import annotations

import os
import shutil

import pytest

#: The four classic CNNs the comparison is about, in the order the app lists them.
CLASSIC = ("alexnet", "vgg16", "googlenet", "resnet50")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/*.txt from the current output",
    )


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")


def need(tool_path: str, why: str) -> str:
    """Skip when ``tool_path`` is missing on a user's machine; fail under CI=true, where .ci/run
    installs everything."""
    found = tool_path if os.path.exists(tool_path) else shutil.which(tool_path)
    if found:
        return found
    message = f"{tool_path} not found: {why}"
    if IN_CI:
        pytest.fail(message + " (CI=true: .ci/run should have installed it)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def analyses():
    """The classic CNNs (:data:`CLASSIC`) analyzed on meta at their own input sizes, shared
    by the comparison, chart and markup tests (a few seconds, done once)."""
    import cnnviz

    out = {}
    for name in CLASSIC:
        model = cnnviz.zoo.get_model(name, device="meta")
        out[name] = cnnviz.analyze(model, model.default_input_size)
    return out
