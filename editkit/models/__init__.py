"""Loading causal language models: zoo aliases, local folders, GGUF files, hub ids.

>>> model, tok = load_model("smollm2-135m-instruct")   # doctest: +SKIP
>>> model.config.model_type                           # doctest: +SKIP
'llama'
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import weakref
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
from editkit.tensorfiles import PICKLE_SUFFIXES, check_finite, refuse_pickle

__all__ = [
    "DEFAULT_MODEL",
    "ZOO",
    "ZooEntry",
    "cache_root",
    "check_loaded",
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


def _resolve(spec: str, progress: Progress | None, *, allow_pickle: bool = False) -> tuple[str, bool]:
    """Turn a user's model spec into a folder or hub id ``from_pretrained`` can read; and whether it is local."""
    if spec in ZOO:
        return str(prepare(spec, progress=progress)), True
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        dest = convert_gguf(path, model_cache_dir(_gguf_cache_name(path)), progress=progress)
        return str(dest), True
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{path}: not a model folder (no config.json); pass a folder written by save_pretrained"
            )
        pickles = sorted(q for q in path.iterdir() if q.suffix in PICKLE_SUFFIXES)
        if pickles and not allow_pickle and not any(path.glob("*.safetensors")):
            raise ModelLoadError(str(refuse_pickle(pickles[0], flag="--allow-pickle (allow_pickle=True)")))
        return str(path), True
    if path.exists():
        raise ModelLoadError(f"{path}: not a model folder or a .gguf file")
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ModelLoadError(f"{spec}: no such file or folder")
    return spec, False


def _first_line(exc: BaseException) -> str:
    line = (str(exc).splitlines() or [""])[0].rstrip(". ")
    return line if line and not isinstance(exc, KeyError) else f"{type(exc).__name__} {line}".strip()


def check_loaded(model: Any, tok: Any, spec: str) -> None:
    """Refuse a model with NaN/infinite weights, or a tokenizer with ids past its embedding.

    Both make every later number meaningless (or crash deep inside a forward pass), so they
    are one clear error at load time instead.

    Raises:
        InputError: naming the weight with NaN/infinite values.
        ModelLoadError: naming the two sizes.
    """
    for name, param in model.named_parameters():
        if param.device.type != "meta":  # offloaded weights are checked where they live
            check_finite(param.detach(), f"model {spec!r}", name)
    embedding = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    rows = getattr(embedding, "num_embeddings", None)
    vocab = tok.get_vocab() if hasattr(tok, "get_vocab") else {}
    top = max(vocab.values(), default=-1)
    if isinstance(rows, int) and top >= rows:
        raise ModelLoadError(
            f"model {spec!r}: its tokenizer has token ids up to {top} but the model embeds only {rows} "
            "tokens; the tokenizer does not belong to this model: save the model's own tokenizer next to it"
        )


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    dtype: Any = "float32",
    device: str | None = None,
    device_map: str | Path | dict[str, Any] | None = None,
    offload_folder: str | Path | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    progress: Progress | None = None,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer.

    Args:
        spec: a zoo alias (``editkit models list``), a local folder written by
            ``save_pretrained``, a ``.gguf`` file, or a Hugging Face hub id.
        dtype: torch dtype or its name (``"float32"``, ``"bfloat16"``...).
        device: where to put the model (``"cpu"``, ``"cuda:0"``); ignored with ``device_map``.
        device_map: spread the model over devices with accelerate: ``"auto"``
            (fill the GPUs of one machine, then the CPU, then disk),
            ``"balanced"``, ``"sequential"``, a ``module name -> device``
            mapping, or a ``.json`` file holding one
            (:func:`editkit.placement.parse_device_map`). Offloaded weights
            (``"cpu"`` next to GPUs, ``"disk"``) are loaded for each forward.
        offload_folder: where accelerate may write weights it offloads to disk
            (only those it cannot read from the model's own safetensors files);
            default: a new folder of this process under the editkit cache
            (``EDITKIT_CACHE``/offload), removed when the model is garbage-collected
            or the process exits (at once when nothing was written there).
        trust_remote_code: off unless you ask; never enabled by editkit itself.
        allow_pickle: read pickle-based weights (``pytorch_model.bin``); off unless you ask,
            since unpickling a file can run arbitrary code. Without it only safetensors load.
        progress: optional callback ``(stage, done, total)`` for a first-time conversion.

    Returns:
        ``(model, tokenizer)``; the model is in eval mode, the tokenizer has a pad token.

    Raises:
        ModelLoadError: with one line saying what is wrong and what to do.
        InputError: a device map that is not one (see :func:`editkit.placement.parse_device_map`).

    >>> model, tok = load_model("smollm2-135m-instruct", dtype="float32")  # doctest: +SKIP
    >>> model, tok = load_model("meta-llama/Llama-3.1-70B", dtype="bfloat16", device_map="auto")  # doctest: +SKIP
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    import editkit.backpack  # noqa: F401  (registers the Backpack model type with the Auto classes)
    from editkit.models.cache import _quiet_transformers
    from editkit.placement import parse_device_map

    torch_dtype = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(torch_dtype, torch.dtype):
        raise ModelLoadError(f"dtype {dtype!r} is not a torch dtype: use float32, bfloat16 or float16")
    device_map = parse_device_map(device_map)
    source, local = _resolve(spec, progress, allow_pickle=allow_pickle)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError... for a bad config
        raise _load_error(spec, source, local, exc) from exc
    if isinstance(device_map, dict):
        _check_device_map_names(spec, config, device_map)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if not allow_pickle:
        kwargs["use_safetensors"] = True
    spill = None  # the default offload folder: this process's own, removed with the model
    if device_map is not None:
        spill = None if offload_folder is not None else _offload_folder()
        kwargs["device_map"] = device_map
        kwargs["offload_folder"] = str(offload_folder or spill)
    loaded: Any = None
    try:
        with _quiet_transformers():
            loaded = AutoModelForCausalLM.from_pretrained(
                source, config=config, output_loading_info=True, **kwargs
            )
            tok = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc):
            raise ModelLoadError(
                f"model {spec!r} ({config.model_type}) is not a causal language model: "
                "editkit edits and audits decoder-only LMs (AutoModelForCausalLM)"
            ) from exc
        raise _load_error(spec, source, local, exc) from exc
    except (MemoryError, torch.OutOfMemoryError):
        raise  # not the files' fault: say so as it is
    except Exception as exc:  # truncated safetensors, a broken tokenizer.json, ...: the files are at fault
        raise _load_error(spec, source, local, exc) from exc
    finally:
        if spill is not None:
            if loaded is None or not any(spill.iterdir()):  # failed, or nothing offloaded to disk
                shutil.rmtree(spill, ignore_errors=True)
            else:  # the model's hooks read the files there until it is gone
                weakref.finalize(loaded[0], shutil.rmtree, str(spill), True)
    model, info = loaded
    missing = list(info.get("missing_keys") or [])
    if missing:
        raise ModelLoadError(
            f"model {spec!r} ({config.model_type}) is not a causal-LM checkpoint: "
            f"{len(missing)} weights of its language-model head or body are missing (e.g. {missing[0]}); "
            "editkit edits and audits decoder-only LMs saved with their LM head"
        )
    check_loaded(model, tok, spec)
    if device is not None and device_map is None:
        model.to(device)
    model.eval()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.editkit_spec = spec
    return model, tok


def _check_device_map_names(spec: str, config: Any, device_map: dict[str, Any]) -> None:
    """:class:`InputError` for a device-map key that names no module (transformers would ignore it)."""
    import torch
    from transformers import AutoModelForCausalLM

    from editkit.errors import InputError

    try:
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(config)
    except Exception:  # an architecture transformers cannot build: from_pretrained says why
        return
    names = {name for name, _ in skeleton.named_modules()}
    unknown = [key for key in device_map if key and key not in names]
    if unknown:
        top = ", ".join(name for name, _ in skeleton.named_children())
        raise InputError(
            f"device map: {unknown[0]!r} is not a module of model {spec!r} ({config.model_type}); "
            f"use module names such as {top} (\"\" maps the whole model)"
        )


def _offload_folder() -> Path:
    """A new folder for the weights accelerate offloads to disk, this process's own.

    A folder shared by processes loading the same model would let one overwrite
    (or delete) the files another's hooks read.
    """
    root = cache_root() / "offload"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="load-", dir=root))


def _load_error(spec: str, source: str, local: bool, exc: BaseException) -> ModelLoadError:
    """One line for a model that could not be loaded, with what to do about it."""
    detail = _first_line(exc)
    if "trust_remote_code" in str(exc):
        return ModelLoadError(
            f"model {spec!r} needs its own Python code to load (trust_remote_code); editkit never runs "
            "a model's code unless asked: load it with load_model(..., trust_remote_code=True) if you trust it"
        )
    if "safetensors" in detail and ("does not appear to have" in detail or "no file named" in detail):
        return ModelLoadError(
            f"model {spec!r}: no safetensors weights ({detail}); pickle-based weights are not read "
            "unless you pass --allow-pickle (allow_pickle=True), since unpickling can run arbitrary code"
        )
    if local:
        return ModelLoadError(
            f"cannot load model {spec!r} from {source}: {detail}; its files look incomplete or corrupted: "
            "re-save it with save_pretrained or copy it again"
        )
    return ModelLoadError(
        f"cannot load model {spec!r}: it is not a zoo alias, a local folder or a .gguf file, "
        f"and the hub could not provide it ({detail}); see `editkit models list`"
    )


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
