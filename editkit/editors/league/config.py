"""Options shared by every editor trained inside a deviation league (sense, finetune, lora)."""

from __future__ import annotations

from dataclasses import dataclass

from editkit.editors.config import EditorConfig, option


@dataclass(frozen=True)
class LeagueConfig(EditorConfig):
    """The training loop's options (Hewitt et al., 2024: the same for every method they compare).

    The published sweeps (Backpack-GPT2) train about 10 epochs with batch 1
    and 5-step gradient accumulation, a KL weight around 0.1-1, and accept a
    checkpoint only inside the league ``general loss < initial x (1 + eps)``,
    eps in {1e-3, 1e-4, 1e-5}. Learning rates are swept per method.

    >>> LeagueConfig().league
    0.001
    """

    lr: float = option("Adam learning rate", 3e-4)
    epochs: int = option("epochs over all examples", 10)
    batch_size: int = option("examples per optimizer step", 5)
    kl_weight: float = option("weight w of w * KL(p_orig || p_new) on a general-text passage each step (0: off)", 0.2)
    kl_passages: int = option("general passages (from the start of the general text) for the KL term", 20)
    kl_batch: int = option("general passages per KL term", 1)
    league: float | None = option(
        "deviation league eps: a checkpoint counts only if its held-out general loss < initial x (1 + eps) "
        "(none: every checkpoint counts)",
        1e-3,
    )
    league_passages: int = option("held-out general passages (from the end of the general text) for the league", 10)
    eval_every: int = option("optimizer steps between checkpoints (league check and edit loss)", 1)
    max_length: int = option("tokens per general passage", 128)
    general_file: str | None = option("general text (.jsonl with 'text', or .txt) instead of the shipped one", None)

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if self.kl_weight < 0:
            raise ValueError("kl_weight must be >= 0")
        if self.league is not None and self.league <= 0:
            raise ValueError("league must be > 0 (or none)")
        for name in ("epochs", "batch_size", "kl_passages", "kl_batch", "league_passages", "eval_every", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


@dataclass(frozen=True)
class FinetuneConfig(LeagueConfig):
    """Full finetuning (every parameter of the location; by default the whole model).

    >>> FinetuneConfig().lr
    1e-05
    """

    lr: float = option("Adam learning rate", 1e-5)


@dataclass(frozen=True)
class LoraConfig(LeagueConfig):
    """LoRA (Hu et al., 2022) on the location's weight matrices: ``W + (alpha / rank) B A``.

    ``targets`` picks the matrices when the user gives no location: a module
    kind (``mlp``, ``attn``, ``mlp_down``...: that module's matrices in every
    block, through :mod:`editkit.arch`) or comma-separated module-name endings
    as in peft's ``target_modules`` (``c_fc,c_proj``).

    >>> LoraConfig().rank, LoraConfig().alpha
    (8, 16.0)
    """

    lr: float = option("Adam learning rate", 1e-4)
    rank: int = option("rank r of each B A", 8)
    alpha: float = option("scaling numerator: the update is (alpha / rank) B A (rsLoRA: alpha / sqrt(rank))", 16.0)
    rslora: bool = option("scale by alpha / sqrt(rank) instead of alpha / rank", False)
    targets: str = option("default location: a module kind (mlp, attn...) or module-name endings (c_fc,c_proj)", "mlp")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rank < 1:
            raise ValueError("rank must be >= 1")
        if not self.targets.strip():
            raise ValueError("targets must name a module kind or module-name endings")

    @property
    def scaling(self) -> float:
        """``alpha / rank`` (or ``alpha / sqrt(rank)`` with rsLoRA), as peft computes it."""
        return self.alpha / (self.rank**0.5 if self.rslora else self.rank)
