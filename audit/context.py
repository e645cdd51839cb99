"""What every audit analysis shares: both models, the tuned weights, the prompts, and computed-once results.

An :class:`AuditContext` holds the base model and its tokenizer, the tuned
weights as deltas against the base (:mod:`audit.tuned`: a full fine-tune, a
peft LoRA adapter, an editkit edit, or deltas in memory), the prompt sets and
the reference text. What more than one analysis needs is computed once, on
first use, and kept:

- :meth:`AuditContext.pair`: the tuned value of every changed tensor, swapped
  into the base model while the tuned model runs (one copy of the changed
  tensors; the base model's own tensors are never written to). TuCo,
  CGE, the drift analysis and the refusal audit all run the tuned model
  through it, so a LoRA adapter is merged once and a full checkpoint read once.
- :meth:`AuditContext.delta_stats`: the Frobenius norms of every delta and
  base tensor (drift, the verdict).
- :meth:`AuditContext.memo`: any other result by key (per-prompt-set TuCo,
  the reference-text pass), so a second analysis that needs it reuses it.

>>> ctx = AuditContext.load("smollm2-135m-instruct", "runs/lora")        # doctest: +SKIP
>>> with ctx.tuned() as model:                                          # doctest: +SKIP
...     logits = model(input_ids).logits
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import nn

from audit.tuned import DeltaWeights, TunedWeights, detect_kind, load_tuned
from editkit.arch import get_arch, parse_module_path
from editkit.errors import InputError

if TYPE_CHECKING:
    from audit.cge.pair import ContrastPair
    from audit.tuco.pair import TunedPair
    from editkit.report import ModelInfo
    from editkit.requests import EditRequest

T = TypeVar("T")
Progress = Callable[[str, int, int], None]

PROMPTS_PER_SHIPPED_SET = 12
"""Prompts taken from each shipped source for the default prompt sets."""

REQUESTS_FILE = "requests.jsonl"
"""Where ``editkit edit`` saves the requests next to ``delta.safetensors``."""


@dataclass(frozen=True)
class PromptSet:
    """A named group of prompts (TuCo is reported per set).

    Attributes:
        name: shown in tables and figures (``"edit prompts"``, a file's ``set`` field...).
        prompts: the prompts, in order.
        source: where they came from (a file, ``"shipped: ..."``).
    """

    name: str
    prompts: tuple[str, ...]
    source: str = ""


def read_prompt_sets(path: str | Path) -> list[PromptSet]:
    """Prompt sets from a file: JSONL (``"prompt"`` or ``"text"``, optional ``"set"``) or ``.txt``.

    JSONL lines without a ``"set"`` field, and every line of a ``.txt`` file,
    form one set named after the file (its stem). Sets keep first-seen order.

    Raises:
        InputError: a missing file, another suffix, or a bad line (named by file and line).

    >>> [s.name for s in read_prompt_sets("prompts.jsonl")]     # doctest: +SKIP
    ['chat', 'web']
    """
    from audit.tuco.inputs import read_prompts
    from editkit.datafiles import iter_jsonl

    p = Path(path)
    if p.suffix == ".txt" or not p.is_file():
        return [PromptSet(p.stem, tuple(read_prompts(p)), str(p))]
    if p.suffix != ".jsonl":
        raise InputError(f"{p}: expected a .jsonl file (one {{\"prompt\": ..., \"set\": ...}} per line) or a .txt file")
    sets: dict[str, list[str]] = {}
    for lineno, obj in iter_jsonl(p):
        text = obj.get("prompt", obj.get("text")) if isinstance(obj, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{p}:{lineno}: prompt: expected a non-empty string in 'prompt' (or 'text')")
        name = obj.get("set", p.stem)
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"{p}:{lineno}: set: expected a non-empty string (the prompt set's name)")
        sets.setdefault(name, []).append(text)
    if not sets:
        raise InputError(f"{p}: no prompts; pass --prompts with a .jsonl file ('prompt' per line) or a .txt file")
    return [PromptSet(name, tuple(prompts), str(p)) for name, prompts in sets.items()]


def shipped_prompt_sets(
    requests: Sequence[EditRequest] | None = None, n: int = PROMPTS_PER_SHIPPED_SET
) -> list[PromptSet]:
    """The default prompt sets: the edit's own prompts (for an edit), fact prompts, reference text.

    ``fact prompts`` are the first prompt of each relation in the shipped
    ``facts.jsonl`` (completion prompts the default model answers);
    ``reference text`` the first ``n`` passages of ``reference_text.jsonl``.
    """
    from editkit.datafiles import iter_jsonl, read_texts, shipped

    out = []
    if requests:
        out.append(PromptSet("edit prompts", tuple(r.prompt for r in requests[:n]), "the edit's requests"))
    facts = shipped("facts.jsonl")
    first: dict[str, str] = {}
    for _, obj in iter_jsonl(facts):
        first.setdefault(str(obj.get("relation")), str(obj["prompt"]))
    out.append(PromptSet("fact prompts", tuple(list(first.values())[:n]), f"shipped: {facts.name}"))
    texts = read_texts(shipped("reference_text.jsonl"))[:n]
    out.append(PromptSet("reference text", tuple(texts), "shipped: reference_text.jsonl"))
    return out


def reference_texts(reference: str | Path | Sequence[str] | None) -> list[str]:
    """The reference text: ``"default"`` (the shipped passages), a file, texts, or none (``None``/``"none"``)."""
    from editkit.datafiles import read_texts, shipped

    if reference is None or reference == "none":
        return []
    if reference == "default":
        return read_texts(shipped("reference_text.jsonl"))
    if isinstance(reference, (str, Path)):
        return read_texts(reference)
    return [str(t) for t in reference]


@dataclass(frozen=True)
class ParamDelta:
    """How much one tuned tensor moved: Frobenius norms of ``dW`` and ``W0`` (fp32).

    Attributes:
        name: the base parameter name.
        layer: decoder block index (None outside the blocks: embeddings, final norm).
        kind: editkit.arch module kind (``attn_in``, ``mlp_out``...), ``"other"`` inside a
            block when the kind is not known, ``"outside"`` outside the blocks.
        delta_norm: ``||W_tuned - W_base||_F``.
        base_norm: ``||W_base||_F``.
        numel: entries.
    """

    name: str
    layer: int | None
    kind: str
    delta_norm: float
    base_norm: float
    numel: int

    @property
    def relative(self) -> float | None:
        """``||dW||_F / ||W0||_F`` (None for an all-zero base tensor)."""
        return self.delta_norm / self.base_norm if self.base_norm > 0 else None


def _deltas_of_module(base: nn.Module, tuned: nn.Module) -> dict[str, torch.Tensor]:
    """``W_tuned - W_base`` (fp32) of every parameter that differs between two whole models.

    Either model may be spread by a device map (offloaded weights are read where they are stored).
    """
    from audit.tuco.pair import check_same_architecture
    from editkit.placement import param_value

    check_same_architecture(base, tuned)
    out = {}
    for name, _ in base.named_parameters():
        p = param_value(base, name)
        q = param_value(tuned, name).to(device=p.device)
        if not torch.equal(p, q):
            out[name] = q.float() - p.float()
    return out


class AuditContext:
    """A base model, the tuned weights against it, the audit's inputs, and results computed once.

    Build one with :meth:`load` (from specs and paths, as the CLI does) or
    directly from a loaded base model, its tokenizer and
    :class:`~audit.tuned.TunedWeights`.

    Args:
        base: the base model (never written to).
        tok: its tokenizer (the tuned model must share it).
        weights: the tuned weights, read against ``base``.
        base_spec: how the base model was named (reports).
        tuned_spec: how the tuned weights were named (reports).
        prompt_sets: prompt sets for TuCo (and the analyses that take prompts).
        reference: the reference text for perplexity / KL / novelty ranking.
        seed: the seed of sampling analyses (CGE).

    Raises:
        InputError: ``weights`` read against another model.
    """

    def __init__(
        self,
        base: nn.Module,
        tok: Any,
        weights: TunedWeights,
        *,
        base_spec: str = "base",
        tuned_spec: str | None = None,
        prompt_sets: Sequence[PromptSet] = (),
        reference: Sequence[str] = (),
        seed: int = 0,
    ) -> None:
        if weights.base is not base:
            raise InputError("audit: the tuned weights were read against another model; load them against this base model")
        self.base = base
        self.tok = tok
        self.weights = weights
        self.base_spec = base_spec
        self.tuned_spec = tuned_spec or (str(weights.path) if weights.path is not None else weights.kind)
        self.prompt_sets = list(prompt_sets)
        self.reference = list(reference)
        self.seed = seed
        self.progress: Progress | None = None  # set by the runner around each analysis
        self._memo: dict[str, Any] = {}

    # -- building ----------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        base: str | nn.Module,
        tuned: Any,
        tok: Any = None,
        *,
        prompts: Sequence[str | Path] | Sequence[PromptSet] | None = None,
        reference: str | Path | Sequence[str] | None = "default",
        device: str = "cpu",
        dtype: str = "float32",
        device_map: str | dict[str, Any] | None = None,
        seed: int = 0,
        allow_pickle: bool = False,
        progress: Progress | None = None,
    ) -> AuditContext:
        """Load (or take) the base model and read the tuned weights against it.

        Args:
            base: a model spec for :func:`editkit.models.load_model` (zoo alias,
                folder, ``.gguf``, hub id) or a loaded model (then pass ``tok``).
            tuned: a path (full fine-tune folder, peft LoRA adapter folder,
                ``editkit edit`` output), :class:`~audit.tuned.TunedWeights`, a
                second whole model of the same architecture, an ``EditResult``
                or a ``name -> delta`` mapping.
            tok: the tokenizer, when ``base`` is a model.
            prompts: prompt files (see :func:`read_prompt_sets`) or prompt sets;
                None: :func:`shipped_prompt_sets`.
            reference: see :func:`reference_texts`.
            device, dtype: where and how a spec is loaded.
            device_map: spread a spec over devices instead (``"auto"``, ...; see
                :func:`editkit.placement.parse_device_map`); every analysis runs on it.
            seed: the seed of sampling analyses.
            allow_pickle: let :func:`~editkit.models.load_model` read a base model's
                pickle-based weights (only for files you trust); tuned weights are
                read from safetensors only, whatever this says.
            progress: ``progress(stage, done, total)`` while a model converts.

        Raises:
            InputError: tuned weights that do not fit the base model (architecture,
                names, shapes, tokenizer), or unreadable prompt / reference files.
        """
        from audit.cge.pair import check_same_tokenizer, stored_tokenizer
        from editkit.models import load_model

        if isinstance(base, nn.Module):
            if tok is None:
                raise InputError("audit: pass the tokenizer (tok=...) with a loaded base model")
            model, base_spec = base, getattr(getattr(base, "config", None), "name_or_path", "") or "base"
        else:
            model, loaded_tok = load_model(base, dtype=dtype, device=device, device_map=device_map,
                                           allow_pickle=allow_pickle, progress=progress)
            tok = tok if tok is not None else loaded_tok
            base_spec = base
        weights = tuned_weights(model, tuned)
        if weights.path is not None:
            check_same_tokenizer(tok, stored_tokenizer(weights.path), str(weights.path))
        ctx = cls(model, tok, weights, base_spec=str(base_spec), tuned_spec=_spec_of(tuned, weights),
                  reference=reference_texts(reference), seed=seed)
        if prompts is None:
            ctx.prompt_sets = shipped_prompt_sets(ctx.edit_requests())
        else:
            ctx.prompt_sets = [p for item in prompts for p in
                               ([item] if isinstance(item, PromptSet) else read_prompt_sets(item))]
        return ctx

    # -- what the tuned model is ----------------------------------------------------------
    @property
    def kind(self) -> str:
        """``full``, ``lora``, ``edit`` or ``deltas`` (:attr:`audit.tuned.TunedWeights.kind`)."""
        return self.weights.kind

    @property
    def num_layers(self) -> int:
        from editkit.arch import num_layers

        return num_layers(self.base)

    def edit_requests(self) -> list[EditRequest] | None:
        """The requests of an editkit edit (``requests.jsonl`` next to its deltas), else None."""
        if self.kind != "edit" or self.weights.path is None:
            return None
        file = self.weights.path.parent / REQUESTS_FILE
        if not file.is_file():
            return None
        from editkit.requests import load_requests

        return self.memo("edit requests", lambda: load_requests(file))

    # -- computed once -----------------------------------------------------------------------
    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()`` the first time ``key`` is asked for; the same object afterwards."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]  # type: ignore[no-any-return]

    def pair(self) -> TunedPair:
        """The tuned model as the base model with its changed tensors swapped in, and its base blocks.

        A :class:`audit.tuco.pair.DeltaPair` (for every kind of tuned weights,
        a LoRA adapter included: merged once, ``W0 + B A * scaling`` in fp32);
        an :class:`audit.tuco.offloaded.OffloadedDeltaPair` when a device map
        offloads some of the tuned parameters.
        """
        from audit.tuco.offloaded import delta_pair

        return self.memo("pair", lambda: delta_pair(self.base, self.weights))

    @contextlib.contextmanager
    def tuned(self) -> Iterator[nn.Module]:
        """``with ctx.tuned() as model:`` ``model`` computes the tuned model (outside: the base)."""
        with self.pair().tuned() as model:
            yield model

    def contrast_pair(self) -> ContrastPair:
        """CGE's two forwards over the shared :meth:`pair`: the tuned model and the base model."""
        from audit.cge.pair import ContrastPair, LMView, forward_keywords
        from editkit.batching import model_device

        def build() -> ContrastPair:
            cache_key, keep = forward_keywords(self.base)
            return ContrastPair(LMView(self.base, context=self.pair().tuned), LMView(self.base),
                                self.kind, cache_key, keep, model_device(self.base))

        return self.memo("contrast pair", build)

    def tuned_copy(self) -> nn.Module:
        """A second model holding the tuned weights, for APIs that run base and tuned side by side.

        Costs one more copy of the model (the other analyses share :meth:`pair`
        instead); built once, on first use. Under a device map the copy keeps
        the base model's placement; its offloaded parameters stay offloaded (the
        copy's hooks load the tuned values, kept on the CPU).
        """

        def build() -> nn.Module:
            import copy

            from audit.cge.pair import tuned_overrides
            from audit.tuned.base import param_table
            from editkit.placement import set_offloaded_values, split_offloaded

            model = copy.deepcopy(self.base)
            params = param_table(model)
            # an on-device alias of an offloaded tied weight is written too, its offloaded aliases go to the hooks
            on_device, hooked = split_offloaded(model, tuned_overrides(self.base, self.weights))
            with torch.no_grad():
                for name, value in on_device.items():
                    params[name].copy_(value)
            if hooked:  # for the copy's lifetime: its hooks are its own
                set_offloaded_values(model, {name: value.to("cpu") for name, value in hooked.items()})
            return model.eval()

        return self.memo("tuned copy", build)

    def delta_stats(self) -> list[ParamDelta]:
        """:class:`ParamDelta` of every tuned tensor, in the base model's order (read once)."""
        return self.memo("delta stats", self._delta_stats)

    def _delta_stats(self) -> list[ParamDelta]:
        prefix = re.compile(rf"^{re.escape(get_arch(self.base).layers)}\.(\d+)\.")
        out = []
        for name in self.weights:
            dw = self.weights.delta(name)
            parsed = parse_module_path(self.base, name)
            match = prefix.match(name)
            layer = parsed[0] if parsed else (int(match.group(1)) if match else None)
            kind = parsed[1] if parsed else ("other" if match else "outside")
            out.append(ParamDelta(name, layer, kind, float(dw.norm()),
                                  float(self.weights.base_weight(name).norm()), dw.numel()))
        return out

    # -- provenance ------------------------------------------------------------------------
    def base_sha256(self) -> str:
        """:func:`editkit.report.weights_sha256` of the base model (computed once)."""
        from editkit.report import weights_sha256

        return self.memo("base sha256", lambda: weights_sha256(self.base))

    def model_infos(self) -> list[ModelInfo]:
        """The base and the tuned model, for a report's provenance."""
        from editkit.report import model_info

        base = model_info(self.base, self.base_spec, "base", weights_sha256=self.base_sha256())
        tuned = model_info(self.base, f"{self.tuned_spec} ({self.kind})", "tuned")
        return [base, tuned]

    def fingerprint(self) -> str:
        """A hash of everything the analyses read: base weights, tuned files, prompts, reference text.

        Finished analyses of an interrupted run are reused only under the same
        fingerprint (and the same options).
        """

        def compute() -> str:
            h = hashlib.sha256()
            doc = {
                "base": self.base_sha256(),
                "dtype": str(next(self.base.parameters()).dtype),
                "tuned": self._tuned_identity(),
                "prompts": [[s.name, list(s.prompts)] for s in self.prompt_sets],
                "reference": hashlib.sha256("\0".join(self.reference).encode()).hexdigest(),
                "seed": self.seed,
            }
            h.update(json.dumps(doc, sort_keys=True).encode())
            return h.hexdigest()

        return self.memo("fingerprint", compute)

    def _tuned_identity(self) -> Any:
        path = self.weights.path
        if path is None:
            from editkit.report import weights_sha256

            return {"kind": self.kind, "deltas": weights_sha256({n: self.weights.delta(n) for n in self.weights})}
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        return {"kind": self.kind, "path": str(path.resolve()),
                "files": [[str(f.relative_to(path.parent)), f.stat().st_size, f.stat().st_mtime_ns] for f in files]}


def tuned_weights(base: nn.Module, tuned: Any) -> TunedWeights:
    """Whatever stands for the tuned model, as :class:`~audit.tuned.TunedWeights` against ``base``.

    Raises:
        InputError: something that is not tuned weights, or that does not fit ``base``.
    """
    if isinstance(tuned, TunedWeights):
        if tuned.base is not base:
            raise InputError("audit: the tuned weights were read against another model; pass the base model they were read against")
        return tuned
    if isinstance(tuned, (str, Path)):
        kind, path = detect_kind(tuned)
        return load_tuned(base, path, kind=kind)
    if isinstance(tuned, nn.Module):
        return DeltaWeights(base, _deltas_of_module(base, tuned))
    deltas = getattr(tuned, "deltas", tuned)
    if isinstance(deltas, Mapping):
        return DeltaWeights(base, deltas)
    raise InputError(
        f"audit: cannot use a {type(tuned).__name__} as the tuned model; pass a path, TunedWeights, "
        "a second model, an EditResult or a name -> delta mapping"
    )


def _spec_of(tuned: Any, weights: TunedWeights) -> str:
    if isinstance(tuned, (str, Path)):
        return str(tuned)
    if weights.path is not None:
        return str(weights.path)
    return f"{type(tuned).__name__} in memory"
