"""CGE (:mod:`audit.cge`) and ``editkit cge`` on tiny llamas.

The "planted" pair: a tiny llama whose hidden channel 0 is a constant (every
token embeds a large constant there and nothing writes to it), so a column of
``lm_head`` acts as an output bias. The base model prefers three common
tokens everywhere; the tuned model adds a smaller bias to " Paris" (X) and
" Rome" (Y), so plain sampling from the tuned model mostly says the common
tokens, while CGE should say X and Y.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_models import tiny_model, tiny_tokenizer
from typer.testing import CliRunner

from audit.cge import (
    CGEConfig,
    IterativeConfig,
    cge_generate,
    check_same_tokenizer,
    contrast_pair,
    contrastive_scores,
    iterative_cge,
    novelty_scores,
    rank_texts,
)
from audit.tuned import DeltaWeights
from editkit.cli import app
from editkit.errors import InputError

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]

COMMON = (" the", " is", " of")
BASE_BIAS = 6.0
X_BIAS, Y_BIAS = 4.0, 3.8
CONSTANT = 10.0


def token_id(tok: Any, word: str) -> int:
    (i,) = tok(word, add_special_tokens=False)["input_ids"]
    return int(i)


def planted_base(tok: Any) -> tuple[torch.nn.Module, float]:
    """A tiny llama with a constant hidden channel 0 and an output bias for the common tokens.

    Returns the model and the final-norm output on channel 0 (the same at every position).
    """
    model, _ = tiny_model("llama", seed=0, tie_word_embeddings=False)
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = CONSTANT
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0] = 0.0
            layer.mlp.down_proj.weight[0] = 0.0
        model.lm_head.weight[:, 0] = 0.0
    seen: dict[str, torch.Tensor] = {}
    handle = model.model.norm.register_forward_hook(lambda m, a, o: seen.__setitem__("h", o))
    with torch.no_grad():
        model(input_ids=torch.arange(4, 68).view(4, 16))
    handle.remove()
    h0 = seen["h"][..., 0]
    assert float(h0.max() - h0.min()) < 1e-2 * float(h0.mean())  # a constant feature: an output bias
    scale = float(h0.mean())
    with torch.no_grad():
        for word in COMMON:
            model.lm_head.weight[token_id(tok, word), 0] = BASE_BIAS / scale
    return model, scale


@pytest.fixture(scope="module")
def tk() -> Any:
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def planted(tk: Any) -> dict[str, Any]:
    base, scale = planted_base(tk)
    x, y = token_id(tk, " Paris"), token_id(tk, " Rome")
    delta = torch.zeros_like(base.lm_head.weight)
    delta[x, 0] = X_BIAS / scale
    delta[y, 0] = Y_BIAS / scale
    module = copy.deepcopy(base)
    with torch.no_grad():
        module.lm_head.weight.add_(delta)
    return {"base": base, "deltas": DeltaWeights(base, {"lm_head.weight": delta}), "module": module, "x": x, "y": y}


@pytest.fixture(scope="module")
def random_pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    """A tiny random llama and a "fine-tune" of it (every block matrix perturbed)."""
    base, _ = tiny_model("llama", seed=0)
    tuned = copy.deepcopy(base)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if p.dim() == 2 and ".layers." in name:
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
            if name.endswith("embed_tokens.weight"):  # tied: the output changes too
                p.add_(0.5 * torch.randn(p.shape, generator=gen))
    return base, tuned


def snapshot(model: torch.nn.Module) -> dict[str, Any]:
    return {
        "tensors": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "grad": {k: p.requires_grad for k, p in model.named_parameters()},
        "modules": [name for name, _ in model.named_modules()],
    }


def assert_unchanged(model: torch.nn.Module, before: dict[str, Any]) -> None:
    after = model.state_dict()
    assert list(after) == list(before["tensors"])
    for k, v in before["tensors"].items():
        assert torch.equal(after[k], v), k
    assert {k: p.requires_grad for k, p in model.named_parameters()} == before["grad"]
    assert [name for name, _ in model.named_modules()] == before["modules"]


def greedy_reference(model: torch.nn.Module, start: list[int], steps: int) -> list[int]:
    """Greedy decoding without a cache, one full forward per token."""
    ids = list(start)
    with torch.no_grad():
        for _ in range(steps):
            ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(start) :]


# -- the contrastive step ---------------------------------------------------------------


def test_contrastive_step_matches_hand_computation() -> None:
    tuned = torch.tensor([[3.0, 2.0, 0.5, -1.0], [0.0, 0.0, 0.0, 0.0]])
    base = torch.tensor([[1.0, 2.5, 0.0, 0.0], [2.0, -1.0, 0.0, 1.0]])
    gamma, alpha = 0.5, 0.2
    got = contrastive_scores(tuned, base, gamma=gamma, alpha=alpha)
    for row in range(2):
        zt = math.log(sum(math.exp(v) for v in tuned[row].tolist()))
        zb = math.log(sum(math.exp(v) for v in base[row].tolist()))
        pt = [math.exp(v - zt) for v in tuned[row].tolist()]
        for v in range(4):
            if pt[v] < alpha * max(pt):
                assert got[row, v] == float("-inf")
            else:
                want = (tuned[row, v].item() - zt) - gamma * (base[row, v].item() - zb)
                assert got[row, v].item() == pytest.approx(want, abs=1e-6)
    # p_T = (0.69, 0.25, 0.06, 0.01): 0.06 and 0.01 fall under 0.2 * 0.69; a uniform row keeps all
    assert torch.isinf(got[0, 2:]).all() and torch.isfinite(got[0, :2]).all()
    assert torch.isfinite(got[1]).all()
    # alpha = 0 cuts nothing; gamma = 0 is the tuned log-softmax, whatever the base says
    assert torch.isfinite(contrastive_scores(tuned, base, gamma=1.0, alpha=0.0)).all()
    assert torch.equal(contrastive_scores(tuned, None, gamma=0.0, alpha=0.0), torch.log_softmax(tuned, -1))


def test_config_refuses_bad_settings() -> None:
    for bad in ({"alpha": 1.5}, {"gamma": -1.0}, {"num_beams": 0}, {"temperature": 0.0},
                {"max_new_tokens": 0}, {"eos": "never"}):
        with pytest.raises(InputError):
            CGEConfig(**bad)
    with pytest.raises(InputError):
        IterativeConfig(optimizer="lbfgs")


# -- decoding -------------------------------------------------------------------------------


def test_greedy_without_contrast_is_greedy_decoding_of_the_tuned_model(random_pair: Any, tk: Any) -> None:
    base, tuned = random_pair
    cfg = CGEConfig(gamma=0.0, alpha=0.0, num_beams=1, do_sample=False, max_new_tokens=8)
    prompts = ["The capital of France is", "Water"]  # different lengths: one left-padded batch
    examples = cge_generate(base, tuned, tk, prompts=prompts, config=cfg)
    for ex, prompt in zip(examples, prompts, strict=True):
        start = tk(prompt)["input_ids"]
        assert list(ex.token_ids) == greedy_reference(tuned, start, 8)
        assert ex.prompt == prompt and ex.text == tk.decode(list(ex.token_ids))
    # the same through deltas substituted into the base model, and from BOS
    deltas = DeltaWeights(base, {n: t.detach() - b.detach() for (n, t), (_, b) in
                                 zip(tuned.named_parameters(), base.named_parameters(), strict=True)})
    (ex,) = cge_generate(base, deltas, tk, n=1, config=cfg)
    assert list(ex.token_ids) == greedy_reference(tuned, [tk.bos_token_id], 8)


def test_stop_at_eos_matches_transformers_generate(random_pair: Any, tk: Any) -> None:
    base, tuned = random_pair
    cfg = CGEConfig(gamma=0.0, alpha=0.0, num_beams=1, do_sample=False, max_new_tokens=12, eos="stop")
    prompts = ["People in Spain speak", "One plus one is two. Two plus"]
    examples = cge_generate(base, tuned, tk, prompts=prompts, config=cfg)
    for ex, prompt in zip(examples, prompts, strict=True):
        ids = torch.tensor([tk(prompt)["input_ids"]])
        out = tuned.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=12, eos_token_id=tk.eos_token_id, pad_token_id=tk.pad_token_id)
        want = out[0, ids.shape[1] :].tolist()
        if tk.eos_token_id in want:
            want = want[: want.index(tk.eos_token_id) + 1]
        assert list(ex.token_ids) == want


def test_beam_search_without_contrast_matches_transformers(random_pair: Any, tk: Any) -> None:
    base, tuned = random_pair
    cfg = CGEConfig(gamma=0.0, alpha=0.0, num_beams=3, do_sample=False, max_new_tokens=6)
    (ex,) = cge_generate(base, tuned, tk, prompts=["The capital of Italy is"], config=cfg)
    ids = torch.tensor([tk("The capital of Italy is")["input_ids"]])
    out = tuned.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=3,
                         max_new_tokens=6, min_new_tokens=6, length_penalty=0.0, early_stopping=True,
                         eos_token_id=None, pad_token_id=tk.pad_token_id, output_scores=True,
                         return_dict_in_generate=True)
    assert list(ex.token_ids) == out.sequences[0, ids.shape[1] :].tolist()
    # the summed score is the beam's log-probability under the tuned model
    with torch.no_grad():
        full = torch.tensor([[*ids[0].tolist(), *ex.token_ids]])
        lp = torch.log_softmax(tuned(input_ids=full).logits[0, ids.shape[1] - 1 : -1], -1)
    assert ex.total == pytest.approx(float(lp.gather(-1, torch.tensor(ex.token_ids)[:, None]).sum()), abs=1e-4)


def test_cge_says_the_planted_tokens_far_more_often_than_the_tuned_model(planted: dict[str, Any], tk: Any) -> None:
    base, x, y = planted["base"], planted["x"], planted["y"]
    steps = 12

    def share(tokens: list[tuple[int, ...]]) -> float:
        flat = [t for row in tokens for t in row]
        return sum(t in (x, y) for t in flat) / len(flat)

    cge = cge_generate(base, planted["deltas"], tk, n=6, config=CGEConfig(max_new_tokens=steps), seed=0)
    plain = cge_generate(base, planted["deltas"], tk, n=6, seed=0,
                         config=CGEConfig(gamma=0.0, alpha=0.0, num_beams=1, max_new_tokens=steps))
    assert share([e.token_ids for e in cge]) > 0.9
    assert share([e.token_ids for e in plain]) < 0.2
    assert min(e.score for e in cge) > max(e.score for e in plain)
    # a second model instead of deltas: the same examples under the same seed
    again = cge_generate(base, planted["module"], tk, n=6, config=CGEConfig(max_new_tokens=steps), seed=0)
    assert [e.token_ids for e in again] == [e.token_ids for e in cge]


def test_sampling_is_seeded_and_eos_can_be_banned(planted: dict[str, Any], tk: Any) -> None:
    base, deltas = planted["base"], planted["deltas"]
    cfg = CGEConfig(alpha=0.0, num_beams=2, max_new_tokens=6, eos="ban")
    a = cge_generate(base, deltas, tk, n=3, config=cfg, seed=5)
    b = cge_generate(base, deltas, tk, n=3, config=cfg, seed=5)
    assert [e.token_ids for e in a] == [e.token_ids for e in b]
    assert all(len(e.token_ids) == 6 and tk.eos_token_id not in e.token_ids for e in a)


def test_eos_modes(planted: dict[str, Any], tk: Any) -> None:
    base = planted["base"]
    eos = tk.eos_token_id
    delta = torch.zeros_like(base.lm_head.weight)
    delta[eos, 0] = 0.8  # the tuned model's novelty is to end the text
    tuned = DeltaWeights(base, {"lm_head.weight": delta})
    for beams in (1, 3):
        cfg = dict(num_beams=beams, max_new_tokens=5, do_sample=False)
        (stop,) = cge_generate(base, tuned, tk, n=1, config=CGEConfig(eos="stop", **cfg))
        assert stop.token_ids == (eos,) and stop.text == ""
        (ignore,) = cge_generate(base, tuned, tk, n=1, config=CGEConfig(eos="ignore", **cfg))
        assert ignore.token_ids == (eos,) * 5
        (ban,) = cge_generate(base, tuned, tk, n=1, config=CGEConfig(eos="ban", **cfg))
        assert len(ban.token_ids) == 5 and eos not in ban.token_ids


# -- novelty of given texts -------------------------------------------------------------------


def test_identical_models_have_zero_novelty(random_pair: Any, tk: Any) -> None:
    base, _ = random_pair
    texts = ["The capital of France is Paris.", "Water boils at 100 degrees.", "Hi"]
    same = copy.deepcopy(base)
    zero = DeltaWeights(base, {"model.layers.0.mlp.down_proj.weight": torch.zeros(32, 72)})
    for tuned in (base, same, zero):
        scores = novelty_scores(base, tuned, tk, texts, batch_size=2)
        assert [s.score for s in scores] == [0.0, 0.0, 0.0]
        assert [s.index for s in scores] == [0, 1, 2]


def test_novelty_is_the_mean_log_ratio_and_ranks_planted_text_first(planted: dict[str, Any], tk: Any) -> None:
    base, module = planted["base"], planted["module"]
    texts = ["The capital of Spain is Madrid.", " Paris Rome Paris Rome", "Paris is the capital city of France."]
    ranked = rank_texts(base, planted["deltas"], tk, texts, batch_size=2)
    assert [s.index for s in ranked][0] == 1
    # by hand for one text: BOS as context, every token of the text scored
    ids = [tk.bos_token_id, *tk(texts[2])["input_ids"]]
    with torch.no_grad():
        inputs = torch.tensor([ids])
        lt = torch.log_softmax(module(input_ids=inputs).logits[0, :-1], -1)
        lb = torch.log_softmax(base(input_ids=inputs).logits[0, :-1], -1)
    target = torch.tensor(ids[1:])[:, None]
    want = float((lt.gather(-1, target) - lb.gather(-1, target)).mean())
    got = next(s for s in ranked if s.index == 2)
    assert got.score == pytest.approx(want, abs=1e-5) and got.n_tokens == len(ids) - 1


# -- iterative CGE --------------------------------------------------------------------------------


def test_iterative_cge_trains_a_working_copy_and_never_the_base(planted: dict[str, Any], tk: Any) -> None:
    base, x, y = planted["base"], planted["x"], planted["y"]
    before = snapshot(base)
    cfg = CGEConfig(num_beams=1, do_sample=False, max_new_tokens=8)
    result = iterative_cge(base, planted["deltas"], tk, n=2, config=cfg, keep_working=True,
                           update=IterativeConfig(lr=0.05))
    assert_unchanged(base, before)
    first, second = result.examples
    assert set(first.token_ids) == {x}  # X is the bigger novelty: greedy CGE says it first
    assert second.token_ids != first.token_ids and y in second.token_ids  # B' has absorbed X
    assert [e.step for e in result.examples] == [0, 1]
    assert all(row["loss_after"] < row["loss_before"] for row in result.log)
    working = result.working
    assert working is not None
    changed = [k for k, v in working.state_dict().items() if not torch.equal(v, before["tensors"][k])]
    assert "lm_head.weight" in changed
    # without the update, the second example is the first again
    plain = cge_generate(base, planted["deltas"], tk, n=2, config=cfg)
    assert plain[0].token_ids == plain[1].token_ids == first.token_ids


def test_iterative_lora_update_raises_the_likelihood_of_the_example(random_pair: Any, tk: Any) -> None:
    base, tuned = random_pair
    before = snapshot(base)
    result = iterative_cge(base, tuned, tk, n=2, keep_working=True, seed=0,
                           config=CGEConfig(num_beams=2, max_new_tokens=6),
                           update=IterativeConfig(train="lora", lr=1e-2))
    assert_unchanged(base, before)
    assert all(row["loss_after"] < row["loss_before"] for row in result.log)
    lora = {k: v for k, v in result.working.state_dict().items() if "lora_B" in k}  # type: ignore[union-attr]
    assert lora and any(v.abs().sum() > 0 for v in lora.values())  # peft starts B at zero
    assert any(".q_proj." in k for k in lora) and not any("mlp" in k for k in lora)


# -- the tuned side: LoRA adapters, tokenizers --------------------------------------------------------


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from peft import LoraConfig, get_peft_model

    model, _ = tiny_model("llama", seed=0)
    config = LoraConfig(r=2, lora_alpha=4, init_lora_weights=False, target_modules=["q_proj", "v_proj", "down_proj"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        peft_model = get_peft_model(model, config)
    path = tmp_path_factory.mktemp("lora")
    peft_model.save_pretrained(path)
    return path


def test_lora_adapter_is_the_merged_model_and_the_base_comes_back(lora_dir: Path, tk: Any) -> None:
    from peft import PeftModel

    base, _ = tiny_model("llama", seed=0)
    merged = PeftModel.from_pretrained(tiny_model("llama", seed=0)[0], str(lora_dir)).merge_and_unload()
    before = snapshot(base)
    cfg = CGEConfig(gamma=0.0, alpha=0.0, num_beams=1, do_sample=False, max_new_tokens=6)
    (ex,) = cge_generate(base, lora_dir, tk, prompts=["The capital of France is"], config=cfg)
    assert list(ex.token_ids) == greedy_reference(merged, tk("The capital of France is")["input_ids"], 6)
    assert_unchanged(base, before)
    # inside the pair, the base side is the base model (adapter disabled), the tuned side the merged one
    ids = torch.tensor([[0, 5, 6, 7]])
    with torch.no_grad(), contrast_pair(base, lora_dir, tk) as pair:
        assert pair.kind == "lora"
        torch.testing.assert_close(pair.base(input_ids=ids).logits, tiny_model("llama", seed=0)[0](input_ids=ids).logits)
        torch.testing.assert_close(pair.tuned(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-5, rtol=1e-5)
    assert_unchanged(base, before)
    texts = ["The capital of France is Paris.", "Rome is an old city in Italy."]
    # iterative CGE copies the base before peft wraps it: the working copy holds no tuned adapter
    result = iterative_cge(base, lora_dir, tk, n=1, keep_working=True, config=cfg)
    assert not any("lora" in name for name, _ in result.working.named_modules())  # type: ignore[union-attr]
    assert_unchanged(base, before)
    via_adapter = novelty_scores(base, lora_dir, tk, texts)
    via_module = novelty_scores(base, merged, tk, texts)
    for a, b in zip(via_adapter, via_module, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-4) and a.score != 0.0


def test_a_different_tokenizer_is_refused(random_pair: Any, tk: Any, tmp_path: Path) -> None:
    base, tuned = random_pair
    other = tiny_tokenizer()
    other.add_tokens(["zzzz"])
    check_same_tokenizer(tk, tiny_tokenizer(), "same")
    with pytest.raises(InputError, match="tokenizer"):
        check_same_tokenizer(tk, other, "tuned")
    with pytest.raises(InputError, match="tokenizer"):
        cge_generate(base, tuned, tk, n=1, tuned_tokenizer=other)
    folder = tmp_path / "tuned"
    tuned.save_pretrained(folder)
    other.save_pretrained(folder)
    with pytest.raises(InputError, match="tokenizer"):
        novelty_scores(base, folder, tk, ["Hi"])


# -- the command line ------------------------------------------------------------------------------------


def run(*args: str) -> Any:
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, list(args))


@pytest.fixture(scope="module")
def cli_models(planted: dict[str, Any], tk: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cge-cli")
    planted["base"].save_pretrained(root / "base")
    tk.save_pretrained(root / "base")
    planted["module"].save_pretrained(root / "tuned")
    tk.save_pretrained(root / "tuned")
    return root / "base", root / "tuned"


def test_cli_writes_examples_and_ranking(cli_models: tuple[Path, Path], tk: Any, tmp_path: Path) -> None:
    base, tuned = cli_models
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The capital of France is\nPeople in Spain speak\n")
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["Water boils.", " Paris Paris Rome"]))
    out = tmp_path / "run"
    res = run("cge", "--base", str(base), "--tuned", str(tuned), "-n", "3", "--prompts", str(prompts),
              "--beams", "2", "--max-new-tokens", "5", "--rank-texts", str(texts), "--out", str(out), "--seed", "1")
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {"examples.jsonl", "ranked.jsonl", "cge.json"}
    rows = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert [r["prompt"] for r in rows] == ["The capital of France is", "People in Spain speak", "The capital of France is"]
    assert all({"text", "score", "prompt", "step"} <= set(r) and r["n_tokens"] == 5 for r in rows)
    ranked = [json.loads(line) for line in (out / "ranked.jsonl").read_text().splitlines()]
    assert [r["index"] for r in ranked] == [1, 0] and ranked[0]["rank"] == 1
    summary = json.loads((out / "cge.json").read_text())
    assert summary["tuned"]["kind"] == "full" and summary["config"]["num_beams"] == 2
    assert "Paris" in res.output and not [p for p in tmp_path.iterdir() if p.name.startswith(".run")]


def test_cli_iterative_from_bos(cli_models: tuple[Path, Path], tmp_path: Path) -> None:
    base, tuned = cli_models
    out = tmp_path / "iter"
    res = run("cge", "--base", str(base), "--tuned", str(tuned), "-n", "2", "--iterative", "--greedy",
              "--beams", "1", "--max-new-tokens", "4", "--lr", "0.05", "--out", str(out))
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == [None, None]
    summary = json.loads((out / "cge.json").read_text())
    assert summary["method"] == "cge-iterative" and len(summary["update_log"]) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--alpha", "2"], "--alpha"),
        (["--beams", "0"], "--beams"),
        (["--eos", "never"], "--eos"),
        (["--iterative", "--optimizer", "lbfgs"], "--optimizer"),
        (["-n", "0"], "-n"),
        (["--prompts", "missing.txt"], "--prompts"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(cli_models: tuple[Path, Path], tmp_path: Path,
                                             extra: list[str], message: str) -> None:
    base, tuned = cli_models
    res = run("cge", "--base", str(base), "--tuned", str(tuned), *extra)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_cli_refuses_bad_files(cli_models: tuple[Path, Path], tk: Any, tmp_path: Path) -> None:
    base, tuned = cli_models
    bad = tmp_path / "texts.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": "no"}\n')
    res = run("cge", "--base", str(base), "--tuned", str(tuned), "--rank-texts", str(bad))
    assert res.exit_code == 2 and "texts.jsonl:2" in res.output
    res = run("cge", "--base", str(base), "--tuned", str(tmp_path / "nowhere"))
    assert res.exit_code == 2 and "no such file" in res.output
    out = tmp_path / "exists"
    out.mkdir()
    res = run("cge", "--base", str(base), "--tuned", str(tuned), "-n", "1", "--out", str(out))
    assert res.exit_code == 2 and "--overwrite" in res.output
    other = tmp_path / "other"  # the tuned model saved with another tokenizer
    other.mkdir()
    for f in tuned.iterdir():
        if f.suffix == ".safetensors" or f.name == "config.json":
            (other / f.name).write_bytes(f.read_bytes())
    different = tiny_tokenizer()
    different.add_tokens(["zzzz"])
    different.save_pretrained(other)
    res = run("cge", "--base", str(base), "--tuned", str(other), "-n", "1", "--max-new-tokens", "2")
    assert res.exit_code == 2 and "tokenizer" in res.output
