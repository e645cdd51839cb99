"""``editkit probe train|eval|generate``: refusal classifiers over text and activations, evaluated honestly.

``train`` fits a probe on labelled data, evaluates the same recipe on a
grouped random split and on every leave-one-source-out split (beside the
substring-judge and majority baselines), and saves the probe fitted on all
the data (safetensors + JSON, no pickle) with a model card.

``eval`` scores a saved probe (``--probe``) on new data, overall and per
source; without ``--probe`` it runs the train recipe's evaluation only.

``generate`` answers instructions with a model (greedy, chat template) and
writes them in the responses format with provisional labels to check by hand.

Data: a responses file (``data/refusal/responses.jsonl`` format: the label is
refusal / compliance) or an instructions file (``instructions.jsonl``,
AdvBench-style CSV ...: the label is harmful / harmless).

Layering: ``probes`` is imported inside the command functions only (DESIGN.md).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from editkit.cli._common import (
    allow_pickle_option,
    checked_out,
    handle_errors,
    out_console,
    stage_progress,
)
from editkit.models import DEFAULT_MODEL

app = typer.Typer(help="Refusal classifiers over text and activations: train, evaluate, generate labelled data.", no_args_is_help=True)

KINDS = ("text", "activation")


@dataclass
class Dataset:
    """Rows as parallel lists, ready for fitting."""

    what: str  # "responses" | "instructions"
    prompts: list[str]
    responses: list[str] | None
    y: list[int]
    sources: list[str]
    groups: list[str]
    labels: tuple[str, str]
    source_field: str
    rows: list[Any]
    path: Path


def parse_layers(value: str | None) -> list[int] | None:
    """``"all"``/None -> None; ``"0,4,8"`` and ranges ``"2-6"`` -> sorted ints.

    >>> parse_layers("0,4-6")
    [0, 4, 5, 6]
    """
    from editkit.errors import InputError

    if value is None or value.strip() in ("", "all"):
        return None
    out: set[int] = set()
    for part in value.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            out.update(range(int(lo), int(hi) + 1) if sep else [int(part)])
        except ValueError:
            raise InputError(f"--layers: expected 'all' or layers and ranges like 0,4,8-12, got {part!r}") from None
    return sorted(out)


def _is_responses(path: Path) -> bool:
    from editkit.datafiles import iter_jsonl

    if path.suffix != ".jsonl" or not path.is_file():
        return False
    for _, row in iter_jsonl(path):
        return isinstance(row, dict) and "response" in row
    return False


def load_dataset(path: Path, *, instructions: Path | None, partial_as: str, group_by: str) -> Dataset:
    """Read a responses or instructions file into a :class:`Dataset`."""
    from editkit.errors import InputError
    from probes.data import (
        INSTRUCTION_LABELS,
        RESPONSE_LABELS,
        group_field,
        load_instructions,
        load_responses,
    )

    if partial_as not in RESPONSE_LABELS:
        raise InputError(f"--partial-as: expected 'compliance' or 'refusal', got {partial_as!r}")
    if _is_responses(path):
        rows = load_responses(path, instructions=instructions, class_labels={"partial": partial_as})
        field, sources = group_field(rows, group_by)
        return Dataset("responses", [r.prompt for r in rows], [r.response for r in rows], [r.y for r in rows], sources,
                       [r.instruction_id or r.prompt for r in rows], RESPONSE_LABELS, field, rows, path)
    items = load_instructions(path)
    unlabelled = [r.id for r in items if r.label is None]
    if unlabelled:
        raise InputError(f"{path}: {len(unlabelled)} instructions have no harmful/harmless label (e.g. {unlabelled[0]})")
    if group_by not in ("auto", "source"):
        raise InputError(f"--group-by: instructions have only 'source', got {group_by!r}")
    return Dataset("instructions", [r.text for r in items], None, [r.y for r in items], [r.source for r in items],
                   [r.id for r in items], INSTRUCTION_LABELS, "source", items, path)


def _report_table(report: Any, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    rows = report.rows()
    for i, col in enumerate(rows[0] if rows else ["split"]):
        table.add_column(col, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(escape(v) for v in row.values()))
    table.caption = "AUROC and balanced accuracy [95% bootstrap interval]; substring and majority: balanced accuracy of the baselines"
    return table


def _check(kind: str, test_fraction: float, n_boot: int, batch_size: int) -> None:
    from editkit.errors import InputError

    if kind not in KINDS:
        raise InputError(f"--kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"--test-fraction: expected a number in (0, 1), got {test_fraction}")
    if n_boot < 0:
        raise InputError(f"--bootstrap: expected an integer >= 0, got {n_boot}")
    if batch_size < 1:
        raise InputError(f"--batch-size: expected an integer >= 1, got {batch_size}")


def _text_config(data: Dataset, inputs: str | None, seed: int) -> Any:
    from editkit.errors import InputError
    from probes.text_clf import TextClassifierConfig

    chosen = inputs or ("response" if data.what == "responses" else "prompt")
    if data.what == "instructions" and chosen != "prompt":
        raise InputError(f"--inputs {chosen}: an instructions file has no responses; use --inputs prompt")
    return TextClassifierConfig(inputs=chosen, seed=seed)


def _activation_config(data: Dataset, opts: dict[str, Any]) -> Any:
    from editkit.errors import InputError
    from probes.activation_probe import ActivationProbeConfig

    prompt_only = opts["prompt_only"]
    if data.what == "instructions" and not prompt_only:
        raise InputError("--with-response: an instructions file has no responses; use --prompt-only")
    return ActivationProbeConfig(method=opts["method"], layers=tuple(opts["layers"]) if opts["layers"] else None,
                                 prompt_only=prompt_only, positions=opts["positions"], chat=opts["chat"],
                                 system_prompt=opts["system"], batch_size=opts["batch_size"], backend=opts["backend"],
                                 impl=opts["impl"], seed=opts["seed"])


def _substring(data: Dataset, judge_set: str, within: int | None) -> tuple[Any, Any]:
    from probes.judges import SubstringJudge

    judge = SubstringJudge.from_set(judge_set, within=within)
    if data.responses is None:
        return judge, None
    return judge, judge.predict(data.responses)


def _fit_predict_factory(kind: str, data: Dataset, config: Any, acts: Any) -> Any:
    """``fit_predict(train, test)`` for :func:`probes.evaluation.evaluate_protocol`."""
    import numpy as np

    from probes.activation_probe import ActivationProbe
    from probes.evaluation import Scored
    from probes.text_clf import TextRefusalClassifier

    y = np.asarray(data.y)

    def pick(values: list[str] | None, idx: Any) -> list[str] | None:
        return None if values is None else [values[i] for i in idx]

    def fit_predict(train: Any, test: Any) -> Scored:
        if kind == "text":
            clf = TextRefusalClassifier(config).fit(pick(data.prompts, train), pick(data.responses, train), y[train],
                                                    groups=[data.groups[i] for i in train])
            scores = clf.decision_function(pick(data.prompts, test), pick(data.responses, test))
            probs = clf.predict_proba(pick(data.prompts, test), pick(data.responses, test))
            return Scored(scores, probs, (probs >= clf.threshold).astype(int))
        probe = ActivationProbe(config).fit_features(acts.hidden[train], y[train], [data.groups[i] for i in train],
                                                     layers=acts.layers)
        layer_index = acts.layers.index(probe.layer)
        X = acts.hidden[test][:, layer_index].mean(dim=1)
        probs = probe.proba_features(X)
        return Scored(probe.score_features(X), probs, (probs >= probe.threshold).astype(int))

    return fit_predict


def _load_lm(model: str, device: str, dtype: str, allow_pickle: bool) -> tuple[Any, Any]:
    from editkit.models import load_model

    with stage_progress(f"loading {model}") as progress:
        return load_model(model, dtype=dtype, device=device, allow_pickle=allow_pickle, progress=progress)


def _run_protocol(kind: str, data: Dataset, config: Any, lm: Any, tok: Any, *, substring: Any,
                  test_fraction: float, n_boot: int, seed: int, settings: dict[str, Any]) -> tuple[Any, Any]:
    """The evaluation report, and the collected activations (activation probes) for the final fit."""
    from probes.activation_probe import ActivationProbe
    from probes.evaluation import evaluate_protocol

    acts = None
    if kind == "activation":
        with stage_progress(f"collecting activations ({len(data.prompts)} prompts)") as progress:
            acts = ActivationProbe(config).collect(lm, tok, data.prompts, data.responses, layers=config.layers,
                                                   progress=progress)
    fit_predict = _fit_predict_factory(kind, data, config, acts)
    with stage_progress("evaluating (random split, leave-one-source-out)") as progress:
        report = evaluate_protocol(
            fit_predict, data.y, sources=data.sources, groups=data.groups, substring=substring, labels=data.labels,
            kind=kind, test_fraction=test_fraction, n_boot=n_boot, seed=seed, progress=progress, settings=settings,
        )
    return report, acts


def _settings(data: Dataset, kind: str, config: Any, judge: Any, extra: dict[str, Any]) -> dict[str, Any]:
    return {"data": str(data.path), "what": data.what, "source_field": data.source_field, "kind": kind,
            "config": config.to_dict(), "substring_judge": judge.to_dict() if data.responses is not None else None, **extra}


def _print_report(report: Any, title: str) -> None:
    out_console.print(_report_table(report, title))
    if report.loso():
        summary = report.loso_summary()
        auroc = summary["auroc"]
        if auroc["mean"] is not None:
            out_console.print(
                f"leave-one-source-out AUROC: mean {auroc['mean']:.3f}, worst {auroc['min']:.3f} "
                f"({len(report.loso())} sources)", highlight=False)


# shared options ------------------------------------------------------------------

_DATA = typer.Option(..., "--data", "-d", help="Labelled data: responses .jsonl (refusal/compliance) or instructions (.jsonl/.csv/.json/.txt, harmful/harmless).")
_INSTRUCTIONS = typer.Option(None, "--instructions", help="Instructions file to resolve the responses' instruction_id (when rows lack the instruction text).")
_KIND = typer.Option("text", "--kind", "-k", help="'text' (TF-IDF + logistic regression) or 'activation' (probe on hidden states).")
_MODEL = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model whose hidden states an activation probe reads: zoo alias, folder, .gguf or hub id.")
_INPUTS = typer.Option(None, "--inputs", help="Text probe input: 'response', 'prompt' (refusal from the prompt alone) or 'both' (default: response, or prompt for instructions).")
_METHOD = typer.Option("logistic", "--method", help="Activation probe: 'logistic' (L2, IRLS on the gpu backend) or 'diff_means'.")
_PROMPT_ONLY = typer.Option(True, "--prompt-only/--with-response", help="Activation probe: read the prompt only (predict refusal before generation) or the prompt + response.")
_POSITIONS = typer.Option(None, "--positions", help="Activation probe positions: last, prompt_last, post_instruction (averaged) or response_mean.")
_LAYERS = typer.Option(None, "--layers", help="Candidate layers, e.g. 'all' (default), '4,8,12' or '6-20'; chosen on validation data.")
_GROUP_BY = typer.Option("auto", "--group-by", help="Field used as the source for leave-one-source-out: 'auto', 'source' or 'prompt_source'.")
_PARTIAL_AS = typer.Option("compliance", "--partial-as", help="Binary label of the 'partial' class: 'compliance' (default) or 'refusal'.")
_JUDGE = typer.Option("arditi", "--judge", help="Substring baseline phrase set: 'arditi' (published list) or 'extended'.")
_WITHIN = typer.Option(None, "--judge-within", min=1, help="Substring baseline: count only phrases starting in the first N characters.")
_TEST_FRACTION = typer.Option(0.25, "--test-fraction", help="Share of prompts in the random split's test set.")
_BOOT = typer.Option(1000, "--bootstrap", help="Bootstrap resamples per interval (0: no intervals).")
_SEED = typer.Option(0, "--seed", help="Seed of the splits, folds and bootstrap.")
_CHAT = typer.Option(None, "--chat/--no-chat", help="Wrap prompts in the chat template (default: when the tokenizer has one).")
_SYSTEM = typer.Option(None, "--system", help="System message for the chat template.")
_BATCH = typer.Option(8, "--batch-size", help="Prompts per forward pass.")
_IMPL = typer.Option("nnsight", "--impl", help="Activation collection: 'nnsight' or 'hooks'.")
_BACKEND = typer.Option("auto", "--backend", help="Array backend of the logistic fit: auto, torch-cpu, torch-cuda, cupy.")
_DEVICE = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ...")
_DTYPE = typer.Option("float32", "--dtype", help="float32, bfloat16 or float16.")
_OVERWRITE = typer.Option(False, "--overwrite", help="Replace an existing output directory.")
_ALLOW_PICKLE = allow_pickle_option("--model")


def _options(locals_: dict[str, Any]) -> dict[str, Any]:
    return {"method": locals_["method"], "layers": parse_layers(locals_["layers"]), "prompt_only": locals_["prompt_only"],
            "positions": locals_["positions"], "chat": locals_["chat"], "system": locals_["system"],
            "batch_size": locals_["batch_size"], "backend": locals_["backend"], "impl": locals_["impl"], "seed": locals_["seed"]}


@app.command("train")
@handle_errors
def train_command(
    data: Path = _DATA,
    out: Path = typer.Option(..., "--out", "-o", help="Probe directory to write (must not exist unless --overwrite)."),
    kind: str = _KIND,
    model: str = _MODEL,
    instructions: Path | None = _INSTRUCTIONS,
    inputs: str | None = _INPUTS,
    method: str = _METHOD,
    prompt_only: bool = _PROMPT_ONLY,
    positions: str | None = _POSITIONS,
    layers: str | None = _LAYERS,
    group_by: str = _GROUP_BY,
    partial_as: str = _PARTIAL_AS,
    judge: str = _JUDGE,
    judge_within: int | None = _WITHIN,
    test_fraction: float = _TEST_FRACTION,
    bootstrap: int = _BOOT,
    evaluate: bool = typer.Option(True, "--eval/--no-eval", help="Run the random-split and leave-one-source-out evaluation before the final fit."),
    seed: int = _SEED,
    chat: bool | None = _CHAT,
    system: str | None = _SYSTEM,
    batch_size: int = _BATCH,
    impl: str = _IMPL,
    backend: str = _BACKEND,
    device: str = _DEVICE,
    dtype: str = _DTYPE,
    overwrite: bool = _OVERWRITE,
    allow_pickle: bool = _ALLOW_PICKLE,
) -> None:
    """Train a refusal probe, evaluate its recipe (random split + leave-one-source-out, with baselines), save it.

    Writes OUT/card.json (model card: data hash, label map, metrics), OUT/state.json, OUT/weights.safetensors and OUT/eval.json.
    """
    import numpy as np

    from editkit.outputs import output_dir
    from probes.activation_probe import ActivationProbe, model_summary
    from probes.data import data_hash
    from probes.store import ModelCard, write_probe
    from probes.text_clf import TextRefusalClassifier

    _check(kind, test_fraction, bootstrap, batch_size)
    held = checked_out(out, overwrite, data, instructions, model)  # never replaced by --overwrite
    ds = load_dataset(data, instructions=instructions, partial_as=partial_as, group_by=group_by)
    config = _text_config(ds, inputs, seed) if kind == "text" else _activation_config(ds, _options(locals()))
    judge_obj, substring = _substring(ds, judge, judge_within)
    lm = tok = None
    if kind == "activation":
        lm, tok = _load_lm(model, device, dtype, allow_pickle)
    settings = _settings(ds, kind, config, judge_obj, {"model": model if kind == "activation" else None})
    report, acts = None, None
    if evaluate:
        report, acts = _run_protocol(kind, ds, config, lm, tok, substring=substring, test_fraction=test_fraction,
                                     n_boot=bootstrap, seed=seed, settings=settings)
    y = np.asarray(ds.y)
    probe: Any
    with stage_progress("fitting the final probe on all the data") as progress:
        progress("fitting", 0, 1)
        if kind == "text":
            probe = TextRefusalClassifier(config).fit(ds.prompts, ds.responses, y, groups=ds.groups)
        else:
            probe = ActivationProbe(config)
            if acts is None:
                acts = probe.collect(lm, tok, ds.prompts, ds.responses, layers=config.layers)
            probe.fit_features(acts, y, ds.groups)
            probe.model_info = model_summary(lm)
        progress("fitting", 1, 1)
    counts = {ds.labels[k]: int((y == k).sum()) for k in (0, 1)}
    card = ModelCard(
        kind=kind,
        label_map={ds.labels[0]: 0, ds.labels[1]: 1},
        data={"hash": data_hash(ds.rows), "file": str(data), "what": ds.what, "n": len(ds.y), "counts": counts,
              "sources": {s: ds.sources.count(s) for s in dict.fromkeys(ds.sources)}, "source_field": ds.source_field},
        metrics=report.to_dict() if report is not None else {},
        notes={"command": ["editkit", *sys.argv[1:]], "model": probe.model_info if kind == "activation" else None,
               "train_info": probe.train_info},
    )
    with output_dir(out, overwrite=overwrite, inputs=held) as tmp:
        write_probe(tmp, probe, card)
        if report is not None:
            (tmp / "eval.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    if report is not None:
        _print_report(report, f"{kind} probe on {escape(str(data))} ({ds.labels[1]} vs {ds.labels[0]})")
    where = f"layer {probe.layer}, " if kind == "activation" else ""
    out_console.print(f"\nprobe ({where}threshold {probe.threshold:.3f}) written to [bold]{escape(str(out))}[/]")


@app.command("eval")
@handle_errors
def eval_command(
    data: Path = _DATA,
    probe_dir: Path | None = typer.Option(None, "--probe", "-p", help="A saved probe to score on --data; without it, the train recipe is evaluated (random split + leave-one-source-out)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Directory for eval.json (must not exist unless --overwrite); without it, only the table is printed."),
    kind: str = _KIND,
    model: str | None = typer.Option(None, "--model", "-m", help="Model for activation probes (default: the one in the probe's card, else the default model)."),
    instructions: Path | None = _INSTRUCTIONS,
    inputs: str | None = _INPUTS,
    method: str = _METHOD,
    prompt_only: bool = _PROMPT_ONLY,
    positions: str | None = _POSITIONS,
    layers: str | None = _LAYERS,
    group_by: str = _GROUP_BY,
    partial_as: str = _PARTIAL_AS,
    judge: str = _JUDGE,
    judge_within: int | None = _WITHIN,
    test_fraction: float = _TEST_FRACTION,
    bootstrap: int = _BOOT,
    seed: int = _SEED,
    chat: bool | None = _CHAT,
    system: str | None = _SYSTEM,
    batch_size: int = _BATCH,
    impl: str = _IMPL,
    backend: str = _BACKEND,
    device: str = _DEVICE,
    dtype: str = _DTYPE,
    overwrite: bool = _OVERWRITE,
    allow_pickle: bool = _ALLOW_PICKLE,
) -> None:
    """Evaluate: a saved probe on new data (overall and per source), or a probe recipe by random split and leave-one-source-out.

    AUROC, balanced accuracy, per-class recall and ECE with bootstrap intervals, beside the substring and majority baselines.
    """
    from editkit.outputs import output_dir

    _check(kind, test_fraction, bootstrap, batch_size)
    held = checked_out(out, overwrite, data, probe_dir, instructions, model)  # never replaced by --overwrite
    ds = load_dataset(data, instructions=instructions, partial_as=partial_as, group_by=group_by)
    judge_obj, substring = _substring(ds, judge, judge_within)
    if probe_dir is not None:
        report = _eval_saved(probe_dir, ds, model, substring, judge_obj, bootstrap, seed, device, dtype, allow_pickle)
        title = f"probe {escape(str(probe_dir))} on {escape(str(data))}"
    else:
        config = _text_config(ds, inputs, seed) if kind == "text" else _activation_config(ds, _options(locals()))
        lm = tok = None
        if kind == "activation":
            model = model or DEFAULT_MODEL
            lm, tok = _load_lm(model, device, dtype, allow_pickle)
        settings = _settings(ds, kind, config, judge_obj, {"model": model if kind == "activation" else None})
        report, _ = _run_protocol(kind, ds, config, lm, tok, substring=substring, test_fraction=test_fraction,
                                  n_boot=bootstrap, seed=seed, settings=settings)
        title = f"{kind} probe recipe on {escape(str(data))} ({ds.labels[1]} vs {ds.labels[0]})"
    _print_report(report, title)
    if out is not None:
        with output_dir(out, overwrite=overwrite, inputs=held) as tmp:
            (tmp / "eval.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        out_console.print(f"\nevaluation written to [bold]{escape(str(out))}[/]")


def _eval_saved(probe_dir: Path, ds: Dataset, model: str | None, substring: Any, judge: Any, n_boot: int, seed: int,
                device: str, dtype: str, allow_pickle: bool) -> Any:
    import numpy as np

    from editkit.errors import InputError
    from probes.evaluation import Scored, evaluate_fixed
    from probes.store import load_probe
    from probes.text_clf import TextRefusalClassifier

    probe, card = load_probe(probe_dir)
    if set(card.label_map) != set(ds.labels):
        raise InputError(f"{probe_dir}: the probe predicts {'/'.join(card.label_map)} but {ds.path} is labelled {'/'.join(ds.labels)}")
    if isinstance(probe, TextRefusalClassifier):
        scores = probe.decision_function(ds.prompts, ds.responses)
    else:
        spec = model or (card.notes.get("model") or {}).get("spec") or DEFAULT_MODEL
        lm, tok = _load_lm(spec, device, dtype, allow_pickle)
        with stage_progress("scoring") as progress:
            scores = probe.decision_function(lm, tok, ds.prompts, ds.responses, progress=progress)
    probs = 1.0 / (1.0 + np.exp(-(probe.platt[0] * scores + probe.platt[1])))
    counts = card.data.get("counts") or {}
    total = sum(counts.values())
    rate = counts.get(ds.labels[1], 0) / total if total else 0.5
    settings = {"probe": str(probe_dir), "data": str(ds.path), "source_field": ds.source_field,
                "substring_judge": judge.to_dict() if ds.responses is not None else None, "threshold": probe.threshold}
    return evaluate_fixed(ds.y, Scored(scores, probs, (probs >= probe.threshold).astype(int)), sources=ds.sources,
                          groups=ds.groups, substring=substring, train_positive_rate=rate, labels=ds.labels,
                          kind=probe.kind, n_boot=n_boot, seed=seed, settings=settings)


@app.command("generate")
@handle_errors
def generate_command(
    instructions: Path = typer.Option(..., "--instructions", "-i", help="Instructions to answer (.jsonl/.csv/.json/.txt; see data/refusal/README.md)."),
    out: Path = typer.Option(..., "--out", "-o", help="Responses .jsonl to write (must not exist unless --overwrite)."),
    model: str = _MODEL,
    label_with: str = typer.Option("substring", "--label-with", help="Provisional labels: 'substring' (the --judge phrase set) or a saved text probe folder. Check them by hand before training on them."),
    source: str | None = typer.Option(None, "--source", help="The rows' 'source' (default: the model spec)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Answer only the first N instructions."),
    max_new_tokens: int = typer.Option(96, "--max-new-tokens", min=1, help="Greedy tokens per response."),
    judge: str = _JUDGE,
    chat: bool | None = _CHAT,
    system: str | None = _SYSTEM,
    batch_size: int = _BATCH,
    device: str = _DEVICE,
    dtype: str = _DTYPE,
    overwrite: bool = _OVERWRITE,
    allow_pickle: bool = _ALLOW_PICKLE,
) -> None:
    """Generate greedy responses (chat template) in the responses.jsonl format, with provisional labels.

    Every row records how it was labelled ('label_by'); a label from the substring judge or a classifier is a starting point for hand-labelling, not ground truth.
    """
    from editkit.errors import EditkitError
    from editkit.outputs import atomic_write_text, check_output_file, input_paths
    from probes.chat import generate_responses
    from probes.data import load_instructions
    from probes.judges import SubstringJudge
    from probes.store import load_probe
    from probes.text_clf import TextRefusalClassifier

    check_output_file(out, overwrite=overwrite, inputs=input_paths(instructions, label_with, model))
    rows = load_instructions(instructions, limit=limit)
    clf: TextRefusalClassifier | None = None
    if label_with != "substring":
        loaded, _ = load_probe(label_with)
        if not isinstance(loaded, TextRefusalClassifier):
            raise EditkitError(f"--label-with {label_with}: a {loaded.kind} probe; pass 'substring' or a text probe folder")
        clf = loaded
    lm, tok = _load_lm(model, device, dtype, allow_pickle)
    with stage_progress(f"generating {len(rows)} responses") as progress:
        texts = generate_responses(lm, tok, [r.text for r in rows], max_new_tokens=max_new_tokens, batch_size=batch_size,
                                   chat=chat, system_prompt=system, progress=progress)
    if clf is not None:
        verdicts = list(clf.predict([r.text for r in rows], texts))
        label_by = f"classifier:{label_with}"
    else:
        verdicts = list(SubstringJudge.from_set(judge).predict(texts))
        label_by = f"substring:{judge}"
    name = source or model
    lines = []
    for k, (row, text, verdict) in enumerate(zip(rows, texts, verdicts, strict=True), 1):
        lines.append(json.dumps({
            "id": f"{name}-{k:04d}", "instruction_id": row.id, "instruction": row.text, "response": text,
            "label": "refusal" if verdict else "compliance", "class": None, "source": name,
            "prompt_source": row.source, "instruction_label": row.label, "label_by": label_by,
        }, ensure_ascii=False))
    atomic_write_text(out, "\n".join(lines) + "\n")
    n_refusal = int(sum(verdicts))
    out_console.print(f"{len(rows)} responses written to [bold]{escape(str(out))}[/] "
                      f"({n_refusal} provisionally labelled refusal by {escape(label_by)}); check the labels by hand")
