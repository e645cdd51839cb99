"""Sequential editing by replay (LocFT-BF's sequential protocol).

New requests join the cumulative set and the editor trains again over all of
it, from the original weights; the previous edit is reverted first, so the
model always carries exactly one edit: the one for every request so far.

>>> seq = ReplaySession(model, tok, make_editor("locft-bf"), location)   # doctest: +SKIP
>>> seq.add(first_batch); seq.add(second_batch)                           # doctest: +SKIP
>>> seq.revert()                                                           # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from editkit.editors.registry import Editor
from editkit.editors.result import EditResult, apply, revert
from editkit.localize.location import Location
from editkit.requests import EditRequest


class ReplaySession:
    """Keeps the cumulative request set and the one edit applied for it."""

    def __init__(self, model: Any, tok: Any, editor: Editor[Any], location: Location) -> None:
        self.model, self.tok, self.editor, self.location = model, tok, editor, location
        self.requests: list[EditRequest] = []
        self.result: EditResult | None = None
        self.history: list[dict[str, Any]] = []

    def add(self, requests: Sequence[EditRequest], **compute: Any) -> EditResult:
        """Add requests, retrain over everything so far, apply the new edit; returns it."""
        self.revert()
        self.requests.extend(requests)
        self.result = self.editor.compute(self.model, self.tok, self.requests, self.location, **compute)
        apply(self.model, self.result)
        self.history.append(
            {"round": len(self.history) + 1, "added": len(requests), "total": len(self.requests), **self.result.timings}
        )
        return self.result

    def revert(self) -> None:
        """Take the current edit out (the model returns to its original weights, exactly)."""
        if self.result is not None:
            revert(self.model, self.result)
            self.result = None
