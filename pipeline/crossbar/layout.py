"""Data layout of a crossbar network for the kernels (see :mod:`pipeline.crossbar.kernels`):
the code constants, :class:`Devices` (per-device arrays, layer geometry, the tile's per-plane
arrays), :func:`tile` and :class:`Physics` (the scalars)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..devices.families import REGISTRY

# by family code: does the step law use the per-device shape parameters (gamma_up / gamma_down)?
SHAPED = np.array([bool(f.shape_params) for f in sorted(REGISTRY, key=lambda f: f.code)])
MAP_DIFFERENTIAL, MAP_REFERENCE, MAP_PLANES = 0, 1, 2
MAPPINGS = {"differential": MAP_DIFFERENTIAL, "reference": MAP_REFERENCE}  # the params' choices
ENC_NEAREST, ENC_STOCHASTIC, ENC_FLOOR, ENC_SIGN, ENC_SPARSE = 0, 1, 2, 3, 4
# ENC_SPARSE: stochastic rounding with the same per-device probabilities, its Bernoulli draws of
# an outer-product write sampled row by row by geometric skips (updates._rows); element-wise writes
# (programming, transfers, mixed precision) round device by device as ENC_STOCHASTIC
ENCODINGS = {"nearest": ENC_NEAREST, "stochastic": ENC_STOCHASTIC, "floor": ENC_FLOOR, "sign": ENC_SIGN,
             "stochastic-sparse": ENC_SPARSE}
POL_POTENTIATE, POL_DEPRESS, POL_ALTERNATE = 0, 1, 2
POLICIES = {"potentiate": POL_POTENTIATE, "depress": POL_DEPRESS, "alternate": POL_ALTERNATE}


class Devices(NamedTuple):
    """Per-device parameters, all ``(P, N)`` float64 unless noted, plus the layer geometry."""

    g_min: np.ndarray
    g_max: np.ndarray
    dg_up: np.ndarray
    dg_down: np.ndarray
    gamma_up: np.ndarray
    gamma_down: np.ndarray
    stuck: np.ndarray  # uint8: 0 free, 1 stuck (never moves)
    table: np.ndarray  # int64: look-up table index of each device (table family)
    tab_g: np.ndarray  # (T, B) bin centres
    tab_nb: np.ndarray  # (T,) valid bins
    tab_p: np.ndarray  # (T, M) CDF points
    tab_np: np.ndarray  # (T,) valid CDF points
    tab_up: np.ndarray  # (T, M, B)
    tab_down: np.ndarray  # (T, M, B)
    off: np.ndarray  # (L + 1,) int64 layer offsets
    rows: np.ndarray  # (L,) int64
    cols: np.ndarray  # (L,) int64 (including the bias column)
    # the tile: how the P device planes of a cross-point make its weight (see ``tile``)
    coef: np.ndarray  # (P,) float64: read coefficient of each plane
    ref: np.ndarray  # (P,) float64: conductance subtracted from each plane before weighting (S)
    write: np.ndarray  # (2,) int64: the planes pulses go to (``+`` and ``−`` device of the written pair)
    # zero-shift (``train.zero_shift``, general tiles only): per cross-point offset of the written
    # pair, in S, subtracted from the pair's read (the pair reads coef[write[0]]·(G₊ − G₋ − zero));
    # size 0: no offset
    zero: np.ndarray = np.zeros(0)


def tile(mapping: int, planes: int, g_ref: float = 0.0, coef=None, ref=None, write=(0, 1)):
    """``(coef, ref, write)`` of a tile: the weight of a cross-point is
    ``w = Σ_p coef[p]·(G_p − ref[p]) / g_scale`` over its ``P`` device planes, and pulses go to the
    pair of planes ``write`` (one plane twice: a single device written both ways).

    ``differential``: planes (G⁺, G⁻), coef (1, −1), ref 0, write (0, 1); ``reference``: one
    plane, coef 1, ref ``g_ref``, write (0, 0) (these two keep specialised read and write loops);
    ``MAP_PLANES``: any ``coef``, ``ref`` and ``write`` (e.g. a significance-weighted pair of pairs
    ``coef = (γ, −γ, 1, −1)`` whose pulses go to the first pair), and optionally (``Devices.zero``)
    a per-cross-point offset of the written pair, its symmetry point found by zero-shift
    calibration: ``w −= coef[write[0]]·zero[idx] / g_scale``."""
    if mapping == MAP_DIFFERENTIAL:
        coef, ref, write = (1.0, -1.0), (0.0, 0.0), (0, 1)
    elif mapping == MAP_REFERENCE:
        coef, ref, write = (1.0,), (g_ref,), (0, 0)
    coef = np.ascontiguousarray(coef, np.float64)
    ref = np.zeros(planes) if ref is None else np.ascontiguousarray(ref, np.float64)
    write = np.ascontiguousarray(write, np.int64)
    if coef.shape != (planes,) or ref.shape != (planes,) or write.shape != (2,) or not (
            0 <= write.min() and write.max() < planes):
        raise ValueError(f"tile of {planes} planes: coef {coef.shape}, ref {ref.shape}, write {write} do not fit")
    return coef, ref, write


class Physics(NamedTuple):
    """Scalars of the array model (see module docstring), in four groups: the devices' ``[law]``,
    the ``[tile]``, the ``[read]`` periphery and the ``[write]`` periphery — plus
    ``parallel_min``, the one ``[dispatch]`` setting that is not physics (from how many devices
    the dispatchers ``update_layer`` / ``read_fwd`` / ``read_tr`` use the threaded kernels; the
    training loop calls the serial kernels only).

    One flat tuple on purpose: the threaded (``prange``) kernels take it as an argument, and
    numba's parallel gufunc lowering refuses a tuple nested in an argument ("scalar type
    ReadPeriphery given for non scalar argument", numba 0.6x) — measured when the groups were
    nested tuples. Per-device data and the tile's per-plane arrays are in :class:`Devices`."""

    # (field order = the stored order of arrays.zarr's "physics" attrs; the group in brackets)
    family: int  # [law] FAMILY code
    mapping: int  # [tile] MAP_* (per-plane coefficients: Devices.coef / ref / write)
    g_scale: float  # [tile] conductance per weight unit (S)
    g_ref: float  # [tile] reference conductance of the ``reference`` mapping (S)
    c2c: float  # [law] relative std of one pulse's step
    read_noise: float  # [read] std of a device read, relative to one device's weight range
    w_max: float  # [read] weight of a full conductance range
    adc_bits: int  # [read] 0: no ADC
    adc_range: float  # [read] ADC full scale ±adc_range
    out_clip: float  # [read] 0: no clipping
    drift: float  # [law] retention factor per sample (1.0: no drift)
    drift_rest: float  # [law] normalised rest state
    encoding: int  # [write] ENC_*
    n_max: int  # [write] pulse cap per device per update
    threshold: float  # [write] sign encoding: pulse when |ΔW| > threshold · nominal step
    policy: int  # [write] POL_*
    dw_pot: float  # [write] nominal weight change of one potentiation pulse
    dw_dep: float  # [write] nominal weight change of one depression pulse
    parallel_min: int  # [dispatch] threaded kernels from this many devices on


