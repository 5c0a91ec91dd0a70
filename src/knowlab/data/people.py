"""Sampling the population: unique full names and independently drawn attributes ([P] App. A.1).

Every attribute is drawn uniformly and independently, except the company city, which is the
employer's headquarters and so is derived, never sampled.

The population is drawn as arrays of pool indices (`PeopleColumns`, what dataset generation
uses); `sample_people` turns the same draws into `Person` objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from knowlab.data.pools import Pools, load_pools
from knowlab.data.schema import ATTRIBUTES, format_date
from knowlab.errors import KnowlabError

YEARS = (1900, 2099)
DAYS_PER_MONTH = 28  # the paper draws days 1-28 for every month
PRONOUNS = ("he", "she", "they")  # pronoun codes of PeopleColumns


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


@dataclass
class PeopleColumns:
    """A population as arrays: ids, pool indices, the date draws, pronoun codes, group and split."""

    pools: Pools
    id: np.ndarray  # int64
    first: np.ndarray  # index into pools.first (male names first, so first < len(first_male) is male)
    middle: np.ndarray
    last: np.ndarray
    pronoun: np.ndarray  # int8 code into PRONOUNS
    birth_year: np.ndarray
    birth_month: np.ndarray
    birth_day: np.ndarray
    birth_city: np.ndarray  # index into pools.cities
    university: np.ndarray
    major: np.ndarray
    company: np.ndarray  # index into pools.companies (and pools.company_hq)
    group: np.ndarray  # str array
    split: np.ndarray  # str array
    _dates: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.id)

    @property
    def female(self) -> np.ndarray:
        return self.first >= len(self.pools.first_male)

    def select(self, rows) -> PeopleColumns:
        """The people at `rows` (a boolean mask or an index array)."""
        return replace(self, **{f.name: getattr(self, f.name)[rows]
                                for f in fields(self) if f.init and f.name != "pools"})

    def names(self) -> list[str]:
        p = self.pools
        first, middle, last = (np.array(pool, dtype=object) for pool in (p.first, p.middle, p.last))
        return [f"{a} {b} {c}" for a, b, c in zip(first[self.first], middle[self.middle], last[self.last])]

    def date_codes(self) -> np.ndarray:
        return (self.birth_year.astype(np.int64) * 13 + self.birth_month) * 29 + self.birth_day

    def dates(self, language: str = "en") -> tuple[np.ndarray, list[str]]:
        """Birth dates as (code per person into the returned list of distinct strings)."""
        if language not in self._dates:
            uniq, inverse = np.unique(self.date_codes(), return_inverse=True)
            ym, d = np.divmod(uniq, 29)
            y, m = np.divmod(ym, 13)
            strings = [format_date(a, b, c, language) for a, b, c in zip(y.tolist(), m.tolist(), d.tolist())]
            self._dates[language] = (inverse.reshape(-1), strings)
        return self._dates[language]

    def value_codes(self, language: str = "en") -> list[tuple[np.ndarray, list[str]]]:
        """For each attribute (ATTRIBUTES order): a code per person and the strings the codes index."""
        p = self.pools
        out = []
        for attr in ATTRIBUTES:
            if attr == "birth_date":
                out.append(self.dates(language))
            elif attr == "birth_city":
                out.append((self.birth_city, list(p.cities)))
            elif attr == "university":
                out.append((self.university, list(p.universities)))
            elif attr == "major":
                out.append((self.major, list(p.majors)))
            elif attr == "company":
                out.append((self.company, list(p.companies)))
            elif attr == "company_city":
                out.append((self.company, list(p.company_hq)))
            else:  # pragma: no cover - ATTRIBUTES is fixed
                raise KeyError(attr)
        return out

    def persons(self) -> list[Person]:
        p = self.pools
        first, middle, last = p.first, p.middle, p.last
        n_male = len(p.first_male)
        cols = zip(self.id.tolist(), self.first.tolist(), self.middle.tolist(), self.last.tolist(),
                   self.pronoun.tolist(), self.birth_year.tolist(), self.birth_month.tolist(),
                   self.birth_day.tolist(), self.birth_city.tolist(), self.university.tolist(),
                   self.major.tolist(), self.company.tolist(), self.group.tolist(), self.split.tolist())
        return [
            Person(id=i, first=first[f], middle=middle[m], last=last[la],
                   gender="male" if f < n_male else "female", pronoun=PRONOUNS[pr],
                   birth_year=y, birth_month=mo, birth_day=d, birth_city=p.cities[ci],
                   university=p.universities[u], major=p.majors[ma], company=p.companies[c],
                   company_city=p.company_hq[c], group=g, split=s)
            for i, f, m, la, pr, y, mo, d, ci, u, ma, c, g, s in cols
        ]


def sample_people_columns(
    n: int,
    rng: np.random.Generator,
    pronouns: str = "he-she",
    pools: Pools | None = None,
    start_id: int = 0,
) -> PeopleColumns:
    """`n` people with distinct full names, as arrays (see `sample_people`)."""
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
    female = first_i >= len(pools.first_male)
    pronoun = np.where(they, 2, female.astype(np.int8)).astype(np.int8)
    return PeopleColumns(
        pools=pools, id=np.arange(start_id, start_id + n, dtype=np.int64),
        first=first_i, middle=mid_i, last=last_i, pronoun=pronoun,
        birth_year=years, birth_month=months, birth_day=days,
        birth_city=cities, university=univs, major=majors, company=comps,
        group=np.full(n, "main", dtype=object), split=np.full(n, "train", dtype=object),
    )


def sample_people(
    n: int,
    rng: np.random.Generator,
    pronouns: str = "he-she",
    pools: Pools | None = None,
    start_id: int = 0,
) -> list[Person]:
    """`n` people with distinct full names, drawn uniformly without replacement from the name space."""
    return sample_people_columns(n, rng, pronouns, pools, start_id).persons()


def split_mask(n: int, train_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """True for the P_train people: a random `train_fraction` of the `n`."""
    if not 0.0 <= train_fraction <= 1.0:
        raise KnowlabError(f"train_fraction must be within [0, 1], got {train_fraction}")
    n_train = int(round(train_fraction * n))
    order = rng.permutation(n)
    is_train = np.zeros(n, dtype=bool)
    is_train[order[:n_train]] = True
    return is_train


def assign_split(people: list[Person], train_fraction: float, rng: np.random.Generator) -> list[Person]:
    """P_train / P_test: a random `train_fraction` of people get their QAs used for training."""
    is_train = split_mask(len(people), train_fraction, rng)
    return [replace(p, split="train" if t else "test") for p, t in zip(people, is_train)]
