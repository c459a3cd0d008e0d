"""The cost ledger (DESIGN §1.2): array reads, pulses, values held between phases, energy.

Reads and pulses are counted by the kernels while they run (per epoch, slots of
``loop.N_LEDGER``; names, units and descriptions in :mod:`pipeline.training.metrics`); the values
held and the expected reads per sample follow from the algorithm's registry entry
(:mod:`pipeline.training.algorithms`: ``held``, ``forward_per_layer``) and the layer sizes, and are
computed here (tests check the kernels' counts against them).
"""

from __future__ import annotations

import numpy as np

from . import algorithms


def _held_every_layer(rows: list[int], cols: list[int]) -> int:
    return int(sum(rows) + sum(cols))


def _held_present_layer(rows: list[int], cols: list[int]) -> int:
    return int(max(r + c for r, c in zip(rows, cols)))


def _held_inputs(rows: list[int], cols: list[int]) -> int:
    return int(sum(cols) + max(rows))


_HELD = {algorithms.HELD_EVERY_LAYER: _held_every_layer, algorithms.HELD_PRESENT_LAYER: _held_present_layer,
         algorithms.HELD_INPUTS: _held_inputs}
_missing = [a.name for a in algorithms.REGISTRY if a.held not in _HELD]
if _missing:
    raise ImportError(f"ledger: no rule for the values held by {', '.join(_missing)}")


def values_held(algorithm: str, sizes: list[int]) -> int:
    """Analog values that must be stored between the read phase and the write phases.

    backprop: every δ_l and every input ã_l at once (Σ rows + Σ cols); progressive: only the
    present layer's δ and input (max over layers of rows + cols), nothing between layers;
    progressive-held: every layer's input activations held, plus the present δ."""
    rows = list(sizes[1:])
    cols = [s + 1 for s in sizes[:-1]]
    return _HELD[algorithms.get(algorithm).held](rows, cols)


def reads_per_sample(algorithm: str, n_layers: int) -> int:
    """Array reads per training sample: backprop and progressive-held read L arrays forward and
    L−1 transposed; progressive repeats the forward pass before each of its L writes and reads
    back down to the layer it writes: L² + L(L−1)/2."""
    L = n_layers
    if algorithms.get(algorithm).forward_per_layer:
        return L * L + L * (L - 1) // 2
    return 2 * L - 1


def forward_passes_per_sample(algorithm: str, n_layers: int) -> int:
    return n_layers if algorithms.get(algorithm).forward_per_layer else 1


def energy(ledger: np.ndarray, train_params) -> float:
    """Energy of an epoch: e_pulse_J per pulse plus e_read_J per device read."""
    return float(train_params.e_pulse_J * (ledger[2] + ledger[3]) + train_params.e_read_J * ledger[1])
