"""LocFT-BF (breadth-first localized fine-tuning) and FT-DF (the depth-first baseline).

LocFT-BF ("Fine-tuning Done Right in Model Editing", ICLR 2026): tune one
module, breadth-first: epochs over all requests in shuffled mini-batches,
cross-entropy on the target tokens only (text ``prompt + " " + target``
[+ EOS]), averaged per sample over its target tokens and then over the batch;
Adam (lr 5e-4, no weight decay, schedule or clipping), fp32; a batch whose
loss is below ``skip_loss`` is skipped; training stops when an epoch's mean
loss is below ``stop_loss``. Sequential use replays: new requests join the
cumulative set and training runs again over all of it.

What editkit adds (see ../shared/specs/editing.md):

- a schedule that still converges with few requests: at least ``min_steps``
  optimizer steps (epochs are raised to reach them), reported in ``info``;
- the hidden states entering the tuned block are computed once
  (:class:`~editkit.editors.prefix.PrefixCache`); nothing below is recomputed;
- locality: the update can be confined to the null space of preserved keys
  (AlphaEdit): ``W = W0 + D @ U U^T`` with ``D`` free (:mod:`.nullspace`).

FT-DF trains one request at a time, each to convergence, sequentially, with
the same loss and module: the classic baseline the breadth-first claim is
measured against.

>>> editor = make_editor("locft-bf")                                 # doctest: +SKIP
>>> result = editor.compute(model, tok, requests, editor.default_location(model))  # doctest: +SKIP
"""

from __future__ import annotations

import abc
import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from editkit.arch import get_module, weight_is_transposed
from editkit.batching import collate, encode_pairs, model_device
from editkit.editors.augment import context_prefixes
from editkit.editors.config import EditorConfig
from editkit.editors.nullspace import NullSpace, collect_inputs, null_space_projector
from editkit.editors.prefix import PrefixCache
from editkit.editors.preservation import preservation_pairs, preservation_texts
from editkit.editors.registry import Editor
from editkit.editors.result import EditResult
from editkit.errors import EditkitError
from editkit.lm import gathered_logits
from editkit.localize.location import Location
from editkit.requests import EditRequest

Progress = Callable[[str, int, int], None]


def _help(text: str, default: Any) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class LocFTConfig(EditorConfig):
    """LocFT-BF options (defaults: the published recipe, plus editkit's locality constraint)."""

    lr: float = _help(
        "Adam learning rate (published: 5e-4; the null-space constraint shrinks each step, "
        "and 5e-4 underfits it on the default model)",
        5e-3,
    )
    batch_size: int = _help("requests per mini-batch", 100)
    epochs: int = _help("epochs over all requests (the published 25)", 25)
    min_steps: int = _help("at least this many optimizer steps: epochs are raised for small request sets", 100)
    max_epochs: int = _help("upper bound on epochs after raising", 400)
    skip_loss: float = _help("skip a batch whose loss is below this", 1e-2)
    stop_loss: float = _help("stop when an epoch's mean loss is below this", 1e-2)
    eos: bool = _help("append EOS to every target (stops run-on generation)", False)
    cache_prefix: bool = _help("compute the hidden states entering the tuned block once", True)
    target_logits_only: bool = _help(
        "unembed only the positions that predict target tokens (the published code unembeds all)", True
    )
    null_space: bool = _help("confine the update to the null space of preserved keys (AlphaEdit)", True)
    null_threshold: float = _help("drop key directions with eigenvalue above this fraction of the largest", 1e-2)
    preserve_per_template: int = _help("preserved prompts per request template (other subjects)", 10)
    preserve_general: int = _help("passages of shipped general text to preserve", 20)
    preserve_file: str | None = _help("extra preservation text (.jsonl with 'text', or .txt)", None)
    preserve_kl: float = _help(
        "weight of a KL term keeping the unedited model's answer distributions on preserved "
        "same-template prompts about other subjects (0 = off)",
        0.0,
    )
    preserve_kl_batch: int = _help("preserved prompts sampled per optimizer step for the KL term", 32)
    augment_prefixes: int = _help(
        "also train each request after this many short openings of general text (ROME-style context "
        "templates; helps paraphrases, costs proportionally more per step)",
        0,
    )

    def __post_init__(self) -> None:
        for name in ("lr", "null_threshold"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.preserve_kl < 0:
            raise ValueError("preserve_kl must be >= 0")
        if self.augment_prefixes < 0:
            raise ValueError("augment_prefixes must be >= 0")
        for name in ("batch_size", "epochs", "max_epochs", "preserve_kl_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")

    def check_inputs(self) -> None:
        """What :meth:`compute` would only find out after loading and evaluating the model.

        Raises:
            InputError: null_space=true with no preservation text at all, or a
                preserve_file that does not exist.
        """
        from pathlib import Path

        from editkit.errors import InputError

        if not self.null_space:
            return
        if self.preserve_file and not Path(self.preserve_file).is_file():
            raise InputError(f"preserve_file={self.preserve_file}: no such file (the null space's preservation text)")
        if self.preserve_general <= 0 and self.preserve_per_template <= 0 and not self.preserve_file:
            raise InputError(
                "null_space=true needs preservation text, but preserve_general=0, preserve_per_template=0 and no "
                "preserve_file: raise preserve_general, pass preserve_file, or set null_space=false"
            )


@dataclass(frozen=True)
class FTDFConfig(LocFTConfig):
    """FT-DF options: the same loss and module, one request at a time."""

    steps_per_edit: int = _help("maximum optimizer steps per request (each trained to convergence)", 25)
    null_space: bool = _help("confine the update to the null space of preserved keys", False)


@contextlib.contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    """No parameter tracks gradients inside; flags and train/eval mode restored after."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    training = model.training
    for p, _ in flags:
        p.requires_grad_(False)
    model.eval()
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(training)


class _Tuner:
    """Free deltas ``D`` for the location's tensors, and the loss of a set of requests."""

    def __init__(self, model: nn.Module, tok: Any, requests: Sequence[EditRequest], location: Location, cfg: LocFTConfig) -> None:
        self.model, self.cfg = model, cfg
        self.params = location.parameters(model)
        prefixes = [""] + [p + " " for p in context_prefixes(cfg.augment_prefixes, seed=cfg.seed)]
        # variants[i]: the encoded sequences of request i (its prompt, then each prefixed copy)
        self.variants = [[i * len(prefixes) + k for k in range(len(prefixes))] for i in range(len(requests))]
        self.encoded = encode_pairs(
            tok,
            [p + r.prompt for r in requests for p in prefixes],
            [r.target_new for r in requests for _ in prefixes],
            append_eos=cfg.eos,
        )
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        # The KL term's sequences follow the requests' in ``encoded`` (one prefix cache for both).
        self.kl_seqs: list[int] = []
        self.kl_ref: list[torch.Tensor] = []
        self.kl_gen = torch.Generator().manual_seed(cfg.seed + 1)
        if cfg.preserve_kl > 0:
            pairs = preservation_pairs(requests, per_template=cfg.preserve_per_template)
            if not pairs:
                raise EditkitError("preserve_kl > 0 needs preserved prompts: raise preserve_per_template")
            first = len(self.encoded)
            self.encoded += encode_pairs(tok, [p for p, _ in pairs], [a for _, a in pairs])
            self.kl_seqs = list(range(first, len(self.encoded)))
            with _frozen(model):
                self.kl_ref = self._reference_logprobs(model)
        self.w0 = {n: p.detach().float().clone() for n, p in self.params.items()}
        self.spaces: dict[str, NullSpace] = {}
        self.transposed = {n: weight_is_transposed(model, n) for n in self.params}
        if cfg.null_space:
            texts = preservation_texts(
                requests,
                per_template=cfg.preserve_per_template,
                general=cfg.preserve_general,
                user_file=cfg.preserve_file,
            )
            if not texts:
                raise EditkitError("null_space=true needs preservation text: raise preserve_general or pass preserve_file")
            for name, p in self.params.items():
                if p.ndim == 2:
                    keys = collect_inputs(model, name.rsplit(".", 1)[0], tok, texts)
                    self.spaces[name] = null_space_projector(keys, cfg.null_threshold)
        # With the null-space constraint, biases (whose input is the constant 1) stay frozen.
        trainable = [n for n, p in self.params.items() if not cfg.null_space or p.ndim == 2]
        device = model_device(model)
        self.d = {n: torch.zeros_like(self.w0[n], device=device, requires_grad=True) for n in trainable}
        self.proj = {n: s.projector.to(device) for n, s in self.spaces.items()}
        layers = location.layers
        self.prefix = (
            PrefixCache.build(model, self.encoded, layer=min(layers), pad_id=self.pad_id)
            if cfg.cache_prefix and layers
            else None
        )

    @torch.no_grad()
    def _reference_logprobs(self, model: nn.Module, batch_size: int = 32) -> list[torch.Tensor]:
        """The unedited model's log-probabilities at the KL sequences' answer positions (``[T_i, V]`` each)."""
        out: list[torch.Tensor] = []
        device = model_device(model)
        for part in range(0, len(self.kl_seqs), batch_size):
            batch = collate([self.encoded[i] for i in self.kl_seqs[part : part + batch_size]], pad_id=self.pad_id).to(device)
            logits = gathered_logits(model, batch, lambda kw: model(**kw))
            out += [lp.cpu() for lp in batch.split(torch.log_softmax(logits.float(), dim=-1))]
        return out

    def delta(self, name: str) -> torch.Tensor:
        d = self.d[name]
        if name not in self.proj:
            return d
        # Input side: W is [out, in] (x -> W x), or [in, out] when stored transposed (Conv1D).
        return self.proj[name] @ d if self.transposed[name] else d @ self.proj[name]

    def weights(self) -> dict[str, torch.Tensor]:
        return {n: (self.w0[n].to(self.d[n].device) + self.delta(n)).to(self.params[n].dtype) for n in self.d}

    def _target_logits(self, idx: Sequence[int], weights: dict[str, torch.Tensor]) -> tuple[Any, torch.Tensor]:
        """The batch of sequences ``idx`` and the edited model's logits at its target positions."""

        def run(kwargs: dict[str, Any]) -> Any:
            return torch.func.functional_call(self.model, weights, (), kwargs, strict=False)

        if self.prefix is not None:
            batch = self.prefix.prepare(self.model, idx)
        else:
            batch = collate([self.encoded[i] for i in idx], pad_id=self.pad_id).to(model_device(self.model))
        if self.cfg.target_logits_only:
            return batch, gathered_logits(self.model, batch, run)
        return batch, batch.target_logits(run({**batch.model_inputs(), "use_cache": False}).logits)

    def loss(self, requests: Sequence[int]) -> torch.Tensor:
        """Mean over the batch (requests and their prefixed copies) of each sequence's mean target-token NLL."""
        idx = [j for i in requests for j in self.variants[i]]
        batch, logits = self._target_logits(idx, self.weights())
        return batch.mean_nll_of_target_logits(logits).mean()

    def kl(self) -> torch.Tensor | None:
        """KL(unedited || edited) at the answer positions of a random batch of preserved prompts (None when off)."""
        if not self.kl_seqs:
            return None
        n = len(self.kl_seqs)
        pick = torch.randperm(n, generator=self.kl_gen)[: self.cfg.preserve_kl_batch].tolist()
        batch, logits = self._target_logits([self.kl_seqs[k] for k in pick], self.weights())
        ref = torch.cat([self.kl_ref[k] for k in pick]).to(logits.device)
        lp = torch.log_softmax(logits.float(), dim=-1)
        return (ref.exp() * (ref - lp)).sum(-1).mean()

    def objective(self, loss: torch.Tensor) -> torch.Tensor:
        """What the optimizer minimizes: the edit loss, plus the weighted KL term when it is on."""
        kl = self.kl()
        return loss if kl is None else loss + self.cfg.preserve_kl * kl

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        with _frozen(self.model), (self.prefix.active(self.model) if self.prefix else contextlib.nullcontext()):
            yield

    def deltas(self) -> dict[str, torch.Tensor]:
        return {n: self.delta(n).detach().float().cpu() for n in self.d}


def _info(tuner: _Tuner) -> dict[str, Any]:
    return {
        "null_space": {n: s.describe() for n, s in tuner.spaces.items()},
        "prefix_cached_at_layer": tuner.prefix.layer if tuner.prefix else None,
        "n_requests": len(tuner.variants),
        "n_sequences": len(tuner.encoded) - len(tuner.kl_seqs),
        "kl_preserved_prompts": len(tuner.kl_seqs),
    }


class _LocalizedFinetune(Editor[Any]):
    """What LocFT-BF and FT-DF share: the tuner, the optimizer, the result. Subclasses order the steps."""

    #: an early MLP, where subjects are enriched (ROME's site): layer 4 of 30 on the default
    #: model, which beat layers 6-20 on reliability, generalization, locality and perplexity
    #: (README, "Which layer to tune"; bench/locft_layers.py)
    default_layer = 0.14

    def compute(
        self,
        model: Any,
        tok: Any,
        requests: Sequence[EditRequest],
        location: Location,
        *,
        progress: Progress | None = None,
    ) -> EditResult:
        if not requests:
            raise EditkitError("no requests to edit")
        t0 = time.perf_counter()
        tuner = _Tuner(model, tok, requests, location, self.config)
        t_setup = time.perf_counter() - t0
        opt = torch.optim.Adam(list(tuner.d.values()), lr=self.config.lr)
        t1 = time.perf_counter()
        with tuner.session():
            log, schedule = self._train(tuner, opt, len(requests), progress)
        return EditResult(
            method=self.name,
            deltas=tuner.deltas(),
            location=location,
            config=self.config.to_dict(),
            timings={"setup": t_setup, "train": time.perf_counter() - t1},
            log=log,
            info={**_info(tuner), "schedule": schedule},
        )

    @abc.abstractmethod
    def _train(
        self, tuner: _Tuner, opt: torch.optim.Optimizer, n: int, progress: Progress | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Run the optimizer steps in this method's order; return the log and the schedule run."""


class LocFTBF(_LocalizedFinetune):
    """Breadth-first localized fine-tuning: epochs over all requests, one tuned module."""

    def _train(
        self, tuner: _Tuner, opt: torch.optim.Optimizer, n: int, progress: Progress | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        cfg = self.config
        steps_per_epoch = math.ceil(n / cfg.batch_size)
        epochs = min(cfg.max_epochs, max(cfg.epochs, math.ceil(cfg.min_steps / steps_per_epoch)))
        gen = torch.Generator().manual_seed(cfg.seed)
        log: list[dict[str, Any]] = []
        steps = skipped = 0
        stopped_early = False
        for epoch in range(epochs):
            order = torch.randperm(n, generator=gen).tolist()
            losses = []
            for start in range(0, n, cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                loss = tuner.loss(idx)
                losses.append(loss.item() * len(idx))
                if loss.item() < cfg.skip_loss:
                    skipped += 1
                    continue
                opt.zero_grad(set_to_none=True)
                tuner.objective(loss).backward()
                opt.step()
                steps += 1
            mean_loss = sum(losses) / n
            log.append({"epoch": epoch + 1, "mean_loss": mean_loss, "steps": steps, "skipped": skipped})
            if progress:
                progress(f"epoch {epoch + 1} loss {mean_loss:.4f}", epoch + 1, epochs)
            if mean_loss < cfg.stop_loss:
                stopped_early = True
                break
        return log, {
            "epochs_planned": epochs,
            "epochs_run": len(log),
            "steps_per_epoch": steps_per_epoch,
            "optimizer_steps": steps,
            "skipped_batches": skipped,
            "stopped_early": stopped_early,
            "raised_for_min_steps": epochs > cfg.epochs,
        }


class FTDF(_LocalizedFinetune):
    """Depth-first fine-tuning: one request at a time, each to convergence, sequentially."""

    def _train(
        self, tuner: _Tuner, opt: torch.optim.Optimizer, n: int, progress: Progress | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        cfg = self.config
        log: list[dict[str, Any]] = []
        total = 0
        for i in range(n):
            steps = 0
            loss = tuner.loss([i])
            while loss.item() >= cfg.stop_loss and steps < cfg.steps_per_edit:
                opt.zero_grad(set_to_none=True)
                tuner.objective(loss).backward()
                opt.step()
                steps += 1
                loss = tuner.loss([i])
            total += steps
            log.append({"request": i, "final_loss": loss.item(), "steps": steps})
            if progress:
                progress(f"request {i + 1}", i + 1, n)
        return log, {"optimizer_steps": total, "steps_per_edit_max": cfg.steps_per_edit}


def get_weight(model: nn.Module, name: str) -> torch.Tensor:
    """The current value of parameter ``name`` (for tests and reports)."""
    module_path, _, attr = name.rpartition(".")
    return getattr(get_module(model, module_path), attr)
