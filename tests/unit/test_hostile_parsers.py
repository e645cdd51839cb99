"""Hostile and broken inputs, property-based: every reader of a user file either returns
good data or raises one :class:`~editkit.errors.EditkitError` that names the file.

The CLI turns those errors into one line and exit code 2 (``tests/unit/test_hostile_cli.py``);
here each reader is driven directly with generated content (hypothesis), so that any other
exception (a ``KeyError``, ``TypeError``, ``OverflowError``...) shows up as a failure.
"""

from __future__ import annotations

import itertools
import json
import math
import string
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from editkit.errors import EditkitError, InputError

pytestmark = pytest.mark.unit

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,  # nothing written into the checkout
    derandomize=True,  # the same examples every run, so CI is not flaky
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_names = itertools.count()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


def fresh(folder: Path, suffix: str) -> Path:
    """A new file name in ``folder`` (hypothesis calls a test many times with one fixture)."""
    return folder / f"f{next(_names)}{suffix}"


def check_message(err: BaseException, *names: str) -> None:
    """A user error: its first line names the file (or option) and no line is a traceback."""
    text = str(err)
    assert text.strip(), f"empty message from {type(err).__name__}"
    first = text.splitlines()[0]
    assert any(n in first for n in names), f"{first!r} names none of {names}"
    assert "Traceback" not in text


def check_problem_lines(err: BaseException, path: Path) -> None:
    """A whole-file error: a summary, at most 20 ``FILE:LINE: ...`` problems, maybe ``... and N more``."""
    lines = str(err).splitlines()
    assert len(lines) <= 22, lines
    for line in lines:  # a key or value from the file never breaks a problem over two lines
        assert line.startswith(str(path)) or line.startswith("... and "), line


# ------------------------------------------------------------------ JSON-ish values

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)

REQUEST_KEYS = [
    "id", "prompt", "target_new", "subject", "target_true", "paraphrase_prompts",
    "neighborhood_prompts", "requested_rewrite", "case_id", "src", "alt", "answers",
    "rephrase", "loc", "loc_ans", "prefix", "suffix", "suffix1", "suffix2", "loss_type",
]


def records(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts mostly over the known keys, with hostile values (and the odd nested rewrite)."""
    value = st.one_of(
        json_values,
        st.fixed_dictionaries(
            {},
            optional={
                "prompt": json_values | st.just("The {} is"),
                "subject": json_values,
                "target_new": json_values | st.fixed_dictionaries({"str": json_values}),
                "target_true": json_values | st.fixed_dictionaries({"str": json_values}),
            },
        ),
        st.lists(st.fixed_dictionaries({}, optional={"prompt": json_values, "target": json_values}), max_size=3),
    )
    odd_keys = st.text(max_size=10) | st.sampled_from(["a\nb", "x\u2028y", "\r", "k" * 200])
    return st.dictionaries(st.sampled_from(keys) | odd_keys, value, max_size=6)


def jsonl_lines() -> st.SearchStrategy[list[bytes]]:
    line = st.one_of(
        records(REQUEST_KEYS).map(lambda r: json.dumps(r).encode()),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" ")),
        st.just(b""),
        st.just(b'{"prompt": "The capital of France is", "target_new": "Rome"}'),
        st.just(b"\xef\xbb\xbf{}"),
        st.just(b"[" * 5000),
    )
    return st.lists(line, max_size=6)


# ------------------------------------------------------------------ edit requests


@SETTINGS
@given(lines=jsonl_lines(), crlf=st.booleans())
def test_request_jsonl_files(folder: Path, lines: list[bytes], crlf: bool) -> None:
    from editkit.requests import EditRequest, load_requests

    path = fresh(folder, ".jsonl")
    path.write_bytes((b"\r\n" if crlf else b"\n").join(lines))
    try:
        requests = load_requests(path)
    except InputError as err:
        check_message(err, str(path))
        check_problem_lines(err, path)
        return
    assert requests and all(isinstance(r, EditRequest) for r in requests)


@SETTINGS
@given(data=st.one_of(json_values, st.lists(records(REQUEST_KEYS), max_size=4), records(REQUEST_KEYS)))
def test_request_json_files(folder: Path, data: Any) -> None:
    from editkit.requests import EditRequest, load_requests

    path = fresh(folder, ".json")
    path.write_text(json.dumps(data))
    try:
        requests = load_requests(path)
    except InputError as err:
        check_message(err, str(path))
        return
    assert all(isinstance(r, EditRequest) for r in requests)


@SETTINGS
@given(lines=jsonl_lines(), loss_type=st.sampled_from([None, "good", "balance"]))
def test_canonical_example_files(folder: Path, lines: list[bytes], loss_type: str | None) -> None:
    from editkit.requests import CanonicalExample, load_canonical_examples

    path = fresh(folder, ".jsonl")
    path.write_bytes(b"\n".join(lines))
    try:
        examples = load_canonical_examples(path, loss_type=loss_type)
    except InputError as err:
        check_message(err, str(path))
        check_problem_lines(err, path)
        return
    assert examples and all(isinstance(e, CanonicalExample) for e in examples)


def test_an_overlong_line_is_refused_without_reading_it_whole(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1 GB line is simulated with a small cap: the reader stops at the cap and names the line."""
    from editkit.datafiles import iter_lines, read_texts
    from editkit.requests import load_canonical_examples, load_requests

    monkeypatch.setenv("EDITKIT_MAX_LINE_BYTES", "200")
    records = [
        {"prompt": "The capital of France is", "target_new": "Rome", "prefix": "The capital", "suffix": " Rome", "text": "t"},
        {"prompt": "x" * 1000, "target_new": "y"},
    ]
    path = fresh(folder, ".jsonl")
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    for read in (load_requests, load_canonical_examples, read_texts):
        with pytest.raises(InputError, match=r":2: line longer than 200 bytes.*EDITKIT_MAX_LINE_BYTES"):
            read(path)
    text = fresh(folder, ".txt")
    text.write_text("short\n" + "x" * 201)
    with pytest.raises(InputError, match=r":2: line longer than 200 bytes"):
        read_texts(text)
    # exactly at the cap is fine, with or without its newline
    exact = fresh(folder, ".txt")
    exact.write_bytes(b"a" * 200 + b"\n" + b"b" * 200)
    assert [len(line) for _, line in iter_lines(exact)] == [201, 200]
    monkeypatch.setenv("EDITKIT_MAX_LINE_BYTES", "lots")
    with pytest.raises(InputError, match="EDITKIT_MAX_LINE_BYTES"):
        load_requests(path)


@SETTINGS
@given(content=st.binary(max_size=200), suffix=st.sampled_from([".txt", ".jsonl"]))
def test_text_files(folder: Path, content: bytes, suffix: str) -> None:
    from editkit.datafiles import read_texts

    path = fresh(folder, suffix)
    path.write_bytes(content)
    try:
        texts = read_texts(path)
    except InputError as err:
        check_message(err, str(path))
        return
    assert texts and all(isinstance(t, str) and t.strip() for t in texts)


# ------------------------------------------------------------------ editor configs


def config_classes() -> list[type]:
    from editkit.editors import editor_names, get_entry

    return [get_entry(name).config_cls for name in editor_names()]


CONFIG_KEYS = sorted({f for cls in config_classes() for f in cls.field_names()})
config_values = st.one_of(
    json_values,
    st.sampled_from(["1e-3", "nan", "inf", "-inf", "1e400", "true", "none", "3", "2.5", "", "1,2"]),
    st.sampled_from([float("nan"), float("inf"), 1e308 * 10, 2**80, -1, 0]),
)


@SETTINGS
@given(
    cls=st.sampled_from(config_classes()),
    mapping=st.dictionaries(st.sampled_from(CONFIG_KEYS) | json_values.filter(lambda v: isinstance(v, str)), config_values, max_size=4),
)
def test_config_mappings(cls: type, mapping: dict[str, Any]) -> None:
    try:
        cfg = cls.from_mapping(mapping, where="cfg.yaml")
    except InputError as err:
        check_message(err, "cfg.yaml")
        return
    for value in cfg.to_dict().values():  # a config never holds NaN or infinity
        assert not (isinstance(value, float) and not math.isfinite(value))


@SETTINGS
@given(
    cls=st.sampled_from(config_classes()),
    text=st.one_of(
        st.text(max_size=80),
        st.dictionaries(st.sampled_from(CONFIG_KEYS), config_values, max_size=3).map(
            lambda d: "\n".join(f"{k}: {json.dumps(v) if not isinstance(v, str) else v}" for k, v in d.items())
        ),
        st.sampled_from(["", "   \n", "# only a comment\n", "1: 2\n", "[1, 2]\n", "lr: .nan\n", "lr: !!python/name:os.system\n",
                         "? [a, b]\n: 1\n", "a: &x [1]\nb: *x\n", "lr: 1e-3\nlr: 2e-3\n", "\ufefflr: 0.1\n"]),
    ),
    suffix=st.sampled_from([".yaml", ".yml", ".json", ".YAML"]),
    raw=st.one_of(st.none(), st.binary(max_size=30)),
)
def test_config_files(folder: Path, cls: type, text: str, suffix: str, raw: bytes | None) -> None:
    path = fresh(folder, suffix)
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text(text, encoding="utf-8")
    try:
        cls.from_file(path)
    except InputError as err:
        check_message(err, str(path))


@SETTINGS
@given(cls=st.sampled_from(config_classes()), items=st.lists(st.text(alphabet=string.printable + "é=", max_size=25), max_size=3))
def test_set_options(cls: type, items: list[str]) -> None:
    try:
        cls().with_overrides(items)
    except InputError as err:
        check_message(err, "--set")


def test_config_refusals_are_clear(folder: Path) -> None:
    from editkit.editors import get_entry

    cls = get_entry("locft-bf").config_cls
    for bad in ("lr=nan", "lr=inf", "epochs=1e400", "epochs=9" * 40):
        with pytest.raises(InputError, match="--set: "):
            cls().with_overrides([bad])
    empty = fresh(folder, ".yaml")
    empty.write_text("")
    with pytest.raises(InputError, match=r"\.yaml: empty config file"):
        cls.from_file(empty)
    assert cls.from_file(_write(fresh(folder, ".yaml"), "# all defaults\n")) == cls()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------ tensor files


@pytest.fixture(scope="module")
def delta_bytes() -> bytes:
    from safetensors.torch import save

    tensors = {"a.weight": torch.arange(12.0).reshape(3, 4), "b.bias": torch.ones(5)}
    return save(tensors, metadata={"format": "editkit-delta/1", "method": "x"})


def mutations(data: bytes) -> st.SearchStrategy[bytes]:
    cut = st.integers(0, len(data)).map(lambda n: data[:n])
    flip = st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255)).map(
        lambda t: data[: t[0]] + bytes([data[t[0]] ^ t[1]]) + data[t[0] + 1 :]
    )
    header = st.integers(0, 2**64 - 1).map(lambda n: n.to_bytes(8, "little") + data[8:])
    return st.one_of(cut, flip, header, st.binary(max_size=64), st.just(b""), st.just(data + b"junk"))


@SETTINGS
@given(data=st.data())
def test_corrupted_safetensors(folder: Path, delta_bytes: bytes, data: st.DataObject) -> None:
    from editkit.tensorfiles import read_tagged

    path = fresh(folder, ".safetensors")
    path.write_bytes(data.draw(mutations(delta_bytes)))
    try:
        tensors, meta = read_tagged(path, "editkit-delta/1", what="delta file")
    except InputError as err:
        check_message(err, str(path))
        return
    assert meta["format"] == "editkit-delta/1"
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_tensors_are_refused(folder: Path, bad: float) -> None:
    from safetensors.torch import save_file

    from editkit.tensorfiles import read_tagged

    path = fresh(folder, ".safetensors")
    t = torch.zeros(2, 3)
    t[1, 2] = bad
    save_file({"w": t, "ok": torch.zeros(1, dtype=torch.int64)}, str(path), metadata={"format": "editkit-delta/1"})
    with pytest.raises(InputError, match=r"tensor 'w' has 1 NaN or infinite value"):
        read_tagged(path, "editkit-delta/1", what="delta file")


# ------------------------------------------------------------------ tuned weights (audit)


@pytest.fixture(scope="module")
def base_llama() -> Any:
    from tiny_models import tiny_model

    return tiny_model("llama", seed=0)[0]


lora_configs = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"peft_type": st.sampled_from(["LORA", "lora", "IA3", 3])},
        optional={
            "r": st.one_of(st.integers(-2, 4), json_values),
            "lora_alpha": st.one_of(st.floats(allow_nan=True), st.integers(-3, 16), json_values),
            "rank_pattern": st.one_of(st.dictionaries(st.sampled_from(["down_proj", "(", "layers.0.*"]), json_values, max_size=2), json_values),
            "alpha_pattern": st.one_of(st.dictionaries(st.sampled_from(["down_proj", "["]), json_values, max_size=2), json_values),
            "use_rslora": json_values,
            "use_dora": json_values,
        },
    ),
)


@SETTINGS
@given(config=lora_configs)
def test_lora_adapter_configs(folder: Path, base_llama: Any, config: Any) -> None:
    from safetensors.torch import save_file

    from audit.tuned import LoraAdapter

    adapter = folder / f"lora{next(_names)}"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    r = 2
    save_file(
        {
            "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight": torch.randn(r, 72),
            "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight": torch.randn(32, r),
        },
        str(adapter / "adapter_model.safetensors"),
    )
    try:
        tuned = LoraAdapter(base_llama, adapter)
        deltas = dict(tuned.items())
    except InputError as err:
        check_message(err, str(adapter))
        return
    assert all(torch.isfinite(d).all() for d in deltas.values())


@SETTINGS
@given(index=st.one_of(json_values, st.fixed_dictionaries({"weight_map": json_values})))
def test_checkpoint_index_files(folder: Path, base_llama: Any, index: Any) -> None:
    from audit.tuned import FullCheckpoint

    ckpt = folder / f"full{next(_names)}"
    ckpt.mkdir()
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(index))
    (ckpt / "config.json").write_text(json.dumps(index if isinstance(index, dict) else [index]))
    with pytest.raises(InputError) as info:
        FullCheckpoint(base_llama, ckpt)
    check_message(info.value, str(ckpt))


def test_non_finite_tuned_weights_are_refused(folder: Path, base_llama: Any) -> None:
    from safetensors.torch import save_file

    from audit.tuned import DeltaWeights, load_tuned

    name = "model.layers.1.mlp.down_proj.weight"
    state = {k: v.clone().contiguous() for k, v in base_llama.state_dict().items() if k != "lm_head.weight"}
    state[name][3, 4] = float("nan")
    ckpt = folder / "nan-full"
    ckpt.mkdir()
    save_file(state, str(ckpt / "model.safetensors"))
    tuned = load_tuned(base_llama, ckpt)  # headers only: the tensor is checked when read
    with pytest.raises(InputError, match=rf"nan-full.*{name}.*1 NaN or infinite value"):
        tuned[name]
    with pytest.raises(InputError, match="NaN or infinite"):
        DeltaWeights(base_llama, {name: torch.full((32, 72), float("inf"))})


# ------------------------------------------------------------------ reports read back


@pytest.fixture(scope="module")
def report_dict() -> dict[str, Any]:
    from editkit.report import Report
    from editkit.report.schema import Provenance

    prov = Provenance("0.1.0", "2025-01-01T00:00:00Z", ["eval"], [], "cpu")
    return Report("eval", "t", prov, metrics={"model": {"reliability": 1.0}}).to_dict()


def _mutate(d: Any, path: list[Any], value: Any) -> Any:
    if not path or not isinstance(d, (dict, list)) or not d:
        return value
    if isinstance(d, dict):
        key = sorted(d)[path[0] % len(d)]
        return {**d, key: _mutate(d[key], path[1:], value)}
    i = path[0] % len(d)
    return [*d[:i], _mutate(d[i], path[1:], value), *d[i + 1 :]]


@SETTINGS
@given(path=st.lists(st.integers(0, 20), max_size=3), value=json_values, raw=st.one_of(st.none(), st.text(max_size=40)))
def test_reports_read_back(report_dict: dict[str, Any], path: list[int], value: Any, raw: str | None) -> None:
    from editkit.report import Report

    text = raw if raw is not None else json.dumps(_mutate(report_dict, path, value))
    try:
        Report.from_json(text)
    except EditkitError as err:  # the reader does not know the file: the caller names it
        check_message(err, "report", "provenance")


@pytest.mark.parametrize("raw", [b"\x80", b"[" * 100_000])
def test_reports_read_back_from_bad_bytes(raw: bytes) -> None:
    from editkit.report import Report

    with pytest.raises(EditkitError) as info:
        Report.from_json(raw)
    check_message(info.value, "report")
    assert len(str(info.value).splitlines()) == 1


def test_reports_nested_within_the_json_limit_but_too_deep_for_a_report(report_dict: dict[str, Any]) -> None:
    from editkit.report import Report

    deep = "[" * 900 + "]" * 900  # json.loads reads it; building the report recurses deeper
    text = json.dumps({**report_dict, "config": {"x": 0}}).replace("0}", deep + "}", 1)
    with pytest.raises(EditkitError, match="^report: .*nested too deeply"):
        Report.from_json(text)


def test_provenance_errors_name_the_report_field(report_dict: dict[str, Any]) -> None:
    from editkit.report import Report

    bad = {**report_dict, "provenance": {**report_dict["provenance"], "surprise": 1}}
    with pytest.raises(EditkitError, match=r"^report\.provenance: unknown field\(s\) surprise$"):
        Report.from_dict(bad)
    bad = {**report_dict, "provenance": {**report_dict["provenance"], "models": [{"role": "x"}]}}
    with pytest.raises(EditkitError, match=r"^report\.provenance\.models\[0\]: missing field"):
        Report.from_dict(bad)


# ------------------------------------------------------------------ output names


@SETTINGS
@given(name=st.one_of(st.text(max_size=20), st.sampled_from(["..", "../x", "/etc/passwd", "a/../../b", "a/./b", ".", "", "a\x00b", "spectra/q.png"])))
def test_output_names_stay_inside(folder: Path, name: str) -> None:
    from editkit.outputs import output_file

    root = folder / "out"
    try:
        path = output_file(root, name)
    except InputError as err:
        check_message(err, "output name")
        return
    assert path.resolve().is_relative_to(root.resolve()) and path.resolve() != root.resolve()

