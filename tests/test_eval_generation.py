"""Batched greedy generation equals HF generate one prompt at a time; beam search runs."""

from __future__ import annotations

import pytest
import torch

from knowlab.data.dataset import Dataset
from knowlab.eval.evaluate import evaluate
from knowlab.eval.qa import greedy_generate, max_answer_tokens, qa_rows
from knowlab.eval.scoring import stop_token_mask
from knowlab.models.presets import ModelConfig, build_model


def tiny_model(tok, arch="gpt2-rotary", seed=0):
    cfg = ModelConfig(arch=arch, size="custom", n_layer=2, n_head=2, n_embd=64, context=128)
    return build_model(cfg, len(tok), tok.eos_token_id, tok.pad_token_id, seed=seed).eval()


@pytest.mark.parametrize("arch", ["gpt2-rotary", "gpt2", "llama"])
def test_greedy_matches_hf_generate(tiny_dataset, arch):
    torch.set_num_threads(1)
    ds = Dataset(tiny_dataset)
    tok = ds.tokenizer
    model = tiny_model(tok, arch)
    rows = qa_rows(ds, "test")[::7][:8]  # varied prompt lengths -> left padding in a batch
    prompts = [r["prompt_ids"] for r in rows]
    assert len({len(p) for p in prompts}) > 1
    stops = stop_token_mask(tok, model.config.vocab_size)
    max_new = max_answer_tokens(ds) + 2
    ours = greedy_generate(model, prompts, max_new, stops, tok.pad_token_id, batch_size=3)
    stop_ids = torch.nonzero(stops).flatten().tolist()
    for p, got in zip(prompts, ours):
        ids = torch.tensor([p])
        ref = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new, do_sample=False,
                             eos_token_id=stop_ids, pad_token_id=tok.pad_token_id)[0, len(p):].tolist()
        assert got == ref[: len(got)]
        assert len(got) == max_new or stops[got[-1]]


def test_prompts_are_the_prompt_text_tokens(tiny_dataset):
    """Generation starts from the tokens of `{question} Answer:` (what lm-eval feeds), a prefix
    of the QA text's tokens; the first-token target is the value's first token."""
    ds = Dataset(tiny_dataset)
    tok = ds.tokenizer
    table = {(r["person_id"], r["attribute"]): r for r in ds.qa.to_pylist()}
    for row in qa_rows(ds, "test") + qa_rows(ds, "train"):
        r = table[(row["person_id"], row["attribute"])]
        assert row["prompt_ids"] == tok.encode(r["prompt"]) == r["input_ids"][: len(row["prompt_ids"])]
        start = r["answer_tok_start"]
        start += tok.decode(r["input_ids"][start:start + 1]) == " "  # a space token of its own
        assert row["context_ids"] == r["input_ids"][:start] and row["first_target"] == r["input_ids"][start]
        assert tok.decode([row["first_target"]]).strip()


def test_first_token_target_is_the_value_past_a_separate_space(spaced_dataset):
    ds = Dataset(spaced_dataset)
    tok = ds.tokenizer
    answers = {(r["person_id"], r["attribute"]): r["answer"] for r in ds.qa.to_pylist()}
    for row in qa_rows(ds, "test"):
        assert tok.decode(row["context_ids"][len(row["prompt_ids"]):]) == " "
        value = answers[(row["person_id"], row["attribute"])]
        assert value.startswith(tok.decode([row["first_target"]]))


def test_separate_space_token_belongs_to_the_answer():
    """A value whose first word has no token with a leading space: the space is a token of its
    own, which the prompt text does not contain; it is the first token the model must produce."""
    from knowlab.data.tokenizer import encode_spans, train_tokenizer
    from knowlab.eval.qa import prompt_lengths

    tok = train_tokenizer(["What is it? Answer: yes."] * 20, vocab_size=280)
    prompt, text = "What is it? Answer:", "What is it? Answer: Zorblax."
    ids, spans = encode_spans(tok, [text], [[(len(prompt) + 1, len(text) - 1)]])
    start = spans[0][0][0]
    assert tok.decode(ids[0][start - 1:start]) == " "  # the case under test
    assert prompt_lengths(tok, [prompt], ids, [start]) == [start - 1] == [len(tok.encode(prompt))]
    usual = tok.encode("What is it? Answer: yes.")  # " yes" is one token: the prompt ends at ":"
    assert prompt_lengths(tok, [prompt], [usual], [6]) == [6] and tok.decode(usual[6:7]) == " yes"


def test_beam_search_runs(tiny_dataset):
    torch.set_num_threads(1)
    ds = Dataset(tiny_dataset)
    model = tiny_model(ds.tokenizer)
    result, preds = evaluate(model, ds.tokenizer, ds, splits=("test",), beams=2, max_people=2, bio=False)
    m = result["splits"]["test"]
    assert result["beams"] == 2 and m["questions"] == 12 and len(preds) == 12
    assert set(m["exact"]) >= {"mean", "birth_date", "company_city"}
    assert 0.0 <= m["first_token"]["mean"] <= 1.0
    assert all(isinstance(p["prediction"], str) for p in preds)
