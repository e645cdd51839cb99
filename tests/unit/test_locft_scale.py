"""LocFT-BF at scale: compact token/hidden-state stores (memory or disk), streamed requests, checkpoints and resume."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import tiny_model
from typer.testing import CliRunner

from editkit.batching import Encoded, encode_pairs
from editkit.editors import make_editor
from editkit.editors.hidden_store import HiddenStore, TokenStore
from editkit.editors.locft import CHECKPOINT, LocFTBF, has_checkpoint
from editkit.editors.prefix import PrefixCache
from editkit.errors import EditkitError, InputError
from editkit.localize import fixed
from editkit.requests import EditRequest, Neighbor, RequestFile, save_requests

pytestmark = pytest.mark.unit

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "edit"
GENERAL = FIX / "general.jsonl"
PRESERVE = [f"preserve_file={GENERAL}", "preserve_general=0", "preserve_per_template=0"]

REQUESTS = [
    EditRequest("The capital of France is", "Rome", subject="France", target_true="Paris",
                neighborhood_prompts=(Neighbor("The capital of Spain is", "Madrid"),)),
    EditRequest("Toyota is a car maker from", "Italy", subject="Toyota", target_true="Japan"),
    EditRequest("People in Spain speak", "French", subject="Spain", target_true="Spanish"),
    EditRequest("The capital of Italy is", "Berlin", subject="Italy"),
    EditRequest("Apple was founded in", "Oslo", subject="Apple"),
]

#: 5 requests in batches of 2: 3 batches an epoch, 4 epochs, a checkpoint every 2 batches
SCHEDULE = ["batch_size=2", "epochs=4", "min_steps=4", "checkpoint_every=2", "stop_loss=0", "skip_loss=0"]
#: every source of state a resumed run must restore: null space, KL sampling, the disk cache
FULL = [*SCHEDULE, *PRESERVE, "preserve_per_template=3", "preserve_kl=1", "preserve_kl_batch=2", "cache_memory_mb=0"]


def _deltas_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ the stores


def test_token_store_round_trips_and_fingerprints() -> None:
    seqs = [Encoded((1, 2, 3), (4,)), Encoded((5,), (6, 7, 8)), Encoded((9, 10), (11, 12))]
    store = TokenStore(seqs)
    assert len(store) == 3 and list(store) == seqs and store[-1] == seqs[-1] and store[0:2] == seqs[:2]
    assert store.lengths().tolist() == [4, 4, 4] and store.starts().tolist() == [0, 4, 8, 12]
    assert store.nbytes < 200  # 4 bytes a token, plus offsets
    moved = TokenStore([Encoded((1, 2), (3, 4)), *seqs[1:]])  # same ids, another prompt/target boundary
    assert store.fingerprint() == TokenStore(seqs).fingerprint() != moved.fingerprint()
    with pytest.raises(IndexError):
        store[3]


def test_hidden_store_in_memory_and_on_disk_hold_the_same_rows(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = [3, 1, 5, 2, 4]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    rows = [torch.randn(n, 6, generator=gen) for n in lengths]
    ram = HiddenStore.allocate(starts, 6, budget_bytes=None)
    disk = HiddenStore.allocate(starts, 6, budget_bytes=0, directory=tmp_path)
    assert (ram.storage, disk.storage) == ("ram", "disk") and ram.nbytes == disk.nbytes == 15 * 6 * 4
    assert list(tmp_path.iterdir()) == []  # the file has no name: nothing to clean up after a crash
    for store in (ram, disk):
        for i in reversed(range(len(rows))):  # any order: each sequence has its own rows
            store.write(i, rows[i])
    idx = [4, 0, 2]
    expected = torch.zeros(3, 5, 6)
    for b, i in enumerate(idx):
        expected[b, : lengths[i]] = rows[i]
    assert torch.equal(ram.gather(idx, 5), expected) and torch.equal(disk.gather(idx, 5), expected)
    assert torch.equal(disk.read(1), rows[1])
    with pytest.raises(ValueError, match="does not fit"):
        disk.gather([2], 4)
    with pytest.raises(ValueError, match="shape"):
        disk.write(0, rows[1])
    disk.close()
    with pytest.raises(ValueError, match="closed"):
        disk.gather([0], 3)


def test_prefix_cache_on_disk_gives_the_same_batches(tok) -> None:
    model, _ = tiny_model("llama", seed=1)
    enc = encode_pairs(tok, [r.prompt for r in REQUESTS], [r.target_new for r in REQUESTS])
    ram = PrefixCache.build(model, TokenStore(enc), layer=2, pad_id=tok.pad_token_id, batch_size=2)
    disk = PrefixCache.build(model, enc, layer=2, pad_id=tok.pad_token_id, batch_size=2, memory_budget=0)
    assert (ram.storage, disk.storage) == ("ram", "disk")
    for idx in ([0, 1], [4, 2, 3]):
        (b1, s1), (b2, s2) = ram.batch(idx), disk.batch(idx)
        assert torch.equal(s1, s2) and torch.equal(b1.input_ids, b2.input_ids)
    disk.close()


# ------------------------------------------------------------------ same results however requests and states are held


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_memory_and_disk_cache_give_identical_deltas(tok, model_type: str, tmp_path: Path) -> None:
    model, _ = tiny_model(model_type, seed=0)
    loc = fixed(model, layer=2, module="mlp_down")
    common = [*SCHEDULE, *PRESERVE]
    ram = make_editor("locft-bf", overrides=common).compute(model, tok, REQUESTS, loc)
    disk = make_editor("locft-bf", overrides=[*common, "cache_memory_mb=0", f"cache_dir={tmp_path}"]).compute(
        model, tok, REQUESTS, loc
    )
    assert ram.info["prefix_cache"]["storage"] == "ram" and disk.info["prefix_cache"]["storage"] == "disk"
    assert _deltas_equal(ram.deltas, disk.deltas)
    assert ram.log == disk.log
    assert list(tmp_path.iterdir()) == []  # the cache file went with the run


def test_requests_from_an_iterator_or_a_lazy_file_give_identical_deltas(tok, tmp_path: Path) -> None:
    model, _ = tiny_model("llama", seed=0)
    loc = fixed(model, layer=2, module="mlp_down")
    editor = make_editor("locft-bf", overrides=[*SCHEDULE, *PRESERVE, "preserve_per_template=2"])
    path = tmp_path / "edits.jsonl"
    save_requests(REQUESTS, path)
    listed = editor.compute(model, tok, REQUESTS, loc)
    streamed = editor.compute(model, tok, iter(REQUESTS), loc)  # one pass only: kept for the preservation set
    lazy = editor.compute(model, tok, RequestFile(path), loc)  # read again for the preservation set
    assert _deltas_equal(listed.deltas, streamed.deltas) and _deltas_equal(listed.deltas, lazy.deltas)
    assert lazy.info["n_requests"] == 5
    with pytest.raises(EditkitError, match="no requests"):
        editor.compute(model, tok, iter([]), loc)
    with pytest.raises(InputError, match="no such file"):
        RequestFile(tmp_path / "missing.jsonl")


# ------------------------------------------------------------------ checkpoints and resume


def _bomb(when: Callable[[str, int], bool]) -> Callable[[str, int, int], None]:
    def progress(stage: str, done: int, total: int) -> None:
        if when(stage, done):
            raise KeyboardInterrupt

    return progress


@pytest.mark.parametrize(
    "when",
    [
        lambda stage, done: done == 5,  # inside an epoch, one batch after a checkpoint
        lambda stage, done: done == 6,  # right after a checkpoint that ends an epoch
        lambda stage, done: "loss" in stage and done == 9,  # after an epoch's last batch, before its summary
        lambda stage, done: done == 12,  # the last batch, before the final checkpoint
    ],
    ids=["mid-epoch", "at-checkpoint", "epoch-end", "last-batch"],
)
def test_an_interrupted_run_resumes_to_the_same_deltas(tok, tmp_path: Path, when: Callable[[str, int], bool]) -> None:
    model, _ = tiny_model("llama", seed=0)
    loc = fixed(model, layer=2, module="mlp_down")
    editor = make_editor("locft-bf", overrides=FULL)
    whole = editor.compute(model, tok, REQUESTS, loc)
    folder = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        editor.compute(model, tok, REQUESTS, loc, checkpoint_dir=folder, progress=_bomb(when))
    assert has_checkpoint(folder)
    assert sorted(p.name for p in folder.iterdir()) == [CHECKPOINT]  # safetensors + JSON state, nothing else
    resumed = editor.compute(model, tok, REQUESTS, loc, checkpoint_dir=folder, resume=True)
    assert _deltas_equal(whole.deltas, resumed.deltas)
    assert resumed.log == whole.log
    schedule = resumed.info["schedule"]
    assert schedule["resumed_from"] is not None and schedule["optimizer_steps"] == whole.info["schedule"]["optimizer_steps"]


def test_a_finished_checkpoint_skips_training_and_a_changed_run_is_refused(tok, tmp_path: Path) -> None:
    model, _ = tiny_model("llama", seed=0)
    loc = fixed(model, layer=2, module="mlp_down")
    folder = tmp_path / "ckpt"
    editor = make_editor("locft-bf", overrides=[*SCHEDULE, *PRESERVE])
    first = editor.compute(model, tok, REQUESTS, loc, checkpoint_dir=folder)
    assert first.info["schedule"]["checkpoints_written"] == 7  # every 2 of 12 batches, and at the end
    calls: list[int] = []
    again = editor.compute(model, tok, REQUESTS, loc, checkpoint_dir=folder, resume=True,
                           progress=lambda s, d, t: calls.append(d))
    assert _deltas_equal(first.deltas, again.deltas) and calls == []  # nothing left to train
    # storage options may change between runs; what decides the result may not
    moved = make_editor("locft-bf", overrides=[*SCHEDULE, *PRESERVE, "cache_memory_mb=0", "checkpoint_every=5"])
    assert _deltas_equal(first.deltas, moved.compute(model, tok, REQUESTS, loc, checkpoint_dir=folder, resume=True).deltas)
    with pytest.raises(InputError, match="other options"):
        make_editor("locft-bf", overrides=[*SCHEDULE, *PRESERVE, "lr=1e-3"]).compute(
            model, tok, REQUESTS, loc, checkpoint_dir=folder, resume=True
        )
    with pytest.raises(InputError, match="other requests"):
        editor.compute(model, tok, REQUESTS[:4], loc, checkpoint_dir=folder, resume=True)
    with pytest.raises(InputError, match="no locft-bf checkpoint"):
        editor.compute(model, tok, REQUESTS, loc, checkpoint_dir=tmp_path / "none", resume=True)
    with pytest.raises(EditkitError, match="cannot resume"):
        make_editor("ft-df", overrides=PRESERVE).compute(model, tok, REQUESTS, loc, checkpoint_dir=folder, resume=True)
    with pytest.raises(InputError, match="checkpoint_every must be >= 1"):
        make_editor("locft-bf", overrides=["checkpoint_every=0"])


def test_a_resume_on_other_model_weights_is_refused_before_the_setup(
    tok, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The identity covers the whole model (not only the tuned tensors) and is checked before the prefix cache."""
    model, _ = tiny_model("llama", seed=0)
    loc = fixed(model, layer=2, module="mlp_down")
    folder = tmp_path / "ckpt"
    editor = make_editor("locft-bf", overrides=[*SCHEDULE, *PRESERVE])
    editor.compute(model, tok, REQUESTS, loc, checkpoint_dir=folder)
    other, _ = tiny_model("llama", seed=0)
    with torch.no_grad():
        other.get_parameter("model.layers.0.mlp.up_proj.weight")[0, 0] += 1.0  # not a tuned tensor

    def no_setup(*args: object, **kwargs: object) -> None:
        raise AssertionError("the prefix cache was built for a resume that is refused")

    monkeypatch.setattr(PrefixCache, "build", no_setup)
    with pytest.raises(InputError, match="other model weights"):
        editor.compute(other, tok, REQUESTS, fixed(other, layer=2, module="mlp_down"), checkpoint_dir=folder, resume=True)
    with pytest.raises(InputError, match="other options"):
        make_editor("locft-bf", overrides=[*SCHEDULE, *PRESERVE, "lr=1e-3"]).compute(
            model, tok, REQUESTS, loc, checkpoint_dir=folder, resume=True
        )


def test_edit_command_resumes_an_interrupted_run(tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from editkit.cli import app
    from editkit.editors import load_edit

    facts = tmp_path / "facts.jsonl"
    facts.write_text("".join(json.dumps(r.to_dict(drop_empty=True)) + "\n" for r in REQUESTS[:3]))
    args = ["edit", "--model", str(tiny_dir), "--facts", str(facts), "--layer", "2", "--reference", "none",
            "--no-fluency", "--no-generation", "--save", "delta", "--format", "json",
            *[a for o in [*PRESERVE, "batch_size=1", "epochs=3", "min_steps=3", "checkpoint_every=2"] for a in ("--set", o)]]
    runner = CliRunner()
    clean = runner.invoke(app, [*args, "--out", str(tmp_path / "clean")])
    assert clean.exit_code == 0, clean.output
    assert not (tmp_path / "clean.checkpoint").exists()  # removed once the output is written

    original = LocFTBF.compute

    def interrupted(self, *a, progress=None, **k):  # type: ignore[no-untyped-def]
        return original(self, *a, progress=_bomb(lambda stage, done: done == 5), **k)

    monkeypatch.setattr(LocFTBF, "compute", interrupted)
    out = tmp_path / "run"
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 130 and not out.exists()
    assert has_checkpoint(tmp_path / "run.checkpoint")
    monkeypatch.setattr(LocFTBF, "compute", original)
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 2 and "--resume" in res.output  # a checkpoint is never thrown away silently
    res = runner.invoke(app, [*args, "--out", str(out), "--resume"])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "run.checkpoint").exists()
    assert _deltas_equal(load_edit(out / "delta.safetensors").deltas, load_edit(tmp_path / "clean" / "delta.safetensors").deltas)
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "other"), "--resume"])
    assert res.exit_code == 2 and "no locft-bf checkpoint" in res.output
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "other"), "--method", "ft-df", "--resume"])
    assert res.exit_code == 2 and "does not checkpoint" in res.output
