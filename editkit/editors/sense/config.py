"""Options of the sense finetuning editor (defaults: the published recipe where it gives one)."""

from __future__ import annotations

from dataclasses import dataclass

from editkit.editors.league.config import LeagueConfig


@dataclass(frozen=True)
class SenseConfig(LeagueConfig):
    """Sense finetuning options: the league loop's (:class:`LeagueConfig`), lr 3e-4.

    >>> SenseConfig().league
    0.001
    """
