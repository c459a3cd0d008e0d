"""ecram-insitu: in-situ training of neural networks on simulated organic EC-RAM arrays.

Progressive gradient descent (van Doremaele et al., Sci. Adv. 10, eado8999, 2024) against
conventional backpropagation, from device measurements to figures, as a DVC pipeline.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

__version__ = "0.1.0"


def _numba_cache_dir() -> str:
    """A numba cache folder keyed by a hash of every source file of the package.

    Numba invalidates a cached function only when *its own* file changes, not when a jitted
    function it calls (in another module) changes; a stale cache can then crash. Keying the
    folder on all sources makes any change start from a clean cache. ``NUMBA_CACHE_DIR`` set by
    the user wins; ``ECRAM_CACHE_DIR`` moves the base folder (``make test`` uses one inside the
    checkout, so a test run never meets a cache written by another checkout or session).

    The folder is also keyed on the thread count numba will start with (``NUMBA_NUM_THREADS``,
    default: the cores): a ``parallel=True`` function cached under one thread count can crash a
    process that loads it under another (numba issues #7518, #4807)."""
    h = hashlib.sha1(__version__.encode())
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    base = Path(os.environ.get("ECRAM_CACHE_DIR") or
                Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ecram-insitu")
    threads = os.environ.get("NUMBA_NUM_THREADS") or str(os.cpu_count() or 1)
    return str(base / f"numba-{h.hexdigest()[:16]}-t{threads}")


if "NUMBA_CACHE_DIR" not in os.environ:
    os.environ["NUMBA_CACHE_DIR"] = _numba_cache_dir()
    if "numba" in sys.modules:  # numba read its config already: point it at the folder directly
        sys.modules["numba"].config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]
