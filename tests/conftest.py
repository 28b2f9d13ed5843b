import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data():
    """../shared/data next to the checkout; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (evaluation data lives beside the checkout)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _comet_home(tmp_path_factory, monkeypatch):
    # Never write into the user's real cache from tests, except the shared
    # converted-default cache which is expensive to rebuild.
    if "COMET_HOME" not in os.environ:
        monkeypatch.setenv("COMET_HOME", str(tmp_path_factory.getbasetemp() / "comet_home"))
