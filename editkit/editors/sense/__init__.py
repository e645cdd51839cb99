"""Sense finetuning of Backpack language models (Hewitt et al., 2024), registered as ``sense``.

- :mod:`.config`: :class:`SenseConfig`;
- :mod:`.editor`: :class:`SenseEditor` (trained by the league loop, :mod:`editkit.editors.league`);
- :mod:`.transfer`: :class:`EnsembleLM`, the edit carried over to a larger causal LM
  sharing the tokenizer, and :func:`transfer_edit` (beta chosen as published).

The sense vectors to train come from the ``senses`` localization strategy
(:mod:`editkit.localize.senses`); the objectives from :mod:`editkit.objectives`.

>>> loc = localize("senses", model, tok, examples)                  # doctest: +SKIP
>>> result = make_editor("sense").compute(model, tok, examples, loc)  # doctest: +SKIP
"""

from __future__ import annotations

from editkit.editors.league.general import GeneralText, League, split_general
from editkit.editors.sense.config import SenseConfig
from editkit.editors.sense.editor import SenseEditor
from editkit.editors.sense.transfer import (
    BetaSelection,
    EnsembleLM,
    check_shared_tokenizer,
    select_beta,
    transfer_edit,
)

__all__ = [
    "BetaSelection",
    "EnsembleLM",
    "GeneralText",
    "League",
    "SenseConfig",
    "SenseEditor",
    "check_shared_tokenizer",
    "select_beta",
    "split_general",
    "transfer_edit",
]
