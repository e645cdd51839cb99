"""Sense finetuning of Backpack language models (Hewitt et al., 2024), registered as ``sense``.

- :mod:`.config`: :class:`SenseConfig`;
- :mod:`.general`: the KL regularizer's and the league's general text, :class:`League`;
- :mod:`.editor`: :class:`SenseEditor` (the training loop).

The sense vectors to train come from the ``senses`` localization strategy
(:mod:`editkit.localize.senses`); the objectives from :mod:`editkit.objectives`.

>>> loc = localize("senses", model, tok, examples)                  # doctest: +SKIP
>>> result = make_editor("sense").compute(model, tok, examples, loc)  # doctest: +SKIP
"""

from __future__ import annotations

from editkit.editors.sense.config import SenseConfig
from editkit.editors.sense.editor import SenseEditor
from editkit.editors.sense.general import GeneralText, League, split_general

__all__ = ["GeneralText", "League", "SenseConfig", "SenseEditor", "split_general"]
