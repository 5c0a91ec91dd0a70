"""The data config: everything that decides a generated dataset folder, byte for byte."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from knowlab.data.spec import parse_spec
from knowlab.errors import KnowlabError


@dataclass
class DataConfig:
    people: int = 100_000  # N; with celebrities > 0 these are the minority group
    variant: str = "single"  # augmentation spec of the (minority) bios, e.g. multi5+permute+fullname
    seed: int = 0
    train_fraction: float = 0.5  # p: share of people whose QAs train (P_train); the rest test
    pronouns: Literal["he-she", "he-she-they"] = "he-she"
    # Result 6: an extra group of celebrities with distinct names and their own spec. Their QAs
    # are the training QAs; the minority's QAs are split by minority_train_fraction.
    celebrities: int = 0
    celebrity_variant: str = "multi5+permute"
    minority_train_fraction: float = 0.0
    # Part 3.3's bioS(N): pretraining draws a fresh entry (templates and order) per exposure.
    # bios.parquet still holds the spec's entries, used for evaluation.
    per_exposure: bool = False
    # 0 = the full pools (200 cities, 300 universities, 100 majors, 263 companies); k keeps k
    # random values of each, so a small population repeats every value (see Pools.subset).
    values_per_attribute: int = 0
    # A local HF tokenizer folder (GPT-2's: vocab.json, merges.txt, tokenizer.json) used as it
    # is; None trains a byte-level BPE of vocab_size tokens on the generated bios.
    tokenizer: str | None = None
    vocab_size: int = 4096
    # Bios sampled to train the BPE (every full name and the first 2,000 people's QAs join them).
    # The corpus is highly templated: 10k bios give 81.3 tokens per bio vs 79.5 with 200k, at a
    # twentieth of the training time (benchmarks/RESULTS.md, "Data generation").
    tokenizer_train_texts: int = 10_000

    def validate(self) -> None:
        if self.people < 1:
            raise KnowlabError(f"people must be at least 1, got {self.people}")
        if self.celebrities < 0:
            raise KnowlabError(f"celebrities must be 0 or more, got {self.celebrities}")
        for key in ("train_fraction", "minority_train_fraction"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise KnowlabError(f"{key} must be within [0, 1], got {value}")
        if self.values_per_attribute:
            from knowlab.data.pools import load_pools

            most = load_pools().smallest_value_pool
            if not 1 <= self.values_per_attribute <= most:
                raise KnowlabError(f"values_per_attribute must be 0 (full pools) or 1..{most}, "
                                   f"got {self.values_per_attribute}")
        parse_spec(self.variant)
        if self.celebrities:
            parse_spec(self.celebrity_variant)
