"""Architecture presets match the paper ([P] Section 2.1, App. B)."""

from __future__ import annotations

import math

import pytest
import torch

from knowlab.config import from_dict
from knowlab.errors import KnowlabError
from knowlab.models.presets import ModelConfig, build_model, count_parameters, hf_config


def _cfg(**kw) -> ModelConfig:
    return from_dict(ModelConfig, kw)


def _meta_model(cfg: ModelConfig, vocab: int = 50304):
    """Shape-only model (no memory, no init time) for the big presets."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(hf_config(cfg, vocab, eos_id=0, pad_id=1))


def test_gpt2_rotary_matches_paper():
    cfg = _cfg(arch="gpt2-rotary", size="custom", n_layer=2, n_head=2, n_embd=32, context=64)
    model = build_model(cfg, vocab_size=100, eos_id=0, pad_id=1, seed=0)
    conf = model.config
    assert conf.model_type == "gpt_neox"
    attn = model.gpt_neox.layers[0].attention
    head_dim = 32 // 2
    # rotary on 1/4 of each head's dimensions, base 10,000
    assert attn.rotary_ndims == head_dim // 4
    inv_freq = model.gpt_neox.rotary_emb.inv_freq
    assert inv_freq.numel() == head_dim // 8
    assert math.isclose(float(inv_freq[1]), 10_000 ** (-2 / (head_dim // 4)), rel_tol=1e-5)
    # sequential residual (GPT-2 style), GELU MLP, pre-LayerNorm with a final LayerNorm
    assert conf.use_parallel_residual is False
    assert conf.hidden_act == "gelu"
    layer = model.gpt_neox.layers[0]
    assert isinstance(layer.input_layernorm, torch.nn.LayerNorm)
    assert isinstance(layer.post_attention_layernorm, torch.nn.LayerNorm)
    assert isinstance(model.gpt_neox.final_layer_norm, torch.nn.LayerNorm)
    # tied input and output embeddings
    assert model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()
    assert conf.max_position_embeddings == 64


def test_gpt2_rotary_is_pre_ln():
    """Zeroing the block input's LayerNorm gain silences attention: the norm sits before it."""
    cfg = _cfg(arch="gpt2-rotary", size="custom", n_layer=1, n_head=2, n_embd=32, context=16)
    model = build_model(cfg, vocab_size=50, eos_id=0, seed=0).eval()
    layer = model.gpt_neox.layers[0]
    x = torch.randn(1, 5, 32)
    with torch.no_grad():
        layer.input_layernorm.weight.zero_()
        layer.input_layernorm.bias.zero_()
        layer.attention.query_key_value.bias.zero_()
        layer.attention.dense.bias.zero_()
        normed = layer.post_attention_layernorm(x)
        mlp_only = x + layer.mlp(normed)
        pos = model.gpt_neox.rotary_emb(x, torch.arange(5)[None])
        out = layer(x, position_embeddings=pos)
        out = out[0] if isinstance(out, tuple) else out
    torch.testing.assert_close(out, mlp_only, rtol=1e-5, atol=1e-5)


def test_small_and_bior_shapes():
    small = _cfg(size="small")
    assert small.shape() == (12, 12, 768)
    n = count_parameters(_meta_model(small))
    assert 84e6 < n < 86e6  # ~85M non-embedding (124M with a GPT-2 vocabulary)
    assert _cfg(size="bior").shape() == (12, 20, 1280)
    bior = hf_config(_cfg(size="bior"), 50304, eos_id=0)
    assert (bior.num_hidden_layers, bior.num_attention_heads, bior.hidden_size) == (12, 20, 1280)


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gpt2-rotary"])
def test_archs_build_and_run(arch):
    cfg = _cfg(arch=arch, size="custom", n_layer=2, n_head=2, n_embd=32, context=32)
    model = build_model(cfg, vocab_size=64, eos_id=0, pad_id=1, seed=0)
    ids = torch.randint(0, 64, (2, 10))
    out = model(input_ids=ids, labels=ids)
    assert out.logits.shape == (2, 10, 64)
    assert torch.isfinite(out.loss)
    out.loss.backward()


def test_bad_shape_is_knowlab_error():
    with pytest.raises(KnowlabError):
        _cfg(size="custom", n_layer=2, n_head=3, n_embd=32)
    with pytest.raises(KnowlabError):
        _cfg(size="custom")
