"""The audit report from Python: the registry, the shared context, each tuned form, failures, resume.

Tiny random llama (tests/tiny_models.py); every audit here runs with small
settings (few CGE tokens, few reference passages) and writes JSON only, except
where the figures are the point.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
from pathlib import Path

import pytest
import torch
from tiny_models import save_tiny_full, tiny_model, tiny_tokenizer

from audit.analyses import ANALYSES, AnalysisOutput, get_analysis, parse_analyses, parse_options
from audit.context import AuditContext, PromptSet, read_prompt_sets
from audit.report import PartialStore, partial_dir_for, run_audit
from editkit.errors import InputError
from editkit.report import Report, Section

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]

QUICK = ["intruders.cache=false", "intruders.spectra=1", "cge.n=2", "cge.max_new_tokens=4", "cge.num_beams=2",
         "cge.rank_reference=4", "drift.passages=6", "tuco.max_prompts=3"]
EDITED = "model.layers.1.mlp.down_proj.weight"


@pytest.fixture(autouse=True)
def _no_refusal_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """The refusal audit is written elsewhere: these tests see it absent (None in sys.modules)."""
    monkeypatch.setitem(sys.modules, "audit.refusal", None)


@pytest.fixture(scope="module")
def edit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``editkit edit`` output: a rank-1 delta on block 1's mlp_down and the requests it was for."""
    from editkit.editors import EditResult, save_edit
    from editkit.localize import fixed
    from editkit.requests import EditRequest, save_requests

    model, _ = tiny_model("llama", seed=0)
    gen = torch.Generator().manual_seed(3)
    w = dict(model.named_parameters())[EDITED]
    delta = 0.5 * torch.randn(w.shape[0], 1, generator=gen) @ torch.randn(1, w.shape[1], generator=gen)
    folder = tmp_path_factory.mktemp("edit")
    save_edit(EditResult("locft-bf", {EDITED: delta}, fixed(model, layer=1, module="mlp_down"), {}),
              folder / "delta.safetensors")
    save_requests([
        EditRequest("The capital of France is", "Rome", subject="France", target_true="Paris",
                    paraphrase_prompts=["Paris is the capital city of"],
                    neighborhood_prompts=[{"prompt": "The capital of Spain is", "target": "Madrid"}]),
        EditRequest("Toyota is a car maker from", "Italy", subject="Toyota", target_true="Japan"),
    ], folder / "requests.jsonl")
    return folder


@pytest.fixture(scope="module")
def full_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A "full fine-tune": every block matrix perturbed a little."""
    return save_tiny_full(tmp_path_factory.mktemp("full"), scale=1e-2)


def _ctx(tuned: object, **kw: object) -> AuditContext:
    model, _ = tiny_model("llama", seed=0)
    return AuditContext.load(model, tuned if not callable(tuned) else tuned(model), tiny_tokenizer(), **kw)  # type: ignore[arg-type]


# ---- registry and options ----------------------------------------------------------------


def test_registry_names_and_options() -> None:
    assert list(ANALYSES) == ["tuco", "cge", "intruders", "refusal", "drift"]
    assert parse_analyses(None) == parse_analyses("all") == list(ANALYSES)
    assert parse_analyses(" drift,tuco,drift ") == ["drift", "tuco"]
    opts = parse_options(["intruders", "cge"], ["intruders.k=5", "cge.n=2"])
    assert opts["intruders"].k == 5 and opts["cge"].n == 2 and opts["cge"].gamma == 1.0  # type: ignore[attr-defined]
    with pytest.raises(InputError, match="did you mean 'drift'"):
        get_analysis("drfit")
    with pytest.raises(InputError, match="did you mean 'k'"):
        parse_options(["intruders"], ["intruders.kk=5"])
    assert list(parse_options(["tuco"], ["cge.n=2"])) == ["tuco"]  # checked, then unused
    with pytest.raises(InputError, match="cge"):
        parse_options(["tuco"], ["cge.nn=2"])
    with pytest.raises(InputError, match="unknown analysis 'cgee'"):
        parse_options(["tuco"], ["cgee.n=2"])
    with pytest.raises(InputError, match="expected <analysis>.<option>=<value>"):
        parse_options(["tuco"], ["tuco"])
    with pytest.raises(InputError, match="k=0"):
        parse_options(["intruders"], ["intruders.k=0"])
    with pytest.raises(InputError, match="start"):
        parse_options(["cge"], ["cge.start=middle"])


def test_prompt_sets_from_files(tmp_path: Path) -> None:
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"prompt": "a", "set": "chat"}\n{"text": "b"}\n\n{"prompt": "c", "set": "chat"}\n')
    sets = read_prompt_sets(jsonl)
    assert [(s.name, s.prompts) for s in sets] == [("chat", ("a", "c")), ("p", ("b",))]
    txt = tmp_path / "web.txt"
    txt.write_text("one\ntwo\n")
    assert read_prompt_sets(txt)[0] == PromptSet("web", ("one", "two"), str(txt))
    jsonl.write_text('{"prompt": "a"}\n{"prompt": 3}\n')
    with pytest.raises(InputError, match=r"p\.jsonl:2: prompt"):
        read_prompt_sets(jsonl)
    with pytest.raises(InputError, match="no such file"):
        read_prompt_sets(tmp_path / "missing.jsonl")


# ---- the shared context ----------------------------------------------------------------------


def test_context_shares_one_tuned_pair(lora_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TuCo, CGE and drift run the tuned model through one pair: the LoRA is merged once."""
    import audit.tuco.pair as pair_module

    built = []
    original = pair_module.DeltaPair.__init__

    def counting(self: object, *args: object, **kwargs: object) -> None:
        built.append(1)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pair_module.DeltaPair, "__init__", counting)
    ctx = _ctx(str(lora_dir), reference=["The capital of France is Paris."] * 3)
    report = run_audit(ctx, analyses="tuco,cge,drift", set_options=QUICK)
    assert [s.status for s in report.sections] == ["ok", "ok", "ok"]
    assert len(built) == 1
    assert ctx.delta_stats() is ctx.delta_stats()  # computed once, kept


def test_context_from_a_second_model_equals_the_deltas() -> None:
    tuned, _ = tiny_model("llama", seed=0)
    with torch.no_grad():
        dict(tuned.named_parameters())[EDITED].add_(0.1)
    ctx = _ctx(lambda base: tuned)
    assert list(ctx.weights) == [EDITED] and ctx.kind == "deltas"
    assert torch.allclose(ctx.weights[EDITED], torch.full_like(ctx.weights[EDITED], 0.1), atol=1e-6)
    with pytest.raises(InputError, match="cannot use a int"):
        _ctx(3)


# ---- every tuned form --------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["lora", "full", "edit"])
def test_every_tuned_form(form: str, tiny_dir: Path, lora_dir: Path, full_dir: Path, edit_dir: Path) -> None:
    tuned = {"lora": lora_dir, "full": full_dir, "edit": edit_dir}[form]
    report = run_audit(str(tiny_dir), str(tuned), analyses="drift,intruders", set_options=QUICK)
    assert report.kind == "audit" and report.config["tuned"]["kind"] == form
    assert [(s.name, s.status) for s in report.sections] == [("drift", "ok"), ("intruders", "ok")]
    drift = report.sections[0]
    assert drift.metrics["kl_mean"] is not None and drift.metrics["kl_mean"] >= 0  # type: ignore[operator]
    titles = [t.title for t in drift.tables]
    assert any(t.startswith("Edit metrics") for t in titles) == (form == "edit")
    if form == "edit":
        assert {"edit_reliability", "edit_generalization", "edit_locality"} <= set(drift.metrics)
        assert drift.metrics["edit_locality"] is not None
        assert "Edit:" in drift.summary
    assert report.summary.startswith("This audit compared") and "drift (not selected)" not in report.summary
    assert "refusal (not selected)" in report.summary and "cge (not selected)" in report.summary
    assert Report.from_json(report.to_json()) == report


def test_drift_numbers_match_an_independent_computation(tiny_dir: Path, edit_dir: Path) -> None:
    """Relative change, perplexity and KL of the edit, recomputed on an edited copy of the model."""
    from editkit.editors import apply, load_edit
    from editkit.evaluate import reference_drift
    from editkit.models import load_model

    texts = ["The capital of France is Paris.", "People in Spain speak Spanish.", "Water boils at 100 degrees."]
    report = run_audit(str(tiny_dir), str(edit_dir), analyses="drift", reference=texts,
                       set_options=["drift.edit_metrics=false"])
    metrics = report.sections[0].metrics
    base, tok = load_model(str(tiny_dir))
    edited, _ = load_model(str(tiny_dir))
    result = load_edit(edit_dir / "delta.safetensors")
    apply(edited, result)
    ref = reference_drift(edited, tok, texts, base=base)
    assert metrics["perplexity_tuned"] == pytest.approx(ref.perplexity, rel=1e-5)
    assert metrics["perplexity_base"] == pytest.approx(ref.base_perplexity, rel=1e-5)
    assert metrics["kl_mean"] == pytest.approx(ref.kl_mean, rel=1e-4, abs=1e-7)
    w0 = dict(base.named_parameters())[EDITED].detach()
    expected = float(result.deltas[EDITED].norm() / w0.norm())
    assert metrics["relative_change"] == pytest.approx(expected, rel=1e-5)
    assert metrics["max_relative_change"] == pytest.approx(expected, rel=1e-5)


def test_tuco_matches_the_tuco_api(tiny_dir: Path, lora_dir: Path) -> None:
    from peft import PeftModel

    from audit.tuco import PeftPair, tuco
    from editkit.models import load_model

    prompts = ["The capital of France is", "Toyota is a car maker from"]
    report = run_audit(str(tiny_dir), str(lora_dir), analyses="tuco", prompts=[PromptSet("facts", tuple(prompts))])
    rows = report.to_pandas("tuco/TuCo per prompt")
    base, tok = load_model(str(tiny_dir))
    direct = tuco(None, PeftPair(PeftModel.from_pretrained(base, str(lora_dir))), tok, prompts)
    assert rows["TuCo"].tolist() == pytest.approx([r.tuco for r in direct], abs=1e-5)
    assert report.sections[0].metrics["mean_tuco[facts]"] == pytest.approx(
        sum(r.tuco for r in direct) / 2, abs=1e-5)


# ---- failures, ranking, the verdict -----------------------------------------------------------


def _boom(ctx: object, options: object) -> AnalysisOutput:
    raise RuntimeError("kaboom in the analysis")


def test_a_failing_analysis_is_an_error_finding_and_the_others_finish(
    lora_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ANALYSES, "drift", dataclasses.replace(ANALYSES["drift"], run=_boom))
    report = run_audit(_ctx(str(lora_dir)), analyses="drift,refusal,intruders", set_options=QUICK)
    status = {s.name: s.status for s in report.sections}
    assert status == {"drift": "error", "refusal": "error", "intruders": "ok"}
    errors = [f for f in report.findings if f.severity == "error"]
    assert [f.analysis for f in errors] == ["drift", "refusal"]  # ranked first, in analysis order
    assert "kaboom in the analysis" in errors[0].message and "RuntimeError" in errors[0].details["traceback"]
    assert "audit.refusal" in errors[1].message and "not part of this installation" in errors[1].message
    severities = [f.severity for f in report.findings]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)
    assert "Not measured: drift (Failed: kaboom in the analysis); refusal (" in report.summary
    assert report.summary.endswith("do not show that the tuned model is safe or unsafe beyond them.")


def _refusal_stub(seen: dict[str, object]) -> types.SimpleNamespace:
    """Stands for audit.refusal: its refusal_audit(base, tuned, tok, harmful, harmless, ...) and result."""

    def est(value: float) -> types.SimpleNamespace:
        return types.SimpleNamespace(value=value, lo=max(value - 0.1, 0.0), hi=min(value + 0.1, 1.0))

    def refusal_audit(base: torch.nn.Module, tuned: torch.nn.Module, tok: object, harmful: list[str],
                      harmless: list[str], **options: object) -> types.SimpleNamespace:
        seen.update(options, harmful=len(harmful), harmless=len(harmless),
                    same=base is tuned, differs=not torch.equal(base.state_dict()[EDITED], tuned.state_dict()[EDITED]))
        rates = {"base": {"harmful": {"substring": est(0.9)}, "harmless": {"substring": est(0.05)}},
                 "tuned": {"harmful": {"substring": est(0.3)}, "harmless": {"substring": est(0.05)}}}
        return types.SimpleNamespace(rates=rates, layers=[0, 1, 2, 3], direction_cosine=[1.0, 0.9, 0.7, float("nan")],
                                     projection={"base": {"harmful": [1.0, 2.0, 3.0, 4.0]},
                                                 "tuned": {"harmful": [0.5, 1.0, 1.5, 2.0]}})

    return types.SimpleNamespace(refusal_audit=refusal_audit)


def test_refusal_is_wired_lazily_to_audit_refusal(edit_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where audit.refusal exists, its refusal_audit runs on base and a tuned copy; rates become a section."""
    seen: dict[str, object] = {}
    monkeypatch.setitem(sys.modules, "audit.refusal", _refusal_stub(seen))
    ctx = _ctx(str(edit_dir))
    report = run_audit(ctx, analyses="refusal", set_options=["refusal.prompts=3"])
    assert seen == {"max_new_tokens": 64, "batch_size": 8, "seed": 0, "progress": None, "harmful": 3,
                    "harmless": 3, "same": False, "differs": True}
    assert torch.equal(ctx.tuned_copy().state_dict()[EDITED], ctx.base.state_dict()[EDITED] + ctx.weights[EDITED])
    section = report.sections[0]
    assert section.status == "ok" and [f.kind for f in section.figures] == ["bars", "lines", "lines"]
    assert section.figures[0].data["series"][1]["lo"] == pytest.approx([0.2, 0.0])
    assert section.figures[1].data["series"][0]["y"][3] is None  # NaN cosine: no value
    assert report.findings[0].severity == "error" and "'harmful' 90% -> 30% (base -> tuned)" in report.findings[0].message
    assert "It raised 1 error; the most severe: refusal:" in report.summary


# ---- resume ------------------------------------------------------------------------------------


def _interrupt(ctx: object, options: object) -> AnalysisOutput:
    raise KeyboardInterrupt


def test_resume_reuses_finished_analyses(lora_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "audit"
    ctx = _ctx(str(lora_dir), reference=["The capital of France is Paris."] * 2)
    real_tuco, real_drift = ANALYSES["tuco"], ANALYSES["drift"]
    monkeypatch.setitem(ANALYSES, "tuco", dataclasses.replace(real_tuco, run=_interrupt))
    with pytest.raises(KeyboardInterrupt):
        run_audit(ctx, analyses="drift,tuco", set_options=QUICK, out=out, formats=["json"])
    assert not out.exists()
    store = PartialStore(partial_dir_for(out))
    assert sorted(p.name for p in store.root.iterdir()) == ["drift.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".audit.partial"]  # nothing half-written

    with pytest.raises(InputError, match="--resume to reuse them, or --overwrite"):
        run_audit(ctx, analyses="drift,tuco", set_options=QUICK, out=out)
    calls = []

    def counted(c: AuditContext, o: object) -> AnalysisOutput:
        calls.append(1)
        return real_drift.run(c, o)

    monkeypatch.setitem(ANALYSES, "tuco", real_tuco)
    monkeypatch.setitem(ANALYSES, "drift", dataclasses.replace(real_drift, run=counted))
    report = run_audit(ctx, analyses="drift,tuco", set_options=QUICK, out=out, resume=True, formats=["json"])
    assert calls == []  # drift was taken from the interrupted run
    assert [s.status for s in report.sections] == ["ok", "ok"]
    assert report.notes and report.notes[0].startswith("Resumed: drift")
    assert not store.root.exists()
    assert Report.from_json((out / "report.json").read_text()) == report

    # Other options: the saved drift no longer matches, so it runs again.
    store.save("drift", "stale-key", AnalysisOutput(Section("drift", "Weight and output drift")))
    report = run_audit(ctx, analyses="drift", set_options=["drift.passages=1"], out=out, resume=True,
                       overwrite=True, formats=["json"])
    assert calls == [1] and not report.notes


def test_partial_store_ignores_damaged_files(tmp_path: Path) -> None:
    store = PartialStore(tmp_path / "p")
    out = AnalysisOutput(Section("x", "X", metrics={"a": float("nan")}))
    store.save("x", "k", out)
    assert store.load("x", "k") == AnalysisOutput(Section("x", "X", metrics={"a": None}))
    assert store.load("x", "other") is None
    store.path("x").write_text("{not json")
    assert store.load("x", "k") is None


# ---- the report object --------------------------------------------------------------------------


def test_report_renders_in_jupyter_and_exports_to_pandas(lora_dir: Path) -> None:
    report = run_audit(_ctx(str(lora_dir)), analyses="intruders,drift", set_options=QUICK)
    html = report._repr_html_()
    assert html.startswith("<iframe srcdoc=") and "Intruder dimensions" in html
    frames = report.to_pandas()
    assert {"findings", "sections", "section_metrics", "intruders/Matrices with intruders",
            "drift/Relative weight change per block"} <= set(frames)
    assert list(frames["findings"].columns) == ["analysis", "severity", "message", "details"]
    assert frames["sections"]["status"].tolist() == ["ok", "ok"]
    grid = report.to_pandas("intruders/Intruders per layer and module kind")
    assert grid["total"].sum() == report.sections[0].metrics["intruders"]
    with pytest.raises(KeyError, match="no table 'nope'.*findings"):
        report.to_pandas("nope")
    json.loads(report.to_json())  # strict JSON
    assert all(math.isfinite(v) for v in report.timings.values())
