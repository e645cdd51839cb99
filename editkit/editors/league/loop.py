"""The training loop every league editor shares (Hewitt et al., 2024).

Each optimizer step (Adam) minimizes

    mean over a mini-batch of examples of the example loss (:mod:`editkit.objectives`)
    + kl_weight * KL(p_orig || p_new) on one general passage

and every ``eval_every`` steps a checkpoint is scored: its held-out general
loss decides whether it is inside the deviation league (``< initial x (1 +
eps)``), its edit loss over all examples decides which accepted checkpoint is
best. The unedited model (step 0) is always accepted, so a run whose every
checkpoint leaves the league returns no change. The published comparison
(sense finetuning vs full finetuning vs LoRA) runs every method through this
same loop; only what may change differs (:mod:`.runs`).

>>> editor = make_editor("lora", {"lr": 1e-3})                      # doctest: +SKIP
>>> result = editor.compute(model, tok, examples, location)         # doctest: +SKIP
>>> result.info["league"]["met"]                                    # doctest: +SKIP
True
"""

from __future__ import annotations

import abc
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from editkit.batching import chunks
from editkit.editors.league.config import LeagueConfig
from editkit.editors.league.general import GeneralText, League, split_general
from editkit.editors.league.runs import DeltaRun
from editkit.editors.registry import Editor
from editkit.editors.result import EditResult
from editkit.errors import EditkitError
from editkit.localize.common import preserved_state
from editkit.localize.location import Location
from editkit.objectives import EncodedExample, encode_examples
from editkit.requests import CanonicalExample, EditRequest
from editkit.requests.canonical import as_examples

Progress = Callable[[str, int, int], None]
C = TypeVar("C", bound=LeagueConfig)


@dataclass
class Checkpoint:
    step: int
    state: list[torch.Tensor]
    edit_loss: float
    general_loss: float


@dataclass
class LeagueRun:
    """What :func:`train_in_league` returns: the log, the accepted checkpoint and the league."""

    log: list[dict[str, Any]]
    best: Checkpoint
    league: League
    steps: int
    rejected: int

    def info(self) -> dict[str, Any]:
        return {
            "eps": self.league.eps,
            "initial_general_loss": self.league.initial,
            "cutoff": self.league.cutoff,
            "met": self.best.step > 0,
            "accepted_step": self.best.step,
            "accepted_general_loss": self.best.general_loss,
            "accepted_edit_loss": self.best.edit_loss,
            "initial_edit_loss": self.log[0]["edit_loss"],
            "rejected_checkpoints": self.rejected,
        }


def general_texts(cfg: LeagueConfig) -> list[str]:
    """The general passages of ``cfg`` (``general_file``, else the shipped ``preserve_text.jsonl``)."""
    from editkit.datafiles import read_texts, shipped

    return read_texts(cfg.general_file if cfg.general_file else shipped("preserve_text.jsonl"))


def train_in_league(
    run: DeltaRun,
    encoded: list[EncodedExample],
    kl_text: GeneralText,
    held_out: GeneralText,
    cfg: LeagueConfig,
    progress: Progress | None = None,
) -> LeagueRun:
    """Adam on ``run.trainable``; keep the lowest-edit-loss checkpoint inside the league."""
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(run.trainable, lr=cfg.lr)
    with torch.no_grad():
        initial = Checkpoint(0, run.snapshot(), float(run.edit_loss(encoded)), held_out.nll(run.original))
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
                edit_loss, general_loss = float(run.edit_loss(encoded)), held_out.nll(run.edited)
            accepted = league.allows(general_loss)
            rejected += not accepted
            if accepted and edit_loss < best.edit_loss:  # copied only when kept (a full model for finetune)
                best = Checkpoint(steps, run.snapshot(), edit_loss, general_loss)
            log.append(
                {"step": steps, "epoch": epoch, "loss": float(loss.detach()), "kl": float(kl.detach()),
                 "edit_loss": edit_loss, "general_loss": general_loss, "accepted": accepted}
            )
        if progress:
            progress(f"epoch {epoch} edit loss {log[-1]['edit_loss']:.4f}", epoch, cfg.epochs)
    return LeagueRun(log, best, league, steps, rejected)


class LeagueEditor(Editor[C]):
    """An editor trained by :func:`train_in_league`; subclasses say what may change (:meth:`make_run`)."""

    @abc.abstractmethod
    def make_run(self, model: Any, tok: Any, location: Location, pad_id: int) -> DeltaRun:
        """The parametrization of ``location`` this editor trains."""

    def extra_info(self, run: DeltaRun, location: Location) -> dict[str, Any]:
        return {}

    def compute(
        self,
        model: Any,
        tok: Any,
        requests: Sequence[EditRequest | CanonicalExample],
        location: Location,
        *,
        progress: Progress | None = None,
    ) -> EditResult:
        """Train on ``requests`` (edit requests are ``good`` examples); leave ``model`` unchanged."""
        cfg = self.config
        t0 = time.perf_counter()
        examples = as_examples(requests)
        if not examples:
            raise EditkitError("no examples to edit")
        pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
        with preserved_state(model):
            run = self.make_run(model, tok, location, pad_id)
            encoded = encode_examples(tok, examples)
            kl_texts, held_texts = split_general(general_texts(cfg), cfg.kl_passages, cfg.league_passages)
            common: dict[str, Any] = {"max_length": cfg.max_length, "pad_id": pad_id, "device": run.device}
            kl_text = GeneralText(tok, kl_texts, batch_size=cfg.kl_batch, **common)
            held_out = GeneralText(tok, held_texts, batch_size=8, **common)
            t_setup = time.perf_counter() - t0
            t1 = time.perf_counter()
            for p in model.parameters():
                p.requires_grad_(False)
            trained = train_in_league(run, encoded, kl_text, held_out, cfg, progress)
        deltas = run.deltas(trained.best.state)
        info = {
            "n_examples": len(examples),
            "loss_types": dict(Counter(ex.loss_type for ex in examples)),
            **self.extra_info(run, location),
            "n_moved": len(deltas),
            "optimizer_steps": trained.steps,
            "general_passages": {"kl": kl_text.n_passages, "held_out": held_out.n_passages},
            "league": trained.info(),
        }
        return EditResult(
            method=self.name,
            deltas=deltas,
            location=location,
            config=cfg.to_dict(),
            timings={"setup": t_setup, "train": time.perf_counter() - t1},
            log=trained.log,
            info=info,
        )
