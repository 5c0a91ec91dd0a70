"""knowlab: how language models store and extract knowledge (Physics of LMs, Part 3.1)."""

__version__ = "0.1.0"
