"""Architecture presets, built as HF `transformers` models so export, LoRA, hidden states,
generation and outside tools (peft, lm-eval, vLLM) work on them unchanged.

- `gpt2-rotary` (the paper's "GPT2"): GPT-2 with the absolute positions replaced by rotary
  embedding on 1/4 of each head's dimensions, base 10,000, pre-LayerNorm, GELU MLP, sequential
  residual. That is GPT-NeoX with rotary_pct=0.25 and use_parallel_residual=False.
- `gbert` (the paper's BERT variant, App. H): the gpt2-rotary stack with full bidirectional
  attention, for masked language modelling (docs/gbert.md): GPT-NeoX with `is_causal=False`.
- `gpt2`: GPT-2 with learned absolute positions. `llama`: a Llama of the same shape.
- `hf`: any HF config file (`hf_config: path/to/config.json`).
Sizes: `tiny` (CPU demos and tests), `small` = 12 layers, 12 heads, 768 wide (bioS; 124M with GPT-2's vocabulary, ~90M with
knowlab's ~6,400-token BPE),
`bior` = 12 layers, 20 heads, 1280 wide (302M), `custom` (n_layer/n_head/n_embd as given).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from knowlab.errors import KnowlabError

ARCHS = ("gpt2-rotary", "gbert", "gpt2", "llama", "hf")
SIZES: dict[str, tuple[int, int, int]] = {  # n_layer, n_head, n_embd
    "tiny": (4, 4, 128),
    "gpu-quick": (6, 6, 384),
    "small": (12, 12, 768),
    "bior": (12, 20, 1280),
    "large": (12, 32, 2048),
}


@dataclass
class ModelConfig:
    arch: Literal["gpt2-rotary", "gbert", "gpt2", "llama", "hf"] = "gpt2-rotary"
    size: Literal["tiny", "gpu-quick", "small", "bior", "large", "custom"] = "small"
    n_layer: int = 0  # used when size is custom
    n_head: int = 0
    n_embd: int = 0
    context: int = 512  # positions; also the pretraining window length
    dropout: float = 0.0
    rotary_pct: float = 0.25
    rope_base: float = 10_000.0
    tie_embeddings: bool = True
    hf_config: str | None = None  # arch=hf: a local config.json or model folder

    def shape(self) -> tuple[int, int, int]:
        if self.size == "custom":
            if min(self.n_layer, self.n_head, self.n_embd) < 1:
                raise KnowlabError("size=custom needs model.n_layer, model.n_head and model.n_embd")
            return self.n_layer, self.n_head, self.n_embd
        return SIZES[self.size]

    def validate(self) -> None:
        n_layer, n_head, n_embd = self.shape()
        if n_embd % n_head:
            raise KnowlabError(f"model.n_embd ({n_embd}) must be divisible by model.n_head ({n_head})")
        if self.arch == "hf" and not self.hf_config:
            raise KnowlabError("arch=hf needs model.hf_config (a local config.json or model folder)")
        if not 0.0 < self.rotary_pct <= 1.0:
            raise KnowlabError(f"model.rotary_pct must be in (0, 1], got {self.rotary_pct}")


def hf_config(cfg: ModelConfig, vocab_size: int, eos_id: int, pad_id: int | None = None):
    """The HF config object for `cfg` with the tokenizer's vocabulary and special ids."""
    from transformers import AutoConfig, GPT2Config, GPTNeoXConfig, LlamaConfig

    n_layer, n_head, n_embd = cfg.shape()
    ids = dict(bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=pad_id if pad_id is not None else eos_id)
    if cfg.arch in ("gpt2-rotary", "gbert"):
        # gbert: transformers' `is_causal=False` config switch makes the same stack bidirectional
        # and is saved in config.json, so the folder reloads bidirectional (docs/gbert.md).
        encoder = {"is_causal": False, "use_cache": False} if cfg.arch == "gbert" else {}
        return GPTNeoXConfig(
            vocab_size=vocab_size, hidden_size=n_embd, num_hidden_layers=n_layer,
            num_attention_heads=n_head, intermediate_size=4 * n_embd, hidden_act="gelu",
            rotary_pct=cfg.rotary_pct, rotary_emb_base=cfg.rope_base,
            max_position_embeddings=cfg.context, use_parallel_residual=False,
            attention_dropout=cfg.dropout, hidden_dropout=cfg.dropout,
            tie_word_embeddings=cfg.tie_embeddings, layer_norm_eps=1e-5, **encoder, **ids,
        )
    if cfg.arch == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
            n_positions=cfg.context, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
            attn_pdrop=cfg.dropout, tie_word_embeddings=cfg.tie_embeddings, **ids,
        )
    if cfg.arch == "llama":
        # A "downsized Llama" of the same shape: SwiGLU width 8/3 x, rounded to 64.
        inter = ((int(8 * n_embd / 3) + 63) // 64) * 64
        return LlamaConfig(
            vocab_size=vocab_size, hidden_size=n_embd, num_hidden_layers=n_layer,
            num_attention_heads=n_head, num_key_value_heads=n_head, intermediate_size=inter,
            max_position_embeddings=cfg.context, rope_theta=cfg.rope_base,
            attention_dropout=cfg.dropout, tie_word_embeddings=cfg.tie_embeddings, **ids,
        )
    try:
        conf = AutoConfig.from_pretrained(cfg.hf_config, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise KnowlabError(f"model.hf_config {cfg.hf_config}: not a loadable HF config ({str(exc).splitlines()[0]})") from None
    conf.vocab_size = vocab_size
    for key, value in ids.items():
        setattr(conf, key, value)
    return conf


def build_model(cfg: ModelConfig, vocab_size: int, eos_id: int, pad_id: int | None = None, seed: int | None = None):
    """A freshly initialised causal LM for `cfg`."""
    import torch
    from transformers import AutoModelForCausalLM

    if seed is not None:
        torch.manual_seed(seed)
    conf = hf_config(cfg, vocab_size, eos_id, pad_id)
    return AutoModelForCausalLM.from_config(conf)


def count_parameters(model, non_embedding: bool = True) -> int:
    total = sum(p.numel() for p in model.parameters())
    if non_embedding:
        emb = model.get_input_embeddings().weight
        total -= emb.numel()
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != emb.data_ptr():
            total -= out.weight.numel()
    return total
