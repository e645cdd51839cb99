"""The :class:`ArchSpec` record: where things live inside one family of causal LMs.

An ``ArchSpec`` is pure data. Paths are dotted attribute paths (integer parts
index a ``ModuleList``): the root-level ones (``layers``, ``final_norm``,
``unembed``, ``embed``) start at the ``*ForCausalLM`` object, the block-level
ones (``attn``, ``mlp``, ``mlp_in``, ...) start at one decoder block.

>>> spec = ArchSpec(
...     model_type="toy", layers="body.blocks", attn="attn", mlp="ffn",
...     mlp_in=("ffn.up",), mlp_out="ffn.down", attn_out="attn.out",
...     final_norm="body.norm", unembed="head", embed="body.embed")
>>> spec.block_paths("mlp_out")
('ffn.down',)
"""

from __future__ import annotations

from dataclasses import dataclass

from editkit.errors import EditkitError

#: The module kinds a block-level path can name, in the order
#: :func:`editkit.arch.parse_module_path` tries them.
KINDS: tuple[str, ...] = (
    "mlp_out",
    "mlp_in",
    "attn_out",
    "attn_in",
    "mlp",
    "attn",
    "mlp_norm",
    "attn_norm",
    "block",
)

#: Kinds whose modules are linear projections (``transposed_linears`` applies to them).
PROJECTION_KINDS: frozenset[str] = frozenset({"mlp_in", "mlp_out", "attn_in", "attn_out"})


class ArchitectureError(EditkitError):
    """An architecture that is not registered, or a path or layer that does not resolve."""


@dataclass(frozen=True)
class ArchSpec:
    """Where the parts of one causal-LM architecture live (keyed by ``config.model_type``).

    Attributes:
        model_type: The ``config.model_type`` this spec describes.
        layers: Root path of the ``ModuleList`` of decoder blocks (``"model.layers"``).
        attn: Block path of the attention module (``"self_attn"``).
        mlp: Block path of the MLP module (``"mlp"``).
        mlp_in: Block paths of the MLP input projections, gate first when gated
            (``("mlp.gate_proj", "mlp.up_proj")``).
        mlp_out: Block path of the MLP output projection (``"mlp.down_proj"``).
        attn_out: Block path of the attention output projection (``"self_attn.o_proj"``).
        final_norm: Root path of the norm applied to the last block's output.
        unembed: Root path of the unembedding (``"lm_head"``); weight ``[vocab, hidden]``.
        embed: Root path of the token embedding; weight ``[vocab, hidden]``.
        transposed_linears: The block projections store their weight as
            ``[in, out]`` (GPT-2 ``Conv1D``) instead of ``nn.Linear``'s ``[out, in]``.
        attn_in: Block paths of the query/key/value projections (separate or fused).
        attn_norm: Block path of the norm whose output feeds attention (None: post-norm).
        mlp_norm: Block path of the norm whose output feeds the MLP (None: post-norm).
        gated_mlp: The MLP computes ``act(gate(x)) * up(x)``: the ``mlp_in``
            projections together produce ``2 * intermediate`` features (fused
            or not); otherwise ``intermediate``.
        text_config: Config attribute holding the language model's sub-config
            (multimodal models: ``"text_config"``); None when the config is flat.
        hidden_attrs: Config attributes tried in order for the hidden size.
        intermediate_attrs: Config attributes tried in order for the MLP width.
        intermediate_ratio: Fallback MLP width as a multiple of the hidden size
            when no ``intermediate_attrs`` is set (GPT-2's ``n_inner=None`` means 4).
        layers_attrs: Config attributes tried in order for the number of blocks.
        heads_attrs: Config attributes tried in order for the number of query heads.
        kv_heads_attrs: Config attributes for key/value heads (default: query heads).
        head_dim_attrs: Config attributes for the head size (default: hidden // heads).
        vocab_attrs: Config attributes tried in order for the vocabulary size.
        logit_softcap_attrs: Config attributes holding a final-logit soft cap
            ``c`` (logits = ``c * tanh(x / c)``; Gemma 2/3), if any.

    >>> ArchSpec("t", "h", "a", "m", "m.fc", "m.proj", "a.proj", "ln", "head", "wte").mlp_in
    ('m.fc',)
    """

    model_type: str
    layers: str
    attn: str
    mlp: str
    mlp_in: tuple[str, ...]
    mlp_out: str
    attn_out: str
    final_norm: str
    unembed: str
    embed: str
    transposed_linears: bool = False
    attn_in: tuple[str, ...] = ()
    attn_norm: str | None = None
    mlp_norm: str | None = None
    gated_mlp: bool = False
    text_config: str | None = None
    hidden_attrs: tuple[str, ...] = ("hidden_size", "n_embd")
    intermediate_attrs: tuple[str, ...] = ("intermediate_size", "n_inner")
    intermediate_ratio: int | None = None
    layers_attrs: tuple[str, ...] = ("num_hidden_layers", "n_layer")
    heads_attrs: tuple[str, ...] = ("num_attention_heads", "n_head")
    kv_heads_attrs: tuple[str, ...] = ("num_key_value_heads",)
    head_dim_attrs: tuple[str, ...] = ("head_dim",)
    vocab_attrs: tuple[str, ...] = ("vocab_size",)
    logit_softcap_attrs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A bare string where a tuple is expected is the commonest slip: accept it.
        for name in ("mlp_in", "attn_in", "hidden_attrs", "intermediate_attrs", "layers_attrs",
                     "heads_attrs", "kv_heads_attrs", "head_dim_attrs", "vocab_attrs",
                     "logit_softcap_attrs"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,))
            else:
                object.__setattr__(self, name, tuple(value))
        required = ("model_type", "layers", "attn", "mlp", "mlp_out", "attn_out",
                    "final_norm", "unembed", "embed")
        for name in required:
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"ArchSpec.{name} must be a non-empty string, got {value!r}")
        if not self.mlp_in or not all(isinstance(p, str) and p for p in self.mlp_in):
            raise ValueError(f"ArchSpec.mlp_in must be non-empty paths, got {self.mlp_in!r}")

    def block_paths(self, kind: str) -> tuple[str, ...]:
        """Block-relative paths for a module kind (``""`` is the block itself).

        Args:
            kind: One of :data:`KINDS`.

        Returns:
            The paths, several for ``mlp_in``/``attn_in``; empty when the
            architecture has no such module (e.g. ``attn_norm`` of a post-norm model).

        Raises:
            ArchitectureError: ``kind`` is not one of :data:`KINDS`.

        >>> from editkit.arch import get_arch
        >>> get_arch("llama").block_paths("mlp_in")
        ('mlp.gate_proj', 'mlp.up_proj')
        """
        table: dict[str, tuple[str, ...]] = {
            "block": ("",),
            "attn": (self.attn,),
            "mlp": (self.mlp,),
            "mlp_in": self.mlp_in,
            "mlp_out": (self.mlp_out,),
            "attn_in": self.attn_in,
            "attn_out": (self.attn_out,),
            "attn_norm": (self.attn_norm,) if self.attn_norm else (),
            "mlp_norm": (self.mlp_norm,) if self.mlp_norm else (),
        }
        if kind not in table:
            raise ArchitectureError(
                f"unknown module kind {kind!r}; choose one of {', '.join(sorted(table))}"
            )
        return table[kind]
