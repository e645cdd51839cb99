"""``editkit edit --method sense --transfer-to M``: the Backpack's edit, carried over to model M.

After the sense edit of the Backpack (``--model``), model M is evaluated twice
with the same metrics: plain, and as the ensemble
``logits_M + beta x (log p_edited Backpack - log p_original Backpack)``
(:mod:`editkit.editors.sense.transfer`), beta chosen in the edit's league
(``--transfer-beta auto``, as published) or fixed. The edit report gets a table
of both, a table of the betas tried, the settings under ``config.transfer``
and M in its provenance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from editkit.cli._common import stage_progress
from editkit.errors import EditkitError

if TYPE_CHECKING:
    from editkit.editors import EditResult
    from editkit.editors.sense.transfer import BetaSelection
    from editkit.evaluate import EvalConfig, EvalResult
    from editkit.report import ModelInfo, Report

HELP_TO = (
    "After a sense edit of the Backpack (--model), also evaluate model M plain and with the edit (ensemble). "
    "M is loaded with --dtype and, when it is a strategy (auto, balanced...), --device-map."
)
HELP_BETA = "Ensemble weight for --transfer-to: auto (highest of 1.0, 0.9, ... inside the edit's league) or a number."


def check_transfer_options(method: str, transfer_to: str | None, beta: str) -> float | None:
    """Validate ``--transfer-to`` / ``--transfer-beta`` before anything loads; the fixed beta or None (auto)."""
    if transfer_to is None:
        if beta != "auto":
            raise EditkitError("--transfer-beta: only used with --transfer-to")
        return None
    if method != "sense":
        raise EditkitError(
            f"--transfer-to carries a Backpack sense edit over to another model: it needs --method sense "
            f"(with the Backpack as --model), not --method {method}"
        )
    if beta == "auto":
        return None
    try:
        value = float(beta)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise EditkitError(f"--transfer-beta: expected auto or a number >= 0, got {beta!r}")
    return value


@dataclass
class TransferRun:
    """What ``--transfer-to`` measured: M plain (``before``) and with the edit (``after``)."""

    spec: str
    before: EvalResult
    after: EvalResult
    selection: BetaSelection
    model: ModelInfo


def run_transfer(
    spec: str,
    backpack: Any,
    tok: Any,
    result: EditResult,
    requests: Sequence[Any],
    *,
    beta: float | None,
    device: str,
    eval_cfg: EvalConfig,
    texts: Sequence[str] | None,
    allow_pickle: bool = False,
    dtype: Any = "float32",
    device_map: Any = None,
) -> TransferRun:
    """Load M (with the edit's ``--dtype`` / ``--device-map``), check its tokenizer, choose beta, evaluate M plain and as the ensemble."""
    from editkit.editors.sense.transfer import check_shared_tokenizer, transfer_edit
    from editkit.evaluate import evaluate
    from editkit.models import load_model
    from editkit.report import model_info, weights_sha256

    with stage_progress(f"loading {spec}") as progress:
        target, target_tok = load_model(
            spec, dtype=dtype, device=device, device_map=device_map, allow_pickle=allow_pickle, progress=progress
        )
    check_shared_tokenizer(tok, target_tok, names=("the Backpack", spec))
    info = model_info(target, spec, "transfer target", weights_sha256=weights_sha256(target))
    with stage_progress("choosing beta" if beta is None else "measuring beta"):
        ensemble, selection = transfer_edit(target, backpack, result, tok, beta=beta)
    with stage_progress(f"evaluating {spec}") as progress:
        before = evaluate(target, tok, requests, config=eval_cfg, reference_texts=texts, progress=progress)
    with stage_progress(f"evaluating {spec} + edit (beta {selection.beta:g})") as progress:
        after = evaluate(
            ensemble, tok, requests, config=eval_cfg, baseline=before, reference_texts=texts, base=target,
            progress=progress,
        )
    return TransferRun(spec, before, after, selection, info)


def add_transfer(report: Report, run: TransferRun) -> None:
    """Add the transfer's metrics, betas and settings to an edit :class:`~editkit.report.Report`."""
    from editkit.report import Table

    sel = run.selection
    names = [k for k in run.before.aggregate if run.before.aggregate[k] is not None or run.after.aggregate[k] is not None]
    rows = []
    for name in names:
        a, b = run.before.aggregate[name], run.after.aggregate[name]
        rows.append([name, a, b, b - a if a is not None and b is not None else None])
    report.tables.append(
        Table(
            title=f"Ensemble transfer to {run.spec}",
            columns=["metric", "plain", "with edit", "change"],
            rows=rows,
            description=(
                f"{run.spec} alone, and as the ensemble logits + {sel.beta:g} x (log p_edited - log p_original) "
                "of the edited Backpack (Hewitt et al., 2024); same requests and metrics as above."
            ),
        )
    )
    report.tables.append(
        Table(
            title="Transfer beta",
            columns=["beta", "general loss", "in league", "chosen"],
            rows=[[b, loss, ok, b == sel.beta] for b, loss, ok in sel.trials]
            + [[0.0, sel.initial_loss, True, sel.beta == 0.0]],  # beta 0: the plain model, always allowed
            description=(
                f"{run.spec}'s mean NLL on the edit's held-out general text per beta tried (0: {run.spec} alone); league: below "
                f"{'no limit' if sel.cutoff is None else format(sel.cutoff, '.6g')} (initial x (1 + {sel.eps})). "
                + ("beta was fixed (--transfer-beta)." if sel.fixed else "Chosen: the highest beta in the league.")
            ),
        )
    )
    report.config["transfer"] = {"model": run.spec, "beta_selection": "fixed" if sel.fixed else "league", **sel.to_dict()}
    report.timings.update({f"transfer.plain.{k}": v for k, v in run.before.timings.items()})
    report.timings.update({f"transfer.ensemble.{k}": v for k, v in run.after.timings.items()})
    report.provenance.models.append(run.model)
