"""One exception type for every bad input; the CLI turns it into one line and exit status 2."""

from __future__ import annotations


class InputError(Exception):
    """A user-facing input problem: the message names where (file, key, row, column) and what was
    expected. Raised anywhere below the CLI; `cli.py` prints ``error: <message>`` and exits 2."""

    def __init__(self, where: str, problem: str):
        self.where = str(where)
        self.problem = str(problem)
        super().__init__(f"{self.where}: {self.problem}")


class TrainingDiverged(Exception):
    """A NaN or Inf appeared during training (epoch and sample are in the message)."""
