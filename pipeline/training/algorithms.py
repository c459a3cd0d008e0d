"""The algorithm registry (DESIGN §1.2): one entry per training algorithm, the single source of
every table keyed by algorithm name (``config.ALGORITHMS``, ``loop.ALGORITHM_CODES``, the ledger,
the figure styles).

Adding an algorithm is one entry here plus its branch in :func:`pipeline.training.loop.train_sample`;
a table derived from the registry that misses a name fails at import.

This module imports nothing (``config`` imports it to validate ``train.algorithms``).
"""

from __future__ import annotations

from dataclasses import dataclass

# update orders: in which order a sample's errors are read and its arrays written
ORDER_BACKPROP = "backprop"  # one forward pass; every δ by transposed reads before any write
ORDER_PROGRESSIVE = "progressive"  # a fresh forward pass before each layer's write, top layer first
ORDER_PROGRESSIVE_HELD = "progressive-held"  # one forward pass, activations held, δ through updated arrays
ORDER_MANHATTAN = "manhattan"  # the backprop order, sign-only writes (one pulse per device)
ORDERS = (ORDER_BACKPROP, ORDER_PROGRESSIVE, ORDER_PROGRESSIVE_HELD, ORDER_MANHATTAN)

# what the ledger needs: the analog values held between the read phase and the write phases
HELD_EVERY_LAYER = "every-layer"  # every δ_l and every input ã_l at once
HELD_PRESENT_LAYER = "present-layer"  # only the present layer's δ and input
HELD_INPUTS = "inputs"  # every layer's input activations, plus the present δ
HELD_KINDS = (HELD_EVERY_LAYER, HELD_PRESENT_LAYER, HELD_INPUTS)


@dataclass(frozen=True)
class Algorithm:
    """One training algorithm: its name, its integer code in the jitted loop, and its facts."""

    name: str
    code: int  # ``loop.Config.algorithm``
    is_float: bool  # float64 software weights (True) or weights on the devices (False)
    order: str  # one of ORDERS
    description: str
    held: str  # ledger: one of HELD_KINDS
    forward_per_layer: bool  # ledger: a forward pass (and reads back down) before each layer's write
    color: str  # figures: line colour
    linestyle: str = "-"  # figures: line style
    encoding: str | None = None  # write encoding the algorithm imposes (kernels.ENCODINGS); None: array.encoding


REGISTRY: tuple[Algorithm, ...] = (
    Algorithm("backprop-float", 0, True, ORDER_BACKPROP,
              "software reference: float64 weights, exact backprop, no devices",
              HELD_EVERY_LAYER, False, "#222222", "--"),
    Algorithm("backprop", 1, False, ORDER_BACKPROP,
              "conventional backprop on the hardware: every δ by transposed reads before any array is written",
              HELD_EVERY_LAYER, False, "#1f77b4"),
    Algorithm("progressive", 2, False, ORDER_PROGRESSIVE,
              "progressive gradient descent: a forward pass on the present hardware before each layer's write",
              HELD_PRESENT_LAYER, True, "#d62728"),
    Algorithm("progressive-held", 3, False, ORDER_PROGRESSIVE_HELD,
              "one forward pass, activations held; each δ through the arrays above after their update",
              HELD_INPUTS, False, "#ff7f0e"),
    Algorithm("progressive-float", 4, True, ORDER_PROGRESSIVE,
              "the progressive order with float64 weights",
              HELD_PRESENT_LAYER, True, "#9467bd", ":"),
    Algorithm("progressive-held-float", 5, True, ORDER_PROGRESSIVE_HELD,
              "the progressive-held order with float64 weights",
              HELD_INPUTS, False, "#8c564b", ":"),
    Algorithm("manhattan", 6, False, ORDER_MANHATTAN,
              "sign-only update: one pulse per device of the sign of −δ a, above a threshold (baseline)",
              HELD_EVERY_LAYER, False, "#2ca02c", encoding="sign"),
)

NAMES: tuple[str, ...] = tuple(a.name for a in REGISTRY)
BY_NAME: dict[str, Algorithm] = {a.name: a for a in REGISTRY}
CODES: dict[str, int] = {a.name: a.code for a in REGISTRY}


def get(name: str) -> Algorithm:
    """The entry of ``name`` (KeyError naming the known algorithms if there is none)."""
    try:
        return BY_NAME[str(name)]
    except KeyError:
        raise KeyError(f"unknown algorithm {name!r}, expected one of {', '.join(NAMES)}") from None


def _check() -> None:
    if len(BY_NAME) != len(REGISTRY):
        raise ImportError("algorithm registry: duplicate names")
    if sorted(CODES.values()) != list(range(len(REGISTRY))):
        raise ImportError(f"algorithm registry: codes must be 0..{len(REGISTRY) - 1}, each once: {CODES}")
    for a in REGISTRY:
        if a.order not in ORDERS or a.held not in HELD_KINDS:
            raise ImportError(f"algorithm registry: {a.name} has an unknown order {a.order!r} or held kind {a.held!r}")


_check()
