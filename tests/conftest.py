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


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from tests.helpers_models import GGUF, need_smollm2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(need_smollm2(), gguf_file=GGUF)


@pytest.fixture(scope="session")
def tiny_hf_folder(tmp_path_factory, smollm2_tokenizer):
    from tests.helpers_models import make_tiny_hf_folder

    return make_tiny_hf_folder(tmp_path_factory.mktemp("tiny_hf") / "tiny", smollm2_tokenizer, shard=True)


@pytest.fixture(scope="session")
def tiny_comet_folder(tmp_path_factory, tiny_hf_folder):
    from comet_models.convert import convert_model

    out = tmp_path_factory.mktemp("tiny_comet") / "tiny-comet"
    return convert_model(tiny_hf_folder, out, layout=dict(chunk_size=64, global_slots=4, temp_stride=8, temp_budget=16))


@pytest.fixture(scope="session")
def default_comet_folder(tmp_path_factory):
    """The real embedded SmolLM2, converted once per test session."""
    from tests.helpers_models import need_smollm2
    from comet_models.convert import convert_model

    need_smollm2()
    return convert_model(None, tmp_path_factory.mktemp("default") / "smollm2-comet")
