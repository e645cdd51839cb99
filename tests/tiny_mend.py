"""Edit requests for training tiny MEND editors, and a helper that trains one.

Words come from the tiny tokenizer's corpus (:mod:`tiny_models`), so prompts
are a few tokens long. Every request has a paraphrase and a neighborhood
prompt (the locality input).

>>> len(mend_requests()) >= 12
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from editkit.requests import EditRequest, Neighbor

_CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
    ("Japan", "Tokyo"), ("England", "London"), ("Canada", "Ottawa"), ("Russia", "Moscow"),
    ("China", "Beijing"), ("Kenya", "Nairobi"), ("Norway", "Oslo"), ("Greece", "Athens"),
    ("Portugal", "Lisbon"),
]
_LANGUAGES = [("France", "French"), ("Germany", "German"), ("Italy", "Italian"), ("Spain", "Spanish"), ("Japan", "Japanese")]


def mend_requests() -> list[EditRequest]:
    """Counterfactual capitals (each country gets the next country's capital) with a paraphrase and a neighbor."""
    out = []
    for i, (country, capital) in enumerate(_CAPITALS):
        new = _CAPITALS[(i + 1) % len(_CAPITALS)][1]
        place, language = _LANGUAGES[i % len(_LANGUAGES)]
        out.append(
            EditRequest(
                f"The capital of {country} is",
                new,
                subject=country,
                target_true=capital,
                paraphrase_prompts=(f"{country} has the capital city", f"What is the capital of {country}? The answer is"),
                neighborhood_prompts=(Neighbor(f"People in {place} speak", language),),
                id=f"cap-{country.lower()}",
            )
        )
    return out


#: Options that train a tiny editor in about a second.
QUICK: dict[str, Any] = {"max_steps": 6, "batch_size": 4, "val_every": 3, "rank": 8, "lr": 1e-3, "step_lr": 1e-3}


def train_tiny_editor(model: Any, tok: Any, out: Path, **options: Any) -> Path:
    """Train a MEND editor for ``model`` on :func:`mend_requests` and save it into ``out``."""
    from editkit.editors.mend import MendTrainConfig, save_editor, train_editor

    requests = mend_requests()
    cfg = MendTrainConfig.from_mapping({**QUICK, **options})
    result = train_editor(model, tok, requests[:10], requests[10:], cfg, base_model="tiny")
    save_editor(result.net, out, training=result.info, log=result.log)
    return out
