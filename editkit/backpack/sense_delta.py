"""Sense deltas: sparse, editable offsets on chosen ``(token id, sense index)`` sense vectors.

A Backpack's sense vectors are *outputs* of the sense network (``C(x)`` is
computed from the word embedding of ``x``), not parameters, so an edit to
"sense 3 of ``' France'``" has no weight to land on. A :class:`SenseDelta`
gives it one: a zero-valued ``[n_embd]`` parameter per chosen pair, named
``t{token}_s{sense}``, that :class:`~editkit.backpack.modeling.SenseNetwork`
adds to that sense of that token wherever the token occurs::

    C'(x)[l] = C(x)[l] + delta[x, l]     (delta = 0 for pairs without a slot)

Why one small parameter per pair (a "slot") rather than a dense table: a dense
``[vocab, k, d]`` table for the public checkpoint is 50264 x 16 x 768 floats
(2.5 GB in fp32) to edit a few dozen vectors. Slots are created on demand with
:func:`add_sense_slots` (the ``senses`` localization strategy does this for the
pairs it picks), start at exactly zero and leave every output bit for bit
unchanged; after that they are ordinary named parameters, so the shared
:func:`editkit.editors.apply` / :func:`editkit.editors.revert` edit them exactly
like any weight, and two edits of the same pair add up.

A model without slots has exactly the public checkpoint's state dict. Slots are
part of ``state_dict()`` once created; ``from_pretrained`` does not recreate
them, so keep sense edits as delta files (:func:`editkit.editors.save_edit`) and
re-apply them after :func:`add_sense_slots` on a freshly loaded model.

>>> from editkit.backpack import BackpackGPT2Config, BackpackGPT2LMHeadModel
>>> cfg = BackpackGPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, num_senses=4,
...                          bos_token_id=0, eos_token_id=0)
>>> model = BackpackGPT2LMHeadModel(cfg).eval()
>>> add_sense_slots(model, [(7, 2)])
('backpack.sense_network.sense_delta.t7_s2',)
>>> sense_pair_of("backpack.sense_network.sense_delta.t7_s2")
(7, 2)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from editkit.errors import EditkitError

Pair = tuple[int, int]

#: Attribute name of the :class:`SenseDelta` inside the sense network.
SLOT_MODULE = "sense_delta"

_SLOT_RE = re.compile(rf"(?:^|\.){SLOT_MODULE}\.t(\d+)_s(\d+)$")


def slot_name(token: int, sense: int) -> str:
    """The local parameter name of the slot for ``(token, sense)``.

    >>> slot_name(464, 3)
    't464_s3'
    """
    return f"t{int(token)}_s{int(sense)}"


def sense_pair_of(param: str) -> Pair | None:
    """``(token, sense)`` of a full slot parameter name, or None for any other parameter.

    >>> sense_pair_of("backpack.sense_network.sense_delta.t5_s0"), sense_pair_of("lm_head.weight")
    ((5, 0), None)
    """
    match = _SLOT_RE.search(param)
    return (int(match.group(1)), int(match.group(2))) if match else None


class SenseDelta(nn.Module):
    """Additive deltas for chosen ``(token, sense)`` pairs: ``input_ids -> [batch, seq, k, d]``.

    Holds one ``[d]`` parameter per pair (none at construction). :meth:`forward`
    looks each input token up among the slot tokens and returns, per position
    and sense, the slot's value or exactly zero, so ``senses + delta`` equals
    ``senses`` bit for bit wherever no slot applies (and everywhere while every
    slot is zero).
    """

    def __init__(self, num_senses: int, dim: int) -> None:
        super().__init__()
        self.num_senses = num_senses
        self.dim = dim
        self._pairs: dict[str, Pair] = {}  # local parameter name -> (token, sense), creation order

    @property
    def num_slots(self) -> int:
        return len(self._pairs)

    def pairs(self) -> list[Pair]:
        """The ``(token, sense)`` pairs that have a slot, in creation order."""
        return list(self._pairs.values())

    def add(self, pairs: Iterable[Pair], *, dtype: torch.dtype, device: torch.device) -> list[str]:
        """Create zero slots for the pairs that have none; return the local names of all ``pairs``."""
        names = []
        for token, sense in pairs:
            if not 0 <= int(sense) < self.num_senses or int(token) < 0:
                raise EditkitError(
                    f"sense pair ({token}, {sense}) is out of range: senses are 0..{self.num_senses - 1}"
                )
            name = slot_name(token, sense)
            if name not in self._pairs:
                self.register_parameter(
                    name, nn.Parameter(torch.zeros(self.dim, dtype=dtype, device=device), requires_grad=False)
                )
                self._pairs[name] = (int(token), int(sense))
            names.append(name)
        return names

    def remove(self, names: Iterable[str]) -> None:
        """Delete slots by local name (their values are lost)."""
        for name in names:
            if name in self._pairs:
                del self._pairs[name]
                delattr(self, name)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Per-position deltas ``[batch, seq, k, d]`` for ``input_ids`` ``[batch, seq]``."""
        names = list(self._pairs)
        values = torch.stack([getattr(self, n) for n in names])  # [n, d]
        device = values.device
        tokens = torch.tensor([self._pairs[n][0] for n in names], device=device)  # [n]
        senses = torch.tensor([self._pairs[n][1] for n in names], device=device)  # [n]
        # table[n, l] = values[n] if l is slot n's sense else 0: exact (one factor is 0 or 1)
        onehot = nn.functional.one_hot(senses, self.num_senses).to(values.dtype)  # [n, k]
        table = onehot[:, :, None] * values[:, None, :]  # [n, k, d]
        match = (input_ids.to(device)[..., None] == tokens).to(values.dtype)  # [batch, seq, n]
        return torch.einsum("bsn,nkd->bskd", match, table)


def find_sense_delta(model: nn.Module) -> tuple[str, SenseDelta]:
    """The model's :class:`SenseDelta` and its module path; an error if ``model`` is not a Backpack."""
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, SenseDelta)]
    if len(found) != 1:
        model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
        raise EditkitError(
            f"sense edits need a Backpack model (editkit.backpack, model_type 'backpack-gpt2'); "
            f"got {model_type!r}"
        )
    return found[0]


def is_backpack(model: nn.Module) -> bool:
    """Whether ``model`` has a sense network that takes sense deltas."""
    return any(isinstance(m, SenseDelta) for m in model.modules())


def _full(path: str, local: str) -> str:
    return f"{path}.{local}" if path else local


def sense_slot_names(model: nn.Module, pairs: Sequence[Pair]) -> tuple[str, ...]:
    """Full parameter names the slots of ``pairs`` have (or would have) in ``model``."""
    path, _ = find_sense_delta(model)
    return tuple(_full(path, slot_name(t, s)) for t, s in pairs)


def add_sense_slots(model: nn.Module, pairs: Iterable[Pair]) -> tuple[str, ...]:
    """Give each ``(token, sense)`` pair a zero slot (idempotent); return their full parameter names.

    Outputs are unchanged bit for bit until a slot is edited. Slots match the
    dtype and device of the sense network's output layer.
    """
    path, delta = find_sense_delta(model)
    pairs = [(int(t), int(s)) for t, s in pairs]
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    bad = [p for p in pairs if vocab is not None and p[0] >= vocab]
    if bad:
        raise EditkitError(f"token id {bad[0][0]} is outside the vocabulary (size {vocab})")
    parent = model.get_submodule(path.rpartition(".")[0]) if "." in path else model
    ref = next(parent.parameters())
    names = delta.add(pairs, dtype=ref.dtype, device=ref.device)
    return tuple(_full(path, n) for n in names)


def sense_slots(model: nn.Module) -> dict[str, Pair]:
    """Every slot of ``model``: full parameter name -> ``(token, sense)``."""
    path, delta = find_sense_delta(model)
    return {_full(path, slot_name(t, s)): (t, s) for t, s in delta.pairs()}


def remove_sense_slots(model: nn.Module) -> tuple[str, ...]:
    """Delete the slots that are exactly zero (no edit applied); return their full names.

    Afterwards a model with no edited slots has the public state-dict layout
    again. Slots holding an applied edit are kept (revert the edit first).
    """
    path, delta = find_sense_delta(model)
    zero = [slot_name(t, s) for t, s in delta.pairs() if not bool(getattr(delta, slot_name(t, s)).any())]
    delta.remove(zero)
    return tuple(_full(path, n) for n in zero)
