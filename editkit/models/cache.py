"""Where converted models live, and how a GGUF file becomes a safetensors folder.

transformers can read GGUF files (``gguf_file=``), but slowly (tens of seconds
for 135M parameters on a laptop CPU) and the result refuses
``save_pretrained``. editkit converts once: it de-quantizes the GGUF weights,
drops the ``quantization_config``, moves the state dict into a fresh model and
saves it with safetensors into the cache, in a temporary sibling renamed into
place when complete. Later loads read the safetensors folder in well under a
second.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from editkit.errors import ModelLoadError

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as conversion advances."""

MANIFEST = "editkit.json"


def cache_root() -> Path:
    """The cache folder: ``$EDITKIT_CACHE``, else ``$XDG_CACHE_HOME/editkit``, else ``~/.cache/editkit``."""
    env = os.environ.get("EDITKIT_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "editkit"


def model_cache_dir(name: str) -> Path:
    """The folder that holds the converted model called ``name``."""
    return cache_root() / "models" / name


def is_converted(folder: Path) -> bool:
    """A converted folder is complete when its manifest exists (written last)."""
    return (folder / MANIFEST).is_file() and (folder / "config.json").is_file()


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest editkit wrote next to a converted model (empty if it cannot be read)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # a damaged cache entry: report what is known, nothing more
        return {}
    return manifest if isinstance(manifest, dict) else {}


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' own tqdm bars: the library never prints; the CLI shows progress."""
    import functools
    from unittest import mock

    from tqdm.auto import tqdm
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        # The GGUF reader uses tqdm directly, outside transformers' switch.
        with mock.patch.object(gguf_utils, "tqdm", functools.partial(tqdm, disable=True)):
            yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def convert_gguf(
    gguf_path: Path,
    dest: Path,
    *,
    source: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> Path:
    """De-quantize ``gguf_path`` into a safetensors folder at ``dest`` (atomically).

    Args:
        gguf_path: the ``.gguf`` file.
        dest: the folder to create; an existing complete conversion is kept.
        source: extra facts recorded in the manifest (alias, wheel version...).
        progress: optional callback ``(stage, done, total)``.

    Returns:
        ``dest``.

    >>> convert_gguf(Path("m.gguf"), model_cache_dir("m"))  # doctest: +SKIP
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from editkit.report.provenance import weights_sha256

    if is_converted(dest):
        return dest
    step = progress or (lambda stage, done, total: None)
    total = 4
    folder, name = str(gguf_path.parent), gguf_path.name
    step("reading GGUF and de-quantizing", 0, total)
    try:
        with _quiet_transformers():
            tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            gguf_model = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=name, dtype=torch.float32
            )
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(
            f"{gguf_path}: cannot read as a causal-LM GGUF file ({exc}); "
            "check the file, and that the `gguf` package is installed"
        ) from exc
    step("rebuilding as a plain transformers model", 1, total)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    state = gguf_model.state_dict()
    with _quiet_transformers():
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Tied embeddings may legitimately be absent from one side.
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise ModelLoadError(
            f"{gguf_path}: weights do not match the architecture "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    model.tie_weights()
    del gguf_model, state
    step("writing safetensors", 2, total)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        with _quiet_transformers():
            model.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
        step("hashing weights", 3, total)
        manifest = {
            "source_gguf": str(gguf_path),
            "source_size": gguf_path.stat().st_size,
            "weights_sha256": weights_sha256(model),
            "model_type": config.model_type,
            "n_params": sum(p.numel() for p in model.parameters()),
            **(source or {}),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if dest.exists():  # an incomplete earlier attempt
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    step("done", total, total)
    return dest
