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
    # writing layer l: its input ã_{l-1} (c_l), f'(z_l) then δ_l in its place (r_l), and f'(z_k) of
    # every layer k above l, kept from the re-forward until the output error has run down past k
    return int(max(r + c + sum(rows[l + 1:]) for l, (r, c) in enumerate(zip(rows, cols))))


def _held_inputs(rows: list[int], cols: list[int]) -> int:
    return int(sum(cols) + max(rows))


_HELD = {algorithms.HELD_EVERY_LAYER: _held_every_layer, algorithms.HELD_PRESENT_LAYER: _held_present_layer,
         algorithms.HELD_INPUTS: _held_inputs}
_missing = [a.name for a in algorithms.REGISTRY if a.held not in _HELD]
if _missing:
    raise ImportError(f"ledger: no rule for the values held by {', '.join(_missing)}")


def values_held(algorithm: str, sizes: list[int]) -> int:
    """Analog values that must be stored between the read phase and the write phases.

    One value per unit of the network; a unit's f'(z) and its δ share one value (δ = (Wᵀδ') ⊙ f'(z)
    is formed in place of f'(z)). backprop: every δ_l and every input ã_l at once (Σ rows + Σ
    cols); progressive: while layer l is written, its input ã_{l-1}, its δ_l and the f'(z_k) of
    every layer k above it that the re-forward must keep while the output error runs down (max over
    l of r_l + c_l + Σ_{k>l} r_k; nothing is kept from one layer's write to the next);
    progressive-held: every layer's input activations held (f'(z) follows from them), plus the
    present δ."""
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


def device_reads_per_sample(algorithm: str, sizes: list[int], planes: int) -> int:
    """Device reads (multiply-accumulates on devices) per training sample: every array read of
    layer l reads its rows·cols weights on ``planes`` devices each; float algorithms read none."""
    a = algorithms.get(algorithm)
    if a.is_float:
        return 0
    rc = [o * (i + 1) for i, o in zip(sizes[:-1], sizes[1:])]
    L = len(rc)
    if a.forward_per_layer:  # before writing layer l: a forward pass, and reads back down to l
        total = sum(sum(rc) + sum(rc[l + 1:]) for l in range(L))
    else:  # one forward pass, one transposed read of every array but the first
        total = sum(rc) + sum(rc[1:])
    return int(total * planes)


def forward_passes_per_sample(algorithm: str, n_layers: int) -> int:
    return n_layers if algorithms.get(algorithm).forward_per_layer else 1


def energy(ledger: np.ndarray, train_params) -> float:
    """Energy of an epoch: e_pulse_J per pulse plus e_read_J per device read."""
    return float(train_params.e_pulse_J * (ledger[2] + ledger[3]) + train_params.e_read_J * ledger[1])


def n_weights(sizes: list[int]) -> int:
    """Weights of the network, biases included (Σ rows·cols)."""
    return int(sum(o * (i + 1) for i, o in zip(sizes[:-1], sizes[1:])))


def convention(algorithm: str, sizes: list[int], *, planes: int, digital_per_weight: float, n_samples: int = 0,
               counts: dict | None = None) -> dict:
    """The cost ledger in one convention (README "Cost ledger"): per weight, what is stored; per
    training sample, what is held between phases and what is done.

    ``planes``: analog devices per weight (2 for a differential pair; more for a scheme with extra
    arrays); ``digital_per_weight``: digital values held per weight between samples (a scheme's
    accumulator χ or buffer H, c-TTv2's chopper signs, a zero-shift offset; 0 for direct writes:
    ``schemes.digital_per_weight(scheme, train, sizes)``); both come from the update scheme. ``counts``:
    the kernels' counts over ``n_samples`` training samples (keys ``reads``, ``device_reads``,
    ``pulses_up``, ``pulses_down``, and where a scheme has them ``transfers``, ``verify_reads``:
    tiki-taka counts one verify read per cross-point of each A column a transfer reads),
    turned into per-sample and per-weight-per-sample rates."""
    W = n_weights(sizes)
    L = len(sizes) - 1
    out = {
        "weights": W,
        "analog_devices_per_weight": int(planes),
        "digital_values_per_weight": float(digital_per_weight),
        "values_held_per_sample": values_held(algorithm, sizes),
        "reads_per_sample": reads_per_sample(algorithm, L),
        "forward_passes_per_sample": forward_passes_per_sample(algorithm, L),
        "device_reads_per_sample": device_reads_per_sample(algorithm, sizes, planes),
    }
    if counts is not None:
        if n_samples <= 0:
            raise ValueError("ledger.convention: counts need n_samples > 0")
        c = {k: float(counts.get(k, 0)) for k in ("reads", "device_reads", "transfers", "verify_reads")}
        c["pulses"] = float(counts.get("pulses_up", 0)) + float(counts.get("pulses_down", 0))
        for k, v in c.items():  # counted by the kernels (the formulas above are the expected values)
            out[f"counted_{k}_per_sample"] = v / n_samples
        for k in ("pulses", "transfers", "verify_reads"):
            out[f"counted_{k}_per_sample_per_weight"] = c[k] / (n_samples * W)
    return out
