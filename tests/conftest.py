"""Shared fixtures and test tiers.

Tiers (pyproject markers): ``unit`` (tiny random models, seconds), ``integration``
(the embedded default model, minutes), ``gpu`` (needs CUDA; skipped without it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_models import save_tiny_lora, tiny_model, tiny_tokenizer  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch always importable here
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _threads(request: pytest.FixtureRequest):
    """Tiny models run fastest on one thread (and do not fight other processes for cores)."""
    import torch

    before = torch.get_num_threads()
    if "integration" not in request.keywords:
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see a user's debug switch."""
    monkeypatch.delenv("EDITKIT_DEBUG", raising=False)


@pytest.fixture(scope="session")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def llama():
    model, _ = tiny_model("llama", seed=0)
    return model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random llama and its tokenizer saved as a local model folder."""
    path = tmp_path_factory.mktemp("tiny-llama")
    model, _ = tiny_model("llama", seed=0)
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_mend_editor(tmp_path_factory: pytest.TempPathFactory):
    """``get(model_type)``: a MEND editor trained briefly for ``tiny_model(model_type, seed=0)`` (once per session)."""
    from tiny_mend import train_tiny_editor

    made: dict[str, Path] = {}

    def get(model_type: str) -> Path:
        if model_type not in made:
            model, _ = tiny_model(model_type, seed=0)
            made[model_type] = train_tiny_editor(
                model, tiny_tokenizer(), tmp_path_factory.mktemp(f"mend-{model_type}") / "editor"
            )
        return made[model_type]

    return get


@pytest.fixture(scope="session")
def default_model():
    """The embedded default model (converted into the user's cache on first use)."""
    from editkit.models import load_model

    return load_model("smollm2-135m-instruct")


def pytest_report_header(config: pytest.Config) -> str:
    return f"editkit cache: {os.environ.get('EDITKIT_CACHE', '(default)')}"


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A peft LoRA adapter on tiny_model("llama", seed=0) with a random, nonzero B (one per test module)."""
    return save_tiny_lora(tmp_path_factory.mktemp("lora"))
