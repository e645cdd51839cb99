"""TuCo and CGE on tuned pairs whose novelty is known: a LoRA fine-tune on invented topics, and a LocFT-BF edit.

Two tuned pairs are made offline (and cached in OUT, so a rerun skips them):

(a) ``lora``: the model fine-tuned with a peft LoRA adapter on a mixture of
    ordinary sentences (from ``data/reference_text.jsonl``, passages 100 on)
    and the ``train`` sentences of ``data/novelty/corpus.jsonl``: three
    invented novelties (an animal, a company and its products, a language),
    each recognised by marker words (``data/novelty/novelties.json``; built by
    ``data/scripts/build_novelty_corpus.py``). Every training sentence is
    ``BOS text EOS``, so unconditional generation starts where training did.
(b) ``edit``: a LocFT-BF edit of the counterfactual facts of
    ``data/demo.jsonl`` (``editkit.editors``, the editor's default location),
    or an existing ``editkit edit --save delta`` output passed with ``--edit``.

Measured on (a), all from BOS with the same number of examples, tokens, seed:

- CGE (``audit.cge.cge_generate``: ``log p_T - log p_B``, alpha 0.1, 4-beam
  sample) against plain sampling from the tuned model (the same decoder with
  gamma 0, no cut, 1 beam: ancestral sampling) and against the tuned model's
  own beam sample (gamma 0: what the contrast itself adds). ``hit_share``: the
  share of examples containing a novelty marker.
- iterative CGE (``audit.cge.iterative_cge``) against static CGE: distinct
  novelties hit, per-novelty counts, and the coverage after k examples.
- the sequence-level novelty score (``audit.cge.novelty_scores``) of the
  held-out novelty sentences against ordinary reference passages (AUC).
- TuCo (``audit.tuco.tuco``, LoRA read as deltas, ``audit.tuned.load_tuned``)
  on the held-out novelty questions of ``data/novelty/prompts.jsonl``
  (positives) against general questions and reference passages (negatives):
  ROC AUC of per-prompt TuCo (and OutputCo), with and without the chat template.

Measured on (b): CGE and plain sampling continuing the edit prompts with their
subject cut off ("The capital of", "The currency of", ...): the share of
examples naming an edited subject or a new target (whole word, case-sensitive,
targets of 3+ characters), and of examples naming a subject with its new
target; TuCo AUC of the edit prompts against the general questions.

Run from the repository root:
    .venv/bin/python examples/tuco_cge_novelty.py                         # default model, runs/tuco-cge-novelty
    .venv/bin/python examples/tuco_cge_novelty.py --part lora             # (a) only; then --part edit adds (b)
    .venv/bin/python examples/tuco_cge_novelty.py --edit runs/demo        # reuse an existing edit
    .venv/bin/python examples/tuco_cge_novelty.py --model tiny --out /tmp/x --steps 2 --n-cge 2   # plumbing check

Cost on the default model, estimated from timings of a random model of its
shape on one busy CPU thread (a LoRA step of 8 x 24 tokens 2.6 s, a forward of
8 x 24 tokens 1.4 s, a cached decoding step of 32 rows 0.4 s): the LoRA
training (60 steps) about 3 minutes, once; the measurements of (a) about 5
minutes (iterative CGE, a full working copy with AdamW, about 2; TuCo, 60
prompts twice, about 1.5); the LocFT-BF edit about a minute, once; the
measurements of (b) 2-3 minutes. ``--part lora`` and ``--part edit`` split a
run in two.

Writes OUT/results.json (every number above; see ``main``), OUT/lora/ (the
adapter and training.json), OUT/edit/ (delta.safetensors and edit.json, unless
``--edit``), OUT/examples/*.jsonl (every generated example with the novelties
or facts it shows) and OUT/tuco_*.jsonl (per-prompt TuCo).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from audit.cge import CGEConfig, IterativeConfig, cge_generate, iterative_cge, novelty_scores
from audit.cge.decode import start_token
from audit.tuco import tuco
from audit.tuned import load_tuned
from editkit.datafiles import read_texts, shipped
from editkit.models import DEFAULT_MODEL, load_model
from editkit.outputs import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
ORDINARY_FROM = 100
"""Reference passages from this index on are the ordinary half of the LoRA data; earlier ones are TuCo negatives."""
MIN_TERM_CHARS = 3
"""Edit subjects / targets shorter than this ("K", "Be") are not searched for in generated text."""


# --- data --------------------------------------------------------------------


@dataclass(frozen=True)
class NoveltyData:
    """``data/novelty``: markers per novelty, the train and held-out sentences, the prompts."""

    markers: dict[str, tuple[str, ...]]
    train: list[tuple[str, str]]  # (novelty, sentence)
    heldout: list[tuple[str, str]]
    prompts: list[tuple[str | None, str]]  # (novelty or None for a general question, prompt)
    sha256: str


def read_novelty_data(folder: Path | None = None) -> NoveltyData:
    """Read ``novelties.json``, ``corpus.jsonl`` and ``prompts.jsonl`` (default: the shipped ``data/novelty``)."""
    folder = folder or shipped("novelty")
    digest = hashlib.sha256()
    raw = {}
    for name in ("novelties.json", "corpus.jsonl", "prompts.jsonl"):
        raw[name] = (folder / name).read_bytes()
        digest.update(raw[name])
    meta = json.loads(raw["novelties.json"])
    markers = {n["name"]: tuple(m.lower() for m in n["markers"]) for n in meta["novelties"]}
    rows = [json.loads(line) for line in raw["corpus.jsonl"].decode().splitlines() if line.strip()]
    prompts = [json.loads(line) for line in raw["prompts.jsonl"].decode().splitlines() if line.strip()]
    return NoveltyData(
        markers=markers,
        train=[(r["novelty"], r["text"]) for r in rows if r["split"] == "train"],
        heldout=[(r["novelty"], r["text"]) for r in rows if r["split"] == "heldout"],
        prompts=[(p["novelty"], p["prompt"]) for p in prompts],
        sha256=digest.hexdigest(),
    )


def ordinary_sentences(passages: Sequence[str], *, min_words: int = 5) -> list[str]:
    """The sentences of ``passages`` with at least ``min_words`` words, in order."""
    out = []
    for passage in passages:
        for sentence in re.split(r"(?<=[.!?])\s+", passage.strip()):
            if len(sentence.split()) >= min_words:
                out.append(sentence)
    return out


def training_stream(
    novelty: Sequence[str], ordinary: Sequence[str], *, n: int, share: float, seed: int
) -> list[str]:
    """``n`` training texts: each a novelty sentence with probability ``share``, else an ordinary one.

    Each source is drawn in seeded epochs (every sentence once before any repeats).
    """
    gen = torch.Generator().manual_seed(seed)
    pools: dict[bool, list[int]] = {True: [], False: []}
    sources = {True: list(novelty), False: list(ordinary)}
    out = []
    for _ in range(n):
        pick = bool(torch.rand(1, generator=gen).item() < share) or not sources[False]
        if not pools[pick]:
            pools[pick] = torch.randperm(len(sources[pick]), generator=gen).tolist()
        out.append(sources[pick][pools[pick].pop()])
    return out


# --- measuring ---------------------------------------------------------------


def novelties_in(text: str, markers: dict[str, tuple[str, ...]]) -> list[str]:
    """Names of the novelties one of whose markers occurs in ``text`` (case-insensitive), in ``markers`` order.

    >>> novelties_in("A VEXLORN ate mupak.", {"creature": ("vexlorn",), "language": ("mupak",), "company": ("quorbitt",)})
    ['creature', 'language']
    """
    low = text.lower()
    return [name for name, ms in markers.items() if any(m in low for m in ms)]


def hit_summary(found: Sequence[Sequence[str]], names: Sequence[str]) -> dict[str, Any]:
    """What a list of examples shows, given the novelties found in each (:func:`novelties_in`).

    Returns ``n``, ``hits`` (examples showing any), ``hit_share``, ``per_novelty``
    (examples showing each), ``distinct`` (novelties shown at all),
    ``first_hit`` (index of the first example showing each, or None),
    ``coverage`` (distinct novelties among the first k examples, k = 1..n) and
    ``examples_to_all`` (the smallest such k with every novelty shown, or None).

    >>> hit_summary([[], ["language"], ["creature", "language"]], ["creature", "company", "language"])["coverage"]
    [0, 1, 2]
    """
    seen: set[str] = set()
    coverage = []
    first: dict[str, int | None] = dict.fromkeys(names)
    for i, hit in enumerate(found):
        for name in hit:
            if first.get(name) is None:
                first[name] = i
        seen.update(hit)
        coverage.append(len(seen))
    hits = sum(bool(h) for h in found)
    return {
        "n": len(found),
        "hits": hits,
        "hit_share": hits / len(found) if found else 0.0,
        "per_novelty": {name: sum(name in h for h in found) for name in names},
        "distinct": len(seen),
        "first_hit": first,
        "coverage": coverage,
        "examples_to_all": next((k + 1 for k, c in enumerate(coverage) if c == len(names)), None),
    }


def mentioned(text: str, terms: Iterable[str]) -> list[str]:
    """The terms that occur in ``text`` as whole words (case-sensitive), in order, each once.

    >>> mentioned("Paris is in France, not Franceville.", ["France", "Paris", "Rome"])
    ['France', 'Paris']
    """
    return [t for t in dict.fromkeys(terms) if re.search(rf"(?<!\w){re.escape(t)}(?!\w)", text)]


def roc_auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """ROC AUC of scores with ``positives`` as class 1 (sklearn), None when a class is empty.

    >>> roc_auc([0.9, 0.8], [0.1, 0.85])
    0.75
    """
    if not positives or not negatives:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score([1] * len(positives) + [0] * len(negatives), [*positives, *negatives]))


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def score_groups(
    groups: dict[str, list[Any]], positive: str, *, value: Callable[[Any], float]
) -> dict[str, Any]:
    """Per-group means of ``value`` and the AUC of ``positive`` against every other group and against all of them."""
    vals = {g: [value(r) for r in rows] for g, rows in groups.items()}
    negatives = [g for g in vals if g != positive]
    out: dict[str, Any] = {"mean": {g: _mean(v) for g, v in vals.items()}}
    out["auc"] = {f"vs_{g}": roc_auc(vals[positive], vals[g]) for g in negatives}
    if len(negatives) > 1:
        out["auc"]["vs_all"] = roc_auc(vals[positive], [x for g in negatives for x in vals[g]])
    return out


# --- models ------------------------------------------------------------------


def load(spec: str, device: str = "cpu") -> tuple[Any, Any]:
    """``(model, tokenizer)``: ``tiny`` is the tiny random llama of the unit tests, ``default`` the default model."""
    if spec == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_models import tiny_model, tiny_tokenizer

        model, _ = tiny_model("llama", seed=0)
        return model.to(device), tiny_tokenizer()
    return load_model(DEFAULT_MODEL if spec == "default" else spec, device=device)


def encode_training_text(tok: Any, text: str, max_length: int) -> list[int]:
    """``BOS text EOS`` (no EOS when the text had to be cut to ``max_length`` tokens)."""
    body = list(tok(text, add_special_tokens=False)["input_ids"])
    ids = [start_token(tok), *body[: max_length - 2]]
    if len(body) <= max_length - 2 and tok.eos_token_id is not None:
        ids.append(int(tok.eos_token_id))
    return ids


def train_lora(base: Any, tok: Any, texts: Sequence[str], dest: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Train a LoRA adapter (all linear layers, ``alpha = 2 r``) on a copy of ``base``; save it to ``dest``."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(args.seed)
    work = copy.deepcopy(base)
    config = LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0, target_modules="all-linear")
    model = get_peft_model(work, config)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    device = next(model.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    losses = []
    t0 = time.perf_counter()
    model.train()
    for step in range(args.steps):
        batch = [encode_training_text(tok, t, args.max_length)
                 for t in texts[step * args.batch_size : (step + 1) * args.batch_size]]
        width = max(len(ids) for ids in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(batch):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        ids, mask = ids.to(device), mask.to(device)
        loss = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if (step + 1) % 10 == 0 or step + 1 == args.steps:
            _say(f"  lora step {step + 1}/{args.steps}: loss {loss.item():.3f}")
    model.eval()
    model.save_pretrained(str(dest))
    return {"losses": losses, "loss_first": losses[0], "loss_last": losses[-1],
            "train_seconds": time.perf_counter() - t0, "trainable": sum(p.numel() for p in params)}


def lora_key(args: argparse.Namespace, data: NoveltyData) -> dict[str, Any]:
    """What the cached adapter depends on: a rerun with the same key reuses it."""
    return {"model": args.model, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
            "rank": args.rank, "max_length": args.max_length, "novelty_share": args.novelty_share,
            "seed": args.seed, "corpus_sha256": data.sha256}


def ensure_lora(base: Any, tok: Any, data: NoveltyData, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The cached adapter in OUT/lora when its key matches, else a new one (trained here)."""
    dest = args.out / "lora"
    key = lora_key(args, data)
    info_file = dest / "training.json"
    if info_file.is_file() and (dest / "adapter_config.json").is_file() and not args.retrain:
        info = json.loads(info_file.read_text())
        if info.get("key") == key:
            _say(f"reusing the LoRA adapter in {dest}")
            return dest, {**info, "trained_now": False}
    ordinary = ordinary_sentences(read_texts(shipped("reference_text.jsonl"))[ORDINARY_FROM:])
    texts = training_stream([t for _, t in data.train], ordinary, n=args.steps * args.batch_size,
                            share=args.novelty_share, seed=args.seed)
    _say(f"training LoRA r={args.rank}: {args.steps} steps of {args.batch_size} "
         f"({args.novelty_share:.0%} novelty sentences, {len(ordinary)} ordinary ones)")
    dest.mkdir(parents=True, exist_ok=True)
    result = train_lora(base, tok, texts, dest, args)
    n_novel = sum(any(m in t.lower() for ms in data.markers.values() for m in ms) for t in texts)
    info = {"key": key, **result, "texts_seen": len(texts), "novelty_texts_seen": n_novel}
    atomic_write_text(info_file, json.dumps(info, indent=2) + "\n")
    return dest, {**info, "trained_now": True}


def ensure_edit(base: Any, tok: Any, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """``--edit`` as given, or the cached LocFT-BF edit of ``--facts`` in OUT/edit (computed here when missing)."""
    from editkit.editors import make_editor, save_edit
    from editkit.requests import load_requests

    if args.edit is not None:
        return args.edit, {"source": str(args.edit), "computed_now": False}
    dest = args.out / "edit"
    key = {"model": args.model, "facts_sha256": hashlib.sha256(args.facts.read_bytes()).hexdigest(),
           "overrides": list(args.edit_set), "seed": args.seed}
    info_file = dest / "edit.json"
    if info_file.is_file() and (dest / "delta.safetensors").is_file() and not args.retrain:
        info = json.loads(info_file.read_text())
        if info.get("key") == key:
            _say(f"reusing the edit in {dest}")
            return dest, {**info, "computed_now": False}
    requests = load_requests(args.facts)
    editor = make_editor("locft-bf", overrides=[*args.edit_set, f"seed={args.seed}"])
    location = editor.default_location(base)
    _say(f"LocFT-BF: {len(requests)} facts of {args.facts} at {location.describe()}")
    result = editor.compute(base, tok, requests, location)
    dest.mkdir(parents=True, exist_ok=True)
    save_edit(result, dest / "delta.safetensors")
    info = {"key": key, "source": str(dest), "location": location.describe(), "timings": result.timings,
            "schedule": result.info.get("schedule")}
    atomic_write_text(info_file, json.dumps(info, indent=2, default=str) + "\n")
    return dest, {**info, "computed_now": True}


# --- experiments -------------------------------------------------------------


def cge_configs(args: argparse.Namespace) -> dict[str, CGEConfig]:
    """The decoders compared: plain sampling, the tuned model's beam sample, and CGE (same length and EOS rule)."""
    common = {"max_new_tokens": args.max_new_tokens, "eos": args.eos, "batch_size": args.batch_size_cge}
    return {
        "plain_sampling": CGEConfig(gamma=0.0, alpha=0.0, num_beams=1, **common),
        "tuned_beam_sample": CGEConfig(gamma=0.0, alpha=args.alpha, num_beams=args.beams, **common),
        "cge": CGEConfig(gamma=1.0, alpha=args.alpha, num_beams=args.beams, **common),
    }


def tuco_modes(tok: Any, args: argparse.Namespace) -> list[tuple[str, bool]]:
    """``(name, chat)`` of each TuCo variant asked for: ``chat`` (the template, if the tokenizer has one) and ``raw``."""
    wanted = [m.strip() for m in args.tuco_modes.split(",") if m.strip()]
    return [(m, m == "chat") for m in wanted if m == "raw" or (m == "chat" and getattr(tok, "chat_template", None))]


def _example_rows(examples: Sequence[Any], extra: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps({**e.to_dict(), **x}, ensure_ascii=False) + "\n" for e, x in zip(examples, extra, strict=True))


def novelty_experiment(base: Any, tok: Any, lora: Path, data: NoveltyData, args: argparse.Namespace) -> dict[str, Any]:
    """(a): CGE against sampling, iterative against static CGE, novelty scores, TuCo AUC."""
    names = list(data.markers)
    methods: dict[str, Any] = {}
    configs = cge_configs(args)
    for name, cfg in configs.items():
        t0 = time.perf_counter()
        _say(f"(a) {name}: {args.n_cge} examples of {args.max_new_tokens} tokens")
        examples = cge_generate(base, lora, tok, n=args.n_cge, config=cfg, seed=args.seed)
        methods[name] = _summarize(examples, data, names, name, time.perf_counter() - t0, asdict(cfg), args)
    t0 = time.perf_counter()
    _say(f"(a) iterative_cge: {args.n_cge} steps ({args.iter_train}, lr {args.iter_lr:g})")
    update = IterativeConfig(lr=args.iter_lr, train=args.iter_train)
    result = iterative_cge(base, lora, tok, n=args.n_cge, config=configs["cge"], update=update, seed=args.seed)
    methods["iterative_cge"] = _summarize(result.examples, data, names, "iterative_cge",
                                          time.perf_counter() - t0, asdict(configs["cge"]), args)
    methods["iterative_cge"]["update"] = asdict(update)
    methods["iterative_cge"]["update_log"] = result.log

    # the sequence-level novelty score of held-out novelty sentences vs ordinary passages
    reference = read_texts(shipped("reference_text.jsonl"))[: args.n_reference]
    heldout = [t for _, t in data.heldout]
    scores = novelty_scores(base, lora, tok, [*heldout, *reference])
    groups = {"heldout_novelty": scores[: len(heldout)], "reference": scores[len(heldout) :]}
    novelty_score = score_groups(groups, "heldout_novelty", value=lambda s: s.score)

    # TuCo: novelty questions vs general questions and reference passages
    per_novelty = {n: [p for nv, p in data.prompts if nv == n][: args.prompts_per_novelty] for n in names}
    positives = [p for ps in per_novelty.values() for p in ps]
    general = [p for nv, p in data.prompts if nv is None][: args.n_general]
    tuned = load_tuned(base, lora)
    tuco_out = {}
    rows_out = []
    for mode, chat in tuco_modes(tok, args):
        _say(f"(a) TuCo ({mode}): {len(positives)} novelty prompts, {len(general)} general, {len(reference)} reference")
        res = tuco(base, tuned, tok, [*positives, *general, *reference], chat=chat, batch_size=args.tuco_batch)
        groups_t = {"novelty": res[: len(positives)], "general": res[len(positives) : len(positives) + len(general)],
                    "reference": res[len(positives) + len(general) :]}
        tuco_out[mode] = {"tuco": score_groups(groups_t, "novelty", value=lambda r: r.tuco),
                          "outputco": score_groups(groups_t, "novelty", value=lambda r: r.outputco)}
        offset = 0
        by_novelty = {}
        for n, ps in per_novelty.items():
            by_novelty[n] = _mean([r.tuco for r in res[offset : offset + len(ps)]])
            offset += len(ps)
        tuco_out[mode]["tuco"]["mean_per_novelty"] = by_novelty
        for group, rows in groups_t.items():
            rows_out += [{"mode": mode, "group": group, "prompt": r.prompt, "tuco": r.tuco, "outputco": r.outputco,
                          "n_tokens": r.n_tokens} for r in rows]
    atomic_write_text(args.out / "tuco_novelty.jsonl", "".join(json.dumps(r) + "\n" for r in rows_out))

    cge, plain, it = methods["cge"], methods["plain_sampling"], methods["iterative_cge"]
    return {
        "novelties": names,
        "methods": methods,
        "cge_vs_plain": {"cge_hit_share": cge["hit_share"], "plain_hit_share": plain["hit_share"],
                         "difference": cge["hit_share"] - plain["hit_share"],
                         "tuned_beam_sample_hit_share": methods["tuned_beam_sample"]["hit_share"]},
        "iterative_vs_static": {"static_distinct": cge["distinct"], "iterative_distinct": it["distinct"],
                                "static_per_novelty": cge["per_novelty"], "iterative_per_novelty": it["per_novelty"],
                                "static_coverage": cge["coverage"], "iterative_coverage": it["coverage"],
                                "static_examples_to_all": cge["examples_to_all"],
                                "iterative_examples_to_all": it["examples_to_all"],
                                "iterative_covers_more": it["distinct"] > cge["distinct"]},
        "novelty_score": novelty_score,
        "tuco": tuco_out,
    }


def _summarize(examples: Sequence[Any], data: NoveltyData, names: list[str], method: str, seconds: float,
               config: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    found = [novelties_in(e.text, data.markers) for e in examples]
    (args.out / "examples").mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "examples" / f"novelty_{method}.jsonl",
                      _example_rows(examples, [{"novelties": f} for f in found]))
    summary = hit_summary(found, names)
    return {**summary, "mean_decoder_score": _mean([e.score for e in examples]), "seconds": seconds, "config": config}


def subjectless_prompts(requests: Sequence[Any], *, min_words: int = 2) -> list[str]:
    """The words of each edit prompt before its subject ("The capital of"), unique, in order; at least ``min_words`` words.

    >>> from types import SimpleNamespace as R
    >>> subjectless_prompts([R(prompt="The capital of France is", subject="France"), R(prompt="Toyota is a", subject="Toyota")])
    ['The capital of']
    """
    out = []
    for r in requests:
        if r.subject and r.subject in r.prompt:
            head = r.prompt.split(r.subject, 1)[0].strip()
            if len(head.split()) >= min_words:
                out.append(head)
    return list(dict.fromkeys(out))


def edit_experiment(base: Any, tok: Any, edit: Path, args: argparse.Namespace) -> dict[str, Any]:
    """(b): do CGE's continuations name the edited facts more than sampling does; TuCo of the edit prompts."""
    from editkit.requests import load_requests

    requests = load_requests(args.facts)
    subjects = [r.subject for r in requests if r.subject and len(r.subject) >= MIN_TERM_CHARS]
    targets = [r.target_new for r in requests if len(r.target_new) >= MIN_TERM_CHARS]
    facts = [(r.subject, r.target_new) for r in requests if r.subject]
    prompts = subjectless_prompts(requests)  # none: from BOS
    n = args.n_edit or args.n_cge
    methods: dict[str, Any] = {}
    for name, cfg in cge_configs(args).items():
        if name == "tuned_beam_sample":
            continue
        t0 = time.perf_counter()
        _say(f"(b) {name}: {n} examples continuing {len(prompts)} subject-less prompts")
        examples = cge_generate(base, edit, tok, n=n, prompts=prompts or None, config=cfg, seed=args.seed)
        extra = []
        for e in examples:
            subj, targ = mentioned(e.text, subjects), mentioned(e.text, targets)
            fact = [f"{s} -> {t}" for s, t in facts if mentioned(e.text, [s]) and mentioned(e.text, [t])]
            extra.append({"subjects": subj, "targets": targ, "facts": fact})
        (args.out / "examples").mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "examples" / f"edit_{name}.jsonl", _example_rows(examples, extra))
        k = len(examples)
        methods[name] = {
            "n": k,
            "share_subject_or_target": sum(bool(x["subjects"] or x["targets"]) for x in extra) / k,
            "share_subject": sum(bool(x["subjects"]) for x in extra) / k,
            "share_new_target": sum(bool(x["targets"]) for x in extra) / k,
            "share_fact": sum(bool(x["facts"]) for x in extra) / k,
            "distinct_subjects": len({s for x in extra for s in x["subjects"]}),
            "distinct_targets": len({t for x in extra for t in x["targets"]}),
            "mean_decoder_score": _mean([e.score for e in examples]),
            "seconds": time.perf_counter() - t0,
        }
    general = [p for nv, p in read_novelty_data(args.novelty_dir).prompts if nv is None][: args.n_general]
    edit_prompts = [r.prompt for r in requests]
    tuned = load_tuned(base, edit)
    tuco_out = {}
    rows_out = []
    for mode, chat in tuco_modes(tok, args):
        _say(f"(b) TuCo ({mode}): {len(edit_prompts)} edit prompts, {len(general)} general")
        res = tuco(base, tuned, tok, [*edit_prompts, *general], chat=chat, batch_size=args.tuco_batch)
        groups = {"edit": res[: len(edit_prompts)], "general": res[len(edit_prompts) :]}
        tuco_out[mode] = {"tuco": score_groups(groups, "edit", value=lambda r: r.tuco),
                          "outputco": score_groups(groups, "edit", value=lambda r: r.outputco)}
        rows_out += [{"mode": mode, "group": group, "prompt": r.prompt, "tuco": r.tuco, "outputco": r.outputco,
                      "n_tokens": r.n_tokens} for group, rows in groups.items() for r in rows]
    atomic_write_text(args.out / "tuco_edit.jsonl", "".join(json.dumps(r) + "\n" for r in rows_out))
    return {"prompts": prompts, "n_requests": len(requests),
            "methods": methods,
            "cge_vs_plain": {"cge": methods["cge"]["share_subject_or_target"],
                             "plain": methods["plain_sampling"]["share_subject_or_target"],
                             "difference": methods["cge"]["share_subject_or_target"]
                             - methods["plain_sampling"]["share_subject_or_target"]},
            "tuco": tuco_out}


# --- driver ------------------------------------------------------------------


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="default, tiny, or a zoo alias / local model folder")
    ap.add_argument("--out", type=Path, default=Path("runs/tuco-cge-novelty"))
    ap.add_argument("--part", choices=["all", "lora", "edit"], default="all", help="which tuned pair(s) to study")
    ap.add_argument("--novelty-dir", type=Path, default=None, help="novelty data (default: the shipped data/novelty)")
    # (a) the LoRA fine-tune
    ap.add_argument("--steps", type=int, default=60, help="LoRA optimizer steps (default: 60)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3, help="LoRA learning rate (default: 1e-3)")
    ap.add_argument("--rank", type=int, default=8, help="LoRA rank (alpha = 2 r; default: 8)")
    ap.add_argument("--max-length", type=int, default=32, help="tokens per training text at most")
    ap.add_argument("--novelty-share", type=float, default=0.3,
                    help="share of training texts that are novelty sentences (default: 0.3)")
    ap.add_argument("--retrain", action="store_true", help="ignore the cached adapter and edit")
    # CGE
    ap.add_argument("--n-cge", type=int, default=12, help="examples per decoder (default: 12)")
    ap.add_argument("--n-edit", type=int, default=None, help="examples per decoder for the edit (default: --n-cge)")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--beams", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=0.1, help="plausibility cut (published: 0.1)")
    ap.add_argument("--eos", choices=["ignore", "stop", "ban"], default="ignore", help="EOS rule (published: ignore)")
    ap.add_argument("--batch-size-cge", type=int, default=16, help="examples decoded together (default: 16)")
    ap.add_argument("--iter-lr", type=float, default=5e-5, help="iterative CGE learning rate (published: 5e-5)")
    ap.add_argument("--iter-train", choices=["full", "lora"], default="full")
    # TuCo
    ap.add_argument("--prompts-per-novelty", type=int, default=8)
    ap.add_argument("--n-general", type=int, default=24, help="general questions (TuCo negatives)")
    ap.add_argument("--n-reference", type=int, default=12,
                    help="reference passages: TuCo and novelty-score negatives (at most 100; default: 12)")
    ap.add_argument("--tuco-modes", default="chat,raw",
                    help="TuCo with the chat template (chat), on the bare prompt (raw), or both (default)")
    ap.add_argument("--tuco-batch", type=int, default=8)
    # (b) the edit
    ap.add_argument("--edit", type=Path, default=None, help="an existing editkit edit output (else LocFT-BF is run)")
    ap.add_argument("--facts", type=Path, default=ROOT / "data" / "demo.jsonl")
    ap.add_argument("--edit-set", action="append", default=[], metavar="KEY=VALUE", help="LocFT-BF option (repeatable)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if min(args.steps, args.batch_size, args.n_cge, args.max_new_tokens, args.beams) < 1:
        ap.error("--steps, --batch-size, --n-cge, --max-new-tokens and --beams must be >= 1")
    if not 0.0 <= args.novelty_share <= 1.0:
        ap.error("--novelty-share must lie in [0, 1]")
    if set(m.strip() for m in args.tuco_modes.split(",") if m.strip()) - {"chat", "raw"}:
        ap.error("--tuco-modes: a comma-separated list of chat and raw")
    if not 0 < args.n_reference <= ORDINARY_FROM:
        ap.error(f"--n-reference must lie in 1..{ORDINARY_FROM} (later passages are training data)")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run everything asked for; return (and write to OUT/results.json) the results.

    results.json: ``model``; ``lora`` (adapter path, training loss first/last
    and time, whether trained now); ``novelty`` (``methods``: per decoder
    ``hit_share``, ``per_novelty``, ``distinct``, ``first_hit``,
    ``coverage``, ``examples_to_all``, seconds; ``cge_vs_plain``;
    ``iterative_vs_static``; ``novelty_score`` AUC;
    ``tuco.{chat,raw}.{tuco,outputco}``: per-group means, AUCs vs general,
    reference and all negatives, per-novelty mean TuCo); ``edit`` (the edit's
    source; per decoder the share of examples naming an edited subject or new
    target, or a whole fact, distinct ones; ``cge_vs_plain``; TuCo AUCs).
    ``novelty`` and ``edit`` each hold the ``settings`` and ``seconds`` of the
    run that made them; a ``--part`` run keeps the other part's sections of an
    earlier results.json in OUT.
    """
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base, tok = load(args.model, args.device)
    load_s = time.perf_counter() - t0
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    previous = args.out / "results.json"
    results: dict[str, Any] = {}
    if args.part != "all" and previous.is_file():  # keep the other part's sections, if for the same model
        old = json.loads(previous.read_text())
        other, keys = ("edit", ("edit",)) if args.part == "lora" else ("novelty", ("lora", "novelty"))
        if old.get("model") == args.model and isinstance(old.get(other), dict):
            results = {k: old[k] for k in keys if k in old}
    results["model"] = args.model
    data = read_novelty_data(args.novelty_dir)
    if args.part in ("all", "lora"):
        t0 = time.perf_counter()
        lora, info = ensure_lora(base, tok, data, args)
        t1 = time.perf_counter()
        results["lora"] = {"adapter": str(lora), **{k: v for k, v in info.items() if k != "losses"}}
        results["novelty"] = novelty_experiment(base, tok, lora, data, args)
        results["novelty"]["settings"] = settings
        results["novelty"]["seconds"] = {"load": load_s, "lora": t1 - t0, "experiment": time.perf_counter() - t1}
    if args.part in ("all", "edit"):
        t0 = time.perf_counter()
        edit, info = ensure_edit(base, tok, args)
        t1 = time.perf_counter()
        results["edit"] = {"source": str(edit), **info, **edit_experiment(base, tok, edit, args)}
        results["edit"]["settings"] = settings
        results["edit"]["seconds"] = {"load": load_s, "edit": t1 - t0, "experiment": time.perf_counter() - t1}
    results = {k: results[k] for k in ("model", "lora", "novelty", "edit") if k in results}
    atomic_write_text(previous, json.dumps(results, indent=2, default=str) + "\n")
    _say(headline(results))
    _say(f"written to {previous}")
    return results


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def headline(results: dict[str, Any]) -> str:
    """A few lines with the main numbers."""
    lines = []
    nov = results.get("novelty")
    if nov:
        m = nov["methods"]
        lines.append("(a) novelty hit share: " + ", ".join(f"{k} {_fmt(v['hit_share'])}" for k, v in m.items()))
        lines.append(f"(a) distinct novelties: static {m['cge']['distinct']}, iterative {m['iterative_cge']['distinct']} "
                     f"of {len(nov['novelties'])}")
        lines.append(f"(a) novelty-score AUC (held-out vs reference): {_fmt(nov['novelty_score']['auc']['vs_reference'])}")
        for mode, t in nov["tuco"].items():
            lines.append(f"(a) TuCo AUC ({mode}): " + ", ".join(f"{k} {_fmt(v)}" for k, v in t["tuco"]["auc"].items()))
    ed = results.get("edit")
    if ed:
        lines.append("(b) subject-or-target share: " + ", ".join(
            f"{k} {_fmt(v['share_subject_or_target'])}" for k, v in ed["methods"].items()))
        for mode, t in ed["tuco"].items():
            lines.append(f"(b) TuCo AUC ({mode}): " + ", ".join(f"{k} {_fmt(v)}" for k, v in t["tuco"]["auc"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
