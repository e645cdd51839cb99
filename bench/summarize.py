"""Summarize every benchmark result in bench/results/ into docs/benchmarks.md.

Each result file has a formatter (``FORMATTERS``: file name -> script, title and
formatter) that turns it into a Markdown section: what the benchmark measures
(from the script's docstring), the machine and conditions the result records,
the command that reproduces it, and a table of its headline numbers, with the
targets and whether they are met where the result records them. A file without
a formatter gets a generic section listing its top-level keys, so a new
benchmark is never silently dropped. Missing keys are shown as "-".

The date of a result is the one it records (``meta.date``) where it has one,
else the date of the file's last git commit (``git log -1 --format=%cs``),
else "unknown". A git date changes when a result is committed, not when it is
measured, so ``--check`` ignores dates that come from git.

Usage (from the repository root):
    .venv/bin/python bench/summarize.py            # (re)write docs/benchmarks.md
    .venv/bin/python bench/summarize.py --check    # exit 1 if docs/benchmarks.md is out of date
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from editkit.outputs import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
PY = ".venv/bin/python"
MISSING = "-"
GIT_DATE = "(last git commit of the result file)"
NO_DATE = "unknown (no date in the result, no git history for the file)"
SKIP_SUFFIXES = (".tmp", ".part", ".swp")
FIGURE_SUFFIXES = (".png", ".svg", ".jpg")

DateOf = Callable[[Path], "str | None"]


# ----------------------------------------------------------------------------- small helpers


def as_dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def as_list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def dicts(x: Any) -> list[dict[str, Any]]:
    return [r for r in as_list(x) if isinstance(r, dict)]


def cell(x: Any) -> str:
    """A table cell: "-" for a missing value, yes/no for a flag, text with ``|`` escaped."""
    if x is None or x == "":
        return MISSING
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (list, tuple)):
        return ", ".join(cell(v) for v in x) or MISSING
    return str(x).replace("|", "\\|").replace("\n", " ")


def num(x: Any, spec: str = ".3f", suffix: str = "") -> str:
    """``x`` formatted with ``spec`` (and ``suffix``) when it is a number, else :func:`cell`."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return cell(x)
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if spec == "d":
        return f"{round(x):d}{suffix}"
    return f"{x:{spec}}{suffix}"


def change(x: Any) -> str:
    """A relative change: ``+1.1%`` below 100%, else the factor (``x 627``)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return cell(x)
    return f"{100 * x:+.1f}%" if abs(x) < 1 else f"x {1 + x:.0f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def arg(value: Any) -> str:
    """One shell word (numbers as Python prints them, ``%g`` for floats)."""
    if isinstance(value, float):
        return f"{value:g}"
    return shlex.quote(str(value))


def command(script: str, flags: Sequence[tuple[str, Any]], prefix: str = "") -> str:
    """``PY script --flag value ...``; a value of None drops the flag, a list gives several values."""
    words = [f"{prefix}{PY} {script}"]
    for flag, value in flags:
        if value is None or value == []:
            continue
        if value is True:
            words.append(flag)
        elif isinstance(value, list):
            words.append(" ".join([flag, *(arg(v) for v in value)]))
        else:
            words.append(f"{flag} {arg(value)}")
    return " ".join(words)


def sets(overrides: Any) -> list[tuple[str, Any]]:
    return [("--set", o) for o in as_list(overrides)]


def unique(values: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v is not None and v not in out:
            out.append(v)
    return out


def rel(path: Path, start: Path = ROOT) -> str:
    """``path`` relative to ``start`` (POSIX separators) when below it; else its longest tail that exists
    below ``start`` (a path recorded in another checkout: ``/elsewhere/data/x.jsonl`` -> ``data/x.jsonl``);
    else its name."""
    try:
        return path.resolve().relative_to(start.resolve()).as_posix()
    except ValueError:
        pass
    parts = path.parts[1:] if path.is_absolute() else path.parts
    for i in range(len(parts) - 1):
        tail = Path(*parts[i:])
        if (start / tail).exists():
            return tail.as_posix()
    return path.name


def device_of(name: str) -> str | None:
    """The device a result file's name ends with (``mend_cpu.json`` -> ``cpu``)."""
    m = re.search(r"_(cpu|cuda|mps)\.\w+$", name)
    return m[1] if m else None


# ----------------------------------------------------------------------------- sources: docstrings, README, git


def docstring(script: Path) -> str | None:
    try:
        return ast.get_docstring(ast.parse(script.read_text(encoding="utf-8")))
    except (OSError, SyntaxError, ValueError):
        return None


def _markdown(text: str) -> str:
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def describe(script: Path) -> str:
    """What the benchmark measures: the docstring's summary line and, where short, the next paragraph's first sentence."""
    doc = docstring(script)
    if not doc:
        return MISSING
    paras = [" ".join(p.split()) for p in doc.split("\n\n") if p.strip()]
    first = re.sub(r"^Benchmark:\s*", "", paras[0])
    text = first[:1].upper() + first[1:]
    if not text.endswith((".", "!", "?")):
        text += "."
    if len(paras) > 1 and not paras[1].startswith(("Usage", "Results")):
        m = re.match(r"(.+?[.!?])(?:\s+[A-Z(`]|$)", paras[1])
        if m and len(m[1]) <= 300:
            text += " " + m[1]
    return _markdown(text)


def usage_command(script: Path) -> str | None:
    """The first command of the docstring's "Usage" lines, without its trailing comment."""
    for line in (docstring(script) or "").splitlines():
        line = line.strip()
        if line.startswith(PY):
            return line.split("  #")[0].rstrip(" \\")
    return None


def readme_command(script: str, readme: Path = ROOT / "README.md") -> list[str] | None:
    """The first command (with its continuation lines) of a README ``bash`` block that runs ``script``."""
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError:
        return None
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            if script in line:
                out = [line.rstrip()]
                j = i
                while out[-1].split("#")[0].rstrip().endswith("\\") and j + 1 < len(lines):
                    j += 1
                    out.append(lines[j].rstrip())
                return out
    return None


def flag_values(words: Sequence[str], flag: str) -> list[str] | None:
    """The values after every ``flag`` in ``words`` (None when the flag is absent)."""
    found: list[str] | None = None
    for i, w in enumerate(words):
        if w == flag:
            found = found or []
            for v in words[i + 1:]:
                if v.startswith("--"):
                    break
                found.append(v)
    return found


def git_date(path: Path) -> str | None:
    """The date (YYYY-MM-DD) of the last commit that touched ``path``; None without git or history."""
    try:
        proc = subprocess.run(["git", "log", "-1", "--format=%cs", "--", str(path)], cwd=ROOT,
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    out = proc.stdout.strip()
    return out if proc.returncode == 0 and re.fullmatch(r"\d{4}-\d{2}-\d{2}", out) else None


# ----------------------------------------------------------------------------- sections


@dataclass
class Context:
    path: Path  # the result file
    out_dir: Path  # where the document goes (for relative links)
    script: str  # the benchmark script, relative to the repository root
    figures: list[Path] = field(default_factory=list)  # images next to the result with the same stem


@dataclass
class Summary:
    """What a formatter returns for one result file."""

    meta: dict[str, Any]  # machine and conditions (machine, cpus, threads, device, gpu, torch, date)
    conditions: list[str]  # further condition lines (model, settings)
    command: str  # the command that reproduces the result
    command_source: str  # where the command comes from
    body: list[str]  # Markdown blocks: tables, figures, notes


def machine_lines(meta: dict[str, Any], path: Path, date_of: DateOf, device: str | None = None) -> list[str]:
    threads = meta.get("threads", meta.get("torch_threads"))
    gpu = ("none" if meta["gpu"] is None else cell(meta["gpu"])) if "gpu" in meta else MISSING
    date = next((meta[k] for k in ("date", "timestamp", "finished") if meta.get(k)), None)
    if date:
        when = f"{cell(date)} (recorded in the result)"
    else:
        found = date_of(path)
        when = f"{found} {GIT_DATE}" if found else NO_DATE
    machine = f"`{meta['machine']}`" if meta.get("machine") else "not recorded"
    return [
        f"- Machine: {machine}",
        f"- CPUs: {cell(meta.get('cpus'))}; threads: {cell(threads)}; device: {cell(meta.get('device', device))}; "
        f"GPU: {gpu}; torch: {cell(meta.get('torch'))}",
        f"- Date: {when}",
    ]


def figure_blocks(ctx: Context) -> list[str]:
    return [f"![{f.name}]({os.path.relpath(f, ctx.out_dir)})".replace(os.sep, "/") for f in ctx.figures]


def recorded_command(meta: dict[str, Any], script: str) -> str | None:
    """The command a result records (``meta.command``, or ``meta.argv`` as ``sys.argv``), if any."""
    if isinstance(meta.get("command"), str) and meta["command"].strip():
        return str(meta["command"]).strip()
    argv = meta.get("argv")
    if isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv):
        return f"{PY} {shlex.join([script, *argv[1:]])}"
    return None


def section(title: str, ctx: Context, summary: Summary, date_of: DateOf) -> str:
    recorded = recorded_command(summary.meta, ctx.script)
    if recorded:
        summary.command, summary.command_source = recorded, "recorded in the result"
    lines = [f"## {title}", "", f"`{rel(ctx.path)}`, written by `{ctx.script}`. {describe(ROOT / ctx.script)}", ""]
    lines += machine_lines(summary.meta, ctx.path, date_of, device_of(ctx.path.name))
    lines += [f"- {c}" for c in summary.conditions]
    lines += ["", f"Reproduce ({summary.command_source}):", "", "```bash", summary.command, "```"]
    for block in summary.body:
        lines += ["", block]
    return "\n".join(lines)


def generic_section(path: Path, data: Any, ctx: Context, date_of: DateOf, problem: str | None = None) -> str:
    """A result no formatter knows: its top-level keys (and machine, where it has a ``meta``)."""
    lines = [f"## `{path.name}` (no summary formatter)", ""]
    script = ROOT / ctx.script
    intro = f"`{rel(path)}`: no formatter in `bench/summarize.py` knows this file yet"
    if problem:
        intro = f"`{rel(path)}`: {problem}"
    if script.is_file():
        intro += f". Probably written by `{ctx.script}`: {describe(script)}"
    lines += [intro + ("" if intro.endswith(".") else "."), ""]
    meta = as_dict(data.get("meta")) if isinstance(data, dict) else {}
    lines += machine_lines(meta, path, date_of, device_of(path.name))
    rows: list[list[str]] = []
    if isinstance(data, dict):
        kind = "top-level keys"
        items = sorted(data.items())
    elif isinstance(data, list) and all(isinstance(r, dict) for r in data):
        kind = f"{len(data)} records; their keys"
        keys = sorted({k for r in data for k in r})
        items = [(k, next(r[k] for r in data if k in r)) for k in keys]
    else:
        kind, items = "", []
    for key, value in items:
        if isinstance(value, dict):
            shown = "object: " + ", ".join(sorted(map(str, value)))[:120]
        elif isinstance(value, list):
            shown = f"list of {len(value)}"
        else:
            shown = cell(value)[:80]
        rows.append([f"`{cell(key)}`", shown])
    if rows:
        lines += ["", f"Its {kind}:", "", table(["key", "value (first record)" if "records" in kind else "value"], rows)]
    elif data is not None:
        lines += ["", f"Its content: {type(data).__name__}."]
    lines += [""] + figure_blocks(ctx) if ctx.figures else []
    return "\n".join(lines).rstrip()


# ----------------------------------------------------------------------------- formatters, one per result file


def intruders(data: Any, ctx: Context) -> Summary:
    meta, rows = as_dict(data.get("meta")), dicts(data.get("rows"))
    body = []
    for r in rows:
        s, x, w = as_dict(r.get("seconds")), as_dict(r.get("speedup")), as_dict(r.get("warm_info"))
        body.append([
            cell(r.get("model")), cell(r.get("tuned")), cell(r.get("backend")), num(r.get("matrices"), "d"),
            f"{num(r.get('intruders'), 'd')} / {num(r.get('reference_intruders'), 'd')}",
            cell(r.get("counts_equal")), num(s.get("reference"), ".1f"), num(s.get("cold"), ".1f"),
            num(s.get("warm"), ".1f"), num(x.get("cold"), ".2f", "x"), num(x.get("warm"), ".2f", "x"),
            " / ".join(num(w.get(k), "d") for k in ("svd_certified", "svd_lowrank", "svd_full")),
            num(r.get("cache_mib"), ".0f"),
        ])
    header = ["model", "tuned", "backend", "matrices", "intruders (editkit / reference)", "counts equal",
              "reference s", "editkit cold s", "editkit warm s", "speed-up cold", "speed-up warm",
              "warm: certified / randomized / dense", "base cache MiB"]
    notes = ("The counts must be equal (the script exits 1 when they are not). Cold: editkit's scan on an empty "
             "cache (it also stores every base basis); warm: the same scan reading them back.")
    r0 = rows[0] if rows else {}
    conditions = [f"k: {cell(r0.get('k'))}; eps: {cell(r0.get('eps'))}; SVD mode: {cell(r0.get('svd'))}; "
                  f"reference: {cell(r0.get('reference'))}"]
    if not r0:
        return Summary(meta, conditions, usage_command(ROOT / ctx.script) or MISSING,
                       "from the script's docstring; the result records no settings", [table(header, body)])
    threads = meta.get("torch_threads")
    m = re.fullmatch(r"synthetic LoRA r=(\d+), \|\|dW\|\|/\|\|W0\|\|=(\S+)", str(r0.get("tuned", "")))
    source: list[tuple[str, Any]] = (
        [("--synthetic-lora", int(m[1])), ("--scale", m[2])] if m else [("--tuned", r0.get("tuned"))]
    )
    reference = str(r0.get("reference") or "").split(" ")[0] or None
    cmd = command(ctx.script, [("--model", r0.get("model")), *source, ("--backend", r0.get("backend")),
                               ("--reference", reference), ("--svd", r0.get("svd")), ("--k", r0.get("k")),
                               ("--eps", r0.get("eps"))],
                  prefix=f"OMP_NUM_THREADS={threads} " if isinstance(threads, int) else "")
    return Summary(meta, conditions, cmd, "rebuilt from the settings recorded in the result; seed: the default",
                   [table(header, body), notes])


def _script_methods(script: Path) -> list[str]:
    """The keys of the benchmark script's module-level ``METHODS`` dict."""
    try:
        tree = ast.parse(script.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return []
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "METHODS" for t in node.targets)
                and isinstance(node.value, ast.Dict)):
            return [k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    return []


def locft(data: Any, ctx: Context) -> Summary:
    meta, rows = as_dict(data.get("meta")), dicts(data.get("rows"))
    body = []
    for r in rows:
        m = as_dict(r.get("metrics"))
        if "metrics" not in r and "seconds_per_edit" not in r:
            why = r.get("skipped") or r.get("error") or "no result"
            body.append([num(r.get("size"), "d"), cell(r.get("method")), f"{'skipped' if r.get('skipped') else 'error'}: "
                         f"{cell(why)}"] + [MISSING] * 9)
            continue
        train = as_dict(r.get("timings")).get("train")
        sched = as_dict(r.get("schedule"))
        extra = [o for o in as_list(r.get("overrides")) if o not in as_list(meta.get("overrides"))]
        body.append([num(r.get("size"), "d"), cell(r.get("method")), num(r.get("seconds_per_edit"), ".2f"),
                     num(train, ".1f"), num(sched.get("optimizer_steps"), "d"),
                     num(r.get("peak_memory_mib"), ".0f"), num(m.get("reliability")), num(m.get("generalization")),
                     num(m.get("locality")), num(m.get("efficacy_score")), num(r.get("metrics_on"), "d"),
                     cell(" ".join(extra)) if extra else MISSING])
    header = ["edits", "method", "s/edit", "training s", "optimizer steps", "peak memory MiB", "reliability",
              "generalization", "locality", "efficacy", "scored on", "options for this size"]
    kinds = unique([r.get("memory_kind") for r in rows])
    notes = (f"Peak memory: {cell(kinds)}. Scores are teacher-forced, against the unedited model, on the first "
             "edits of each run (\"scored on\"); times include setup.")
    sizes = unique([r.get("size") for r in rows])
    skipped = [re.search(r"--ftdf-max (\d+)", str(r.get("skipped", ""))) for r in rows]
    ftdf_max = next((int(s[1]) for s in skipped if s), None)
    methods = unique([r.get("method") for r in rows])
    size_sets = [("--size-set", f"{size}:{o}") for size, opts in as_dict(meta.get("size_overrides")).items()
                 for o in as_list(opts)]
    timing_rows = dicts(data.get("timing"))
    if not sizes:
        sizes = unique([t.get("size") for t in timing_rows])
    timed = [("--timing-rounds", timing_rows[0].get("rounds")), ("--timing-epochs", timing_rows[0].get("epochs"))] \
        if timing_rows else []
    recorded = [("--sizes", sizes), ("--layer", meta.get("layer")), ("--ftdf-max", ftdf_max),
                ("--device", meta.get("device")), *sets(meta.get("overrides")), *size_sets, *timed,
                *([("--skip-runs", True)] if timing_rows and not rows else [])]
    default_name = f"locft_{str(meta.get('device', 'cpu')).split(':')[0]}.json"
    out_flag = [("--out", rel(ctx.path))] if ctx.path.name != default_name else []
    rebuilt = command(ctx.script, [*recorded, ("--methods", methods), *out_flag])
    conditions = [f"Location: relative depth {cell(meta.get('layer'))}, `mlp_down`; editor overrides: "
                  f"{cell(meta.get('overrides')) if meta.get('overrides') else 'none recorded'}"]
    readme = readme_command(ctx.script)
    if readme and _agrees(readme, sizes, meta, ftdf_max):
        cmd, source = "\n".join(readme), "from README.md, checked against the settings recorded in the result"
        every = _script_methods(ROOT / ctx.script)
        words = shlex.split(" ".join(readme).replace("\\", " "), comments=True)
        if every and flag_values(words, "--methods") is None and set(methods) != set(every):
            notes += (f" The script now also runs {cell([m for m in every if m not in methods])}; add "
                      f"`--methods {' '.join(map(str, methods))}` to run only the methods above.")
    else:
        cmd = rebuilt
        source = ("rebuilt from the settings recorded in the result; the evaluation limit and the editor "
                  "defaults of the time are not recorded")
    blocks = [table(header, body), notes] if body else []
    timing = dicts(data.get("timing"))
    if timing:
        t_body = []
        for t in timing:
            med, up = as_dict(t.get("median_seconds_per_step")), as_dict(t.get("speedup_over"))
            t_body.append([num(t.get("size"), "d"), cell(t.get("layer")),
                           f"{num(t.get('rounds'), 'd')} x {num(t.get('epochs'), 'd')} epoch(s), "
                           f"{num(t.get('optimizer_steps'), 'd')} steps",
                           num(med.get("locft-bf"), ".3f"), num(med.get("locft-bf-uncached"), ".3f"),
                           num(med.get("locft-bf-reference"), ".3f"), num(up.get("locft-bf-uncached"), ".2f", "x"),
                           num(up.get("locft-bf-reference"), ".2f", "x")])
        blocks += [table(["edits", "layer", "timed runs", "cached s/step", "uncached s/step", "reference s/step",
                          "cached vs uncached", "cached vs reference"], t_body),
                   "Interleaved timing (`--timing-rounds`): the LocFT-BF variants take turns in one process, so "
                   "the machine's load hits them alike; medians over rounds of training seconds per optimizer "
                   "step. The variants' deltas are the same, so their metrics are those of the runs above."]
    return Summary(meta, conditions, cmd, source, blocks)


def _agrees(readme: list[str], sizes: list[Any], meta: dict[str, Any], ftdf_max: int | None) -> bool:
    """Whether a README command has the sizes, layer, FT-DF limit, device and overrides the result records."""
    words = shlex.split(" ".join(readme).replace("\\", " "), comments=True)

    def floats(flag: str) -> list[float] | None:
        vals = flag_values(words, flag)
        try:
            return None if vals is None else [float(v) for v in vals]
        except ValueError:
            return None

    layer = floats("--layer")
    return (
        floats("--sizes") == [float(s) for s in sizes if isinstance(s, (int, float))]
        and (layer is None or not isinstance(meta.get("layer"), (int, float)) or layer == [float(meta["layer"])])
        and (ftdf_max is None or floats("--ftdf-max") == [float(ftdf_max)])
        and (flag_values(words, "--device") or ["cpu"]) == [meta.get("device", "cpu")]
        and set(as_list(meta.get("overrides"))) <= set(flag_values(words, "--set") or [])
    )


def locft_scale(data: Any, ctx: Context) -> Summary:
    meta, rows = as_dict(data.get("meta")), dicts(data.get("rows"))
    body = []
    for r in rows:
        if "error" in r:
            body.append([num(r.get("count"), ",d"), cell(r.get("mode")), f"error: {cell(r.get('error'))}"] + [MISSING] * 7)
            continue
        body.append([num(r.get("count"), ",d"), cell(r.get("mode")), cell(r.get("storage")),
                     num(r.get("cache_mib"), ".1f"), num(r.get("baseline_rss_mib"), ".0f"),
                     num(r.get("peak_rss_mib"), ".0f"), num(r.get("growth_mib"), ".1f"),
                     num(r.get("seconds"), ".1f"), num(r.get("batches"), "d"), num(r.get("seconds_per_batch"), ".3f")])
    header = ["requests", "mode", "storage", "cached states MiB", "baseline RSS MiB", "peak RSS MiB", "growth MiB",
              "seconds", "batches", "s/batch"]
    if any(r.get("cuda_max_allocated_mib") is not None for r in rows):
        header.append("CUDA max allocated MiB")
        for line, r in zip(body, rows, strict=True):
            line.append(num(r.get("cuda_max_allocated_mib"), ".0f"))
    modes = as_dict(meta.get("modes"))
    conditions = [
        f"Model: {cell(meta.get('model_desc', meta.get('model')))}; block tuned: {cell(meta.get('layer'))}; "
        f"requests: {cell(meta.get('requests'))}",
        f"Schedule: {cell(meta.get('schedule_note'))}; editor defaults: "
        + (", ".join(f"{k} {cell(v)}" for k, v in sorted(as_dict(meta.get("defaults")).items())) or MISSING),
        "Modes: " + ("; ".join(f"{m}: {cell(v)}" for m, v in modes.items()) or MISSING),
    ]
    blocks = [table(header, body)]
    if meta.get("memory"):
        blocks.append(f"Memory: {cell(meta['memory'])}.")
    blocks += figure_blocks(ctx)
    layer = meta.get("layer")
    cmd = command(ctx.script, [
        ("--counts", unique([r.get("count") for r in rows])), ("--modes", list(modes) or None),
        ("--model", meta.get("model")), ("--layer", layer if isinstance(layer, int) else None),
        ("--device", meta.get("device")), ("--threads", meta.get("threads")), *sets(meta.get("overrides")),
    ])
    return Summary(meta, conditions, cmd, "rebuilt from the settings recorded in the result", blocks)


MEND_MODES = {
    "single": "one edit at a time, reverted between",
    "sequential": "sequential edits, each on the edited model, scored at the end",
    "locft-bf-single": "LocFT-BF, one edit at a time",
}


def _mend_time(r: dict[str, Any]) -> str:
    parts = []
    if r.get("median_ms_compute_apply") is not None:
        parts.append(f"median {num(r['median_ms_compute_apply'], '.1f')} ms per edit")
    if r.get("p90_ms_compute_apply") is not None:
        parts.append(f"p90 {num(r['p90_ms_compute_apply'], '.1f')} ms")
    if r.get("median_s_per_batch") is not None:
        parts.append(f"median {num(r['median_s_per_batch'], '.2f')} s per batch")
    if r.get("seconds") is not None:
        parts.append(f"{num(r['seconds'], '.1f')} s in all")
    return ", ".join(parts) or MISSING


def mend(data: Any, ctx: Context) -> Summary:
    meta, results = as_dict(data.get("meta")), as_dict(data.get("results"))
    header = ["mode", "edits", "reliability", "generalization", "locality", "perplexity change", "time"]
    body, phases = [], []
    with_targets = any("target" in as_dict(r) or "meets_target" in as_dict(r) for r in results.values())
    if with_targets:
        header += ["target", "met"]
    for mode, r in results.items():
        r = as_dict(r)
        k = re.fullmatch(r"batch-(\d+)", mode)
        label = f"batches of {k[1]}, one summed update" if k else MEND_MODES.get(mode, mode)
        edits = (f"{num(r['n_batches'], 'd')} batches" if "n_batches" in r else num(r.get("n"), "d"))
        ppl = r.get("perplexity_change", r.get("perplexity_change_mean"))
        row = [f"{label} (`{mode}`)", edits, num(r.get("reliability")), num(r.get("generalization")),
               num(r.get("locality")), change(ppl), _mend_time(r)]
        if with_targets:
            row += [cell(r.get("target")), cell(r.get("meets_target"))]
        body.append(row)
        ph = as_dict(r.get("median_ms_phases"))
        if ph:
            phases.append(f"`{mode}`: " + ", ".join(f"{p} {num(v, '.1f')}" for p, v in ph.items()))
    blocks = [table(header, body)]
    if phases:
        blocks.append("Median ms per phase of one edit: " + "; ".join(phases) + ".")
    blocks.append("Perplexity change on the reference passages against the unedited model "
                  f"(perplexity {num(meta.get('perplexity_unedited'), '.2f')}); `single` averages it over "
                  "the first edits.")
    facts = Path(str(meta["facts"])) if meta.get("facts") else None
    single, seq, loc = (as_dict(results.get(k)) for k in ("single", "sequential", "locft-bf-single"))
    limit = None
    if facts is not None and isinstance(single.get("n"), int):
        fpath = facts if facts.is_absolute() else ROOT / facts
        try:
            total = sum(1 for line in fpath.read_text(encoding="utf-8").splitlines() if line.strip())
            limit = single["n"] if single["n"] < total else None
        except OSError:
            pass
    batches = [int(m[1]) for m in (re.fullmatch(r"batch-(\d+)", k) for k in results) if m]
    device = meta.get("device") or device_of(ctx.path.name)
    cmd = command(ctx.script, [
        ("--editor", meta.get("editor")), ("--facts", rel(facts) if facts else None), ("--limit", limit),
        ("--batches", batches or None), ("--sequential", seq.get("n", 0 if results else None)),
        ("--locft", loc.get("n", 0 if results else None)), ("--device", device), ("--threads", meta.get("threads")),
        *sets(meta.get("overrides")),
    ])
    conditions = [f"Editor: `{cell(meta.get('editor'))}` (a trained MEND editor; README \"MEND\" says how to train "
                  f"one); requests: `{rel(facts) if facts else MISSING}`"]
    conditions.append("Null space: " + (cell(meta.get("null_space") or "none") if "null_space" in meta
                                        else "none (measured before editors had one)"))
    if single.get("median_ms_plain_forward") is not None:
        blocks.append(f"A plain no-grad forward of the model over the same tokens, timed before each edit: median "
                      f"{num(single['median_ms_plain_forward'], '.1f')} ms (any gradient-based edit runs at least "
                      "one).")
    return Summary(meta, conditions, cmd, "rebuilt from the settings recorded in the result; perplexity "
                   "passages and edits: the defaults", blocks)


MEND_TARGETS = {"reliability": 0.90, "generalization": 0.50, "locality": 0.90}  # issue 4, one edit at a time


def mend_sweep(data: Any, ctx: Context) -> Summary:
    meta, curve, groups = as_dict(data.get("meta")), dicts(data.get("curve")), as_dict(data.get("groups"))
    body = []
    for c in curve:
        met = all(isinstance(c.get(k), (int, float)) and c[k] >= t for k, t in MEND_TARGETS.items())
        body.append([num(c.get("scale"), "g"), *(num(c.get(k)) for k in MEND_TARGETS), "yes" if met else "no"])
    scales = [num(c.get("scale"), "g") for c in curve]
    g_rows = []
    for name, g in groups.items():
        g = as_dict(g)
        at = {p.get("scale"): p for p in dicts(g.get("curve"))}
        points = [at.get(c.get("scale"), {}) for c in curve]  # by scale: a group may lack a point
        cells = [f"{num(p.get('reliability'), '.2f')} / {num(p.get('locality'), '.2f')}" for p in points]
        g_rows.append([cell(name), num(g.get("n"), "d"), *cells])
    blocks = [
        "Each request edited alone, scored and reverted, at each scale of the update (reliability / "
        "generalization / locality; targets " + " / ".join(f"{t:.2f}" for t in MEND_TARGETS.values()) + "):",
        table(["scale", "reliability", "generalization", "locality", "all targets met"], body),
    ]
    if g_rows:
        blocks += ["Reliability / locality per group of requests (the first word of the request id):",
                   table(["group", "requests", *(f"x{s}" for s in scales)], g_rows)]
    conditions = [f"Editor: `{cell(meta.get('editor'))}`; requests: `{cell(meta.get('facts'))}` "
                  f"({num(meta.get('n_requests'), 'd')} used)",
                  "Null space: " + cell(meta.get("null_space") or "none"),
                  f"Seconds in all: {num(meta.get('seconds'), '.0f')}"]
    cmd = command(ctx.script, [("--editor", meta.get("editor")), ("--scales", [c.get("scale") for c in curve] or None),
                               ("--threads", meta.get("threads"))])
    return Summary(meta, conditions, cmd, "rebuilt from the settings recorded in the result", blocks)


def tuco_cge(data: Any, ctx: Context) -> Summary:
    meta, tuco, cge = as_dict(data.get("meta")), dicts(data.get("tuco")), dicts(data.get("cge"))
    t_rows = []
    for r in tuco:
        s = as_dict(r.get("seconds"))
        t_rows.append([cell(r.get("pair")), cell(r.get("kind")), num(r.get("prompts"), "d"), num(r.get("tokens"), "d"),
                       num(s.get("forward"), ".2f"), num(s.get("tuco"), ".2f"), num(r.get("tuco_ratio"), ".2f", "x"),
                       num(r.get("tuco_outputco_ratio"), ".2f", "x"), cell(r.get("target")),
                       cell(r.get("meets_target"))])
    c_rows = []
    for r in cge:
        c_rows.append([cell(r.get("pair")), num(r.get("beams"), "d"),
                       f"{num(r.get('examples'), 'd')} x {num(r.get('new_tokens_each'), 'd')}",
                       num(r.get("plain_tokens_per_s"), ".2f"), num(r.get("cge_tokens_per_s"), ".2f"),
                       num(r.get("cge_over_plain"), ".2f", "x"), num(r.get("cge_tokens_per_s_without_setup"), ".2f")])
    blocks = [
        "TuCo against one forward of the tuned model (median seconds):",
        table(["pair", "kind", "prompts", "tokens", "forward s", "TuCo s", "TuCo / forward",
               "TuCo + OutputCo / forward", "target", "met"], t_rows),
    ]
    if c_rows:
        blocks += ["CGE decoding against plain sampling from the tuned model (new tokens per second):",
                   table(["pair", "beams", "sequences x new tokens", "plain tok/s", "CGE tok/s", "CGE / plain",
                          "CGE tok/s without setup"], c_rows)]
    conditions = [f"Model: {cell(meta.get('model'))}; LoRA rank {cell(meta.get('lora_rank'))}; full-pair "
                  f"perturbation {cell(meta.get('full_scale'))}; median of {cell(meta.get('repeats'))} runs after "
                  f"{cell(meta.get('warmup'))} warm-up"]
    c0 = cge[0] if cge else {}
    cmd = command(ctx.script, [
        ("--model", meta.get("model")), ("--device", meta.get("device")), ("--threads", meta.get("torch_threads")),
        ("--n-prompts", tuco[0].get("prompts") if tuco else None), ("--repeats", meta.get("repeats")),
        ("--warmup", meta.get("warmup")), ("--lora-rank", meta.get("lora_rank")),
        ("--full-scale", meta.get("full_scale")), ("--cge-n", c0.get("examples")),
        ("--cge-tokens", c0.get("new_tokens_each")), ("--cge-beams", c0.get("beams")),
        ("--skip-cge", True if tuco and not cge else None),
    ])
    return Summary(meta, conditions, cmd, "rebuilt from the settings recorded in the result; batch size and seed: "
                   "the defaults", blocks)


def locft_layers(data: Any, ctx: Context) -> Summary:
    rows = dicts(data)
    body = [[f"`{cell(r.get('run'))}`", num(r.get("n_requests"), "d"), num(r.get("optimizer_steps"), "d"),
             num(r.get("train_s"), ".0f"), num(r.get("final_loss"), ".2f"), num(r.get("reliability")),
             num(r.get("generalization")), num(r.get("locality")), change(r.get("perplexity_change"))]
            for r in rows]
    header = ["run (`LAYER\\|MODULE\\|options`)", "requests", "optimizer steps", "train s", "final loss", "reliability",
              "generalization", "locality", "perplexity change"]
    ns = unique([r.get("n_requests") for r in rows])
    cmd = command(ctx.script, [("--n", ns[0] if len(ns) == 1 else None)]) + ' --run "RUN"'
    note = ("One row per run, in the order they ran (the file is appended to). A run without options used the "
            "editor's defaults of its time, which changed between runs (see the optimizer steps).")
    return Summary({}, ["Requests: every 6th of `data/counterfact.jsonl` (the default `--stride`)"], cmd,
                   "rebuilt from the rows; RUN is a row's first column", [table(header, body), note])


@dataclass(frozen=True)
class Entry:
    title: str
    script: str
    format: Callable[[Any, Context], Summary]


FORMATTERS: dict[str, Entry] = {
    "intruders_cpu.json": Entry("Intruder dimensions: editkit's scan against the reference", "bench/intruders_bench.py",
                                intruders),
    "locft_cpu.json": Entry("LocFT-BF and FT-DF: seconds per edit, memory and quality", "bench/locft_bench.py", locft),
    "locft_layer20_cpu.json": Entry("LocFT-BF at layer 20: what caching the hidden states saves at 1000 edits",
                                    "bench/locft_bench.py", locft),
    "locft_layers.jsonl": Entry("LocFT-BF: where to tune (layer, module, options)", "bench/locft_layers.py",
                                locft_layers),
    "locft_scale_cpu.json": Entry("LocFT-BF at scale: memory and time against the number of requests",
                                  "bench/locft_scale_bench.py", locft_scale),
    "mend_cpu.json": Entry("MEND, the recommended editor (trained through the null space, null_scale 0.4): single, "
                           "batched and sequential edits", "bench/mend_bench.py", mend),
    "mend_added_nullspace_cpu.json": Entry("MEND with a null space added after training (x1.25): single, batched and "
                                           "sequential edits", "bench/mend_bench.py", mend),
    "mend_plain_cpu.json": Entry("MEND without a null space (the earlier run)", "bench/mend_bench.py", mend),
    "mend_nulltrained_cpu.json": Entry("MEND trained through the null space (single edits)", "bench/mend_bench.py",
                                       mend),
    "mend_nulltrained_scaled_cpu.json": Entry("MEND trained through the null space, null_scale 0.6 (single edits, "
                                              "2 idle threads)", "bench/mend_bench.py", mend),
    "mend_sweep_cpu.json": Entry("MEND: reliability against locality over the update's scale (the recommended "
                                 "editor)", "bench/mend_sweep.py", mend_sweep),
    "mend_sweep_lr2_cpu.json": Entry("MEND: the same curve for an editor trained at twice the learning rate",
                                     "bench/mend_sweep.py", mend_sweep),
    "tuco_cge_cpu.json": Entry("TuCo cost and CGE decoding speed", "bench/tuco_bench.py", tuco_cge),
}


def entry_for(name: str) -> Entry | None:
    """The registry entry of a result file; ``X_cuda.json`` uses ``X_cpu.json``'s formatter."""
    return FORMATTERS.get(name) or FORMATTERS.get(re.sub(r"_(cuda|mps)(\.\w+)$", r"_cpu\2", name))


# ----------------------------------------------------------------------------- the document


def load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def _guess_script(name: str) -> str:
    stem = re.sub(r"_(cpu|cuda|mps)$", "", Path(name).stem)
    for candidate in (f"bench/{stem}_bench.py", f"bench/{stem}.py"):
        if (ROOT / candidate).is_file():
            return candidate
    return f"bench/{stem}_bench.py"


def render(results: Path = RESULTS, out: Path = DOC, date_of: DateOf = git_date) -> str:
    """The whole document for the result files in ``results`` (``out``: where it will be written, for links)."""
    files = sorted(p for p in results.iterdir()
                   if p.is_file() and not p.name.startswith(".") and not p.name.endswith(SKIP_SUFFIXES))
    data_files = [p for p in files if p.suffix not in FIGURE_SUFFIXES]
    stems = {p.stem for p in data_files}
    orphans = [p for p in files if p.suffix in FIGURE_SUFFIXES and p.stem not in stems]
    sections, index = [], []
    for path in data_files + orphans:
        entry = entry_for(path.name)
        figures = [p for p in files if p.suffix in FIGURE_SUFFIXES and p.stem == path.stem and p != path]
        ctx = Context(path, out.parent, entry.script if entry else _guess_script(path.name), figures)
        if path in orphans:
            ctx.figures = [path]
            sections.append(generic_section(path, None, ctx, date_of, "an image without a result file"))
            index.append([f"`{path.name}`", MISSING, "image only"])
            continue
        try:
            data = load(path)
        except (OSError, ValueError) as exc:
            sections.append(generic_section(path, None, ctx, date_of, f"could not be read ({type(exc).__name__}: {exc})"))
            index.append([f"`{path.name}`", MISSING, "unreadable"])
            continue
        if entry is None:
            sections.append(generic_section(path, data, ctx, date_of))
            index.append([f"`{path.name}`", MISSING, "no formatter: top-level keys only"])
            continue
        try:
            summary = entry.format(data, ctx)
        except Exception as exc:  # a changed structure must not drop the benchmark
            sections.append(generic_section(path, data, ctx, date_of,
                                            f"the formatter failed ({type(exc).__name__}: {exc}); its keys follow"))
            index.append([f"`{path.name}`", f"`{entry.script}`", "formatter failed"])
            continue
        sections.append(section(entry.title, ctx, summary, date_of))
        index.append([f"`{path.name}`", f"`{entry.script}`", entry.title])
    head = [
        "# Benchmarks",
        "",
        "<!-- Generated by bench/summarize.py from bench/results/; do not edit by hand. -->",
        "",
        "Every benchmark's latest numbers, the machine they ran on and the command that reproduces them, "
        "generated from the result files in `bench/results/` by `python bench/summarize.py` "
        "(`python bench/summarize.py --check` fails when this file is out of date). Commands run from the "
        "repository root. README.md's \"Benchmarks\" and \"Results\" sections discuss the numbers.",
        "",
        table(["result file", "script", "section"], index),
    ]
    return "\n\n".join(["\n".join(head), *sections]) + "\n"


def normalize(text: str) -> str:
    """``text`` with the dates that come from git (or their absence) replaced by a placeholder."""
    pattern = rf"^- Date: (?:\S+ {re.escape(GIT_DATE)}|{re.escape(NO_DATE)})$"
    return re.sub(pattern, "- Date: <from git>", text, flags=re.M)


def is_up_to_date(results: Path = RESULTS, out: Path = DOC, date_of: DateOf = git_date) -> bool:
    try:
        current = out.read_text(encoding="utf-8")
    except OSError:
        return False
    return normalize(current) == normalize(render(results, out, date_of))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the document is out of date; write nothing")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of result files (default: bench/results)")
    ap.add_argument("--out", type=Path, default=DOC, help="the document (default: docs/benchmarks.md)")
    args = ap.parse_args(argv)
    if args.check:
        if not is_up_to_date(args.results, args.out):
            print(f"{rel(args.out)} is out of date with {rel(args.results)}: run `python bench/summarize.py`",
                  file=sys.stderr)
            return 1
        print(f"{rel(args.out)} is up to date")
        return 0
    atomic_write_text(args.out, render(args.results, args.out))
    print(f"written to {rel(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
