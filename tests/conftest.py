"""Test-wide settings: offline model hubs and a private ferbench cache per test session."""

import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session", autouse=True)
def ferbench_cache(tmp_path_factory):
    """Synthetic twins and face crops go to $FERBENCH_CACHE (set by CI) or a session temp dir."""
    if "FERBENCH_CACHE" not in os.environ:
        os.environ["FERBENCH_CACHE"] = str(tmp_path_factory.mktemp("ferbench-cache"))
    return os.environ["FERBENCH_CACHE"]
