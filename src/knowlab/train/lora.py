"""The paper's LoRA ([P] App. D): rank r on the attention query and value matrices only, and
rank r' on the token embedding. Built on `peft`, so the adapter is an ordinary peft LoRA.

GPT-NeoX (`query_key_value`) and GPT-2 (`c_attn`) fuse q, k and v into one module, and peft can
only target whole modules. Exact q/v-only LoRA on a fused module: one LoRA of rank 2r whose B
matrix is masked so that columns 0..r-1 write only the query rows and columns r..2r-1 only the
value rows. B starts at zero, masked entries are zeroed once more after init and their gradient
is masked by a hook, so with AdamW (zero gradient -> zero update, decoupled decay of zero is
zero) they stay exactly zero: the fused delta is [B_q A_q; 0; B_v A_v], two independent rank-r
LoRAs on q and v and nothing on k. Its alpha is doubled so that each half has the scaling
alpha / r of a rank-r LoRA. Llama-style models (`q_proj`, `v_proj`) get rank r directly.

Row layouts of the fused output (rows of the delta, i.e. of lora_B):
- GPT-NeoX: viewed as [head, (q, k, v), head_dim], so head h owns rows h*3d .. h*3d+3d-1 with
  q first, then k, then v (d = head_dim).
- GPT-2 Conv1D: q | k | v contiguous blocks of n_embd. The Conv1D weight is stored transposed
  (in, out); peft sets fan_in_fan_out and keeps lora_B as (out, rank), so the same row logic
  holds and merging transposes the delta for us.

Alpha: default 2 x rank for both parts (scaling 2); not stated in the paper.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from knowlab.errors import KnowlabError

FUSED = {"gpt_neox": "query_key_value", "gpt2": "c_attn"}
ADAPTER = "default"


@dataclass
class LoraSettings:
    r: int = 8  # rank on query and value ([P]: 8 or 16, best of the two reported)
    alpha: float | None = None  # None: 2 * r
    embedding_r: int = 128  # rank r' on the token embedding; 0 turns it off
    embedding_alpha: float | None = None  # None: 2 * embedding_r
    # App. H's other GBERT variant: the whole input embedding trains (a peft modules_to_save
    # copy) instead of a rank-r' LoRA; embedding_r is then ignored.
    full_embedding: bool = False
    dropout: float = 0.0

    def validate(self) -> None:
        if self.r < 1:
            raise KnowlabError(f"lora.r must be at least 1, got {self.r}")
        if self.embedding_r < 0:
            raise KnowlabError(f"lora.embedding_r must be 0 or more, got {self.embedding_r}")
        if not 0.0 <= self.dropout < 1.0:
            raise KnowlabError(f"lora.dropout must be within [0, 1), got {self.dropout}")


def _module_name(model, module) -> str:
    return next(name for name, m in model.named_modules() if m is module)


def qkv_rows(model) -> dict[str, torch.Tensor]:
    """Row indices of q, k and v in the output of the fused attention module of `model`."""
    cfg = model.config
    kind = cfg.model_type
    if kind == "gpt_neox":
        heads, width = cfg.num_attention_heads, cfg.hidden_size
        d = width // heads
        base = torch.arange(heads)[:, None] * 3 * d + torch.arange(d)[None, :]
        return {name: (base + i * d).flatten() for i, name in enumerate("qkv")}
    if kind == "gpt2":
        width = cfg.n_embd
        return {name: torch.arange(i * width, (i + 1) * width) for i, name in enumerate("qkv")}
    raise KnowlabError(f"model type '{kind}' has no fused q/k/v module knowlab knows the layout of")


def lora_targets(model, settings: LoraSettings) -> tuple[list[str], dict[str, int], dict[str, float], str | None]:
    """(target module suffixes, rank_pattern, alpha_pattern, fused suffix or None) for peft."""
    alpha = settings.alpha if settings.alpha is not None else 2.0 * settings.r
    kind = model.config.model_type
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    ranks: dict[str, int] = {}
    alphas: dict[str, float] = {}
    if kind in FUSED:
        fused = FUSED[kind]
        targets = [fused]
        ranks[fused], alphas[fused] = 2 * settings.r, 2 * alpha
    elif {"q_proj", "v_proj"} <= names:
        fused = None
        targets = ["q_proj", "v_proj"]
        for t in targets:
            ranks[t], alphas[t] = settings.r, alpha
    else:
        raise KnowlabError(f"LoRA: no query/value modules found in model type '{kind}' "
                           "(knowlab knows gpt_neox, gpt2 and q_proj/v_proj models)")
    if settings.embedding_r and not settings.full_embedding:
        emb = _module_name(model, model.get_input_embeddings()).rsplit(".", 1)[-1]
        targets.append(emb)
        ranks[emb] = settings.embedding_r
        alphas[emb] = settings.embedding_alpha if settings.embedding_alpha is not None else 2.0 * settings.embedding_r
    return targets, ranks, alphas, fused


def apply_lora(model, settings: LoraSettings):
    """Wrap `model` in a peft LoRA model (only the LoRA weights train); fused q/v masks installed."""
    from peft import LoraConfig, get_peft_model

    targets, ranks, alphas, fused = lora_targets(model, settings)
    config = LoraConfig(
        r=settings.r, lora_alpha=alphas.get(targets[0], 2.0 * settings.r), target_modules=targets,
        rank_pattern=ranks, alpha_pattern=alphas, lora_dropout=settings.dropout, bias="none",
        fan_in_fan_out=model.config.model_type == "gpt2", task_type="CAUSAL_LM",
        modules_to_save=[_module_name(model, model.get_input_embeddings()).rsplit(".", 1)[-1]]
        if settings.full_embedding else None,
    )
    with warnings.catch_warnings():
        # merge() unties the embedding first, which is what peft's tied-weights warning is about
        warnings.filterwarnings("ignore", message=".*tie_word_embeddings.*")
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        peft_model = get_peft_model(model, config)
    peft_model._knowlab_masks = install_masks(peft_model, settings.r) if fused else []
    return peft_model


def install_masks(peft_model, r: int) -> list[tuple[torch.nn.Parameter, torch.Tensor]]:
    """Mask every fused module's lora_B to [q rows -> cols :r, v rows -> cols r:].

    Install before building the optimizer. Reloading the adapter for further training needs this
    again (hooks are not saved); for inference the adapter is an ordinary peft LoRA.
    """
    base = peft_model.get_base_model()
    fused = FUSED[base.config.model_type]
    rows = qkv_rows(base)
    masks = []
    for name, module in base.named_modules():
        if not name.endswith(fused) or not hasattr(module, "lora_B"):
            continue
        weight = module.lora_B[ADAPTER].weight  # (out, 2r)
        if weight.shape[1] != 2 * r:
            raise KnowlabError(f"{name}: LoRA rank {weight.shape[1]} is not 2 x {r}")
        mask = torch.zeros_like(weight, dtype=torch.bool)
        mask[rows["q"], :r] = True
        mask[rows["v"], r:] = True
        with torch.no_grad():
            weight.mul_(mask)
        # A non-persistent buffer follows model.to(device) and stays out of saved state dicts.
        module.register_buffer("qv_mask", mask, persistent=False)
        weight.register_hook(lambda grad, mod=module: grad * mod.qv_mask)
        masks.append((weight, module.qv_mask))
    if not masks:
        raise KnowlabError(f"LoRA: no '{fused}' module was wrapped")
    return masks


def fused_delta(module) -> torch.Tensor:
    """The LoRA delta of a peft-wrapped module in (out, in) layout, scaling included."""
    a = module.lora_A[ADAPTER].weight
    b = module.lora_B[ADAPTER].weight
    return (b @ a) * module.scaling[ADAPTER]


def _tie_flag(config, value: bool | None = None) -> bool:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    if value is not None:
        for c in {id(config): config, id(text): text}.values():
            c.tie_word_embeddings = value
    return bool(getattr(text, "tie_word_embeddings", False))


def merge(peft_model):
    """Merge the adapter into the base weights and return the plain HF model.

    An embedding LoRA merged into a weight shared with the output layer would change the output
    layer too, which the adapter model never did. So a tied output layer first gets its own copy
    of the original weight and the config is untied: the merged model computes what the adapter
    model computed, and saves and reloads that way.
    """
    base = peft_model.get_base_model()
    emb, out = base.get_input_embeddings(), base.get_output_embeddings()
    emb_weight = emb.get_base_layer().weight if hasattr(emb, "get_base_layer") else emb.weight
    if out is not None and out.weight is emb_weight:
        out.weight = torch.nn.Parameter(emb_weight.detach().clone(), requires_grad=False)
        _tie_flag(base.config, False)
    with warnings.catch_warnings():
        # A trained full embedding (modules_to_save) replaces the input side only; peft then
        # unties the config itself, as intended here.
        warnings.filterwarnings("ignore", message=".*no longer tied after merging.*")
        return peft_model.merge_and_unload()
