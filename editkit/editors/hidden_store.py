"""Compact stores for many sequences: token ids, and the hidden states a prefix cache keeps.

LocFT-BF on 100,000 requests must not hold 100,000 Python objects per field,
nor every request's hidden states in memory:

- :class:`TokenStore` keeps every encoded sequence as token ids in one flat
  ``int32`` array with offsets (4 bytes a token); an :class:`Encoded` is built
  only for the sequences of the current batch.
- :class:`HiddenStore` keeps ``[T_i, d]`` fp32 rows of every sequence, unpadded
  and flat (sequence ``i`` is rows ``starts[i]:starts[i+1]``), preallocated once.
  It lives in memory (a tensor on the model's device) when it fits under a
  budget, and otherwise in an anonymous temporary file read and written with
  positional file I/O: a batch reads only its own rows, zero-padded.

Why a file and not a memory map: the pages of a map a process has touched stay
mapped and count in its resident memory until the kernel is short of memory,
so peak RSS still grows with the number of requests (400 MiB written through
``np.memmap`` raised peak RSS by 400 MiB; the same through ``readinto``/``write``
by 8 MiB). Reads through the page cache are as fast while the file fits in
memory, and leave the process's own memory bounded by the batch either way.
Both storages hold the same fp32 values, so training gives the same results
bit for bit (a test checks it).

>>> tokens = TokenStore()
>>> tokens.append(Encoded((5, 6), (7,)))
0
>>> store = HiddenStore.allocate(tokens.starts(), 4, budget_bytes=0)   # doctest: +SKIP
>>> store.storage                                                       # doctest: +SKIP
'disk'
"""

from __future__ import annotations

import hashlib
import tempfile
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, overload

import numpy as np
import torch

from editkit.batching import Encoded

_FP32 = 4  # bytes per stored value


class TokenStore(Sequence[Encoded]):
    """Encoded sequences as flat ``int32`` token ids with offsets; ``store[i]`` is an :class:`Encoded`.

    >>> store = TokenStore([Encoded((1, 2), (3,)), Encoded((4,), (5, 6))])
    >>> len(store), store[1], store.length(0)
    (2, Encoded(prompt_ids=(4,), target_ids=(5, 6)), 3)
    """

    def __init__(self, encoded: Iterable[Encoded] = ()) -> None:
        self._ids = array("i")  # every token id, sequence after sequence
        self._starts = array("q", [0])  # sequence i is _ids[_starts[i]:_starts[i + 1]]
        self._prompt = array("i")  # prompt length of each sequence
        self.extend(encoded)

    def append(self, enc: Encoded) -> int:
        """Add one sequence; returns its index."""
        self._ids.extend(enc.prompt_ids)
        self._ids.extend(enc.target_ids)
        self._starts.append(len(self._ids))
        self._prompt.append(len(enc.prompt_ids))
        return len(self._prompt) - 1

    def extend(self, encoded: Iterable[Encoded]) -> None:
        for enc in encoded:
            self.append(enc)

    def __len__(self) -> int:
        return len(self._prompt)

    @overload
    def __getitem__(self, i: int) -> Encoded: ...

    @overload
    def __getitem__(self, i: slice) -> list[Encoded]: ...

    def __getitem__(self, i: int | slice) -> Encoded | list[Encoded]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"sequence {i} out of range 0..{len(self) - 1}")
        start, mid, end = self._starts[i], self._starts[i] + self._prompt[i], self._starts[i + 1]
        return Encoded(tuple(self._ids[start:mid]), tuple(self._ids[mid:end]))

    def length(self, i: int) -> int:
        """Number of tokens (prompt and target) of sequence ``i``."""
        return self._starts[i + 1] - self._starts[i]

    def starts(self) -> np.ndarray:
        """Offsets ``[n + 1]`` (int64): sequence ``i`` is tokens ``starts[i]:starts[i + 1]``."""
        return np.frombuffer(self._starts, dtype=np.int64).copy()

    def lengths(self) -> np.ndarray:
        """Token count of every sequence ``[n]`` (int64)."""
        return np.diff(self.starts())

    @property
    def nbytes(self) -> int:
        return sum(a.itemsize * len(a) for a in (self._ids, self._starts, self._prompt))

    def fingerprint(self) -> str:
        """SHA-256 of the token ids and the prompt/target boundaries (to check a resumed run sees the same data)."""
        digest = hashlib.sha256()
        for a in (self._ids, self._starts, self._prompt):
            digest.update(np.asarray(a, dtype=np.int64).tobytes())
        return digest.hexdigest()


def sequence_lengths(encoded: Sequence[Encoded]) -> np.ndarray:
    """Token count of every sequence (cheap for a :class:`TokenStore`)."""
    if isinstance(encoded, TokenStore):
        return encoded.lengths()
    return np.array([len(e.ids) for e in encoded], dtype=np.int64)


class HiddenStore:
    """Fp32 rows of variable-length sequences, flat, in memory or in a temporary file.

    Attributes:
        storage: ``"ram"`` (a tensor on ``device``) or ``"disk"`` (a file; batches
            are read into CPU memory).
        width: the row size ``d``.
    """

    def __init__(self, starts: np.ndarray, width: int, data: torch.Tensor | None, file: BinaryIO | None) -> None:
        self._starts = starts
        self.width = width
        self._data = data
        self._file = file
        self.storage = "ram" if data is not None else "disk"

    @classmethod
    def allocate(
        cls,
        starts: np.ndarray,
        width: int,
        *,
        device: torch.device | str = "cpu",
        budget_bytes: int | None = None,
        directory: str | Path | None = None,
    ) -> HiddenStore:
        """Room for ``starts[-1]`` rows of ``width`` fp32 values (``starts``: offsets ``[n + 1]``).

        Args:
            starts: sequence ``i`` is rows ``starts[i]:starts[i + 1]``.
            width: values per row.
            device: where the in-memory storage lives.
            budget_bytes: the most the in-memory storage may take; above it the rows go
                to a file. None: no limit.
            directory: where the file is created (it has no name and disappears when
                closed or when the process ends); None: the system's temporary folder.
        """
        starts = np.asarray(starts, dtype=np.int64)
        nbytes = int(starts[-1]) * width * _FP32
        if budget_bytes is None or nbytes <= budget_bytes:
            data = torch.zeros((int(starts[-1]), width), dtype=torch.float32, device=device)
            return cls(starts, width, data, None)
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
        file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115  (closed by close() or at exit)
        file.truncate(nbytes)  # sparse until written
        return cls(starts, width, None, file)

    def __len__(self) -> int:
        return len(self._starts) - 1

    @property
    def nbytes(self) -> int:
        return int(self._starts[-1]) * self.width * _FP32

    @property
    def device(self) -> torch.device:
        return self._data.device if self._data is not None else torch.device("cpu")

    def write(self, i: int, rows: torch.Tensor) -> None:
        """Store sequence ``i``'s rows ``[T_i, width]`` (converted to fp32)."""
        start, end = int(self._starts[i]), int(self._starts[i + 1])
        if tuple(rows.shape) != (end - start, self.width):
            raise ValueError(f"sequence {i}: expected rows of shape {(end - start, self.width)}, got {tuple(rows.shape)}")
        if self._data is not None:
            self._data[start:end] = rows
            return
        values = rows.detach().to("cpu", torch.float32).contiguous().numpy()
        file = self._open()
        file.seek(start * self.width * _FP32)
        file.write(values.data.cast("B"))

    def read(self, i: int) -> torch.Tensor:
        """Sequence ``i``'s rows ``[T_i, width]`` (on :attr:`device`)."""
        return self.gather([i], int(self._starts[i + 1] - self._starts[i]))[0]

    def gather(self, idx: Sequence[int], width: int) -> torch.Tensor:
        """Sequences ``idx`` right-padded with zeros to ``width`` positions: ``[B, width, d]``."""
        index = np.asarray(idx, dtype=np.int64)
        first, lengths = self._starts[index], self._starts[index + 1] - self._starts[index]
        if len(index) and int(lengths.max()) > width:
            raise ValueError(f"a sequence of {int(lengths.max())} rows does not fit {width} positions")
        if self._data is not None:
            out = self._data.new_zeros((len(index), width, self.width))
            # one gather: row b, position t <- stored row first[b] + t, for t < lengths[b]
            total = int(lengths.sum())
            row = np.repeat(np.arange(len(index)), lengths)
            pos = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            src = np.repeat(first, lengths) + pos
            dev = self._data.device
            out[torch.from_numpy(row).to(dev), torch.from_numpy(pos).to(dev)] = self._data[torch.from_numpy(src).to(dev)]
            return out
        buf = np.zeros((len(index), width, self.width), dtype=np.float32)
        file = self._open()
        for b, (start, n) in enumerate(zip(first.tolist(), lengths.tolist(), strict=True)):
            file.seek(start * self.width * _FP32)
            view = buf[b, :n].data.cast("B")
            if file.readinto(view) != len(view):
                raise OSError("the prefix cache file is shorter than expected (was it truncated?)")
        return torch.from_numpy(buf)

    def _open(self) -> Any:
        if self._file is None:
            raise ValueError("the hidden-state store is closed")
        return self._file

    def close(self) -> None:
        """Release the storage (the file is deleted)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._data = None
