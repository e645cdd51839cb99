"""Benchmark: TuCo's cost against one forward of the tuned model, and CGE's decoding speed against plain sampling.

TuCo (``audit.tuco``) runs the tuned model and, at every block, the base block
on the tuned stream: about two forwards (spec: "Cost: about two forward
passes"); the library's :func:`audit.tuco.tuco` also computes OutputCo, which
needs one more forward of the base model. Measured, in one process, on the
same chat-templated prompts in the same padded batches (``--batch-size``,
batched by length as ``tuco`` does), median of ``--repeats`` interleaved runs
after ``--warmup`` ones:

- ``forward``: one forward of the tuned model (the module TuCo runs, with the
  same keyword arguments: ``use_cache=False`` and ``logits_to_keep=1``);
- ``tuco``: the TuCo decomposition of every batch (``audit.tuco.decompose``
  plus ``tuco_scores``): the number the target applies to (at most 2.3x a
  forward for a full pair, less for a LoRA pair);
- ``tuco_unshared`` (LoRA pair only): ``tuco`` with every base block
  recomputed in full, i.e. without reusing the tuned call's frozen
  ``q``/``k``/``v`` products (:class:`audit.tuco.pair.ProjectionMemo`);
- ``tuco_outputco``: ``audit.tuco.tuco`` end to end (encoding, TuCo and
  OutputCo, per-block norms).

Pairs: ``full``: the base model and a second whole model (a copy with every
block weight perturbed: a synthetic full fine-tune); ``lora``: a peft LoRA
model (rank ``--lora-rank`` on every linear layer, random nonzero factors;
TuCo's base blocks are the same blocks with adapters off).

CGE (``audit.cge.cge_generate``: two models per step, beam-sample) against plain
sampling from the tuned model (``model.generate``, ``do_sample=True`` with the
same beams, pure sampling: ``top_k=0``, ``top_p=1``) from BOS, ``--cge-n``
sequences of exactly ``--cge-tokens`` new tokens (EOS disabled on both sides):
new tokens per second and their ratio. For the LoRA pair CGE reads the adapter
from a folder: loading it is part of CGE's time, and also timed alone
(``cge_setup``: opening the contrast pair) so that the decoding speed without
it is reported too.

Usage (from the repository root):
    .venv/bin/python bench/tuco_bench.py                    # default model, CPU
    .venv/bin/python bench/tuco_bench.py --model tiny       # plumbing check on a tiny random llama
    .venv/bin/python bench/tuco_bench.py --device cuda
Results: bench/results/tuco_cge_<device>.json (device: cpu or cuda) and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from audit.cge import CGEConfig, cge_generate, contrast_pair
from audit.cge.decode import pad_and_eos, start_token
from audit.tuco import (
    PeftPair,
    TunedPair,
    decompose,
    encode_prompts,
    prompt_batch,
    tuco,
    tuco_scores,
    tuned_pair,
)
from audit.tuco.inputs import PromptBatch, pad_id_of
from audit.tuco.passes import forward_kwargs
from editkit.batching import chunks
from editkit.models import DEFAULT_MODEL, load_model
from editkit.outputs import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
TARGET_FULL = 2.3
"""TuCo's cost target for a full pair, in forwards of the tuned model (a LoRA pair: less than that)."""

PROMPTS: tuple[str, ...] = (
    "How do I boil an egg?",
    "What is the boiling point of water at sea level?",
    "Give me three tips for sleeping better.",
    "Why is the sky blue during the day but red at sunset?",
    "Write a haiku about autumn leaves.",
    "Explain what a noun is, with two examples.",
    "How do plants make food from sunlight?",
    "What should I pack for a day at the beach with children?",
    "Tell me a joke about cats.",
    "How do I change a flat tire on a bicycle?",
    "What is the difference between weather and climate?",
    "Suggest a name for a pet goldfish.",
    "How can I save money on groceries each week?",
    "What causes thunder and lightning?",
    "Write a short thank-you note to a teacher who helped me.",
    "Why do leaves change color in the fall?",
)


def load(spec: str, device: str) -> tuple[Any, Any]:
    """``(model, tokenizer)``: ``tiny`` is the unit tests' tiny random llama, ``default`` the default model."""
    if spec == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_models import tiny_model, tiny_tokenizer

        model, _ = tiny_model("llama", seed=0)
        return model.to(device), tiny_tokenizer()
    return load_model(DEFAULT_MODEL if spec == "default" else spec, device=device)


def full_tuned(base: torch.nn.Module, *, scale: float, seed: int) -> torch.nn.Module:
    """A copy of ``base`` with every decoder-block weight ``W += scale * std(W) * noise``: a synthetic full fine-tune."""
    tuned = copy.deepcopy(base)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if (".layers." in name or ".h." in name) and p.numel() > 1:
                noise = torch.randn(p.shape, generator=gen).to(p.device, p.dtype)
                p.add_(scale * p.float().std().to(p.dtype) * noise)
    return tuned


def lora_tuned(base: torch.nn.Module, *, rank: int, seed: int) -> Any:
    """A peft LoRA model on a copy of ``base``: rank ``rank`` on every linear layer, random nonzero factors."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear",
                        init_lora_weights=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = get_peft_model(copy.deepcopy(base), config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.mul_(0.1)
    model.eval()
    return model


def batches_of(tok: Any, prompts: Sequence[str], batch_size: int, device: Any) -> list[PromptBatch]:
    """The chat-templated prompts padded into batches of similar length, as :func:`audit.tuco.tuco` makes them."""
    ids = encode_prompts(tok, prompts)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    pad = pad_id_of(tok)
    return [prompt_batch([ids[i] for i in chunk], pad_id=pad).to(device) for chunk in chunks(order, batch_size)]


def _sync(device: Any) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


@torch.inference_mode()
def run_forward(pair: TunedPair, batches: Sequence[PromptBatch]) -> None:
    """One forward of the tuned model (the module TuCo hooks) per batch, with TuCo's keyword arguments."""
    with pair.tuned() as model:
        extra = forward_kwargs(model, last_logits_only=True)
        for batch in batches:
            model(**batch.model_inputs(), **extra)


class Unshared(TunedPair):
    """A LoRA pair whose base blocks recompute everything (no shared ``q``/``k``/``v`` products): the comparison."""

    kind = "peft"

    def __init__(self, pair: PeftPair) -> None:
        super().__init__(pair.model)
        self.inner = pair

    def base(self) -> Any:
        return self.inner.base()

    def base_block(self, layer: int, args: tuple[Any, ...], kwargs: dict[str, Any], call: Any = None) -> Any:
        return self.inner.base_block(layer, args, kwargs, call)


def run_tuco(pair: TunedPair, batches: Sequence[PromptBatch]) -> None:
    """TuCo of every batch: the decomposition and the score."""
    for batch in batches:
        dec = decompose(pair, batch)
        tuco_scores(dec.ptc, dec.ftc)


def timed(fn: Callable[[], Any], device: Any) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def measure(jobs: dict[str, Callable[[], Any]], *, repeats: int, warmup: int, device: Any) -> dict[str, list[float]]:
    """Seconds of each job per repeat (after ``warmup`` untimed rounds), the jobs interleaved within a round."""
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for r in range(warmup + repeats):
        for name, fn in jobs.items():
            t = timed(fn, device)
            if r >= warmup:
                times[name].append(t)
    return times


def tuco_row(name: str, base: Any, tuned: Any, tok: Any, prompts: Sequence[str], args: argparse.Namespace,
             device: Any) -> dict[str, Any]:
    pair = tuned_pair(None if name == "lora" else base, tuned)
    batches = batches_of(tok, prompts, args.batch_size, device)
    jobs = {
        "forward": lambda: run_forward(pair, batches),
        "tuco": lambda: run_tuco(pair, batches),
        "tuco_outputco": lambda: tuco(None if name == "lora" else base, pair, tok, prompts, batch_size=args.batch_size),
    }
    if isinstance(pair, PeftPair):
        jobs["tuco_unshared"] = lambda: run_tuco(Unshared(pair), batches)
    times = measure(jobs, repeats=args.repeats, warmup=args.warmup, device=device)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["tuco"] / med["forward"]
    return {
        "pair": name,
        "kind": pair.kind,
        "prompts": len(prompts),
        "tokens": int(sum(int(b.attention_mask.sum()) for b in batches)),
        "batches": len(batches),
        "seconds": med,
        "tuco_ratio": ratio,
        "tuco_outputco_ratio": med["tuco_outputco"] / med["forward"],
        "tuco_unshared_ratio": med["tuco_unshared"] / med["forward"] if "tuco_unshared" in med else None,
        "times": times,
    }


def generate_plain(model: Any, tok: Any, *, n: int, tokens: int, beams: int, seed: int, device: Any) -> None:
    """``model.generate`` from BOS: ``n`` sequences of exactly ``tokens`` new tokens, sampled with ``beams`` beams."""
    pad, eos = pad_and_eos(tok)
    ids = torch.full((n, 1), start_token(tok), dtype=torch.long, device=device)
    torch.manual_seed(seed)
    with torch.inference_mode():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, num_beams=beams,
                       max_new_tokens=tokens, min_new_tokens=tokens, top_k=0, top_p=1.0, temperature=1.0,
                       pad_token_id=pad, eos_token_id=eos)


def _open_pair(base: Any, tuned_spec: Any, tok: Any) -> None:
    """What ``cge_generate`` does before decoding: open the contrast pair (for LoRA: load the adapter)."""
    with contrast_pair(base, tuned_spec, tok):
        pass


def cge_row(name: str, base: Any, tuned_model: Any, tuned_spec: Any, tok: Any, args: argparse.Namespace,
            device: Any) -> dict[str, Any]:
    n, tokens, beams = args.cge_n, args.cge_tokens, args.cge_beams
    config = CGEConfig(num_beams=beams, max_new_tokens=tokens, eos="ignore", batch_size=n)
    jobs = {
        "plain": lambda: generate_plain(tuned_model, tok, n=n, tokens=tokens, beams=beams, seed=args.seed,
                                        device=device),
        "cge": lambda: cge_generate(base, tuned_spec, tok, n=n, config=config, seed=args.seed),
        "cge_setup": lambda: _open_pair(base, tuned_spec, tok),
    }
    times = measure(jobs, repeats=args.repeats, warmup=args.warmup, device=device)
    med = {k: statistics.median(v) for k, v in times.items()}
    new_tokens = n * tokens
    return {
        "pair": name,
        "examples": n,
        "new_tokens_each": tokens,
        "beams": beams,
        "seconds": med,
        "plain_tokens_per_s": new_tokens / med["plain"],
        "cge_tokens_per_s": new_tokens / med["cge"],
        "cge_over_plain": med["plain"] / med["cge"],
        "cge_tokens_per_s_without_setup": new_tokens / max(med["cge"] - med["cge_setup"], 1e-9),
        "times": times,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = ["| pair | tokens | forward s | TuCo s | TuCo / forward | target met | TuCo+OutputCo / forward "
             "| TuCo without shared products / forward |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["tuco"]:
        s = r["seconds"]
        met = {True: "yes", False: "no"}.get(r.get("meets_target"), "-")
        unshared = "-" if r.get("tuco_unshared_ratio") is None else f"{r['tuco_unshared_ratio']:.2f}x"
        lines.append(f"| {r['pair']} | {r['tokens']} | {s['forward']:.3f} | {s['tuco']:.3f} | "
                     f"{r['tuco_ratio']:.2f}x | {met} | {r['tuco_outputco_ratio']:.2f}x | {unshared} |")
    lines += ["", "| pair | beams | new tokens | plain tok/s | CGE tok/s | CGE / plain |", "|---|---|---|---|---|---|"]
    for r in result["cge"]:
        lines.append(f"| {r['pair']} | {r['beams']} | {r['examples']} x {r['new_tokens_each']} | "
                     f"{r['plain_tokens_per_s']:.1f} | {r['cge_tokens_per_s']:.1f} | {r['cge_over_plain']:.2f} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="default, tiny, or a zoo alias / local model folder")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n-prompts", type=int, default=16, help=f"TuCo prompts (at most {len(PROMPTS)})")
    ap.add_argument("--batch-size", type=int, default=8, help="TuCo prompts per forward")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--lora-rank", type=int, default=8)
    ap.add_argument("--full-scale", type=float, default=0.01, help="perturbation of the synthetic full fine-tune")
    ap.add_argument("--cge-n", type=int, default=4, help="sequences per generation run (default: 4)")
    ap.add_argument("--cge-tokens", type=int, default=32, help="new tokens per sequence")
    ap.add_argument("--cge-beams", type=int, default=4)
    ap.add_argument("--skip-cge", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="result JSON (default bench/results/tuco_cge_<device>.json)")
    args = ap.parse_args(argv)
    if not 1 <= args.n_prompts <= len(PROMPTS):
        ap.error(f"--n-prompts must lie in 1..{len(PROMPTS)}")
    if min(args.batch_size, args.repeats, args.lora_rank, args.cge_n, args.cge_tokens, args.cge_beams) < 1 or args.warmup < 0:
        ap.error("sizes and --repeats must be >= 1, --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    base, tok = load(args.model, args.device)
    load_s = time.perf_counter() - t0
    device = next(base.parameters()).device
    prompts = list(PROMPTS[: args.n_prompts])
    full = full_tuned(base, scale=args.full_scale, seed=args.seed)
    lora = lora_tuned(base, rank=args.lora_rank, seed=args.seed)
    print(f"TuCo timing on {len(prompts)} prompts ({args.repeats} repeats)", file=sys.stderr)
    rows = [tuco_row("full", base, full, tok, prompts, args, device),
            tuco_row("lora", base, lora, tok, prompts, args, device)]
    full_row, lora_row = rows
    full_row["target"] = f"tuco_ratio <= {TARGET_FULL}"
    full_row["meets_target"] = full_row["tuco_ratio"] <= TARGET_FULL
    lora_row["target"] = f"tuco_ratio <= {TARGET_FULL} and below the full pair's"
    lora_row["meets_target"] = lora_row["tuco_ratio"] <= TARGET_FULL and lora_row["tuco_ratio"] < full_row["tuco_ratio"]
    cge_rows: list[dict[str, Any]] = []
    if not args.skip_cge:
        print(f"CGE vs sampling: {args.cge_n} x {args.cge_tokens} tokens, {args.cge_beams} beams", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="tuco-bench-") as tmp:
            lora.save_pretrained(tmp)
            cge_rows = [cge_row("full", base, full, full, tok, args, device),
                        cge_row("lora", base, lora, Path(tmp), tok, args, device)]
    kind = "cuda" if device.type == "cuda" else "cpu"
    result = {
        "meta": {
            "command": " ".join(["python", "bench/tuco_bench.py", *(sys.argv[1:] if argv is None else argv)]),
            "date": time.strftime("%Y-%m-%d"),
            "model": args.model,
            "machine": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if kind == "cuda" else None,
            "torch": torch.__version__,
            "load_seconds": load_s,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "lora_rank": args.lora_rank,
            "full_scale": args.full_scale,
        },
        "tuco": rows,
        "cge": cge_rows,
    }
    out = args.out or ROOT / "bench" / "results" / f"tuco_cge_{kind}.json"
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nwritten to {out}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
