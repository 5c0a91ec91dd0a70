"""Knowledge augmentation with a rewrite model: bioR ([P] App. A.2) and users' own documents.

- `rewriter`: the Rewriter interface and SPEC strings (`hf:DIR`, `openai:URL#model=NAME`, `shuffle`);
  backends in `local` (HF model folder) and `http` (OpenAI-compatible server).
- `bior.generate_bior`: a bioR dataset folder with the bioS layout.
- `augment.augment_file`: `knowlab augment` on a JSONL of {id, text, facts}.
- `facts`, `shuffle`, `cache`: fact checking, model-free shuffling, caching and resumable output.
"""

from knowlab.augment.rewriter import Rewriter, SamplingParams, load_rewriter, parse_spec

__all__ = ["Rewriter", "SamplingParams", "load_rewriter", "parse_spec"]
