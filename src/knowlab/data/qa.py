"""The QA data: six questions per person with the paper's wording ([P] Section 2).

A QA text is `{question} Answer: {value}.`; `answer_start` is the character offset of the value.
"""

from __future__ import annotations

from dataclasses import dataclass

from knowlab.data.people import Person
from knowlab.data.schema import ANSWER_PREFIX, ATTRIBUTES, QUESTIONS


@dataclass(frozen=True)
class QAItem:
    person_id: int
    attribute: str
    question: str
    answer: str

    @property
    def prompt(self) -> str:
        """What the model is given at evaluation: the question and "Answer:" (no trailing space)."""
        return self.question + ANSWER_PREFIX

    @property
    def text(self) -> str:
        return f"{self.prompt} {self.answer}."

    @property
    def answer_start(self) -> int:
        return len(self.prompt) + 1


def qa_items(person: Person) -> list[QAItem]:
    return [
        QAItem(person.id, attr, QUESTIONS[attr].format(name=person.name), person.value(attr))
        for attr in ATTRIBUTES
    ]
