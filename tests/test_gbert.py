"""GBERT ([P] App. H): whole-word masking, bidirectional attention that survives save/reload,
the mask-filling QA evaluator, and a tiny MLM pretraining + LoRA finetune + probe end to end."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from knowlab.config import from_dict
from knowlab.data.dataset import Dataset
from knowlab.errors import KnowlabError
from knowlab.eval.mlm_qa import fill_masks, score_fills
from knowlab.eval.scorers import Generation, MaskFilling, scorer_for
from knowlab.models.presets import ModelConfig, build_model
from knowlab.models.runtime import is_bidirectional
from knowlab.train.config import PretrainConfig
from knowlab.train.mlm import (
    WholeWordMasker, check_bidirectional, mask_answers, step_generator,
)

SHAPE = {"size": "custom", "n_layer": 2, "n_head": 2, "n_embd": 32, "context": 64}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _windows(ds: Dataset, width: int = 128) -> torch.Tensor:
    """The bios joined by EOS, as in pretraining, cut into rows."""
    eos = ds.tokenizer.eos_token_id
    flat = [t for ids in ds.bios["input_ids"].to_pylist() for t in (*ids, eos)]
    n = len(flat) // width
    return torch.tensor(flat[: n * width]).view(n, width)


# ---- whole-word masking -------------------------------------------------------------------------

def test_masking_statistics_and_whole_words(tiny_dataset):
    ds = Dataset(tiny_dataset)
    tok = ds.tokenizer
    masker = WholeWordMasker(tok)
    ids = _windows(ds)
    word, special = masker.words(ids)
    key = (torch.arange(len(ids))[:, None] * ids.shape[1] + word)[~special]  # one id per word

    def per_word(flags):  # how many tokens of each word have the flag
        return torch.bincount(key, weights=flags[~special].double(), minlength=ids.numel())

    size = per_word(torch.ones_like(ids, dtype=torch.bool))
    words = size > 0
    totals = torch.zeros(4)
    for step in range(30):
        inputs, labels = masker.for_step(ids, step)
        assert (labels[special] == -100).all() and (inputs[special] == ids[special]).all()
        assert ((labels == ids) | (labels == -100)).all()
        sel, masked, same = per_word(labels != -100), per_word(inputs == tok.mask_token_id), per_word(inputs == ids)
        assert ((sel == 0) | (sel == size)).all(), "a word is selected whole or not at all"
        assert ((masked == 0) | (masked == size)).all(), "a word is masked whole or not at all"
        chosen = words & (sel > 0)
        assert (same[words & ~chosen] == size[words & ~chosen]).all(), "unselected words are untouched"
        is_masked = chosen & (masked > 0)
        kept = chosen & (same == size)  # a random token equal to the original counts as kept
        totals += torch.tensor([words.sum(), chosen.sum(), is_masked.sum(), kept.sum()], dtype=torch.float)
    n_words, selected, masked, kept = totals.tolist()
    assert n_words > 20_000
    assert abs(selected / n_words - 0.15) < 0.01
    assert abs(masked / selected - 0.8) < 0.03
    assert abs(kept / selected - 0.1) < 0.03
    assert abs((selected - masked - kept) / selected - 0.1) < 0.03  # replaced by random tokens


def test_masking_is_reproducible_and_never_empty(tiny_dataset):
    ds = Dataset(tiny_dataset)
    masker = WholeWordMasker(ds.tokenizer, seed=3)
    ids = _windows(ds, 16)
    a, b = masker.for_step(ids, 7), masker.for_step(ids, 7)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(masker.for_step(ids, 8)[1], a[1])
    assert not torch.equal(masker.for_step(ids, 7, rank=1)[1], a[1])
    assert ((a[1] != -100).sum(1) > 0).all()  # every window has a target, even 16 tokens wide
    assert WholeWordMasker(ds.tokenizer, seed=3)(ids, step_generator(3, 7))[1].equal(a[1])


def test_finetune_batch_masks_the_answer_but_not_eos(tiny_dataset):
    from knowlab.train.finetune import collate, qa_examples

    ds = Dataset(tiny_dataset)
    tok = ds.tokenizer
    examples = qa_examples(ds)[:4]
    batch = mask_answers(collate(examples, tok.pad_token_id), tok.mask_token_id, tok.eos_token_id)
    for row, (ids, start) in enumerate(examples):
        inputs, labels = batch["input_ids"][row].tolist(), batch["labels"][row].tolist()
        assert inputs[:start] == ids[:start] and inputs[len(ids) - 1] == tok.eos_token_id
        assert inputs[start:len(ids) - 1] == [tok.mask_token_id] * (len(ids) - 1 - start)
        assert labels[start:len(ids) - 1] == ids[start:-1] and labels[len(ids) - 1] == -100


# ---- bidirectional attention --------------------------------------------------------------------

def _first_position_moves(model, vocab: int) -> bool:
    """Does changing the last token change the last hidden state at position 0?"""
    x = torch.arange(5, 17)[None] % vocab
    y = x.clone()
    y[0, -1] = (y[0, -1] + 1) % vocab
    with torch.no_grad():
        a = model(input_ids=x, output_hidden_states=True).hidden_states[-1]
        b = model(input_ids=y, output_hidden_states=True).hidden_states[-1]
    return not torch.allclose(a[0, 0], b[0, 0], atol=1e-6)


def test_gbert_attends_both_ways_and_reloads_so(tmp_path):
    from transformers import AutoModel, AutoModelForCausalLM

    gbert = build_model(ModelConfig(arch="gbert", **SHAPE), 100, 0, seed=0).eval()
    gpt = build_model(ModelConfig(arch="gpt2-rotary", **SHAPE), 100, 0, seed=0).eval()
    assert is_bidirectional(gbert) and not is_bidirectional(gpt)
    check_bidirectional(gbert)
    with pytest.raises(KnowlabError, match="ignores config.is_causal"):  # what an old transformers gives
        check_bidirectional(gpt)
    assert _first_position_moves(gbert, 100) and not _first_position_moves(gpt, 100)
    # The same stack: identical parameters, only the attention pattern differs.
    assert [n for n, _ in gbert.named_parameters()] == [n for n, _ in gpt.named_parameters()]

    gbert.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["is_causal"] is False
    x = torch.arange(3, 20)[None]
    for impl in ("sdpa", "eager"):
        again = AutoModelForCausalLM.from_pretrained(tmp_path / "m", attn_implementation=impl).eval()
        assert is_bidirectional(again) and _first_position_moves(again, 100)
        with torch.no_grad():
            assert torch.allclose(again(input_ids=x).logits, gbert(input_ids=x).logits, atol=1e-5)
    assert _first_position_moves(AutoModel.from_pretrained(tmp_path / "m").eval(), 100)
    # Padding is masked out both ways: a right-padded row equals the unpadded one.
    padded = torch.cat([x, torch.zeros((1, 4), dtype=torch.long)], 1)
    attn = torch.cat([torch.ones_like(x), torch.zeros((1, 4), dtype=torch.long)], 1)
    with torch.no_grad():
        assert torch.allclose(gbert(input_ids=padded, attention_mask=attn).logits[:, :x.shape[1]],
                              gbert(input_ids=x).logits, atol=1e-5)


def test_objective_must_fit_the_architecture():
    with pytest.raises(KnowlabError, match="objective=clm"):
        from_dict(PretrainConfig, {"model": {"arch": "gbert"}}).validate()
    with pytest.raises(KnowlabError, match="objective=mlm"):
        from_dict(PretrainConfig, {"objective": "mlm"}).validate()
    from_dict(PretrainConfig, {"model": {"arch": "gbert"}, "objective": "mlm"}).validate()


# ---- the mask-filling evaluator -----------------------------------------------------------------

class FillStub(torch.nn.Module):
    """Answers every mask of a sequence with the tokens stored for the text before its first mask."""

    def __init__(self, answers: dict[tuple, list[int]], vocab: int, mask_id: int):
        super().__init__()
        self.answers, self.vocab, self.mask_id = answers, vocab, mask_id
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.calls = 0

    def forward(self, input_ids, attention_mask=None, **_):
        self.calls += 1
        logits = torch.zeros(*input_ids.shape, self.vocab)
        for row, ids in enumerate(input_ids.tolist()):
            at = [i for i, t in enumerate(ids) if t == self.mask_id]
            for i, t in zip(at, self.answers[tuple(ids[:at[0]])]):
                logits[row, i, t] = 1.0
        return SimpleNamespace(logits=logits)


def test_fill_and_score_hand_built_cases():
    mask, pad = 9, 0
    rows = [{"person_id": i, "attribute": a, "answer": "3 4 7", "context": [5, i + 1], "targets": [3, 4, 7], "first": 0}
            for i, a in enumerate(("major", "major", "university"))]
    guesses = {(5, 1): [3, 4, 7], (5, 2): [3, 4, 6], (5, 3): [1, 4, 7]}  # right; last wrong; first wrong
    stub = FillStub(guesses, 12, mask)
    seqs = [[*r["context"], *[mask] * 3, 2] for r in rows]
    fills = fill_masks(stub, seqs, mask, pad, batch_size=8)
    assert fills == [[3, 4, 7], [3, 4, 6], [1, 4, 7]] and stub.calls == 1  # one forward for all masks
    tok = SimpleNamespace(decode=lambda ids, **_: " ".join(map(str, ids)) + ".")
    preds = score_fills(rows, fills, tok, "test")
    assert [(p["exact"], p["first_token"]) for p in preds] == [(True, True), (False, True), (False, False)]


def test_evaluator_on_a_dataset(tiny_dataset):
    ds = Dataset(tiny_dataset)
    tok = ds.tokenizer
    qa = ds.qa.to_pylist()
    truth = {}
    for r in qa:
        n = len(tok(r["prompt"], add_special_tokens=False)["input_ids"])
        answer = r["input_ids"][n:]
        if r["attribute"] == "university":  # one wrong token at the end of every university answer
            answer = [*answer[:-1], tok.eos_token_id]
        truth[tuple(r["input_ids"][:n])] = answer
    stub = FillStub(truth, len(tok), tok.mask_token_id)
    metrics, preds = MaskFilling().qa(stub, tok, ds, "test")
    assert metrics["exact"]["university"] == 0.0 and metrics["first_token"]["university"] == 1.0
    assert all(metrics["exact"][a] == 1.0 for a in ("birth_date", "birth_city", "major", "company", "company_city"))
    assert all(v == 1.0 for v in metrics["first_token"].values())
    hit = next(p for p in preds if p["attribute"] == "major")
    assert hit["prediction"] == hit["answer"]


def test_first_token_score_asks_for_the_value_not_its_separate_space(spaced_dataset):
    ds = Dataset(spaced_dataset)
    tok = ds.tokenizer
    right_first, wrong_first = {}, {}
    for r in ds.qa.to_pylist():
        n = len(tok(r["prompt"], add_special_tokens=False)["input_ids"])
        answer = r["input_ids"][n:]
        assert tok.decode(answer[:1]) == " "  # the case under test
        prompt = tuple(r["input_ids"][:n])
        right_first[prompt] = [*answer[:2], *[tok.eos_token_id] * (len(answer) - 2)]
        wrong_first[prompt] = [answer[0], tok.eos_token_id, *answer[2:]]  # only the space right
    for truth, expected in ((right_first, 1.0), (wrong_first, 0.0)):
        metrics, _ = MaskFilling().qa(FillStub(truth, len(tok), tok.mask_token_id), tok, ds, "test")
        assert metrics["first_token"]["mean"] == expected and metrics["exact"]["mean"] == 0.0


def test_exact_match_is_the_answer_string_as_for_generation(tiny_dataset):
    ds = Dataset(tiny_dataset)
    tok = ds.tokenizer
    newline = next(i for i in range(len(tok)) if tok.decode([i]) == "\n")
    truth = {}
    for r in ds.qa.to_pylist():
        n = len(tok(r["prompt"], add_special_tokens=False)["input_ids"])
        answer = r["input_ids"][n:]
        assert tok.decode(answer[-1:]) == "."
        # A newline where the period belongs: other tokens, the same answer string.
        truth[tuple(r["input_ids"][:n])] = [*answer[:-1], newline]
    metrics, preds = MaskFilling().qa(FillStub(truth, len(tok), tok.mask_token_id), tok, ds, "test")
    assert metrics["exact"]["mean"] == 1.0 and metrics["first_token"]["mean"] == 1.0
    assert all(p["prediction"] == p["answer"] for p in preds)


def test_the_scorer_comes_from_the_model(tiny_dataset, monkeypatch):
    from knowlab.eval import scorers
    from knowlab.eval.hooks import make_eval_hooks, run_hooks

    ds = Dataset(tiny_dataset)
    tok = ds.tokenizer
    gbert = build_model(ModelConfig(arch="gbert", **SHAPE), len(tok), tok.eos_token_id, tok.pad_token_id, seed=0)
    gpt = build_model(ModelConfig(arch="gpt2-rotary", **SHAPE), len(tok), tok.eos_token_id, tok.pad_token_id, seed=0)
    assert isinstance(scorer_for(gbert), MaskFilling) and isinstance(scorer_for(gpt), Generation)
    # One pair of hooks serves both, deciding per call: only the GBERT's QA fills masks.
    fills = []
    monkeypatch.setattr(scorers, "fill_masks", _counting(scorers.fill_masks, fills))
    hooks = make_eval_hooks(ds, max_people=2)
    for model, filled in ((gpt.train(), 0), (gbert.train(), 2)):
        metrics = run_hooks(hooks, 0, model, tok)
        assert set(metrics) == {f"{m}.{s}" for m in ("bio_first_token", "qa_first_token", "qa_exact")
                                for s in ("train", "test")}
        assert model.training and len(fills) == filled


def _counting(fn, calls: list):
    def wrapped(*args, **kwargs):
        calls.append(1)
        return fn(*args, **kwargs)
    return wrapped


# ---- end to end ---------------------------------------------------------------------------------

def test_tiny_mlm_pretraining_learns_and_the_model_finetunes(tiny_dataset, tmp_path):
    from knowlab.eval.evaluate import evaluate
    from knowlab.probe.types import QProbeConfig
    from knowlab.probe.q_probe import run_q_probe
    from knowlab.train.finetune import FinetuneConfig, finetune
    from knowlab.data.tokenizer import load_tokenizer
    from knowlab.models.runtime import load_model
    from knowlab.train.pretrain import pretrain

    cfg = from_dict(PretrainConfig, {
        "model": {"arch": "gbert", **SHAPE}, "objective": "mlm", "optim": {"lr": 3e-3, "warmup_steps": 5},
        "steps": 40, "batch": 8, "threads": 1, "log_every": 5, "checkpoint_every": 0, "qa_ratio": 0.5})
    run = pretrain(cfg, tiny_dataset, tmp_path / "run", show_progress=False)
    losses = [x["loss"] for x in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in x]
    assert losses[-1] < losses[0] - 0.5, losses
    model, tok = load_model(run, device="cpu"), load_tokenizer(run / "model")
    assert is_bidirectional(model)
    result, _ = evaluate(model, tok, tiny_dataset, splits=("train", "test"), max_people=3)
    assert set(result["splits"]["test"]) >= {"exact", "first_token", "bio_first_token"}
    assert 0.0 <= result["splits"]["test"]["bio_first_token"]["mean"] <= 1.0
    from knowlab.cli import main  # `knowlab eval qa` picks mask filling for a bidirectional folder

    assert main(["eval", "qa", str(run), "--data", str(tiny_dataset), "--max-people", "2", "--no-bio",
                 "--out", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["objective"] == "mlm"

    # App. H's LoRA with the full input embedding trainable; the merged folder reloads the same.
    ft = from_dict(FinetuneConfig, {"steps": 4, "batch_size": 8, "log_every": 2, "final_eval_people": 2,
                                    "lora": {"r": 2, "full_embedding": True}})
    summary = finetune(ft, run, tiny_dataset, tmp_path / "ft")
    assert summary["eval"]["objective"] == "mlm"
    from transformers import AutoModelForCausalLM

    tuned = AutoModelForCausalLM.from_pretrained(tmp_path / "ft" / "model").eval()
    assert is_bidirectional(tuned) and not tuned.config.tie_word_embeddings
    assert not torch.equal(tuned.get_input_embeddings().weight, model.get_input_embeddings().weight)
    assert torch.equal(tuned.get_output_embeddings().weight, model.get_output_embeddings().weight)
    again, _ = evaluate(tuned, tok, tiny_dataset, splits=("train", "test"), max_people=2, bio=False)
    assert again["splits"] == {s: {k: v for k, v in m.items() if k != "bio_first_token"}
                               for s, m in summary["eval"]["splits"].items()}

    probe = run_q_probe(tuned, tiny_dataset, from_dict(QProbeConfig, {"steps": 3, "batch_size": 8,
                                                                      "tasks": ["birth_month"]}))
    assert 0.0 <= probe["accuracy"]["birth_month"] <= 1.0
