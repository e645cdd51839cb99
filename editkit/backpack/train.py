"""Training a small Backpack language model from scratch with another model's tokenizer.

The point is a Backpack that shares the default model's tokenizer (vocabulary
49152), so that a sense edit made on it can be carried over to the default
model by the ensemble rule of the sense-finetuning paper (``logits_big + beta *
(log p_edited - log p_orig)``). It is trained on the corpus of
``data/scripts/build_backpack_corpus.py``: sentences stating every fact of the
fact tables, the shipped general text, and (optionally) passages sampled from
the default model.

Recipe: AdamW (betas 0.9/``beta2``, decoupled weight decay on matrices and
embeddings only), linear warmup then cosine decay to ``min_lr_ratio * lr``,
gradient clipping, batches of packed, document-aligned sequences
(:mod:`editkit.backpack.corpus`); validation loss every ``val_every`` steps
(also per corpus source); training stops at ``max_steps`` or after
``max_minutes``, whichever comes first (the schedule is laid out for
``max_steps``; a run stopped by time has not finished its decay).

Three things make it fast enough for a 2-core CPU (see ``BackpackTrainConfig``):

- **Active vocabulary** (``active_vocab``). With d = 128, the unembedding
  over 49152 tokens is most of the cost (~75% of a step, measured), yet the
  corpus uses ~6-8K of them.
  The embeddings of the tokens that never occur in the corpus are tied to
  one shared, trained vector ``r``, so each of them has logit ``h . r`` and
  the full-vocabulary log-partition is ``logsumexp(active logits,
  log(n_inactive) + h . r)``: the loss trained here *is* the full-vocabulary
  loss of the saved model, computed over ~7K + 1 columns (steps ~4x faster).
  The saved model is an ordinary Backpack whose inactive rows all equal
  ``r``; an unseen token in a prompt reads that shared embedding.
- **Embedding initialization** (``init="pca"``): the rows of the tokenizer's
  own model's embedding matrix, projected on their top ``n_embd`` principal
  components and scaled to std ``0.02``, so related tokens start close.
- **Identity init of the sense weights** (``sense_weight_init``). With the
  usual small random init, the weights ``alpha`` start near uniform over the
  prefix, the output is a bag of the prefix's senses, and training sits for
  hundreds of steps at the unigram loss. With queries = keys = ``s`` x the
  hidden state, ``alpha`` starts peaked on the current token (a bigram
  model); on a tiny model this cut the plateau from ~100 steps to ~10 (at
  the default sizes the plateau is ~50 steps either way, shallower with it).

Checkpoints (``checkpoint_dir``, written at each validation) hold the
weights, the AdamW state, the RNG state and the data position in one
safetensors file with a JSON state in its metadata (never pickle); with
``resume=True`` training continues bit for bit as if never interrupted.

>>> train, val = load_corpus(tok, "data/backpack")                                    # doctest: +SKIP
>>> result = train_backpack(tok, train, val, BackpackTrainConfig(), init_embeddings=E)  # doctest: +SKIP
>>> save_backpack(result, tok, "runs/backpack")                                       # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F

from editkit.backpack.config import BackpackGPT2Config
from editkit.backpack.corpus import (
    IGNORE,
    BatchStream,
    TokenizedCorpus,
    active_vocabulary,
    derived_seed,
    pack,
)
from editkit.backpack.modeling import BackpackGPT2LMHeadModel
from editkit.editors.config import EditorConfig, option
from editkit.errors import EditkitError, InputError

Progress = Callable[[str, int, int], None]

CHECKPOINT = "checkpoint.safetensors"
CHECKPOINT_FORMAT = "editkit-backpack-checkpoint/1"
TRAINING_FILE = "training.json"
LOG_FILE = "log.jsonl"
FACTS_FILE = "facts_known.json"
#: Name of the shared embedding of the inactive tokens in checkpoints (see :class:`OutputVocab`).
REST_PARAM = "output_vocab.rest"
#: Names the input embedding goes by in the safetensors of common causal LMs.
EMBEDDING_KEYS = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "embed_in.weight")


@dataclass(frozen=True)
class BackpackTrainConfig(EditorConfig):
    """Options of ``editkit backpack train``; the defaults train in well under an hour on 2 CPU cores."""

    n_embd: int = option("width d: word embeddings, transformer and each sense vector", 128)
    n_layer: int = option("transformer blocks of the contextualization network", 4)
    n_head: int = option("attention heads per block", 4)
    num_senses: int = option("sense vectors per token (k); n_embd must be a multiple of it", 16)
    sense_intermediate_scale: int = option("width of the sense network's final MLP, in multiples of n_embd", 4)
    block_size: int = option("tokens per training sequence; also the model's n_positions (longest input)", 128)
    dropout: float = option(
        "dropout on embeddings, attention and residual branches; the corpus is small and seen several times, and "
        "without dropout the model grows overconfident off its training text (higher validation loss)",
        0.1,
    )
    init: Literal["pca", "random"] = option(
        "word-embedding init: 'pca' (the tokenizer's model's embeddings on their top n_embd principal "
        "components) or 'random' (GPT-2's normal(0, 0.02))",
        "pca",
    )
    active_vocab: bool = option(
        "softmax over the corpus's tokens only, all other tokens sharing one trained embedding (the loss is "
        "still the exact full-vocabulary loss); false: a plain full-vocabulary softmax (~4x slower at d=128)",
        True,
    )
    sense_weight_init: float = option(
        "identity init of the sense weight network: queries = keys = this x the hidden state (biases 0), so "
        "each position starts out reading mostly its own token's senses (a bigram model); 0: GPT-2's random "
        "init, which starts from a near-uniform average over the prefix and sits long on a unigram plateau",
        1.5,
    )
    lr: float = option("peak AdamW learning rate", 2e-3)
    min_lr_ratio: float = option("final learning rate of the cosine decay, as a fraction of lr", 0.1)
    warmup_steps: int = option("steps of linear warmup", 100)
    weight_decay: float = option("AdamW weight decay on matrices and embeddings (not biases or LayerNorms)", 0.1)
    beta2: float = option("AdamW beta2 (beta1 is 0.9)", 0.98)
    grad_clip: float = option("clip the gradient norm at this (0: no clipping)", 1.0)
    batch_size: int = option("sequences of block_size tokens per step", 16)
    max_steps: int = option(
        "optimizer steps (the schedule's length); 400 x 2048 tokens is ~5 epochs of the `make backpack` corpus, "
        "~12 minutes on one CPU thread; longer runs memorize the facts and overfit (2000 steps: validation "
        "loss 7.17 against 5.09, general text worse than uniform)",
        400,
    )
    max_minutes: float = option("stop after this many minutes of training even before max_steps (0: no limit)", 55.0)
    val_every: int = option("validate (and checkpoint) every this many steps", 100)
    val_sequences: int = option("validation sequences used (the first ones); 0: all", 0)

    def __post_init__(self) -> None:
        for name in ("n_embd", "n_layer", "n_head", "num_senses", "sense_intermediate_scale", "batch_size",
                     "max_steps", "val_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.block_size < 2:
            raise ValueError("block_size must be >= 2")
        if self.n_embd % self.num_senses or self.n_embd % self.n_head:
            raise ValueError("n_embd must be a multiple of num_senses and of n_head")
        if self.lr <= 0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError("lr must be > 0 and min_lr_ratio in [0, 1]")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 < self.beta2 < 1.0:
            raise ValueError("dropout must be in [0, 1) and beta2 in (0, 1)")
        if min(self.warmup_steps, self.weight_decay, self.grad_clip, self.max_minutes, self.val_sequences,
               self.sense_weight_init) < 0:
            raise ValueError(
                "warmup_steps, weight_decay, grad_clip, max_minutes, val_sequences and sense_weight_init must be >= 0"
            )

    def lr_at(self, step: int) -> float:
        """Learning rate of optimizer step ``step`` (0-based): warmup, then cosine to ``min_lr_ratio * lr``.

        >>> cfg = BackpackTrainConfig(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.0)
        >>> cfg.lr_at(0), cfg.lr_at(9), cfg.lr_at(60), cfg.lr_at(110)
        (0.1, 1.0, 0.5, 0.0)
        """
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(self.max_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        low = self.lr * self.min_lr_ratio
        return low + 0.5 * (self.lr - low) * (1.0 + math.cos(math.pi * progress))


@dataclass
class BackpackTrainResult:
    """A trained Backpack and how it got there.

    Attributes:
        model: the model after the last step, in eval mode.
        log: one row per step (``split: train``) and per validation (``split: val``).
        info: the summary: options, steps, why it stopped, final validation loss, sizes, timings.
    """

    model: BackpackGPT2LMHeadModel
    log: list[dict[str, Any]]
    info: dict[str, Any]


# -- model ---------------------------------------------------------------------------------


def pca_embeddings(source: torch.Tensor, n_embd: int, *, std: float = 0.02) -> torch.Tensor:
    """Rows of ``source`` ``[vocab, D]`` on their top ``n_embd`` principal components: ``[vocab, n_embd]``.

    Centered, projected, and scaled so the result has standard deviation ``std``.

    >>> pca_embeddings(torch.randn(100, 12), 4).shape
    torch.Size([100, 4])
    """
    if n_embd > source.shape[1]:
        raise InputError(f"cannot project {source.shape[1]}-dimensional embeddings onto {n_embd} components")
    x = source.double()
    x = x - x.mean(0)
    _, vectors = torch.linalg.eigh(x.T @ x / x.shape[0])  # ascending eigenvalues
    projected = x @ vectors[:, -n_embd:].flip(-1)  # [vocab, n_embd], largest component first
    return (projected * (std / projected.std())).float()


def read_embedding_matrix(folder: str | Path) -> torch.Tensor:
    """The input-embedding matrix ``[vocab, D]`` of a model folder's safetensors, read without loading the model."""
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    for file in files:
        with safe_open(str(file), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118
                if key.endswith(EMBEDDING_KEYS):
                    return fh.get_tensor(key).float()
    raise InputError(
        f"{folder}: no input-embedding matrix in its safetensors files (looked for {', '.join(EMBEDDING_KEYS)}); "
        "use --set init=random"
    )


def build_backpack(
    cfg: BackpackTrainConfig,
    tok: Any,
    *,
    vocab_size: int | None = None,
    init_embeddings: torch.Tensor | None = None,
    active: torch.Tensor | None = None,
) -> BackpackGPT2LMHeadModel:
    """A fresh Backpack for ``tok`` with ``cfg``'s sizes, initialized under ``cfg.seed``.

    Args:
        vocab_size: rows of the embedding; default ``len(tok)``.
        init_embeddings: ``[>= vocab_size, D]`` embeddings to initialize from by PCA (``cfg.init == "pca"``).
        active: token ids that keep their embedding; every other row is set to zero.
    """
    vocab = vocab_size or len(tok)
    eos = tok.eos_token_id
    config = BackpackGPT2Config(
        vocab_size=vocab,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        num_senses=cfg.num_senses,
        sense_intermediate_scale=cfg.sense_intermediate_scale,
        n_positions=cfg.block_size,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        resid_pdrop=cfg.dropout,
        bos_token_id=tok.bos_token_id if tok.bos_token_id is not None else eos,
        eos_token_id=eos,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else eos,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed("init", cfg.seed))
        model = BackpackGPT2LMHeadModel(config)
    weight = cast(torch.Tensor, model.get_input_embeddings().weight)
    with torch.no_grad():
        if cfg.init == "pca":
            if init_embeddings is None:
                raise InputError("init=pca needs the embedding matrix of the tokenizer's model (or use init=random)")
            if init_embeddings.shape[0] < vocab:
                raise InputError(f"the init embeddings have {init_embeddings.shape[0]} rows, fewer than the vocabulary ({vocab})")
            weight.copy_(pca_embeddings(init_embeddings[:vocab], cfg.n_embd, std=config.initializer_range))
        if cfg.sense_weight_init > 0:
            attn = model.backpack.sense_weight_net.c_attn  # Linear(d, 2d): queries are rows [0, d), keys [d, 2d)
            eye = torch.eye(cfg.n_embd) * cfg.sense_weight_init
            attn.weight.copy_(torch.cat([eye, eye]))
            attn.bias.zero_()
        if active is not None:
            keep = torch.zeros(vocab, dtype=torch.bool)
            keep[active] = True
            weight[~keep] = 0.0
    return model


class OutputVocab:
    """Next-token NLL over the full vocabulary, or exactly the same computed over the active tokens.

    With ``active`` given, the embeddings of all other tokens are tied to one
    shared vector ``rest`` (``[d]``, trained, starts at zero; :meth:`tie_rest`
    writes it into the model): each of the ``n`` inactive tokens has logit
    ``h . rest``, so together they add one column ``log(n) + h . rest`` to the
    log-partition, and the loss is the model's exact full-vocabulary loss. The
    shared vector lets training push all unseen tokens down at once, as a full
    softmax would.
    """

    def __init__(
        self, vocab_size: int, active: torch.Tensor | None, dim: int = 0, device: torch.device | str = "cpu"
    ) -> None:
        self.vocab_size = vocab_size
        self.index: torch.Tensor | None = None
        self.remap: torch.Tensor | None = None
        self.log_rest: float | None = None
        self.rest: torch.nn.Parameter | None = None
        if active is not None:
            self.index = active.to(device)
            remap = torch.full((vocab_size,), -1, dtype=torch.long)
            remap[active] = torch.arange(len(active))
            self.remap = remap.to(device)
            n_rest = vocab_size - len(active)
            if n_rest:
                self.log_rest = math.log(n_rest)
                self.rest = torch.nn.Parameter(torch.zeros(dim, device=device))

    @property
    def size(self) -> int:
        return self.vocab_size if self.index is None else len(self.index)

    def nll(self, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``-log p(target)`` per row: ``hidden`` ``[n, d]``, ``weight`` ``[vocab, d]``, ``targets`` ``[n]``."""
        if self.index is None or self.remap is None:
            return F.cross_entropy((hidden @ weight.T).float(), targets, reduction="none")
        logits = (hidden @ weight[self.index].T).float()  # [n, n_active]
        if self.rest is not None and self.log_rest is not None:
            rest = (hidden @ self.rest).float() + self.log_rest  # [n]: all inactive tokens together
            logits = torch.cat([logits, rest[:, None]], dim=-1)
        local = self.remap[targets]
        if bool((local < 0).any()):
            raise EditkitError("a target token is outside the active vocabulary")
        return F.cross_entropy(logits, local, reduction="none")

    @torch.no_grad()
    def tie_rest(self, model: BackpackGPT2LMHeadModel) -> None:
        """Write the shared vector into every inactive row of the model's (tied) embedding."""
        if self.index is None or self.rest is None:
            return
        weight = cast(torch.Tensor, model.get_input_embeddings().weight)
        inactive = torch.ones(self.vocab_size, dtype=torch.bool, device=weight.device)
        inactive[self.index.to(weight.device)] = False
        weight[inactive] = self.rest.detach().to(weight.dtype)


def token_nll(
    model: BackpackGPT2LMHeadModel, input_ids: torch.Tensor, labels: torch.Tensor, vocab: OutputVocab
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token NLL of a packed batch: ``(nll [n_predicted], mask [batch, seq - 1])``.

    The token at ``t`` is predicted from position ``t - 1``; labels ``-100`` (right
    padding) are skipped and masked out of attention.
    """
    attention = (labels != IGNORE).long()
    hidden = model.backpack(input_ids, attention_mask=attention).last_hidden_state[:, :-1]  # [batch, seq - 1, d]
    target = labels[:, 1:]
    mask = target != IGNORE
    return vocab.nll(hidden[mask], model.lm_head.weight, target[mask]), mask


# -- training ------------------------------------------------------------------------------


def _tokenizer_fingerprint(tok: Any) -> str:
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()


class _Trainer:
    """The state of one run (what a checkpoint holds) and its steps."""

    def __init__(
        self,
        tok: Any,
        train: TokenizedCorpus,
        val: TokenizedCorpus | None,
        cfg: BackpackTrainConfig,
        *,
        init_embeddings: torch.Tensor | None,
        device: torch.device,
    ) -> None:
        self.cfg, self.train, self.val, self.device = cfg, train, val, device
        vocab = max(len(tok), init_embeddings.shape[0] if init_embeddings is not None else 0)
        corpora = [train] + ([val] if val is not None else [])
        self.active = active_vocabulary(*corpora, extra=[tok.eos_token_id]) if cfg.active_vocab else None
        if self.active is not None and int(self.active.max()) >= vocab:
            raise InputError(f"the corpus has token id {int(self.active.max())}, outside the vocabulary ({vocab})")
        self.model = build_backpack(cfg, tok, vocab_size=vocab, init_embeddings=init_embeddings, active=self.active)
        cast(torch.nn.Module, self.model).to(device)  # (transformers' typing of .to is too narrow)
        self.vocab = OutputVocab(vocab, self.active, cfg.n_embd, device)
        self.params = dict(self.model.named_parameters())
        if self.vocab.rest is not None:
            self.params[REST_PARAM] = self.vocab.rest
        # Weight decay on matrices, embeddings and the shared inactive-token embedding; not on biases or norms.
        decay = [p for n, p in self.params.items() if p.dim() >= 2 or n == REST_PARAM]
        other = [p for n, p in self.params.items() if p.dim() < 2 and n != REST_PARAM]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}],
            lr=cfg.lr, betas=(0.9, cfg.beta2),
        )
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.stream = BatchStream(train, block=cfg.block_size, batch_size=cfg.batch_size, pad_id=pad, seed=cfg.seed)
        self.val_rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        if val is not None:
            ids, labels, sources = pack(val, range(len(val.docs)), block=cfg.block_size, pad_id=pad)
            n = cfg.val_sequences or ids.shape[0]
            self.val_rows = (ids[:n], labels[:n], sources[:n])
        self.tokenizer = _tokenizer_fingerprint(tok)
        self.step = 0
        self.tokens = 0
        self.elapsed = 0.0
        self.log: list[dict[str, Any]] = []
        self.running: float | None = None
        self.rng_state: torch.Tensor | None = None

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed (raising max_minutes is allowed)."""
        options = {k: v for k, v in self.cfg.to_dict().items() if k != "max_minutes"}
        return {
            "config": json.loads(json.dumps(options)),
            "train": self.train.fingerprint,
            "val": self.val.fingerprint if self.val is not None else None,
            "tokenizer": self.tokenizer,
            "vocab_size": self.vocab.vocab_size,
        }

    def train_step(self) -> dict[str, Any]:
        cfg = self.cfg
        ids, labels = self.stream.next()
        ids, labels = ids.to(self.device), labels.to(self.device)
        lr = cfg.lr_at(self.step)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.model.train()
        nll, _ = token_nll(self.model, ids, labels, self.vocab)
        loss = nll.mean()
        loss.backward()
        params = list(self.params.values())
        if cfg.grad_clip > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        else:
            grad_norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])))
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        self.tokens += int(nll.numel())
        value = float(loss.detach())
        self.running = value if self.running is None else 0.95 * self.running + 0.05 * value
        row = {"split": "train", "step": self.step, "loss": value, "lr": lr, "grad_norm": grad_norm, "tokens": self.tokens}
        self.log.append(row)
        return row

    @torch.no_grad()
    def validate(self) -> dict[str, Any] | None:
        """Mean token NLL on the validation sequences, overall and per corpus source."""
        if self.val_rows is None or self.val is None:
            return None
        self.model.eval()
        names = self.val.source_names
        sums = torch.zeros(len(names), dtype=torch.float64)
        counts = torch.zeros(len(names), dtype=torch.float64)
        ids_all, labels_all, sources_all = self.val_rows
        for start in range(0, ids_all.shape[0], self.cfg.batch_size):
            ids = ids_all[start : start + self.cfg.batch_size].to(self.device)
            labels = labels_all[start : start + self.cfg.batch_size].to(self.device)
            nll, mask = token_nll(self.model, ids, labels, self.vocab)
            src = sources_all[start : start + self.cfg.batch_size, 1:][mask.cpu()]
            sums.index_add_(0, src, nll.double().cpu())
            counts.index_add_(0, src, torch.ones_like(src, dtype=torch.float64))
        by_source = {name: float(sums[i] / counts[i]) for i, name in enumerate(names) if counts[i] > 0}
        row = {
            "split": "val",
            "step": self.step,
            "loss": float(sums.sum() / counts.sum()),
            "by_source": by_source,
            "tokens": int(counts.sum()),
        }
        self.log.append(row)
        return row

    # -- checkpoints -------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        from safetensors.torch import save

        from editkit.outputs import atomic_write_bytes

        tensors = {f"model.{n}": p.detach().cpu().contiguous() for n, p in self.params.items()}
        names = {id(p): n for n, p in self.params.items()}
        for param, state in self.opt.state.items():
            for key, value in state.items():
                t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
                tensors[f"opt.{names[id(param)]}.{key}"] = t.detach().cpu().contiguous()
        tensors["rng.cpu"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        state = {
            **self.identity(),
            "step": self.step,
            "tokens": self.tokens,
            "elapsed": self.elapsed,
            "running": self.running,
            "stream": {"epoch": self.stream.epoch, "offset": self.stream.offset},
            "log": self.log,
        }
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"format": CHECKPOINT_FORMAT, "state": json.dumps(state)}
        atomic_write_bytes(folder / CHECKPOINT, save(tensors, metadata=meta))

    def restore(self, folder: Path) -> None:
        from editkit.tensorfiles import read_tagged

        tensors, meta = read_tagged(folder / CHECKPOINT, CHECKPOINT_FORMAT, what="Backpack checkpoint")
        state = json.loads(meta["state"])
        mine = self.identity()
        for key, what in (("tokenizer", "tokenizer"), ("vocab_size", "vocabulary size"), ("train", "training corpus"),
                          ("val", "validation corpus"), ("config", "training options")):
            if state.get(key) != mine[key]:
                raise EditkitError(
                    f"{folder}: the checkpoint was made with another {what}; resume with the same one, or start over"
                )
        with torch.no_grad():
            for name, param in self.params.items():
                param.copy_(tensors[f"model.{name}"])
        for name, param in self.params.items():
            prefix = f"opt.{name}."
            entry = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix) and "." not in k[len(prefix) :]}
            if entry:
                self.opt.state[param] = {k: (v if k == "step" else v.to(self.device)) for k, v in entry.items()}
        self.rng_state = tensors["rng.cpu"]
        if self.device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.step = int(state["step"])
        self.tokens = int(state["tokens"])
        self.elapsed = float(state["elapsed"])
        self.running = state["running"]
        self.stream.epoch = int(state["stream"]["epoch"])
        self.stream.offset = int(state["stream"]["offset"])
        self.log = list(state["log"])


@contextlib.contextmanager
def _training_rng(device: torch.device, seed: int, state: torch.Tensor | None) -> Iterator[None]:
    """The run's own RNG (dropout): seeded or restored inside, the caller's RNG untouched outside."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if state is None:
            torch.manual_seed(derived_seed("dropout", seed))
        else:
            torch.set_rng_state(state)
        yield


def train_backpack(
    tok: Any,
    train: TokenizedCorpus,
    val: TokenizedCorpus | None = None,
    config: BackpackTrainConfig | None = None,
    *,
    init_embeddings: torch.Tensor | None = None,
    device: str | torch.device = "cpu",
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> BackpackTrainResult:
    """Train a Backpack from scratch on a tokenized corpus (see the module docstring).

    Args:
        tok: the tokenizer the Backpack will share (its EOS separates documents).
        train: training documents (:func:`~editkit.backpack.corpus.load_corpus`).
        val: validation documents, or None for no validation.
        config: sizes and optimization.
        init_embeddings: ``[vocab, D]`` embeddings of the tokenizer's model, for ``init="pca"``.
        device: where to train.
        checkpoint_dir: where to write a checkpoint at every validation.
        resume: continue from the checkpoint in ``checkpoint_dir``.
        progress: ``progress(stage, done, total)`` after every step (``stage`` shows the
            running loss, the last validation loss and the speed).

    Returns:
        The model after the last step (eval mode), the log and a summary.
    """
    cfg = config or BackpackTrainConfig()
    dev = torch.device(device)
    trainer = _Trainer(tok, train, val, cfg, init_embeddings=init_embeddings, device=dev)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if resume:
        if folder is None or not (folder / CHECKPOINT).is_file():
            raise EditkitError(f"no Backpack checkpoint to resume from in {folder}")
        trainer.restore(folder)
    started = time.perf_counter() - trainer.elapsed
    limit = cfg.max_minutes * 60.0
    stopped_by = "max_steps"
    last_val: dict[str, Any] | None = next((r for r in reversed(trainer.log) if r["split"] == "val"), None)
    saved_step = trainer.step if resume else -1

    def checkpoint() -> None:
        nonlocal last_val, saved_step
        last_val = trainer.validate() or last_val
        trainer.elapsed = time.perf_counter() - started
        saved_step = trainer.step
        if folder is not None:
            trainer.save(folder)

    with _training_rng(dev, cfg.seed, trainer.rng_state):
        while trainer.step < cfg.max_steps:
            if limit and time.perf_counter() - started >= limit:
                stopped_by = "max_minutes"
                break
            trainer.train_step()
            if trainer.step % cfg.val_every == 0 or trainer.step == cfg.max_steps:
                checkpoint()
            if progress is not None:
                seconds = max(time.perf_counter() - started, 1e-9)
                val_text = f", val {last_val['loss']:.3f}" if last_val else ""
                progress(f"loss {trainer.running:.3f}{val_text}, {trainer.tokens / seconds:.0f} tok/s", trainer.step, cfg.max_steps)
        if saved_step != trainer.step:  # stopped by time, or max_steps not a multiple of val_every
            checkpoint()
    trainer.vocab.tie_rest(trainer.model)
    trainer.model.eval()
    n_params = sum(p.numel() for p in trainer.model.parameters())
    info = {
        "config": cfg.to_dict(),
        "steps": trainer.step,
        "stopped_by": stopped_by,
        "tokens_seen": trainer.tokens,
        "epochs": trainer.tokens / max(train.n_tokens, 1),
        "train_loss_ema": trainer.running,
        "val_loss": last_val["loss"] if last_val else None,
        "val_loss_by_source": last_val["by_source"] if last_val else None,
        "val_tokens": last_val["tokens"] if last_val else None,
        "n_params": n_params,
        "vocab_size": trainer.vocab.vocab_size,
        "active_vocab_size": trainer.vocab.size if trainer.active is not None else None,
        "train_documents": len(train.docs),
        "train_tokens": train.n_tokens,
        "train_sha256": train.fingerprint,
        "val_sha256": val.fingerprint if val is not None else None,
        "seconds": time.perf_counter() - started,
        "device": str(dev),
        "threads": torch.get_num_threads(),
    }
    return BackpackTrainResult(trainer.model, trainer.log, info)


def save_backpack(
    result: BackpackTrainResult,
    tok: Any,
    path: str | Path,
    *,
    facts: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a trained Backpack as a model folder (``from_pretrained`` loads it) plus its records.

    Files: the model (``config.json``, ``model.safetensors``), the tokenizer,
    ``training.json`` (``result.info`` and ``extra``), ``log.jsonl`` and, when
    given, ``facts_known.json`` (:func:`~editkit.backpack.facts.fact_knowledge`).
    """
    from editkit import __version__
    from editkit.outputs import atomic_write_text

    dest = Path(path)
    dest.mkdir(parents=True, exist_ok=True)
    result.model.save_pretrained(dest, safe_serialization=True)
    tok.save_pretrained(dest)
    info = {"editkit_version": __version__, **result.info, **dict(extra or {})}
    if facts is not None:
        info["facts_known"] = {k: v for k, v in facts.items() if k != "facts"}
        atomic_write_text(dest / FACTS_FILE, json.dumps(facts, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(dest / TRAINING_FILE, json.dumps(info, indent=2, default=str) + "\n")
    atomic_write_text(dest / LOG_FILE, "".join(json.dumps(row) + "\n" for row in result.log))
    return dest


def has_checkpoint(folder: str | Path) -> bool:
    """Whether ``folder`` holds a Backpack training checkpoint."""
    return (Path(folder) / CHECKPOINT).is_file()
