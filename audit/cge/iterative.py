"""Iterative CGE: after each example, teach a working copy of the base model that example.

For ``n`` steps (published: 100): generate one example with the contrast
``log p_T - gamma * log p_B'``, then take one optimizer step on ``B'`` with the
causal-LM loss of that example (its generated tokens, given its prompt), so
that ``B'`` absorbs it and the next example must show something else. ``T``
stays frozen and the base model itself is never modified: ``B'`` is a deep
copy (with ``train="lora"``, a deep copy carrying a peft LoRA adapter, so the
optimizer state covers the adapter only). Memory: the base, the tuned side
(see :mod:`audit.cge.pair`), the working copy and the optimizer state
(AdamW: two fp32 tensors per trained parameter).

The working copy is kept in eval mode (no dropout), so that a seed
reproduces a run.

>>> result = iterative_cge(base, "runs/ft", tok, n=100, seed=0)    # doctest: +SKIP
>>> [e.text for e in result.examples[:3]]                          # doctest: +SKIP
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from audit.cge.config import CGEConfig, IterativeConfig
from audit.cge.decode import (
    Example,
    Progress,
    decode,
    example_prompts,
    make_generator,
    pad_and_eos,
    start_ids,
    to_example,
)
from audit.cge.pair import TunedSpec, contrast_pair
from editkit.batching import model_device
from editkit.errors import InputError


@dataclass
class IterativeResult:
    """What iterative CGE produced.

    Attributes:
        examples: one example per step, in order.
        log: per step: ``step``, ``loss_before`` and ``loss_after`` (mean NLL of
            the example's generated tokens under ``B'`` before and after the step).
        working: the updated working copy ``B'`` (only with ``keep_working=True``).
    """

    examples: list[Example]
    log: list[dict[str, Any]] = field(default_factory=list)
    working: nn.Module | None = None


def attention_targets(model: nn.Module) -> list[str]:
    """Module-name suffixes of the attention projections (q/k/v and output), from :mod:`editkit.arch`."""
    from editkit.arch import get_arch

    spec = get_arch(model)
    return [*spec.attn_in, spec.attn_out]


def working_copy(base: nn.Module, config: IterativeConfig) -> nn.Module:
    """A trainable deep copy of ``base`` (with a fresh peft LoRA adapter for ``train="lora"``).

    The copy is made before anything wraps ``base``; ``base`` is not touched.

    Raises:
        InputError: a device map offloads some of ``base``'s weights (they cannot be trained).
    """
    from editkit.placement import offloaded_parameters

    offloaded = offloaded_parameters(base)
    if offloaded:
        raise InputError(
            f"iterative CGE trains a copy of the base model, but its device map offloads {len(offloaded)} weights "
            f"(e.g. {offloaded[0]}), which cannot be trained; use a device map that keeps every layer on a device, "
            "or run CGE without --iterative"
        )
    work = copy.deepcopy(base)
    work.eval()
    if config.train == "full":
        for p in work.parameters():
            p.requires_grad_(True)
        return work
    from peft import LoraConfig, get_peft_model

    targets = list(config.lora_targets) if config.lora_targets else attention_targets(base)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0, target_modules=targets)
    try:
        model = get_peft_model(work, lora)
    except ValueError as exc:
        raise InputError(f"LoRA on the working copy: {str(exc).splitlines()[0]}") from None
    model.eval()
    return model


def make_optimizer(model: nn.Module, config: IterativeConfig) -> torch.optim.Optimizer:
    """AdamW (weight decay 0) or SGD over the working copy's trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)


def example_loss(model: nn.Module, ids: Sequence[int], n_prompt: int) -> torch.Tensor:
    """Mean NLL of the tokens after the first ``n_prompt`` of ``ids`` (the causal-LM loss of an example)."""
    inputs = torch.tensor([list(ids)], dtype=torch.long, device=model_device(model))
    logits = model(input_ids=inputs, use_cache=False).logits[0, n_prompt - 1 : -1].float()
    return nn.functional.cross_entropy(logits, inputs[0, n_prompt:])


def update_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, ids: Sequence[int], n_prompt: int
) -> tuple[float, float]:
    """One optimizer step raising ``model``'s likelihood of ``ids[n_prompt:]``; ``(loss before, loss after)``."""
    optimizer.zero_grad(set_to_none=True)
    with torch.enable_grad():
        loss = example_loss(model, ids, n_prompt)
        loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        after = example_loss(model, ids, n_prompt)
    return loss.item(), after.item()


def iterative_cge(
    base: nn.Module,
    tuned: TunedSpec,
    tok: Any,
    *,
    n: int | None = 100,
    prompts: Sequence[str] | None = None,
    config: CGEConfig | None = None,
    update: IterativeConfig | None = None,
    seed: int | None = None,
    tuned_tokenizer: Any = None,
    keep_working: bool = False,
    progress: Progress | None = None,
) -> IterativeResult:
    """Iterative CGE: ``n`` examples, each followed by an optimizer step on a working copy of the base.

    Args:
        base: the base model (never modified).
        tuned: a second model, tuned weights, or a path (see :func:`audit.cge.cge_generate`).
        tok: the shared tokenizer.
        n: number of steps, one example each (published: 100; None: one per prompt).
        prompts: prompts cycled over the steps; None: from BOS.
        config: scores and decoding of each example.
        update: optimizer, learning rate, full or LoRA training.
        seed: seed of the sampling generator (None: torch's global RNG).
        tuned_tokenizer: the tuned model's tokenizer when it is not saved with it (checked).
        keep_working: return the updated working copy in the result.
        progress: ``progress(stage, done, total)`` after every decoding step.

    Raises:
        InputError: bad settings, tuned weights that do not fit, or tokenizers that differ.
    """
    cfg = config or CGEConfig()
    upd = update or IterativeConfig()
    plan = example_prompts(n, prompts)
    pad, eos = pad_and_eos(tok)
    work = working_copy(base, upd)  # before contrast_pair may wrap the base with a LoRA adapter
    optimizer = make_optimizer(work, upd)
    examples: list[Example] = []
    log: list[dict[str, Any]] = []
    total = len(plan) * cfg.max_new_tokens
    with contrast_pair(base, tuned, tok, reference=work, tuned_tokenizer=tuned_tokenizer) as pair:
        generator = make_generator(seed, pair.device)
        for step, prompt in enumerate(plan):
            start = start_ids(tok, prompt)

            def tick(t: int, step: int = step) -> None:
                if progress is not None:
                    progress(f"step {step + 1}/{len(plan)}", step * cfg.max_new_tokens + t, total)

            (hyp,) = decode(pair, [start], cfg, pad_id=pad, eos_id=eos, generator=generator, progress=tick)
            examples.append(to_example(tok, hyp, prompt, step, cfg))
            before, after = update_step(work, optimizer, (*start, *hyp.tokens), len(start))
            log.append({"step": step, "loss_before": before, "loss_after": after})
    if progress is not None:
        progress(f"step {len(plan)}/{len(plan)}", total, total)
    return IterativeResult(examples, log, work if keep_working else None)
