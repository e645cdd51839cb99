"""Sense finetuning (Hewitt et al., 2024): train deltas on a few Backpack sense vectors.

The Backpack is frozen; the only free parameters are the deltas of the
``(token, sense)`` pairs of the location (the ``senses`` strategy's slots, see
:mod:`editkit.backpack.sense_delta`). Training is the league loop every
compared method shares (:mod:`editkit.editors.league.loop`): Adam on the
example losses plus ``kl_weight`` x KL on general text, and the best
checkpoint inside the deviation league. ``info["league"]`` says which step
that was and whether an edited checkpoint made it (``met``). Deltas of pairs
that did not move are left out.

>>> loc = localize("senses", model, tok, examples)                       # doctest: +SKIP
>>> result = make_editor("sense").compute(model, tok, examples, loc)     # doctest: +SKIP
>>> result.info["league"]["met"]                                         # doctest: +SKIP
True
"""

from __future__ import annotations

from typing import Any

from editkit.backpack.sense_delta import sense_slot_names
from editkit.editors.league.loop import LeagueEditor
from editkit.editors.league.runs import DeltaRun, SenseRun
from editkit.editors.sense.config import SenseConfig
from editkit.errors import EditkitError
from editkit.localize.location import Location
from editkit.localize.senses import location_sense_pairs


class SenseEditor(LeagueEditor[SenseConfig]):
    """Sense finetuning (Backpack): Adam on the chosen sense vectors, KL-regularized, inside a league."""

    def default_location(self, model: Any) -> Location:
        raise EditkitError(
            "the sense editor edits the sense vectors that the 'senses' strategy picks from the "
            "examples: pass --strategy senses (Python: localize('senses', model, tok, examples))"
        )

    def make_run(self, model: Any, tok: Any, location: Location, pad_id: int) -> DeltaRun:
        return SenseRun(model, sense_slot_names(model, location_sense_pairs(location)), pad_id)

    def extra_info(self, run: DeltaRun, location: Location) -> dict[str, Any]:
        return {"n_senses": len(run.names)}
