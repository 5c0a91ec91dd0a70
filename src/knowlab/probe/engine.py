"""The probe itself: trainable parameters, the frozen forward, the training loop, evaluation.

Per-task embedding updates (the paper's choice, the default) mean that each task sees its own
input embeddings, so the frozen model runs once per task. Those T variants are stacked on the
batch axis, so one call of the model serves all tasks: the same work as T calls, fewer launches.
`share_embedding_update=true` keeps one update for all tasks: one forward instead of T (about T
times cheaper), but then the update is fitted to all tasks at once and can no longer bend the
input toward one target; the heads (norm + linear per task and position) stay separate either way.

Only hidden states are read, so HF causal LMs are called through `base_model` (no LM head over
every position). Padding is on the right and needs no attention mask when a batch has none.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from knowlab.errors import KnowlabError
from knowlab.models.runtime import pick_device
from knowlab.probe.types import Examples, ProbeConfig
from knowlab.train.optim import lr_factor


class Probe(nn.Module):
    """Trainable parameters for T tasks read at P positions of L hidden layers.

    embed: rank-r update(s) E + U V of the frozen token embedding E (vocab x d); G = T groups
    (one per task) or G = 1 (shared, or rank 0). heads: per (layer, task, position) a norm with
    affine parameters and a linear classifier, all heads of a task batched in one einsum."""

    def __init__(self, embedding: torch.Tensor, n_classes: list[int], n_layers: int, n_pos: int, cfg: ProbeConfig):
        super().__init__()
        V, d = embedding.shape
        T, L, P = len(n_classes), n_layers, n_pos
        self.embedding = embedding  # frozen and owned by the model: deliberately not a parameter
        self.rank, self.norm = cfg.rank, cfg.norm
        self.groups = 1 if cfg.share_embedding_update or cfg.rank == 0 else T
        if cfg.rank:
            # U = 0: the probe starts from the pretrained model exactly; V random so U gets gradient.
            self.U = nn.Parameter(torch.zeros(self.groups, V, cfg.rank))
            self.V = nn.Parameter(torch.randn(self.groups, cfg.rank, d) * float(embedding.float().std()))
        self.norm_w = nn.Parameter(torch.ones(L, T, P, d))
        self.norm_b = nn.Parameter(torch.zeros(L, T, P, d))
        if cfg.norm == "batchnorm":
            self.register_buffer("running_mean", torch.zeros(L * T * P * d))
            self.register_buffer("running_var", torch.ones(L * T * P * d))
        self.W = nn.ParameterList([nn.Parameter(torch.zeros(L, P, d, m)) for m in n_classes])
        self.b = nn.ParameterList([nn.Parameter(torch.zeros(L, P, m)) for m in n_classes])

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, S) token ids -> (G*B, S, d): the batch once per embedding update."""
        base = F.embedding(ids, self.embedding)
        if not self.rank:
            return base
        delta = torch.einsum("gbsr,grd->gbsd", self.U[:, ids], self.V)  # (G, B, S, d)
        return (base.unsqueeze(0) + delta).flatten(0, 1).to(self.embedding.dtype)

    def heads(self, h: torch.Tensor) -> list[torch.Tensor]:
        """(B, L, T, P, d) hidden states -> per task t logits (B, L, P, M_t)."""
        if self.norm == "batchnorm":  # statistics per feature over the batch; one call for all heads
            x = F.batch_norm(h.reshape(h.shape[0], -1), self.running_mean, self.running_var,
                             self.norm_w.flatten(), self.norm_b.flatten(), self.training, 0.1, 1e-5)
            x = x.view(h.shape)
        else:
            x = F.layer_norm(h, h.shape[-1:]) * self.norm_w + self.norm_b
        return [torch.einsum("blpd,lpdm->blpm", x[:, :, t], W) + b for t, (W, b) in enumerate(zip(self.W, self.b))]

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Weight decay on the embedding update and the classifiers, not on norms and biases."""
        decayed = lambda n: n in ("U", "V") or n.startswith("W.")  # noqa: E731
        params = list(self.named_parameters())
        return [{"params": [p for n, p in params if decayed(n)], "weight_decay": weight_decay},
                {"params": [p for n, p in params if not decayed(n)], "weight_decay": 0.0}]


def _features(model, probe, ids, mask, pos, layers: list[int], n_tasks: int, amp: bool):
    """Hidden states at the read positions: (B, L, T, P, d), float32."""
    B, P = pos.shape
    G = probe.groups
    embeds = probe.embed(ids)  # (G*B, S, d)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and embeds.is_cuda):
        out = model(inputs_embeds=embeds, attention_mask=None if mask is None else mask.repeat(G, 1),
                    output_hidden_states=True, use_cache=False)
    rows = torch.arange(G * B, device=ids.device)[:, None]
    at = pos.repeat(G, 1)  # (G*B, P)
    h = torch.stack([out.hidden_states[l][rows, at] for l in layers], 1).float()  # (G*B, L, P, d)
    h = h.view(G, B, len(layers), P, -1).permute(1, 2, 0, 3, 4)  # (B, L, G, P, d)
    return h.expand(-1, -1, n_tasks, -1, -1) if G == 1 else h


def _loss(logits, y):
    """Sum over heads of each head's mean cross-entropy, so every head trains as if alone."""
    total = 0.0
    for t, lg in enumerate(logits):  # lg (B, L, P, M)
        target = y[:, t, None, None].expand(lg.shape[:3])
        total = total + F.cross_entropy(lg.permute(0, 3, 1, 2), target, reduction="none").mean(0).sum()
    return total


@contextmanager
def dropout_at(model, rate: float | None):
    """Every dropout of `model` at `rate` inside the block (None: left alone), restored after.
    HF models keep attention dropout either in an nn.Dropout or as a float attribute."""
    saved = []
    if rate is not None:
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                saved.append((module, "p", module.p))
            elif isinstance(getattr(module, "attention_dropout", None), float):
                saved.append((module, "attention_dropout", module.attention_dropout))
        for module, key, _ in saved:
            setattr(module, key, rate)
    try:
        yield
    finally:
        for module, key, value in saved:
            setattr(module, key, value)


def train_probe(model, train: Examples, test: Examples, n_classes: list[int], n_pos: int,
                cfg: ProbeConfig, pad_id: int, desc: str = "probe", show_progress: bool | None = False) -> dict:
    """Train a probe on `train`; return accuracies (L, T, P) on `test` and on training examples.

    The model is frozen in place: moved to the device, requires_grad off, left in eval mode.
    With `cfg.dropout` and a `cfg.dropout_rate`, its dropout runs at that rate while the probe
    trains (evaluation has dropout off either way)."""
    with dropout_at(model, cfg.dropout_rate if cfg.dropout else None):
        return _train_probe(model, train, test, n_classes, n_pos, cfg, pad_id, desc, show_progress)


def _train_probe(model, train: Examples, test: Examples, n_classes: list[int], n_pos: int,
                 cfg: ProbeConfig, pad_id: int, desc: str, show_progress: bool | None) -> dict:
    from knowlab.progress import progress

    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    base = getattr(model, "base_model", model)  # skip an LM head: only hidden states are read
    model.to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    embedding = model.get_input_embeddings().weight.detach()
    if int(np.concatenate(train.ids + test.ids).max()) >= embedding.shape[0]:
        raise KnowlabError(f"token ids reach beyond the model's {embedding.shape[0]} embeddings: "
                           "the model was not trained with this dataset's tokenizer")
    with torch.no_grad():  # one example tells how many hidden states the model returns
        ids0, mask0, _, _ = train.batch([0], pad_id, device)
        hidden = base(inputs_embeds=embedding[ids0], attention_mask=mask0, output_hidden_states=True,
                      use_cache=False).hidden_states
    if not hidden:
        raise KnowlabError(f"{type(model).__name__} returned no hidden_states; a probe needs a model "
                           "whose forward accepts output_hidden_states=True (HF style)")
    n_hidden = len(hidden)
    layers = _layers(cfg.layer, n_hidden)
    probe = Probe(embedding, n_classes, len(layers), n_pos, cfg).to(device)
    o = cfg.optim
    opt = torch.optim.AdamW(probe.param_groups(o.weight_decay), lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg.steps, o))
    rng = np.random.default_rng(cfg.seed)
    order, cursor = rng.permutation(len(train)), 0
    B = min(cfg.batch_size, len(train))
    micro = cfg.micro_batch or B
    losses, t0 = [], time.time()
    bar = progress(range(cfg.steps), desc=desc, disable=None if show_progress is None else not show_progress)
    for step in bar:
        if cursor + B > len(order):  # epochs over the training examples, reshuffled each time
            order, cursor = rng.permutation(len(train)), 0
        idx, cursor = order[cursor: cursor + B], cursor + B
        model.train(cfg.dropout)
        probe.train()
        total = 0.0
        for c in range(0, B, micro):
            ids, mask, pos, y = train.batch(idx[c: c + micro], pad_id, device)
            loss = _loss(probe.heads(_features(base, probe, ids, mask, pos, layers, len(n_classes), cfg.amp)), y)
            (loss * len(ids) / B).backward()
            total += loss.item() * len(ids) / B
        if o.grad_clip:
            torch.nn.utils.clip_grad_norm_(probe.parameters(), o.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(total / (len(layers) * len(n_classes) * n_pos))  # mean per head
        if step % 50 == 0 and hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    train_seconds = time.time() - t0
    sub = np.sort(rng.choice(len(train), min(len(train), cfg.max_train_eval), replace=False))
    return {
        "layers": layers,
        "test": evaluate(base, probe, test, range(len(test)), layers, pad_id, cfg),
        "train": evaluate(base, probe, train, sub, layers, pad_id, cfg),
        "loss": _curve(losses),
        "train_seconds": round(train_seconds, 2),
    }


def _layers(layer: int | str, n_hidden: int) -> list[int]:
    if layer == "all":
        return list(range(n_hidden))
    if not -n_hidden <= int(layer) < n_hidden:
        raise KnowlabError(f"layer {layer} is out of range: the model has hidden states 0..{n_hidden - 1} "
                           "(0 = embeddings, -1 = last layer) or 'all'")
    return [int(layer) % n_hidden]


def evaluate(base, probe, ex: Examples, idx, layers: list[int], pad_id: int, cfg: ProbeConfig) -> np.ndarray:
    """Accuracy (L, T, P) over examples `idx`, dropout off. Batches grouped by length to pad less."""
    idx = np.asarray(list(idx))
    if not len(idx):
        return np.zeros((len(layers), ex.y.shape[1], ex.pos.shape[1]))
    idx = idx[np.argsort([len(ex.ids[i]) for i in idx], kind="stable")]
    base.eval()
    probe.eval()
    device = next(probe.parameters()).device
    correct = 0
    with torch.no_grad():
        for c in range(0, len(idx), cfg.eval_batch_size):
            ids, mask, pos, y = ex.batch(idx[c: c + cfg.eval_batch_size], pad_id, device)
            logits = probe.heads(_features(base, probe, ids, mask, pos, layers, ex.y.shape[1], cfg.amp))
            hits = torch.stack([(lg.argmax(-1) == y[:, t, None, None]).sum(0) for t, lg in enumerate(logits)], 1)
            correct = correct + hits.cpu().numpy()  # (L, T, P)
    return correct / len(idx)


def _curve(losses: list[float], points: int = 50) -> list[list[float]]:
    """A short loss curve for the JSON: [step, mean loss over the preceding window]."""
    if not losses:
        return []
    w = max(1, math.ceil(len(losses) / points))
    return [[min(i + w, len(losses)), round(float(np.mean(losses[i: i + w])), 5)] for i in range(0, len(losses), w)]
