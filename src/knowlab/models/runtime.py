"""One place for what every stage does with a model: find and load it, pick its device, run it
under autocast, see through wrappers, and pad its batches.

A model argument may be an HF model folder (config.json) or a run folder holding one at
RUN/model (pretraining, finetuning); models load offline, and a folder whose tokenizer differs
from the dataset's is refused, because token ids would silently mean different things.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from knowlab.errors import KnowlabError


# ---- model folders ----------------------------------------------------------------------------

def resolve_model_dir(path: str | Path) -> Path:
    """An HF model folder, or a run folder holding one at RUN/model."""
    path = Path(path)
    for candidate in (path / "model", path):
        if (candidate / "config.json").is_file():
            return candidate
    raise KnowlabError(f"{path}: no model found: neither an HF model folder (config.json) nor a run folder "
                       "with model/config.json")


def check_tokenizer(model_dir: str | Path, tokenizer) -> None:
    """Refuse a model folder whose own tokenizer differs from the dataset's."""
    if not (Path(model_dir) / "tokenizer.json").is_file():
        return
    from knowlab.data.tokenizer import load_tokenizer

    if load_tokenizer(model_dir).get_vocab() != tokenizer.get_vocab():
        raise KnowlabError(f"{model_dir}: the model's tokenizer differs from the dataset's; "
                           "use the dataset the model was trained on")


def load_model(path: str | Path, device: str = "auto", dtype: str = "auto", tokenizer=None):
    """Load a causal LM from a model or run folder, offline, in eval mode.

    dtype auto: bf16 on CUDA, fp32 on CPU. With `tokenizer` (the dataset's), the folder must
    share it, and the model must have an embedding for each of its ids (training needs both).
    """
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    folder = resolve_model_dir(path)
    if tokenizer is not None:
        check_tokenizer(folder, tokenizer)
    dev = pick_device(device)
    if dtype == "auto":
        dtype = "bfloat16" if dev.type == "cuda" else "float32"
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a loading bar per model would bury the caller's own output
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as exc:
        raise KnowlabError(f"{folder}: not a loadable HF model ({str(exc).splitlines()[0]})") from None
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    if tokenizer is not None:
        vocab = model.get_input_embeddings().weight.shape[0]
        if len(tokenizer) > vocab:
            raise KnowlabError(f"{folder}: the model's vocabulary ({vocab}) is smaller than the dataset tokenizer's "
                               f"({len(tokenizer)}); was it pretrained on this dataset?")
    return model.to(dev).eval()


# ---- devices and wrappers ---------------------------------------------------------------------

def pick_device(device: str = "auto", local_rank: int | None = None) -> torch.device:
    """The torch device for `device` (auto, cpu, cuda, cuda:N). Under torchrun pass `local_rank`:
    a bare cuda (or auto on a CUDA machine) then means this rank's own GPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise KnowlabError(f"device {device} asked for, but CUDA is not available; use device=auto or device=cpu")
    if device == "cuda" and local_rank is not None:
        return torch.device("cuda", local_rank)
    try:
        return torch.device(device)
    except RuntimeError:
        raise KnowlabError(f"unknown device '{device}'; valid: auto, cpu, cuda, cuda:N") from None


def unwrap(model, peft: bool = True):
    """The model inside torch.compile (`_orig_mod`) and DDP/DataParallel wrappers, and with
    `peft` inside a peft model too (its LoRA layers stay active). Training wants peft=False:
    the peft model is the one whose state it checkpoints; evaluation wants the HF model under it.
    FSDP2 shards in place and needs no unwrapping."""
    while True:
        if hasattr(model, "_orig_mod"):
            inner = model._orig_mod
        elif peft and hasattr(model, "get_base_model"):
            inner = model.get_base_model()
        elif type(model).__name__ in ("DistributedDataParallel", "DataParallel") and hasattr(model, "module"):
            inner = model.module
        else:
            return model
        if inner is model:
            return model
        model = inner


def is_bidirectional(model_or_config) -> bool:
    """True for a GBERT-style model: its config turns causal attention off (`is_causal=False`).
    Such a model answers by filling masks, so training and scoring both ask."""
    config = getattr(model_or_config, "config", model_or_config)
    return getattr(config, "is_causal", True) is False


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def autocast_for(model):
    """bf16 autocast for fp32 weights on CUDA (a model mid-training); nothing otherwise."""
    p = next(model.parameters())
    if p.device.type == "cuda" and p.dtype == torch.float32:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def default_batch_size(model) -> int:
    return 1024 if model_device(model).type == "cuda" else 256


def pad_id(tokenizer) -> int:
    """The id to pad batches with: the tokenizer's pad token, else EOS (GPT-style tokenizers
    have no pad token; padded positions are masked or ignored either way)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
