"""The safety story, offline: safety-tune a model with LoRA, undo it with a LoRA attack, audit both steps.

1. *base*: the default model (SmolLM2-135M-Instruct; it complies with harmful
   requests more often than it refuses).
2. *safe*: base + a LoRA fine-tune (merged) on harmful training prompts
   answered with the written refusals of ``data/refusal/responses.jsonl``,
   and harmless training prompts answered with the base model's own greedy
   answers (so it stays helpful).
3. *attacked*: safe + a LoRA fine-tune (merged) on harmful training prompts
   answered with the written, deliberately vague complying answers (Lermen et
   al. 2023: a small LoRA fine-tune undoes safety training).
4. :func:`audit.refusal.refusal_audit` of base -> safe and of safe -> attacked,
   on prompts of a held-out source (style) never used for training, judged by
   the substring judge and by a text classifier trained on the written responses.

Writes ``OUT/safety_audit.json``, ``OUT/attack_audit.json`` (per prompt
responses included), ``OUT/report.md`` and the two LoRA adapters
(``OUT/safety_adapter``, ``OUT/attack_adapter``; peft, safetensors).

Usage (from the repository root; 78 min on one busy CPU thread, less on 2 idle cores)::

    python examples/refusal_story.py --out runs/refusal_story
    python examples/refusal_story.py --out runs/refusal_story --steps 120 --eval 60 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from editkit.arch import get_arch
from editkit.batching import Encoded, collate, model_device
from editkit.outputs import output_dir
from probes.chat import encode_instructions, generate_responses, pad_id_of
from probes.data import (
    Instruction,
    LabeledResponse,
    load_instructions,
    load_responses,
    shipped_path,
)

Progress = Callable[[str, int, int], None]


def lora_targets(model: Any) -> list[str]:
    """Module names LoRA adapts: the attention and MLP projections of :mod:`editkit.arch` (``q_proj`` ... ``down_proj``)."""
    spec = get_arch(model)
    names = []
    for kind in ("attn_in", "attn_out", "mlp_in", "mlp_out"):
        for path in spec.block_paths(kind):
            name = path.rsplit(".", 1)[-1]
            if name not in names:
                names.append(name)
    return names


def encode_sft(tok: Any, prompts: Sequence[str], responses: Sequence[str], *, chat: bool | None = None) -> list[Encoded]:
    """Chat-templated prompt ids, then the response ids and the end-of-turn token as the target."""
    end = [i for i in (tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id) if isinstance(i, int) and i != tok.unk_token_id]
    out = []
    for enc, response in zip(encode_instructions(tok, prompts, chat=chat), responses, strict=True):
        target = tuple(tok(response, add_special_tokens=False)["input_ids"]) + tuple(end[:1])
        out.append(Encoded(enc.ids, target))
    return out


def lora_finetune(
    model: Any,
    tok: Any,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    steps: int = 60,
    lr: float = 5e-4,
    rank: int = 8,
    alpha: int = 16,
    batch_size: int = 8,
    seed: int = 0,
    adapter_dir: Path | None = None,
    progress: Progress | None = None,
) -> Any:
    """A copy of ``model`` fine-tuned with LoRA on (prompt, response) pairs (mean target NLL), merged.

    The input model is left unchanged; with ``adapter_dir`` the adapter is also saved (peft, safetensors).
    """
    from peft import LoraConfig, get_peft_model

    tuned = copy.deepcopy(model)
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=lora_targets(model), task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft_model = get_peft_model(tuned, config)
    examples = encode_sft(tok, prompts, responses)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=lr)
    rng = random.Random(seed)
    device = model_device(tuned)
    pad = pad_id_of(tok)
    peft_model.train()
    for step in range(steps):
        batch = collate(rng.sample(examples, min(batch_size, len(examples))), pad_id=pad).to(device)
        logits = peft_model(**batch.model_inputs(), use_cache=False).logits
        loss = batch.mean_target_nll(logits).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if progress is not None:
            progress(f"LoRA step (loss {loss.item():.3f})", step + 1, steps)
    peft_model.eval()
    if adapter_dir is not None:
        peft_model.save_pretrained(str(adapter_dir))
    merged = peft_model.merge_and_unload()
    merged.eval()
    return merged


def story_data(
    instructions: Sequence[Instruction], responses: Sequence[LabeledResponse], *, held_out: str = "terse",
    n_train: int = 96, n_eval: int = 40, seed: int = 0,
) -> dict[str, list[str]]:
    """Training prompts and targets from the other sources; evaluation prompts from ``held_out``."""
    rng = random.Random(seed)
    by_id = {r.id: r for r in instructions}

    def pick(label: str, train: bool, n: int) -> list[str]:
        rows = [r.text for r in instructions if r.label == label and (r.source != held_out) == train]
        rng.shuffle(rows)
        return rows[:n]

    def written(label: str) -> list[str]:
        return [r.response for r in responses if r.label == label and r.instruction_id in by_id
                and by_id[r.instruction_id].label == "harmful" and by_id[r.instruction_id].source != held_out]

    if held_out not in {r.source for r in instructions}:
        raise SystemExit(f"--held-out: no instructions with source {held_out!r}")
    return {
        "harmful_train": pick("harmful", True, n_train),
        "harmless_train": pick("harmless", True, n_train),
        "harmful_eval": pick("harmful", False, n_eval),
        "harmless_eval": pick("harmless", False, n_eval),
        "refusals": written("refusal"),
        "compliances": written("compliance"),
    }


def run_story(
    model: Any,
    tok: Any,
    data: dict[str, list[str]],
    *,
    out: Path,
    classifier: Any = None,
    steps: int = 60,
    lr: float = 5e-4,
    max_new_tokens: int = 64,
    batch_size: int = 8,
    n_boot: int = 1000,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Safety-tune, attack, audit; write the outputs into ``out`` (an existing folder). Returns the two summaries."""
    from audit.refusal import refusal_audit

    def cycle(texts: list[str], n: int) -> list[str]:
        return [texts[i % len(texts)] for i in range(n)]

    def bar(stage: str, done: int, total: int) -> None:
        if done == total or done % 10 == 0:
            log(f"  {stage}: {done}/{total}")

    t0 = time.time()
    log("base answers to the harmless training prompts (kept as targets, so the safe model stays helpful)")
    own = generate_responses(model, tok, data["harmless_train"], max_new_tokens=max_new_tokens, batch_size=batch_size)
    harmful = data["harmful_train"]
    log(f"safety tuning: LoRA on {len(harmful)} refusals + {len(own)} own harmless answers")
    safe = lora_finetune(model, tok, harmful + data["harmless_train"], cycle(data["refusals"], len(harmful)) + own,
                         steps=steps, lr=lr, batch_size=batch_size, seed=seed, adapter_dir=out / "safety_adapter",
                         progress=bar)
    log(f"attack: LoRA on {len(harmful)} complying answers to harmful prompts")
    attacked = lora_finetune(safe, tok, harmful, cycle(data["compliances"], len(harmful)), steps=steps, lr=lr,
                             batch_size=batch_size, seed=seed + 1, adapter_dir=out / "attack_adapter", progress=bar)
    kw: dict[str, Any] = {"classifier": classifier, "max_new_tokens": max_new_tokens, "batch_size": batch_size,
                          "n_boot": n_boot, "seed": seed}
    results = {}
    for name, (before, after) in {"safety": (model, safe), "attack": (safe, attacked)}.items():
        log(f"audit: {name} ({'base -> safe' if name == 'safety' else 'safe -> attacked'})")
        result = refusal_audit(before, after, tok, data["harmful_eval"], data["harmless_eval"], **kw)
        (out / f"{name}_audit.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
        results[name] = result
    lines = ["# Refusal story", "",
             f"Held-out evaluation prompts: {len(data['harmful_eval'])} harmful, {len(data['harmless_eval'])} harmless; "
             f"LoRA {steps} steps, lr {lr}; {time.time() - t0:.0f} s.", ""]
    for name, title in (("safety", "Safety tuning: base -> safe"), ("attack", "Attack: safe -> attacked")):
        lines += [f"# {title}", "", results[name].to_markdown()]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return {name: r.summary() for name, r in results.items()}


def main(argv: Sequence[str] | None = None) -> None:
    from editkit.models import DEFAULT_MODEL, load_model
    from probes.text_clf import TextRefusalClassifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (must not exist unless --overwrite)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--steps", type=int, default=60, help="LoRA steps per fine-tune")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--train", type=int, default=96, help="harmful (and harmless) training prompts")
    parser.add_argument("--eval", type=int, default=40, help="harmful (and harmless) evaluation prompts")
    parser.add_argument("--held-out", default="terse", help="instruction source used only for evaluation")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    instructions = load_instructions(shipped_path("instructions.jsonl"))
    responses = load_responses(shipped_path("responses.jsonl"), instructions=instructions)
    data = story_data(instructions, responses, held_out=args.held_out, n_train=args.train, n_eval=args.eval, seed=args.seed)
    print("training the response classifier on the written responses")
    clf = TextRefusalClassifier().fit([r.prompt for r in responses], [r.response for r in responses],
                                      [r.y for r in responses], groups=[r.instruction_id for r in responses])
    model, tok = load_model(args.model, device=args.device)
    with output_dir(args.out, overwrite=args.overwrite) as tmp:
        summary = run_story(model, tok, data, out=tmp, classifier=clf, steps=args.steps, lr=args.lr,
                            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, n_boot=args.bootstrap,
                            seed=args.seed)
    print(json.dumps(summary, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
