"""Finding and loading model folders: one place for what eval, finetuning and probing share.

A model argument may be an HF model folder (config.json) or a run folder holding one at
RUN/model; models load offline, and a folder whose tokenizer differs from the dataset's is
refused, because token ids would silently mean different things.
"""

from __future__ import annotations

from pathlib import Path

import torch

from knowlab.errors import KnowlabError


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


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise KnowlabError(f"device {device} asked for, but CUDA is not available")
    try:
        return torch.device(device)
    except RuntimeError:
        raise KnowlabError(f"unknown device '{device}'; valid: auto, cpu, cuda, cuda:N") from None


def load_model(path: str | Path, device: str = "auto", dtype: str = "auto"):
    """Load a causal LM folder offline, in eval mode. dtype auto: bf16 on CUDA, fp32 on CPU."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    folder = resolve_model_dir(path)
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
    return model.to(dev).eval()
