"""Settings of contrastive generative exploration, with the published defaults.

Defaults follow Isonuma and Titov (ICLR 2025) as summarized in
``specs/audit.md``: ``gamma = 1``, ``alpha = 0.1``, beam-sample with 4 beams,
256 new tokens with EOS disabled; iterative CGE takes one AdamW step
(lr 5e-5) per generated example, on all parameters or on a rank-8 LoRA
adapter on the attention projections.

>>> CGEConfig().num_beams, CGEConfig().alpha
(4, 0.1)
>>> CGEConfig(alpha=2.0)
Traceback (most recent call last):
...
editkit.errors.InputError: alpha=2.0 must lie in [0, 1] (the plausibility cut is alpha * max p_tuned)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from editkit.errors import InputError

EosMode = Literal["ignore", "stop", "ban"]
EOS_MODES: tuple[str, ...] = ("ignore", "stop", "ban")
OPTIMIZERS: tuple[str, ...] = ("adamw", "sgd")
TRAIN_MODES: tuple[str, ...] = ("full", "lora")


@dataclass(frozen=True)
class CGEConfig:
    """How each example is decoded.

    Attributes:
        gamma: weight of the (current) base model's log-probability in the
            score ``log p_T - gamma * log p_B'`` (published: 1; 0 decodes the
            tuned model alone).
        alpha: plausibility cut: tokens with ``p_T < alpha * max p_T`` score
            ``-inf`` (published: 0.1; 0 keeps every token).
        num_beams: beams per example (published: 4, beam-sample).
        do_sample: sample (beam-sample with ``num_beams > 1``); False decodes
            greedily (``num_beams = 1``) or by beam search.
        temperature: divides the scores before sampling (sampling only).
        max_new_tokens: new tokens per example (published: 256).
        eos: ``"ignore"``: EOS is an ordinary token and every example is
            ``max_new_tokens`` long (published: EOS disabled); ``"stop"``: an
            example ends at EOS; ``"ban"``: EOS is never generated (removed
            from the tuned distribution before the plausibility cut).
        batch_size: examples decoded together (each with ``num_beams`` rows).
    """

    gamma: float = 1.0
    alpha: float = 0.1
    num_beams: int = 4
    do_sample: bool = True
    temperature: float = 1.0
    max_new_tokens: int = 256
    eos: EosMode = "ignore"
    batch_size: int = 8

    def __post_init__(self) -> None:
        if not math.isfinite(self.gamma) or self.gamma < 0:
            raise InputError(f"gamma={self.gamma} must be a finite number >= 0 (published: 1)")
        if not 0.0 <= self.alpha <= 1.0:
            raise InputError(
                f"alpha={self.alpha} must lie in [0, 1] (the plausibility cut is alpha * max p_tuned)"
            )
        if self.num_beams < 1:
            raise InputError(f"num_beams={self.num_beams} must be >= 1 (published: 4)")
        if not self.temperature > 0 or not math.isfinite(self.temperature):
            raise InputError(f"temperature={self.temperature} must be > 0 (use do_sample=False for greedy)")
        if self.max_new_tokens < 1:
            raise InputError(f"max_new_tokens={self.max_new_tokens} must be >= 1 (published: 256)")
        if self.eos not in EOS_MODES:
            raise InputError(f"eos={self.eos!r}: choose one of {', '.join(EOS_MODES)}")
        if self.batch_size < 1:
            raise InputError(f"batch_size={self.batch_size} must be >= 1")


@dataclass(frozen=True)
class IterativeConfig:
    """The optimizer step iterative CGE takes on the working copy ``B'`` after each example.

    Attributes:
        lr: learning rate (published: 5e-5).
        optimizer: ``"adamw"`` (published; weight decay 0, as the Hugging Face
            Trainer's default) or ``"sgd"``.
        train: ``"full"`` (every parameter of the working copy) or ``"lora"``
            (a peft LoRA adapter on the working copy; the optimizer state is
            then that of the adapter only).
        lora_r: LoRA rank (published: 8).
        lora_alpha: LoRA alpha (not published; peft's default, 8).
        lora_targets: module-name suffixes for the adapter; None: the attention
            projections of the architecture (``editkit.arch``: q/k/v and output).
    """

    lr: float = 5e-5
    optimizer: str = "adamw"
    train: str = "full"
    lora_r: int = 8
    lora_alpha: int = 8
    lora_targets: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise InputError(f"lr={self.lr} must be > 0 (published: 5e-5)")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"optimizer={self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.train not in TRAIN_MODES:
            raise InputError(f"train={self.train!r}: choose one of {', '.join(TRAIN_MODES)}")
        if self.lora_r < 1 or self.lora_alpha <= 0:
            raise InputError(f"lora_r={self.lora_r}, lora_alpha={self.lora_alpha}: both must be positive")
