"""The Backpack language model (Hewitt et al., ACL 2023) as a transformers ``PreTrainedModel``.

A Backpack predicts the next token from a weighted sum of *sense vectors*:

- **Sense network** ``C``: each token id ``x_j`` gets ``k`` sense vectors
  ``C(x_j) in R^{k x d}`` from its word embedding alone (no position, no
  context). With ``x`` the (dropped-out) word embedding:
  ``r = x + LN(x)``; ``r = r + mlp(ln_1(r))`` (``d -> 4d -> d``);
  ``h = ln_2(r)``; ``C = final_mlp(h)`` (``d -> sense_intermediate_scale * d
  -> k * d``), GELU as ``config.activation_function``. (The residual stream
  starts at ``x + LN(x)``, as in the public code, not at ``LN(x)``.)
- **Contextualization network**: a standard GPT-2 (with its final LayerNorm)
  gives hidden states ``h``; the *sense weight network* is one ``Linear(d, 2d)``
  split into queries and keys with ``k`` heads (head size ``d / k``), scaled by
  ``1 / sqrt(d / k)``, causal, softmax over positions:
  ``alpha[b, l, i, j]`` (no values, no output projection).
- **Output**: ``o_i = sum_l sum_j alpha[l, i, j] * C(x_j)[l]`` and
  ``logits = o_i @ E^T`` with ``E`` the word embedding (tied). No final
  LayerNorm, no ``1 / k`` rescaling.

Parameter names follow the public ``stanfordnlp/backpack-gpt2`` checkpoint, so
its state dict loads with no missing or unexpected keys (checked against its
published ``modeling_backpack_gpt2.py``; the checkpoint files themselves were
not inspected)::

    backpack.gpt2_model.{wte,wpe}.weight, backpack.gpt2_model.h.N.*,
    backpack.gpt2_model.ln_f.*                        (standard GPT-2)
    backpack.word_embeddings.weight                   (alias of wte)
    backpack.position_embeddings.weight               (alias of wpe)
    backpack.sense_network.ln.{weight,bias}
    backpack.sense_network.block.{ln_1,ln_2}.{weight,bias}
    backpack.sense_network.block.mlp.{c_fc,c_proj}.{weight,bias}       (Conv1D: [in, out])
    backpack.sense_network.final_mlp.{c_fc,c_proj}.{weight,bias}       (Conv1D: [in, out])
    backpack.sense_weight_net.c_attn.{weight,bias}                     (nn.Linear: [2d, d])
    lm_head.weight                                    (alias of wte)

The aliases are the same modules registered twice (as in the original), so
``state_dict()`` lists them; ``save_pretrained`` writes each tensor once and
``from_pretrained`` re-ties them. Legacy GPT-2 buffers ``attn.bias`` /
``attn.masked_bias`` found in old checkpoints are dropped on load.

Sense ``l`` of a token is the ``l``-th contiguous slice of ``d`` features of
the sense network's output; query/key head ``l`` is the ``l``-th slice of
``d / k`` features of each half of ``c_attn``'s output (queries first).

Editing senses: ``backpack.sense_network.sense_delta`` starts empty and takes
zero-valued ``[d]`` parameters ``t{token}_s{sense}`` on demand
(:mod:`editkit.backpack.sense_delta`); each is added to that sense of that
token wherever it occurs. Sense finetuning edits these like any weight.

Differences from the public remote code (negligible for a trained model's
predictions): the causal mask is exact (``-inf``) instead of ``-1e4`` added to
the scores, the softmax runs in float32, and an ``attention_mask`` (if given)
also removes padded positions from the sense weights. Padding must be on the
right: positions always count from 0. There is no KV cache: ``generate`` works
but re-encodes the whole prefix at every step.

>>> from editkit.backpack import BackpackGPT2Config, BackpackGPT2LMHeadModel
>>> cfg = BackpackGPT2Config(vocab_size=50, n_embd=16, n_layer=2, n_head=2, num_senses=4,
...                          bos_token_id=0, eos_token_id=0)
>>> model = BackpackGPT2LMHeadModel(cfg).eval()
>>> ids = torch.tensor([[1, 2, 3]])
>>> model(ids).logits.shape, model.senses(ids).shape, model.sense_weights(ids).shape
(torch.Size([1, 3, 50]), torch.Size([1, 3, 4, 16]), torch.Size([1, 4, 3, 3]))
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, GPT2Model, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import CausalLMOutput, ModelOutput
from transformers.pytorch_utils import Conv1D

from editkit.backpack.config import BackpackGPT2Config
from editkit.backpack.sense_delta import SenseDelta

#: Buffers of GPT-2 attention saved by old transformers versions (no parameters).
_LEGACY_BUFFERS = (r"\.attn\.bias$", r"\.attn\.masked_bias$")
_LEGACY_RE = re.compile(r"^gpt2_model\.h\.\d+\.attn\.(bias|masked_bias)$")


@dataclass
class BackpackModelOutput(ModelOutput):
    """Output of :class:`BackpackGPT2Model`.

    Attributes:
        last_hidden_state: ``o``, the weighted sums of sense vectors
            ``[batch, seq, n_embd]`` (what the tied output embedding reads).
        sense_weights: ``alpha``, ``[batch, num_senses, seq, seq]``; row ``i``
            sums to 1 over the positions ``j <= i``.
    """

    last_hidden_state: torch.Tensor | None = None
    sense_weights: torch.Tensor | None = None


@dataclass
class BackpackCausalLMOutput(CausalLMOutput):
    """:class:`~transformers.modeling_outputs.CausalLMOutput` plus ``sense_weights``
    (``[batch, num_senses, seq, seq]``)."""

    sense_weights: torch.Tensor | None = None


class BackpackMLP(nn.Module):
    """``c_fc -> activation -> c_proj -> dropout`` with GPT-2 ``Conv1D`` layers."""

    def __init__(
        self, in_dim: int, hidden_dim: int, out_dim: int, config: BackpackGPT2Config
    ) -> None:
        super().__init__()
        self.c_fc = Conv1D(hidden_dim, in_dim)
        self.c_proj = Conv1D(out_dim, hidden_dim)
        self.act = ACT2FN[config.activation_function]
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class NoMixBlock(nn.Module):
    """A transformer block without attention: tokens are never mixed.

    ``forward(h, residual)``: ``r = residual + h``; ``r = r + mlp(ln_1(r))``;
    returns ``ln_2(r)`` (dropout after each addition's new term).
    """

    def __init__(self, config: BackpackGPT2Config) -> None:
        super().__init__()
        d = config.n_embd
        self.ln_1 = nn.LayerNorm(d, eps=config.layer_norm_epsilon)
        self.ln_2 = nn.LayerNorm(d, eps=config.layer_norm_epsilon)
        self.mlp = BackpackMLP(d, 4 * d, d, config)
        self.resid_dropout1 = nn.Dropout(config.resid_pdrop)
        self.resid_dropout2 = nn.Dropout(config.resid_pdrop)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        residual = residual + self.resid_dropout1(hidden)
        residual = residual + self.resid_dropout2(self.mlp(self.ln_1(residual)))
        return self.ln_2(residual)


class SenseNetwork(nn.Module):
    """Word embeddings ``[batch, seq, d]`` -> sense vectors ``[batch, seq, k, d]``.

    Position-free and context-free: a token's senses depend on its id only.
    A forward hook on this module sees (and may replace) every sense vector the
    model uses.

    ``sense_delta`` (a :class:`~editkit.backpack.sense_delta.SenseDelta`) holds
    editable offsets for chosen ``(token, sense)`` pairs, added to the output
    when ``input_ids`` are given. It has no parameters until slots are created
    (:func:`~editkit.backpack.sense_delta.add_sense_slots`), so the state dict
    keeps the public layout.
    """

    def __init__(self, config: BackpackGPT2Config) -> None:
        super().__init__()
        d = config.n_embd
        self.num_senses = config.num_senses
        self.dropout = nn.Dropout(config.embd_pdrop)
        self.ln = nn.LayerNorm(d, eps=config.layer_norm_epsilon)
        self.block = NoMixBlock(config)
        self.final_mlp = BackpackMLP(
            d, config.sense_intermediate_scale * d, config.num_senses * d, config
        )
        self.sense_delta = SenseDelta(config.num_senses, d)

    def forward(
        self, word_embeds: torch.Tensor, input_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Senses of ``word_embeds``, plus the sense deltas of ``input_ids`` when slots exist."""
        residual = self.dropout(word_embeds)  # [batch, seq, d]
        hidden = self.block(self.ln(residual), residual)
        senses = self.final_mlp(hidden)  # [batch, seq, k * d]
        senses = senses.unflatten(-1, (self.num_senses, word_embeds.shape[-1]))
        if self.sense_delta.num_slots:
            if input_ids is None:
                raise ValueError("this sense network has sense-delta slots: pass input_ids too")
            senses = senses + self.sense_delta(input_ids).to(senses.dtype)
        return senses


class SenseWeightNetwork(nn.Module):
    """Hidden states ``[batch, seq, d]`` -> weights ``alpha`` ``[batch, k, seq, seq]``.

    Causal attention weights with ``k`` heads of size ``d / k`` and no values.
    """

    def __init__(self, config: BackpackGPT2Config) -> None:
        super().__init__()
        self.num_senses = config.num_senses
        self.head_dim = config.n_embd // config.num_senses
        self.c_attn = nn.Linear(config.n_embd, 2 * config.n_embd)

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        seq = hidden.shape[1]
        qk = self.c_attn(hidden).unflatten(-1, (2, self.num_senses, self.head_dim))
        q, k = qk.unbind(dim=2)  # each [batch, seq, k, head_dim]
        scores = torch.einsum("bihd,bjhd->bhij", q, k).float() * self.head_dim**-0.5
        allowed = torch.ones(seq, seq, dtype=torch.bool, device=hidden.device).tril()
        if attention_mask is not None:
            # Padded keys get no weight; every position keeps itself, so no row is empty.
            keys = attention_mask[:, None, None, :].to(torch.bool)  # [batch, 1, 1, seq]
            diag = torch.eye(seq, dtype=torch.bool, device=hidden.device)
            allowed = allowed & (keys | diag)
        scores = scores.masked_fill(~allowed, float("-inf"))
        return scores.softmax(dim=-1).to(hidden.dtype)


class BackpackGPT2PreTrainedModel(PreTrainedModel):
    """Shared loading rules and weight initialization."""

    config: BackpackGPT2Config
    config_class = BackpackGPT2Config
    base_model_prefix = "backpack"
    supports_gradient_checkpointing = False
    _no_split_modules = ["GPT2Block", "NoMixBlock"]
    _supports_sdpa = True
    _supports_attention_backend = True
    _keys_to_ignore_on_load_unexpected = list(_LEGACY_BUFFERS)

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2's scheme: normal(0, initializer_range) weights, zero biases."""
        super()._init_weights(module)
        if isinstance(module, Conv1D):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            nn.init.zeros_(module.bias)


def _drop_legacy_buffers(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any
) -> None:
    """``load_state_dict`` pre-hook: forget old GPT-2 ``attn.bias``/``attn.masked_bias``."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        if _LEGACY_RE.match(key[len(prefix) :]):
            del state_dict[key]


class BackpackGPT2Model(BackpackGPT2PreTrainedModel):
    """The Backpack without its output embedding: senses, weights and their sum.

    >>> out = model.backpack(ids)  # doctest: +SKIP
    >>> out.last_hidden_state.shape, out.sense_weights.shape  # doctest: +SKIP
    """

    _tied_weights_keys = {
        "word_embeddings.weight": "gpt2_model.wte.weight",
        "position_embeddings.weight": "gpt2_model.wpe.weight",
    }

    def __init__(self, config: BackpackGPT2Config) -> None:
        super().__init__(config)
        self.num_senses = config.num_senses
        self.gpt2_model = GPT2Model(config)
        self.sense_network = SenseNetwork(config)
        # Aliases kept for the public checkpoint's key layout (same modules).
        self.word_embeddings = self.gpt2_model.wte
        self.position_embeddings = self.gpt2_model.wpe
        self.sense_weight_net = SenseWeightNetwork(config)
        self.register_load_state_dict_pre_hook(_drop_legacy_buffers)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.gpt2_model.wte

    def set_input_embeddings(self, new_embeddings: nn.Module) -> None:
        if not isinstance(new_embeddings, nn.Embedding):
            raise TypeError(f"expected an nn.Embedding, got {type(new_embeddings).__name__}")
        self.gpt2_model.wte = new_embeddings
        self.word_embeddings = new_embeddings  # keep the alias on the same module

    def senses(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Sense vectors ``[batch, seq, num_senses, n_embd]`` of ``input_ids`` ``[batch, seq]``."""
        return self.sense_network(self.word_embeddings(input_ids), input_ids)

    def sense_weights(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Contextualization weights ``alpha`` ``[batch, num_senses, seq, seq]``.

        ``alpha[b, l, i, j]`` is the weight of sense ``l`` of token ``j`` in the
        output at position ``i``; zero for ``j > i``, summing to 1 over ``j``.
        """
        hidden = self.gpt2_model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
        ).last_hidden_state  # [batch, seq, d]
        return self.sense_weight_net(hidden, attention_mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> BackpackModelOutput:
        """Weighted sums of sense vectors for ``input_ids`` ``[batch, seq]`` (right padding).

        Extra keyword arguments that generation loops pass (``use_cache``,
        ``return_dict``, ...) are accepted and ignored.
        """
        senses = self.senses(input_ids)  # [batch, seq, k, d]
        alpha = self.sense_weights(input_ids, attention_mask, position_ids)  # [batch, k, seq, seq]
        hidden = torch.einsum("blij,bjld->bid", alpha, senses)  # [batch, seq, d]
        return BackpackModelOutput(last_hidden_state=hidden, sense_weights=alpha)


class BackpackGPT2LMHeadModel(BackpackGPT2PreTrainedModel, GenerationMixin):
    """Backpack-GPT2 language model: ``logits = o @ E^T`` with ``E`` the word embedding.

    Loads the public checkpoint's layout without remote code
    (``BackpackGPT2LMHeadModel.from_pretrained(path)``; its ``config.json`` says
    ``model_type: gpt2``, so load it with this class, not with the Auto classes).
    ``generate`` works without a KV cache (each step re-encodes the prefix).

    >>> out = model(ids, labels=ids)  # doctest: +SKIP
    >>> out.loss, out.logits.shape, out.sense_weights.shape  # doctest: +SKIP
    """

    _tied_weights_keys = {
        "lm_head.weight": "backpack.gpt2_model.wte.weight",
        "backpack.word_embeddings.weight": "backpack.gpt2_model.wte.weight",
        "backpack.position_embeddings.weight": "backpack.gpt2_model.wpe.weight",
    }

    def __init__(self, config: BackpackGPT2Config) -> None:
        super().__init__(config)
        self.backpack = BackpackGPT2Model(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.backpack.get_input_embeddings()

    def set_input_embeddings(self, new_embeddings: nn.Module) -> None:
        self.backpack.set_input_embeddings(new_embeddings)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        if not isinstance(new_embeddings, nn.Linear):
            raise TypeError(f"expected an nn.Linear, got {type(new_embeddings).__name__}")
        self.lm_head = new_embeddings

    def senses(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Sense vectors ``[batch, seq, num_senses, n_embd]``; see :meth:`BackpackGPT2Model.senses`."""
        return self.backpack.senses(input_ids)

    def sense_weights(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Weights ``[batch, num_senses, seq, seq]``; see :meth:`BackpackGPT2Model.sense_weights`."""
        return self.backpack.sense_weights(input_ids, attention_mask, position_ids)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> BackpackCausalLMOutput:
        """Next-token logits ``[batch, seq, vocab]``; with ``labels`` also the mean
        shifted cross-entropy (label ``-100`` is ignored), as in GPT-2."""
        out = self.backpack(input_ids, attention_mask=attention_mask, position_ids=position_ids)
        logits = self.lm_head(out.last_hidden_state)  # [batch, seq, vocab]
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(),
                labels[:, 1:].flatten().to(logits.device),
                ignore_index=-100,
            )
        return BackpackCausalLMOutput(loss=loss, logits=logits, sense_weights=out.sense_weights)

    # -- generation without a KV cache -------------------------------------------------

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Every step feeds the whole sequence so far (there is no cache to extend)."""
        inputs: dict[str, Any] = {"input_ids": input_ids}
        if attention_mask is not None:
            inputs["attention_mask"] = attention_mask
        return inputs
