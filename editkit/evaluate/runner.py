"""``evaluate``: every editing metric for a model on a list of edit requests.

Locality and generation-locality compare against the *unedited* model: pass
the :class:`EvalResult` of the unedited model as ``baseline``. KL drift needs
the unedited model's distributions: pass ``base`` (a model, or a function
returning a context manager in which the model acts unedited).

>>> before = evaluate(model, tok, requests)                    # doctest: +SKIP
>>> # ... edit the model ...
>>> after = evaluate(model, tok, requests, baseline=before)    # doctest: +SKIP
>>> after.aggregate["locality"]                                # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from editkit.evaluate.drift import BaseSpec, DriftResult, reference_drift
from editkit.evaluate.fluency import ngram_entropy
from editkit.evaluate.generation import (
    STOP_STRINGS,
    cut_at_stop,
    decode_completion,
    exact_match,
    greedy_generate,
    normalize_answer,
)
from editkit.evaluate.metrics import harmonic_mean, mean
from editkit.evaluate.scoring import PairScore, agreement, score_pairs
from editkit.requests import EditRequest

Progress = Callable[[str, int, int], None]


@dataclass
class EvalConfig:
    """What to compute, and how.

    Attributes:
        batch_size: pairs per forward pass.
        padding_side: padding for teacher-forced scoring (results do not depend on it).
        compare: how ES/PS/NS compare two targets: ``"mean"`` compares mean per-token
            log-probabilities (ROME's CounterFact code), ``"sum"`` whole-sequence probabilities.
        generation: compute the generation exact-match metrics.
        max_new_tokens: generation budget for exact match (the WILD protocol uses 32).
        fluency: compute n-gram-entropy fluency from the edit prompts.
        fluency_tokens: tokens generated per edit prompt for fluency.
        max_ref_length: tokens per reference passage for perplexity/KL.
    """

    batch_size: int = 32
    padding_side: Literal["left", "right"] = "right"
    compare: Literal["mean", "sum"] = "mean"
    generation: bool = True
    max_new_tokens: int = 32
    fluency: bool = True
    fluency_tokens: int = 64
    max_ref_length: int = 128

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.compare not in ("mean", "sum"):
            raise ValueError("compare must be 'mean' or 'sum'")


@dataclass
class EvalResult:
    """Per-request metrics, their aggregates, reference-text drift and timings.

    ``neighbor_argmax`` and ``neighbor_generations`` keep what this model
    predicted on each neighborhood prompt so that a later evaluation can use
    this one as its baseline.
    """

    per_request: list[dict[str, Any]]
    aggregate: dict[str, float | None]
    drift: DriftResult | None
    timings: dict[str, float]
    config: EvalConfig
    neighbor_argmax: list[list[tuple[int, ...]]] = field(default_factory=list)
    neighbor_generations: list[list[str]] = field(default_factory=list)


def _better(a: PairScore, b: PairScore, compare: str) -> bool:
    if compare == "sum":
        return a.sum_logprob > b.sum_logprob
    return a.mean_logprob > b.mean_logprob


class _Pairs:
    """Collects every (prompt, target) pair once, so all are scored in one batched pass."""

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.targets: list[str] = []
        self.scores: list[PairScore] = []

    def add(self, prompt: str, target: str) -> int:
        self.prompts.append(prompt)
        self.targets.append(target)
        return len(self.prompts) - 1

    def __getitem__(self, i: int) -> PairScore:
        return self.scores[i]


def evaluate(
    model: Any,
    tok: Any,
    requests: Sequence[EditRequest],
    *,
    config: EvalConfig | None = None,
    baseline: EvalResult | None = None,
    reference_texts: Sequence[str] | None = None,
    base: BaseSpec | None = None,
    progress: Progress | None = None,
) -> EvalResult:
    """Compute every editing metric for ``model`` on ``requests``.

    Args:
        model, tok: a causal LM and its tokenizer.
        requests: the edit requests (their ``target_new`` is what an edit should teach).
        config: what to compute; defaults to everything.
        baseline: the unedited model's result on the same requests, for locality.
        reference_texts: passages for perplexity (and KL when ``base`` is given).
        base: the unedited model, or a context-manager factory that makes ``model`` act unedited.
        progress: optional callback ``(stage, done, total)``.

    Returns:
        An :class:`EvalResult`; metrics that cannot be computed (no
        ``target_true``, no baseline, no paraphrases...) are ``None``.
    """
    cfg = config or EvalConfig()
    reqs = list(requests)
    if baseline is not None and len(baseline.per_request) != len(reqs):
        raise ValueError("baseline was computed on a different number of requests")
    step = progress or (lambda stage, done, total: None)
    stages = 1 + cfg.generation + cfg.fluency + (reference_texts is not None)
    done = 0
    timings: dict[str, float] = {}

    # 1. Teacher-forced scoring: every pair in one batched pass.
    step("scoring targets", done, stages)
    t0 = time.perf_counter()
    pairs = _Pairs()
    plan = []
    for r in reqs:
        entry: dict[str, Any] = {
            "new": pairs.add(r.prompt, r.target_new),
            "true": pairs.add(r.prompt, r.target_true) if r.target_true else None,
            "para": [
                (pairs.add(p, r.target_new), pairs.add(p, r.target_true) if r.target_true else None)
                for p in r.paraphrase_prompts
            ],
            "nb": [(pairs.add(n.prompt, n.target), pairs.add(n.prompt, r.target_new)) for n in r.neighborhood_prompts],
        }
        plan.append(entry)
    pairs.scores = score_pairs(
        model, tok, pairs.prompts, pairs.targets, batch_size=cfg.batch_size, padding_side=cfg.padding_side
    )
    timings["scoring"] = time.perf_counter() - t0
    done += 1

    per_request: list[dict[str, Any]] = []
    neighbor_argmax: list[list[tuple[int, ...]]] = []
    for k, (r, e) in enumerate(zip(reqs, plan, strict=True)):
        new = pairs[e["new"]]
        true = pairs[e["true"]] if e["true"] is not None else None
        nb_argmax = [pairs[i].argmax_ids for i, _ in e["nb"]]
        neighbor_argmax.append(nb_argmax)
        row: dict[str, Any] = {
            "id": r.id if r.id is not None else str(k),
            "prompt": r.prompt,
            "target_new": r.target_new,
            "target_true": r.target_true,
            "reliability": new.token_accuracy,
            "true_accuracy": true.token_accuracy if true else None,
            "generalization": mean([pairs[i].token_accuracy for i, _ in e["para"]]),
            "neighborhood_accuracy": mean([pairs[i].token_accuracy for i, _ in e["nb"]]),
            "locality": (
                mean([agreement(c, b) for c, b in zip(nb_argmax, baseline.neighbor_argmax[k], strict=True)])
                if baseline is not None and e["nb"]
                else None
            ),
            "efficacy_score": float(_better(new, true, cfg.compare)) if true else None,
            "paraphrase_score": (
                mean([float(_better(pairs[n], pairs[t], cfg.compare)) for n, t in e["para"]])
                if true and e["para"]
                else None
            ),
            "neighborhood_score": mean(
                [float(_better(pairs[t], pairs[n], cfg.compare)) for t, n in e["nb"]]
            ),
            "logprob_new": new.mean_logprob,
            "logprob_true": true.mean_logprob if true else None,
        }
        per_request.append(row)

    # 2. Generation exact match (cut at the first stop, normalized).
    neighbor_generations: list[list[str]] = [[] for _ in reqs]
    if cfg.generation:
        step("generating answers", done, stages)
        t0 = time.perf_counter()
        prompts: list[str] = []
        for r in reqs:
            prompts.extend([r.prompt, *r.paraphrase_prompts, *(n.prompt for n in r.neighborhood_prompts)])
        gens = greedy_generate(
            model, tok, prompts, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, stop_strings=STOP_STRINGS
        )
        texts = iter([decode_completion(tok, g) for g in gens])
        for k, (r, row) in enumerate(zip(reqs, per_request, strict=True)):
            own = next(texts)
            para = [next(texts) for _ in r.paraphrase_prompts]
            nbs = [next(texts) for _ in r.neighborhood_prompts]
            neighbor_generations[k] = [normalize_answer(cut_at_stop(t)) for t in nbs]
            row["completion"] = cut_at_stop(own).strip()
            row["gen_reliability"] = float(exact_match(own, r.target_new))
            row["gen_generalization"] = mean([float(exact_match(t, r.target_new)) for t in para])
            row["gen_neighborhood"] = mean(
                [float(exact_match(t, n.target)) for t, n in zip(nbs, r.neighborhood_prompts, strict=True)]
            )
            row["gen_locality"] = (
                mean(
                    [
                        float(a == b)
                        for a, b in zip(neighbor_generations[k], baseline.neighbor_generations[k], strict=True)
                    ]
                )
                if baseline is not None and baseline.neighbor_generations and nbs
                else None
            )
        timings["generation"] = time.perf_counter() - t0
        done += 1

    # 3. Fluency: longer free generations from the edit prompts.
    if cfg.fluency:
        step("generating for fluency", done, stages)
        t0 = time.perf_counter()
        gens = greedy_generate(
            model, tok, [r.prompt for r in reqs], max_new_tokens=cfg.fluency_tokens, batch_size=cfg.batch_size
        )
        for row, g in zip(per_request, gens, strict=True):
            row["fluency"] = ngram_entropy(decode_completion(tok, g))
        timings["fluency"] = time.perf_counter() - t0
        done += 1

    # 4. Reference-text drift.
    drift = None
    if reference_texts is not None:
        step("reference text perplexity", done, stages)
        t0 = time.perf_counter()
        drift = reference_drift(
            model, tok, reference_texts, base=base, batch_size=max(1, cfg.batch_size // 2), max_length=cfg.max_ref_length
        )
        timings["reference_text"] = time.perf_counter() - t0
        done += 1
    step("done", stages, stages)

    return EvalResult(
        per_request=per_request,
        aggregate=aggregate(per_request, drift),
        drift=drift,
        timings=timings,
        config=cfg,
        neighbor_argmax=neighbor_argmax,
        neighbor_generations=neighbor_generations,
    )


PER_REQUEST_METRICS = (
    "reliability",
    "generalization",
    "locality",
    "neighborhood_accuracy",
    "true_accuracy",
    "efficacy_score",
    "paraphrase_score",
    "neighborhood_score",
    "gen_reliability",
    "gen_generalization",
    "gen_neighborhood",
    "gen_locality",
    "fluency",
)


def aggregate(per_request: Sequence[dict[str, Any]], drift: DriftResult | None = None) -> dict[str, float | None]:
    """Macro averages over requests (a request without a metric is skipped), plus drift."""
    agg: dict[str, float | None] = {}
    for name in PER_REQUEST_METRICS:
        agg[name] = mean([row[name] for row in per_request if row.get(name) is not None])
    agg["score"] = harmonic_mean(
        [agg["efficacy_score"], agg["paraphrase_score"], agg["neighborhood_score"]]  # type: ignore[list-item]
    )
    agg["perplexity"] = drift.perplexity if drift else None
    agg["kl_drift"] = drift.kl_mean if drift else None
    return agg


def config_dict(cfg: EvalConfig) -> dict[str, Any]:
    """The config as plain data (for reports)."""
    return asdict(cfg)
