"""The interface every rewriting backend implements, and the sampling settings it is given.

Backends (local.py, http.py, shuffle.py) import this; rewriter.py picks one from a SPEC string.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from knowlab.errors import KnowlabError


@dataclass
class SamplingParams:
    temperature: float = 0.8  # 0 = greedy
    top_p: float = 0.95
    max_new_tokens: int = 256
    seed: int = 0  # used for prompts given no seed of their own
    stop: list[str] = field(default_factory=list)  # the output is cut at the first of these

    def validate(self) -> None:
        if self.temperature < 0:
            raise KnowlabError(f"temperature must be 0 (greedy) or more, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise KnowlabError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise KnowlabError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")

    def key(self) -> dict[str, Any]:
        """What of these params changes an output (the seed travels per prompt)."""
        out = asdict(self)
        out.pop("seed")
        return out


class Rewriter(ABC):
    """Turns prompts into completions. Subclasses set `name` and implement `_generate`."""

    name: str = "rewriter"
    needs_prompt: bool = True  # False for `shuffle`, which works on the document itself

    def __init__(self, params: SamplingParams | None = None):
        self.params = params or SamplingParams()
        self.params.validate()

    @property
    def identity(self) -> str:
        """What the cache keys on besides prompt, params and seed: the model, as precisely as known."""
        return self.name

    def rewrite(self, prompts: list[str], seeds: Sequence[int] | None = None) -> list[str]:
        """One completion per prompt, in order, each cut at the first stop string."""
        prompts = list(prompts)
        if seeds is None:
            seeds = [self.params.seed] * len(prompts)
        if len(seeds) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        if not prompts:
            return []
        return [cut_at_stop(o, self.params.stop) for o in self._generate(prompts, [int(s) for s in seeds])]

    @abstractmethod
    def _generate(self, prompts: list[str], seeds: list[int]) -> list[str]: ...

    def close(self) -> None:
        """Free what the backend holds (threads, model memory)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]
