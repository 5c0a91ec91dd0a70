"""User-facing errors.

A `KnowlabError` is bad input that the user can fix: the CLI prints its message as one line and
exits non-zero without a traceback. Anything else is a bug and keeps its traceback.
"""


class KnowlabError(Exception):
    """Bad input: the message says what is wrong, where, and what is valid."""


def fail(message: str) -> None:
    raise KnowlabError(message)
