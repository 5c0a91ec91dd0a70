"""Sampling the population: unique full names and independently drawn attributes ([P] App. A.1).

Every attribute is drawn uniformly and independently, except the company city, which is the
employer's headquarters and so is derived, never sampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from knowlab.data.pools import Pools, load_pools
from knowlab.data.schema import format_date
from knowlab.errors import KnowlabError

YEARS = (1900, 2099)
DAYS_PER_MONTH = 28  # the paper draws days 1-28 for every month


@dataclass(frozen=True)
class Person:
    id: int
    first: str
    middle: str
    last: str
    gender: str  # "male" | "female", fixed by the first name
    pronoun: str  # "he" | "she" | "they"
    birth_year: int
    birth_month: int
    birth_day: int
    birth_city: str
    university: str
    major: str
    company: str
    company_city: str
    group: str = "main"
    split: str = "train"

    @property
    def name(self) -> str:
        return f"{self.first} {self.middle} {self.last}"

    @property
    def birth_date(self) -> str:
        return format_date(self.birth_year, self.birth_month, self.birth_day)

    def value(self, attribute: str, language: str = "en") -> str:
        if attribute == "birth_date":
            return format_date(self.birth_year, self.birth_month, self.birth_day, language)
        return getattr(self, attribute)


def sample_people(
    n: int,
    rng: np.random.Generator,
    pronouns: str = "he-she",
    pools: Pools | None = None,
    start_id: int = 0,
) -> list[Person]:
    """`n` people with distinct full names, drawn uniformly without replacement from the name space."""
    pools = pools or load_pools()
    n_first, n_mid, n_last = len(pools.first), len(pools.middle), len(pools.last)
    space = n_first * n_mid * n_last
    if n < 1:
        raise KnowlabError(f"people must be at least 1, got {n}")
    if n > space:
        raise KnowlabError(
            f"people={n:,} exceeds the {space:,} distinct full names "
            f"({n_first} first x {n_mid} middle x {n_last} last); use at most {space:,}"
        )
    # Drawing name indices without replacement is rejection sampling done exactly: every set
    # of n distinct names is equally likely, and it cannot hang near the size of the space.
    flat = rng.choice(space, size=n, replace=False)
    first_i, rest = np.divmod(flat, n_mid * n_last)
    mid_i, last_i = np.divmod(rest, n_last)

    years = rng.integers(YEARS[0], YEARS[1] + 1, size=n)
    months = rng.integers(1, 13, size=n)
    days = rng.integers(1, DAYS_PER_MONTH + 1, size=n)
    cities = rng.integers(0, len(pools.cities), size=n)
    univs = rng.integers(0, len(pools.universities), size=n)
    majors = rng.integers(0, len(pools.majors), size=n)
    comps = rng.integers(0, len(pools.companies), size=n)
    if pronouns == "he-she-they":
        they = rng.random(size=n) < 1 / 3
    elif pronouns == "he-she":
        they = np.zeros(n, dtype=bool)
    else:
        raise KnowlabError(f"pronouns '{pronouns}' is not valid; valid: he-she, he-she-they")

    n_male = len(pools.first_male)
    people = []
    for i in range(n):
        fi = int(first_i[i])
        gender = "male" if fi < n_male else "female"
        pronoun = "they" if they[i] else ("he" if gender == "male" else "she")
        c = int(comps[i])
        people.append(
            Person(
                id=start_id + i,
                first=pools.first[fi],
                middle=pools.middle[int(mid_i[i])],
                last=pools.last[int(last_i[i])],
                gender=gender,
                pronoun=pronoun,
                birth_year=int(years[i]),
                birth_month=int(months[i]),
                birth_day=int(days[i]),
                birth_city=pools.cities[int(cities[i])],
                university=pools.universities[int(univs[i])],
                major=pools.majors[int(majors[i])],
                company=pools.companies[c],
                company_city=pools.company_hq[c],
            )
        )
    return people


def assign_split(people: list[Person], train_fraction: float, rng: np.random.Generator) -> list[Person]:
    """P_train / P_test: a random `train_fraction` of people get their QAs used for training."""
    from dataclasses import replace

    if not 0.0 <= train_fraction <= 1.0:
        raise KnowlabError(f"train_fraction must be within [0, 1], got {train_fraction}")
    n_train = int(round(train_fraction * len(people)))
    order = rng.permutation(len(people))
    is_train = np.zeros(len(people), dtype=bool)
    is_train[order[:n_train]] = True
    return [replace(p, split="train" if t else "test") for p, t in zip(people, is_train)]
