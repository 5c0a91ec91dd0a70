"""The argument parser class of the whole `knowlab` command tree.

A module of its own so that the root CLI (knowlab.cli) and every stage CLI that adds
subcommands (train, eval, probe, study, augment) import it from here, never from each other.
"""

from __future__ import annotations

import argparse


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        self.exit(2, f"{self.prog}: error: {message}\n")
