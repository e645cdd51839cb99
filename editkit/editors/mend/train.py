"""Training MEND editor networks for one base model.

The published recipe, in editkit's terms: the base model is frozen; each
step edits a batch of requests with the current networks and minimizes
``0.1 * L_edit + 1.0 * L_loc`` (:mod:`.episodes`); Adam for the networks, a
separate Adam (lr 1e-4) for the per-matrix step sizes, gradients clipped at
norm 100 and optionally accumulated over several batches; validation every
``val_every`` steps, early stopping when the validation loss has not improved
for ``patience`` validations, and the best editor (lowest validation loss) is
the one returned. "Validation edit loss" here is that same objective on the
validation requests (the published early-stopping key); its two parts are
logged too.

What differs from the published defaults, and why: the networks' learning
rate is 1e-4, not 1e-6 (which is tuned for up to 500K steps on a GPU), so the
default 500 steps of 8 edits train in minutes on a 135M model (estimated at
1-2 s per step on a 2-core CPU: the hidden states below the edited blocks are
computed once per sequence, only the top blocks run forward and backward);
and one step runs ``batch_size`` independent single-edit episodes in one
batched forward (the published code accumulates 10 steps of one edit).

Checkpoints (``checkpoint_dir``) are written at every validation; with
``resume=True`` training continues from the last one exactly (data order and
sampling are functions of the seed and the step, not of a global RNG).

>>> result = train_editor(model, tok, train, val, MendTrainConfig(), base_model="smollm2-135m-instruct")  # doctest: +SKIP
>>> save_editor(result.net, "runs/mend", training=result.info, log=result.log)                          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from editkit.batching import model_device
from editkit.editors.checkpoint import tensor_digest
from editkit.editors.config import EditorConfig, option
from editkit.editors.mend.capture import frozen
from editkit.editors.mend.episodes import Episode, Outcome, make_episode, run_episode
from editkit.editors.mend.nets import MendNet
from editkit.editors.mend.nullspace import MendNullSpace
from editkit.editors.mend.spec import build_spec, default_rank, mend_location
from editkit.editors.mend.store import has_checkpoint, load_checkpoint, save_checkpoint
from editkit.errors import EditkitError, InputError
from editkit.requests import EditRequest

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class MendTrainConfig(EditorConfig):
    """Options of ``editkit mend train`` (defaults: the published recipe, sized for CPU runs)."""

    layers: tuple[int, ...] = option("blocks whose matrices are edited (negative counts from the end); empty: the last 3", ())
    modules: tuple[str, ...] = option(
        "modules whose weight matrices are edited: mlp_up (gate and up on gated MLPs), mlp_down, attn_out",
        ("mlp_up", "mlp_down"),
    )
    rank: int = option("rank of the editor networks' low-rank blocks; 0: min(1920, hidden_size // 4)", 0)
    lr: float = option(
        "Adam learning rate of the editor networks; 1e-4 suits runs of a few hundred steps (minutes on a "
        "135M model); the published 1e-6 is for up to 500K steps",
        1e-4,
    )
    step_lr: float = option("Adam learning rate of the per-matrix step sizes (published)", 1e-4)
    step_init: float = option("initial per-matrix step size (published)", 1e-4)
    edit_weight: float = option("weight of the equivalence NLL in the loss (published)", 0.1)
    loc_weight: float = option("weight of the locality KL in the loss (published)", 1.0)
    loc_scope: Literal["answer", "text"] = option(
        "locality KL at the positions predicting a neighbor's answer (what locality measures) or at every "
        "position of its text (the paper, with Natural Questions inputs)",
        "answer",
    )
    batch_size: int = option("requests per batch: independent edit episodes run in one forward", 8)
    edits_per_episode: int = option("requests combined into one update (1: single edits; more trains for batched editing)", 1)
    accumulate: int = option("batches per optimizer step (gradient accumulation)", 1)
    grad_clip: float = option("clip the gradient norm of networks and step sizes at this (published)", 100.0)
    max_steps: int = option("optimizer steps at most (500 x 8 requests: about one epoch over 4K requests)", 500)
    val_every: int = option("validate (and checkpoint) every this many steps", 50)
    val_size: int = option("validation requests used (the first ones); 0: all", 200)
    val_fraction: float = option("fraction of the training requests held out for validation when none are given", 0.1)
    patience: int = option("stop after this many validations without improvement", 5)

    def __post_init__(self) -> None:
        for name in ("lr", "step_lr", "step_init", "grad_clip"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("batch_size", "edits_per_episode", "accumulate", "max_steps", "val_every", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.batch_size % self.edits_per_episode:
            raise ValueError("batch_size must be a multiple of edits_per_episode")
        if self.rank < 0 or self.val_size < 0 or not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("rank and val_size must be >= 0, val_fraction in [0, 1)")
        if self.edit_weight < 0 or self.loc_weight < 0:
            raise ValueError("loss weights must be >= 0")


@dataclass
class TrainResult:
    """A trained editor and how it got there.

    Attributes:
        net: the best editor (lowest validation loss; the last one without validation), in eval mode.
        log: one row per optimizer step (``split: train``) and per validation (``split: val``).
        info: the summary: steps, best step and its validation metrics, early stop, timings.
    """

    net: MendNet
    log: list[dict[str, Any]]
    info: dict[str, Any]


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:7], "little")


def _fingerprint(requests: Sequence[EditRequest]) -> str:
    text = json.dumps([r.to_dict() for r in requests], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def split_validation(
    requests: Sequence[EditRequest], fraction: float, seed: int
) -> tuple[list[EditRequest], list[EditRequest]]:
    """Hold out ``ceil(fraction * n)`` requests (seeded shuffle); ``(train, val)``."""
    n = len(requests)
    n_val = math.ceil(fraction * n) if fraction > 0 else 0
    if n_val and n - n_val < 1:
        raise InputError(f"{n} training requests are too few to hold out {fraction:g} for validation: pass --val")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(_seed("split", seed))).tolist()
    held = set(order[:n_val])
    return [r for i, r in enumerate(requests) if i not in held], [r for i, r in enumerate(requests) if i in held]


def _adam_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    state = opt.state_dict()
    tensors = {
        f"{prefix}.{index}.{key}": value if isinstance(value, torch.Tensor) else torch.tensor(value)
        for index, entry in state["state"].items()
        for key, value in entry.items()
    }
    return tensors, state["param_groups"]


def _restore_adam(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]], prefix: str) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            index, key = name[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(index), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": groups})


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


class _Trainer:
    """The state of one training run (what a checkpoint holds) and its steps."""

    def __init__(
        self,
        model: nn.Module,
        tok: Any,
        train: list[EditRequest],
        val: list[EditRequest],
        cfg: MendTrainConfig,
        base_model: str,
        null: MendNullSpace | None = None,
    ) -> None:
        self.model, self.tok, self.train, self.val, self.cfg = model, tok, train, val, cfg
        self.null = null
        location = mend_location(model, cfg.layers, cfg.modules)
        rank = cfg.rank or default_rank(model)
        self.spec = build_spec(model, location, rank=rank, step_init=cfg.step_init, base_model=base_model)
        self.device = model_device(model)
        self.net = MendNet(self.spec, seed=cfg.seed).to(self.device)
        self.opt_net = torch.optim.Adam(list(self.net.network_parameters()), lr=cfg.lr)
        self.opt_step = torch.optim.Adam([self.net.step_sizes], lr=cfg.step_lr)
        self.layer = min(location.layers)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.step = 0
        self.best_loss = math.inf
        self.best_step = 0
        self.bad = 0
        self.best_state: dict[str, torch.Tensor] = self._state()
        self.log: list[dict[str, Any]] = []
        self.running: dict[str, float] = {}
        self.elapsed = 0.0
        self._val_episode: Episode | None = None

    def _state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed."""
        # Raising max_steps or patience on resume continues the same run.
        options = {k: v for k, v in self.cfg.to_dict().items() if k not in ("max_steps", "patience")}
        return {
            "config": json.loads(json.dumps(options)),
            "train": _fingerprint(self.train),
            "val": _fingerprint(self.val),
            "base_weights_sha256": self.spec.base_weights_sha256,
            "null_space": None if self.null is None else {
                "threshold": self.null.threshold, "scale": self.null.scale, "bases": tensor_digest(self.null.bases),
            },
        }

    # -- data -----------------------------------------------------------------------------

    def micro_batch(self, index: int) -> list[EditRequest]:
        """Requests of micro-batch ``index`` (epochs of seeded permutations)."""
        per_epoch = math.ceil(len(self.train) / self.cfg.batch_size)
        epoch, position = divmod(index, per_epoch)
        order = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(_seed("epoch", self.cfg.seed, epoch)))
        idx = order[position * self.cfg.batch_size : (position + 1) * self.cfg.batch_size].tolist()
        return [self.train[i] for i in idx]

    def episode(self, requests: Sequence[EditRequest], rng: torch.Generator | None) -> Episode:
        return make_episode(
            self.model, self.tok, requests, rng=rng, edits_per_episode=self.cfg.edits_per_episode,
            layer=self.layer, pad_id=self.pad_id, loc_scope=self.cfg.loc_scope,
        )

    def run(self, ep: Episode) -> Outcome:
        return run_episode(
            self.model, self.net, ep, edit_weight=self.cfg.edit_weight, loc_weight=self.cfg.loc_weight, null=self.null
        )

    # -- steps ----------------------------------------------------------------------------

    def train_step(self) -> dict[str, Any]:
        cfg = self.cfg
        self.net.train()
        self.opt_net.zero_grad(set_to_none=True)
        self.opt_step.zero_grad(set_to_none=True)
        outcomes = []
        for k in range(cfg.accumulate):
            index = self.step * cfg.accumulate + k
            rng = torch.Generator().manual_seed(_seed("sample", cfg.seed, index))
            out = self.run(self.episode(self.micro_batch(index), rng))
            (out.loss / cfg.accumulate).backward()
            outcomes.append(out)
        params = [*self.net.network_parameters(), self.net.step_sizes]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        self.opt_net.step()
        self.opt_step.step()
        self.step += 1
        metrics = {
            "loss": sum(float(o.loss.detach()) for o in outcomes) / len(outcomes),
            "edit_nll": sum(o.edit_nll for o in outcomes) / len(outcomes),
            "loc_kl": sum(o.loc_kl for o in outcomes) / len(outcomes),
            "edit_success": sum(o.edit_success for o in outcomes) / len(outcomes),
            "drawdown": sum(o.drawdown for o in outcomes) / len(outcomes),
            "grad_norm": grad_norm,
            "mean_step_size": float(self.net.step_sizes.detach().mean()),
        }
        for key in ("loss", "edit_success", "drawdown"):  # exponential moving averages for the progress bar
            previous = self.running.get(key)
            self.running[key] = metrics[key] if previous is None else 0.9 * previous + 0.1 * metrics[key]
        row = {"split": "train", "step": self.step, **metrics}
        self.log.append(row)
        return row

    def validate(self) -> dict[str, Any]:
        """Mean metrics over the validation requests (first paraphrase and neighbor of each)."""
        self.net.eval()
        if self._val_episode is None:
            requests = self.val[: self.cfg.val_size] if self.cfg.val_size else self.val
            self._val_episode = self.episode(requests, rng=None)
        totals = {"loss": 0.0, "edit_nll": 0.0, "edit_success": 0.0}
        loc = {"loc_kl": 0.0, "drawdown": 0.0}
        n = n_loc = 0
        for chunk in self._val_episode.chunks(self.cfg.batch_size):
            with torch.no_grad():  # the edit's own gradient still runs autograd, inside capture
                out = self.run(chunk)
            size = len(chunk)
            totals["edit_nll"] += out.edit_nll * size
            totals["edit_success"] += out.edit_success * size
            loc["loc_kl"] += out.loc_kl * out.n_loc
            loc["drawdown"] += out.drawdown * out.n_loc
            n += size
            n_loc += out.n_loc
        row: dict[str, Any] = {"split": "val", "step": self.step}
        row["edit_nll"] = totals["edit_nll"] / n
        row["edit_success"] = totals["edit_success"] / n
        row["loc_kl"] = loc["loc_kl"] / max(n_loc, 1)
        row["drawdown"] = loc["drawdown"] / max(n_loc, 1)
        row["loss"] = self.cfg.edit_weight * row["edit_nll"] + self.cfg.loc_weight * row["loc_kl"]
        if row["loss"] < self.best_loss:
            self.best_loss, self.best_step, self.bad = row["loss"], self.step, 0
            self.best_state = self._state()
        else:
            self.bad += 1
        self.log.append(row)
        return row

    # -- checkpoints ----------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        net_t = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        best_t = {f"best.{k}": v for k, v in self.best_state.items()}
        a, groups_a = _adam_tensors(self.opt_net, "opt_net")
        b, groups_b = _adam_tensors(self.opt_step, "opt_step")
        state = {
            **self.identity(),
            "step": self.step,
            "best_loss": self.best_loss if math.isfinite(self.best_loss) else None,
            "best_step": self.best_step,
            "bad": self.bad,
            "running": self.running,
            "log": self.log,
            "elapsed": self.elapsed,
            "opt_net_groups": groups_a,
            "opt_step_groups": groups_b,
        }
        save_checkpoint(folder, {**net_t, **best_t, **a, **b}, state)

    def restore(self, folder: Path) -> None:
        tensors, state = load_checkpoint(folder)
        mine = self.identity()
        for key, what in (("base_weights_sha256", "base model"), ("train", "training requests"),
                          ("val", "validation requests"), ("config", "training options")):
            if state.get(key) != mine[key]:
                raise EditkitError(
                    f"{folder}: the checkpoint was made with other {what}; resume with the same ones, or start over"
                )
        self.net.load_state_dict(_prefixed(tensors, "net"))
        self.best_state = {k: v.to(self.device) for k, v in _prefixed(tensors, "best").items()}
        _restore_adam(self.opt_net, tensors, state["opt_net_groups"], "opt_net")
        _restore_adam(self.opt_step, tensors, state["opt_step_groups"], "opt_step")
        self.step = int(state["step"])
        self.best_loss = math.inf if state["best_loss"] is None else float(state["best_loss"])
        self.best_step = int(state["best_step"])
        self.bad = int(state["bad"])
        self.running = dict(state["running"])
        self.log = list(state["log"])
        self.elapsed = float(state["elapsed"])


def train_editor(
    model: nn.Module,
    tok: Any,
    train: Sequence[EditRequest],
    val: Sequence[EditRequest] | None = None,
    config: MendTrainConfig | None = None,
    *,
    base_model: str,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    null: MendNullSpace | None = None,
) -> TrainResult:
    """Train MEND editor networks for ``model`` (left unchanged) on edit requests.

    Args:
        model: the frozen base model.
        tok: its tokenizer.
        train: training requests; paraphrases are the equivalence inputs (the
            prompt itself when a request has none), neighborhood prompts the
            locality inputs.
        val: validation requests; None holds out ``config.val_fraction`` of ``train``.
        config: training options.
        base_model: how the user names the base model (recorded in the editor).
        checkpoint_dir: where to write a checkpoint at every validation.
        resume: continue from the checkpoint in ``checkpoint_dir``.
        progress: ``progress(stage, done, total)``, called after every step;
            ``stage`` shows the running edit success, drawdown and loss.
        null: train (and validate) with updates projected onto this null space,
            as they will be when editing; None: the published, unprojected training.

    Returns:
        The best editor, the log and a summary.
    """
    cfg = config or MendTrainConfig()
    train_list = list(train)
    if val is None:
        train_list, val_list = split_validation(train_list, cfg.val_fraction, cfg.seed)
    else:
        val_list = list(val)
    if not train_list:
        raise InputError("no training requests")
    if not any(r.neighborhood_prompts for r in train_list):
        raise InputError("no training request has neighborhood prompts: MEND needs them as locality inputs")
    if null is not None and set(null.bases) != set(mend_location(model, cfg.layers, cfg.modules).params):
        raise InputError("the null space does not cover the matrices this training edits (layers/modules differ)")
    trainer = _Trainer(model, tok, train_list, val_list, cfg, base_model, null)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if resume:
        if folder is None or not has_checkpoint(folder):
            raise EditkitError(f"no MEND checkpoint to resume from in {folder}")
        trainer.restore(folder)
    started = time.perf_counter() - trainer.elapsed

    def report(stage: str) -> None:
        if progress is not None:
            progress(stage, trainer.step, cfg.max_steps)

    with frozen(model):
        if val_list and trainer.step == 0:
            report("validating")
            trainer.validate()
        while trainer.step < cfg.max_steps and not (val_list and trainer.bad >= cfg.patience):
            trainer.train_step()
            r = trainer.running
            report(f"edit success {r['edit_success']:.2f}, drawdown {r['drawdown']:.3f}, loss {r['loss']:.3f}")
            if trainer.step % cfg.val_every == 0 or trainer.step == cfg.max_steps:
                if val_list:
                    report("validating")
                    trainer.validate()
                trainer.elapsed = time.perf_counter() - started
                if folder is not None:
                    trainer.save(folder)
    if val_list:
        trainer.net.load_state_dict(trainer.best_state)
    trainer.net.eval()
    best = next((row for row in trainer.log if row["split"] == "val" and row["step"] == trainer.best_step), None)
    info = {
        "config": cfg.to_dict(),
        "steps": trainer.step,
        "best_step": trainer.best_step if val_list else trainer.step,
        "best_val": best,
        "stopped_early": trainer.step < cfg.max_steps,
        "n_train": len(train_list),
        "n_val": len(val_list),
        "seconds": time.perf_counter() - started,
        "rank": trainer.spec.rank,
        "step_sizes": dict(zip(trainer.spec.params, trainer.net.step_sizes.detach().tolist(), strict=True)),
        "null_space_in_training": null.describe() if null is not None else None,
    }
    return TrainResult(trainer.net, trainer.log, info)
