"""SIGINT and SIGTERM at random points of ``editkit edit`` and ``editkit audit intruders``.

Each command runs as a real subprocess on a tiny model. The signal is sent a
random moment after a randomly chosen progress line (the commands print
``<stage>: done`` on a non-terminal stderr), so it lands anywhere from loading
to writing the outputs. Whatever the moment:

- the command exits 130 (SIGINT) or 143 (SIGTERM), or 0 when it had already
  finished;
- its output directory is absent or complete, never partial, and no hidden
  temporary one is left;
- the input files are unchanged (hashed before and after);
- a rerun of the same command completes.

Both commands run at once, one receiving SIGINT and the other SIGTERM (which gets
which is drawn at random too). A failure message names the seed
of the random choices; set ``EDITKIT_TEST_SEED`` to replay it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tiny_models import save_tiny_lora
from typer.testing import CliRunner

from editkit.cli import app

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]

GENERAL = Path(__file__).resolve().parents[1] / "fixtures" / "edit" / "general.jsonl"
FACTS = [
    {"prompt": "The capital of France is", "target_new": "Rome", "subject": "France",
     "paraphrase_prompts": ["France's capital city is"],
     "neighborhood_prompts": [{"prompt": "The capital of Spain is", "target": "Madrid"}]},
    {"prompt": "The capital of Germany is", "target_new": "Paris", "subject": "Germany"},
]


def tree_hash(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(f.name.encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()


class Watched:
    """A CLI subprocess whose stderr lines are collected as they come."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.stdout = open(cwd / "stdout.txt", "w")  # noqa: SIM115  (closed in wait())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "editkit", *args], cwd=cwd, env=env,
            stdout=self.stdout, stderr=subprocess.PIPE, text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for_line(self, marker: str, timeout: float) -> None:
        with self.changed:
            self.changed.wait_for(
                lambda: any(marker in line for line in self.lines) or self.proc.poll() is not None, timeout
            )

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(5)
        self.stdout.close()
        return code


def env_for(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EDITKIT_DEBUG", "EDITKIT_PROGRESS", "EDITKIT_MAX_LINE_BYTES")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", EDITKIT_CACHE=str(cache), COLUMNS="200")
    return env


def interrupt_at_random(args: list[str], markers: list[str], sig: signal.Signals, cwd: Path, rng: random.Random) -> tuple[int, str, list[str]]:
    """Start the command, send ``sig`` a random moment after a random progress line; ``(exit code, where, stderr)``."""
    watched = Watched(args, cwd, env_for(cwd.parent / "cache"))
    marker = rng.choice(["(start)", *markers])
    delay = rng.uniform(0.0, 1.5)  # the stages of a tiny run are short; writing the outputs is not
    if marker == "(start)":
        watched.wait_for_line("loading", 120)  # the command has started (its first progress line)
    else:
        watched.wait_for_line(marker, 120)
    time.sleep(delay)
    if watched.proc.poll() is None:
        watched.proc.send_signal(sig)
    code = watched.wait(120)
    return code, f"{sig.name} {delay:.2f}s after {marker!r}", watched.lines


def check_interrupted(code: int, sig: signal.Signals, out: Path, complete: list[str], where: str, stderr: list[str]) -> None:
    """Whatever the moment of the signal: the output is complete or absent, and nothing else is left."""
    info = f"{where}: exit {code}\n" + "\n".join(stderr[-15:])
    # 128 + n: the command's own clean exit; 0: it had finished; -n: the signal came after the
    # command returned (interpreter shutdown), when its output was already complete.
    assert code in (128 + sig, 0, -sig), info
    if out.exists():
        assert all((out / name).exists() for name in complete), info  # complete, never partial
        json.loads((out / complete[0]).read_text())
    else:
        assert code == 128 + sig, info
        assert "interrupted" in stderr[-1] and "Traceback" not in "\n".join(stderr), info
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert leftovers == [], info


EDIT_MARKERS = ["loading", "evaluating before: done", "locft-bf on", "evaluating after: done"]
EDIT_OUTPUTS = ["report.json", "report.html", "delta.safetensors", "model/config.json"]
AUDIT_MARKERS = ["loading", "intruder dimensions: done", "mitigating"]
AUDIT_OUTPUTS = ["intruders.json", "intruders.csv", "heatmap.png", "mitigated/intruders.json"]


@dataclass
class Case:
    """One command, its inputs, and what its interrupted runs did."""

    args: list[str]
    inputs: list[Path]
    before: list[str] = field(default_factory=list)
    runs: dict[str, tuple[Path, int, str, list[str]]] = field(default_factory=dict)  # signal name -> (out, code, where, stderr)


@pytest.fixture(scope="module")
def cases(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    """Both commands at once in subprocesses, one interrupted by SIGINT, the other by SIGTERM (drawn at random).

    Two runs, not four: each process start costs seconds of imports, and both signals go
    through the same handler (``editkit.cli._common``) whatever the command.
    """
    seed = int(os.environ.get("EDITKIT_TEST_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    root = tmp_path_factory.mktemp("interrupt")
    facts = root / "facts.jsonl"
    facts.write_text("".join(json.dumps(f) + "\n" for f in FACTS))
    lora = save_tiny_lora(root / "lora")
    found = {
        "edit": Case(
            [
                "edit", "--model", str(tiny_dir), "--facts", str(facts), "--layer", "2", "--reference", "none",
                "--no-fluency", "--set", "epochs=3", "--set", "min_steps=3", "--set", f"preserve_file={GENERAL}",
                "--set", "preserve_general=0", "--set", "preserve_per_template=0", "--save", "delta,model",
                "--format", "json,html",
            ],
            [facts, tiny_dir, GENERAL],
        ),
        "audit": Case(
            [
                "audit", "intruders", "--base", str(tiny_dir), "--tuned", str(lora), "--backend", "torch-cpu",
                "--cache-dir", str(root / "bases"), "--mitigate", "0.5", "--reference", "none", "--spectra", "2",
            ],
            [lora, tiny_dir],
        ),
    }
    markers = {"edit": EDIT_MARKERS, "audit": AUDIT_MARKERS}
    for case in found.values():
        case.before = [tree_hash(p) for p in case.inputs]

    def one(name: str, sig: signal.Signals, run_seed: int) -> None:
        cwd = root / f"{name}-{sig.name}"
        cwd.mkdir()
        code, where, lines = interrupt_at_random(
            [*found[name].args, "--out", "out"], markers[name], sig, cwd, random.Random(run_seed)
        )
        found[name].runs[sig.name] = (cwd / "out", code, f"{where} (EDITKIT_TEST_SEED={seed})", lines)

    signals = rng.sample([signal.SIGINT, signal.SIGTERM], 2)  # which command gets which signal
    jobs = [(name, sig, rng.randrange(2**32)) for name, sig in zip(found, signals, strict=True)]
    threads = [threading.Thread(target=one, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(400)
    return found


@pytest.mark.parametrize(("name", "outputs"), [("edit", EDIT_OUTPUTS), ("audit", AUDIT_OUTPUTS)])
def test_interrupted_runs_leave_nothing_and_a_rerun_completes(
    cases: dict[str, Case], name: str, outputs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    case = cases[name]
    assert len(case.runs) == 1
    for sig_name, (out, code, where, lines) in case.runs.items():
        check_interrupted(code, signal.Signals[sig_name], out, outputs, where, lines)
        assert [tree_hash(p) for p in case.inputs] == case.before, where  # inputs unchanged
    # A rerun of the same command completes (in process: the subprocesses' start-up was tested above),
    # with whatever the interrupted runs left behind (the audit's basis cache).
    ((out, *_),) = case.runs.values()
    monkeypatch.chdir(out.parent)
    res = CliRunner().invoke(app, [*case.args, "--out", "out", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert all((out / name).exists() for name in outputs)
    assert [tree_hash(p) for p in case.inputs] == case.before


# ------------------------------------------------------------------ the same, deterministic and in process


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_signal_during_the_final_rename_waits_for_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overwrite: bool) -> None:
    """Ctrl-C between the renames that publish an output: they finish, then the interrupt is raised."""
    from editkit import outputs

    out = tmp_path / "run"
    if overwrite:
        out.mkdir()
        (out / "old.txt").write_text("old")
    real_replace = os.replace
    # Python's own Ctrl-C handler, even where this process was started with SIGINT ignored (nohup, `cmd &`)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def replace_then_signal(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        real_replace(src, dst)
        os.kill(os.getpid(), signal.SIGINT)  # arrives after the first rename

    with pytest.raises(KeyboardInterrupt), outputs.output_dir(out, overwrite=overwrite) as tmp:
        (tmp / "new.txt").write_text("new")
        monkeypatch.setattr(outputs.os, "replace", replace_then_signal)
    signal.signal(signal.SIGINT, previous)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary or trash folder left
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]


def test_sigterm_is_handled_like_ctrl_c(tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import editkit.report

    facts = tmp_path / "facts.jsonl"
    facts.write_text(json.dumps(FACTS[0]) + "\n")
    writes: list[Path] = []

    def terminated_while_writing(report: object, folder: Path, **kwargs: object) -> None:
        (folder / "report.json").write_text("{")  # half-written
        writes.append(folder)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(editkit.report, "write_report", terminated_while_writing)
    previous = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["eval", "--model", str(tiny_dir), "--facts", str(facts), "--out", str(out),
                                   "--reference", "none", "--no-generation", "--no-fluency"])
    assert res.exit_code == 143, res.output
    assert "interrupted (SIGTERM)" in res.output
    assert writes and not writes[0].exists() and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["facts.jsonl"]
    assert signal.getsignal(signal.SIGTERM) == previous  # the command's handler is gone again
