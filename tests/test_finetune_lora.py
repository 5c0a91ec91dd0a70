"""The paper's LoRA: q/v-only on fused attention, embedding LoRA, exact merge with tied weights."""

from __future__ import annotations

import pytest
import torch

from knowlab.models.presets import ModelConfig, build_model
from knowlab.train.lora import FUSED, LoraSettings, apply_lora, fused_delta, merge, qkv_rows

VOCAB, WIDTH, HEADS = 50, 32, 4


def model_for(arch: str):
    cfg = ModelConfig(arch=arch, size="custom", n_layer=2, n_head=HEADS, n_embd=WIDTH, context=32)
    return build_model(cfg, VOCAB, 0, 1, seed=0)


def train_a_little(model, steps=4):
    torch.manual_seed(0)
    x = torch.randint(2, VOCAB, (4, 10))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.01)
    for _ in range(steps):
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), x[:, 1:].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad()
    return x


def test_neox_row_layout():
    """GPT-NeoX views the fused output as [head, (q, k, v), head_dim]."""
    model = model_for("gpt2-rotary")
    rows = qkv_rows(model)
    d = WIDTH // HEADS
    assert rows["q"][:d].tolist() == list(range(d)) and rows["k"][0] == d and rows["v"][0] == 2 * d
    assert rows["q"][d] == 3 * d  # head 1 starts after head 0's q, k and v
    assert sorted(torch.cat(list(rows.values())).tolist()) == list(range(3 * WIDTH))
    # the layout agrees with the attention's own split: perturb the k rows only -> q and v unchanged
    attn = model.gpt_neox.layers[0].attention
    h = torch.randn(1, 3, WIDTH)
    before = attn.query_key_value(h).view(1, 3, HEADS, 3 * d).chunk(3, dim=-1)
    with torch.no_grad():
        attn.query_key_value.weight[rows["k"]] += 1.0
    after = attn.query_key_value(h).view(1, 3, HEADS, 3 * d).chunk(3, dim=-1)
    assert torch.equal(before[0], after[0]) and not torch.equal(before[1], after[1]) and torch.equal(before[2], after[2])


@pytest.mark.parametrize("arch", ["gpt2-rotary", "gpt2"])
def test_fused_lora_is_q_and_v_only(arch):
    torch.set_num_threads(1)
    model = model_for(arch)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    peft_model = apply_lora(model, LoraSettings(r=2, embedding_r=4))
    train_a_little(peft_model)
    base = peft_model.get_base_model()
    rows = qkv_rows(base)
    wrapped = [m for n, m in base.named_modules() if n.endswith(FUSED[base.config.model_type]) and hasattr(m, "lora_B")]
    assert len(wrapped) == 2
    for module in wrapped:
        delta = fused_delta(module)
        assert torch.count_nonzero(delta[rows["k"]]) == 0  # exactly zero, not just small
        assert delta[rows["q"]].abs().max() > 0 and delta[rows["v"]].abs().max() > 0
        assert module.scaling["default"] == pytest.approx(2.0)  # each half: alpha / r = 2r / r
    merged = merge(peft_model)
    state = merged.state_dict()
    changed = {k for k, v in state.items() if not torch.equal(v, original[k])}
    emb = "gpt_neox.embed_in.weight" if arch == "gpt2-rotary" else "transformer.wte.weight"
    assert emb in changed and all(k == emb or "query_key_value" in k or "c_attn" in k for k in changed)
    assert any("query_key_value.weight" in k or "c_attn.weight" in k for k in changed)
    assert not any("mlp" in k or "norm" in k or "ln_" in k or "lm_head" in k or "bias" in k for k in changed)
    # k rows of the merged fused weight are bitwise the original ones
    for k in (k for k in changed if k != emb):
        w, w0 = state[k], original[k]
        if arch == "gpt2":  # Conv1D stores (in, out): output features are columns
            w, w0 = w.T, w0.T
        assert torch.equal(w[rows["k"]], w0[rows["k"]])


def test_llama_targets_q_and_v_projections():
    torch.set_num_threads(1)
    model = model_for("llama")
    original = {k: v.clone() for k, v in model.state_dict().items()}
    peft_model = apply_lora(model, LoraSettings(r=2, embedding_r=4))
    train_a_little(peft_model)
    state = merge(peft_model).state_dict()
    changed = {k.split(".")[-2] for k, v in state.items() if not torch.equal(v, original[k])}
    assert changed == {"q_proj", "v_proj", "embed_tokens"}


@pytest.mark.parametrize("arch", ["gpt2-rotary", "llama"])
def test_merged_and_adapter_folders_compute_what_training_computed(tmp_path, arch):
    """Tied embeddings: the merged folder is untied so the output layer keeps the original
    weight; the adapter reloads onto the base folder with peft."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    model = model_for(arch)
    assert model.config.tie_word_embeddings
    model.save_pretrained(tmp_path / "base")
    emb0 = model.get_input_embeddings().weight.detach().clone()
    peft_model = apply_lora(model, LoraSettings(r=2, embedding_r=4))
    x = train_a_little(peft_model)
    peft_model.eval()
    with torch.no_grad():
        want = peft_model(input_ids=x).logits
    peft_model.save_pretrained(tmp_path / "adapter", save_embedding_layers=False)
    merged = merge(peft_model)
    merged.save_pretrained(tmp_path / "merged")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    assert not loaded.config.tie_word_embeddings
    assert torch.equal(loaded.get_output_embeddings().weight, emb0)
    assert not torch.equal(loaded.get_input_embeddings().weight, emb0)
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    adapter = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=x).logits, want, atol=1e-5)
        assert torch.allclose(adapter(input_ids=x).logits, want, atol=1e-5)
