"""Names shared by every stage: the six attributes, their short labels, the QA wording.

The order of ATTRIBUTES is the paper's fixed bioS order: birth date, birth city, university,
major, company name, company city (Remark 5.1 relies on company name preceding company city).
"""

ATTRIBUTES: tuple[str, ...] = (
    "birth_date",
    "birth_city",
    "university",
    "major",
    "company",
    "company_city",
)

# Column labels of the paper's Figure 3.
SHORT: dict[str, str] = {
    "birth_date": "b_date",
    "birth_city": "b_city",
    "university": "univ",
    "major": "major",
    "company": "c_name",
    "company_city": "c_city",
}

# The paper's six questions (Section 2), one per attribute.
QUESTIONS: dict[str, str] = {
    "birth_date": "What is the birth date of {name}?",
    "birth_city": "What is the birth city of {name}?",
    "university": "Which university did {name} study?",
    "major": "What major did {name} study?",
    "company": "Which company did {name} work for?",
    "company_city": "Where did {name} work?",
}

# A QA item is `{question} Answer: {value}.` The prompt stops right after "Answer:"; the target
# starts with the space and ends with the period, followed by EOS in training.
ANSWER_PREFIX = " Answer:"

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
MONTHS_FR = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)

# Special tokens of knowlab's tokenizer. EOS separates bios when packing; NAME_END closes a
# Q-probing query; MASK serves the encoder (GBERT) variant.
EOS = "<|endoftext|>"
PAD = "<|pad|>"
MASK = "<|mask|>"
NAME_END = "<|name_end|>"
SPECIAL_TOKENS = (EOS, PAD, MASK, NAME_END)


def format_date(year: int, month: int, day: int, language: str = "en") -> str:
    if language == "fr":
        return f"{day} {MONTHS_FR[month - 1]} {year}"
    return f"{MONTHS[month - 1]} {day}, {year}"
