"""Ensemble transfer (Hewitt et al., 2024): carry a Backpack edit over to a larger causal LM.

The edit travels as the Backpack's log-probability ratio, added to the target
model's logits on the shared vocabulary::

    logits' = logits_target + beta * (log_softmax(backpack_edited) - log_softmax(backpack_original))

i.e. ``p ∝ p_target * (p_edited / p_original) ** beta``: where the edit does not
change the Backpack's prediction, the target is left alone.

- :class:`EnsembleLM` is that model, usable wherever editkit takes a causal LM
  (:func:`editkit.evaluate.evaluate`: teacher-forced scoring, generation,
  reference-text drift). It keeps one Backpack: the original and the edited
  forward differ only in the few parameters the edit touches (the sense-delta
  slots, or any edited tensor), substituted (:mod:`editkit.substitute`); the Backpack's own
  weights are never written.
- :func:`select_beta` chooses ``beta`` as published: lowered from 1.0 in steps
  of 0.1 until the target's mean NLL on held-out general text is inside the
  deviation league ``initial x (1 + eps)`` (:class:`~editkit.editors.sense.League`);
  beta 0, the plain target, always qualifies.
- :func:`transfer_edit` does both with the edit's own league (eps, held-out
  passages, passage length), as the edit's editor used them.

The two models must share a tokenizer (:func:`check_shared_tokenizer`). Their
output sizes may differ by padding rows (the public Backpack pads GPT-2's 50257
tokens to 50264, GPT-J to 50400): the ratio is added on the first
``min(vocab_target, vocab_backpack)`` logits, the target's extra rows are kept.

>>> ens, chosen = transfer_edit(target, backpack, result, tok)          # doctest: +SKIP
>>> chosen.beta                                                         # doctest: +SKIP
0.7
>>> evaluate(ens, tok, requests).aggregate["reliability"]               # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutput

from editkit.backpack.sense_delta import add_sense_slots, sense_pair_of
from editkit.batching import model_device
from editkit.editors.league.config import LeagueConfig
from editkit.editors.league.general import GeneralText, League, split_general
from editkit.editors.league.loop import general_texts as league_texts
from editkit.editors.result import EditResult, is_applied, reverted
from editkit.errors import EditkitError
from editkit.substitute import Substitution

#: Encoded by both tokenizers in :func:`check_shared_tokenizer` (catches BOS/EOS differences).
_PROBE = "The capital of France is Paris. 1990: Über 2 cafés!\n"

_GENERATION_KEYS = (
    "max_new_tokens", "max_length", "do_sample", "num_beams", "temperature", "top_k", "top_p",
    "eos_token_id", "pad_token_id",
)


def check_shared_tokenizer(tok: Any, other: Any, *, names: tuple[str, str] = ("the Backpack", "the target")) -> None:
    """Raise a clear :class:`EditkitError` unless two tokenizers are interchangeable.

    Compares the whole vocabulary (``get_vocab()``, token string -> id) and the
    encoding of a probe text (special tokens added the same way).

    >>> check_shared_tokenizer(tok, AutoTokenizer.from_pretrained("gpt2"))   # doctest: +SKIP
    """
    a, b = tok.get_vocab(), other.get_vocab()
    if a != b:
        token = min(set(a.items()) ^ set(b.items()))[0]
        raise EditkitError(
            f"the ensemble needs one shared tokenizer, but {names[0]} has {len(a)} tokens and {names[1]} "
            f"{len(b)} (e.g. {token!r} is id {a.get(token)} in one and {b.get(token)} in the other): "
            "transfer to a model that uses the Backpack's tokenizer"
        )
    if list(tok(_PROBE).input_ids) != list(other(_PROBE).input_ids):
        raise EditkitError(
            f"{names[0]} and {names[1]} share a vocabulary but encode text differently "
            "(special tokens such as BOS are added differently): the ensemble needs one tokenizer"
        )


def _output_size(model: nn.Module) -> int | None:
    """Rows of the model's output embedding (its number of logits), or ``config.vocab_size``."""
    get_out = getattr(model, "get_output_embeddings", None)
    weight = getattr(get_out() if callable(get_out) else None, "weight", None)
    if isinstance(weight, torch.Tensor):
        return int(weight.shape[0])
    config = getattr(model, "config", None)
    size = getattr(getattr(config, "text_config", config), "vocab_size", None)
    return int(size) if size is not None else None


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids counting real tokens only (left padding), ``[batch, seq]``."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def combine(target_logits: torch.Tensor, ratio: torch.Tensor | None, beta: float) -> torch.Tensor:
    """``target_logits + beta * ratio`` on the shared first columns (fp32; the target's width).

    Args:
        target_logits: ``[..., vocab_target]``.
        ratio: ``log p_edited - log p_original`` of the Backpack, ``[..., vocab_backpack]``
            (None: the edit changes nothing).
        beta: The ensemble weight.

    >>> combine(torch.zeros(1, 3), torch.tensor([[1.0, 2.0]]), 0.5)
    tensor([[0.5000, 1.0000, 0.0000]])
    """
    logits = target_logits.float()
    if ratio is None or beta == 0.0:
        return logits
    n = min(logits.shape[-1], ratio.shape[-1])
    shifted = logits[..., :n] + beta * ratio[..., :n].to(logits.device)
    return shifted if n == logits.shape[-1] else torch.cat([shifted, logits[..., n:]], dim=-1)


class EnsembleLM(nn.Module):
    """A causal LM whose logits are the target's plus ``beta`` times a Backpack edit's log-ratio.

    Called like a transformers causal LM: ``forward(input_ids, attention_mask,
    position_ids, labels)`` returns ``.logits`` ``[batch, seq, vocab_target]``
    (fp32) and, with ``labels``, ``.loss`` (mean shifted cross-entropy, ``-100``
    ignored). Without ``position_ids`` positions count the real tokens of
    ``attention_mask``, so left padding works for both models (the Backpack
    takes explicit positions).

    :meth:`generate` is a small loop of its own (greedy, or sampling with
    temperature / top-k / top-p; no beams, no other logits processors) that
    returns prompt + new tokens like ``transformers``' ``generate`` and honours
    ``generation_config``, ``stopping_criteria``, EOS and padding the same way.
    The target keeps its KV cache between steps (when it returns one); the
    Backpack, which has none, re-reads the whole sequence each step.

    The edit may be applied to ``backpack`` or not: the slot values the edit
    starts from are read once (with the edit reverted if it is applied), and
    both forwards substitute them, so later :func:`~editkit.editors.apply` /
    :func:`~editkit.editors.revert` calls do not change this model. Slots the
    edit names and the Backpack lacks (a freshly loaded Backpack and a saved
    delta file) are created, zero-valued, which changes no output.

    Args:
        target: The causal LM to edit (any transformers causal LM).
        backpack: The small model the edit was computed on (a Backpack).
        edit: Its :class:`~editkit.editors.EditResult` (deltas on ``backpack``'s parameters).
        beta: Weight of the log-ratio (>= 0; 0 gives the target's logits exactly).
        tokenizer: The shared tokenizer; when given, both models must have a
            logit for each of its tokens.

    >>> ens = EnsembleLM(target, backpack, result, beta=0.8)              # doctest: +SKIP
    >>> ens(ids).logits.shape == target(ids).logits.shape                 # doctest: +SKIP
    True
    """

    def __init__(
        self, target: nn.Module, backpack: nn.Module, edit: EditResult, beta: float = 1.0, *, tokenizer: Any = None
    ) -> None:
        super().__init__()
        self.target = target
        self.backpack = backpack
        self.beta = beta
        self._original, self._edited = _edit_weights(backpack, edit)
        self._changes = any(not torch.equal(self._original[n], self._edited[n]) for n in self._original)
        self._substitute = Substitution(backpack, list(self._original))
        sizes = {"the target": _output_size(target), "the Backpack": _output_size(backpack)}
        if tokenizer is not None:
            for name, size in sizes.items():
                if size is not None and len(tokenizer) > size:
                    raise EditkitError(
                        f"the tokenizer has {len(tokenizer)} tokens but {name} predicts only {size}: "
                        "the ensemble needs both models to use this tokenizer"
                    )

    @property
    def beta(self) -> float:
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        if not math.isfinite(value) or value < 0:
            raise EditkitError(f"the ensemble weight beta must be a finite number >= 0, got {value!r}")
        self._beta = float(value)

    @property
    def config(self) -> Any:
        """The target's config (read-only; for code that reads ``model.config``)."""
        return getattr(self.target, "config", None)

    @property
    def device(self) -> torch.device:
        """Where inputs go: the target's input device."""
        return model_device(self.target)

    def get_input_embeddings(self) -> nn.Module:
        """The target's input embeddings (what :func:`editkit.batching.model_device` reads)."""
        return self.target.get_input_embeddings()  # type: ignore[operator,no-any-return]

    # -- the two halves -------------------------------------------------------------

    def target_logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
    ) -> torch.Tensor:
        """The target's logits ``[batch, seq, vocab_target]``."""
        dev = model_device(self.target)
        out = self.target(
            input_ids=input_ids.to(dev), attention_mask=attention_mask.to(dev), position_ids=position_ids.to(dev),
            use_cache=False,
        )
        return out.logits  # type: ignore[no-any-return]

    def log_ratio(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
    ) -> torch.Tensor | None:
        """``log_softmax(edited) - log_softmax(original)`` of the Backpack, ``[batch, seq, vocab]`` fp32.

        None when the edit changes no weight (the ratio is exactly zero).
        """
        if not self._changes:
            return None
        dev = model_device(self.backpack)
        inputs = {
            "input_ids": input_ids.to(dev), "attention_mask": attention_mask.to(dev),
            "position_ids": position_ids.to(dev), "use_cache": False,
        }

        def logprobs(weights: dict[str, torch.Tensor]) -> torch.Tensor:
            params = {n: w.to(dev) for n, w in weights.items()}
            out = self._substitute(self.backpack, params, inputs)
            return torch.log_softmax(out.logits.float(), dim=-1)

        return logprobs(self._edited) - logprobs(self._original)

    # -- the causal LM ----------------------------------------------------------------

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
    ) -> CausalLMOutput:
        """Ensemble logits ``[batch, seq, vocab_target]`` (fp32), and the loss when ``labels`` are given.

        ``use_cache`` and ``return_dict`` are accepted for compatibility and ignored.
        """
        del use_cache, return_dict
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        pos = position_ids if position_ids is not None else _positions(mask)
        logits = self.target_logits(input_ids, mask, pos)
        ratio = self.log_ratio(input_ids, mask, pos) if self.beta else None
        logits = combine(logits, ratio, self.beta)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(
                logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten().to(logits.device), ignore_index=-100
            )
        return CausalLMOutput(loss=loss, logits=logits)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        generation_config: Any = None,
        stopping_criteria: Any = None,
        *,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        **options: Any,
    ) -> torch.Tensor:
        """Prompt + generated ids ``[batch, prompt + new]``, like ``transformers``' ``generate``.

        Options come from ``generation_config`` (default: the target's), then from
        keyword arguments (``max_new_tokens``, ``max_length``, ``do_sample``,
        ``temperature``, ``top_k``, ``top_p``, ``eos_token_id``, ``pad_token_id``).
        Rows that finished (EOS, or ``stopping_criteria``) are filled with the pad
        token; the loop ends when every row has finished.

        Args:
            generator: Random generator for sampling.
            use_cache: Let the target reuse its KV cache between steps.
        """
        opts = _generation_options(generation_config or getattr(self.target, "generation_config", None), options)
        dev = model_device(self.target)
        ids = input_ids.to(dev)
        mask = (attention_mask if attention_mask is not None else torch.ones_like(input_ids)).to(dev)
        budget = opts["max_new_tokens"]
        if budget is None:
            budget = max(0, (opts["max_length"] or 20) - ids.shape[1])
        eos = opts["eos_token_id"]
        eos_ids = torch.tensor([] if eos is None else [eos] if isinstance(eos, int) else list(eos), device=dev)
        pad = opts["pad_token_id"] if opts["pad_token_id"] is not None else (int(eos_ids[0]) if len(eos_ids) else None)
        unfinished = torch.ones(ids.shape[0], dtype=torch.bool, device=dev)
        past = None
        for _ in range(budget):
            pos = _positions(mask)
            logits, past = self._target_step(ids, mask, pos, past, use_cache)  # [batch, vocab]
            ratio = self.log_ratio(ids, mask, pos) if self.beta else None
            logits = combine(logits, None if ratio is None else ratio[:, -1], self.beta)
            token = _pick(logits, opts, generator)  # [batch]
            if pad is not None:
                token = torch.where(unfinished, token, torch.full_like(token, pad))
            ids = torch.cat([ids, token[:, None]], dim=-1)
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=-1)
            if len(eos_ids):
                unfinished &= ~torch.isin(token, eos_ids)
            if stopping_criteria is not None:
                unfinished &= ~torch.as_tensor(stopping_criteria(ids, None), device=dev).bool()
            if not unfinished.any():
                break
        return ids

    def _target_step(
        self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, past: Any, use_cache: bool
    ) -> tuple[torch.Tensor, Any]:
        """The target's next-token logits ``[batch, vocab]``, and its cache (None without one)."""
        # transformers renamed `past_key_values` to `cache` during 5.x: use the target's own name
        keyword = "cache" if "cache" in inspect.signature(self.target.forward).parameters else "past_key_values"
        if past is None:
            out = self.target(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=use_cache)
        else:
            out = self.target(
                input_ids=ids[:, -1:], attention_mask=mask, position_ids=pos[:, -1:], use_cache=True, **{keyword: past}
            )
        return out.logits[:, -1], (out[keyword] if use_cache and keyword in out else None)


def _edit_weights(backpack: nn.Module, edit: EditResult) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The edited parameters' values without and with the edit (exactly as :func:`apply` computes them)."""
    named = dict(backpack.named_parameters(remove_duplicate=False))
    missing = [sense_pair_of(n) for n in edit.deltas if n not in named]
    if missing and all(p is not None for p in missing):
        add_sense_slots(backpack, [p for p in missing if p is not None])
        named = dict(backpack.named_parameters(remove_duplicate=False))
    unknown = [n for n in edit.deltas if n not in named]
    if unknown:
        raise EditkitError(f"the edit names parameters the Backpack does not have: {unknown[:3]}")
    for name, delta in edit.deltas.items():
        if tuple(delta.shape) != tuple(named[name].shape):
            raise EditkitError(f"{name}: delta shape {tuple(delta.shape)} != weight {tuple(named[name].shape)}")
    restore = reverted(backpack, edit) if is_applied(backpack, edit) else contextlib.nullcontext()
    with torch.no_grad(), restore:
        original = {n: named[n].detach().clone() for n in edit.deltas}
    edited = {
        n: (w.float() + edit.deltas[n].to(device=w.device, dtype=torch.float32)).to(w.dtype)
        for n, w in original.items()
    }
    return original, edited


def _generation_options(config: Any, options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(_GENERATION_KEYS))
    if unknown:
        raise TypeError(f"EnsembleLM.generate does not support {', '.join(unknown)}")
    opts = {key: options.get(key, getattr(config, key, None)) for key in _GENERATION_KEYS}
    if opts["num_beams"] not in (None, 1):
        raise ValueError("EnsembleLM.generate decodes greedily or by sampling: num_beams must be 1")
    return opts


def _pick(logits: torch.Tensor, opts: dict[str, Any], generator: torch.Generator | None) -> torch.Tensor:
    """The next token per row: argmax, or a sample after temperature, top-k and top-p."""
    if not opts["do_sample"]:
        return logits.argmax(-1)
    logits = logits / float(opts["temperature"] or 1.0)
    if opts["top_k"]:
        kth = logits.topk(min(int(opts["top_k"]), logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if opts["top_p"] is not None and opts["top_p"] < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = (probs.cumsum(-1) - probs) >= float(opts["top_p"])  # the better tokens already cover top_p
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))
    probs = logits.softmax(-1).to(generator.device if generator is not None else logits.device)
    return torch.multinomial(probs, 1, generator=generator)[:, 0].to(logits.device)


# -- choosing beta ----------------------------------------------------------------------


@dataclass(frozen=True)
class BetaSelection:
    """How ``beta`` was chosen.

    Attributes:
        beta: The chosen weight.
        eps: The league (None: every beta is allowed).
        initial_loss: The plain target's mean NLL per token on the held-out general text.
        cutoff: ``initial_loss x (1 + eps)`` (None without a league).
        trials: ``(beta, general loss, inside the league)`` per beta tried, highest first.
        fixed: True when ``beta`` was given rather than selected.
    """

    beta: float
    eps: float | None
    initial_loss: float
    cutoff: float | None
    trials: tuple[tuple[float, float, bool], ...]
    fixed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def beta_schedule(start: float = 1.0, step: float = 0.1) -> list[float]:
    """The betas tried, highest first, down to (not including) 0.

    >>> beta_schedule()
    [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    """
    if start <= 0 or step <= 0:
        raise EditkitError(f"beta schedule: start and step must be > 0, got {start} and {step}")
    out, i = [], 0
    while (value := round(start - i * step, 10)) > 0:
        out.append(value)
        i += 1
    return out


@torch.no_grad()
def general_losses(
    ensemble: EnsembleLM,
    tok: Any,
    texts: Sequence[str],
    betas: Sequence[float],
    *,
    max_length: int = 128,
    batch_size: int = 8,
) -> list[float]:
    """Mean NLL per predicted token on ``texts`` for each beta (one pass of each model in all)."""
    pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    general = GeneralText(
        tok, texts, max_length=max_length, batch_size=batch_size, pad_id=pad_id, device=model_device(ensemble.target)
    )
    totals = [0.0] * len(betas)
    count = 0
    for batch in general.batches:
        inputs = batch.model_inputs()
        logits = ensemble.target_logits(**inputs)
        ratio = ensemble.log_ratio(**inputs)
        for i, beta in enumerate(betas):
            totals[i] -= float(batch.target_logprobs(combine(logits, ratio, beta)).sum())
        count += int(batch.target_mask.sum())
    return [t / count for t in totals]


def select_beta(
    ensemble: EnsembleLM,
    tok: Any,
    texts: Sequence[str],
    *,
    eps: float | None,
    start: float = 1.0,
    step: float = 0.1,
    max_length: int = 128,
    batch_size: int = 8,
) -> BetaSelection:
    """The published choice: the highest beta of ``start, start - step, ...`` inside the league.

    The league compares the ensemble's mean NLL on held-out general ``texts``
    with the plain target's: ``loss < initial x (1 + eps)``. Beta 0 (the plain
    target) is the fallback. Sets nothing: assign ``ensemble.beta`` yourself.

    >>> chosen = select_beta(ens, tok, held_out, eps=1e-3)   # doctest: +SKIP
    >>> ens.beta = chosen.beta                                # doctest: +SKIP
    """
    betas = beta_schedule(start, step)
    initial, *losses = general_losses(ensemble, tok, texts, [0.0, *betas], max_length=max_length, batch_size=batch_size)
    league = League(eps, initial)
    trials = tuple((b, loss, league.allows(loss)) for b, loss in zip(betas, losses, strict=True))
    beta = next((b for b, _, ok in trials if ok), 0.0)
    return BetaSelection(beta, eps, initial, league.cutoff, trials)


def _league_settings(edit: EditResult) -> LeagueConfig:
    """The league settings ``edit`` was trained with (defaults for edits of editors without a league)."""
    from editkit.editors.registry import EDITORS, editor_names

    entry = EDITORS.get(edit.method) if edit.method in editor_names() else None
    if entry is None or not issubclass(entry.config_cls, LeagueConfig):
        return LeagueConfig()
    return entry.config_cls.from_mapping(edit.config, where="the edit's config")


def transfer_edit(
    target: nn.Module,
    backpack: nn.Module,
    edit: EditResult,
    tok: Any,
    *,
    beta: float | None = None,
    general_texts: Sequence[str] | None = None,
) -> tuple[EnsembleLM, BetaSelection]:
    """The ensemble of ``target`` with ``edit``, its beta chosen in the edit's league.

    Args:
        target, backpack, edit: As for :class:`EnsembleLM`.
        tok: The shared tokenizer.
        beta: A fixed beta (its general loss is still measured and reported);
            None selects it as published (:func:`select_beta`).
        general_texts: Held-out general passages; default: the ones the sense
            editor held out for its league (``general_file`` / shipped text,
            the last ``league_passages``), with its ``league`` eps and ``max_length``.

    Returns:
        The ensemble (with the chosen beta) and how beta was chosen.

    >>> ens, chosen = transfer_edit(target, backpack, result, tok)   # doctest: +SKIP
    """
    cfg = _league_settings(edit)
    if general_texts is None:
        _, general_texts = split_general(league_texts(cfg), cfg.kl_passages, cfg.league_passages)
    ensemble = EnsembleLM(target, backpack, edit, beta if beta is not None else 1.0, tokenizer=tok)
    if beta is None:
        chosen = select_beta(ensemble, tok, general_texts, eps=cfg.league, max_length=cfg.max_length)
        ensemble.beta = chosen.beta
        return ensemble, chosen
    initial, loss = general_losses(ensemble, tok, general_texts, [0.0, ensemble.beta], max_length=cfg.max_length)
    league = League(cfg.league, initial)
    trial = (ensemble.beta, loss, ensemble.beta == 0.0 or league.allows(loss))
    return ensemble, BetaSelection(ensemble.beta, cfg.league, initial, league.cutoff, (trial,), fixed=True)
