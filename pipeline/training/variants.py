"""Run labels: an algorithm alone (``progressive``: the scheme of ``train.scheme``) or an algorithm
with its update scheme (``progressive+mixed-precision``), so that one ``train.algorithms`` list (one
DVC matrix, one evaluation) can hold several schemes side by side. Float algorithms ignore schemes
and take no suffix.

A leaf of the registries: imports only :mod:`.algorithms` and :mod:`.schemes`.
"""

from __future__ import annotations

from .algorithms import NAMES as _ALGORITHM_NAMES
from .algorithms import REGISTRY as _ALGORITHMS
from .schemes import DIRECT as _DIRECT
from .schemes import REGISTRY as _SCHEMES

SEP = "+"

# every valid label, in registry order: the algorithms, then each hardware algorithm with each
# scheme other than the default ``direct``
LABELS: tuple[str, ...] = _ALGORITHM_NAMES + tuple(
    f"{a.name}{SEP}{s.name}" for a in _ALGORITHMS if not a.is_float and a.encoding is None
    for s in _SCHEMES
    if s.code != _DIRECT)


def parse(label: str) -> tuple[str, str | None]:
    """(algorithm, scheme or None) of a run label."""
    alg, _, scheme = str(label).partition(SEP)
    return alg, (scheme or None)


def order(label: str) -> int:
    """Sort key: registry order of the labels."""
    return LABELS.index(label) if label in LABELS else len(LABELS)
