"""Editors trained inside a deviation league (Hewitt et al., 2024): ``sense``, ``finetune``, ``lora``.

- :mod:`.config`: :class:`LeagueConfig` (the shared loop's options), :class:`FinetuneConfig`, :class:`LoraConfig`;
- :mod:`.general`: the KL regularizer's and the league's general text, :class:`League`;
- :mod:`.runs`: what may change (sense slots, every tensor, LoRA factors);
- :mod:`.loop`: :func:`train_in_league` and :class:`LeagueEditor`;
- :mod:`.editors`: the ``finetune`` and ``lora`` baselines.

The sense editor itself lives in :mod:`editkit.editors.sense`.
"""

from __future__ import annotations

from editkit.editors.league.config import FinetuneConfig, LeagueConfig, LoraConfig
from editkit.editors.league.editors import FinetuneEditor, LoraEditor, lora_sites, whole_model
from editkit.editors.league.general import GeneralText, League, split_general
from editkit.editors.league.loop import LeagueEditor, LeagueRun, train_in_league
from editkit.editors.league.runs import DeltaRun, FullRun, LoraRun, SenseRun

__all__ = [
    "DeltaRun",
    "FinetuneConfig",
    "FinetuneEditor",
    "FullRun",
    "GeneralText",
    "League",
    "LeagueConfig",
    "LeagueEditor",
    "LeagueRun",
    "LoraConfig",
    "LoraEditor",
    "LoraRun",
    "SenseRun",
    "lora_sites",
    "split_general",
    "train_in_league",
    "whole_model",
]
