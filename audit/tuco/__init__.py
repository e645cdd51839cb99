"""TuCo: how much of a tuned model's computation on a prompt is due to tuning (Nuti et al., ICML 2025).

Per prompt, on the tuned model's residual stream, every decoder block's update
is split exactly into a pre-training component (the base block on the tuned
stream) and a fine-tuning component (the rest); TuCo is the fine-tuning share
of their sums at the last prompt token, OutputCo the share of the final hidden
state that differs from the base model's. Steering scales the fine-tuning
component by ``alpha`` at every block and decoding step.

The tuned model may be a second whole model, a peft LoRA model (base blocks:
adapters off, no second copy) or tuned weights against the base (an editkit
edit, a full checkpoint, a LoRA folder, in-memory deltas). Two
implementations agree: forward hooks (the reference) and nnsight.

>>> from audit.tuco import tuco, steered_generate
>>> results = tuco(base, tuned, tok, prompts)                        # doctest: +SKIP
>>> gens = steered_generate(base, tuned, tok, prompts, alphas=[0.9, 1.1])   # doctest: +SKIP
"""

from __future__ import annotations

from audit.tuco.analysis import (
    Decomposition,
    Generation,
    TucoResult,
    base_final_hidden,
    decompose,
    outputco_scores,
    steered_generate,
    steered_logits,
    tuco,
    tuco_scores,
)
from audit.tuco.export import write_tuco_files
from audit.tuco.inputs import PromptBatch, encode_prompts, prompt_batch, read_prompts
from audit.tuco.pair import DeltaPair, ModelPair, PeftPair, TunedPair, tuned_pair
from audit.tuco.passes import RUNNERS

__all__ = [
    "RUNNERS",
    "DeltaPair",
    "Decomposition",
    "Generation",
    "ModelPair",
    "PeftPair",
    "PromptBatch",
    "TucoResult",
    "TunedPair",
    "base_final_hidden",
    "decompose",
    "encode_prompts",
    "outputco_scores",
    "prompt_batch",
    "read_prompts",
    "steered_generate",
    "steered_logits",
    "tuco",
    "tuco_scores",
    "tuned_pair",
    "write_tuco_files",
]
