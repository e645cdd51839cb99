"""Training text for a small Backpack: reading, tokenizing and packing a corpus.

A corpus folder holds ``corpus_train.jsonl`` and ``corpus_val.jsonl``, one
``{"text": ..., "source": ...}`` object per line (``id`` and other keys are
kept but unused); ``data/scripts/build_backpack_corpus.py`` writes them. Each
row is one *document*: tokenized as the model will see a prompt (the
tokenizer's own special tokens, so a prompt at position 0 looks like a
document start) and closed by EOS.

Packing keeps documents whole and aligned: a sequence of ``block`` tokens is
filled with consecutive documents (in a seeded order per epoch) while they
fit, then padded (labels ``-100``); a document longer than ``block`` is cut
into pieces that each start a sequence. So every sequence starts at a
document start, as editing prompts do, and no document straddles two
sequences.

>>> docs = TokenizedCorpus(docs=((5, 6, 0), (7, 0)), sources=(0, 1), source_names=("facts", "general"), fingerprint="")
>>> ids, labels, src = pack(docs, [1, 0], block=4, pad_id=1)
>>> ids.tolist(), labels.tolist()
([[7, 0, 1, 1], [5, 6, 0, 1]], [[7, 0, -100, -100], [5, 6, 0, -100]])
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from editkit.datafiles import iter_jsonl, text_of
from editkit.errors import InputError

TRAIN_FILE = "corpus_train.jsonl"
VAL_FILE = "corpus_val.jsonl"
IGNORE = -100


@dataclass(frozen=True)
class TokenizedCorpus:
    """Documents as token ids (each ends in EOS) and the index of each one's source.

    Attributes:
        docs: one tuple of token ids per document.
        sources: per document, an index into ``source_names``.
        source_names: the distinct ``source`` values, sorted.
        fingerprint: sha256 of the file the documents came from (checkpoints compare it).
    """

    docs: tuple[tuple[int, ...], ...]
    sources: tuple[int, ...]
    source_names: tuple[str, ...]
    fingerprint: str

    @property
    def n_tokens(self) -> int:
        return sum(len(d) for d in self.docs)


def read_rows(path: str | Path) -> tuple[list[dict[str, Any]], str]:
    """Rows of a corpus JSONL file (each with a non-empty ``text``) and the file's sha256."""
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"{p}: no such corpus file; build one with `python data/scripts/build_backpack_corpus.py`"
        )
    raw = p.read_bytes()
    rows = []
    for lineno, row in iter_jsonl(p, raw.decode("utf-8")):
        text_of(p, lineno, row)
        rows.append(row)
    if not rows:
        raise InputError(f"{p}: no documents")
    return rows, hashlib.sha256(raw).hexdigest()


def tokenize_rows(tok: Any, rows: Sequence[dict[str, Any]], *, fingerprint: str = "") -> TokenizedCorpus:
    """Tokenize documents (special tokens as for a prompt, then EOS)."""
    eos = getattr(tok, "eos_token_id", None)
    if eos is None:
        raise InputError("the tokenizer has no EOS token: documents need a separator")
    texts = [row["text"] for row in rows]
    encoded = tok(texts, add_special_tokens=True, verbose=False)["input_ids"]  # no length warning: packing cuts
    names = tuple(sorted({str(row.get("source", "text")) for row in rows}))
    index = {name: i for i, name in enumerate(names)}
    return TokenizedCorpus(
        docs=tuple((*ids, int(eos)) for ids in encoded),
        sources=tuple(index[str(row.get("source", "text"))] for row in rows),
        source_names=names,
        fingerprint=fingerprint,
    )


def load_corpus(tok: Any, folder: str | Path) -> tuple[TokenizedCorpus, TokenizedCorpus]:
    """``(train, val)`` of a corpus folder, tokenized."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(
            f"{root}: no such corpus folder; build one with `python data/scripts/build_backpack_corpus.py`"
        )
    out = []
    for name in (TRAIN_FILE, VAL_FILE):
        rows, digest = read_rows(root / name)
        out.append(tokenize_rows(tok, rows, fingerprint=digest))
    return out[0], out[1]


def active_vocabulary(*corpora: TokenizedCorpus, extra: Sequence[int] = ()) -> torch.Tensor:
    """Sorted token ids that occur in any of ``corpora`` (plus ``extra``): ``[n_active]``."""
    ids = {t for corpus in corpora for doc in corpus.docs for t in doc}
    ids.update(int(t) for t in extra)
    return torch.tensor(sorted(ids), dtype=torch.long)


def pack(
    corpus: TokenizedCorpus, order: Sequence[int], *, block: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pack documents (in ``order``) into aligned sequences of ``block`` tokens.

    Returns:
        ``(input_ids, labels, sources)``, each ``[n_sequences, block]``: ``labels``
        are the input ids with ``-100`` on padding; ``sources`` the source index of
        each position's document (``-1`` on padding).
    """
    if block < 2:
        raise ValueError(f"block must be >= 2, not {block}")
    seqs: list[list[int]] = []
    srcs: list[list[int]] = []
    cur: list[int] = []
    cur_src: list[int] = []
    for i in order:
        doc, source = corpus.docs[i], corpus.sources[i]
        for start in range(0, len(doc), block):
            piece = doc[start : start + block]
            if len(cur) + len(piece) > block or (start > 0 and cur):
                seqs.append(cur)
                srcs.append(cur_src)
                cur, cur_src = [], []
            cur.extend(piece)
            cur_src.extend([source] * len(piece))
    if cur:
        seqs.append(cur)
        srcs.append(cur_src)
    n = len(seqs)
    ids = torch.full((n, block), pad_id, dtype=torch.long)
    labels = torch.full((n, block), IGNORE, dtype=torch.long)
    sources = torch.full((n, block), -1, dtype=torch.long)
    for row, (seq, src) in enumerate(zip(seqs, srcs, strict=True)):
        ids[row, : len(seq)] = torch.tensor(seq)
        labels[row, : len(seq)] = torch.tensor(seq)
        sources[row, : len(src)] = torch.tensor(src)
    return ids, labels, sources


def derived_seed(*parts: Any) -> int:
    """A 56-bit seed from any parts (stable across runs; no dependence on ``hash``)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:7], "little")


class BatchStream:
    """Training batches: epochs of seeded document orders, packed, taken ``batch_size`` rows at a time.

    The position (``epoch``, ``offset``) is all a checkpoint needs to continue
    the stream exactly; a batch that runs past an epoch's end continues in the next.
    """

    def __init__(self, corpus: TokenizedCorpus, *, block: int, batch_size: int, pad_id: int, seed: int) -> None:
        if not corpus.docs:
            raise InputError("the training corpus has no documents")
        self.corpus, self.block, self.batch_size, self.pad_id, self.seed = corpus, block, batch_size, pad_id, seed
        self.epoch = 0
        self.offset = 0
        self._packed: tuple[int, torch.Tensor, torch.Tensor] | None = None

    def _epoch_rows(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._packed is None or self._packed[0] != epoch:
            gen = torch.Generator().manual_seed(derived_seed("epoch", self.seed, epoch))
            order = torch.randperm(len(self.corpus.docs), generator=gen).tolist()
            ids, labels, _ = pack(self.corpus, order, block=self.block, pad_id=self.pad_id)
            self._packed = (epoch, ids, labels)
        return self._packed[1], self._packed[2]

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``(input_ids, labels)``, each ``[batch_size, block]``."""
        parts_ids, parts_labels = [], []
        need = self.batch_size
        while need:
            ids, labels = self._epoch_rows(self.epoch)
            take = min(need, ids.shape[0] - self.offset)
            parts_ids.append(ids[self.offset : self.offset + take])
            parts_labels.append(labels[self.offset : self.offset + take])
            self.offset += take
            need -= take
            if self.offset >= ids.shape[0]:
                self.epoch, self.offset = self.epoch + 1, 0
        return torch.cat(parts_ids), torch.cat(parts_labels)

    def sequences_per_epoch(self) -> int:
        return int(self._epoch_rows(self.epoch)[0].shape[0])
