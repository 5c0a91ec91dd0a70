"""QA finetuning ([P] App. D): LoRA (default) or full finetuning on the P_train QAs.

Each example is a QA text `{question} Answer: {value}.` followed by EOS. The loss covers the
answer tokens only: every token after the prompt's (" value", the period, EOS);
the prompt and the right padding are labelled -100. A bidirectional GBERT model ([P] App. H)
instead sees the answer tokens replaced by mask tokens and restores them (train/mlm.py); its
evaluation fills the masks (eval/scorers.py picks that from the model). Batches draw examples
without replacement (a fresh shuffle per epoch). Paper defaults: AdamW eps 1e-6, wd 0.01, no
warm-up, cosine to 10% of the lr, batch 48, 50,000 steps; LoRA lr 3e-4 with r = 8 on q/v and
r' = 128 on the embedding.

Checkpoints every `checkpoint_every` steps let a killed run resume bit-identically
(finetune_loop.py). A run folder OUT (written atomically: it appears whole at the end):
    model/        merged HF model + tokenizer (AutoModelForCausalLM loads it offline)
    adapter/      the peft LoRA adapter (LoRA only); PeftModel.from_pretrained(base, adapter)
    run.json      resolved config, code version, seeds, machine, base model and data paths
    metrics.jsonl step, loss, lr, elapsed (seconds) every log_every steps; eval hook metrics every
                  eval_every (pretraining's schema)
    eval_qa.json  final evaluation (QA exact match, first token, BIO memorisation) if final_eval,
                  with eval_qa.md (the tables) and eval_predictions.jsonl (one line per question)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow.compute as pc
import torch
import torch.nn.functional as F

from knowlab.config import to_dict
from knowlab.data.dataset import Dataset
from knowlab.errors import KnowlabError
from knowlab.io import atomic_dir, partial_dir, run_metadata, write_json_atomic, write_text_atomic
from knowlab.models.runtime import is_bidirectional, load_model, pad_id, pick_device, resolve_model_dir
from knowlab.train.finetune_loop import NON_RESULT_KEYS, Batches, Loop, resume_point
from knowlab.train.lora import LoraSettings, apply_lora, merge
from knowlab.train.mlm import mask_answers, masked_answer_loss
from knowlab.train.optim import OptimConfig, build_optimizer, build_scheduler


@dataclass
class FinetuneOptimConfig(OptimConfig):
    """OptimConfig with the finetuning defaults; lr None picks the method's lr (see FinetuneConfig)."""

    lr: float | None = None  # type: ignore[assignment]
    weight_decay: float = 0.01
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1

    def validate(self) -> None:
        if self.lr is not None and self.lr <= 0:
            raise KnowlabError(f"optim.lr must be positive, got {self.lr}")
        if self.warmup_steps < 0:
            raise KnowlabError(f"optim.warmup_steps must be 0 or more, got {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise KnowlabError(f"optim.min_lr_ratio must be within [0, 1], got {self.min_lr_ratio}")


@dataclass
class FinetuneConfig:
    method: Literal["lora", "full"] = "lora"
    steps: int = 50_000
    batch_size: int = 48
    # optim.lr, when set, overrides both. Separate defaults because full finetuning wants a cooler
    # lr: the paper's LoRA lr is 3e-4; of its full-finetune grid {1e-3, 3e-4, 1e-4}, 1e-4 worked
    # on CALIBRATION.md's models and hotter or longer runs lost QA accuracy.
    lora_lr: float = 3e-4
    full_lr: float = 1e-4
    optim: FinetuneOptimConfig = field(default_factory=FinetuneOptimConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    seed: int = 0  # LoRA init and example order
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0  # torch.set_num_threads; 0 leaves torch's default
    log_every: int = 10
    eval_every: int = 0  # steps between eval hooks on samples of P_train/P_test; 0 = end only
    eval_people: int = 200  # people per split sampled by the periodic eval hooks
    final_eval: bool = True  # evaluate the finished model on both splits -> OUT/eval_qa.json
    final_eval_people: int = 0  # people per split in the final eval; 0 = all
    beams: int = 1  # final eval decoding: 1 greedy, >1 beam search (the paper uses 4)
    checkpoint_every: int = 1000  # steps; 0 = none (a killed run then starts over)
    keep_last: int = 2  # checkpoints kept on disk

    def validate(self) -> None:
        for key in ("steps", "batch_size", "log_every", "beams"):
            if getattr(self, key) < 1:
                raise KnowlabError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.keep_last < 1:
            raise KnowlabError(f"keep_last must be at least 1, got {self.keep_last}")
        for key in ("eval_every", "eval_people", "final_eval_people", "threads", "checkpoint_every"):
            if getattr(self, key) < 0:
                raise KnowlabError(f"{key} must be 0 or more, got {getattr(self, key)}")
        for key in ("lora_lr", "full_lr"):
            if getattr(self, key) <= 0:
                raise KnowlabError(f"{key} must be positive, got {getattr(self, key)}")

    def lr(self) -> float:
        if self.optim.lr is not None:
            return self.optim.lr
        return self.lora_lr if self.method == "lora" else self.full_lr


# ---- data -------------------------------------------------------------------------------------

def qa_examples(ds: Dataset, split: str = "train") -> list[tuple[list[int], int]]:
    """(token ids of the QA text + EOS, index of the first answer token) for each QA of `split`.

    The answer starts right after the prompt text's tokens (`prompt_lengths`): where the value's
    leading space is a token of its own, the model learns to emit it, as generation requires.
    """
    from knowlab.eval.qa import prompt_lengths

    table = ds.qa.filter(pc.equal(ds.qa["split"], split)).select(["prompt", "input_ids", "answer_tok_start"])
    eos = ds.tokenizer.eos_token_id
    cols = table.to_pydict()
    starts = prompt_lengths(ds.tokenizer, cols["prompt"], cols["input_ids"], cols["answer_tok_start"])
    return [(ids + [eos], start) for ids, start in zip(cols["input_ids"], starts)]


def collate(examples: list[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids, attention_mask, and labels: answer tokens and EOS, else -100."""
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for row, (seq, start) in enumerate(examples):
        ids[row, :len(seq)] = torch.as_tensor(seq)
        mask[row, :len(seq)] = 1
        labels[row, start:len(seq)] = ids[row, start:len(seq)]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def batches(n: int, batch_size: int, seed: int) -> Batches:
    """Endless index batches: each epoch a fresh permutation, drawn without replacement."""
    return Batches(n, batch_size, seed)


def answer_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled (answer) tokens."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten(), ignore_index=-100)


# ---- the run ----------------------------------------------------------------------------------

def finetune(cfg: FinetuneConfig, model_dir: str | Path, data: str | Path | Dataset, out: str | Path,
             overwrite: bool = False, show_progress: bool = False, resume: str = "auto") -> dict:
    """Finetune `model_dir` (an HF folder or a run folder) on `data`'s P_train QAs into `out`.

    resume: "auto" continues a killed run from its newest checkpoint, "never" refuses to when
    there is one, a path resumes from that checkpoint folder (see finetune_loop.py).

    Returns a summary: final loss, paths, and the final evaluation when cfg.final_eval.
    """
    from knowlab.eval.evaluate import evaluate
    from knowlab.eval.hooks import make_eval_hooks, run_hooks
    from knowlab.eval.report import result_tables

    out = Path(out)
    if out.exists() and not overwrite:
        raise KnowlabError(f"output folder already exists: {out} (pass --overwrite to replace it)")
    ds = data if isinstance(data, Dataset) else Dataset(data)
    tok = ds.tokenizer
    examples = qa_examples(ds, "train")
    if not examples:
        raise KnowlabError(f"{ds.path}: no P_train QAs to finetune on")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    base_folder = resolve_model_dir(model_dir)
    model = load_model(base_folder, device="cpu", dtype="float32", tokenizer=tok)
    mlm = is_bidirectional(model)
    limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    longest = max(len(ids) for ids, _ in examples)
    if limit and longest > limit:
        raise KnowlabError(f"a QA example has {longest} tokens but the model takes at most {limit} positions")
    torch.manual_seed(cfg.seed)  # LoRA's A init; right before it, so loading cannot shift it
    if cfg.method == "lora":
        model = apply_lora(model, cfg.lora)
    model.to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optim_cfg = FinetuneOptimConfig(**{**to_dict(cfg.optim), "lr": cfg.lr()})
    optimizer = build_optimizer(trainable, optim_cfg)
    scheduler = build_scheduler(optimizer, cfg.steps, optim_cfg)
    # A bidirectional (GBERT) model learns to fill the masked answer (train/mlm.py); the hooks
    # and the final evaluation see that from the model and score it by mask filling.
    hooks = make_eval_hooks(ds, every=0, max_people=cfg.eval_people, seed=cfg.seed) if cfg.eval_every else []
    pad = pad_id(tok)
    work = partial_dir(out)
    identity = {"config": {k: v for k, v in to_dict(cfg).items() if k not in NON_RESULT_KEYS},
                "base_model": str(base_folder.resolve()), "data": str(Path(ds.path).resolve())}
    point = resume_point(work, resume, identity)

    def loss_of(indices: list[int]) -> torch.Tensor:
        batch = collate([examples[i] for i in indices], pad)
        if mlm:
            batch = mask_answers(batch, tok.mask_token_id, tok.eos_token_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            return masked_answer_loss(model, batch) if mlm else answer_loss(model, batch)

    evaluate_now = (lambda step: run_hooks(hooks, step, model, tok)) if hooks else None
    loop = Loop(cfg, model, optimizer, scheduler, trainable, optim_cfg.grad_clip, device, work,
                batches(len(examples), cfg.batch_size, cfg.seed))
    loss_value, train_s = loop.run(point, identity, loss_of, evaluate_now, show_progress)

    with atomic_dir(out, overwrite=overwrite) as tmp:
        shutil.copyfile(work / "metrics.jsonl", tmp / "metrics.jsonl")
        if cfg.method == "lora":
            model.save_pretrained(str(tmp / "adapter"), save_embedding_layers=False)
            model = merge(model)
        model.eval()
        model.save_pretrained(str(tmp / "model"))
        tok.save_pretrained(str(tmp / "model"))
        meta = run_metadata(to_dict(cfg), {"seed": cfg.seed})
        meta.update({"kind": "knowlab-finetune", "base_model": str(base_folder), "data": str(ds.path),
                     "effective_lr": cfg.lr(), "examples": len(examples),
                     "trainable_parameters": sum(p.numel() for p in trainable),
                     "train_seconds": round(train_s, 2), "final_loss": loss_value})
        write_json_atomic(tmp / "run.json", meta)
        summary = {"out": str(out), "final_loss": loss_value, "train_seconds": round(train_s, 2)}
        if cfg.final_eval:
            result, preds = evaluate(model, tok, ds, splits=("train", "test"), beams=cfg.beams,
                                     max_people=cfg.final_eval_people or None, seed=cfg.seed,
                                     show_progress=show_progress)
            result["model"] = str(out / "model")
            write_json_atomic(tmp / "eval_qa.json", result)
            write_text_atomic(tmp / "eval_qa.md", result_tables(result, name=out.name) + "\n")
            with open(tmp / "eval_predictions.jsonl", "w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(p, ensure_ascii=False) + "\n" for p in preds)
            summary["eval"] = result
    shutil.rmtree(work, ignore_errors=True)  # the run is whole at `out`; its checkpoints are spent
    return summary
