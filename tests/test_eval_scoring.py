"""Answer delimitation and scoring: hand-built cases, directly and through a scripted model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from knowlab.data.dataset import Dataset
from knowlab.eval.qa import evaluate_qa
from knowlab.eval.report import figure3_table
from knowlab.eval.scoring import answer_from_text, answer_from_tokens, exact_match, per_attribute


@pytest.mark.parametrize("continuation, value, exact", [
    (" Princeton, NJ.", "Princeton, NJ", True),
    (" Princeton, NJ. She was born in 1996.", "Princeton, NJ", True),  # text after the period
    (" Princeton, NJ\nWhat is", "Princeton, NJ", True),  # a newline also ends the answer
    (" Princeton, NJ", "Princeton, NJ", True),  # ran out of tokens right after the value
    (" Princeton, NJ is a city.", "Princeton, NJ", False),  # runs on without a period
    (" princeton, NJ.", "Princeton, NJ", False),  # case-sensitive
    (" Princeton,  NJ.", "Princeton, NJ", False),  # space-sensitive inside
    (" Princeton.", "Princeton, NJ", False),  # partial
    (".", "Princeton, NJ", False),
    ("", "Princeton, NJ", False),
])
def test_answer_delimitation(continuation, value, exact):
    assert exact_match(answer_from_text(continuation), value) is exact


def test_eos_ends_the_answer(tiny_dataset):
    tok = Dataset(tiny_dataset).tokenizer
    value = tok.encode(" Princeton, NJ")
    junk = tok.encode(" and more.")
    assert answer_from_tokens(value + [tok.eos_token_id] + junk, tok) == "Princeton, NJ"
    assert answer_from_tokens(value + junk, tok) == "Princeton, NJ and more"


def test_per_attribute_mean_weights_attributes_equally():
    rows = [{"attribute": "birth_date", "ok": True}, {"attribute": "birth_date", "ok": True},
            {"attribute": "major", "ok": False}]
    acc = per_attribute(rows, "ok")
    assert acc["birth_date"] == 1.0 and acc["major"] == 0.0 and acc["mean"] == 0.5


class Scripted(torch.nn.Module):
    """A stand-in causal LM that continues each prompt with a scripted token sequence."""

    def __init__(self, scripts: dict[tuple[int, ...], list[int]], vocab: int):
        super().__init__()
        self.scripts, self.vocab = scripts, vocab
        self.head = torch.nn.Linear(1, vocab, bias=False)

    def get_output_embeddings(self):
        return self.head

    def forward(self, input_ids, attention_mask, position_ids=None, use_cache=True, logits_to_keep=0, cache=None):
        if cache is None:  # prefill: remember each row's prompt (left padding removed)
            cache = {"rows": [tuple(r[m.bool()].tolist()) for r, m in zip(input_ids, attention_mask)], "t": 0}
        else:
            cache["t"] += 1
        logits = torch.zeros(len(input_ids), 1, self.vocab)
        for i, prompt in enumerate(cache["rows"]):
            script = self.scripts[prompt]
            logits[i, 0, script[min(cache["t"], len(script) - 1)]] = 1.0
        return SimpleNamespace(logits=logits, cache=cache)


def test_scripted_model_cases(tiny_dataset):
    ds = Dataset(tiny_dataset)
    tok = ds.tokenizer
    person = ds.qa["person_id"][0].as_py()
    rows = [r for r in ds.qa.to_pylist() if r["person_id"] == person]
    split = rows[0]["split"]
    by_attr = {r["attribute"]: r for r in rows}
    enc = lambda text: tok.encode(text)  # noqa: E731
    continuations = {
        "birth_date": f" {by_attr['birth_date']['answer']}.",  # exact
        "birth_city": f" {by_attr['birth_city']['answer']}. She was born there.",  # exact, extra text
        "university": f" {by_attr['university']['answer']} is",  # no period: wrong, first token right
        "major": " 0000 Studies.",  # wrong first token (no major starts with a digit)
        "company": f" {by_attr['company']['answer'].split()[0]} Qqq.",  # right first token, wrong rest
        "company_city": f" {by_attr['company_city']['answer']}",  # EOS right after the value: exact
    }
    scripts = {}
    for attr, text in continuations.items():
        r = by_attr[attr]
        script = enc(text) + ([tok.eos_token_id] if attr == "company_city" else [])
        prompt, context = tuple(enc(r["prompt"])), tuple(r["input_ids"][: r["answer_tok_start"]])
        scripts[prompt] = script
        scripts[context] = script[len(context) - len(prompt):]  # a separate space token, if any
    model = Scripted(scripts, len(tok))
    _, preds = evaluate_qa(model, tok, ds, split, people=[person], batch_size=4)
    got = {p["attribute"]: (p["exact"], p["first_token"]) for p in preds}
    assert got == {
        "birth_date": (True, True), "birth_city": (True, True), "university": (False, True),
        "major": (False, False), "company": (False, True), "company_city": (True, True),
    }


def test_figure3_table_shape():
    table = figure3_table({"lora": {"mean": 0.5, "birth_date": 1.0, "major": 0.25}})
    lines = table.splitlines()
    assert lines[0] == "| model | mean | b_date | b_city | univ | major | c_name | c_city |"
    assert lines[2] == "| lora | 50.0 | 100.0 | - | - | 25.0 | - | - |"
