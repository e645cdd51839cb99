"""Build ``data/mend_train.jsonl`` and ``data/mend_val.jsonl``: MEND editor training requests.

Training data for a learned gradient editor (MEND) on the default model,
made from the project's fact tables and kept away from every evaluation set.
No model is needed; the script runs in a few seconds.

1. Evaluation subjects. Every subject of ``data/counterfact.jsonl`` and
   ``data/demo.jsonl``: the edited subjects and the subjects of their
   neighborhood prompts (each neighborhood prompt is mapped back to its fact
   in ``facts.jsonl`` / ``facts_rejected.jsonl``). No row here uses one of
   them, as the edited subject or in a locality prompt, and no prompt,
   paraphrase or locality prompt written here mentions one as a whole word
   (case-insensitive). A candidate subject that contains an evaluation
   subject as a whole word, or is contained in one ("Sudan" / "South
   Sudan"), is left out too.
2. Real subjects. The other candidates of ``candidates.py``: the few known
   facts of ``facts.jsonl`` (source ``fact``) and the candidates the model
   does not know, from ``facts_rejected.jsonl`` (source ``rejected``; their
   ``target_true`` is the true answer, ``expected``, which the model does not
   predict). Subjects get one seeded order (sha256 of seed and subject);
   subjects whose names overlap as whole words are kept together. The first
   ``VAL_SHARE`` of that order goes to validation, the rest to training, so
   the two files share no subject.
3. Locality pools. Within each split, the first ``max(1, 20%)`` subjects of
   every relation (same order) are reserved: they appear only in
   neighborhood prompts, never as an edited subject, in any relation. A
   reserved fact whose prompt or paraphrases mention an edited subject of its
   split (whole word, case-sensitive) is dropped from the pool.
4. Invented subjects. Made-up names (countries, cities, landmarks, elements,
   car makers, companies, dishes, states, book titles, teams, athletes),
   built deterministically from syllables and small word lists, asked on the
   same templates (source ``invented``; no ``target_true``). Every invented
   name has its own made-up core word, which occurs in no candidate subject
   or object, no template, and no other invented name, and contains no real
   one-word name or template word of 4+ letters ("Heihindia" is refused).
5. Requests. ``target_new`` is drawn (seeded per request) from the
   relation's objects, the canonical answers of ``candidates.py``, minus
   every spelling of the true answer; each real fact gives
   ``REQUESTS_PER_REAL`` requests with different ``target_new`` values, each
   invented subject one. ``paraphrase_prompts``: 1-3 of the relation's 4
   paraphrase templates. ``neighborhood_prompts``: 2-3 reserved facts of the
   split with their true answer, as many as possible from the same relation
   but at least one from another; never one whose answer is ``target_new``
   or whose text mentions the edited subject. Each is asked on its main
   template or one of its paraphrases (drawn uniformly), so the small pools
   still give varied locality inputs. Their answers are true, but for
   ``rejected`` facts the model does not predict them; MEND's locality loss
   is a KL to the unedited model, so this does not matter for training.

Rows use editkit's canonical schema only (``load_requests`` rejects unknown
keys), so the source and relation are in the id:
``<relation>-<source>-<subject slug>-<n>``. The rows are shuffled with the
seed, so any prefix is a mixed sample. Deterministic for a given seed.

Usage (from the repository root)::

    python data/scripts/build_mend_train.py
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import re
import string
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from candidates import RELATIONS, Relation, object_table, order_key, reserve_per_relation  # noqa: E402
from jsonl_io import write_jsonl  # noqa: E402

DATA = HERE.parent
SEED = 20260301
VAL_SHARE = 0.1  # share of the real subjects that go to validation
NEIGHBOR_SHARE = 0.2  # share of a split's subjects per relation reserved for locality prompts
REQUESTS_PER_REAL = 3  # requests (distinct target_new) per real fact
INVENTED_TRAIN = 180  # invented subjects per relation, training
INVENTED_VAL = 12  # invented subjects per relation, validation
PARAPHRASE_COUNTS = (1, 2, 3, 3)  # drawn uniformly: more often 3
NEIGHBOR_COUNTS = (2, 3)
MAX_BYTES = 3_000_000
SOURCES = ("fact", "rejected", "invented")

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


# ---------------------------------------------------------------------------
# helpers


def normalize(text: str) -> str:
    """editkit's answer normalization (``normalize_answer``), without importing torch."""
    text = text.lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def render(template: str, raw_subject: str) -> str:
    """Fill a template as ``check_facts.py`` does: a leading article is capitalized."""
    text = template.format(raw_subject)
    return "T" + text[1:] if text.startswith("the ") else text


def strip_article(raw: str) -> str:
    return raw[4:] if raw.startswith("the ") else raw


def slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


@functools.cache
def words_of(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"\w+", text.lower()))


def mentions(text: str, name: str, ignore_case: bool = True) -> bool:
    """Whether ``name`` occurs in ``text`` as a whole word (case-insensitive by default)."""
    if not words_of(name) <= words_of(text):  # cheap test first
        return False
    return _name_pattern(name, ignore_case).search(text) is not None


def overlaps(a: str, b: str) -> bool:
    """Whether one name contains the other as a whole word (case-insensitive)."""
    return mentions(b, a) or mentions(a, b)


@functools.cache
def _name_pattern(name: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(name)}(?!\w)", re.IGNORECASE if ignore_case else 0)


class Names:
    """Finds any of many names in a text as a whole word; names are indexed by their first word."""

    def __init__(self, names: Iterable[str], ignore_case: bool = True) -> None:
        self.ignore_case = ignore_case
        self.by_word: dict[str, list[str]] = defaultdict(list)
        for name in sorted(set(names)):
            self.by_word[re.findall(r"\w+", name.lower())[0]].append(name)

    def search(self, text: str) -> str | None:
        """The first name (in sorted order of the text's words) that occurs in ``text``."""
        for word in sorted(words_of(text)):
            for name in self.by_word.get(word, ()):
                if _name_pattern(name, self.ignore_case).search(text):
                    return name
        return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# ---------------------------------------------------------------------------
# facts


@dataclass(frozen=True)
class Fact:
    relation: str
    raw: str  # subject as written in candidates.py (may start with "the ")
    subject: str  # without the article
    prompt: str
    paraphrases: tuple[str, ...]
    target: str | None  # canonical true answer (None for invented subjects)
    spellings: tuple[str, ...]  # every accepted spelling of the truth
    source: str


REL: dict[str, Relation] = {rel.name: rel for rel in RELATIONS}




def real_facts(known: list[dict[str, Any]], rejected: list[dict[str, Any]]) -> list[Fact]:
    """Every candidate of candidates.py, with its source and its true answer."""
    known_of = {(f["relation"], f["subject"]): f for f in known}
    rejected_of = {(f["relation"], f["subject"]): f for f in rejected}
    out = []
    for rel in RELATIONS:
        for raw, spec in rel.facts:
            subject = strip_article(raw)
            key = (rel.name, subject)
            prompt = render(rel.main, raw)
            paraphrases = tuple(render(t, raw) for t in rel.paraphrases)
            if key in known_of:
                f, source, target = known_of[key], "fact", known_of[key]["target"]
                if tuple(f["paraphrases"]) != paraphrases:
                    raise ValueError(f"{key}: facts.jsonl paraphrases differ from the templates")
            elif key in rejected_of:
                f, source, target = rejected_of[key], "rejected", rejected_of[key]["expected"]
            else:
                raise ValueError(f"{key}: candidate in neither facts.jsonl nor facts_rejected.jsonl")
            if f["prompt"] != prompt:
                raise ValueError(f"{key}: prompt {f['prompt']!r} != rendered {prompt!r}")
            out.append(Fact(rel.name, raw, subject, prompt, paraphrases, target,
                            tuple(spec.split("|")), source))
    return out


def evaluation_subjects(sets: list[Path], facts: list[Fact]) -> set[str]:
    """Edited subjects and neighborhood-prompt subjects of the evaluation edit sets."""
    subject_of_prompt = {f.prompt: f.subject for f in facts}
    subjects: set[str] = set()
    for path in sets:
        for r in read_jsonl(path):
            subjects.add(r["subject"])
            for n in r["neighborhood_prompts"]:
                if n["prompt"] not in subject_of_prompt:
                    raise ValueError(f"{path.name}: neighborhood prompt {n['prompt']!r} "
                                     "matches no candidate fact")
                subjects.add(subject_of_prompt[n["prompt"]])
    return subjects


# ---------------------------------------------------------------------------
# invented subjects

VOWEL_LETTERS = "aeiou"
ONSETS = ("b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "r", "s",
          "st", "t", "tr", "v", "z", "sh", "th")
VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ei", "ou")
CODAS = ("", "", "", "n", "r", "l", "s", "m", "k", "nd", "rt", "st")

LANDMARK_KINDS = ("Tower", "Bridge", "Palace", "Cathedral", "Museum", "Gate", "Fortress",
                  "Gardens", "Opera House", "Clock Tower", "Basilica", "Market Hall", "Abbey",
                  "Lighthouse")
DISH_NOUNS = ("stew", "dumplings", "soup", "cake", "curry", "noodles", "pie", "flatbread",
              "salad", "rolls", "porridge", "skewers")
COMPANY_SUFFIXES = ("", "", "", " Group", " Systems", " Foods", " Electronics", " Industries",
                    " Labs", " Textiles")
STATE_PREFIXES = ("New ", "North ", "South ", "West ", "East ", "", "", "")
STATE_SUFFIXES = ("a", "ia", "ota", "ana", "ington", "ware", "ado", "ina", "ont")
TITLE_ADJ = ("Silent", "Hollow", "Crimson", "Forgotten", "Distant", "Burning", "Quiet", "Broken",
             "Amber", "Winter", "Secret", "Endless", "Pale", "Restless", "Northern", "Last")
TITLE_NOUNS = ("Orchard", "Lantern", "Harbor", "Voyage", "Kingdom", "Mirror", "River", "Letters",
               "Garden", "Shadows", "Winds", "Bells", "Daughters", "Road", "Island", "Summer")
TEAM_NICKNAMES = ("Herons", "Meteors", "Wolves", "Mustangs", "Foxes", "Hurricanes", "Owls",
                  "Rangers", "Pilots", "Hawkeyes", "Thunder", "Wildcats", "Sharks", "Miners",
                  "Vipers", "Storm", "Kestrels", "Otters")
FIRST_NAMES = ("Marco", "Elena", "Tomas", "Anya", "Lukas", "Sofia", "Daniel", "Mira", "Oskar",
               "Leila", "Ivan", "Nora", "Felix", "Yuki", "Omar", "Clara", "Mateo", "Ingrid",
               "Hana", "Viktor", "Amara", "Jonas", "Lena", "Karim")
SURNAME_SUFFIXES = ("", "", "son", "ov", "ez", "i", "er", "sen", "ski", "o")


def syllables(rng: random.Random, n: int) -> str:
    parts = [rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(n)]
    return "".join(parts) + rng.choice(CODAS)


def core(rng: random.Random, lo: int = 2, hi: int = 2, suffixes: tuple[str, ...] = ("",)) -> str:
    stem, suffix = syllables(rng, rng.randint(lo, hi)), rng.choice(suffixes)
    if suffix and suffix[0] in VOWEL_LETTERS:  # "Dapi" + "ia" -> "Dapia", not "Dapiia"
        stem = stem.rstrip(VOWEL_LETTERS)
    return (stem + suffix).capitalize()


# Each maker returns (raw subject as written in a template, its made-up core word).
Maker = Callable[[random.Random], tuple[str, str]]


def make_country(rng: random.Random) -> tuple[str, str]:
    w = core(rng, 2, 2, ("ia", "ania", "istan", "land", "ova", "or", "ea", "esh", "ia", ""))
    return (f"the {w} Islands", w) if rng.random() < 0.1 else (w, w)


def make_city(rng: random.Random) -> tuple[str, str]:
    w = core(rng, 2, 3, ("", "", "burg", "grad", "polis", "ford", "mouth", "ville", "abad", "pur"))
    return w, w


def make_landmark(rng: random.Random) -> tuple[str, str]:
    w = core(rng, 2, 3)
    kind = rng.choice(LANDMARK_KINDS)
    return (f"the {w} {kind}" if rng.random() < 0.7 else f"{w} {kind}"), w


def make_element(rng: random.Random) -> tuple[str, str]:
    w = core(rng, 2, 2, ("ium", "ium", "on", "ine", "um")).lower()
    return w, w


def make_carmaker(rng: random.Random) -> tuple[str, str]:
    w = core(rng, 2, 3)
    return (f"{w} Motors" if rng.random() < 0.2 else w), w


def make_company(rng: random.Random) -> tuple[str, str]:
    w = core(rng, 2, 2)
    return w + rng.choice(COMPANY_SUFFIXES), w


def make_dish(rng: random.Random) -> tuple[str, str]:
    w = core(rng, 2, 3).lower()
    return (f"{w} {rng.choice(DISH_NOUNS)}" if rng.random() < 0.4 else w), w


def make_state(rng: random.Random) -> tuple[str, str]:
    w = core(rng, 2, 2, STATE_SUFFIXES)
    return rng.choice(STATE_PREFIXES) + w, w


def make_title(rng: random.Random) -> tuple[str, str]:
    w = core(rng, 2, 3)
    adj, noun = rng.choice(TITLE_ADJ), rng.choice(TITLE_NOUNS)
    pattern = rng.randrange(4)
    if pattern == 0:
        return f"The {adj} {noun} of {w}", w
    if pattern == 1:
        return f"{w} and the {adj} {noun}", w
    if pattern == 2:
        return (f"{noun} for {w}" if noun.endswith("s") else f"A {noun} for {w}"), w
    return f"The {w} {noun}", w


def make_team(rng: random.Random) -> tuple[str, str]:
    w = core(rng, 2, 3)
    return f"the {w} {rng.choice(TEAM_NICKNAMES)}", w


def make_athlete(rng: random.Random) -> tuple[str, str]:
    w = core(rng, 2, 3, SURNAME_SUFFIXES)
    return f"{rng.choice(FIRST_NAMES)} {w}", w


MAKERS: dict[str, Maker] = {
    "capital": make_country, "language": make_country, "currency": make_country,
    "continent": make_country, "element": make_element, "landmark": make_landmark,
    "city_country": make_city, "carmaker": make_carmaker, "dish": make_dish,
    "state_capital": make_state, "company": make_company, "author": make_title,
    "team": make_team, "sport": make_athlete,
}


def invented_subjects(seed: int, n: int, banned_words: set[str], banned: Names,
                      banned_parts: tuple[str, ...]) -> dict[str, list[tuple[str, str]]]:
    """Per relation, ``n`` made-up raw subjects, each with a core word used nowhere else.

    ``banned_words``: words a core word may not be; ``banned``: names the subject may not
    contain as a whole word; ``banned_parts``: strings the core word may not contain at all
    (real one-word names of 4+ letters, so no "Heihindia").
    """
    used_cores: set[str] = set()
    used_subjects: set[str] = set()
    out: dict[str, list[tuple[str, str]]] = {}
    for rel in RELATIONS:
        rng = random.Random(f"{seed}:invented:{rel.name}")
        names: list[tuple[str, str]] = []
        tries = 0
        while len(names) < n:
            tries += 1
            if tries > 100 * n:
                raise RuntimeError(f"{rel.name}: could not invent {n} names")
            raw, word = MAKERS[rel.name](rng)
            subject = strip_article(raw)
            key = word.lower()
            if (len(key) < 4 or key in used_cores or key in banned_words
                    or subject.lower() in used_subjects
                    or banned.search(subject) is not None
                    or any(part in key for part in banned_parts)):
                continue
            used_cores.add(key)
            used_subjects.add(subject.lower())
            names.append((raw, word))
        out[rel.name] = names
    return out


def invented_fact(rel: Relation, raw: str) -> Fact:
    return Fact(rel.name, raw, strip_article(raw), render(rel.main, raw),
                tuple(render(t, raw) for t in rel.paraphrases), None, (), "invented")


# ---------------------------------------------------------------------------
# splits and requests


def components(subjects: list[str]) -> dict[str, str]:
    """Group subjects whose names overlap as whole words; map each to its group's smallest name."""
    parent = {s: s for s in subjects}

    def find(s: str) -> str:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    for i, a in enumerate(subjects):
        for b in subjects[i + 1:]:
            if overlaps(a, b):
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    return {s: find(s) for s in subjects}


def split_subjects(facts: list[Fact], seed: int) -> dict[str, str]:
    """subject -> "train" | "val"; overlapping subjects share a split."""
    subjects = sorted({f.subject for f in facts})
    group = components(subjects)
    groups = sorted(set(group.values()), key=lambda g: order_key(seed, g))
    n_val = round(VAL_SHARE * len(groups))
    val_groups = set(groups[:n_val])
    return {s: ("val" if group[s] in val_groups else "train") for s in subjects}


def reserve(facts: list[Fact], seed: int) -> set[str]:
    """Subjects used only in locality prompts: max(1, share) of every relation's subjects."""
    by_rel: dict[str, list[str]] = defaultdict(list)
    for f in facts:
        by_rel[f.relation].append(f.subject)
    return reserve_per_relation(by_rel, seed, NEIGHBOR_SHARE, 1)


def build_split(name: str, real: list[Fact], invented: list[Fact], seed: int,
                objects: dict[str, list[str]], spellings: dict[str, dict[str, list[str]]],
                ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    reserved = reserve(real, seed)
    edited_real = [f for f in real if f.subject not in reserved]
    # case-sensitive between real subjects: the carmaker "SEAT" is not "The seat of ..."
    edited_names = Names((f.subject for f in edited_real), ignore_case=False)
    pool: list[Fact] = []
    excluded = []
    for f in real:
        if f.subject not in reserved:
            continue
        if any(edited_names.search(t) is not None for t in (f.prompt, *f.paraphrases)):
            excluded.append(f)
        else:
            pool.append(f)
    if not pool:
        raise ValueError(f"{name}: empty locality pool")

    forms = {rel: {o: {normalize(s) for s in spells} for o, spells in table.items()}
             for rel, table in spellings.items()}
    pool_forms = [{normalize(s) for s in n.spellings} for n in pool]
    rows: list[dict[str, Any]] = []
    for f in [*edited_real, *invented]:
        rel = f.relation
        base = f"{rel}-{f.source}-{slug(f.subject)}"
        rng = random.Random(f"{seed}:{name}:{base}")
        truth = {normalize(s) for s in f.spellings}
        choices = [o for o in objects[rel] if not forms[rel][o] & truth]
        k = REQUESTS_PER_REAL if f.source != "invented" else 1
        unrelated = [i for i, n in enumerate(pool) if n.subject != f.subject and not any(
            mentions(t, f.subject, ignore_case=False) for t in (n.prompt, *n.paraphrases))]
        for j, target_new in enumerate(rng.sample(choices, k), start=1):
            new_forms = forms[rel][target_new]
            eligible = [pool[i] for i in unrelated if not pool_forms[i] & new_forms]
            same = [n for n in eligible if n.relation == rel]
            other = [n for n in eligible if n.relation != rel]
            n_nb = rng.choice(NEIGHBOR_COUNTS)
            n_same = min(len(same), n_nb - 1) if other else min(len(same), n_nb)
            neighbors = rng.sample(same, n_same) + rng.sample(other, min(len(other), n_nb - n_same))
            if len(neighbors) < 2:
                raise ValueError(f"{base}-{j}: fewer than 2 locality prompts")
            n_para = rng.choice(PARAPHRASE_COUNTS)
            para_idx = sorted(rng.sample(range(len(f.paraphrases)), n_para))
            row: dict[str, Any] = {
                "id": f"{base}-{j}",
                "prompt": f.prompt,
                "target_new": target_new,
                "subject": f.subject,
            }
            if f.target is not None:
                row["target_true"] = f.target
            row["paraphrase_prompts"] = [f.paraphrases[i] for i in para_idx]
            row["neighborhood_prompts"] = [
                {"prompt": rng.choice((n.prompt, *n.paraphrases)), "target": n.target}
                for n in neighbors]
            rows.append(row)
    random.Random(f"{seed}:{name}:order").shuffle(rows)
    info = {"reserved": reserved, "pool": pool, "excluded": excluded,
            "edited_subjects": {f.subject for f in [*edited_real, *invented]}}
    return rows, info


# ---------------------------------------------------------------------------
# checks and report


def texts_of(row: dict[str, Any]) -> list[str]:
    return [row["prompt"], *row["paraphrase_prompts"],
            *(n["prompt"] for n in row["neighborhood_prompts"])]


def subjects_of(row: dict[str, Any], subject_of_prompt: dict[str, str]) -> set[str]:
    """The edited subject and the subjects of the locality prompts."""
    return {row["subject"], *(subject_of_prompt[n["prompt"]] for n in row["neighborhood_prompts"])}


def check_disjoint(splits: dict[str, list[dict[str, Any]]], eval_subjects: set[str],
                   subject_of_prompt: dict[str, str]) -> dict[str, set[str]]:
    """Assert: no evaluation subject (or a mention of one) anywhere; train and val share none."""
    eval_names = Names(eval_subjects)
    used: dict[str, set[str]] = {}
    for name, rows in splits.items():
        subjects: set[str] = set()
        for r in rows:
            subs = subjects_of(r, subject_of_prompt)
            assert not subs & eval_subjects, (name, r["id"], subs & eval_subjects)
            for text in texts_of(r):
                hit = eval_names.search(text)
                assert hit is None, (name, r["id"], text, hit)
            assert r["subject"] in r["prompt"] and all(r["subject"] in p
                                                       for p in r["paraphrase_prompts"])
            assert normalize(r["target_new"]) != normalize(r.get("target_true") or "")
            assert 1 <= len(r["paraphrase_prompts"]) <= 3
            assert 2 <= len(r["neighborhood_prompts"]) <= 3
            subjects |= subs
        used[name] = subjects
    train, val = used["train"], used["val"]
    assert not train & val, sorted(train & val)
    # case-sensitive here: the carmaker "SEAT" is not "The seat of the national government"
    val_names, train_names = Names(val, ignore_case=False), Names(train, ignore_case=False)
    for r in splits["train"]:
        assert all(val_names.search(t) is None for t in texts_of(r)), r["id"]
    for r in splits["val"]:
        assert all(train_names.search(t) is None for t in texts_of(r)), r["id"]
    ids = Counter(r["id"] for rows in splits.values() for r in rows)
    assert all(n == 1 for n in ids.values()), [i for i, n in ids.items() if n > 1]
    return used


def check_records(path: Path) -> int:
    """Validate with editkit's loader when it is importable."""
    try:
        from editkit.requests import load_requests
    except ImportError as exc:
        print(f"  (editkit.requests not importable: {exc}; loader check skipped)")
        return len(read_jsonl(path))
    return len(load_requests(path))


def source_of(row: dict[str, Any]) -> str:
    return str(row["id"].split("-")[1])


def relation_of(row: dict[str, Any]) -> str:
    return str(row["id"].split("-", 1)[0])


def report(splits: dict[str, list[dict[str, Any]]]) -> None:
    header = f"{'relation':<14}" + "".join(
        f" {name + '/' + src:>16}" for name in splits for src in SOURCES)
    print(header)
    counts = {name: Counter((relation_of(r), source_of(r)) for r in rows)
              for name, rows in splits.items()}
    for rel in RELATIONS:
        print(f"{rel.name:<14}" + "".join(
            f" {counts[name][(rel.name, src)]:>16}" for name in splits for src in SOURCES))
    print(f"{'total':<14}" + "".join(
        f" {sum(n for (_, s), n in counts[name].items() if s == src):>16}"
        for name in splits for src in SOURCES))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--facts", type=Path, default=DATA / "facts.jsonl")
    ap.add_argument("--rejected", type=Path, default=DATA / "facts_rejected.jsonl")
    ap.add_argument("--eval", type=Path, nargs="+",
                    default=[DATA / "counterfact.jsonl", DATA / "demo.jsonl"],
                    help="evaluation edit sets whose subjects are kept out")
    ap.add_argument("--train-out", type=Path, default=DATA / "mend_train.jsonl")
    ap.add_argument("--val-out", type=Path, default=DATA / "mend_val.jsonl")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()

    objects, spellings = object_table()
    facts = real_facts(read_jsonl(args.facts), read_jsonl(args.rejected))
    eval_subjects = evaluation_subjects(args.eval, facts)
    eval_names = Names(eval_subjects)

    available, entangled = [], set()
    for f in facts:
        if f.subject in eval_subjects:
            continue
        if any(eval_names.search(t) for t in (f.subject, f.prompt, *f.paraphrases)) or any(
                overlaps(f.subject, e) for e in eval_subjects):
            entangled.add(f.subject)
            continue
        available.append(f)
    print(f"{len(facts)} candidate facts; {len(eval_subjects)} evaluation subjects; "
          f"{len(available)} facts ({len({f.subject for f in available})} subjects) available; "
          f"left out as overlapping an evaluation subject: {sorted(entangled)}")

    # invented names: core words unused by any candidate, template or object
    real_words: set[str] = set()
    for rel in RELATIONS:
        for text in (rel.main, *rel.paraphrases, *(s for _, s in rel.facts),
                     *(raw for raw, _ in rel.facts)):
            real_words |= {w.lower() for w in re.findall(r"\w+", text)}
    real_names = Names([f.subject for f in facts]
                            + [s for rel in RELATIONS for _, spec in rel.facts
                               for s in spec.split("|")])
    real_parts = tuple(sorted({w for w in real_words if len(w) >= 4 and w.isalpha()}))
    names = invented_subjects(args.seed, INVENTED_TRAIN + INVENTED_VAL, real_words, real_names,
                              real_parts)

    split_of = split_subjects(available, args.seed)
    splits: dict[str, list[dict[str, Any]]] = {}
    infos: dict[str, dict[str, Any]] = {}
    for name in ("train", "val"):
        real = [f for f in available if split_of[f.subject] == name]
        invented = []
        for rel in RELATIONS:
            chosen = names[rel.name][:INVENTED_VAL] if name == "val" \
                else names[rel.name][INVENTED_VAL:]
            invented += [invented_fact(rel, raw) for raw, _ in chosen]
        splits[name], infos[name] = build_split(name, real, invented, args.seed, objects,
                                                spellings)

    subject_of_prompt: dict[str, str] = {}
    for f in facts:
        for text in (f.prompt, *f.paraphrases):
            assert subject_of_prompt.setdefault(text, f.subject) == f.subject, text
    used = check_disjoint(splits, eval_subjects, subject_of_prompt)

    paths = {"train": args.train_out, "val": args.val_out}
    for name, rows in splits.items():
        size = sum(len(json.dumps(r, ensure_ascii=False).encode()) + 1 for r in rows)
        assert size < MAX_BYTES, (name, size)
        write_jsonl(paths[name], rows)

    for name, info in infos.items():
        print(f"{name}: {len(splits[name])} requests, {len(info['edited_subjects'])} edited "
              f"subjects, {len(used[name])} subjects in all; locality pool {len(info['pool'])} "
              f"facts of {len(info['reserved'])} reserved subjects"
              + (f" ({len(info['excluded'])} left out: prompt mentions an edited subject)"
                 if info["excluded"] else ""))
    report(splits)
    print("disjointness: no evaluation subject as a subject, locality subject or whole-word "
          "mention; train and val share no subject: OK")
    for path in paths.values():
        size = path.stat().st_size
        print(f"validated {path.name}: {check_records(path)} requests, {size / 1e6:.2f} MB")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
