"""Configuration of a Backpack-GPT2 language model.

The fields are those of the public ``stanfordnlp/backpack-gpt2`` checkpoint: a
:class:`~transformers.GPT2Config` plus ``num_senses`` and
``sense_intermediate_scale``, with that checkpoint's defaults (vocabulary padded
to 50264, 512 positions, attention scaled by the inverse layer index).

>>> cfg = BackpackGPT2Config(vocab_size=50, n_embd=16, n_layer=2, n_head=2, num_senses=4)
>>> cfg.model_type, cfg.num_senses, cfg.n_embd // cfg.num_senses
('backpack-gpt2', 4, 4)
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import GPT2Config

#: ``model_type`` under which editkit registers the Backpack with the Auto classes.
#: (The public checkpoint's own ``config.json`` says ``"gpt2"`` plus an ``auto_map``
#: pointing at its remote code; editkit cannot claim ``"gpt2"``.)
MODEL_TYPE = "backpack-gpt2"


@strict
class BackpackGPT2Config(GPT2Config):
    """GPT-2 configuration plus the Backpack sense network sizes.

    Args:
        num_senses: Number ``k`` of sense vectors per vocabulary item; also the
            number of heads of the contextualization weight network, so
            ``n_embd`` must be divisible by it.
        sense_intermediate_scale: Width of the sense network's final MLP, as a
            multiple of ``n_embd``.

    All other fields are GPT-2's (``n_embd``, ``n_layer``, ``n_head``,
    ``activation_function``, dropouts, ...). The output embedding is always
    tied to the word embedding (``tie_word_embeddings`` must stay ``True``).
    ``use_cache`` defaults to ``False``: the model has no KV cache.

    >>> BackpackGPT2Config().num_senses
    16
    """

    model_type = MODEL_TYPE

    vocab_size: int = 50264
    n_positions: int = 512
    scale_attn_by_inverse_layer_idx: bool = True
    use_cache: bool = False
    num_senses: int = 16
    sense_intermediate_scale: int = 4

    def __post_init__(self, **kwargs: Any) -> None:
        # The public checkpoint's config.json says `"model_type": "gpt2"`; the type
        # is a class constant here, never an instance attribute.
        kwargs.pop("model_type", None)
        # It also names its remote-code classes in `auto_map`; keeping that
        # would send the Auto classes back to remote code.
        auto_map = kwargs.get("auto_map")
        if isinstance(auto_map, dict) and any(
            "backpack" in str(v).lower() for v in auto_map.values()
        ):
            kwargs.pop("auto_map")
        super().__post_init__(**kwargs)

    def validate_architecture(self) -> None:
        """Part of transformers' ``@strict`` validation: sizes must fit together."""
        super().validate_architecture()
        if self.num_senses < 1 or self.n_embd % self.num_senses != 0:
            raise ValueError(
                f"n_embd ({self.n_embd}) must be a positive multiple of num_senses "
                f"({self.num_senses}): each sense is one head of the weight network"
            )
        if self.sense_intermediate_scale < 1:
            raise ValueError(
                f"sense_intermediate_scale must be >= 1, got {self.sense_intermediate_scale}"
            )
        if not self.tie_word_embeddings:
            raise ValueError(
                "a Backpack ties its output embedding to the word embedding; "
                "tie_word_embeddings=False is not supported"
            )
