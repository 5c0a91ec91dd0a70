"""The value pools shipped as package data (`knowlab/data/pools/*.txt`).

Sizes follow the paper: 400 first names (200 male, 200 female), 400 middle names, 1,000 last
names, 200 birth cities, 300 universities, 100 majors, 263 companies with a fixed headquarters.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

POOL_DIR = Path(__file__).parent / "pools"


def _lines(name: str) -> tuple[str, ...]:
    # strip() also drops CR: pools written on another OS must not leak "\r" into bios.
    text = (POOL_DIR / name).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@dataclass(frozen=True)
class Pools:
    first_male: tuple[str, ...]
    first_female: tuple[str, ...]
    middle: tuple[str, ...]
    last: tuple[str, ...]
    cities: tuple[str, ...]
    universities: tuple[str, ...]
    majors: tuple[str, ...]
    companies: tuple[str, ...]
    company_hq: tuple[str, ...]  # company_hq[i] is the headquarters city of companies[i]

    @property
    def first(self) -> tuple[str, ...]:
        return self.first_male + self.first_female

    @property
    def name_space(self) -> int:
        return len(self.first) * len(self.middle) * len(self.last)

    @property
    def smallest_value_pool(self) -> int:
        return min(len(self.cities), len(self.universities), len(self.majors), len(self.companies))

    def subset(self, k: int, rng: np.random.Generator) -> Pools:
        """The same pools with `k` random values kept for birth city, university, major and
        company (each company keeps its headquarters). A small population then sees every value
        several times, as 100,000 people see the full pools: a probe trained on some people can
        only name classes it saw among them."""
        def keep(n: int) -> np.ndarray:
            return np.sort(rng.choice(n, size=k, replace=False))

        comp = keep(len(self.companies))
        return Pools(
            first_male=self.first_male, first_female=self.first_female, middle=self.middle, last=self.last,
            cities=tuple(self.cities[i] for i in keep(len(self.cities))),
            universities=tuple(self.universities[i] for i in keep(len(self.universities))),
            majors=tuple(self.majors[i] for i in keep(len(self.majors))),
            companies=tuple(self.companies[i] for i in comp),
            company_hq=tuple(self.company_hq[i] for i in comp),
        )


@cache
def load_pools() -> Pools:
    companies, hq = [], []
    for line in _lines("companies.txt"):
        name, _, city = line.partition(";")
        companies.append(name.strip())
        hq.append(city.strip())
    return Pools(
        first_male=_lines("first_male.txt"),
        first_female=_lines("first_female.txt"),
        middle=_lines("middle.txt"),
        last=_lines("last.txt"),
        cities=_lines("cities.txt"),
        universities=_lines("universities.txt"),
        majors=_lines("majors.txt"),
        companies=tuple(companies),
        company_hq=tuple(hq),
    )
