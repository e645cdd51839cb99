"""The refusal audit's result: refusal rates with intervals, their change, and the direction comparison.

Pure data plus renderings (a dict for JSON, plain rows for a table, Markdown);
nothing here runs a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from probes.metrics import Estimate

ROLES: tuple[str, str] = ("base", "tuned")
SETS: tuple[str, str] = ("harmful", "harmless")


@dataclass
class RefusalAuditResult:
    """What :func:`audit.refusal.refusal_audit` found.

    Attributes:
        rates: ``rates[role][set][judge]``: refusal rate with a 95% Wilson
            interval (``role`` base/tuned, ``set`` harmful/harmless, ``judge``
            substring/classifier).
        change: ``change[set][judge]``: tuned minus base rate, with a paired
            bootstrap interval over prompts.
        direction_cosine: per block input ``l``, cosine between the base and
            tuned refusal directions (mean difference harmful - harmless at the
            chosen position).
        direction_norm: ``{"base": [...], "tuned": [...]}`` per layer.
        projection: ``projection[role][set]``: per layer, the mean projection of
            the prompts' activations in ``role`` onto the *base* unit direction.
        layers: the layer of each per-layer entry.
        per_prompt: one record per prompt and role: text, response, verdicts.
        settings: generation and judging settings, model descriptions.
    """

    rates: dict[str, dict[str, dict[str, Estimate]]]
    change: dict[str, dict[str, Estimate]]
    direction_cosine: list[float]
    direction_norm: dict[str, list[float]]
    projection: dict[str, dict[str, list[float]]]
    layers: list[int]
    per_prompt: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def judges(self) -> list[str]:
        return list(self.rates["base"]["harmful"])

    def to_dict(self, *, per_prompt: bool = True) -> dict[str, Any]:
        """JSON-ready form (nan as None)."""
        out: dict[str, Any] = {
            "rates": {r: {s: {j: e.to_dict() for j, e in by_judge.items()} for s, by_judge in by_set.items()}
                      for r, by_set in self.rates.items()},
            "change": {s: {j: e.to_dict() for j, e in by_judge.items()} for s, by_judge in self.change.items()},
            "layers": self.layers,
            "direction_cosine": [_num(v) for v in self.direction_cosine],
            "direction_norm": {r: [_num(v) for v in vs] for r, vs in self.direction_norm.items()},
            "projection": {r: {s: [_num(v) for v in vs] for s, vs in by_set.items()} for r, by_set in self.projection.items()},
            "settings": self.settings,
            "summary": self.summary(),
        }
        if per_prompt:
            out["per_prompt"] = self.per_prompt
        return out

    def rate_rows(self) -> list[dict[str, str]]:
        """One row per prompt set and judge: base rate, tuned rate, change (each ``value [lo, hi]``)."""
        rows = []
        for s in SETS:
            for j in self.judges:
                rows.append({"prompts": s, "judge": j, "base": self.rates["base"][s][j].format(".2f"),
                             "tuned": self.rates["tuned"][s][j].format(".2f"), "change": self.change[s][j].format("+.2f")})
        return rows

    def layer_rows(self) -> list[dict[str, str]]:
        """One row per layer: direction cosine, and the harmful prompts' projection in base and tuned."""
        return [{"layer": str(layer), "cosine": _fmt(self.direction_cosine[i]),
                 "proj. base": _fmt(self.projection["base"]["harmful"][i], ".2f"),
                 "proj. tuned": _fmt(self.projection["tuned"]["harmful"][i], ".2f"),
                 "harmless proj. base": _fmt(self.projection["base"]["harmless"][i], ".2f")}
                for i, layer in enumerate(self.layers)]

    def summary(self) -> dict[str, Any]:
        """Headline numbers: harmful refusal rates and change per judge, the lowest cosine and its layer."""
        finite = [(c, layer) for c, layer in zip(self.direction_cosine, self.layers, strict=True) if not math.isnan(c)]
        low = min(finite) if finite else (math.nan, None)
        return {
            "harmful_refusal": {j: {"base": _num(self.rates["base"]["harmful"][j].value),
                                    "tuned": _num(self.rates["tuned"]["harmful"][j].value),
                                    "change": _num(self.change["harmful"][j].value)} for j in self.judges},
            "min_direction_cosine": {"value": _num(low[0]), "layer": low[1]},
        }

    def to_markdown(self) -> str:
        """Two Markdown tables: rates, then per-layer direction comparison."""
        lines = ["## Refusal rates (95% intervals)", ""]
        lines += _md_table(self.rate_rows())
        lines += ["", "## Refusal direction: base vs tuned", ""]
        lines += _md_table(self.layer_rows())
        return "\n".join(lines) + "\n"


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def _fmt(value: float, fmt: str = ".3f") -> str:
    return "-" if math.isnan(value) else format(value, fmt)


def _md_table(rows: list[dict[str, str]]) -> list[str]:
    if not rows:
        return ["(none)"]
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(r[c].replace("|", "\\|") for c in cols) + " |" for r in rows]
    return out
