"""Numba kernels of a crossbar (DESIGN §1.4, §2.3): forward and transposed reads, pulse updates,
retention drift. They know only ndarrays and scalars.

Layout. All layers of a network live in one flat buffer: layer ``l`` occupies
``[off[l], off[l] + rows[l]·cols[l])`` in row-major order (``cols`` includes the bias column).
Conductances ``g`` and every per-device parameter have shape ``(P, N)`` with ``P = 2`` for the
``differential`` mapping (pair 0 = G⁺, pair 1 = G⁻) and ``P = 1`` for ``reference``.
The weight of a cross-point is read back from the devices, never taken from a requested update:
``w = (G⁺ − G⁻) / g_scale`` or ``w = (G − g_ref) / g_scale``.

Per-device arrays travel in :class:`Devices`, scalars in :class:`Physics` (both NamedTuples that
numba accepts as arguments). ``g`` and the pulse counters travel separately so that a probe can
run on a copy.

Reads add Gaussian noise on every output line: ``std = read_noise · w_max · √P · ‖x‖₂`` — the
output-referred sum of an independent conductance read error of ``read_noise`` × (device range)
on every device of the line. Then optional clipping to ``±out_clip`` and ADC quantisation to
``adc_bits`` over ``±adc_range``.

Updates: ``n = round(|ΔW| / Δw_nominal)`` by the chosen encoding (nearest, stochastic rounding,
floor, or sign: one pulse when ``|ΔW| > threshold·Δw_nominal``), capped at ``n_max``; each pulse
goes through the device law one at a time (``law.apply_pulses``). ``Δw_nominal`` is the mean step
of the polarity used (potentiation ``dw_pot``, depression ``dw_dep``), so the controller
compensates the mean up/down asymmetry. Differential policy for ΔW > 0: potentiate G⁺ (0),
depress G⁻ (1) or alternate between the two from sample to sample (2); ΔW < 0 mirrors it.
Threads: the ``*_parallel`` kernels (and the ``update_layer`` / ``read_fwd`` / ``read_tr``
dispatchers that reach them) are compiled per process and never cached. A cached library that
contains ``prange`` code carries gufunc symbols named by a per-process counter; loading two such
libraries written by different processes (a test session does this) can bind the wrong code and
crash (numba issues #10128, #4807). The training loop therefore calls the serial kernels only and
stays cached; parallelism across runs comes from DVC and the Dask sweeps.
Randomness only from the counter-based generator keyed on (seed, stream, step, device index,
pulse): results are bit-identical for any thread count.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange, uint64

from ..devices.families import REGISTRY
from ..devices.law import SOFT_BOUNDS, TABLE, clip, parametric_step, table_step
from ..rng import STREAM_PULSE, STREAM_ROUND, key3, normal, subkey, uniform

# by family code: does the step law use the per-device shape parameters (gamma_up / gamma_down)?
SHAPED = np.array([bool(f.shape_params) for f in sorted(REGISTRY, key=lambda f: f.code)])
_PHI2 = np.uint64(0xD1B54A32D192ED03)  # odd multiplier spreading the device index over the pulse key
MAP_DIFFERENTIAL, MAP_REFERENCE, MAP_PLANES = 0, 1, 2
MAPPINGS = {"differential": MAP_DIFFERENTIAL, "reference": MAP_REFERENCE}  # the params' choices
ENC_NEAREST, ENC_STOCHASTIC, ENC_FLOOR, ENC_SIGN = 0, 1, 2, 3
ENCODINGS = {"nearest": ENC_NEAREST, "stochastic": ENC_STOCHASTIC, "floor": ENC_FLOOR, "sign": ENC_SIGN}
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


def tile(mapping: int, planes: int, g_ref: float = 0.0, coef=None, ref=None, write=(0, 1)):
    """``(coef, ref, write)`` of a tile: the weight of a cross-point is
    ``w = Σ_p coef[p]·(G_p − ref[p]) / g_scale`` over its ``P`` device planes, and pulses go to the
    pair of planes ``write`` (one plane twice: a single device written both ways).

    ``differential``: planes (G⁺, G⁻), coef (1, −1), ref 0, write (0, 1); ``reference``: one
    plane, coef 1, ref ``g_ref``, write (0, 0) (these two keep specialised read and write loops);
    ``MAP_PLANES``: any ``coef``, ``ref`` and ``write`` (e.g. a significance-weighted pair of pairs
    ``coef = (γ, −γ, 1, −1)`` whose pulses go to the first pair)."""
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


# ------------------------------------------------------------------------------------------ reads


@njit(cache=True, inline="always")
def _planes(g, dev, idx):
    """Σ_p coef[p]·(G_p − ref[p]) of one cross-point (a general tile)."""
    t = 0.0
    for p in range(g.shape[0]):
        t += dev.coef[p] * (g[p, idx] - dev.ref[p])
    return t


@njit(cache=True, inline="always")
def weight(g, dev, ph, idx):
    if ph.mapping == MAP_DIFFERENTIAL:
        return (g[0, idx] - g[1, idx]) / ph.g_scale
    if ph.mapping == MAP_PLANES:
        return _planes(g, dev, idx) / ph.g_scale
    return (g[0, idx] - ph.g_ref) / ph.g_scale


@njit(cache=True)
def weights(g, dev, ph, layer):
    """Effective weight matrix of ``layer`` read back from the devices (rows, cols)."""
    r, c, o = dev.rows[layer], dev.cols[layer], dev.off[layer]
    w = np.empty((r, c))
    for i in range(r):
        for j in range(c):
            w[i, j] = weight(g, dev, ph, o + i * c + j)
    return w


@njit(cache=True, inline="always")
def _read_out(y, ph, sigma_x, key_read, i, noisy):
    """Read noise, clipping and ADC of one output line."""
    if noisy and ph.read_noise > 0.0:
        y += ph.read_noise * ph.w_max * sigma_x * normal(key_read, i)
    if ph.out_clip > 0.0:
        y = min(max(y, -ph.out_clip), ph.out_clip)
    if ph.adc_bits > 0:
        r = ph.adc_range
        y = min(max(y, -r), r)
        q = 2.0 * r / (2.0 ** ph.adc_bits - 1.0)
        y = np.floor(y / q + 0.5) * q
    return y


@njit(cache=True)
def _norm(v, n, P):
    """√P·‖v[:n]‖₂: the output-referred scale of the read noise (``P``: the read power of the
    tile's planes, :func:`_read_power`)."""
    ss = 0.0
    for k in range(n):
        ss += v[k] * v[k]
    return np.sqrt(P * ss)


@njit(cache=True, inline="always")
def _read_power(g, dev, ph):
    """Σ_p coef[p]²: the planes' independent read errors add up with these weights (the number of
    planes for the standard mappings, whose coefficients are ±1)."""
    if ph.mapping != MAP_PLANES:
        return g.shape[0]
    s = 0.0
    for p in range(g.shape[0]):
        s += dev.coef[p] * dev.coef[p]
    return s


@njit(cache=True)
def _forward_rows(g, dev, ph, o, c, x, y, sigma_x, key_read, noisy, i0, i1):
    """Rows i0..i1-1 of a forward read (one row is always summed by one thread, in order)."""
    diff = ph.mapping == MAP_DIFFERENTIAL
    planes = ph.mapping == MAP_PLANES
    for i in range(i0, i1):
        acc = 0.0
        base = o + i * c
        if diff:
            for j in range(c):
                acc += (g[0, base + j] - g[1, base + j]) * x[j]
        elif planes:
            for j in range(c):
                acc += _planes(g, dev, base + j) * x[j]
        else:
            for j in range(c):
                acc += (g[0, base + j] - ph.g_ref) * x[j]
        y[i] = _read_out(acc / ph.g_scale, ph, sigma_x, key_read, i, noisy)


@njit(cache=True)
def _transposed_cols(g, dev, ph, o, r, c, d, x, sigma_d, key_read, noisy, j0, j1):
    """Columns j0..j1-1 of a transposed read (each column summed over rows in order)."""
    diff = ph.mapping == MAP_DIFFERENTIAL
    planes = ph.mapping == MAP_PLANES
    for j in range(j0, j1):
        x[j] = 0.0
    for i in range(r):
        base = o + i * c
        di = d[i]
        if diff:
            for j in range(j0, j1):
                x[j] += (g[0, base + j] - g[1, base + j]) * di
        elif planes:
            for j in range(j0, j1):
                x[j] += _planes(g, dev, base + j) * di
        else:
            for j in range(j0, j1):
                x[j] += (g[0, base + j] - ph.g_ref) * di
    for j in range(j0, j1):
        x[j] = _read_out(x[j] / ph.g_scale, ph, sigma_d, key_read, j, noisy)


@njit(cache=True)
def read_forward(g, dev, ph, layer, x, y, key_read, noisy):
    """y[i] = Σ_j w_ij x[j] (+ noise, clip, ADC). ``x`` has ``cols`` entries (bias included)."""
    r, c = dev.rows[layer], dev.cols[layer]
    _forward_rows(g, dev, ph, dev.off[layer], c, x, y, _norm(x, c, _read_power(g, dev, ph)), key_read, noisy, 0, r)


@njit(cache=True)
def read_transposed(g, dev, ph, layer, d, x, key_read, noisy):
    """x[j] = Σ_i w_ij d[i] (+ noise, clip, ADC) for every column j (bias column included)."""
    r, c = dev.rows[layer], dev.cols[layer]
    _transposed_cols(g, dev, ph, dev.off[layer], r, c, d, x, _norm(d, r, _read_power(g, dev, ph)), key_read, noisy, 0, c)


@njit(cache=False, parallel=True)  # never cached: see module docstring
def read_forward_parallel(g, dev, ph, layer, x, y, key_read, noisy):
    """:func:`read_forward` with blocks of 8 rows spread over threads (same result to the bit)."""
    r, c, o = dev.rows[layer], dev.cols[layer], dev.off[layer]
    sigma_x = _norm(x, c, _read_power(g, dev, ph))
    for b in prange((r + 7) // 8):
        _forward_rows(g, dev, ph, o, c, x, y, sigma_x, key_read, noisy, b * 8, min(r, b * 8 + 8))


@njit(cache=False, parallel=True)  # never cached: see module docstring
def read_transposed_parallel(g, dev, ph, layer, d, x, key_read, noisy):
    """:func:`read_transposed` with blocks of 64 columns spread over threads (same summation
    order per column, so the same result to the bit)."""
    r, c, o = dev.rows[layer], dev.cols[layer], dev.off[layer]
    sigma_d = _norm(d, r, _read_power(g, dev, ph))
    for b in prange((c + 63) // 64):
        _transposed_cols(g, dev, ph, o, r, c, d, x, sigma_d, key_read, noisy, b * 64, min(c, b * 64 + 64))


# ---------------------------------------------------------------------------------------- updates


Q_HUGE = 4.0e18  # requests are clamped here before int() (the n_max cap applies anyway)


@njit(cache=True, inline="always")
def pulse_count(q, ph, key_round_prefix, flat, encoding):
    """Pulses for a requested change of ``q`` nominal steps (q >= 0), by the encoding, capped.
    Stochastic rounding draws ``uniform(subkey(key_round_prefix, flat), 0)``. A NaN request gives
    no pulse; a huge one (up to inf) the cap."""
    if not q > 0.0:
        return 0
    q = min(q, Q_HUGE)
    if encoding == ENC_NEAREST:
        n = int(np.floor(q + 0.5))
    elif encoding == ENC_STOCHASTIC:
        fl = np.floor(q)
        n = int(fl) + (1 if uniform(subkey(key_round_prefix, flat), 0) < q - fl else 0)
    elif encoding == ENC_FLOOR:
        n = int(np.floor(q))
    else:  # ENC_SIGN
        n = 1 if q > ph.threshold else 0
    return min(n, ph.n_max)


@njit(cache=True)
def _table_pulses(gv, n, polarity, gmin, gmax, key, t, dev):
    """``n`` pulses of a ``table`` device (the ``table`` branch of ``law.apply_pulses``)."""
    for k in range(n):
        gv = clip(gv + table_step(gv, polarity, t, dev.tab_g, dev.tab_nb, dev.tab_p, dev.tab_np, dev.tab_up,
                                  dev.tab_down, uniform(key, k)), gmin, gmax)
    return gv


@njit(cache=True, inline="always")
def _pulses(gv, n, polarity, family, gmin, gmax, dg, gamma, c2c, key):
    """``n`` pulses of one polarity on a parametric device through the one step law
    (:func:`pipeline.devices.law.parametric_step`, as ``law.apply_pulses``), the parameters of the
    polarity already picked."""
    for k in range(n):
        gv = clip(gv + parametric_step(gv, polarity, family, gmin, gmax, dg, gamma, c2c, key, k), gmin, gmax)
    return gv


@njit(cache=True, inline="always")
def _unpack(dev):
    return dev.g_min, dev.g_max, dev.dg_up, dev.dg_down, dev.gamma_up, dev.gamma_down, dev.stuck, dev.table


@njit(cache=True, inline="always")
def _route(dw, pairwise, pot_route, inv_pot, inv_dep):
    """(pair, polarity, q) of a requested weight change ``dw != 0``: which device of the written
    pair (0: ``+``, 1: ``−``; always 0 for a single device), which pulse polarity, and the change
    in nominal steps of that polarity (``|dw| · inv_pot`` or ``|dw| · inv_dep``, the inverses
    ``1/dw_pot``, ``1/dw_dep`` computed once per call)."""
    if pairwise:
        if pot_route:
            return (0 if dw > 0.0 else 1), 1, abs(dw) * inv_pot
        return (1 if dw > 0.0 else 0), -1, abs(dw) * inv_dep
    if dw > 0.0:
        return 0, 1, dw * inv_pot
    return 0, -1, -dw * inv_dep


@njit(cache=True, inline="always")
def potentiate_route(ph, step):
    """Differential mapping: is a positive change written by potentiating G⁺ at this step?"""
    return ph.policy == POL_POTENTIATE or (ph.policy == POL_ALTERNATE and (step & 1) == 0)


ROW_BLOCK = 8  # rows per task of the threaded update


@njit(cache=True, error_model="numpy")
def _write_rows(g, dev, ph, base, c, i0, i1, d, a, lr, kp, kr, pot_route, cnt_up, cnt_dn):
    """:func:`_rows` with the device family, mapping and encoding as constants for the common
    cases (soft-bounds, nearest rounding: the loop then carries no branch on them)."""
    if ph.family == SOFT_BOUNDS and ph.encoding == ENC_NEAREST:
        if ph.mapping == MAP_REFERENCE:
            return _rows(g, dev, ph, base, c, i0, i1, d, a, lr, kp, kr, pot_route, cnt_up, cnt_dn,
                         SOFT_BOUNDS, MAP_REFERENCE, ENC_NEAREST)
        if ph.mapping == MAP_DIFFERENTIAL:
            return _rows(g, dev, ph, base, c, i0, i1, d, a, lr, kp, kr, pot_route, cnt_up, cnt_dn,
                         SOFT_BOUNDS, MAP_DIFFERENTIAL, ENC_NEAREST)
    return _rows(g, dev, ph, base, c, i0, i1, d, a, lr, kp, kr, pot_route, cnt_up, cnt_dn, ph.family, ph.mapping,
                 ph.encoding)


@njit(cache=True, inline="always")
def _rows(g, dev, ph, base, c, i0, i1, d, a, lr, kp, kr, pot_route, cnt_up, cnt_dn, family, mapping, encoding):
    """Write rows ``i0 … i1-1`` of a ``c``-column block of cross-points starting at flat index
    ``base``, with ΔW_ij = (-lr·d_i)·a_j, as pulses; returns (pulses up, pulses down). Device
    (pair, idx), flat index ``f = pair·N + idx``, draws its rounding from ``(subkey(kr, f), 0)`` and
    its pulse k from ``(kp ^ f·φ₂, k)``, i.e. the word ``mix(kp ^ f·φ₂ ^ k·φ)``: the SplitMix
    pattern (a hash of a spread counter) with two counters, one hash per pulse.

    Speed: this is the hot loop, written out in one function. Numba increments and decrements the
    reference count of every array handed to a call (or to an ``inline="always"`` function) —
    atomics on counters that threads share — so the loop calls only scalar helpers, the arrays are
    unpacked once per block of rows, and ``dev`` is handed on only for ``table`` devices."""
    up = 0
    dn = 0
    N = g.shape[1]
    g_min, g_max, dg_up, dg_down, gamma_up, gamma_down, stuck, table = _unpack(dev)
    planes = mapping == MAP_PLANES
    w_plus = dev.write[0] if planes else 0
    w_minus = dev.write[1] if planes else 1
    pairwise = mapping == MAP_DIFFERENTIAL or (planes and w_plus != w_minus)
    c2c = ph.c2c
    shaped = SHAPED[family]
    inv_pot = 1.0 / ph.dw_pot
    inv_dep = 1.0 / ph.dw_dep
    for i in range(i0, i1):
        if d[i] == 0.0:
            continue
        s = -lr * d[i]
        row = base + i * c
        for j in range(c):
            dw = s * a[j]
            if dw == 0.0:
                continue
            idx = row + j
            pair, polarity, q = _route(dw, pairwise, pot_route, inv_pot, inv_dep)
            if planes:
                pair = w_plus if pair == 0 else w_minus
            flat = pair * N + idx
            n = pulse_count(q, ph, kr, flat, encoding)
            # unsigned indices: numba then skips the negative-index wraparound on every access
            p = np.uint64(pair)
            u = np.uint64(idx)
            if n == 0 or stuck[p, u] != 0:
                continue
            key = kp ^ (uint64(flat) * _PHI2)
            lo = g_min[p, u]
            hi = g_max[p, u]
            if family == TABLE:
                g[p, u] = _table_pulses(g[p, u], n, polarity, lo, hi, key, table[p, u], dev)
            elif polarity > 0:
                gam = gamma_up[p, u] if shaped else 0.0
                g[p, u] = _pulses(g[p, u], n, 1, family, lo, hi, dg_up[p, u], gam, c2c, key)
            else:
                gam = gamma_down[p, u] if shaped else 0.0
                g[p, u] = _pulses(g[p, u], n, -1, family, lo, hi, dg_down[p, u], gam, c2c, key)
            if polarity > 0:
                cnt_up[p, u] += n
                up += n
            else:
                cnt_dn[p, u] += n
                dn += n
    return up, dn


@njit(cache=True)
def update_layer_serial(g, dev, ph, layer, d, a, lr, seed, step, cnt_up, cnt_dn):
    """Apply ΔW = -lr·d·aᵀ to ``layer`` as pulses; returns (pulses up, pulses down)."""
    return _write_rows(g, dev, ph, dev.off[layer], dev.cols[layer], 0, dev.rows[layer], d, a, lr,
                       key3(seed, STREAM_PULSE, step), key3(seed, STREAM_ROUND, step), potentiate_route(ph, step),
                       cnt_up, cnt_dn)


@njit(cache=False, parallel=True)  # never cached: see module docstring
def update_layer_parallel(g, dev, ph, layer, d, a, lr, seed, step, cnt_up, cnt_dn):
    """:func:`update_layer_serial` with blocks of rows spread over threads (bit-identical result:
    every device is written by one task, with draws keyed on the device, never on the thread)."""
    kp = key3(seed, STREAM_PULSE, step)
    kr = key3(seed, STREAM_ROUND, step)
    pot = potentiate_route(ph, step)
    r = dev.rows[layer]
    nblk = (r + ROW_BLOCK - 1) // ROW_BLOCK
    ups = np.zeros(nblk, np.int64)
    dns = np.zeros(nblk, np.int64)
    for b in prange(nblk):
        u, v = _write_rows(g, dev, ph, dev.off[layer], dev.cols[layer], b * ROW_BLOCK, min(r, (b + 1) * ROW_BLOCK),
                           d, a, lr, kp, kr, pot, cnt_up, cnt_dn)
        ups[b] = u
        dns[b] = v
    return ups.sum(), dns.sum()


@njit(cache=False)
def update_layer(g, dev, ph, layer, d, a, lr, seed, step, cnt_up, cnt_dn):
    """Dispatch to the threaded update when the layer has at least ``parallel_min`` devices."""
    if dev.rows[layer] * dev.cols[layer] * g.shape[0] >= ph.parallel_min:
        return update_layer_parallel(g, dev, ph, layer, d, a, lr, seed, step, cnt_up, cnt_dn)
    return update_layer_serial(g, dev, ph, layer, d, a, lr, seed, step, cnt_up, cnt_dn)


@njit(cache=True)
def program(g, dev, ph, dw, seed, step, cnt_up, cnt_dn):
    """Write an arbitrary per-cross-point weight change ``dw`` (N,) as counted pulses, with the
    encoding, routing and device law of :func:`update_layer` (used to program initial weights);
    returns (pulses up, pulses down)."""
    return _write_rows(g, dev, ph, 0, g.shape[1], 0, 1, _MINUS_ONE, dw, 1.0, key3(seed, STREAM_PULSE, step),
                       key3(seed, STREAM_ROUND, step), potentiate_route(ph, step), cnt_up, cnt_dn)


_MINUS_ONE = np.array([-1.0])  # program(): one "row" with (-lr·d) = 1, so ΔW_j = dw_j exactly


@njit(cache=False)
def read_fwd(g, dev, ph, layer, x, y, key_read, noisy):
    if dev.rows[layer] * dev.cols[layer] * g.shape[0] >= ph.parallel_min:
        read_forward_parallel(g, dev, ph, layer, x, y, key_read, noisy)
    else:
        read_forward(g, dev, ph, layer, x, y, key_read, noisy)


@njit(cache=False)
def read_tr(g, dev, ph, layer, d, x, key_read, noisy):
    if dev.rows[layer] * dev.cols[layer] * g.shape[0] >= ph.parallel_min:
        read_transposed_parallel(g, dev, ph, layer, d, x, key_read, noisy)
    else:
        read_transposed(g, dev, ph, layer, d, x, key_read, noisy)


@njit(cache=True)
def drift(g, dev, ph):
    """One sample period of retention: G ← G_rest + (G − G_rest)·drift for every free device."""
    if ph.drift >= 1.0:
        return
    P, N = g.shape
    for p in range(P):
        for idx in range(N):
            if dev.stuck[p, idx] != 0:
                continue
            rest = dev.g_min[p, idx] + ph.drift_rest * (dev.g_max[p, idx] - dev.g_min[p, idx])
            g[p, idx] = rest + (g[p, idx] - rest) * ph.drift
