"""TuCo and OutputCo per prompt, the exact per-block decomposition, and steering with alpha.

Nuti, Franzmeyer, Henriques (ICML 2025), as in specs/audit.md. On the TUNED
model's residual stream ``x_l`` (``x_0`` = the tuned model's embeddings)::

    PTC_l = f_B(x_l, l)                    (base block l's update on the tuned stream)
    FTC_l = f_T(x_l, l) - f_B(x_l, l)      (what tuning adds)
    x_{l+1} = x_l + PTC_l + FTC_l          (exactly, up to fp32 rounding)

    TuCo     = |sum_l FTC_l|_1 / (|sum_l PTC_l|_1 + |sum_l FTC_l|_1)
    OutputCo = |x_L^T - x_L^B|_1 / (|x_L^B|_1 + |x_L^T - x_L^B|_1)

both at the last prompt token; the sums run over every block and are taken
before the L1 norm; embeddings, final norm and unembedding are outside. ``x_L``
is the last block's output *before* the final norm (not HF's last
``hidden_states``), ``x_L^B`` comes from an independent forward of the base
model. Steering replaces the stream by ``x_{l+1} = x_l + PTC_l + alpha * FTC_l``
at every block and every decoding step; generation is greedy and re-runs the
whole sequence at each step (no KV cache: each block runs twice per call, and
one cache cannot serve both computations), so it costs ``O(steps)`` full
forwards: meant for short continuations.

>>> results = tuco(base, tuned, tok, ["How do I bake bread?"])         # doctest: +SKIP
>>> results[0].tuco, results[0].outputco                              # doctest: +SKIP
(0.21, 0.08)
>>> gens = steered_generate(base, tuned, tok, prompts, alphas=[0.75, 1.25])   # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from audit.tuco.inputs import PromptBatch, encode_prompts, pad_id_of, prompt_batch
from audit.tuco.pair import TunedPair, tuned_pair
from audit.tuco.passes import Recorder, forward_kwargs, get_runner
from editkit.batching import PaddingSide, chunks, model_device
from editkit.errors import InputError

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``, called after each batch."""


@dataclass(frozen=True)
class Decomposition:
    """The residual stream of the tuned (or steered) model and its PTC/FTC split, fp32, on the CPU.

    Attributes:
        x: ``[layers + 1, batch, hidden]`` -- ``x_0`` (embeddings) .. ``x_L`` (last
            block's output, before the final norm); ``[layers + 1, batch, seq, hidden]``
            for ``positions="all"``.
        ptc: ``[layers, batch, hidden]`` (or with ``seq``): ``PTC_l``.
        ftc: same shape: ``FTC_l``.
        last: ``[batch]``: the column of each row's last prompt token.
        attention_mask: ``[batch, seq]`` (padded positions of ``"all"`` records are 0 there).
    """

    x: torch.Tensor
    ptc: torch.Tensor
    ftc: torch.Tensor
    last: torch.Tensor
    attention_mask: torch.Tensor


@dataclass(frozen=True)
class TucoResult:
    """TuCo of one prompt.

    Attributes:
        index: the prompt's position in the input.
        prompt: the prompt as given (before any chat template).
        n_tokens: prompt tokens, template included.
        tuco: ``|sum FTC|_1 / (|sum PTC|_1 + |sum FTC|_1)`` at the last prompt token.
        outputco: ``|x_L^T - x_L^B|_1 / (|x_L^B|_1 + |x_L^T - x_L^B|_1)`` at the last prompt token.
        ptc_sum_l1: ``|sum_l PTC_l|_1``.
        ftc_sum_l1: ``|sum_l FTC_l|_1``.
        ptc_l1: ``|PTC_l|_1`` per block.
        ftc_l1: ``|FTC_l|_1`` per block.
    """

    index: int
    prompt: str
    n_tokens: int
    tuco: float
    outputco: float
    ptc_sum_l1: float
    ftc_sum_l1: float
    ptc_l1: tuple[float, ...]
    ftc_l1: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ptc_l1"], out["ftc_l1"] = list(self.ptc_l1), list(self.ftc_l1)
        return out


@dataclass(frozen=True)
class Generation:
    """A greedy continuation of one prompt with the stream steered by ``alpha``.

    Attributes:
        index: the prompt's position in the input.
        prompt: the prompt as given.
        alpha: FTC scale (1: the tuned model; 0: base blocks on the tuned stream).
        text: the new tokens, decoded (special tokens skipped).
        token_ids: the new token ids (ending with EOS when it stopped there).
    """

    index: int
    prompt: str
    alpha: float
    text: str
    token_ids: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["token_ids"] = list(self.token_ids)
        return out


def _ratio(part: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """``part / (rest + part)``, 0 where both are 0."""
    total = rest + part
    return torch.where(total > 0, part / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(total))


def tuco_scores(ptc: torch.Tensor, ftc: torch.Tensor) -> torch.Tensor:
    """TuCo from per-block components ``[layers, ..., hidden]``: sum over blocks, then L1 (float64).

    >>> tuco_scores(torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, 3.0]]]))
    tensor([0.7500], dtype=torch.float64)
    """
    p = ptc.double().sum(0).abs().sum(-1)
    f = ftc.double().sum(0).abs().sum(-1)
    return _ratio(f, p)


def outputco_scores(x_tuned: torch.Tensor, x_base: torch.Tensor) -> torch.Tensor:
    """OutputCo from the two final hidden states ``[..., hidden]`` (float64).

    >>> outputco_scores(torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 1.0]]))
    tensor([0.3333], dtype=torch.float64)
    """
    diff = (x_tuned.double() - x_base.double()).abs().sum(-1)
    return _ratio(diff, x_base.double().abs().sum(-1))


def _inputs(model: nn.Module, batch: PromptBatch, *, last_logits_only: bool) -> dict[str, Any]:
    return {**batch.model_inputs(), **forward_kwargs(model, last_logits_only=last_logits_only)}


@torch.inference_mode()
def decompose(
    pair: TunedPair,
    batch: PromptBatch,
    *,
    positions: str = "last",
    alpha: float = 1.0,
    impl: str = "hooks",
) -> Decomposition:
    """The exact per-block decomposition of one padded batch on the tuned (or steered) stream.

    Args:
        pair: the tuned model and its base blocks (:func:`~audit.tuco.pair.tuned_pair`).
        batch: padded prompts (:func:`~audit.tuco.inputs.prompt_batch`), on the model's device.
        positions: ``"last"`` (each row's last prompt token) or ``"all"``.
        alpha: steer the stream while decomposing (1: the tuned model itself).
        impl: ``"hooks"`` (reference) or ``"nnsight"``.

    >>> dec = decompose(tuned_pair(base, tuned), batch)                  # doctest: +SKIP
    >>> torch.allclose(dec.x[1:], dec.x[:-1] + dec.ptc + dec.ftc)        # doctest: +SKIP
    True
    """
    if positions not in ("last", "all"):
        raise InputError(f"tuco: positions must be 'last' or 'all', not {positions!r}")
    runner = get_runner(impl)
    recorder = Recorder(pair, positions=batch.last if positions == "last" else None, alpha=alpha)
    with pair.tuned() as model:
        runner.forward(pair, model, _inputs(model, batch, last_logits_only=True), recorder)
    parts = {k: v.cpu() for k, v in recorder.stacked().items()}
    return Decomposition(parts["x"], parts["ptc"], parts["ftc"], batch.last.cpu(), batch.attention_mask.cpu())


@torch.inference_mode()
def base_final_hidden(pair: TunedPair, batch: PromptBatch, *, impl: str = "hooks") -> torch.Tensor:
    """``x_L^B`` at each row's last prompt token from a forward of the base model: ``[batch, hidden]`` fp32, CPU."""
    runner = get_runner(impl)
    with pair.base() as model:
        hidden = runner.final_hidden(model, _inputs(model, batch, last_logits_only=True))
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, batch.last.to(hidden.device)].float().cpu()


def _check_batching(batch_size: int, padding_side: str) -> None:
    if batch_size < 1:
        raise InputError(f"tuco: batch_size must be >= 1, got {batch_size}")
    if padding_side not in ("left", "right"):
        raise InputError(f"tuco: padding_side must be 'left' or 'right', not {padding_side!r}")


def _batches(
    ids: Sequence[tuple[int, ...]], batch_size: int
) -> Iterable[list[int]]:
    """Prompt indices in batches of similar length (less padding)."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for chunk in chunks(order, batch_size):
        yield list(chunk)


def tuco(
    base: nn.Module | None,
    tuned: Any,
    tok: Any,
    prompts: Sequence[str],
    *,
    chat: bool | None = None,
    system_prompt: str | None = None,
    batch_size: int = 8,
    padding_side: PaddingSide = "left",
    impl: str = "hooks",
    progress: Progress | None = None,
) -> list[TucoResult]:
    """TuCo and OutputCo of every prompt, with the per-block L1 norms of PTC and FTC.

    Args:
        base: the base model (None for a peft model, which carries it).
        tuned: a tuned model, a peft model, TunedWeights, an EditResult, a
            ``name -> delta`` mapping or a :class:`~audit.tuco.pair.TunedPair`.
        tok: the (shared) tokenizer.
        prompts: the prompts.
        chat: wrap prompts in the chat template (None: when the tokenizer has one).
        system_prompt: a system message for the chat template.
        batch_size: prompts per forward.
        padding_side: ``"left"`` or ``"right"`` (same numbers either way).
        impl: ``"hooks"`` (reference) or ``"nnsight"``.
        progress: ``progress("tuco", done, total)`` after each batch.

    Returns:
        One :class:`TucoResult` per prompt, in input order. Cost: about two
        forwards of the tuned model plus one of the base model per batch.

    Raises:
        InputError: bad options, an empty prompt, or models that do not pair up.

    >>> [round(r.tuco, 3) for r in tuco(None, peft_model, tok, ["Hi", "Tell me a joke"])]   # doctest: +SKIP
        [0.182, 0.247]
    """
    _check_batching(batch_size, padding_side)
    pair = tuned_pair(base, tuned)
    get_runner(impl)
    ids = encode_prompts(tok, prompts, chat=chat, system_prompt=system_prompt)
    device = model_device(pair.model)
    pad = pad_id_of(tok)
    results: dict[int, TucoResult] = {}
    for chunk in _batches(ids, batch_size):
        batch = prompt_batch([ids[i] for i in chunk], pad_id=pad, padding_side=padding_side).to(device)
        dec = decompose(pair, batch, impl=impl)
        x_base = base_final_hidden(pair, batch, impl=impl)
        scores = tuco_scores(dec.ptc, dec.ftc)
        output_scores = outputco_scores(dec.x[-1], x_base)
        p_sum = dec.ptc.double().sum(0).abs().sum(-1)
        f_sum = dec.ftc.double().sum(0).abs().sum(-1)
        p_l1 = dec.ptc.double().abs().sum(-1)  # [layers, batch]
        f_l1 = dec.ftc.double().abs().sum(-1)
        for row, i in enumerate(chunk):
            results[i] = TucoResult(
                index=i,
                prompt=prompts[i],
                n_tokens=len(ids[i]),
                tuco=float(scores[row]),
                outputco=float(output_scores[row]),
                ptc_sum_l1=float(p_sum[row]),
                ftc_sum_l1=float(f_sum[row]),
                ptc_l1=tuple(float(v) for v in p_l1[:, row]),
                ftc_l1=tuple(float(v) for v in f_l1[:, row]),
            )
        if progress is not None:
            progress("tuco", len(results), len(prompts))
    return [results[i] for i in range(len(prompts))]


@torch.inference_mode()
def steered_logits(pair: TunedPair, batch: PromptBatch, alpha: float, *, impl: str = "hooks") -> torch.Tensor:
    """Logits ``[batch, seq, vocab]`` of the model whose stream is ``x_l + PTC_l + alpha * FTC_l`` at every block.

    ``alpha = 1`` is the tuned model (its forward untouched), ``0`` the base
    blocks applied on the stream that starts from the tuned embeddings.
    """
    runner = get_runner(impl)
    recorder = Recorder(pair, positions=None, alpha=alpha, record=False)
    with pair.tuned() as model:
        out = runner.forward(pair, model, _inputs(model, batch, last_logits_only=False), recorder)
    return out.logits


def _check_alphas(alphas: Sequence[float]) -> list[float]:
    values = [float(a) for a in alphas]
    if not values:
        raise InputError("tuco: give at least one alpha")
    bad = [a for a in values if not math.isfinite(a)]
    if bad:
        raise InputError(f"tuco: alpha must be a finite number, got {bad[0]}")
    return values


@torch.inference_mode()
def _greedy(
    pair: TunedPair, batch: PromptBatch, alpha: float, *, max_new_tokens: int, eos: int | None, pad: int, impl: str
) -> list[list[int]]:
    """Greedy new tokens per row of a LEFT-padded batch, re-running the whole sequence each step."""
    runner = get_runner(impl)
    ids, mask = batch.input_ids, batch.attention_mask
    rows = ids.shape[0]
    done = torch.zeros(rows, dtype=torch.bool, device=ids.device)
    new: list[list[int]] = [[] for _ in range(rows)]
    with pair.tuned() as model:
        extra = forward_kwargs(model, last_logits_only=True)
        for _ in range(max_new_tokens):
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            recorder = Recorder(pair, positions=None, alpha=alpha, record=False)
            inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": positions, **extra}
            logits = runner.forward(pair, model, inputs, recorder).logits  # [batch, kept, vocab]
            token = logits[:, -1].float().argmax(-1)  # the last column is every row's last token
            for row in (~done).nonzero().flatten().tolist():
                new[row].append(int(token[row]))
            live = ~done
            ids = torch.cat([ids, torch.where(live, token, torch.full_like(token, pad))[:, None]], dim=1)
            mask = torch.cat([mask, live.to(mask.dtype)[:, None]], dim=1)
            if eos is not None:
                done |= live & (token == eos)
            if bool(done.all()):
                break
    return new


def steered_generate(
    base: nn.Module | None,
    tuned: Any,
    tok: Any,
    prompts: Sequence[str],
    *,
    alphas: Sequence[float] = (1.0,),
    max_new_tokens: int = 32,
    chat: bool | None = None,
    system_prompt: str | None = None,
    batch_size: int = 8,
    stop_at_eos: bool = True,
    impl: str = "hooks",
    progress: Progress | None = None,
) -> list[Generation]:
    """Greedy continuations with ``x_{l+1} = x_l + PTC_l + alpha * FTC_l`` at every block and step.

    No KV cache: every step re-runs the whole (left-padded) sequence, so each
    new token sees the steered computation of all earlier ones; ``alpha = 1``
    reproduces the tuned model's greedy tokens.

    Args:
        base, tuned, tok, prompts, chat, system_prompt, batch_size, impl: as for :func:`tuco`.
        alphas: the FTC scales (published grid: 0.75, 0.9, 0.95, 1, 1.05, 1.1, 1.25).
        max_new_tokens: new tokens per prompt at most.
        stop_at_eos: stop a row at the tokenizer's EOS (kept as its last token).
        progress: ``progress("generate alpha=A", done, total)`` after each batch.

    Returns:
        One :class:`Generation` per alpha and prompt (alphas outer, prompts in input order).

    >>> gens = steered_generate(None, peft_model, tok, ["Hi"], alphas=[0.5, 1.0])   # doctest: +SKIP
    """
    values = _check_alphas(alphas)
    _check_batching(batch_size, "left")
    if max_new_tokens < 1:
        raise InputError(f"tuco: max_new_tokens must be >= 1, got {max_new_tokens}")
    pair = tuned_pair(base, tuned)
    get_runner(impl)
    ids = encode_prompts(tok, prompts, chat=chat, system_prompt=system_prompt)
    device = model_device(pair.model)
    pad = pad_id_of(tok)
    eos = getattr(tok, "eos_token_id", None) if stop_at_eos else None
    out: list[Generation] = []
    for alpha in values:
        found: dict[int, list[int]] = {}
        for chunk in _batches(ids, batch_size):
            batch = prompt_batch([ids[i] for i in chunk], pad_id=pad, padding_side="left").to(device)
            tokens = _greedy(pair, batch, alpha, max_new_tokens=max_new_tokens,
                             eos=eos if isinstance(eos, int) else None, pad=pad, impl=impl)
            found.update(zip(chunk, tokens, strict=True))
            if progress is not None:
                progress(f"generate alpha={alpha:g}", len(found), len(prompts))
        for i in range(len(prompts)):
            text = tok.decode(found[i], skip_special_tokens=True)
            out.append(Generation(i, prompts[i], alpha, text, tuple(found[i])))
    return out
