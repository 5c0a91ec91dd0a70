"""QA evaluation speed: knowlab's batched greedy evaluator vs HF `generate` one question at a time.

Both run on the same model and the same P_test questions, greedy, with the same stop tokens and
max_new_tokens, and the script checks that they produce the same answers. Answers/s is questions
answered per second of generation (tokenization and scoring excluded for both).

CPU (the acceptance check: >= 10x):
    python benchmarks/bench_eval.py --people 100 --questions 300 --hf-questions 300
GPU (target: the `small` model on N=100,000's 300,000 P_test questions in <= 60 s):
    python benchmarks/bench_eval.py --device cuda --size small --data DATA_100K --questions 0 --hf-questions 200
The model is randomly initialised unless --model is given: an untrained model rarely emits a stop
token, so every answer runs to max_new_tokens on both sides (the slowest case for the batched loop).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="an existing dataset folder (default: generate --people people)")
    ap.add_argument("--people", type=int, default=100)
    ap.add_argument("--model", help="an HF model folder (default: a fresh --arch/--size model)")
    ap.add_argument("--arch", default="gpt2-rotary")
    ap.add_argument("--size", default="tiny", help="tiny = 4 layers x 128; small = 12 x 768")
    ap.add_argument("--questions", type=int, default=300, help="P_test questions for knowlab (0 = all)")
    ap.add_argument("--hf-questions", type=int, default=300, help="of those, how many HF generate answers one by one")
    ap.add_argument("--batch-size", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--dtype", default="auto", help="auto: bf16 on CUDA, fp32 on CPU")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from knowlab.config import from_dict
    from knowlab.data.config import DataConfig
    from knowlab.data.dataset import Dataset, write_dataset
    from knowlab.eval.qa import greedy_generate, max_answer_tokens, qa_rows
    from knowlab.models.runtime import load_model
    from knowlab.eval.scoring import answer_from_tokens, stop_token_mask
    from knowlab.models.presets import ModelConfig, build_model

    if args.data:
        ds = Dataset(args.data)
    else:
        root = Path(tempfile.mkdtemp(prefix="bench_eval_"))
        write_dataset(from_dict(DataConfig, {"people": args.people, "variant": "single", "seed": 0}), root / "ds")
        ds = Dataset(root / "ds")
    tok = ds.tokenizer
    dev = torch.device(args.device)
    if args.model:
        model = load_model(args.model, device=args.device, dtype=args.dtype)
    else:
        model = build_model(from_dict(ModelConfig, {"arch": args.arch, "size": args.size, "context": 512}),
                            len(tok), tok.eos_token_id, tok.pad_token_id, seed=0)
        dtype = torch.bfloat16 if (args.dtype == "auto" and dev.type == "cuda") or args.dtype == "bfloat16" else torch.float32
        model = model.to(dev, dtype=dtype).eval()

    rows = qa_rows(ds, "test")
    if args.questions:
        rows = rows[: args.questions]
    prompts = [r["prompt_ids"] for r in rows]
    max_new = max_answer_tokens(ds) + 2
    stops = stop_token_mask(tok, model.get_output_embeddings().weight.shape[0])
    stop_ids = torch.nonzero(stops).flatten().tolist()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    greedy_generate(model, prompts[:8], max_new, stops, tok.pad_token_id, args.batch_size)  # warm-up
    sync()
    t = time.perf_counter()
    ours = greedy_generate(model, prompts, max_new, stops, tok.pad_token_id, args.batch_size)
    sync()
    ours_s = time.perf_counter() - t

    n_hf = min(args.hf_questions, len(prompts))
    hf = []
    with torch.no_grad():
        model.generate(torch.tensor([prompts[0]], device=dev), max_new_tokens=2, do_sample=False,
                       eos_token_id=stop_ids, pad_token_id=tok.pad_token_id)  # warm-up
        sync()
        t = time.perf_counter()
        for p in prompts[:n_hf]:
            ids = torch.tensor([p], device=dev)
            g = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new, do_sample=False,
                               eos_token_id=stop_ids, pad_token_id=tok.pad_token_id)
            hf.append(g[0, len(p):].tolist())
        sync()
    hf_s = time.perf_counter() - t

    same = sum(answer_from_tokens(a, tok) == answer_from_tokens(b, tok) for a, b in zip(ours, hf))
    tokens = sum(len(o) for o in ours)
    result = {
        "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "model": args.model or f"{args.arch}/{args.size} (random init)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "questions": len(prompts), "max_new_tokens": max_new, "generated_tokens": tokens,
        "knowlab_s": round(ours_s, 3), "knowlab_answers_per_s": round(len(prompts) / ours_s, 1),
        "hf_questions": n_hf, "hf_s": round(hf_s, 3), "hf_answers_per_s": round(n_hf / hf_s, 1),
        "speedup": round((len(prompts) / ours_s) / (n_hf / hf_s), 1),
        "same_answers": f"{same}/{n_hf}",
    }
    print(json.dumps(result, indent=2))
    return 0 if same == n_hf else 1


if __name__ == "__main__":
    sys.exit(main())
