"""The cost ledger (DESIGN §1.2): array reads, pulses, values held between phases, energy.

Reads and pulses are counted by the kernels while they run (per epoch, slots of
``loop.N_LEDGER``); the values held and the expected reads per sample follow from the algorithm
and the layer sizes and are computed here (tests check the kernels' counts against them).
"""

from __future__ import annotations

import numpy as np

LEDGER_NAMES = ("reads", "device_reads", "pulses_up", "pulses_down", "forward_passes")
LEDGER_UNITS = ("reads", "device-reads", "pulses", "pulses", "passes")
LEDGER_DOC = (
    "array reads (vector-matrix products, forward or transposed) in the epoch",
    "device reads (multiply-accumulates on devices) in the epoch",
    "potentiation pulses in the epoch",
    "depression pulses in the epoch",
    "forward passes through the network in the epoch",
)


def _family(algorithm: str) -> str:
    if algorithm.startswith("progressive-held"):
        return "held"
    if algorithm.startswith("progressive"):
        return "progressive"
    return "backprop"  # backprop, backprop-float, manhattan


def values_held(algorithm: str, sizes: list[int]) -> int:
    """Analog values that must be stored between the read phase and the write phases.

    backprop: every δ_l and every input ã_l at once (Σ rows + Σ cols); progressive: only the
    present layer's δ and input (max over layers of rows + cols), nothing between layers;
    progressive-held: every layer's input activations held, plus the present δ."""
    rows = list(sizes[1:])
    cols = [s + 1 for s in sizes[:-1]]
    fam = _family(algorithm)
    if fam == "backprop":
        return int(sum(rows) + sum(cols))
    if fam == "progressive":
        return int(max(r + c for r, c in zip(rows, cols)))
    return int(sum(cols) + max(rows))


def reads_per_sample(algorithm: str, n_layers: int) -> int:
    """Array reads per training sample: backprop and progressive-held read L arrays forward and
    L−1 transposed; progressive repeats the forward pass before each of its L writes and reads
    back down to the layer it writes: L² + L(L−1)/2."""
    L = n_layers
    if _family(algorithm) == "progressive":
        return L * L + L * (L - 1) // 2
    return 2 * L - 1


def forward_passes_per_sample(algorithm: str, n_layers: int) -> int:
    return n_layers if _family(algorithm) == "progressive" else 1


def energy(ledger: np.ndarray, train_params) -> float:
    """Energy of an epoch: e_pulse_J per pulse plus e_read_J per device read."""
    return float(train_params.e_pulse_J * (ledger[2] + ledger[3]) + train_params.e_read_J * ledger[1])
