"""The local backend: a Hugging Face causal LM from a folder on disk, batched with left padding.

Sampling is seeded per prompt, not per batch: each row draws its own Gumbel noise from a
generator seeded with that prompt's seed and takes the argmax of (temperature- and top-p-
processed logits + noise), which is an exact draw from the same distribution as multinomial
sampling. So a prompt's output does not depend on which other prompts share its batch, and a
cached or resumed run agrees with a fresh one.

`tiny_lm` builds a few-hundred-kB model from a config (optionally fitted briefly on some texts)
for demos, tests and benchmarks: nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from knowlab.augment.base import Rewriter, SamplingParams
from knowlab.errors import KnowlabError


def _fingerprint(folder: Path) -> str:
    """Config plus the size and mtime of each weight file: a retrained model at the same path
    must not be served from the cache of the old one."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.name == "config.json":
            digest.update(path.read_bytes())
        elif path.suffix in (".safetensors", ".bin", ".pt", ".gguf"):
            st = path.stat()
            digest.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _gumbel_sampler(temperature: float, top_p: float, seeds: Sequence[int]):
    import torch
    from transformers import LogitsProcessor

    class SeededSampler(LogitsProcessor):
        """Temperature, top-p, then per-row Gumbel noise; generate() then takes the argmax."""

        def __init__(self):
            self.generators = [torch.Generator().manual_seed(int(s) & 0xFFFF_FFFF_FFFF) for s in seeds]

        def __call__(self, input_ids, scores):
            scores = scores.float() / temperature
            if top_p < 1.0:
                sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
                probs = sorted_scores.softmax(dim=-1)
                # drop a token when the tokens above it already hold top_p of the mass
                drop_sorted = (probs.cumsum(dim=-1) - probs) > top_p
                drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
                scores = scores.masked_fill(drop, float("-inf"))
            vocab = scores.shape[-1]
            u = torch.stack([torch.rand(vocab, generator=g, dtype=torch.float64) for g in self.generators])
            gumbel = -torch.log(-torch.log(u.clamp_min(1e-300)))
            return scores + gumbel.to(scores.device, scores.dtype)

    return SeededSampler()


class HFRewriter(Rewriter):
    """`hf:PATH`: generation with a local model folder (AutoModelForCausalLM + AutoTokenizer)."""

    def __init__(self, path: str | Path, params: SamplingParams | None = None, device: str = "auto",
                 dtype: str = "auto", batch_size: int = 8, chat: bool = False):
        super().__init__(params)
        self.path = Path(path).expanduser()
        if not (self.path / "config.json").is_file():
            raise KnowlabError(f"hf:{path}: not a local model folder (no config.json); give the folder "
                               "holding config.json, the weights and the tokenizer")
        if batch_size < 1:
            raise KnowlabError(f"hf:{path}: batch_size must be at least 1, got {batch_size}")
        import torch  # only now: a bad path fails fast, without loading torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = f"hf:{self.path}"
        self.batch_size = batch_size
        self.chat = chat
        from knowlab.models.runtime import pick_device

        self.device = pick_device(device)
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype, None)
        if torch_dtype is None:
            raise KnowlabError(f"hf:{path}: unknown dtype {dtype!r}; valid: auto, float32, bfloat16, float16")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(str(self.path), local_files_only=True, dtype=torch_dtype)
        except (OSError, ValueError) as exc:
            raise KnowlabError(f"hf:{path}: cannot load the model ({str(exc).splitlines()[0]})") from None
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"  # new tokens must follow every prompt directly
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if chat and not getattr(self.tokenizer, "chat_template", None):
            raise KnowlabError(f"hf:{path}: chat=1 but the tokenizer has no chat template")
        self._id = f"{self.name}@{_fingerprint(self.path)}"

    @property
    def identity(self) -> str:
        return self._id

    def _text(self, prompt: str) -> str:
        if not self.chat:
            return prompt
        return self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                  add_generation_prompt=True)

    def _generate(self, prompts: list[str], seeds: list[int]) -> list[str]:
        texts = [self._text(p) for p in prompts]
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=not self.chat)["input_ids"]]
        # Similar lengths share a batch (less padding); outputs go back to the caller's order.
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        out: list[str] = [""] * len(texts)
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            for i, text in zip(idx, self._batch([texts[i] for i in idx], [seeds[i] for i in idx])):
                out[i] = text
        return out

    def _batch(self, texts: list[str], seeds: list[int]) -> list[str]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not self.chat).to(self.device)
        p = self.params
        # A fresh config, so sampling flags saved with the model cannot override ours.
        config = GenerationConfig(max_new_tokens=p.max_new_tokens, do_sample=False, num_beams=1,
                                  eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self.tokenizer.pad_token_id)
        processors = LogitsProcessorList()
        if p.temperature > 0:
            processors.append(_gumbel_sampler(p.temperature, p.top_p, seeds))
        with torch.inference_mode():
            out = self.model.generate(**enc, generation_config=config, logits_processor=processors)
        new = out[:, enc["input_ids"].shape[1]:]
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)

    def close(self) -> None:
        self.model = None


def tiny_lm(out: str | Path, texts: Sequence[str | tuple[str, str]], vocab_size: int = 512, n_layer: int = 2, n_embd: int = 64,
            n_head: int = 2, context: int = 512, steps: int = 0, lr: float = 3e-3, seed: int = 0,
            until_exact: bool = False, do_sample: bool = True) -> Path:
    """A GPT-2-shaped model folder (config, weights, knowlab BPE tokenizer) built at `out`.

    The tokenizer is trained on `texts`; with `steps` > 0 the model is also fitted on them (full
    batch, AdamW), enough for a tiny model to learn a handful of texts by heart; `until_exact` stops
    as soon as greedy decoding reproduces every text. A (prompt, completion) pair is trained on the completion
    only, which is how a rewriter is used and much quicker to learn. `do_sample` is
    saved in its generation config, which servers such as `transformers serve` follow.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from knowlab.data.tokenizer import train_tokenizer

    out = Path(out)
    torch.manual_seed(seed)
    pairs = [(t, "") if isinstance(t, str) else (t[0], t[1]) for t in texts]
    tok = train_tokenizer([p + c for p, c in pairs], vocab_size)
    config = GPT2Config(vocab_size=len(tok), n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_positions=context,
                        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = GPT2LMHeadModel(config)
    done, final = 0, float("nan")
    if steps > 0:
        rows = []
        for prompt, completion in pairs:
            head = tok(prompt, add_special_tokens=False)["input_ids"] if completion else []
            ids = tok(prompt + completion, add_special_tokens=False)["input_ids"][: context - 1] + [tok.eos_token_id]
            rows.append((ids, min(len(head), len(ids) - 1)))
        width = max(len(ids) for ids, _ in rows)
        batch = torch.full((len(rows), width), tok.pad_token_id)
        labels = torch.full((len(rows), width), -100)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (ids, n_prompt) in enumerate(rows):
            batch[i, : len(ids)] = torch.tensor(ids)
            labels[i, n_prompt: len(ids)] = torch.tensor(ids[n_prompt:])
            mask[i, : len(ids)] = 1
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        model.train()
        target = labels[:, 1:]
        for done in range(1, steps + 1):
            res = model(input_ids=batch, attention_mask=mask, labels=labels, use_cache=False)
            loss, final = res.loss, res.loss.item()
            # Stop once greedy decoding would reproduce every text: each next token is the argmax.
            if until_exact and bool((res.logits[:, :-1].argmax(-1) == target)[target != -100].all()):
                break
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
    model.generation_config.do_sample = do_sample
    model.generation_config.max_new_tokens = 256
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    (out / "knowlab_tiny.json").write_text(json.dumps({"texts": len(texts), "steps": done, "loss": final, "seed": seed}) + "\n")
    return out
