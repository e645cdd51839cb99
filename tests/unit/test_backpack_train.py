"""Training a small Backpack: the corpus script, packing, the exact active-vocabulary loss,
training, bit-identical resume, saving, fact knowledge and the CLI, all at tiny scale."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from editkit.backpack.corpus import BatchStream, TokenizedCorpus, load_corpus, pack, tokenize_rows
from editkit.backpack.facts import Fact, fact_knowledge, read_fact_table
from editkit.backpack.train import (
    BackpackTrainConfig,
    OutputVocab,
    build_backpack,
    pca_embeddings,
    save_backpack,
    token_nll,
    train_backpack,
)
from editkit.cli import app

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "data" / "scripts" / "build_backpack_corpus.py"

TINY = {
    "n_embd": 32, "n_layer": 1, "n_head": 2, "num_senses": 4, "sense_intermediate_scale": 2,
    "block_size": 32, "batch_size": 4, "init": "random", "warmup_steps": 2, "lr": 1e-2, "dropout": 0.0,
}

SENTENCES = (
    "The capital of France is Paris.",
    "The capital of Germany is Berlin.",
    "The capital of Italy is Rome.",
    "The capital of Spain is Madrid.",
    "Toyota is a car maker from Japan.",
    "People in France speak French.",
)


def _script():
    spec = importlib.util.spec_from_file_location("build_backpack_corpus", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _corpus(tok, n_copies: int = 8, source: str = "facts") -> TokenizedCorpus:
    rows = [{"text": s, "source": source} for s in SENTENCES] * n_copies
    return tokenize_rows(tok, rows, fingerprint=f"toy-{n_copies}-{source}")


def _cfg(**overrides: object) -> BackpackTrainConfig:
    return BackpackTrainConfig.from_mapping({**TINY, **overrides})


def _write_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, copies in (("corpus_train.jsonl", 6), ("corpus_val.jsonl", 1)):
        rows = [{"id": f"r{i}", "text": s, "source": "facts" if i % 2 else "general"}
                for i, s in enumerate(SENTENCES * copies)]
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


# -- the corpus script --------------------------------------------------------------------


def test_corpus_script_is_deterministic_and_complete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = _script()
    args = ["--relations", "capital,element", "--limit-facts", "3"]
    for name in ("a", "b"):
        assert script.main([*args, "--out-dir", str(tmp_path / name)]) == 0
    assert "facts: 6 over 2 relations" in capsys.readouterr().out
    for file in ("corpus_train.jsonl", "corpus_val.jsonl", "corpus_meta.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file

    train = [json.loads(line) for line in (tmp_path / "a" / "corpus_train.jsonl").read_text().splitlines()]
    val = [json.loads(line) for line in (tmp_path / "a" / "corpus_val.jsonl").read_text().splitlines()]
    facts_train = [r for r in train if r["source"] == "facts"]
    facts_val = [r for r in val if r["source"] == "facts"]
    # 6 facts x (main + 3 trained paraphrases + 3 extra templates) / 1 held-out paraphrase each
    assert (len(facts_train), len(facts_val)) == (42, 6)
    texts = {r["text"] for r in facts_train}
    assert "The capital of Algeria is Algiers." in texts            # main prompt + answer, as in facts.jsonl
    assert "Algiers is the capital of Algeria." in texts            # an extra template
    assert "Q: What is the chemical symbol for hydrogen? A: H." in texts
    held = "The seat of the national government of Algeria is the city of Algiers."
    assert held in {r["text"] for r in facts_val} and held not in texts
    assert all("seat of the national government" not in t for t in texts)
    general = [r for r in train + val if r["source"] == "general"]
    assert len(general) == 380 and not {r["id"] for r in train} & {r["id"] for r in val}
    meta = json.loads((tmp_path / "a" / "corpus_meta.json").read_text())
    assert meta["counts"]["val"] == {"facts": 6, "general": 38} and meta["sampling"] is None
    assert meta["held_out_paraphrase_index"] == {"capital": 3, "element": 3}

    script.main([*args, "--out-dir", str(tmp_path / "c"), "--seed", "7"])
    assert (tmp_path / "c" / "corpus_train.jsonl").read_bytes() != (tmp_path / "a" / "corpus_train.jsonl").read_bytes()


def test_corpus_uses_the_spelling_facts_jsonl_accepted(tmp_path: Path) -> None:
    script = _script()
    table = tmp_path / "facts.jsonl"
    table.write_text(json.dumps({"relation": "capital", "subject": "Ukraine", "prompt": "The capital of Ukraine is",
                                 "target": "Kiev"}) + "\n", encoding="utf-8")
    rel = next(r for r in script.RELATIONS if r.name == "capital")
    train, _ = script.fact_rows([rel], script.known_spellings(table))
    texts = {r["text"] for r in train}
    assert "The capital of Ukraine is Kiev." in texts and "The capital of Ukraine is Kyiv." not in texts
    assert "The capital of the Netherlands is Amsterdam." in texts  # the article stays lowercase inside
    assert "The capital of The Netherlands is Amsterdam." not in texts
    assert "Amsterdam is the capital of the Netherlands." in texts


def test_sampling_helpers_need_no_model() -> None:
    script = _script()
    passages = [{"text": "One two three four five six seven eight."}, {"text": "Alpha beta gamma delta epsilon zeta."}]
    prompts = script.sample_prompts(passages, 20, seed=1)
    assert prompts == script.sample_prompts(passages, 20, seed=1) != script.sample_prompts(passages, 20, seed=2)
    assert all(3 <= len(p.split()) <= 6 for p in prompts)
    assert script.cut_to_sentences("It rained. Then the sun came out and") == "It rained."
    assert script.cut_to_sentences("No end in sight") == "No end in sight"
    assert script.cut_to_sentences('He said "stop." Then') == 'He said "stop."'


# -- packing ------------------------------------------------------------------------------


def test_pack_keeps_documents_whole_and_aligned() -> None:
    corpus = TokenizedCorpus(docs=((5, 6, 0), (7, 0), (8, 9, 10, 11, 12, 0)), sources=(0, 1, 0),
                             source_names=("a", "b"), fingerprint="")
    ids, labels, sources = pack(corpus, [0, 1, 2], block=4, pad_id=1)
    assert ids.tolist() == [[5, 6, 0, 1], [7, 0, 1, 1], [8, 9, 10, 11], [12, 0, 1, 1]]
    assert labels.tolist()[1] == [7, 0, -100, -100]
    assert sources.tolist()[1] == [1, 1, -1, -1]


def test_batch_stream_continues_across_epochs_and_from_its_position(tok) -> None:
    corpus = _corpus(tok, n_copies=2)
    a = BatchStream(corpus, block=16, batch_size=3, pad_id=1, seed=0)
    batches = [a.next()[0] for _ in range(6)]
    assert a.epoch >= 1  # 12 short documents make fewer than 18 sequences of 16 tokens
    b = BatchStream(corpus, block=16, batch_size=3, pad_id=1, seed=0)
    for _ in range(3):
        b.next()
    c = BatchStream(corpus, block=16, batch_size=3, pad_id=1, seed=0)
    c.epoch, c.offset = b.epoch, b.offset
    assert all(torch.equal(c.next()[0], batches[i]) for i in range(3, 6))


# -- the loss -----------------------------------------------------------------------------


def test_active_vocabulary_loss_is_the_exact_full_vocabulary_loss(tok) -> None:
    corpus = _corpus(tok, n_copies=1)
    active = torch.tensor(sorted({t for d in corpus.docs for t in d}))
    model = build_backpack(_cfg(), tok, active=active)
    weight = model.get_input_embeddings().weight
    inactive = torch.ones(len(tok), dtype=torch.bool)
    inactive[active] = False
    assert bool((weight[inactive] == 0).all()) and bool((weight[~inactive] != 0).any())

    ids, labels, _ = pack(corpus, range(len(corpus.docs)), block=32, pad_id=tok.pad_token_id)
    model.eval()
    vocab = OutputVocab(len(tok), active, 32)
    for rest in (torch.zeros(32), torch.randn(32, generator=torch.Generator().manual_seed(0))):
        with torch.no_grad():
            assert vocab.rest is not None
            vocab.rest.copy_(rest)
            vocab.tie_rest(model)  # every inactive row now equals `rest`
            assert torch.equal(weight[inactive], rest.expand(int(inactive.sum()), 32))
            restricted, mask = token_nll(model, ids, labels, vocab)
            full, _ = token_nll(model, ids, labels, OutputVocab(len(tok), None))
            reference = model(ids, attention_mask=(labels != -100).long(), labels=labels).loss
        assert mask.sum() == restricted.numel()
        torch.testing.assert_close(restricted, full, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(full.mean(), reference, atol=1e-5, rtol=1e-5)


def test_pca_embeddings_keep_the_main_directions() -> None:
    gen = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(6, 6, generator=gen))[0]
    coords = torch.randn(200, 6, generator=gen) * torch.tensor([5.0, 3.0, 1e-3, 1e-3, 1e-3, 1e-3])
    out = pca_embeddings(coords @ basis.T + 2.0, 2, std=0.02)
    assert out.shape == (200, 2)
    assert abs(float(out.std()) - 0.02) < 1e-6
    # Two components capture the (rank-2) data: pairwise distances are kept up to one scale.
    d_in, d_out = torch.cdist(coords[:, :2], coords[:, :2]), torch.cdist(out, out)
    scale = d_out.sum() / d_in.sum()
    torch.testing.assert_close(d_out, d_in * scale, atol=1e-3, rtol=1e-2)


def test_lr_schedule_warms_up_then_decays_to_the_floor() -> None:
    cfg = BackpackTrainConfig(lr=1.0, warmup_steps=4, max_steps=14, min_lr_ratio=0.1)
    lrs = [cfg.lr_at(s) for s in range(16)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:], strict=False))
    assert lrs[9] == pytest.approx(0.55) and lrs[14] == pytest.approx(0.1) and lrs[15] == pytest.approx(0.1)


# -- training -----------------------------------------------------------------------------


def test_training_lowers_the_loss_and_ties_inactive_embeddings(tok) -> None:
    train = _corpus(tok)
    result = train_backpack(tok, train, _corpus(tok, 1, "general"), _cfg(max_steps=30, val_every=10))
    losses = [r["loss"] for r in result.log if r["split"] == "train"]
    vals = [r for r in result.log if r["split"] == "val"]
    assert len(losses) == 30 and [r["step"] for r in vals] == [10, 20, 30]
    assert sum(losses[-5:]) / 5 < 0.25 * losses[0]  # from 6.24 (uniform over 512), well past unigram (~3.1)
    assert vals[-1]["loss"] < vals[0]["loss"] and set(vals[-1]["by_source"]) == {"general"}
    assert result.info["val_loss"] == vals[-1]["loss"] and result.info["stopped_by"] == "max_steps"
    weight = result.model.get_input_embeddings().weight
    used = {t for d in train.docs for t in d}
    unused = [i for i in range(len(tok)) if i not in used]
    shared = weight[unused[0]]
    assert bool((weight[unused] == shared).all()) and bool(shared.any())  # one trained vector for all
    assert result.info["active_vocab_size"] == len(used)


def test_identity_init_starts_the_sense_weights_on_the_current_token(tok) -> None:
    ids = torch.tensor([tok("The capital of France is Paris and the capital of Italy is Rome.").input_ids])
    with torch.no_grad():
        peaked = build_backpack(_cfg(), tok).eval().sense_weights(ids)  # [1, k, seq, seq]
        flat = build_backpack(_cfg(sense_weight_init=0.0), tok).eval().sense_weights(ids)
    seq = ids.shape[1]
    assert float(peaked[0].diagonal(dim1=-2, dim2=-1).mean()) > 0.5  # 0.76 here
    # Random init: about uniform over the prefix (1 / (i + 1) on the diagonal).
    uniform = (1.0 / torch.arange(1, seq + 1)).mean()
    assert abs(float(flat[0].diagonal(dim1=-2, dim2=-1).mean()) - float(uniform)) < 0.05


def test_time_budget_stops_training(tok) -> None:
    result = train_backpack(tok, _corpus(tok), None, _cfg(max_steps=1000, max_minutes=1e-9))
    assert result.info["stopped_by"] == "max_minutes" and result.info["steps"] == 0


class _Stop(Exception):
    pass


def test_resume_continues_bit_for_bit(tok, tmp_path: Path) -> None:
    cfg = _cfg(max_steps=7, val_every=3, dropout=0.1)
    train, val = _corpus(tok), _corpus(tok, 1, "general")
    whole = train_backpack(tok, train, val, cfg, checkpoint_dir=tmp_path / "whole")

    def stop_after_3(stage: str, done: int, total: int) -> None:
        if done == 3:  # the checkpoint of step 3 is written before progress is reported
            raise _Stop

    with pytest.raises(_Stop):
        train_backpack(tok, train, val, cfg, checkpoint_dir=tmp_path / "cut", progress=stop_after_3)
    # Whatever the caller's RNG does in between must not matter.
    torch.manual_seed(12345)
    resumed = train_backpack(tok, train, val, cfg, checkpoint_dir=tmp_path / "cut", resume=True)

    def train_losses(log):
        return [(r["step"], r["loss"]) for r in log if r["split"] == "train"]

    assert train_losses(resumed.log) == train_losses(whole.log)  # exact floats, steps 1..7
    assert [r["loss"] for r in resumed.log if r["split"] == "val"] == [r["loss"] for r in whole.log if r["split"] == "val"]
    for (name, a), (_, b) in zip(whole.model.named_parameters(), resumed.model.named_parameters(), strict=True):
        assert torch.equal(a, b), name

    other = _cfg(max_steps=7, val_every=3, dropout=0.1, lr=5e-3)
    with pytest.raises(Exception, match="other|another"):
        train_backpack(tok, train, val, other, checkpoint_dir=tmp_path / "cut", resume=True)


def test_saved_backpack_loads_with_the_auto_classes(tok, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    result = train_backpack(tok, _corpus(tok), None, _cfg(max_steps=3))
    save_backpack(result, tok, tmp_path / "bp", facts={"share_top1": 0.5, "facts": []}, extra={"note": "x"})
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "bp")
    ids = torch.tensor([tok("The capital of France is").input_ids])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, result.model(ids).logits)
    assert loaded.lm_head.weight.data_ptr() == loaded.get_input_embeddings().weight.data_ptr()
    info = json.loads((tmp_path / "bp" / "training.json").read_text())
    assert info["steps"] == 3 and info["note"] == "x" and info["facts_known"] == {"share_top1": 0.5}
    assert len((tmp_path / "bp" / "log.jsonl").read_text().splitlines()) == 3
    assert json.loads((tmp_path / "bp" / "facts_known.json").read_text())["share_top1"] == 0.5


# -- fact knowledge -----------------------------------------------------------------------


class _BigramLM(torch.nn.Module):
    """Logits at each position depend on the current token only (a hand-written table)."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(table, requires_grad=False)

    def forward(self, input_ids: torch.Tensor, **kwargs: object) -> SimpleNamespace:
        return SimpleNamespace(logits=self.table[input_ids])


def test_fact_knowledge_on_a_hand_checked_case(tok) -> None:
    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False).input_ids

    paris, madrid, berlin, rome = (ids(" " + w)[0] for w in ("Paris", "Madrid", "Berlin", "Rome"))
    assert ids(" Paris") == [paris]  # a one-token answer
    is_id, from_id = ids("The capital of France is")[-1], ids("Ford is a car maker from")[-1]
    the, united = ids(" the United States")[:2]
    table = torch.zeros(len(tok), len(tok))
    row = table[is_id]
    row[paris], row[madrid], row[berlin] = 5.0, 4.0, 3.0
    others = [t for t in range(10, 40) if t not in {paris, madrid, berlin, rome}][:9]
    row[others] = 2.0
    # After " is": Paris 1st, Madrid 2nd, Berlin 3rd, 9 tokens at 2.0, then Rome (and the rest) at 0.0.
    table[from_id, the] = 5.0  # after " from", " the" is the argmax ...
    table[the, united + 1] = 1.0  # ... but after " the", " United" is not
    facts = [
        Fact("capital", "France", "The capital of France is", "Paris", paraphrases=("The capital city of France is",)),
        Fact("capital", "Germany", "The capital of Germany is", "Berlin"),
        Fact("capital", "Italy", "The capital of Italy is", "Rome"),
        Fact("language", "Spain", "The language of Spain is", "Madrid"),
        Fact("carmaker", "Ford", "Ford is a car maker from", "the United States"),
    ]
    report = fact_knowledge(_BigramLM(table), tok, facts, batch_size=3)
    assert [r["rank"] for r in report["facts"]] == [1, 3, 13, 2, 1]
    assert [r["top1"] for r in report["facts"]] == [True, False, False, False, True]
    assert [r["top5"] for r in report["facts"]] == [True, True, False, True, True]
    assert [r["all_tokens"] for r in report["facts"]] == [True, False, False, False, False]
    assert (report["n"], report["share_top1"], report["share_top5"], report["share_all_tokens"]) == (5, 0.4, 0.8, 0.2)
    assert report["by_relation"]["capital"] == {"n": 3, "share_top1": 1 / 3, "share_top5": 2 / 3, "share_all_tokens": 1 / 3}
    assert report["by_relation"]["language"]["share_top1"] == 0.0
    assert report["paraphrase_top1"] == {"0": 1.0} and report["facts"][0]["paraphrase_ranks"] == [1]
    assert report["facts"][0]["first_token"] == tok.convert_ids_to_tokens(paris)


def test_read_fact_table_takes_target_or_first_expected_spelling(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    rows = [{"relation": "capital", "subject": "Ukraine", "prompt": "The capital of Ukraine is", "expected": "Kyiv|Kiev"},
            {"relation": "capital", "subject": "France", "prompt": "The capital of France is", "target": "Paris",
             "paraphrases": ["France's capital city is"]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    facts = read_fact_table(path)
    assert [(f.target, f.paraphrases, f.table) for f in facts] == [("Kyiv", (), "t.jsonl"),
                                                                   ("Paris", ("France's capital city is",), "t.jsonl")]


# -- the command line ---------------------------------------------------------------------


def test_cli_trains_saves_and_reports(tiny_dir: Path, tmp_path: Path) -> None:
    corpus = _write_corpus(tmp_path / "corpus")
    facts = tmp_path / "facts.jsonl"
    facts.write_text(json.dumps({"relation": "capital", "subject": "France", "prompt": "The capital of France is",
                                 "target": "Paris"}) + "\n", encoding="utf-8")
    out = tmp_path / "bp"
    args = ["backpack", "train", "--corpus", str(corpus), "--out", str(out), "--model", str(tiny_dir),
            "--facts", str(facts), "--set", "n_embd=16", "--set", "num_senses=4", "--set", "n_head=2",
            "--set", "n_layer=1", "--set", "block_size=32", "--set", "batch_size=4", "--set", "max_steps=4",
            "--set", "val_every=2", "--set", "warmup_steps=1"]
    res = CliRunner(env={"COLUMNS": "200"}).invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "validation loss" in res.output and "facts known (top-1)" in res.output
    for name in ("config.json", "model.safetensors", "tokenizer.json", "training.json", "log.jsonl", "facts_known.json"):
        assert (out / name).is_file(), name
    info = json.loads((out / "training.json").read_text())
    assert info["config"]["init"] == "pca" and info["steps"] == 4 and info["val_loss"] is not None
    assert not (tmp_path / "bp.checkpoint").exists()
    assert json.loads((out / "facts_known.json").read_text())["n"] == 1

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "already exists" in again.output
    missing = CliRunner().invoke(app, [*args[:2], "--corpus", str(tmp_path / "nope"), "--out", str(tmp_path / "x"),
                                       "--model", str(tiny_dir)])
    assert missing.exit_code == 2 and "build_backpack_corpus.py" in missing.output


def test_load_corpus_reads_both_files(tok, tmp_path: Path) -> None:
    train, val = load_corpus(tok, _write_corpus(tmp_path / "c"))
    assert len(train.docs) == 36 and len(val.docs) == 6
    assert train.source_names == ("facts", "general")
    assert all(d[-1] == tok.eos_token_id for d in train.docs)
    assert train.fingerprint != val.fingerprint and len(train.fingerprint) == 64


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
