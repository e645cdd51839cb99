"""The refusal audit: did a fine-tune change when the model refuses, and its refusal direction?

For the base and the tuned model (same tokenizer and architecture):

1. generate greedy responses to the harmful and harmless prompts with the
   chat template (:func:`probes.chat.generate_responses`);
2. judge every response with the substring judge and, if given, the text
   classifier; refusal rates get 95% Wilson intervals, and the change
   (tuned - base) a paired bootstrap interval over prompts;
3. compute each model's refusal direction per block input (mean harmful -
   mean harmless activation at one post-instruction position, the last prompt
   token by default) and report the cosine between base and tuned per layer;
4. project the prompts' activations in both models onto the base model's unit
   direction, per layer.

A fine-tune that quietly undid safety training shows as a drop in the harmful
refusal rate and, usually, a smaller projection of harmful prompts onto the
base direction in the tuned model (Lermen et al. 2023; Arditi et al. 2024).

>>> result = refusal_audit(base, tuned, tok, harmful, harmless, classifier=clf)    # doctest: +SKIP
>>> result.summary()["harmful_refusal"]["substring"]                                # doctest: +SKIP
{'base': 0.85, 'tuned': 0.05, 'change': -0.8}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audit.refusal.results import ROLES, SETS, RefusalAuditResult
from editkit.arch import hidden_size, num_layers
from editkit.errors import InputError
from probes.activations import collect_activations, unwrap
from probes.chat import generate_responses
from probes.directions import directions_from_activations
from probes.judges import SubstringJudge
from probes.metrics import Estimate, bootstrap_indices, wilson_interval
from probes.text_clf import TextRefusalClassifier

Progress = Callable[[str, int, int], None]


def _classifier(classifier: TextRefusalClassifier | str | Path | None) -> TextRefusalClassifier | None:
    if classifier is None or isinstance(classifier, TextRefusalClassifier):
        return classifier
    from probes.store import load_probe

    probe, _ = load_probe(classifier)
    if not isinstance(probe, TextRefusalClassifier):
        raise InputError(f"{classifier}: a {probe.kind} probe; the refusal audit judges responses with a text classifier")
    return probe


def _rate(verdicts: np.ndarray) -> Estimate:
    k, n = int(verdicts.sum()), len(verdicts)
    lo, hi = wilson_interval(k, n)
    return Estimate(k / n if n else math.nan, lo, hi)


def _paired_change(base: np.ndarray, tuned: np.ndarray, n_boot: int, seed: int) -> Estimate:
    diff = tuned.astype(np.float64) - base.astype(np.float64)
    value = float(diff.mean()) if len(diff) else math.nan
    if n_boot <= 0 or not len(diff):
        return Estimate(value)
    stats = [float(diff[idx].mean()) for idx in bootstrap_indices(len(diff), n_boot, seed)]
    lo, hi = np.quantile(stats, [0.025, 0.975])
    return Estimate(value, float(lo), float(hi))


def _staged(progress: Progress | None, stage: str) -> Progress | None:
    """``progress`` reporting under a fixed stage name."""
    if progress is None:
        return None
    report = progress

    def update(_stage: str, done: int, total: int) -> None:
        report(stage, done, total)

    return update


def _check_pair(base: Any, tuned: Any) -> None:
    b, t = unwrap(base), unwrap(tuned)
    for name, fn in (("hidden size", hidden_size), ("number of layers", num_layers)):
        if fn(b) != fn(t):
            raise InputError(f"refusal audit: base and tuned models differ in {name} ({fn(b)} vs {fn(t)}); "
                             "the tuned model must be a fine-tune of the base")


def refusal_audit(
    base_lm: Any,
    tuned_lm: Any,
    tok: Any,
    harmful: Sequence[str],
    harmless: Sequence[str],
    *,
    classifier: TextRefusalClassifier | str | Path | None = None,
    judge: SubstringJudge | None = None,
    max_new_tokens: int = 64,
    batch_size: int = 8,
    chat: bool | None = None,
    system_prompt: str | None = None,
    direction_position: int = -1,
    layers: Sequence[int] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    impl: str = "nnsight",
    progress: Progress | None = None,
) -> RefusalAuditResult:
    """Refusal rates of base and tuned on harmful and harmless prompts, and their refusal directions.

    Args:
        base_lm, tuned_lm: the models (a peft model is used with its adapters on).
        tok: the tokenizer both share.
        harmful, harmless: prompt texts (see :func:`probes.data.load_instructions`).
        classifier: a text classifier (or a saved probe folder) judging responses, besides the substring judge.
        judge: the substring judge (default: Arditi et al.'s phrases).
        max_new_tokens: greedy generation length.
        chat, system_prompt: prompt formatting (default: the chat template when the tokenizer has one).
        direction_position: post-instruction position of the directions, as an
            offset from the end of the prompt (``-1``: the last prompt token).
        layers: block inputs for the direction comparison (default all).
        n_boot: bootstrap resamples for the change intervals.

    Raises:
        InputError: empty prompt sets, a model pair that does not match, a bad option.
    """
    if not harmful or not harmless:
        raise InputError(f"refusal audit: need harmful and harmless prompts (got {len(harmful)} and {len(harmless)})")
    if direction_position >= 0:
        raise InputError(f"refusal audit: direction_position is an offset from the end of the prompt (-1, -2, ...), got {direction_position}")
    _check_pair(base_lm, tuned_lm)
    judge = judge or SubstringJudge.from_set("arditi")
    clf = _classifier(classifier)
    models = {"base": base_lm, "tuned": tuned_lm}
    prompts = {"harmful": list(harmful), "harmless": list(harmless)}
    gen_kw: dict[str, Any] = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "chat": chat,
                              "system_prompt": system_prompt}

    responses: dict[str, dict[str, list[str]]] = {r: {} for r in ROLES}
    for role in ROLES:
        for s in SETS:
            responses[role][s] = generate_responses(models[role], tok, prompts[s], **gen_kw,
                                                    progress=_staged(progress, f"{role}: generating ({s})"))

    verdicts: dict[str, dict[str, dict[str, np.ndarray]]] = {r: {s: {} for s in SETS} for r in ROLES}
    probs: dict[str, dict[str, np.ndarray]] = {r: {} for r in ROLES}
    for role in ROLES:
        for s in SETS:
            verdicts[role][s]["substring"] = judge.predict(responses[role][s])
            if clf is not None:
                p = clf.predict_proba(prompts[s], responses[role][s])
                probs[role][s] = p
                verdicts[role][s]["classifier"] = (p >= clf.threshold).astype(np.int64)
    rates = {r: {s: {j: _rate(v) for j, v in verdicts[r][s].items()} for s in SETS} for r in ROLES}
    change = {s: {j: _paired_change(verdicts["base"][s][j], verdicts["tuned"][s][j], n_boot, seed)
                  for j in verdicts["base"][s]} for s in SETS}

    # refusal directions and projections
    n = num_layers(unwrap(base_lm))
    chosen = list(range(n)) if layers is None else sorted(set(layers))
    if any(not 0 <= layer < n for layer in chosen):
        raise InputError(f"refusal audit: layers are block inputs 0..{n - 1}, got {chosen}")
    act_kw: dict[str, Any] = {"layers": chosen, "positions": "post_instruction", "chat": chat,
                              "system_prompt": system_prompt, "batch_size": batch_size, "impl": impl}
    acts = {r: {s: collect_activations(models[r], tok, prompts[s], progress=progress, **act_kw) for s in SETS} for r in ROLES}
    k = min(a.n_positions for by_set in acts.values() for a in by_set.values())
    if -direction_position > k:
        raise InputError(f"refusal audit: direction_position {direction_position} is before the {k} post-instruction tokens")
    for by_set in acts.values():
        for a in by_set.values():
            a.hidden = a.hidden[:, :, -k:]
    dirs = {r: directions_from_activations(acts[r]["harmful"], acts[r]["harmless"]) for r in ROLES}
    cosine: list[float] = []
    norms: dict[str, list[float]] = {r: [] for r in ROLES}
    projection: dict[str, dict[str, list[float]]] = {r: {s: [] for s in SETS} for r in ROLES}
    for layer in chosen:
        vb = dirs["base"].get(layer, direction_position).to(torch.float64)
        vt = dirs["tuned"].get(layer, direction_position).to(torch.float64)
        nb, nt = float(vb.norm()), float(vt.norm())
        norms["base"].append(nb)
        norms["tuned"].append(nt)
        cosine.append(float(vb @ vt / (nb * nt)) if nb > 0 and nt > 0 else math.nan)
        for r in ROLES:
            for s in SETS:
                x = acts[r][s].at(layer, direction_position).to(torch.float64)  # [n, d]
                projection[r][s].append(float((x @ (vb / nb)).mean()) if nb > 0 else math.nan)

    per_prompt = []
    for role in ROLES:
        for s in SETS:
            for i, text in enumerate(prompts[s]):
                rec: dict[str, Any] = {"role": role, "set": s, "index": i, "prompt": text,
                                       "response": responses[role][s][i],
                                       "substring": int(verdicts[role][s]["substring"][i])}
                if clf is not None:
                    rec["classifier"] = int(verdicts[role][s]["classifier"][i])
                    rec["classifier_prob"] = round(float(probs[role][s][i]), 6)
                per_prompt.append(rec)
    settings = {"max_new_tokens": max_new_tokens, "chat": chat, "system_prompt": system_prompt,
                "direction_position": direction_position, "n_boot": n_boot, "seed": seed,
                "judge": judge.to_dict(), "classifier": None if clf is None else {"threshold": clf.threshold, **clf.train_info},
                "n_harmful": len(harmful), "n_harmless": len(harmless)}
    return RefusalAuditResult(rates, change, cosine, norms, projection, chosen, per_prompt, settings)
