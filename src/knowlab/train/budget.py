"""Pretraining budgets in exposures: how many times each person's knowledge is read.

One exposure of a person is one pass over one of their bio entries. An epoch of the bio stream
reads every entry once (packing.py), so a person with M entries gets M exposures per epoch, and
after S steps every person of a group has

    exposures = S * batch * context * (1 - qa_ratio) / bio_tokens_per_epoch * M

(a window advances `context` tokens of its stream; a share qa_ratio of the windows are QAs in
mixed training; bio tokens count each entry's EOS). The paper's 80,000 steps of 96 x 512 tokens
over 100,000 single bios of about 73 GPT-2 tokens give about 540.

`pretrain.exposures=E` asks for the steps that give every person at least E exposures: the
group with the fewest (the minority of the celebrity study, whose M is 1 against the
celebrities' 5) gets exactly E. Steps then follow the dataset, so datasets with different N,
variants, tokenizers or QA ratios get the same number of passes over each person's bios.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from knowlab.errors import KnowlabError

PAPER_EXPOSURES = 540  # [P] App. C: 80,000 x 96 x 512 tokens over 100,000 bios of ~73 GPT-2 tokens


@dataclass(frozen=True)
class GroupStats:
    people: int
    entries: int
    tokens: int  # entry tokens, each entry's EOS included

    @property
    def entries_per_person(self) -> float:
        return self.entries / self.people

    @property
    def tokens_per_entry(self) -> float:
        return self.tokens / self.entries


def bio_stats(dataset) -> dict[str, GroupStats]:
    """Per group (main, or celebrity and minority): people, bio entries and tokens of one epoch."""
    table = dataset.table("bios", columns=["person_id", "group", "input_ids"])
    lengths = np.diff(table.column("input_ids").combine_chunks().offsets.to_numpy()) + 1  # + EOS
    groups = np.asarray(table.column("group").to_pylist(), dtype=object)
    people = table.column("person_id").to_numpy()
    stats = {}
    for name in sorted(set(groups.tolist())):
        mask = groups == name
        stats[name] = GroupStats(people=int(len(np.unique(people[mask]))), entries=int(mask.sum()),
                                 tokens=int(lengths[mask].sum()))
    if not stats or sum(s.tokens for s in stats.values()) == 0:
        raise KnowlabError(f"{dataset.path}: the dataset has no bio tokens, so no exposure budget can be resolved")
    return stats


@dataclass(frozen=True)
class Budget:
    steps: int
    exposures: dict[str, float]  # per group, per person
    tokens_per_entry: dict[str, float]
    entries_per_person: dict[str, float]
    bio_tokens_per_epoch: int
    bio_tokens_per_step: float  # expected: batch x context x (1 - qa_ratio)
    tokens_per_step: int  # batch x context, bios and QAs
    asked: str  # "exposures" (steps were derived) or "steps" (exposures were derived)

    @property
    def min_exposures(self) -> float:
        return min(self.exposures.values())

    def to_dict(self) -> dict:
        out = asdict(self)
        out["exposures"] = {k: round(v, 2) for k, v in self.exposures.items()}
        out["tokens_per_entry"] = {k: round(v, 2) for k, v in self.tokens_per_entry.items()}
        out["entries_per_person"] = {k: round(v, 3) for k, v in self.entries_per_person.items()}
        out["paper_exposures"] = PAPER_EXPOSURES
        return out

    def describe(self) -> str:
        per = ", ".join(f"{g} {e:,.0f}" for g, e in sorted(self.exposures.items()))
        return f"{self.steps:,} steps = {per} exposures per person (paper: ~{PAPER_EXPOSURES})"


PAPER_TOKENS = {"clm": 80_000 * 96 * 512, "mlm": 150_000 * 96 * 512}  # [P] App. C and App. H
PAPER_PEOPLE, PAPER_BIO_TOKENS = 100_000, 73  # per group; GPT-2 tokens of a bioS entry


def paper_exposures(stats: dict[str, GroupStats], qa_ratio: float, objective: str = "clm") -> float:
    """What the paper's budget gives the group with the fewest exposures in a run of this shape:
    its tokens (80,000 or, for GBERT, 150,000 steps of 96 x 512) over 100,000 people per group
    with the same entries per person as `stats`, at 73 tokens an entry. BIO pretraining ~540;
    mixed training at QA_r 0.8 ~108; the celebrity minority ~90."""
    entries = sum(PAPER_PEOPLE * s.entries_per_person for s in stats.values())
    fewest = min(s.entries_per_person for s in stats.values())
    return PAPER_TOKENS[objective] * (1.0 - qa_ratio) / (entries * PAPER_BIO_TOKENS) * fewest


def bio_tokens_per_step(batch: int, context: int, qa_ratio: float) -> float:
    return batch * context * (1.0 - qa_ratio)


def budget_for(stats: dict[str, GroupStats], batch: int, context: int, qa_ratio: float,
               steps: int = 0, exposures: float = 0.0) -> Budget:
    """The budget of `steps` steps, or (exposures > 0) the fewest steps giving every group at
    least `exposures` per person."""
    per_step = bio_tokens_per_step(batch, context, qa_ratio)
    epoch = sum(s.tokens for s in stats.values())
    if per_step <= 0:
        raise KnowlabError(f"qa_ratio={qa_ratio} leaves no bio tokens per step, so exposures cannot be reached")
    if epoch <= 0:
        raise KnowlabError("the dataset has no bio tokens, so no exposure budget can be resolved")
    asked = "exposures" if exposures > 0 else "steps"
    if exposures > 0:
        fewest = min(s.entries_per_person for s in stats.values())
        # The tiny tolerance keeps a float product such as 2.0000000001 steps from becoming 3.
        steps = max(1, math.ceil(exposures / fewest * epoch / per_step - 1e-9))
    epochs = steps * per_step / epoch
    return Budget(steps=steps,
                  exposures={g: epochs * s.entries_per_person for g, s in stats.items()},
                  tokens_per_entry={g: s.tokens_per_entry for g, s in stats.items()},
                  entries_per_person={g: s.entries_per_person for g, s in stats.items()},
                  bio_tokens_per_epoch=epoch, bio_tokens_per_step=per_step, tokens_per_step=batch * context, asked=asked)


def resolve(cfg, dataset):
    """(cfg with `steps` resolved, Budget): steps from cfg.exposures when it is set, else as
    given; `evals` evaluations become an eval_every of the resolved steps."""
    import dataclasses

    budget = budget_for(bio_stats(dataset), cfg.batch, cfg.model.context, cfg.qa_ratio,
                        steps=cfg.steps, exposures=cfg.exposures)
    every = max(1, budget.steps // cfg.evals) if cfg.evals else cfg.eval_every
    return dataclasses.replace(cfg, steps=budget.steps, eval_every=every), budget


def sample_stats(data_cfg, sample_people: int = 1000) -> dict[str, GroupStats]:
    """Stats of a dataset not generated yet, for plans: a sample of `sample_people` people (the
    celebrities scaled alike) generated in a temporary folder, scaled up to the full size.
    Tokens per entry come out within about 1% once every word is one token of the vocabulary."""
    import dataclasses
    import tempfile

    from knowlab.data.dataset import Dataset, write_dataset

    scale = min(1.0, sample_people / max(1, data_cfg.people))
    small = dataclasses.replace(data_cfg, people=max(1, round(data_cfg.people * scale)),
                                celebrities=round(data_cfg.celebrities * scale))
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(small, f"{tmp}/data")
        stats = bio_stats(Dataset(f"{tmp}/data"))
    full = {"main": data_cfg.people, "minority": data_cfg.people, "celebrity": data_cfg.celebrities}
    return {g: GroupStats(people=full[g], entries=round(s.entries_per_person * full[g]),
                          tokens=round(s.tokens / s.people * full[g])) for g, s in stats.items()}
