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
from collections.abc import Callable
from pathlib import Path

import torch


def measure(model, ds, questions: int = 0, hf_questions: int = 100, batch_size: int = 0,
            report: Callable[[dict], None] | None = None, hf_report_every: int = 10) -> dict:
    """Answers/s of knowlab's batched greedy evaluator and of HF `generate` one question at a time,
    on `model` (already on its device and dtype) and the first `questions` P_test QAs of `ds`
    (0 = all), with the number of the first `hf_questions` answers that agree.

    `report`, when given, receives the partial result after the knowlab pass and every
    `hf_report_every` HF questions, so a caller that is cut short keeps what was measured.
    """
    from knowlab.eval.qa import greedy_generate, max_answer_tokens, qa_rows
    from knowlab.eval.scoring import answer_from_tokens, stop_token_mask

    tok = ds.tokenizer
    dev = next(model.parameters()).device
    rows = qa_rows(ds, "test")
    if questions:
        rows = rows[:questions]
    prompts = [r["prompt_ids"] for r in rows]
    max_new = max_answer_tokens(ds) + 2
    stops = stop_token_mask(tok, model.get_output_embeddings().weight.shape[0])
    stop_ids = torch.nonzero(stops).flatten().tolist()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def emit(result: dict) -> dict:
        if report is not None:
            report(dict(result))
        return result

    greedy_generate(model, prompts[:8], max_new, stops, tok.pad_token_id, batch_size)  # warm-up
    sync()
    t = time.perf_counter()
    ours = greedy_generate(model, prompts, max_new, stops, tok.pad_token_id, batch_size)
    sync()
    ours_s = time.perf_counter() - t
    result = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "parameters": sum(p.numel() for p in model.parameters()),
        "questions": len(prompts), "max_new_tokens": max_new, "generated_tokens": sum(len(o) for o in ours),
        "knowlab_s": round(ours_s, 3), "knowlab_answers_per_s": round(len(prompts) / ours_s, 1),
    }
    emit(result)

    n_hf = min(hf_questions, len(prompts))
    hf: list[list[int]] = []
    with torch.no_grad():
        model.generate(torch.tensor([prompts[0]], device=dev), max_new_tokens=2, do_sample=False,
                       eos_token_id=stop_ids, pad_token_id=tok.pad_token_id)  # warm-up
        sync()
        t = time.perf_counter()
        for p in prompts[:n_hf]:
            ids = torch.tensor([p], device=dev)
            g = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new, do_sample=False,
                               eos_token_id=stop_ids, pad_token_id=tok.pad_token_id)
            hf.append(g[0, len(p):].tolist())  # .tolist() waits for the GPU: the clock is honest
            if len(hf) % hf_report_every == 0 and len(hf) < n_hf:
                emit(_with_hf(result, ours, hf, time.perf_counter() - t, tok, answer_from_tokens))
    return emit(_with_hf(result, ours, hf, time.perf_counter() - t, tok, answer_from_tokens))


def _with_hf(result: dict, ours: list, hf: list, hf_s: float, tok, answer_from_tokens) -> dict:
    same = sum(answer_from_tokens(a, tok) == answer_from_tokens(b, tok) for a, b in zip(ours, hf))
    hf_rate = len(hf) / hf_s if hf_s > 0 else float("nan")
    return {**result, "hf_questions": len(hf), "hf_s": round(hf_s, 3), "hf_answers_per_s": round(hf_rate, 1),
            "speedup": round(result["knowlab_answers_per_s"] / hf_rate, 1), "same_answers": f"{same}/{len(hf)}",
            "all_same": same == len(hf)}


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

    from knowlab.data.dataset import Dataset
    from knowlab.models.runtime import load_model

    ds = Dataset(args.data) if args.data else Dataset(generate(args.people))
    if args.model:
        model = load_model(args.model, device=args.device, dtype=args.dtype)
    else:
        model = fresh_model(ds, args.arch, args.size, torch.device(args.device), args.dtype)
    result = measure(model, ds, args.questions, args.hf_questions, args.batch_size)
    result["model"] = args.model or f"{args.arch}/{args.size} (random init)"
    print(json.dumps(result, indent=2))
    return 0 if result["all_same"] else 1


def generate(people: int, root: Path | None = None, **data) -> Path:
    """A bioS `single` dataset of `people` people (in a fresh temporary folder by default)."""
    from knowlab.config import from_dict
    from knowlab.data.config import DataConfig
    from knowlab.data.dataset import write_dataset

    root = root or Path(tempfile.mkdtemp(prefix="bench_eval_"))
    write_dataset(from_dict(DataConfig, {"people": people, "variant": "single", "seed": 0, **data}), root / "ds")
    return root / "ds"


def fresh_model(ds, arch: str = "gpt2-rotary", size: str = "tiny", device: torch.device = torch.device("cpu"),
                dtype: str = "auto", **model):
    """A randomly initialised model for `ds`'s tokenizer, in eval mode (bf16 on CUDA for auto)."""
    from knowlab.config import from_dict
    from knowlab.models.presets import ModelConfig, build_model

    tok = ds.tokenizer
    m = build_model(from_dict(ModelConfig, {"arch": arch, "size": size, "context": 512, **model}),
                    len(tok), tok.eos_token_id, tok.pad_token_id, seed=0)
    bf16 = (dtype == "auto" and device.type == "cuda") or dtype == "bfloat16"
    return m.to(device, dtype=torch.bfloat16 if bf16 else torch.float32).eval()


if __name__ == "__main__":
    sys.exit(main())
