"""A peft LoRA adapter folder as per-parameter deltas, computed layer by layer in fp32.

For every adapted module, ``dW = B @ A * scaling`` (transposed when the base
weight is stored ``[in, out]``: GPT-2 ``Conv1D``, peft's ``fan_in_fan_out``; and
for embeddings, as peft does), with ``scaling = alpha / r``, or
``alpha / sqrt(r)`` when ``use_rslora`` is set. ``r`` and ``alpha`` follow
``rank_pattern`` / ``alpha_pattern`` the way peft matches them (the pattern is
a regex for a suffix of the module name, first match wins). ``lora_bias``
adds ``lora_B.bias * scaling`` to the bias; ``modules_to_save`` tensors are
tuned weights. Nothing of peft is imported: no second copy of the model, no
wrapper modules (only :func:`load_peft_adapter`, for the analyses that run the
adapter through peft itself, imports it). DoRA and other peft methods are refused with the fix (merge
with peft, then pass the merged model as a full fine-tune).

>>> tuned = LoraAdapter(model, "runs/lora")                          # doctest: +SKIP
>>> tuned.layers["model.layers.0.self_attn.q_proj.weight"].scaling   # doctest: +SKIP
2.0
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audit.tuned.base import TunedWeights, check_shape, refuse_pickle, resolve_param_name
from editkit.errors import InputError
from editkit.tensorfiles import check_finite, tensor_shapes

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."

_SUFFIXES: dict[str, str] = {
    ".lora_A.weight": "A",
    ".lora_B.weight": "B",
    ".lora_B.bias": "bias",
    ".lora_embedding_A": "A",
    ".lora_embedding_B": "B",
}
_MERGE_FIX = (
    "merge it with peft (PeftModel.from_pretrained(base, dir).merge_and_unload()), "
    "save_pretrained the merged model and pass that folder as a full fine-tune"
)


@dataclass(frozen=True)
class LoraLayer:
    """One adapted module: where its factors are and how they combine.

    Attributes:
        module: the base module's path (``model.layers.0.self_attn.q_proj``).
        key: the module's name in the adapter file (after ``base_model.model.``).
        rank: ``r`` (rows of ``A``).
        alpha: ``lora_alpha`` for this module (``alpha_pattern`` applied).
        scaling: ``alpha / r`` or ``alpha / sqrt(r)`` (rsLoRA).
        transposed: the base weight is stored ``[in, out]`` (``Conv1D``), so ``dW = (B @ A).T``.
        embedding: an embedding layer (``dW = (B @ A).T``, as peft computes it).
    """

    module: str
    key: str
    rank: int
    alpha: float
    scaling: float
    transposed: bool
    embedding: bool

    @property
    def param(self) -> str:
        return f"{self.module}.weight"


def pattern_value(patterns: Mapping[str, Any], module: str, default: Any) -> Any:
    """The value of the first pattern matching ``module`` (a regex for a dotted suffix), else ``default``.

    >>> pattern_value({"down_proj": 2}, "model.layers.0.mlp.down_proj", 8)
    2
    >>> pattern_value({"layers.1.*q_proj": 4}, "model.layers.0.self_attn.q_proj", 8)
    8
    """
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return value
    return default


def read_adapter_config(path: Path) -> dict[str, Any]:
    """``adapter_config.json`` of a LoRA adapter folder, checked for what this reader supports."""
    file = path / CONFIG_FILE
    if not file.is_file():
        raise InputError(f"{path}: no {CONFIG_FILE}; pass a peft adapter folder (save_pretrained output)")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise InputError(f"{file}: not valid JSON; restore the adapter_config.json peft saved") from None
    if not isinstance(config, dict):
        raise InputError(f"{file}: expected a JSON object (a peft adapter config)")
    peft_type = str(config.get("peft_type", "")).upper()
    if peft_type != "LORA":
        raise InputError(f"{file}: a {peft_type or 'non-LoRA'} adapter, only LoRA is read here; {_MERGE_FIX}")
    for flag, what in (("use_dora", "DoRA"), ("layer_replication", "layer replication")):
        if config.get(flag):
            raise InputError(f"{file}: {what} adapters are not read here; {_MERGE_FIX}")
    if not _is_rank(config.get("r")) or not _is_number(config.get("lora_alpha")):
        raise InputError(
            f"{file}: 'r' (an integer >= 1) and 'lora_alpha' (a finite number) must be set (is it a peft LoRA config?)"
        )
    for key, valid in (("rank_pattern", _is_rank), ("alpha_pattern", _is_number)):
        patterns = config.get(key) or {}
        if not isinstance(patterns, dict):
            raise InputError(f"{file}: {key} must be an object of module pattern -> value")
        for pattern, value in patterns.items():
            try:
                re.compile(rf"(.*\.)?({pattern})$")  # as pattern_value matches it
            except re.error as exc:
                raise InputError(f"{file}: {key}: {pattern!r} is not a regular expression ({exc})") from None
            if not valid(value):
                raise InputError(f"{file}: {key}: {pattern!r} -> {value!r} is not a valid {key.split('_')[0]}")
    return config


def _is_rank(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _module_kind(module: nn.Module) -> str:
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, Conv1D):
        return "conv1d"
    if isinstance(module, nn.Embedding):
        return "embedding"
    return type(module).__name__


class LoraAdapter(TunedWeights):
    """The deltas of a peft LoRA adapter (``adapter_config.json`` + ``adapter_model.safetensors``).

    Args:
        base: the base model the adapter was trained on (not modified).
        path: the adapter folder.

    Attributes:
        config: the adapter config, as saved.
        file: the adapter's safetensors file.
        layers: base weight name -> :class:`LoraLayer`.
        tensor_keys: base weight name -> ``{"A": key, "B": key[, "bias": key]}`` in :attr:`file`.
        full_keys: base parameter name -> key of a whole tuned tensor (``modules_to_save``).

    Raises:
        InputError: not a LoRA adapter, a variant that is not plain LoRA (DoRA),
            modules the base model does not have or of another size, a rank
            that disagrees with the config, or a pickle-based ``adapter_model.bin``.
    """

    kind = "lora"

    def __init__(self, base: nn.Module, path: str | Path) -> None:
        root = Path(path)
        super().__init__(base, root)
        self.config = read_adapter_config(root)
        self.file = root / WEIGHTS_FILE
        if not self.file.is_file():
            if (root / "adapter_model.bin").is_file():
                raise refuse_pickle(root / "adapter_model.bin")
            raise InputError(f"{root}: no {WEIGHTS_FILE}")
        shapes = tensor_shapes(self.file, what="LoRA adapter file")
        factors: dict[str, dict[str, str]] = {}
        self.full_keys: dict[str, str] = {}
        prefix = getattr(base, "base_model_prefix", "") or ""
        for key, shape in shapes.items():
            local = key.removeprefix(PEFT_PREFIX)
            part = next((s for s in _SUFFIXES if local.endswith(s)), None)
            if part is not None:
                factors.setdefault(local[: -len(part)], {})[_SUFFIXES[part]] = key
                continue
            if "lora_" in local or "magnitude" in local or "trainable_tokens" in local:
                raise InputError(f"{self.file}: unsupported adapter tensor {key!r}; {_MERGE_FIX}")
            # A whole tensor: modules_to_save, or the base weight of an adapted embedding
            # (peft saves it as "<module>.base_layer.weight"; the LoRA delta adds to it).
            name = resolve_param_name(local.replace(".base_layer.", "."), self._params, prefix)
            if name is None:
                raise InputError(
                    f"{self.file}: {key!r} names no parameter of the base model; "
                    "was the adapter trained on another architecture?"
                )
            check_shape(self.file, name, shape, tuple(self._params[name].shape))
            self.full_keys[name] = key
        self.layers: dict[str, LoraLayer] = {}
        self.tensor_keys: dict[str, dict[str, str]] = {}
        self._bias: dict[str, str] = {}
        for local, parts in factors.items():
            layer = self._layer(local, parts, shapes, prefix)
            self.layers[layer.param] = layer
            self.tensor_keys[layer.param] = parts
            if "bias" in parts:
                self._bias[f"{layer.module}.bias"] = layer.param
        order = {n: i for i, n in enumerate(self._params)}
        names = {*self.layers, *self._bias, *self.full_keys}
        self._order = tuple(sorted(names, key=order.__getitem__))

    def _layer(
        self, local: str, parts: dict[str, str], shapes: dict[str, tuple[int, ...]], prefix: str
    ) -> LoraLayer:
        if "A" not in parts or "B" not in parts:
            raise InputError(f"{self.file}: {local!r} has only part of its LoRA factors (A and B needed)")
        name = resolve_param_name(f"{local}.weight", self._params, prefix)
        if name is None:
            raise InputError(
                f"{self.file}: the adapter targets {local!r}, which the base model does not have; "
                "pass the base model the adapter was trained on"
            )
        module_path = name.removesuffix(".weight")
        kind = _module_kind(self.base.get_submodule(module_path))
        if kind not in ("linear", "conv1d", "embedding"):
            raise InputError(f"{self.file}: LoRA on a {kind} ({local!r}) is not supported; {_MERGE_FIX}")
        a_shape, b_shape = shapes[parts["A"]], shapes[parts["B"]]
        rank = int(pattern_value(self.config.get("rank_pattern") or {}, local, self.config["r"]))
        if a_shape[0] != rank or b_shape[1] != rank:
            raise InputError(
                f"{self.file}: {local!r} has rank {a_shape[0]} but the config says r={rank} "
                "(r / rank_pattern); the adapter folder is inconsistent"
            )
        transposed = kind != "linear"  # Conv1D stores [in, out]; peft transposes embeddings too
        delta_shape = (a_shape[1], b_shape[0]) if transposed else (b_shape[0], a_shape[1])
        check_shape(self.file, name, delta_shape, tuple(self._params[name].shape))
        if "bias" in parts:
            bias = f"{module_path}.bias"
            if bias not in self._params:
                raise InputError(f"{self.file}: {local!r} has a LoRA bias but the base layer has no bias")
            check_shape(self.file, bias, shapes[parts["bias"]], tuple(self._params[bias].shape))
        alpha = float(pattern_value(self.config.get("alpha_pattern") or {}, local, self.config["lora_alpha"]))
        scaling = alpha / math.sqrt(rank) if self.config.get("use_rslora") else alpha / rank
        return LoraLayer(module_path, local, rank, alpha, scaling, transposed, kind == "embedding")

    def factors(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A [r, in], B [out, r])`` of the layer whose weight is ``name``, as stored."""
        from safetensors import safe_open

        parts = self.tensor_keys[name]
        with safe_open(str(self.file), framework="pt") as fh:
            a, b = fh.get_tensor(parts["A"]), fh.get_tensor(parts["B"])
        return check_finite(a, self.file, parts["A"]), check_finite(b, self.file, parts["B"])

    def _names(self) -> tuple[str, ...]:
        return self._order

    def lora_delta(self, name: str) -> torch.Tensor | None:
        """The LoRA part of parameter ``name``'s delta (``B @ A * scaling``, or the LoRA bias), else None.

        fp32, on the base parameter's device, in its storage layout.
        """
        from safetensors import safe_open

        device = self.device(name)
        if name in self._bias:
            layer = self.layers[self._bias[name]]
            with safe_open(str(self.file), framework="pt") as fh:
                b = fh.get_tensor(self.tensor_keys[layer.param]["bias"])
            return b.to(device=device, dtype=torch.float32) * layer.scaling
        if name not in self.layers:
            return None
        layer = self.layers[name]
        a, b = (t.to(device=device, dtype=torch.float32) for t in self.factors(name))
        delta = (b @ a) * layer.scaling  # [out, r] @ [r, in]
        return delta.T if layer.transposed else delta

    def _stored(self, name: str) -> tuple[torch.Tensor, bool]:
        from safetensors import safe_open

        lora = self.lora_delta(name)
        if name not in self.full_keys:
            if lora is None:
                raise KeyError(f"{name!r} is not a tuned parameter of {self!r}")
            return lora, True
        with safe_open(str(self.file), framework="pt") as fh:
            saved = fh.get_tensor(self.full_keys[name])
        if lora is None:
            return saved, False
        shift = saved.to(device=lora.device, dtype=torch.float32) - self.base_weight(name)
        return shift + lora, True  # a saved base weight, plus the LoRA update on top


PICKLE_WEIGHTS_FILE = "adapter_model.bin"
"""peft's pickle-based adapter file: read only with ``allow_pickle`` (unpickling can run code)."""


def load_peft_adapter(base: nn.Module, path: str | Path, *, allow_pickle: bool = False, is_trainable: bool = False) -> Any:
    """``PeftModel.from_pretrained(base, path)``, refusing a pickle-only adapter and with one-line errors.

    The one place editkit hands an adapter folder to peft (TuCo's and CGE's LoRA
    pairs); unlike :class:`LoraAdapter` it wraps ``base`` in peft modules (undo
    with ``model.unload()``).

    Args:
        base: the base model the adapter was trained on (wrapped in place).
        path: the adapter folder.
        allow_pickle: also read an ``adapter_model.bin`` when the folder has no
            ``adapter_model.safetensors`` (only for files you trust).
        is_trainable: passed to peft.

    Raises:
        InputError: a folder with only ``adapter_model.bin`` (without ``allow_pickle``),
            or an adapter peft cannot load onto ``base``.
    """
    from peft import PeftModel

    root = Path(path)
    safe = (root / WEIGHTS_FILE).is_file()
    if not safe and (root / PICKLE_WEIGHTS_FILE).is_file() and not allow_pickle:
        raise refuse_pickle(root / PICKLE_WEIGHTS_FILE, flag="--allow-pickle (allow_pickle=True)")
    try:
        return PeftModel.from_pretrained(base, str(root), is_trainable=is_trainable, use_safetensors=safe)
    except (ValueError, KeyError, RuntimeError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{root}: peft cannot load this adapter onto the base model ({msg})") from None
