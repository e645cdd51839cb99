"""CGE: contrastive generative exploration (Isonuma and Titov, ICLR 2025).

Without the fine-tuning data, generate examples of what is new in it from the
base model B and the tuned model T alone: decode with the score
``log p_T - gamma * log p_B'`` on the tokens the tuned model finds plausible
(:func:`cge_generate`); iteratively, teaching a working copy ``B'`` of the
base model each example so that the next one must differ
(:func:`iterative_cge`); and rank real texts by their sequence-level novelty
(:func:`rank_texts`). The tuned model is a second model, a full fine-tune, a
peft LoRA adapter or an editkit edit (:mod:`audit.tuned`); both models must
share one tokenizer.

>>> from audit.cge import CGEConfig, cge_generate, rank_texts
>>> examples = cge_generate(base, "runs/lora", tok, n=8, config=CGEConfig(max_new_tokens=64), seed=0)  # doctest: +SKIP
>>> ranked = rank_texts(base, "runs/lora", tok, ["a text", "another"])                               # doctest: +SKIP
"""

from __future__ import annotations

from audit.cge.config import CGEConfig, IterativeConfig
from audit.cge.decode import Example, Hypothesis, cge_generate, contrastive_scores, decode
from audit.cge.iterative import IterativeResult, iterative_cge, working_copy
from audit.cge.novelty import TextScore, novelty_scores, rank_texts
from audit.cge.pair import ContrastPair, LMView, check_same_tokenizer, contrast_pair

__all__ = [
    "CGEConfig",
    "ContrastPair",
    "Example",
    "Hypothesis",
    "IterativeConfig",
    "IterativeResult",
    "LMView",
    "TextScore",
    "cge_generate",
    "check_same_tokenizer",
    "contrast_pair",
    "contrastive_scores",
    "decode",
    "iterative_cge",
    "novelty_scores",
    "rank_texts",
    "working_copy",
]
