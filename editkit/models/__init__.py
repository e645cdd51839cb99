"""Loading causal language models: zoo aliases, local folders, GGUF files, hub ids.

>>> model, tok = load_model("smollm2-135m-instruct")   # doctest: +SKIP
>>> model.config.model_type                           # doctest: +SKIP
'llama'
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from editkit.errors import ModelLoadError
from editkit.models.cache import (
    Progress,
    cache_root,
    convert_gguf,
    is_converted,
    model_cache_dir,
    read_manifest,
)
from editkit.models.zoo import DEFAULT_MODEL, ZOO, ZooEntry, register_zoo

__all__ = [
    "DEFAULT_MODEL",
    "ZOO",
    "ZooEntry",
    "cache_root",
    "load_model",
    "model_spec",
    "prepare",
    "register_zoo",
]


def prepare(alias: str, *, progress: Progress | None = None) -> Path:
    """Make sure the zoo model ``alias`` is converted into the cache; return its folder.

    >>> prepare("smollm2-135m-instruct")  # doctest: +SKIP
    PosixPath('/root/.cache/editkit/models/smollm2-135m-instruct')
    """
    entry = _zoo_entry(alias)
    dest = model_cache_dir(alias)
    if is_converted(dest):
        return dest
    gguf = entry.gguf_path()
    return convert_gguf(gguf, dest, source={"alias": alias, "wheel": entry.pip_name}, progress=progress)


def _zoo_entry(alias: str) -> ZooEntry:
    if alias not in ZOO:
        known = ", ".join(sorted(ZOO))
        raise ModelLoadError(f"unknown zoo model {alias!r}: known aliases are {known}")
    return ZOO[alias]


def _gguf_cache_name(path: Path) -> str:
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()
    return f"gguf-{path.stem}-{hashlib.sha256(key).hexdigest()[:12]}"


def _resolve(spec: str, progress: Progress | None) -> tuple[str, dict[str, Any]]:
    """Turn a user's model spec into a folder or hub id ``from_pretrained`` can read."""
    if spec in ZOO:
        return str(prepare(spec, progress=progress)), {}
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        dest = convert_gguf(path, model_cache_dir(_gguf_cache_name(path)), progress=progress)
        return str(dest), {}
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{path}: not a model folder (no config.json); pass a folder written by save_pretrained"
            )
        return str(path), {}
    if path.exists():
        raise ModelLoadError(f"{path}: not a model folder or a .gguf file")
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ModelLoadError(f"{spec}: no such file or folder")
    return spec, {}


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    dtype: Any = "float32",
    device: str | None = None,
    device_map: str | dict[str, Any] | None = None,
    trust_remote_code: bool = False,
    progress: Progress | None = None,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer.

    Args:
        spec: a zoo alias (``editkit models list``), a local folder written by
            ``save_pretrained``, a ``.gguf`` file, or a Hugging Face hub id.
        dtype: torch dtype or its name (``"float32"``, ``"bfloat16"``...).
        device: where to put the model (``"cpu"``, ``"cuda:0"``); ignored with ``device_map``.
        device_map: passed to transformers/accelerate (``"auto"`` spreads a large
            model over the GPUs of one machine).
        trust_remote_code: off unless you ask; never enabled by editkit itself.
        progress: optional callback ``(stage, done, total)`` for a first-time conversion.

    Returns:
        ``(model, tokenizer)``; the model is in eval mode, the tokenizer has a pad token.

    Raises:
        ModelLoadError: with one line saying what is wrong and what to do.

    >>> model, tok = load_model("smollm2-135m-instruct", dtype="float32")  # doctest: +SKIP
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    import editkit.backpack  # noqa: F401  (registers the Backpack model type with the Auto classes)
    from editkit.models.cache import _quiet_transformers

    torch_dtype = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(torch_dtype, torch.dtype):
        raise ModelLoadError(f"dtype {dtype!r} is not a torch dtype: use float32, bfloat16 or float16")
    source, _ = _resolve(spec, progress)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load model {spec!r}: it is not a zoo alias, a local folder or a .gguf file, "
            f"and the hub could not provide it ({str(exc).splitlines()[0]}); "
            f"see `editkit models list`"
        ) from exc
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        with _quiet_transformers():
            loaded: Any = AutoModelForCausalLM.from_pretrained(
                source, config=config, output_loading_info=True, **kwargs
            )
            tok = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc):
            raise ModelLoadError(
                f"model {spec!r} ({config.model_type}) is not a causal language model: "
                "editkit edits and audits decoder-only LMs (AutoModelForCausalLM)"
            ) from exc
        raise ModelLoadError(f"cannot load model {spec!r}: {str(exc).splitlines()[0]}") from exc
    except OSError as exc:
        raise ModelLoadError(f"cannot load model {spec!r}: {str(exc).splitlines()[0]}") from exc
    model, info = loaded
    missing = list(info.get("missing_keys") or [])
    if missing:
        raise ModelLoadError(
            f"model {spec!r} ({config.model_type}) is not a causal-LM checkpoint: "
            f"{len(missing)} weights of its language-model head or body are missing (e.g. {missing[0]}); "
            "editkit edits and audits decoder-only LMs saved with their LM head"
        )
    if device is not None and device_map is None:
        model.to(device)
    model.eval()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.editkit_spec = spec
    return model, tok


def model_spec(model: Any) -> str:
    """The spec a model was loaded from (``load_model`` records it), else its ``name_or_path``."""
    return getattr(model, "editkit_spec", None) or getattr(model.config, "name_or_path", "") or "?"


def zoo_status() -> list[dict[str, Any]]:
    """One row per zoo model: alias, installed, converted, cache folder, description."""
    rows = []
    for alias, entry in sorted(ZOO.items()):
        dest = model_cache_dir(alias)
        converted = is_converted(dest)
        rows.append(
            {
                "alias": alias,
                "installed": entry.installed(),
                "converted": converted,
                "cache": str(dest),
                "weights_sha256": read_manifest(dest).get("weights_sha256") if converted else None,
                "description": entry.description,
                "license": entry.license,
                "default": alias == DEFAULT_MODEL,
            }
        )
    return rows
