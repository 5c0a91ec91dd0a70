"""The value pools shipped as package data (`knowlab/data/pools/*.txt`).

Sizes follow the paper: 400 first names (200 male, 200 female), 400 middle names, 1,000 last
names, 200 birth cities, 300 universities, 100 majors, 263 companies with a fixed headquarters.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

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
