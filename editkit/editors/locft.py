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
- scale: requests may be any iterable (a :class:`~editkit.requests.RequestFile`
  is read lazily, again when the preservation set needs them), each kept only as
  token ids (:class:`~editkit.editors.hidden_store.TokenStore`); the cached states
  go to a temporary file above ``cache_memory_mb``, so memory is bounded by the
  batch, not by the request count (``bench/locft_scale_bench.py``);
- resumable: with a checkpoint folder, LocFT-BF saves its state (free matrices,
  Adam moments, generator states, position in the epoch) every
  ``checkpoint_every`` batches and at the end, and ``resume=True`` continues to
  the same deltas as an uninterrupted run (:mod:`.checkpoint`);
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
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from torch import nn

from editkit.arch import get_module, weight_is_transposed
from editkit.batching import collate, encode_pairs, model_device
from editkit.editors.augment import context_prefixes
from editkit.editors.checkpoint import (
    check_identity,
    load_checkpoint,
    optimizer_tensors,
    restore_optimizer,
    save_checkpoint,
    tensor_digest,
)
from editkit.editors.config import EditorConfig
from editkit.editors.hidden_store import TokenStore
from editkit.editors.nullspace import NullSpace, collect_inputs, null_space_projector
from editkit.editors.prefix import PrefixCache
from editkit.editors.preservation import preservation_pairs, preservation_texts
from editkit.editors.registry import Editor
from editkit.editors.result import EditResult
from editkit.errors import EditkitError, InputError
from editkit.lm import gathered_logits
from editkit.localize.location import Location
from editkit.placement import check_on_device
from editkit.requests import EditRequest

Progress = Callable[[str, int, int], None]

CHECKPOINT = "locft.safetensors"
CHECKPOINT_FORMAT = "editkit-locft-checkpoint/1"
#: options that change where or how often state is kept, not the result: a run may resume with others
_STORAGE_OPTIONS = ("cache_memory_mb", "cache_dir", "checkpoint_every")
# what a checkpoint's identity is checked for before a resumed run's setup, and how a mismatch is named
_EARLY_LABELS = {"config": "options", "requests": "requests", "weights": "weights in the tuned layers", "model": "model weights"}


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
    cache_memory_mb: float = _help(
        "memory (on the model's device) the cached hidden states may take; above it they go to a "
        "temporary file read batch by batch (same results, memory bounded by the batch)",
        1024.0,
    )
    cache_dir: str | None = _help(
        "folder for that file (default: the checkpoint folder when there is one, else the system's "
        "temporary folder; avoid a /tmp held in memory for very large runs)",
        None,
    )
    checkpoint_every: int = _help(
        "LocFT-BF with a checkpoint folder (editkit edit keeps one in OUT.checkpoint): save the "
        "training state every this many batches, to continue with --resume",
        100,
    )

    def __post_init__(self) -> None:
        for name in ("lr", "null_threshold"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.preserve_kl < 0:
            raise ValueError("preserve_kl must be >= 0")
        if self.augment_prefixes < 0:
            raise ValueError("augment_prefixes must be >= 0")
        if self.cache_memory_mb < 0:
            raise ValueError("cache_memory_mb must be >= 0")
        for name in ("batch_size", "epochs", "max_epochs", "preserve_kl_batch", "checkpoint_every"):
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


def _encode_requests(
    tok: Any, requests: Iterable[EditRequest], prefixes: Sequence[str], append_eos: bool, store: TokenStore, chunk: int = 256
) -> int:
    """Append every request's sequences (its prompt after each prefix) to ``store``; returns the request count."""
    n = 0
    part: list[EditRequest] = []

    def flush() -> None:
        store.extend(
            encode_pairs(
                tok,
                [p + r.prompt for r in part for p in prefixes],
                [r.target_new for r in part for _ in prefixes],
                append_eos=append_eos,
            )
        )
        part.clear()

    for request in requests:
        part.append(request)
        n += 1
        if len(part) == chunk:
            flush()
    if part:
        flush()
    return n


class _Tuner:
    """Free deltas ``D`` for the location's tensors, and the loss of a set of requests.

    Requests are read once to encode them (token ids only); the preservation set
    reads them again, so a one-shot iterator is kept as a list when it is needed
    (pass a re-iterable such as :class:`~editkit.requests.RequestFile` to avoid that).
    """

    def __init__(
        self,
        model: nn.Module,
        tok: Any,
        requests: Iterable[EditRequest],
        location: Location,
        cfg: LocFTConfig,
        *,
        cache_dir: str | Path | None = None,
        expect: Mapping[str, Any] | None = None,
        where: str | Path = "",
    ) -> None:
        self.model, self.cfg = model, cfg
        self._model_sha256: str | None = None
        self.resumed: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None  # the checkpoint resumed from
        self.params = location.parameters(model)
        if isinstance(requests, Iterator) and (cfg.null_space or cfg.preserve_kl > 0):
            requests = list(requests)  # the preservation set reads them again
        prefixes = [""] + [p + " " for p in context_prefixes(cfg.augment_prefixes, seed=cfg.seed)]
        # request i is sequences i * n_variants + k of ``encoded`` (its prompt, then each prefixed copy)
        self.n_variants = len(prefixes)
        self.encoded = TokenStore()
        self.n_requests = _encode_requests(tok, requests, prefixes, cfg.eos, self.encoded)
        if self.n_requests == 0:
            raise EditkitError("no requests to edit")
        reread = cast(Sequence[EditRequest], requests)  # only iterated (again) below
        self.w0 = {n: p.detach().float().clone() for n, p in self.params.items()}
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        # The KL term's sequences follow the requests' in ``encoded`` (one prefix cache for both).
        self.kl_seqs: list[int] = []
        self.kl_ref: list[torch.Tensor] = []
        self.kl_gen = torch.Generator().manual_seed(cfg.seed + 1)
        if cfg.preserve_kl > 0:
            pairs = preservation_pairs(reread, per_template=cfg.preserve_per_template)
            if not pairs:
                raise EditkitError("preserve_kl > 0 needs preserved prompts: raise preserve_per_template")
            first = len(self.encoded)
            self.encoded.extend(encode_pairs(tok, [p for p, _ in pairs], [a for _, a in pairs]))
            self.kl_seqs = list(range(first, len(self.encoded)))
        if expect is not None:  # a resumed run: refuse another model, options or requests before the slow setup
            check_identity(expect, self._identity(), where, _EARLY_LABELS)
        if self.kl_seqs:
            with _frozen(model):
                self.kl_ref = self._reference_logprobs(model)
        self.spaces: dict[str, NullSpace] = {}
        self.transposed = {n: weight_is_transposed(model, n) for n in self.params}
        if cfg.null_space:
            texts = preservation_texts(
                reread,
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
        # The free matrices live where their parameter does (with a device map, that block's device),
        # in fp32 whatever the weights' storage dtype: Adam's state and the deltas are fp32.
        self.d = {n: torch.zeros_like(self.w0[n], requires_grad=True) for n in trainable}
        self.proj = {n: s.projector.to(self.w0[n].device) for n, s in self.spaces.items()}
        layers = location.layers
        self.prefix = (
            PrefixCache.build(
                model, self.encoded, layer=min(layers), pad_id=self.pad_id,
                memory_budget=int(cfg.cache_memory_mb * 2**20), directory=cfg.cache_dir or cache_dir,
            )
            if cfg.cache_prefix and layers
            else None
        )

    def variants(self, i: int) -> range:
        """Indices in ``encoded`` of request ``i``'s sequences."""
        return range(i * self.n_variants, (i + 1) * self.n_variants)

    def model_sha256(self) -> str:
        """:func:`~editkit.report.weights_sha256` of the whole model, computed once (on first use).

        Every weight is read (offloaded ones where they are stored): about 1-2 s per GB
        of weights on one CPU core, paid once by a run that checkpoints or resumes.
        The model is not written to while it is tuned, so the value stays valid; call it
        before :meth:`session` (the prefix cache changes what the model's state holds).
        """
        if self._model_sha256 is None:
            from editkit.report.provenance import weights_sha256

            self._model_sha256 = weights_sha256(self.model)
        return self._model_sha256

    def _identity(self) -> dict[str, Any]:
        """What a resumed run must match and can be checked before the setup's forwards (see :meth:`identity`)."""
        options = {k: v for k, v in self.cfg.to_dict().items() if k not in _STORAGE_OPTIONS}
        return {
            "config": json.loads(json.dumps(options)),
            "requests": {"n": self.n_requests, "tokens": self.encoded.fingerprint()},
            "weights": tensor_digest(self.w0),
            "model": self.model_sha256(),
        }

    def identity(self) -> dict[str, Any]:
        """What a checkpoint of this run must match to be resumed.

        The options (but those that only say where state is kept), the encoded
        requests, the tuned tensors, the whole model's weights (:meth:`model_sha256`)
        and the null-space projectors.
        """
        return {**self._identity(), "null_space": tensor_digest({n: p for n, p in self.proj.items()})}

    def close(self) -> None:
        """Release the prefix cache (and its file, if it went to disk)."""
        if self.prefix is not None:
            self.prefix.close()

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
        idx = [j for i in requests for j in self.variants(i)]
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
        "prefix_cache": (
            {"storage": tuner.prefix.storage, "mb": tuner.prefix.states.nbytes / 2**20} if tuner.prefix else None
        ),
        "n_requests": tuner.n_requests,
        "n_sequences": len(tuner.encoded) - len(tuner.kl_seqs),
        "kl_preserved_prompts": len(tuner.kl_seqs),
    }


class _LocalizedFinetune(Editor[Any]):
    """What LocFT-BF and FT-DF share: the tuner, the optimizer, the result. Subclasses order the steps."""

    #: an early MLP, where subjects are enriched (ROME's site): layer 4 of 30 on the default
    #: model, which beat layers 6-20 on reliability, generalization, locality and perplexity
    #: (README, "Which layer to tune"; bench/locft_layers.py)
    default_layer = 0.14

    #: whether :meth:`compute` can checkpoint and resume (``checkpoint_dir``, ``resume``)
    resumable: ClassVar[bool] = False

    def compute(
        self,
        model: Any,
        tok: Any,
        requests: Iterable[EditRequest],
        location: Location,
        *,
        progress: Progress | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
    ) -> EditResult:
        """Tune the location's parameters on ``requests`` (a sequence, a re-iterable, or an iterator).

        Args:
            progress: ``progress(stage, done, total)`` after every batch (LocFT-BF) or request (FT-DF).
            checkpoint_dir: a folder for the training state (LocFT-BF: written every
                ``checkpoint_every`` batches and at the end; the caller deletes it once the
                result is safe). It also holds the cached states' file when they go to disk.
            resume: continue from the checkpoint in ``checkpoint_dir`` (same model, requests
                and options, except the ones that only say where state is kept).
        """
        if isinstance(requests, Sized) and len(requests) == 0:
            raise EditkitError("no requests to edit")
        check_on_device(model, location.sites, self.name)  # an offloaded weight cannot be tuned in place
        folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
        if resume and not self.resumable:
            raise EditkitError(f"{self.name} does not checkpoint, so it cannot resume: run it again from the start")
        if resume and (folder is None or not has_checkpoint(folder)):
            raise InputError(f"no {self.name} checkpoint to resume from in {folder}: run without resume")
        saved = None
        if resume and folder is not None:  # checked against the run before its setup (prefix cache, KL, null space)
            saved = load_checkpoint(folder / CHECKPOINT, CHECKPOINT_FORMAT, what="LocFT-BF checkpoint")
        t0 = time.perf_counter()
        tuner = _Tuner(
            model, tok, requests, location, self.config, cache_dir=folder,
            expect=saved[1].get("identity", {}) if saved is not None else None, where=folder / CHECKPOINT if folder else "",
        )
        tuner.resumed = saved
        try:
            if self.resumable and folder is not None:
                tuner.model_sha256()  # for the checkpoints' identity: read outside the training session
            t_setup = time.perf_counter() - t0
            opt = torch.optim.Adam(list(tuner.d.values()), lr=self.config.lr)
            t1 = time.perf_counter()
            with tuner.session():
                log, schedule = self._train(tuner, opt, progress, folder if self.resumable else None, resume)
            deltas = tuner.deltas()
        finally:
            tuner.close()
        return EditResult(
            method=self.name,
            deltas=deltas,
            location=location,
            config=self.config.to_dict(),
            timings={"setup": t_setup, "train": time.perf_counter() - t1},
            log=log,
            info={**_info(tuner), "schedule": schedule},
        )

    @abc.abstractmethod
    def _train(
        self, tuner: _Tuner, opt: torch.optim.Optimizer, progress: Progress | None, folder: Path | None, resume: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Run the optimizer steps in this method's order; return the log and the schedule run."""


def has_checkpoint(folder: str | Path) -> bool:
    """Whether ``folder`` holds a LocFT-BF training checkpoint."""
    return (Path(folder) / CHECKPOINT).is_file()


@dataclass
class _Position:
    """Where a breadth-first run is: what a checkpoint saves besides the tensors."""

    epoch: int = 0  # the current epoch (0-based)
    start: int = 0  # position in this epoch's order of the next batch
    losses: list[float] = field(default_factory=list)  # this epoch's batch losses x batch size, so far
    epoch_rng: torch.Tensor | None = None  # the order generator's state before this epoch's permutation
    batches: int = 0
    steps: int = 0
    skipped: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    done: bool = False

    def state(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "epoch_rng"}


class LocFTBF(_LocalizedFinetune):
    """Breadth-first localized fine-tuning: epochs over all requests, one tuned module."""

    resumable = True

    def _train(
        self, tuner: _Tuner, opt: torch.optim.Optimizer, progress: Progress | None, folder: Path | None, resume: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        cfg = self.config
        n = tuner.n_requests
        steps_per_epoch = math.ceil(n / cfg.batch_size)
        epochs = min(cfg.max_epochs, max(cfg.epochs, math.ceil(cfg.min_steps / steps_per_epoch)))
        total = epochs * steps_per_epoch
        gen = torch.Generator().manual_seed(cfg.seed)
        pos = _restore(folder, tuner, opt) if resume and folder is not None else _Position()
        resumed = {"epoch": pos.epoch + 1, "batch": pos.batches} if resume else None
        saved = 0

        def checkpoint() -> None:
            nonlocal saved
            if folder is not None:
                _save(folder, tuner, opt, pos)
                saved += 1

        for epoch in range(pos.epoch, epochs if not pos.done else pos.epoch):
            if pos.epoch_rng is None:  # a new epoch
                pos.epoch_rng = gen.get_state()
            else:  # resumed inside this epoch: the same permutation again
                gen.set_state(pos.epoch_rng)
            order = torch.randperm(n, generator=gen)
            for start in range(pos.start, n, cfg.batch_size):
                idx = order[start : start + cfg.batch_size].tolist()
                loss = tuner.loss(idx)
                pos.losses.append(loss.item() * len(idx))
                if loss.item() < cfg.skip_loss:
                    pos.skipped += 1
                else:
                    opt.zero_grad(set_to_none=True)
                    tuner.objective(loss).backward()
                    opt.step()
                    pos.steps += 1
                pos.batches += 1
                pos.start = start + cfg.batch_size
                if pos.batches % cfg.checkpoint_every == 0:
                    checkpoint()
                if progress:
                    progress(f"epoch {epoch + 1}/{epochs}", pos.batches, total)
            mean_loss = sum(pos.losses) / n
            pos.log.append({"epoch": epoch + 1, "mean_loss": mean_loss, "steps": pos.steps, "skipped": pos.skipped})
            if progress:
                progress(f"epoch {epoch + 1} loss {mean_loss:.4f}", pos.batches, total)
            pos.epoch, pos.start, pos.losses, pos.epoch_rng = epoch + 1, 0, [], None
            if mean_loss < cfg.stop_loss:
                pos.stopped_early = True
                break
        if not pos.done:
            pos.done = True
            checkpoint()  # a rerun after a later failure (evaluating, saving) skips the training
        return pos.log, {
            "epochs_planned": epochs,
            "epochs_run": len(pos.log),
            "steps_per_epoch": steps_per_epoch,
            "optimizer_steps": pos.steps,
            "skipped_batches": pos.skipped,
            "stopped_early": pos.stopped_early,
            "raised_for_min_steps": epochs > cfg.epochs,
            "resumed_from": resumed,
            "checkpoints_written": saved,
        }


def _save(folder: Path, tuner: _Tuner, opt: torch.optim.Optimizer, pos: _Position) -> None:
    tensors = {f"d.{n}": d for n, d in tuner.d.items()}
    tensors.update(optimizer_tensors(opt, tuner.d))
    tensors["rng.kl"] = tuner.kl_gen.get_state()
    if pos.epoch_rng is not None:
        tensors["rng.order"] = pos.epoch_rng
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / CHECKPOINT, CHECKPOINT_FORMAT, tensors, {"identity": tuner.identity(), **pos.state()})


def _restore(folder: Path, tuner: _Tuner, opt: torch.optim.Optimizer) -> _Position:
    path = folder / CHECKPOINT
    tensors, state = tuner.resumed or load_checkpoint(path, CHECKPOINT_FORMAT, what="LocFT-BF checkpoint")
    check_identity(state.get("identity", {}), tuner.identity(), path, {**_EARLY_LABELS, "null_space": "preservation set"})
    missing = [n for n in tuner.d if f"d.{n}" not in tensors]
    if missing or "rng.kl" not in tensors:
        raise InputError(f"{path}: the LocFT-BF checkpoint lacks {', '.join(missing) or 'rng.kl'}; delete it to start over")
    with torch.no_grad():
        for name, d in tuner.d.items():
            d.copy_(tensors[f"d.{name}"])
    restore_optimizer(opt, tuner.d, tensors)
    tuner.kl_gen.set_state(tensors["rng.kl"])
    fields = {k: state[k] for k in _Position().state() if k in state}
    return _Position(**fields, epoch_rng=tensors.get("rng.order"))


class FTDF(_LocalizedFinetune):
    """Depth-first fine-tuning: one request at a time, each to convergence, sequentially."""

    def _train(
        self, tuner: _Tuner, opt: torch.optim.Optimizer, progress: Progress | None, folder: Path | None, resume: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        cfg = self.config
        n = tuner.n_requests
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
