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

import functools
import inspect
import json
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from editkit.cli._common import (
    allow_pickle_option,
    checked_loading,
    checked_out,
    device_map_option,
    dtype_option,
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


# options: those of several commands, then the train/eval recipe ---------------------

_MODEL = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model whose hidden states an activation probe reads: zoo alias, folder, .gguf or hub id.")
_JUDGE = typer.Option("arditi", "--judge", help="Substring baseline phrase set: 'arditi' (published list) or 'extended'.")
_CHAT = typer.Option(None, "--chat/--no-chat", help="Wrap prompts in the chat template (default: when the tokenizer has one).")
_SYSTEM = typer.Option(None, "--system", help="System message for the chat template.")
_BATCH = typer.Option(8, "--batch-size", help="Prompts per forward pass.")
_DEVICE = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ...")
_DTYPE = dtype_option()
_DEVICE_MAP = device_map_option()
_OVERWRITE = typer.Option(False, "--overwrite", help="Replace an existing output directory.")
_ALLOW_PICKLE = allow_pickle_option("--model")


@dataclass(frozen=True)
class Recipe:
    """The options ``train`` and ``eval`` share: the data, the probe recipe, its evaluation, the model loading.

    Declared once, like a command's parameters (each default is the typer option);
    :func:`_with_recipe` gives them to both commands.
    """

    data: Path = typer.Option(..., "--data", "-d", help="Labelled data: responses .jsonl (refusal/compliance) or instructions (.jsonl/.csv/.json/.txt, harmful/harmless).")
    kind: str = typer.Option("text", "--kind", "-k", help="'text' (TF-IDF + logistic regression) or 'activation' (probe on hidden states).")
    instructions: Path | None = typer.Option(None, "--instructions", help="Instructions file to resolve the responses' instruction_id (when rows lack the instruction text).")
    inputs: str | None = typer.Option(None, "--inputs", help="Text probe input: 'response', 'prompt' (refusal from the prompt alone) or 'both' (default: response, or prompt for instructions).")
    method: str = typer.Option("logistic", "--method", help="Activation probe: 'logistic' (L2, IRLS on the gpu backend) or 'diff_means'.")
    prompt_only: bool = typer.Option(True, "--prompt-only/--with-response", help="Activation probe: read the prompt only (predict refusal before generation) or the prompt + response.")
    positions: str | None = typer.Option(None, "--positions", help="Activation probe positions: last, prompt_last, post_instruction (averaged) or response_mean.")
    layers: str | None = typer.Option(None, "--layers", help="Candidate layers, e.g. 'all' (default), '4,8,12' or '6-20'; chosen on validation data.")
    group_by: str = typer.Option("auto", "--group-by", help="Field used as the source for leave-one-source-out: 'auto', 'source' or 'prompt_source'.")
    partial_as: str = typer.Option("compliance", "--partial-as", help="Binary label of the 'partial' class: 'compliance' (default) or 'refusal'.")
    judge: str = _JUDGE
    judge_within: int | None = typer.Option(None, "--judge-within", min=1, help="Substring baseline: count only phrases starting in the first N characters.")
    test_fraction: float = typer.Option(0.25, "--test-fraction", help="Share of prompts in the random split's test set.")
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples per interval (0: no intervals).")
    seed: int = typer.Option(0, "--seed", help="Seed of the splits, folds and bootstrap.")
    chat: bool | None = _CHAT
    system: str | None = _SYSTEM
    batch_size: int = _BATCH
    impl: str = typer.Option("nnsight", "--impl", help="Activation collection: 'nnsight' or 'hooks'.")
    backend: str = typer.Option("auto", "--backend", help="Array backend of the logistic fit: auto, torch-cpu, torch-cuda, cupy.")
    device: str = _DEVICE
    dtype: str = _DTYPE
    device_map: str | None = _DEVICE_MAP
    overwrite: bool = _OVERWRITE
    allow_pickle: bool = _ALLOW_PICKLE


_HELP_ORDER = ("data", "probe_dir", "out", "kind", "model", "instructions", "inputs", "method", "prompt_only", "positions",
               "layers", "group_by", "partial_as", "judge", "judge_within", "test_fraction", "bootstrap", "evaluate", "seed",
               "chat", "system", "batch_size", "impl", "backend", "device", "dtype", "device_map", "overwrite",
               "allow_pickle")
"""The order ``train`` and ``eval`` list their options in ``--help`` (the recipe's and their own)."""


def _with_recipe(command: Callable[..., None]) -> Callable[..., None]:
    """``command(recipe, **own)`` as a typer command that takes the :class:`Recipe` options beside its own.

    Typer reads the returned function's signature: the command's own options
    and the recipe's fields, in :data:`_HELP_ORDER`; a call packs the recipe's
    values into a :class:`Recipe` and passes the rest on.
    """
    keyword = inspect.Parameter.KEYWORD_ONLY
    hints = typing.get_type_hints(Recipe)
    shared = [inspect.Parameter(f.name, keyword, default=f.default, annotation=hints[f.name]) for f in fields(Recipe)]
    own = [p.replace(kind=keyword) for p in list(inspect.signature(command, eval_str=True).parameters.values())[1:]]
    params = sorted(own + shared, key=lambda p: _HELP_ORDER.index(p.name))

    @functools.wraps(command)
    def wrapper(**values: Any) -> None:
        command(Recipe(**{f.name: values.pop(f.name) for f in fields(Recipe)}), **values)

    wrapper.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**{p.name: p.annotation for p in params}, "return": None}
    return wrapper


def _start(recipe: Recipe, out: Path | None, model: str | None, probe_dir: Path | None = None) -> tuple[list[Path], Dataset]:
    """Check the options and ``--out`` (before any work), read ``--data``: the inputs ``--out`` must not replace, and the data."""
    from editkit.errors import InputError

    if recipe.kind not in KINDS:
        raise InputError(f"--kind: expected one of {', '.join(KINDS)}, got {recipe.kind!r}")
    if not 0.0 < recipe.test_fraction < 1.0:
        raise InputError(f"--test-fraction: expected a number in (0, 1), got {recipe.test_fraction}")
    if recipe.bootstrap < 0:
        raise InputError(f"--bootstrap: expected an integer >= 0, got {recipe.bootstrap}")
    if recipe.batch_size < 1:
        raise InputError(f"--batch-size: expected an integer >= 1, got {recipe.batch_size}")
    checked_loading(recipe.device_map, recipe.dtype)
    held = checked_out(out, recipe.overwrite, recipe.data, probe_dir, recipe.instructions, model)  # never replaced by --overwrite
    ds = load_dataset(recipe.data, instructions=recipe.instructions, partial_as=recipe.partial_as, group_by=recipe.group_by)
    return held, ds


def _config(recipe: Recipe, data: Dataset) -> Any:
    """The probe configuration the recipe asks for (text or activation)."""
    from editkit.errors import InputError
    from probes.activation_probe import ActivationProbeConfig
    from probes.text_clf import TextClassifierConfig

    if recipe.kind == "text":
        chosen = recipe.inputs or ("response" if data.what == "responses" else "prompt")
        if data.what == "instructions" and chosen != "prompt":
            raise InputError(f"--inputs {chosen}: an instructions file has no responses; use --inputs prompt")
        return TextClassifierConfig(inputs=chosen, seed=recipe.seed)
    layers = parse_layers(recipe.layers)
    if data.what == "instructions" and not recipe.prompt_only:
        raise InputError("--with-response: an instructions file has no responses; use --prompt-only")
    return ActivationProbeConfig(method=recipe.method, layers=tuple(layers) if layers else None,
                                 prompt_only=recipe.prompt_only, positions=recipe.positions, chat=recipe.chat,
                                 system_prompt=recipe.system, batch_size=recipe.batch_size, backend=recipe.backend,
                                 impl=recipe.impl, seed=recipe.seed)


def _substring(data: Dataset, judge_set: str, within: int | None) -> tuple[Any, Any]:
    from probes.judges import SubstringJudge

    judge = SubstringJudge.from_set(judge_set, within=within)
    if data.responses is None:
        return judge, None
    return judge, judge.predict(data.responses)


def _scored(probe: Any, scores: Any) -> Any:
    """:class:`probes.evaluation.Scored`: the scores, their calibrated probabilities and the probe's labels."""
    from probes.evaluation import Scored

    probs = probe.calibrated(scores)
    return Scored(scores, probs, (probs >= probe.threshold).astype(int))


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
            return _scored(clf, clf.decision_function(pick(data.prompts, test), pick(data.responses, test)))
        probe = ActivationProbe(config).fit_features(acts.hidden[train], y[train], [data.groups[i] for i in train],
                                                     layers=acts.layers)
        layer_index = acts.layers.index(probe.layer)
        return _scored(probe, probe.score_features(acts.hidden[test][:, layer_index].mean(dim=1)))

    return fit_predict


def _load_lm(model: str, device: str, dtype: str, allow_pickle: bool, device_map: str | None = None) -> tuple[Any, Any]:
    from editkit.models import load_model

    placement = checked_loading(device_map, dtype)
    with stage_progress(f"loading {model}") as progress:
        return load_model(model, dtype=dtype, device=device, device_map=placement, allow_pickle=allow_pickle,
                          progress=progress)


def _recipe_lm(recipe: Recipe, model: str) -> tuple[Any, Any]:
    """The model and tokenizer an activation probe reads; ``(None, None)`` for a text probe."""
    if recipe.kind != "activation":
        return None, None
    return _load_lm(model, recipe.device, recipe.dtype, recipe.allow_pickle, recipe.device_map)


def _evaluate_recipe(recipe: Recipe, data: Dataset, config: Any, lm: Any, tok: Any, *, judge: Any, substring: Any,
                     model: str) -> tuple[Any, Any]:
    """The evaluation report of the recipe, and the collected activations (activation probes) for the final fit."""
    from probes.activation_probe import ActivationProbe
    from probes.evaluation import evaluate_protocol

    kind = recipe.kind
    settings = {"data": str(data.path), "what": data.what, "source_field": data.source_field, "kind": kind,
                "config": config.to_dict(), "substring_judge": judge.to_dict() if data.responses is not None else None,
                "model": model if kind == "activation" else None}
    acts = None
    if kind == "activation":
        with stage_progress(f"collecting activations ({len(data.prompts)} prompts)") as progress:
            acts = ActivationProbe(config).collect(lm, tok, data.prompts, data.responses, layers=config.layers,
                                                   progress=progress)
    fit_predict = _fit_predict_factory(kind, data, config, acts)
    with stage_progress("evaluating (random split, leave-one-source-out)") as progress:
        report = evaluate_protocol(
            fit_predict, data.y, sources=data.sources, groups=data.groups, substring=substring, labels=data.labels,
            kind=kind, test_fraction=recipe.test_fraction, n_boot=recipe.bootstrap, seed=recipe.seed, progress=progress,
            settings=settings,
        )
    return report, acts


def _print_report(report: Any, title: str) -> None:
    out_console.print(_report_table(report, title))
    if report.loso():
        summary = report.loso_summary()
        auroc = summary["auroc"]
        if auroc["mean"] is not None:
            out_console.print(
                f"leave-one-source-out AUROC: mean {auroc['mean']:.3f}, worst {auroc['min']:.3f} "
                f"({len(report.loso())} sources)", highlight=False)


def _write_eval(folder: Path, report: Any) -> None:
    (folder / "eval.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")


@app.command("train")
@handle_errors
@_with_recipe
def train_command(
    recipe: Recipe,
    out: Path = typer.Option(..., "--out", "-o", help="Probe directory to write (must not exist unless --overwrite)."),
    model: str = _MODEL,
    evaluate: bool = typer.Option(True, "--eval/--no-eval", help="Run the random-split and leave-one-source-out evaluation before the final fit."),
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

    kind, data = recipe.kind, recipe.data
    held, ds = _start(recipe, out, model)
    config = _config(recipe, ds)
    judge_obj, substring = _substring(ds, recipe.judge, recipe.judge_within)
    lm, tok = _recipe_lm(recipe, model)
    report, acts = None, None
    if evaluate:
        report, acts = _evaluate_recipe(recipe, ds, config, lm, tok, judge=judge_obj, substring=substring, model=model)
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
    with output_dir(out, overwrite=recipe.overwrite, inputs=held) as tmp:
        write_probe(tmp, probe, card)
        if report is not None:
            _write_eval(tmp, report)
    if report is not None:
        _print_report(report, f"{kind} probe on {escape(str(data))} ({ds.labels[1]} vs {ds.labels[0]})")
    where = f"layer {probe.layer}, " if kind == "activation" else ""
    out_console.print(f"\nprobe ({where}threshold {probe.threshold:.3f}) written to [bold]{escape(str(out))}[/]")


@app.command("eval")
@handle_errors
@_with_recipe
def eval_command(
    recipe: Recipe,
    probe_dir: Path | None = typer.Option(None, "--probe", "-p", help="A saved probe to score on --data; without it, the train recipe is evaluated (random split + leave-one-source-out)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Directory for eval.json (must not exist unless --overwrite); without it, only the table is printed."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model for activation probes (default: the one in the probe's card, else the default model)."),
) -> None:
    """Evaluate: a saved probe on new data (overall and per source), or a probe recipe by random split and leave-one-source-out.

    AUROC, balanced accuracy, per-class recall and ECE with bootstrap intervals, beside the substring and majority baselines.
    """
    from editkit.outputs import output_dir

    data = recipe.data
    held, ds = _start(recipe, out, model, probe_dir)
    judge_obj, substring = _substring(ds, recipe.judge, recipe.judge_within)
    if probe_dir is not None:
        report = _eval_saved(recipe, probe_dir, ds, model, judge=judge_obj, substring=substring)
        title = f"probe {escape(str(probe_dir))} on {escape(str(data))}"
    else:
        config = _config(recipe, ds)
        spec = model or DEFAULT_MODEL
        lm, tok = _recipe_lm(recipe, spec)
        report, _ = _evaluate_recipe(recipe, ds, config, lm, tok, judge=judge_obj, substring=substring, model=spec)
        title = f"{recipe.kind} probe recipe on {escape(str(data))} ({ds.labels[1]} vs {ds.labels[0]})"
    _print_report(report, title)
    if out is not None:
        with output_dir(out, overwrite=recipe.overwrite, inputs=held) as tmp:
            _write_eval(tmp, report)
        out_console.print(f"\nevaluation written to [bold]{escape(str(out))}[/]")


def _eval_saved(recipe: Recipe, probe_dir: Path, ds: Dataset, model: str | None, *, judge: Any, substring: Any) -> Any:
    from editkit.errors import InputError
    from probes.evaluation import evaluate_fixed
    from probes.store import load_probe
    from probes.text_clf import TextRefusalClassifier

    probe, card = load_probe(probe_dir)
    if set(card.label_map) != set(ds.labels):
        raise InputError(f"{probe_dir}: the probe predicts {'/'.join(card.label_map)} but {ds.path} is labelled {'/'.join(ds.labels)}")
    if isinstance(probe, TextRefusalClassifier):
        scores = probe.decision_function(ds.prompts, ds.responses)
    else:
        spec = model or (card.notes.get("model") or {}).get("spec") or DEFAULT_MODEL
        lm, tok = _load_lm(spec, recipe.device, recipe.dtype, recipe.allow_pickle, recipe.device_map)
        with stage_progress("scoring") as progress:
            scores = probe.decision_function(lm, tok, ds.prompts, ds.responses, progress=progress)
    counts = card.data.get("counts") or {}
    total = sum(counts.values())
    rate = counts.get(ds.labels[1], 0) / total if total else 0.5
    settings = {"probe": str(probe_dir), "data": str(ds.path), "source_field": ds.source_field,
                "substring_judge": judge.to_dict() if ds.responses is not None else None, "threshold": probe.threshold}
    return evaluate_fixed(ds.y, _scored(probe, scores), sources=ds.sources, groups=ds.groups, substring=substring,
                          train_positive_rate=rate, labels=ds.labels, kind=probe.kind, n_boot=recipe.bootstrap,
                          seed=recipe.seed, settings=settings)


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
    device_map: str | None = _DEVICE_MAP,
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

    checked_loading(device_map, dtype)
    check_output_file(out, overwrite=overwrite, inputs=input_paths(instructions, label_with, model))
    rows = load_instructions(instructions, limit=limit)
    clf: TextRefusalClassifier | None = None
    if label_with != "substring":
        loaded, _ = load_probe(label_with)
        if not isinstance(loaded, TextRefusalClassifier):
            raise EditkitError(f"--label-with {label_with}: a {loaded.kind} probe; pass 'substring' or a text probe folder")
        clf = loaded
    lm, tok = _load_lm(model, device, dtype, allow_pickle, device_map)
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
