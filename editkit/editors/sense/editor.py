"""Sense finetuning (Hewitt et al., 2024): train deltas on a few Backpack sense vectors.

The Backpack is frozen; the only free parameters are the deltas of the
``(token, sense)`` pairs of the location (the ``senses`` strategy's slots, see
:mod:`editkit.backpack.sense_delta`). Each optimizer step (Adam) minimizes

    mean over a mini-batch of examples of the example loss (:mod:`editkit.objectives`)
    + kl_weight * KL(p_orig || p_new) on one general passage

and every ``eval_every`` steps a checkpoint is scored: its held-out general
loss decides whether it is inside the deviation league (``< initial x (1 +
eps)``), its edit loss over all examples decides which accepted checkpoint is
best. The result holds the best accepted checkpoint's deltas (the unedited
model, with no deltas, is always accepted); ``info["league"]`` says which step
that was and whether an edited checkpoint made it (``met``). Deltas of pairs
that did not move are left out.

Training runs the model's own forward (``torch.func.functional_call`` with the
slots replaced by ``slot + delta``), the same path an applied edit takes.

>>> loc = localize("senses", model, tok, examples)                       # doctest: +SKIP
>>> result = make_editor("sense").compute(model, tok, examples, loc)     # doctest: +SKIP
>>> result.info["league"]["met"]                                         # doctest: +SKIP
True
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from editkit.backpack.sense_delta import sense_slot_names
from editkit.batching import chunks, model_device
from editkit.editors.registry import Editor
from editkit.editors.result import EditResult
from editkit.editors.sense.config import SenseConfig
from editkit.editors.sense.general import GeneralText, League, split_general
from editkit.errors import EditkitError
from editkit.localize.common import preserved_state
from editkit.localize.location import Location
from editkit.localize.senses import location_sense_pairs
from editkit.objectives import EncodedExample, encode_examples, example_losses
from editkit.requests import CanonicalExample, EditRequest
from editkit.requests.canonical import as_examples

Progress = Callable[[str, int, int], None]


@dataclass
class _Checkpoint:
    step: int
    deltas: torch.Tensor  # [n_pairs, d]
    edit_loss: float
    general_loss: float


class _SenseRun:
    """The frozen model, the free deltas ``[n_pairs, d]`` and the two forwards (original, edited)."""

    def __init__(self, model: nn.Module, names: Sequence[str], pad_id: int) -> None:
        named = dict(model.named_parameters())
        missing = [n for n in names if n not in named]
        if missing:
            raise EditkitError(
                f"the model has no sense slot {missing[0]!r}: localize with the 'senses' strategy on "
                "this model, or create the slots with editkit.backpack.add_sense_slots(model, pairs)"
            )
        self.model, self.names, self.pad_id = model, list(names), pad_id
        self.device = model_device(model)
        self.w0 = [named[n].detach().float().clone() for n in self.names]
        self.dtypes = [named[n].dtype for n in self.names]
        self.d = torch.zeros(len(self.names), self.w0[0].shape[0], device=self.device, requires_grad=True)

    def edited(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        weights = {
            n: (w + self.d[i]).to(dt) for i, (n, w, dt) in enumerate(zip(self.names, self.w0, self.dtypes, strict=True))
        }
        return torch.func.functional_call(self.model, weights, (), {**inputs, "use_cache": False}, strict=False).logits

    def original(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(**inputs, use_cache=False).logits  # type: ignore[no-any-return]

    def edit_loss(self, encoded: Sequence[EncodedExample]) -> torch.Tensor:
        return example_losses(self.edited, encoded, pad_id=self.pad_id, device=self.device).mean()


def _general_texts(cfg: SenseConfig) -> list[str]:
    from editkit.datafiles import read_texts, shipped

    return read_texts(cfg.general_file if cfg.general_file else shipped("preserve_text.jsonl"))


class SenseEditor(Editor[SenseConfig]):
    """Sense finetuning (Backpack): Adam on the chosen sense vectors, KL-regularized, inside a league."""

    def default_location(self, model: Any) -> Location:
        raise EditkitError(
            "the sense editor edits the sense vectors that the 'senses' strategy picks from the "
            "examples: pass --strategy senses (Python: localize('senses', model, tok, examples))"
        )

    def compute(
        self,
        model: Any,
        tok: Any,
        requests: Sequence[EditRequest | CanonicalExample],
        location: Location,
        *,
        progress: Progress | None = None,
    ) -> EditResult:
        """Train the location's sense deltas on ``requests`` (edit requests are ``good`` examples)."""
        cfg = self.config
        t0 = time.perf_counter()
        examples = as_examples(requests)
        if not examples:
            raise EditkitError("no examples to edit")
        pairs = location_sense_pairs(location)
        pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
        run = _SenseRun(model, sense_slot_names(model, pairs), pad_id)
        encoded = encode_examples(tok, examples)
        kl_texts, held_texts = split_general(_general_texts(cfg), cfg.kl_passages, cfg.league_passages)
        common: dict[str, Any] = {"max_length": cfg.max_length, "pad_id": pad_id, "device": run.device}
        kl_text = GeneralText(tok, kl_texts, batch_size=cfg.kl_batch, **common)
        held_out = GeneralText(tok, held_texts, batch_size=8, **common)
        t_setup = time.perf_counter() - t0
        t1 = time.perf_counter()
        with preserved_state(model):
            for p in model.parameters():
                p.requires_grad_(False)
            log, best, league, steps, rejected = self._train(run, encoded, kl_text, held_out, progress)
        deltas = {
            name: best.deltas[i].detach().float().cpu()
            for i, name in enumerate(run.names)
            if bool(best.deltas[i].any())
        }
        info = {
            "n_examples": len(examples),
            "loss_types": dict(Counter(ex.loss_type for ex in examples)),
            "n_senses": len(pairs),
            "n_moved": len(deltas),
            "optimizer_steps": steps,
            "general_passages": {"kl": kl_text.n_passages, "held_out": held_out.n_passages},
            "league": {
                "eps": league.eps,
                "initial_general_loss": league.initial,
                "cutoff": league.cutoff,
                "met": best.step > 0,
                "accepted_step": best.step,
                "accepted_general_loss": best.general_loss,
                "accepted_edit_loss": best.edit_loss,
                "initial_edit_loss": log[0]["edit_loss"],
                "rejected_checkpoints": rejected,
            },
        }
        return EditResult(
            method=self.name,
            deltas=deltas,
            location=location,
            config=cfg.to_dict(),
            timings={"setup": t_setup, "train": time.perf_counter() - t1},
            log=log,
            info=info,
        )

    def _train(
        self,
        run: _SenseRun,
        encoded: list[EncodedExample],
        kl_text: GeneralText,
        held_out: GeneralText,
        progress: Progress | None,
    ) -> tuple[list[dict[str, Any]], _Checkpoint, League, int, int]:
        cfg = self.config
        gen = torch.Generator().manual_seed(cfg.seed)
        opt = torch.optim.Adam([run.d], lr=cfg.lr)
        with torch.no_grad():
            initial = _Checkpoint(0, run.d.detach().clone(), float(run.edit_loss(encoded)), held_out.nll(run.original))
        league = League(cfg.league, initial.general_loss)
        best = initial
        log: list[dict[str, Any]] = [
            {"step": 0, "epoch": 0, "edit_loss": initial.edit_loss, "general_loss": initial.general_loss, "accepted": True}
        ]
        steps = rejected = 0
        n = len(encoded)
        total_steps = cfg.epochs * ((n + cfg.batch_size - 1) // cfg.batch_size)
        for epoch in range(1, cfg.epochs + 1):
            order = torch.randperm(n, generator=gen).tolist()
            for idx in chunks(order, cfg.batch_size):
                loss = run.edit_loss([encoded[i] for i in idx])
                kl = torch.zeros((), device=run.device)
                if cfg.kl_weight > 0:
                    pick = int(torch.randint(len(kl_text.batches), (1,), generator=gen))
                    kl = kl_text.kl(run.edited, run.original, pick)
                opt.zero_grad(set_to_none=True)
                (loss + cfg.kl_weight * kl).backward()
                opt.step()
                steps += 1
                if steps % cfg.eval_every and steps != total_steps:
                    continue
                with torch.no_grad():
                    point = _Checkpoint(steps, run.d.detach().clone(), float(run.edit_loss(encoded)), held_out.nll(run.edited))
                accepted = league.allows(point.general_loss)
                rejected += not accepted
                if accepted and point.edit_loss < best.edit_loss:
                    best = point
                log.append(
                    {"step": steps, "epoch": epoch, "loss": float(loss.detach()), "kl": float(kl.detach()),
                     "edit_loss": point.edit_loss, "general_loss": point.general_loss, "accepted": accepted}
                )
            if progress:
                progress(f"epoch {epoch} edit loss {log[-1]['edit_loss']:.4f}", epoch, cfg.epochs)
        return log, best, league, steps, rejected
