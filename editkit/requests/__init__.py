"""Edit requests: the facts to write into a model, and the files they come from.

Three record formats are read, detected per record: editkit's canonical flat
schema, CounterFact (ROME/MEMIT) and ZsRE (MEND/EasyEdit). Files are ``.jsonl``
(streamed line by line), ``.json`` (an array of records or one record),
``.parquet``/``.arrow``, or a directory saved by ``datasets``. Every malformed
record is reported as ``file:line: field: problem``. :class:`RequestFile` reads
a file lazily, again on every pass (for editors that need two passes over
100,000 requests without holding them).

>>> from editkit.requests import EditRequest, load_requests, save_requests
>>> r = EditRequest("The capital of France is", "Rome", subject="France", target_true="Paris")
>>> save_requests([r], "edits.jsonl")           # doctest: +SKIP
>>> load_requests("edits.jsonl") == [r]         # doctest: +SKIP
True
"""

from __future__ import annotations

from editkit.requests.canonical import (
    LOSS_TYPES,
    CanonicalExample,
    as_examples,
    load_canonical_examples,
)
from editkit.requests.dataset import request_features, requests_dataset
from editkit.requests.formats import FORMATS, RecordFormat, detect_format, register_format
from editkit.requests.io import RequestFile, iter_requests, load_requests, save_requests
from editkit.requests.schema import EditRequest, Neighbor

__all__ = [
    "FORMATS",
    "LOSS_TYPES",
    "CanonicalExample",
    "EditRequest",
    "Neighbor",
    "RecordFormat",
    "RequestFile",
    "as_examples",
    "detect_format",
    "iter_requests",
    "load_canonical_examples",
    "load_requests",
    "register_format",
    "request_features",
    "requests_dataset",
    "save_requests",
]
