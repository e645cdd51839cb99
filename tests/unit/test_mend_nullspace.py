"""MEND with a stored null space: updates projected away from preserved keys (AlphaEdit's projection).

Checked against plain matrix products: the projected update equals the
unprojected one times ``(I - B^T B)`` (input side) and the scale, ``B`` spans
what the dense projector of the LocFT-BF code drops, and the projected update
barely moves the preserved keys it was built from.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_mend import QUICK, mend_requests
from tiny_models import tiny_model
from typer.testing import CliRunner

from editkit.arch import weight_is_transposed
from editkit.cli import app
from editkit.editors import load_edit, make_editor
from editkit.editors.mend import load_editor
from editkit.editors.mend.nullspace import (
    FILE,
    NullSpaceFull,
    build_null_space,
    load_null_space,
    nullspace_texts,
    save_null_space,
)
from editkit.editors.mend.spec import module_of
from editkit.editors.nullspace import (
    collect_inputs,
    collect_inputs_many,
    null_space_projector,
    used_directions,
)
from editkit.errors import EditkitError, InputError
from editkit.requests import save_requests

pytestmark = pytest.mark.unit

REQUESTS = mend_requests()


def test_used_directions_complement_the_projector() -> None:
    gen = torch.Generator().manual_seed(0)
    keys = torch.randn(200, 12, generator=gen) @ torch.diag(torch.logspace(0, -3, 12))
    b = used_directions(keys, 1e-3)
    dense = null_space_projector(keys, 1e-3)
    assert b.shape == (dense.dropped, 12)
    assert torch.allclose(b @ b.T, torch.eye(dense.dropped), atol=1e-5)  # orthonormal rows
    assert torch.allclose(torch.eye(12) - b.T @ b, dense.projector, atol=1e-5)


def test_inputs_of_several_modules_in_one_pass(tok) -> None:
    model, _ = tiny_model("llama", seed=0)
    texts = ["The capital of France is Paris", "People in Spain speak Spanish"]
    paths = ["model.layers.1.mlp.down_proj", "model.layers.0.mlp.up_proj"]
    many = collect_inputs_many(model, paths, tok, texts)
    for path in paths:
        assert torch.equal(many[path], collect_inputs(model, path, tok, texts))


def _texts() -> list[str]:
    return nullspace_texts(REQUESTS, general=0)  # few keys: a null space of many directions is left


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_projected_update_is_the_plain_update_times_the_projector(model_type: str, tok, tiny_mend_editor,
                                                                   tmp_path: Path) -> None:
    model, _ = tiny_model(model_type, seed=0)
    src = tiny_mend_editor(model_type)
    net = load_editor(src)
    null = build_null_space(model, tok, net.spec.params, _texts(), threshold=1e-2, scale=1.7)
    folder = tmp_path / "editor"
    folder.mkdir()
    for item in src.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    save_null_space(null, folder)

    plain = make_editor("mend", {"editor": str(folder), "null_space": False})
    projected = make_editor("mend", {"editor": str(folder)})
    loc = plain.default_location(model)
    a = plain.compute(model, tok, REQUESTS[:3], loc)
    b = projected.compute(model, tok, REQUESTS[:3], loc)
    assert a.info["null_space"] == {} and set(b.info["null_space"]) == set(null.bases)
    assert all("update x 1.7" in v for v in b.info["null_space"].values())
    keys = collect_inputs_many(model, sorted({module_of(p) for p in null.bases}), tok, _texts())
    for param, basis in null.bases.items():
        proj = torch.eye(basis.shape[1]) - basis.T @ basis
        if weight_is_transposed(model, param):  # stored [d_in, d_out]: the input side is on the left
            expected = 1.7 * proj @ a.deltas[param]
            moved = lambda d, k: k @ d  # noqa: E731
        else:
            expected = 1.7 * a.deltas[param] @ proj
            moved = lambda d, k: k @ d.T  # noqa: E731
        assert 0 < basis.shape[0] < basis.shape[1], param
        scale = float(a.deltas[param].abs().max())  # rounding is relative to the unprojected factors
        assert float((b.deltas[param] - expected).abs().max()) <= 1e-5 * scale, param
        assert float(b.deltas[param].abs().max()) > 1e-2 * scale, param  # something is left
        # the preserved keys barely move: far less than under the plain update
        k = keys[module_of(param)]
        assert moved(b.deltas[param], k).norm() < 0.2 * 1.7 * moved(a.deltas[param], k).norm(), param

    # null_scale overrides the stored scale
    other = make_editor("mend", {"editor": str(folder), "null_scale": 0.5}).compute(model, tok, REQUESTS[:3], loc)
    for param in null.bases:
        want = b.deltas[param] * (0.5 / 1.7)
        assert float((other.deltas[param] - want).abs().max()) <= 1e-5 * float(want.abs().max()), param


def test_stored_null_space_is_checked(tok, tiny_mend_editor, tmp_path: Path) -> None:
    model, _ = tiny_model("llama", seed=0)
    net = load_editor(tiny_mend_editor("llama"))
    null = build_null_space(model, tok, net.spec.params, _texts(), threshold=1e-3, scale=1.5)
    assert null.base_weights_sha256 == net.spec.base_weights_sha256  # the unedited base model's hash
    save_null_space(null, tmp_path)
    again = load_null_space(tmp_path, net.spec)
    assert again is not None and again.scale == 1.5 and again.threshold == 1e-3
    assert all(torch.equal(again.bases[p], null.bases[p]) for p in null.bases)
    assert load_null_space(tmp_path / "nowhere", net.spec) is None

    from dataclasses import replace

    with pytest.raises(InputError, match="another base model"):
        load_null_space(tmp_path, replace(net.spec, base_weights_sha256="0" * 64))
    partial = replace(null, bases=dict(list(null.bases.items())[:1]))
    save_null_space(partial, tmp_path)
    with pytest.raises(InputError, match="does not cover"):
        load_null_space(tmp_path, net.spec)
    with pytest.raises(InputError, match="no preserved text"):
        build_null_space(model, tok, net.spec.params, [], threshold=1e-3)
    with pytest.raises(NullSpaceFull, match="every input direction"):  # general text: the tiny model's keys span all
        build_null_space(model, tok, net.spec.params, nullspace_texts(REQUESTS), threshold=1e-3)
    with pytest.raises(InputError, match="> 0"):
        build_null_space(model, tok, net.spec.params, _texts(), scale=0.0)
    with pytest.raises(EditkitError, match="no null space is used"):
        make_editor("mend", {"editor": str(tiny_mend_editor("llama")), "null_scale": 2.0})


def run(*args: str):
    return CliRunner(env={"COLUMNS": "240"}).invoke(app, list(args))


def test_cli_train_stores_a_null_space_and_nullspace_copies_an_editor(tiny_dir: Path, tmp_path: Path) -> None:
    train = tmp_path / "train.jsonl"
    save_requests(REQUESTS, train)
    options = [x for k, v in QUICK.items() for x in ("--set", f"{k}={v}")]
    plain = tmp_path / "plain"
    res = run("mend", "train", "--model", str(tiny_dir), "--train", str(train), "--out", str(plain),
              "--null-threshold", "0", *options)
    assert res.exit_code == 0, res.output
    assert not (plain / FILE).exists()
    before = {p.name: p.read_bytes() for p in plain.iterdir()}

    copied = tmp_path / "copied"
    res = run("mend", "nullspace", "--editor", str(plain), "--out", str(copied), "--threshold", "0.3",
              "--scale", "2")
    assert res.exit_code == 0, res.output
    assert {p.name: p.read_bytes() for p in plain.iterdir()} == before  # the input editor is untouched
    assert {p.name for p in copied.iterdir()} == {*before, FILE}
    assert "update x 2" in res.output

    facts = tmp_path / "facts.jsonl"
    save_requests(REQUESTS[:2], facts)
    reports = {}
    for name, extra in (("on", []), ("off", ["--set", "null_space=false"])):
        out = tmp_path / f"edit-{name}"
        res = run("edit", "--model", str(tiny_dir), "--facts", str(facts), "--method", "mend", "--editor",
                  str(copied), "--out", str(out), "--reference", "none", "--no-fluency", "--no-generation",
                  "--save", "delta", *extra)
        assert res.exit_code == 0, res.output
        reports[name] = json.loads((out / "report.json").read_text())
    assert "update x 2" in json.dumps(reports["on"]) and "update x 2" not in json.dumps(reports["off"])

    for name, delta in ((n, load_edit(tmp_path / f"edit-{n}" / "delta.safetensors")) for n in ("on", "off")):
        assert all(float(d.abs().max()) > 0 for d in delta.deltas.values()), name

    # training stores one (here at a threshold where the tiny model leaves directions free)
    trained = tmp_path / "trained"
    res = run("mend", "train", "--model", str(tiny_dir), "--train", str(train), "--out", str(trained),
              "--null-threshold", "0.3", *options)
    assert res.exit_code == 0, res.output
    assert (trained / FILE).is_file() and "update x 1.25" in res.output and "without a null space" in res.output
    res = run("mend", "train", "--model", str(tiny_dir), "--train", str(train), "--out", str(tmp_path / "nt"),
              "--null-threshold", "0.3", "--null-training", *options)
    assert res.exit_code == 0 and "with the null space" in res.output, res.output
    meta = json.loads((tmp_path / "nt" / "editor.json").read_text())
    assert "update x 1.25" in meta["training"]["null_space_in_training"]
    res = run("mend", "train", "--model", str(tiny_dir), "--train", str(train), "--out", str(tmp_path / "nt2"),
              "--null-threshold", "1e-3", "--null-training", *options)  # leaves the tiny model nothing: refused
    assert res.exit_code == 2 and "every input direction" in res.output
    res = run("mend", "train", "--model", str(tiny_dir), "--train", str(train), "--out", str(tmp_path / "nt3"),
              "--null-threshold", "1e-3", *options)  # without training through it: trained, none stored, said so
    assert res.exit_code == 0 and "no null space stored" in res.output and not (tmp_path / "nt3" / FILE).exists()
    res = run("mend", "train", "--model", str(tiny_dir), "--train", str(train), "--out", str(tmp_path / "nt5"),
              "--null-threshold", "0.3", "--null-templates", str(train), "--null-training", *options)
    assert res.exit_code == 0 and (tmp_path / "nt5" / FILE).is_file(), res.output
    res = run("mend", "train", "--model", str(tiny_dir), "--train", str(train), "--out", str(tmp_path / "nt4"),
              "--null-training", *options)
    assert res.exit_code == 2 and "--null-threshold" in res.output
    # a bad scale is refused before any training
    res = run("mend", "train", "--model", str(tiny_dir), "--train", str(train), "--out", str(tmp_path / "z"),
              "--null-threshold", "0.3", "--null-scale", "0", *options)
    assert res.exit_code == 2 and "--null-scale" in res.output and not (tmp_path / "z.checkpoint").exists()
    # a null space that would remove everything is refused
    res = run("mend", "nullspace", "--editor", str(plain), "--out", str(tmp_path / "full"), "--threshold", "1e-3")
    assert res.exit_code == 2 and "every input direction" in res.output and not (tmp_path / "full").exists()
    # the base model folder (read, not named on the command line) is never an output
    res = run("mend", "nullspace", "--editor", str(plain), "--out", str(tiny_dir), "--overwrite", "--threshold", "0.3")
    assert res.exit_code == 2 and (tiny_dir / "config.json").is_file()

    # the null space of the templates to edit (other subjects of the shipped tables, as LocFT-BF's)
    res = run("mend", "nullspace", "--editor", str(plain), "--out", str(tmp_path / "tpl"), "--templates", str(facts),
              "--threshold", "0.3", "--per-template", "5")
    assert res.exit_code == 0 and (tmp_path / "tpl" / FILE).is_file(), res.output
    res = run("mend", "nullspace", "--editor", str(plain), "--out", str(tmp_path / "both"), "--templates", str(facts),
              "--texts", str(train))
    assert res.exit_code == 2 and "one of them" in res.output

    # bad input: one line, exit 2
    res = run("mend", "nullspace", "--editor", str(tmp_path / "missing"), "--out", str(tmp_path / "x"))
    assert res.exit_code == 2 and "no such MEND editor" in res.output and "Traceback" not in res.output
    res = run("mend", "nullspace", "--editor", str(plain), "--out", str(copied))
    assert res.exit_code == 2 and "--overwrite" in res.output


def test_training_through_the_null_space(tok, tiny_mend_editor) -> None:
    from editkit.batching import collate, encode_pairs
    from editkit.editors.mend import MendTrainConfig, capture_factors, train_editor

    model, _ = tiny_model("llama", seed=0)
    net = load_editor(tiny_mend_editor("llama"))
    null = build_null_space(model, tok, net.spec.params, _texts(), threshold=1e-2, scale=1.3)
    # the factored edit training runs through is the update editing applies
    enc = encode_pairs(tok, [r.prompt for r in REQUESTS[:3]], [r.target_new for r in REQUESTS[:3]])
    factors = capture_factors(model, collate(enc, pad_id=tok.pad_token_id), [module_of(p) for p in net.spec.params])
    with torch.no_grad():
        edits = net.factored(factors, None, null)
        deltas = net.deltas(factors, (), null)
    for param, delta in deltas.items():
        got = edits[module_of(param)].weight_delta()
        assert float((got - delta).abs().max()) <= 1e-5 * float(delta.abs().max()), param

    cfg = MendTrainConfig.from_mapping(QUICK)
    plain = train_editor(model, tok, REQUESTS[:10], REQUESTS[10:], cfg, base_model="tiny")
    projected = train_editor(model, tok, REQUESTS[:10], REQUESTS[10:], cfg, base_model="tiny", null=null)
    assert plain.info["null_space_in_training"] is None and "update x 1.3" in projected.info["null_space_in_training"]
    first = [r for r in projected.log if r["split"] == "train"][0]
    first_plain = [r for r in plain.log if r["split"] == "train"][0]
    assert first["loss"] != first_plain["loss"]  # the projection changes what the editor is trained on
