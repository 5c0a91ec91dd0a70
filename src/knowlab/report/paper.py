"""The paper's numbers, for side-by-side tables; docs/paper.md lists them with their sources.
Figure 3 and Figure 7 are read off the paper's figures; rows marked "inferred" had their labels
hidden and are mapped by the App. A.1 order, an inference."""

from __future__ import annotations

from knowlab.data.schema import ATTRIBUTES

_F3_COLS = ("mean", *ATTRIBUTES)

# Figure 3: QA test accuracy (%) of GPT2-small on bioS, BIO pretrain + QA finetune.
FIGURE3: dict[str, tuple[float | None, ...]] = {
    "single": (9.7, 33.5, 6.3, 2.3, 4.0, 1.1, 13.8),
    "single+fullname": (48.9, 56.2, 58.8, 63.0, 55.7, 50.5, 14.1),
    "single+permute1": (4.4, 0.5, 3.3, 2.4, 5.0, 3.5, 13.7),
    "single+permute2": (None, 57.3, 48.3, 53.1, 55.0, 51.8, 58.3),  # inferred label
    "single+permute5": (None, 56.4, 57.7, 58.3, 64.9, 90.5, 97.7),  # inferred label
    "single+permute1+fullname": (None, 26.6, 29.3, 36.9, 31.1, 31.4, 37.9),  # inferred label
    "single+permute2+fullname": (None, 69.0, 60.6, 64.2, 64.0, 87.9, 95.0),  # inferred label
    "single+permute5+fullname": (None, 83.7, 67.8, 72.6, 69.1, 93.0, 98.6),  # inferred label
    "multi2": (None, 100, 71.7, 33.1, 26.1, 5.2, 14.0),
    "multi2+fullname": (84.0, 100, 97.7, 89.5, 97.6, 91.3, 35.3),
    "multi2+permute": (91.2, 99.3, 98.7, 89.8, 96.7, 83.3, 83.5),
    "multi2+permute+fullname": (96.1, 100, 98.8, 91.3, 98.1, 93.7, 97.8),
    "multi5": (41.0, 100, 50.8, 30.9, 43.5, 10.2, 13.8),
    "multi5+fullname": (82.4, 100, 98.6, 88.4, 96.1, 91.9, 26.8),
    "multi5+permute": (96.6, 100, 99.0, 91.3, 97.7, 95.1, 98.7),
    "multi5+permute+fullname": (96.2, 100, 98.7, 90.6, 97.9, 93.7, 99.0),
}

# Figure 7: Q-probing first-token accuracy (%); columns b_month, b_city, univ, major, c_name, c_city.
FIGURE7_Q: dict[str, tuple[float, ...]] = {
    "single": (63.4, 1.9, 37.5, 3.1, 0.2, 13.1),
    "single+fullname": (78.8, 47.5, 65.4, 51.0, 47.4, 28.9),
    "single+permute1": (10.2, 1.2, 37.5, 2.9, 0.7, 12.8),
    "multi2": (100, 70.3, 45.1, 19.6, 0.7, 13.0),
    "multi2+fullname": (100, 100, 99.7, 99.7, 99.8, 69.2),
    "multi2+permute": (99.9, 99.9, 99.6, 99.4, 93.9, 90.2),
    "multi2+permute+fullname": (99.7, 100, 100, 99.9, 99.9, 99.4),
    "multi5": (100, 39.8, 40.3, 40.1, 3.2, 13.2),
    "multi5+fullname": (100, 100, 98.3, 99.4, 98.5, 63.1),
    "multi5+permute": (100, 100, 99.9, 100, 99.9, 99.8),
    "multi5+permute+fullname": (100, 100, 99.8, 100, 100, 99.8),
}

MIXED_SINGLE = 86.6  # Result 1: mixed training on bioS single, P_test QA accuracy (%)
CELEBRITY = {"minority alone": 4.4, "with celebrities": 86.8}  # Result 6, bioS (%)
PAPER_SCALE = "N = 100,000 people, GPT-2 small (124M) with rotary, 80,000 steps x 96 x 512 tokens"


def figure3_row(variant: str) -> dict[str, float | None] | None:
    row = FIGURE3.get(variant)
    return None if row is None else dict(zip(_F3_COLS, row))
