"""Reads of a crossbar (see :mod:`pipeline.crossbar.kernels`): forward and transposed
vector-matrix products through the devices, with read noise, clipping and ADC; the weights read
back; the threaded variants and their dispatchers."""

from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64

from ..rng import normal
from .layout import MAP_DIFFERENTIAL, MAP_PLANES

# ------------------------------------------------------------------------------------------ reads


@njit(cache=True, inline="always")
def _planes(g, dev, idx):
    """Σ_p coef[p]·(G_p − ref[p]) of one cross-point (a general tile), less the written pair's
    zero-shift offset where the tile has one (``Devices.zero``)."""
    t = 0.0
    for p in range(g.shape[0]):
        t += dev.coef[p] * (g[p, idx] - dev.ref[p])
    if dev.zero.shape[0] != 0:
        t -= dev.coef[dev.write[0]] * dev.zero[idx]
    return t


@njit(cache=True, inline="always")
def term(g, dev, ph, idx):
    """The conductance term a read multiplies at cross-point ``idx`` (the weight × ``g_scale``):
    G⁺ − G⁻, G − G_ref, or the planes' weighted sum."""
    if ph.mapping == MAP_DIFFERENTIAL:
        return g[0, idx] - g[1, idx]
    if ph.mapping == MAP_PLANES:
        return _planes(g, dev, idx)
    return g[0, idx] - ph.g_ref


@njit(cache=True, inline="always")
def weight(g, dev, ph, idx):
    return term(g, dev, ph, idx) / ph.g_scale


@njit(cache=True)
def terms(g, dev, ph):
    """The read terms of every cross-point (N,): the cached weight matrix (× ``g_scale``) that the
    ``*_t`` reads use. Writes that receive it keep it in step (:func:`sync_term` after every
    pulsed device), so a cached read multiplies exactly the number an uncached read derives."""
    t = np.empty(g.shape[1])
    sync_all(g, dev, ph, t)
    return t


@njit(cache=True)
def sync_all(g, dev, ph, t):
    """Re-derive every cached read term from the conductances (after drift, which moves all)."""
    for idx in range(g.shape[1]):
        t[idx] = term(g, dev, ph, idx)


@njit(cache=True, inline="always")
def sync_term(g, dev, ph, t, idx):
    """Keep the cached read term of ``idx`` in step after its devices were pulsed (no cache: size 0)."""
    if t.shape[0] != 0:
        t[idx] = term(g, dev, ph, idx)


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
def nonzero(x, c):
    """``(nz, m)``: the indices ``j < c`` with ``x[j] != 0`` (NaN included), in order, in ``nz[:m]``.

    A read skips the other inputs, to the bit: a term (finite conductances) × ±0 is ±0, and adding
    ±0 to a running sum that starts at +0.0 leaves it unchanged (IEEE: ``s + ±0 = s`` for
    ``s != 0``, ``+0 + -0 = +0``, and a sum of nonzero terms is never -0)."""
    nz = np.empty(c, np.int64)
    m = 0
    for j in range(c):
        if x[j] != 0.0:
            nz[m] = j
            m += 1
    return nz, m


@njit(cache=True, inline="always")
def _pair_term(t, gp, gm, k, cached):
    """The read term at flat index ``k``: the cached one, or G⁺ − G⁻ of a differential pair."""
    if cached:
        return t[k]
    return gp[k] - gm[k]


@njit(cache=True)
def _forward_rows(g, t, dev, ph, o, c, x, nz, m, y, sigma_x, key_read, noisy, i0, i1):
    """Rows i0..i1-1 of a forward read over the nonzero inputs ``nz[:m]`` (one row is always summed
    by one thread, in order of j), from the cached read terms ``t`` (:func:`terms`; size 0: derived
    from ``g``, the same numbers). Cached terms and differential pairs sum four rows side by side
    (four independent chains, each in the same order: the same bits, without waiting on one chain's
    additions)."""
    cached = t.shape[0] != 0
    fast = cached or ph.mapping == MAP_DIFFERENTIAL
    planes = ph.mapping == MAP_PLANES
    gp = g[0]  # 1-D views and unsigned indices: no negative-index wraparound in the loop
    gm = g[g.shape[0] - 1]
    i = i0
    if fast:
        while i + 4 <= i1:
            b0 = uint64(o + i * c)
            b1 = b0 + uint64(c)
            b2 = b1 + uint64(c)
            b3 = b2 + uint64(c)
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            a3 = 0.0
            for jj in range(m):
                j = uint64(nz[jj])
                xj = x[j]
                a0 += _pair_term(t, gp, gm, b0 + j, cached) * xj
                a1 += _pair_term(t, gp, gm, b1 + j, cached) * xj
                a2 += _pair_term(t, gp, gm, b2 + j, cached) * xj
                a3 += _pair_term(t, gp, gm, b3 + j, cached) * xj
            y[i] = _read_out(a0 / ph.g_scale, ph, sigma_x, key_read, i, noisy)
            y[i + 1] = _read_out(a1 / ph.g_scale, ph, sigma_x, key_read, i + 1, noisy)
            y[i + 2] = _read_out(a2 / ph.g_scale, ph, sigma_x, key_read, i + 2, noisy)
            y[i + 3] = _read_out(a3 / ph.g_scale, ph, sigma_x, key_read, i + 3, noisy)
            i += 4
    for i in range(i, i1):
        acc = 0.0
        base = o + i * c
        if fast:
            ub = uint64(base)
            for jj in range(m):
                j = uint64(nz[jj])
                acc += _pair_term(t, gp, gm, ub + j, cached) * x[j]
        elif planes:
            for jj in range(m):
                j = nz[jj]
                acc += _planes(g, dev, base + j) * x[j]
        else:
            for jj in range(m):
                j = nz[jj]
                acc += (g[0, base + j] - ph.g_ref) * x[j]
        y[i] = _read_out(acc / ph.g_scale, ph, sigma_x, key_read, i, noisy)


@njit(cache=True)
def _transposed_cols(g, t, dev, ph, o, r, c, d, x, sigma_d, key_read, noisy, j0, j1):
    """Columns j0..j1-1 of a transposed read (each column summed over rows in order), from the
    cached read terms ``t`` (size 0: derived from ``g``)."""
    cached = t.shape[0] != 0
    fast = cached or ph.mapping == MAP_DIFFERENTIAL
    planes = ph.mapping == MAP_PLANES
    for j in range(j0, j1):
        x[j] = 0.0
    gp = g[0]
    gm = g[g.shape[0] - 1]
    for i in range(r):
        base = o + i * c
        di = d[i]
        if di == 0.0:  # adds ±0 to every column: skipped, to the bit (see ``nonzero``)
            continue
        if fast:  # 1-D views, unsigned indices: a loop LLVM vectorises (independent columns)
            ub = uint64(base)
            for j in range(uint64(j0), uint64(j1)):
                x[j] += _pair_term(t, gp, gm, ub + j, cached) * di
        elif planes:
            for j in range(j0, j1):
                x[j] += _planes(g, dev, base + j) * di
        else:
            for j in range(j0, j1):
                x[j] += (g[0, base + j] - ph.g_ref) * di
    for j in range(j0, j1):
        x[j] = _read_out(x[j] / ph.g_scale, ph, sigma_d, key_read, j, noisy)


@njit(cache=True)
def read_forward_t(t, g, dev, ph, layer, x, y, key_read, noisy):
    """y[i] = Σ_j w_ij x[j] (+ noise, clip, ADC). ``x`` has ``cols`` entries (bias included).
    ``t``: the cached read terms of ``g`` (:func:`terms`; size 0: derived from ``g``, same bits)."""
    r, c = dev.rows[layer], dev.cols[layer]
    nz, m = nonzero(x, c)
    _forward_rows(g, t, dev, ph, dev.off[layer], c, x, nz, m, y, _norm(x, c, _read_power(g, dev, ph)), key_read, noisy,
                  0, r)


@njit(cache=True)
def read_transposed_t(t, g, dev, ph, layer, d, x, key_read, noisy):
    """x[j] = Σ_i w_ij d[i] (+ noise, clip, ADC) for every column j (bias column included), from
    the cached read terms ``t`` (size 0: derived from ``g``)."""
    r, c = dev.rows[layer], dev.cols[layer]
    _transposed_cols(g, t, dev, ph, dev.off[layer], r, c, d, x, _norm(d, r, _read_power(g, dev, ph)), key_read, noisy,
                     0, c)


@njit(cache=True)
def read_forward(g, dev, ph, layer, x, y, key_read, noisy):
    """:func:`read_forward_t` with every term derived from ``g``."""
    read_forward_t(np.zeros(0), g, dev, ph, layer, x, y, key_read, noisy)


@njit(cache=True)
def read_transposed(g, dev, ph, layer, d, x, key_read, noisy):
    """:func:`read_transposed_t` with every term derived from ``g``."""
    read_transposed_t(np.zeros(0), g, dev, ph, layer, d, x, key_read, noisy)


@njit(cache=False, parallel=True)  # never cached: see module docstring
def read_forward_t_parallel(t, g, dev, ph, layer, x, y, key_read, noisy):
    """:func:`read_forward_t` with blocks of 8 rows spread over threads (same result to the bit)."""
    r, c, o = dev.rows[layer], dev.cols[layer], dev.off[layer]
    sigma_x = _norm(x, c, _read_power(g, dev, ph))
    nz, m = nonzero(x, c)
    for b in prange((r + 7) // 8):
        _forward_rows(g, t, dev, ph, o, c, x, nz, m, y, sigma_x, key_read, noisy, b * 8, min(r, b * 8 + 8))


@njit(cache=False, parallel=True)  # never cached: see module docstring
def read_transposed_t_parallel(t, g, dev, ph, layer, d, x, key_read, noisy):
    """:func:`read_transposed_t` with blocks of 64 columns spread over threads (same summation
    order per column, so the same result to the bit)."""
    r, c, o = dev.rows[layer], dev.cols[layer], dev.off[layer]
    sigma_d = _norm(d, r, _read_power(g, dev, ph))
    for b in prange((c + 63) // 64):
        _transposed_cols(g, t, dev, ph, o, r, c, d, x, sigma_d, key_read, noisy, b * 64, min(c, b * 64 + 64))


@njit(cache=False)
def read_forward_parallel(g, dev, ph, layer, x, y, key_read, noisy):
    """:func:`read_forward` with blocks of 8 rows spread over threads."""
    read_forward_t_parallel(np.zeros(0), g, dev, ph, layer, x, y, key_read, noisy)


@njit(cache=False)
def read_transposed_parallel(g, dev, ph, layer, d, x, key_read, noisy):
    """:func:`read_transposed` with blocks of 64 columns spread over threads."""
    read_transposed_t_parallel(np.zeros(0), g, dev, ph, layer, d, x, key_read, noisy)


@njit(cache=False)
def read_fwd_t(t, g, dev, ph, layer, x, y, key_read, noisy):
    """Cached forward read, threaded for layers of at least ``parallel_min`` devices."""
    if dev.rows[layer] * dev.cols[layer] * g.shape[0] >= ph.parallel_min:
        read_forward_t_parallel(t, g, dev, ph, layer, x, y, key_read, noisy)
    else:
        read_forward_t(t, g, dev, ph, layer, x, y, key_read, noisy)


@njit(cache=False)
def read_tr_t(t, g, dev, ph, layer, d, x, key_read, noisy):
    """Cached transposed read, threaded for layers of at least ``parallel_min`` devices."""
    if dev.rows[layer] * dev.cols[layer] * g.shape[0] >= ph.parallel_min:
        read_transposed_t_parallel(t, g, dev, ph, layer, d, x, key_read, noisy)
    else:
        read_transposed_t(t, g, dev, ph, layer, d, x, key_read, noisy)


@njit(cache=False)
def read_fwd(g, dev, ph, layer, x, y, key_read, noisy):
    """:func:`read_fwd_t` with every term derived from ``g``."""
    read_fwd_t(np.zeros(0), g, dev, ph, layer, x, y, key_read, noisy)


@njit(cache=False)
def read_tr(g, dev, ph, layer, d, x, key_read, noisy):
    """:func:`read_tr_t` with every term derived from ``g``."""
    read_tr_t(np.zeros(0), g, dev, ph, layer, d, x, key_read, noisy)
