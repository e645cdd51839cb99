"""Contrastive decoding: what the tuned model says that the base model would not.

At every step each candidate token ``v`` gets the score

    s(v) = log p_T(v | x_<t) - gamma * log p_B'(v | x_<t)

on the plausible set ``{v : p_T(v) >= alpha * max_w p_T(w)}`` and ``-inf``
elsewhere (:func:`contrastive_scores`). A hypothesis' score is the sum of the
scores of its tokens; an example's reported ``score`` is the mean per
generated token, which equals the sequence-level novelty score of the
continuation against ``B'`` (every chosen token is plausible).

Decoding (:func:`decode`) is batched over examples, with ``num_beams`` rows
per example and a separate KV cache per model:

- ``num_beams = 1``: sample from ``softmax(s / temperature)``, or take the argmax;
- ``num_beams > 1``: beam search over the summed score; with sampling
  (beam-sample, the published setting) ``2 * num_beams`` candidates
  ``(beam, token)`` are drawn without replacement from
  ``softmax((beam score + s) / temperature)`` over all beams' candidates
  (Gumbel top-k), and the ``num_beams`` best of them by score are kept.

With ``eos="stop"`` a hypothesis that emits EOS is finished (the best
``num_beams`` finished ones are kept; an example is done when it has
``num_beams`` of them) and the best hypothesis is the one with the highest
mean score. With ``"ignore"`` (the published fixed-length setting) EOS is an
ordinary token; with ``"ban"`` it is removed from ``p_T`` before the cut.

>>> examples = cge_generate(base, "runs/ft", tok, n=8, seed=0)     # doctest: +SKIP
>>> examples[0].text, examples[0].score                           # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from audit.cge.config import CGEConfig
from audit.cge.pair import ContrastPair, LMView, TunedSpec, contrast_pair
from editkit.batching import chunks, encode_prompt
from editkit.errors import InputError

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``, called after every decoding step."""

NEG_INF = float("-inf")


def contrastive_scores(
    tuned_logits: torch.Tensor,
    base_logits: torch.Tensor | None,
    *,
    gamma: float = 1.0,
    alpha: float = 0.1,
) -> torch.Tensor:
    """``log p_T - gamma * log p_B`` on the plausible set, ``-inf`` elsewhere: ``[..., vocab]`` fp32.

    Args:
        tuned_logits: the tuned model's next-token logits ``[..., vocab]``.
        base_logits: the base model's (``B'``), same shape; ignored when ``gamma == 0``.
        gamma: weight of the base term.
        alpha: plausibility cut: ``p_T(v) < alpha * max p_T`` gives ``-inf`` (0: no cut).

    >>> t = torch.tensor([2.0, 1.0, -3.0]); b = torch.tensor([2.0, 0.0, 0.0])
    >>> contrastive_scores(t, b, gamma=1.0, alpha=0.1)
    tensor([-0.0786,  0.9214,    -inf])
    """
    lt = torch.log_softmax(tuned_logits.float(), dim=-1)
    scores = lt
    if gamma != 0.0:
        if base_logits is None or base_logits.shape != tuned_logits.shape:
            got = None if base_logits is None else tuple(base_logits.shape)
            raise ValueError(f"base logits {got} do not match the tuned logits {tuple(tuned_logits.shape)}")
        scores = lt - gamma * torch.log_softmax(base_logits.float(), dim=-1)
    if alpha > 0.0:
        cut = lt.max(dim=-1, keepdim=True).values + math.log(alpha)
        scores = scores.masked_fill(lt < cut, NEG_INF)
    return scores


@dataclass(frozen=True)
class Example:
    """One generated example.

    Attributes:
        text: the decoded continuation (special tokens kept, a final EOS of ``eos="stop"`` dropped).
        score: mean contrastive score per generated token (the novelty of the continuation).
        total: the summed score (what beam search ranks, at equal length).
        prompt: the prompt it continues; None: from BOS.
        step: its index (iterative CGE: the step that generated it).
        token_ids: the generated token ids (a final EOS included).
    """

    text: str
    score: float
    total: float
    prompt: str | None
    step: int
    token_ids: tuple[int, ...]

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record of ``examples.jsonl``."""
        return {
            "step": self.step,
            "prompt": self.prompt,
            "text": self.text,
            "score": self.score,
            "total": self.total,
            "n_tokens": self.n_tokens,
        }


@dataclass(frozen=True)
class Hypothesis:
    """A decoded continuation: its tokens and summed score."""

    tokens: tuple[int, ...]
    total: float

    @property
    def mean(self) -> float:
        return self.total / max(len(self.tokens), 1)


def start_token(tok: Any) -> int:
    """The token unconditional generation starts from: BOS, else EOS (GPT-2 style)."""
    for attr in ("bos_token_id", "eos_token_id"):
        value = getattr(tok, attr, None)
        if value is not None:
            return int(value)
    raise InputError("the tokenizer has neither a BOS nor an EOS token to start generation from; pass prompts")


def start_ids(tok: Any, prompt: str | None) -> tuple[int, ...]:
    """Token ids an example starts from: the prompt with the tokenizer's special tokens, or just BOS."""
    if not prompt:
        return (start_token(tok),)
    ids = encode_prompt(tok, prompt)
    if not ids:
        return (start_token(tok),)
    return ids


def gumbel_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard Gumbel noise of ``x``'s shape (``argmax(x + g)`` samples from ``softmax(x)``)."""
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    return -torch.log(-torch.log(u))  # u = 0 gives -inf: that candidate is drawn last


def _reorder(cache: Any, index: torch.Tensor) -> Any:
    if cache is None:
        return None
    if hasattr(cache, "reorder_cache"):
        cache.reorder_cache(index)
        return cache
    return tuple(tuple(t.index_select(0, index.to(t.device)) for t in layer) for layer in cache)


def _step(
    view: LMView, pair: ContrastPair, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any
) -> tuple[torch.Tensor, Any]:
    """Next-token logits ``[rows, vocab]`` and the updated cache of one side."""
    inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "use_cache": True}
    if cache is not None:
        inputs[pair.cache_key] = cache
    if pair.logits_to_keep:
        inputs["logits_to_keep"] = 1
    out = view(**inputs)
    new_cache = out.get(pair.cache_key)
    return out.logits[:, -1], new_cache


@torch.no_grad()
def decode(
    pair: ContrastPair,
    starts: Sequence[Sequence[int]],
    config: CGEConfig,
    *,
    pad_id: int,
    eos_id: int | None,
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Hypothesis]:
    """Contrastive decoding of one batch: the best hypothesis per start sequence.

    Args:
        pair: the tuned and base forwards.
        starts: token ids each example starts from (BOS, or a prompt).
        config: scores and decoding settings.
        pad_id: the id fed to finished rows and used for left padding.
        eos_id: the EOS id (needed for ``eos="stop"``/``"ban"``).
        generator: random generator for sampling (on ``pair.device``).
        progress: ``progress(step)`` after every new token.

    Returns:
        One :class:`Hypothesis` (new tokens and summed score) per start.
    """
    if config.eos != "ignore" and eos_id is None:
        raise InputError(f"eos={config.eos!r} needs a tokenizer with an EOS token; use eos='ignore'")
    n, k, dev = len(starts), config.num_beams, pair.device
    width = max(len(s) for s in starts)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, s in enumerate(starts):  # left padding: every row's next token is at the end
        ids[i, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
        mask[i, width - len(s) :] = 1
    ids = ids.repeat_interleave(k, dim=0).to(dev)  # [n * k, width]
    mask = mask.repeat_interleave(k, dim=0).to(dev)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    beam_scores = torch.zeros((n, k), device=dev)
    beam_scores[:, 1:] = NEG_INF  # all beams start equal: only the first expands at step 0
    tokens = torch.zeros((n * k, 0), dtype=torch.long, device=dev)
    finished: list[list[Hypothesis]] = [[] for _ in range(n)]
    done = [False] * n
    caches: dict[str, Any] = {"tuned": None, "base": None}
    stop = config.eos == "stop"
    n_cand = 1 if k == 1 else 2 * k
    for t in range(config.max_new_tokens):
        lt, caches["tuned"] = _step(pair.tuned, pair, ids, mask, pos, caches["tuned"])
        lb = None
        if config.gamma != 0.0:
            lb, caches["base"] = _step(pair.base, pair, ids, mask, pos, caches["base"])
        if config.eos == "ban":
            lt = lt.float().index_fill(-1, torch.tensor([eos_id], device=lt.device), NEG_INF)
        scores = contrastive_scores(lt, lb, gamma=config.gamma, alpha=config.alpha).to(dev)
        vocab = scores.shape[-1]
        flat = (beam_scores[:, :, None] + scores.view(n, k, vocab)).view(n, k * vocab)
        flat = flat.nan_to_num(nan=NEG_INF, posinf=torch.finfo(flat.dtype).max)
        keys = flat / config.temperature + gumbel_like(flat, generator) if config.do_sample else flat
        cidx = keys.topk(min(n_cand, k * vocab), dim=-1).indices  # [n, n_cand]
        cscore = flat.gather(-1, cidx)
        if config.do_sample and n_cand > 1:  # keep the best of the sampled candidates
            order = cscore.argsort(dim=-1, descending=True, stable=True)
            cidx, cscore = cidx.gather(-1, order), cscore.gather(-1, order)
        sel_beam, sel_tok, sel_score = _select(
            cidx.tolist(), cscore.tolist(), vocab, k, t, tokens, eos_id if stop else None, finished, done
        )
        index = (torch.arange(n, device=dev)[:, None] * k + torch.tensor(sel_beam, device=dev)).view(-1)
        new = torch.tensor(sel_tok, device=dev).view(-1, 1)  # [n * k, 1]
        beam_scores = torch.tensor(sel_score, device=dev, dtype=torch.float32)
        tokens = torch.cat([tokens.index_select(0, index), new], dim=-1)
        mask = torch.cat([mask.index_select(0, index), mask.new_ones(n * k, 1)], dim=-1)
        pos = pos.index_select(0, index)[:, -1:] + 1
        ids = new
        if k > 1:
            caches = {side: _reorder(c, index) for side, c in caches.items()}
        if progress is not None:
            progress(t + 1)
        if all(done):
            break
    return [_best(finished[b], tokens[b * k : (b + 1) * k], beam_scores[b]) for b in range(n)]


def _select(
    cidx: list[list[int]],
    cscore: list[list[float]],
    vocab: int,
    k: int,
    t: int,
    tokens: torch.Tensor,
    stop_id: int | None,
    finished: list[list[Hypothesis]],
    done: list[bool],
) -> tuple[list[list[int]], list[list[int]], list[list[float]]]:
    """The next beams of every example (and the hypotheses that finish at EOS)."""
    beams, toks, scores = [], [], []
    for b, (cands, vals) in enumerate(zip(cidx, cscore, strict=True)):
        keep: list[tuple[int, int, float]] = []
        for rank, (c, v) in enumerate(zip(cands, vals, strict=True)):
            if len(keep) == k or done[b]:
                break
            if not math.isfinite(v):
                continue
            beam, tok = divmod(c, vocab)
            if stop_id is not None and tok == stop_id:
                if rank < k:  # as in transformers: only EOS among the best k finishes a hypothesis
                    prev = tuple(tokens[b * k + beam].tolist())
                    finished[b].append(Hypothesis((*prev, tok), v))
                continue
            keep.append((beam, tok, v))
        if stop_id is not None and len(finished[b]) >= k:
            done[b] = True
        while len(keep) < k:  # dead rows: fed padding-like tokens, never chosen again
            keep.append((0, stop_id if stop_id is not None else 0, NEG_INF))
        beams.append([x[0] for x in keep])
        toks.append([x[1] for x in keep])
        scores.append([x[2] for x in keep])
    return beams, toks, scores


def _best(finished: list[Hypothesis], tokens: torch.Tensor, scores: torch.Tensor) -> Hypothesis:
    running = [
        Hypothesis(tuple(row.tolist()), float(s))
        for row, s in zip(tokens, scores, strict=True)
        if math.isfinite(float(s))
    ]
    pool = finished + running
    if not pool:  # cannot happen: the tuned argmax is always plausible
        raise RuntimeError("contrastive decoding kept no hypothesis")
    return max(pool, key=lambda h: h.mean)


def make_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    """A random generator on ``device`` seeded with ``seed`` (None: torch's global RNG)."""
    if seed is None:
        return None
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def pad_and_eos(tok: Any) -> tuple[int, int | None]:
    """``(pad id, eos id)`` of a tokenizer (EOS pads when there is no pad token)."""
    eos = getattr(tok, "eos_token_id", None)
    pad = getattr(tok, "pad_token_id", None)
    if pad is None:
        pad = eos if eos is not None else 0
    return int(pad), None if eos is None else int(eos)


def to_example(tok: Any, hyp: Hypothesis, prompt: str | None, step: int, config: CGEConfig) -> Example:
    """An :class:`Example` from a decoded hypothesis (a final EOS of ``eos="stop"`` not in the text)."""
    _, eos = pad_and_eos(tok)
    shown = hyp.tokens[:-1] if config.eos == "stop" and hyp.tokens and hyp.tokens[-1] == eos else hyp.tokens
    text = tok.decode(list(shown), skip_special_tokens=False)
    return Example(str(text), hyp.mean, hyp.total, prompt, step, hyp.tokens)


def example_prompts(n: int | None, prompts: Sequence[str] | None) -> list[str | None]:
    """The prompt of each example: ``n`` from BOS, or the prompts cycled to ``n`` (default: each once)."""
    if prompts is not None and not prompts:
        raise InputError("no prompts given: pass at least one, or None to generate from BOS")
    if n is None:
        if prompts is None:
            raise InputError("pass the number of examples n, or prompts")
        n = len(prompts)
    if n < 1:
        raise InputError(f"n={n}: the number of examples must be >= 1")
    if prompts is None:
        return [None] * n
    return [prompts[i % len(prompts)] for i in range(n)]


def generate_with_pair(
    pair: ContrastPair,
    tok: Any,
    prompts: Sequence[str | None],
    config: CGEConfig,
    *,
    generator: torch.Generator | None = None,
    progress: Progress | None = None,
) -> list[Example]:
    """Contrastive examples for each prompt (None: from BOS), batched ``config.batch_size`` at a time."""
    pad, eos = pad_and_eos(tok)
    batches = list(chunks(list(range(len(prompts))), config.batch_size))
    out: list[Example] = []
    for b, idx in enumerate(batches):
        starts = [start_ids(tok, prompts[i]) for i in idx]

        def tick(t: int, b: int = b) -> None:
            if progress is not None:
                done = len(out)
                progress(f"examples {done}/{len(prompts)}", b * config.max_new_tokens + t,
                         len(batches) * config.max_new_tokens)

        hyps = decode(pair, starts, config, pad_id=pad, eos_id=eos, generator=generator, progress=tick)
        out.extend(to_example(tok, h, prompts[i], i, config) for i, h in zip(idx, hyps, strict=True))
    if progress is not None:
        progress(f"examples {len(out)}/{len(prompts)}", len(batches) * config.max_new_tokens,
                 len(batches) * config.max_new_tokens)
    return out


def cge_generate(
    base: nn.Module,
    tuned: TunedSpec,
    tok: Any,
    *,
    n: int | None = None,
    prompts: Sequence[str] | None = None,
    config: CGEConfig | None = None,
    seed: int | None = None,
    tuned_tokenizer: Any = None,
    progress: Progress | None = None,
) -> list[Example]:
    """Generate ``n`` examples of what is new in the tuned model (CGE without updates to the base).

    Args:
        base: the base model (not modified).
        tuned: a second model, :class:`~audit.tuned.TunedWeights`, or a path
            (full fine-tune, peft LoRA adapter, editkit edit).
        tok: the tokenizer both models share.
        n: number of examples (default: one per prompt).
        prompts: prompts to continue, cycled to ``n``; None: from BOS.
        config: scores and decoding (published defaults).
        seed: seed of the sampling generator (None: torch's global RNG).
        tuned_tokenizer: the tuned model's tokenizer when it is not saved with it (checked).
        progress: ``progress(stage, done, total)`` after every decoding step.

    Returns:
        One :class:`Example` per prompt, in order.

    Raises:
        InputError: bad settings, tuned weights that do not fit, or tokenizers that differ.

    >>> examples = cge_generate(base, "runs/lora", tok, n=4, seed=0)   # doctest: +SKIP
    >>> max(examples, key=lambda e: e.score).text                      # doctest: +SKIP
    """
    cfg = config or CGEConfig()
    plan = example_prompts(n, prompts)
    with contrast_pair(base, tuned, tok, tuned_tokenizer=tuned_tokenizer) as pair:
        generator = make_generator(seed, pair.device)
        return generate_with_pair(pair, tok, plan, cfg, generator=generator, progress=progress)
