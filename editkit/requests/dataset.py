"""Requests as a memory-mapped Hugging Face ``datasets.Dataset``, for 100K-scale sets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from editkit.errors import InputError
from editkit.requests.formats import get_format
from editkit.requests.io import PathLike, iter_valid, source_stamp

if TYPE_CHECKING:
    import datasets

__all__ = ["requests_dataset", "request_features"]

_SCHEMA = "editkit.requests/1"  # bump when the canonical columns change: it keys the cache


def request_features() -> datasets.Features:
    """The Arrow schema of canonical request records (every field always present).

    >>> sorted(request_features())  # doctest: +SKIP
    ['id', 'neighborhood_prompts', 'paraphrase_prompts', 'prompt', 'subject', 'target_new', 'target_true']
    """
    from datasets import Features, List, Value

    text = Value("string")
    return Features(
        {
            "id": text,
            "prompt": text,
            "target_new": text,
            "subject": text,
            "target_true": text,
            "paraphrase_prompts": List(text),
            "neighborhood_prompts": List({"prompt": text, "target": text}),
        }
    )


def _generate(path: str, format: str, stamp: str, schema: str) -> Iterator[dict[str, Any]]:
    """Canonical records of ``path``; ``stamp`` and ``schema`` only key the cache."""
    for request in iter_valid(path, format=format):
        yield request.to_dict()


def _input_error(err: BaseException) -> InputError | None:
    """The InputError that caused a ``datasets`` generation error, if any."""
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, InputError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def requests_dataset(
    path: PathLike, *, format: str = "auto", cache_dir: str | None = None
) -> datasets.Dataset:
    """Load requests into an Arrow-backed, memory-mapped ``datasets.Dataset``.

    The file is streamed once through ``Dataset.from_generator`` into Arrow files
    in the ``datasets`` cache, so a 100K-request set never sits in Python memory.
    Rows are canonical records (:meth:`EditRequest.to_dict`, all fields present;
    rebuild a request with :meth:`EditRequest.from_dict`). The cache is keyed by
    the file's path, size and modification time: a changed file is read again.

    Args:
        path: any input :func:`load_requests` accepts.
        format: ``"auto"`` or a name in ``FORMATS``.
        cache_dir: where ``datasets`` writes the Arrow files (default: its cache).

    Raises:
        InputError: as :func:`load_requests`, listing every malformed record; no
            partial dataset is cached.

    >>> ds = requests_dataset("counterfact.json")  # doctest: +SKIP
    >>> EditRequest.from_dict(ds[0]).prompt        # doctest: +SKIP
    'The mother tongue of Danielle Darrieux is'
    """
    import datasets

    get_format(format)
    gen_kwargs = {
        "path": str(path),
        "format": format,
        "stamp": source_stamp(path),
        "schema": _SCHEMA,
    }
    try:
        return datasets.Dataset.from_generator(
            _generate,
            features=request_features(),
            gen_kwargs=gen_kwargs,
            cache_dir=cache_dir,
        )
    except datasets.exceptions.DatasetGenerationError as err:
        cause = _input_error(err)
        if cause is None:
            raise
        raise cause from None
