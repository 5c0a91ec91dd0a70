"""One interface over every way of rewriting text, and the SPEC strings that pick a backend.

    rewriter = load_rewriter("hf:/models/llama-2-7b", SamplingParams(temperature=0.7))
    outputs = rewriter.rewrite(prompts, seeds)   # one completion per prompt, same order

SPEC grammar, `BACKEND:LOCATION#key=value,key=value` (the `#...` part is optional):
- `hf:PATH`: a local Hugging Face causal-LM folder (config, weights, tokenizer). Keys:
  `device` (auto, cpu, cuda, cuda:1), `dtype` (auto, float32, bfloat16, float16),
  `batch_size` (default 8), `chat` (1: wrap each prompt in the tokenizer's chat template).
- `openai:URL` or a bare `http://...` / `https://...` URL: an OpenAI-compatible server (vLLM,
  llama.cpp server, Ollama, `transformers serve`). URL is the API base (`http://host:8000/v1`)
  or a full endpoint (`.../v1/completions`, `.../v1/chat/completions`). Keys: `model` (asked
  of `/v1/models` when the server has exactly one), `api` (completions, the default, sends the
  prompt as is, like the paper's base Llama; chat sends it as one user message), `concurrency`
  (parallel requests, default 4), `timeout` (seconds per request, default 120), `retries`
  (extra attempts after a failure, default 3), `backoff` (first wait in seconds, doubled per
  retry, default 0.5), `api_key_env` (environment variable holding a bearer token).
- `shuffle`: no model; sentence shuffling (see `shuffle.py`), only for `--style shuffle`.

Seeds: every prompt carries its own sampling seed, so attempt k of a rejection-sampling loop
draws a different sample and a rerun draws the same one (the cache keys on it).
"""

from __future__ import annotations

import re
from typing import Any

from knowlab.augment.base import Rewriter, SamplingParams, cut_at_stop  # noqa: F401  (the interface, re-exported)
from knowlab.errors import KnowlabError

SPEC_HELP = ("hf:/path/to/model_dir[#batch_size=8,device=cpu], "
             "openai:http://host:8000/v1#model=NAME (or a bare http(s):// URL), or shuffle")


_OPTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=[^,]*(,[A-Za-z_][A-Za-z0-9_]*=[^,]*)*$")


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """`"hf:/m#batch_size=4"` -> `("hf", "/m", {"batch_size": "4"})`; bare URLs are `openai`."""
    if not isinstance(spec, str) or not spec.strip():
        raise KnowlabError(f"empty rewriter spec; valid: {SPEC_HELP}")
    spec = spec.strip()
    options: dict[str, str] = {}
    head, sep, tail = spec.rpartition("#")
    # Only a trailing `#k=v,...` is options, so a '#' inside a path or URL stays part of it.
    if sep and _OPTION.match(tail):
        spec = head
        options = dict(item.split("=", 1) for item in tail.split(","))
    if spec == "shuffle":
        return "shuffle", "", options
    if spec.startswith(("http://", "https://")):
        return "openai", spec, options
    backend, sep, location = spec.partition(":")
    if not sep or backend not in ("hf", "openai") or not location:
        raise KnowlabError(f"rewriter spec '{spec}' is not valid; valid: {SPEC_HELP}")
    if backend == "openai" and not location.startswith(("http://", "https://")):
        raise KnowlabError(f"rewriter spec '{spec}': openai: needs an http:// or https:// URL")
    return backend, location, options


def _typed(options: dict[str, str], key: str, cast, default, spec: str):
    if key not in options:
        return default
    try:
        return cast(options.pop(key))
    except ValueError:
        raise KnowlabError(f"rewriter spec '{spec}': option {key} has a bad value") from None


def _flag(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def load_rewriter(spec: str | Rewriter, params: SamplingParams | None = None) -> Rewriter:
    """The backend a SPEC string names (a Rewriter passes through unchanged)."""
    if isinstance(spec, Rewriter):
        return spec
    backend, location, options = parse_spec(spec)
    opts = dict(options)
    # Options are read (and unknown ones refused) before a backend loads anything heavy.
    if backend == "hf":
        kwargs: dict[str, Any] = dict(
            device=_typed(opts, "device", str, "auto", spec),
            dtype=_typed(opts, "dtype", str, "auto", spec),
            batch_size=_typed(opts, "batch_size", int, 8, spec),
            chat=_typed(opts, "chat", _flag, False, spec),
        )
    elif backend == "openai":
        kwargs = dict(
            model=_typed(opts, "model", str, None, spec),
            api=_typed(opts, "api", str, None, spec),
            concurrency=_typed(opts, "concurrency", int, 4, spec),
            timeout=_typed(opts, "timeout", float, 120.0, spec),
            retries=_typed(opts, "retries", int, 3, spec),
            backoff=_typed(opts, "backoff", float, 0.5, spec),
            api_key_env=_typed(opts, "api_key_env", str, None, spec),
        )
    else:
        kwargs = {}
    if opts:
        raise KnowlabError(f"rewriter spec '{spec}': unknown option(s) {', '.join(sorted(opts))} for {backend}")
    if backend == "shuffle":
        from knowlab.augment.shuffle import ShuffleRewriter

        return ShuffleRewriter(params)
    if backend == "hf":
        from knowlab.augment.local import HFRewriter

        return HFRewriter(location, params, **kwargs)
    from knowlab.augment.http import OpenAIRewriter

    return OpenAIRewriter(location, params, **kwargs)
