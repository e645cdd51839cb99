"""One MEND training episode: edit, then score the edited model on equivalence and locality inputs.

For each request of an episode batch:

1. the edit input ``prompt -> target_new``: its gradient factors at the edited
   matrices (:func:`~.capture.capture_factors`, on the unedited model);
2. the equivalence input ``paraphrase -> target_new`` (a paraphrase of the
   prompt; the prompt itself when the request has none): ``L_edit``, the NLL
   of the target under the edited weights;
3. the locality input (one of the request's neighborhood prompts with its
   answer): ``L_loc = KL(p_base || p_edited)`` at the positions that predict
   the answer (``loc_scope="answer"``) or at every position of prompt and
   answer as one text (``loc_scope="text"``, as the paper does with its
   Natural Questions locality inputs).

Requests are grouped into edit episodes of ``edits_per_episode``: the rows of
an episode's edits are summed into one update, and only that episode's
equivalence and locality inputs see it (:func:`~.lowrank.factored_edits`),
so a batch runs many independent episodes in one forward. The hidden states
entering the first edited block are computed once per sequence
(:class:`~editkit.editors.prefix.PrefixCache`): only the top blocks run twice.

>>> ep = make_episode(model, tok, requests, rng=None, edits_per_episode=1, layer=27)   # doctest: +SKIP
>>> out = run_episode(model, net, ep)                                                # doctest: +SKIP
>>> out.loss.backward()                                                              # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from editkit.batching import Encoded, encode_pairs
from editkit.editors.mend.capture import Factors, capture_factors
from editkit.editors.mend.lowrank import factored_edits
from editkit.editors.mend.nets import MendNet
from editkit.editors.mend.nullspace import MendNullSpace
from editkit.editors.mend.spec import module_of
from editkit.editors.prefix import PrefixCache
from editkit.lm import gathered_logits
from editkit.requests import EditRequest


def _pick(options: Sequence[Any], rng: torch.Generator | None) -> Any:
    if rng is None or len(options) == 1:
        return options[0]
    return options[int(torch.randint(len(options), (1,), generator=rng))]


def _whole_text(tok: Any, prompt: str, target: str) -> Encoded:
    """The text ``prompt + " " + target`` with every token after the first scored."""
    (enc,) = encode_pairs(tok, [prompt], [target])
    ids = enc.ids
    return Encoded(ids[:1], ids[1:])


@dataclass(frozen=True)
class Episode:
    """Encoded inputs of a batch of requests, indices into ``cache.encoded``.

    Attributes:
        cache: the hidden states entering the first edited block, per sequence.
        edit: one edit input per request.
        para: one equivalence input per request.
        loc: the locality inputs (requests without neighborhood prompts have none).
        loc_owner: the request (position in ``edit``) of each locality input.
        group: the edit episode of each request.
    """

    cache: PrefixCache
    edit: tuple[int, ...]
    para: tuple[int, ...]
    loc: tuple[int, ...]
    loc_owner: tuple[int, ...]
    group: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.edit)

    def chunks(self, size: int) -> Iterator[Episode]:
        """Consecutive sub-batches of ``size`` requests (episodes are never split when
        ``size`` is a multiple of the episode size), sharing this episode's cache."""
        for start in range(0, len(self.edit), size):
            stop = min(start + size, len(self.edit))
            keep = [i for i, owner in enumerate(self.loc_owner) if start <= owner < stop]
            yield Episode(
                self.cache,
                self.edit[start:stop],
                self.para[start:stop],
                tuple(self.loc[i] for i in keep),
                tuple(self.loc_owner[i] - start for i in keep),
                self.group[start:stop],
            )


def make_episode(
    model: nn.Module,
    tok: Any,
    requests: Sequence[EditRequest],
    *,
    rng: torch.Generator | None,
    edits_per_episode: int,
    layer: int,
    pad_id: int,
    loc_scope: str = "answer",
) -> Episode:
    """Encode ``requests`` and cache their hidden states entering block ``layer``.

    ``rng`` picks one paraphrase and one neighborhood prompt per request
    (None: always the first, for validation). ``loc_scope``: where the
    locality KL is taken ("answer" or "text", see the module docstring).
    """
    if loc_scope not in ("answer", "text"):
        raise ValueError(f"loc_scope must be 'answer' or 'text', not {loc_scope!r}")
    n = len(requests)
    edit = encode_pairs(tok, [r.prompt for r in requests], [r.target_new for r in requests])
    paraphrases = [_pick(r.paraphrase_prompts, rng) if r.paraphrase_prompts else r.prompt for r in requests]
    para = encode_pairs(tok, paraphrases, [r.target_new for r in requests])
    loc: list[Encoded] = []
    owners: list[int] = []
    for i, r in enumerate(requests):
        if r.neighborhood_prompts:
            neighbor = _pick(r.neighborhood_prompts, rng)
            if loc_scope == "text":
                loc.append(_whole_text(tok, neighbor.prompt, neighbor.target))
            else:
                loc.extend(encode_pairs(tok, [neighbor.prompt], [neighbor.target]))
            owners.append(i)
    cache = PrefixCache.build(model, [*edit, *para, *loc], layer=layer, pad_id=pad_id)
    return Episode(
        cache,
        tuple(range(n)),
        tuple(range(n, 2 * n)),
        tuple(range(2 * n, 2 * n + len(loc))),
        tuple(owners),
        tuple(i // edits_per_episode for i in range(n)),
    )


@dataclass(frozen=True)
class Outcome:
    """What one episode batch measured.

    Attributes:
        loss: ``edit_weight * edit_nll + loc_weight * loc_kl`` (differentiable).
        edit_nll: mean over requests of the target's mean NLL on the equivalence input.
        loc_kl: mean over locality positions of ``KL(p_base || p_edited)``.
        edit_success: fraction of requests whose every target token is the edited model's argmax.
        drawdown: fraction of locality positions whose argmax the edit changed.
        n_loc: locality positions scored.
    """

    loss: torch.Tensor
    edit_nll: float
    loc_kl: float
    edit_success: float
    drawdown: float
    n_loc: int


def _plain(model: nn.Module) -> Any:
    return lambda kw: model(**kw)


def run_episode(
    model: nn.Module,
    net: MendNet,
    ep: Episode,
    *,
    edit_weight: float = 0.1,
    loc_weight: float = 1.0,
    null: MendNullSpace | None = None,
) -> Outcome:
    """Edit with ``net`` (training mode updates its statistics) and score the edited model.

    The model must be frozen (:func:`~.capture.frozen`); gradients of ``loss``
    reach only ``net``.
    """
    forward = _plain(model)
    paths = [module_of(p) for p in net.spec.params]
    device = next(net.parameters()).device
    group = torch.tensor(ep.group, device=device)
    with ep.cache.active(model):
        batch = ep.cache.prepare(model, ep.edit)
        factors: dict[str, Factors] = capture_factors(model, batch, paths, forward=forward)
        base: torch.Tensor | None = None
        if ep.loc:
            loc_batch = ep.cache.prepare(model, ep.loc)
            with torch.no_grad():
                base = torch.log_softmax(gathered_logits(model, loc_batch, forward).float(), -1)
        edits = net.factored(factors, group, null)
        para_batch = ep.cache.prepare(model, ep.para)
        with factored_edits(model, edits, group):
            logits = gathered_logits(model, para_batch, forward)
        nll = para_batch.mean_nll_of_target_logits(logits)  # [requests]
        hits = (logits.argmax(-1) == para_batch.target_ids()).float()
        success = torch.stack([h.all().float() for h in para_batch.split(hits)]).mean()
        kl = torch.zeros((), device=nll.device)
        drawdown = 0.0
        if base is not None:
            loc_batch = ep.cache.prepare(model, ep.loc)
            loc_group = group[torch.tensor(ep.loc_owner, device=device)]
            with factored_edits(model, edits, loc_group):
                edited = torch.log_softmax(gathered_logits(model, loc_batch, forward).float(), -1)
            kl = (base.exp() * (base - edited)).sum(-1).mean()
            drawdown = float((base.argmax(-1) != edited.argmax(-1)).float().mean())
    loss = edit_weight * nll.mean() + loc_weight * kl
    return Outcome(
        loss,
        float(nll.detach().mean()),
        float(kl.detach()),
        float(success),
        drawdown,
        0 if base is None else int(base.shape[0]),
    )
