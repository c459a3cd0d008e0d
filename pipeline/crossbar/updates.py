"""Pulsed updates of a crossbar (see :mod:`pipeline.crossbar.kernels`): requested weight
changes → pulse counts (encodings, cap) → routing to a device of the written pair → pulses one at a
time through the device law; the threaded variant, the dispatcher, ``program``; retention drift."""

from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64

from ..devices.law import POWER, SOFT_BOUNDS, TABLE, clip, parametric_step, table_step
from ..rng import STREAM_PULSE, STREAM_ROUND, key3, subkey, uniform
from .reads import nonzero, term  # noqa: F401  (also the write path's column compaction: skipped columns get ΔW = ±0 or NaN, no pulse, and draws are keyed on the device)
from .layout import (ENC_FLOOR, ENC_NEAREST, ENC_SPARSE, ENC_STOCHASTIC, MAP_DIFFERENTIAL, MAP_PLANES, MAP_REFERENCE, POL_ALTERNATE,
                     POL_POTENTIATE, SHAPED)

_PHI2 = np.uint64(0xD1B54A32D192ED03)  # odd multiplier spreading the device index over the pulse key
# stochastic-sparse: the row draws' key is subkey(key3(seed, STREAM_ROUND, step) ^ ROWS_TAG, row's first flat
# index); the tag's set bits lie above every flat index, so no row key equals a device's rounding key
ROWS_TAG = np.uint64(0xA5A5 << 48)
SPARSE_P_MAX = 0.25  # a row is sampled sparsely when its largest request is below this (else device by device)

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
    elif encoding == ENC_STOCHASTIC or encoding == ENC_SPARSE:  # (a sparse write's rows: updates._rows)
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
def _write_rows(g, dev, ph, base, c, i0, i1, d, a, nz, m, lr, kp, kr, pot_route, cnt_up, cnt_dn, t, rows=False):
    """:func:`_rows` with the device family, mapping and encoding as constants for the common
    cases (soft-bounds or power steps with nearest, stochastic or stochastic-sparse rounding on
    differential pairs, soft-bounds nearest on a reference mapping: the loop then carries no branch
    on them). ``rows``: the write is an outer product, so a stochastic-sparse array samples it row
    by row; otherwise (element-wise requests) stochastic-sparse rounds device by device."""
    fam, enc, mp = ph.family, ph.encoding, ph.mapping
    if enc == ENC_SPARSE and not rows:
        enc = ENC_STOCHASTIC
    if mp == MAP_DIFFERENTIAL:
        if fam == POWER and enc == ENC_STOCHASTIC:  # the fitted default device
            return _rows(g, dev, ph, base, c, i0, i1, d, a, nz, m, lr, kp, kr, pot_route, cnt_up, cnt_dn, t,
                         POWER, MAP_DIFFERENTIAL, ENC_STOCHASTIC)
        if fam == POWER and enc == ENC_SPARSE:
            return _rows(g, dev, ph, base, c, i0, i1, d, a, nz, m, lr, kp, kr, pot_route, cnt_up, cnt_dn, t,
                         POWER, MAP_DIFFERENTIAL, ENC_SPARSE)
        if fam == SOFT_BOUNDS and enc == ENC_STOCHASTIC:
            return _rows(g, dev, ph, base, c, i0, i1, d, a, nz, m, lr, kp, kr, pot_route, cnt_up, cnt_dn, t,
                         SOFT_BOUNDS, MAP_DIFFERENTIAL, ENC_STOCHASTIC)
        if fam == SOFT_BOUNDS and enc == ENC_SPARSE:
            return _rows(g, dev, ph, base, c, i0, i1, d, a, nz, m, lr, kp, kr, pot_route, cnt_up, cnt_dn, t,
                         SOFT_BOUNDS, MAP_DIFFERENTIAL, ENC_SPARSE)
        if fam == SOFT_BOUNDS and enc == ENC_NEAREST:
            return _rows(g, dev, ph, base, c, i0, i1, d, a, nz, m, lr, kp, kr, pot_route, cnt_up, cnt_dn, t,
                         SOFT_BOUNDS, MAP_DIFFERENTIAL, ENC_NEAREST)
    if mp == MAP_REFERENCE and fam == SOFT_BOUNDS and enc == ENC_NEAREST:
        return _rows(g, dev, ph, base, c, i0, i1, d, a, nz, m, lr, kp, kr, pot_route, cnt_up, cnt_dn, t,
                     SOFT_BOUNDS, MAP_REFERENCE, ENC_NEAREST)
    return _rows(g, dev, ph, base, c, i0, i1, d, a, nz, m, lr, kp, kr, pot_route, cnt_up, cnt_dn, t, fam, mp, enc)


@njit(cache=True, inline="always")
def _rows(g, dev, ph, base, c, i0, i1, d, a, nz, m, lr, kp, kr, pot_route, cnt_up, cnt_dn, t, family, mapping,
          encoding):
    """Write rows ``i0 … i1-1`` of a ``c``-column block of cross-points starting at flat index
    ``base``, with ΔW_ij = (-lr·d_i)·a_j, as pulses; returns (pulses up, pulses down). Only the
    columns ``nz[:m]`` (those with ``a_j != 0``, :func:`nonzero`) and the rows with ``d_i != 0`` are
    visited: the others get no pulse, and no draw depends on which devices were visited. Device
    (pair, idx), flat index ``f = pair·N + idx``, draws its rounding from ``(subkey(kr, f), 0)`` and
    its pulse k from ``(kp ^ f·φ₂, k)``, i.e. the word ``mix(kp ^ f·φ₂ ^ k·φ)``: the SplitMix
    pattern (a hash of a spread counter) with two counters, one hash per pulse.

    ``ENC_SPARSE`` (stochastic rounding, sampled by row): a row whose largest request
    p = |lr·d_i|·max_j|a_j|·max(1/dw_pot, 1/dw_dep) (in that order of products; every q_ij <= p)
    is below ``SPARSE_P_MAX`` fires each visited cross-point with probability q_ij, as stochastic
    rounding does, but draws only at candidates: candidate t of the row lies G_t ~ Geometric(p)
    visited columns after the previous one (G_t = ⌊log(1 − u_{2t}) / log1p(−p)⌋) and fires with
    probability q_ij / p (u_{2t+1} < q_ij / p), u_k = ``uniform(subkey(kr ^ ROWS_TAG, row), k)``,
    ``row`` the flat index of the row's first cross-point. The other rows (p >= SPARSE_P_MAX, or
    not finite) round device by device as ENC_STOCHASTIC. Expected draws per row: 2·p·m instead of
    m, so a write's cost follows its pulses rather than its cross-points.

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
    cached = t.shape[0] != 0
    f_idx = np.empty(m, np.int64)  # the pulses of one row: device, pair, signed count
    f_pair = np.empty(m, np.int64)
    f_n = np.empty(m, np.int64)
    b_g = np.empty(m)  # and what their devices read: conductance, bounds, step, shape, counter, other plane
    b_lo = np.empty(m)
    b_hi = np.empty(m)
    b_dg = np.empty(m)
    b_gam = np.empty(m)
    b_oth = np.empty(m)
    b_cnt = np.empty(m, np.int64)
    b_st = np.empty(m, np.uint8)
    sparse = encoding == ENC_SPARSE
    amax_inv = 0.0  # sparse: max_j |a_j| (visited columns; NaN never wins) × the larger inverse step
    if sparse:
        amax = 0.0
        for jj in range(m):
            v = abs(a[nz[jj]])
            if v > amax:
                amax = v
        amax_inv = amax * max(inv_pot, inv_dep)
    for i in range(i0, i1):
        if d[i] == 0.0:
            continue
        s = -lr * d[i]
        row = base + i * c
        by_row = False
        pr = 0.0  # the row's largest request
        lp = 0.0
        krow = uint64(0)
        if sparse:
            pr = abs(s) * amax_inv
            if pr < SPARSE_P_MAX:  # (NaN: device by device)
                if not pr > 0.0:
                    continue  # every request of the row is 0: no pulse
                by_row = True
                lp = np.log1p(-pr)
                krow = subkey(kr ^ ROWS_TAG, row)
        # phase 1: the row's pulse counts (draws only, no device memory touched); phase 2: the
        # pulses. Split so that the device loads of successive pulses do not wait on the draws.
        nf = 0
        jj = -1
        cand = 0
        while True:
            ua = 0.0
            if by_row:  # the next candidate: G ~ Geometric(p) visited columns on
                gf = np.log(1.0 - uniform(krow, 2 * cand)) / lp
                if gf >= m:
                    break
                jj += 1 + int(gf)
                if jj >= m:
                    break
                ua = uniform(krow, 2 * cand + 1)
                cand += 1
            else:
                jj += 1
                if jj >= m:
                    break
            j = nz[jj]
            dw = s * a[j]
            if dw == 0.0:
                continue
            idx = row + j
            pair, polarity, q = _route(dw, pairwise, pot_route, inv_pot, inv_dep)
            if planes:
                pair = w_plus if pair == 0 else w_minus
            if by_row:
                n = min(1 if ua < q / pr else 0, ph.n_max)
            else:
                n = pulse_count(q, ph, kr, pair * N + idx, encoding)
            if n == 0:
                continue
            f_idx[nf] = idx
            f_pair[nf] = pair
            f_n[nf] = n * polarity
            nf += 1
        # phase 2a: gather what the pulses read (independent loads, many misses in flight at once)
        for k in range(nf):
            # unsigned indices: numba then skips the negative-index wraparound on every access
            p = np.uint64(f_pair[k])
            u = np.uint64(f_idx[k])
            b_st[k] = stuck[p, u]
            b_g[k] = g[p, u]
            b_lo[k] = g_min[p, u]
            b_hi[k] = g_max[p, u]
            if f_n[k] > 0:
                b_dg[k] = dg_up[p, u]
                b_gam[k] = gamma_up[p, u] if shaped else 0.0
                b_cnt[k] = cnt_up[p, u]
            else:
                b_dg[k] = dg_down[p, u]
                b_gam[k] = gamma_down[p, u] if shaped else 0.0
                b_cnt[k] = cnt_dn[p, u]
            if cached and mapping == MAP_DIFFERENTIAL:
                b_oth[k] = g[np.uint64(1 - f_pair[k]), u]
        # phase 2b: the pulses through the device law, then the stores
        for k in range(nf):
            if b_st[k] != 0:
                continue
            p = np.uint64(f_pair[k])
            u = np.uint64(f_idx[k])
            n = f_n[k]
            polarity = 1 if n > 0 else -1
            n = abs(n)
            key = kp ^ (uint64(f_pair[k] * N + f_idx[k]) * _PHI2)
            if family == TABLE:
                gv = _table_pulses(b_g[k], n, polarity, b_lo[k], b_hi[k], key, table[p, u], dev)
            else:
                gv = _pulses(b_g[k], n, polarity, family, b_lo[k], b_hi[k], b_dg[k], b_gam[k], c2c, key)
            g[p, u] = gv
            if polarity > 0:
                cnt_up[p, u] = b_cnt[k] + n
                up += n
            else:
                cnt_dn[p, u] = b_cnt[k] + n
                dn += n
            if cached:  # keep the cached read term in step (reads.terms)
                if mapping == MAP_DIFFERENTIAL:  # = g[0, u] - g[1, u] (the other plane is not written in this row)
                    t[u] = gv - b_oth[k] if f_pair[k] == 0 else b_oth[k] - gv
                else:
                    t[u] = term(g, dev, ph, f_idx[k])
    return up, dn


@njit(cache=True, inline="always")
def cache_or_none(t):
    """The cached read terms ``t`` (:func:`pipeline.crossbar.reads.terms`) a write keeps in step,
    or a size-0 array (no cache) for ``None``."""
    if t is None:
        return np.zeros(0)
    return t


@njit(cache=True)
def update_layer_serial(g, dev, ph, layer, d, a, lr, seed, step, cnt_up, cnt_dn, t=None):
    """Apply ΔW = -lr·d·aᵀ to ``layer`` as pulses; returns (pulses up, pulses down). ``t``: the
    cached read terms of ``g``, updated for every pulsed device (None: no cache)."""
    c = dev.cols[layer]
    nz, m = nonzero(a, c)
    return _write_rows(g, dev, ph, dev.off[layer], c, 0, dev.rows[layer], d, a, nz, m, lr,
                       key3(seed, STREAM_PULSE, step), key3(seed, STREAM_ROUND, step), potentiate_route(ph, step),
                       cnt_up, cnt_dn, cache_or_none(t), True)


@njit(cache=False, parallel=True)  # never cached: see module docstring
def update_layer_parallel(g, dev, ph, layer, d, a, lr, seed, step, cnt_up, cnt_dn, t=None):
    """:func:`update_layer_serial` with blocks of rows spread over threads (bit-identical result:
    every device is written by one task, with draws keyed on the device, never on the thread)."""
    kp = key3(seed, STREAM_PULSE, step)
    kr = key3(seed, STREAM_ROUND, step)
    pot = potentiate_route(ph, step)
    r = dev.rows[layer]
    nz, m = nonzero(a, dev.cols[layer])
    tc = cache_or_none(t)
    nblk = (r + ROW_BLOCK - 1) // ROW_BLOCK
    ups = np.zeros(nblk, np.int64)
    dns = np.zeros(nblk, np.int64)
    for b in prange(nblk):
        u, v = _write_rows(g, dev, ph, dev.off[layer], dev.cols[layer], b * ROW_BLOCK, min(r, (b + 1) * ROW_BLOCK),
                           d, a, nz, m, lr, kp, kr, pot, cnt_up, cnt_dn, tc, True)
        ups[b] = u
        dns[b] = v
    return ups.sum(), dns.sum()


@njit(cache=False)
def update_layer(g, dev, ph, layer, d, a, lr, seed, step, cnt_up, cnt_dn, t=None):
    """Dispatch to the threaded update when the layer has at least ``parallel_min`` devices."""
    if dev.rows[layer] * dev.cols[layer] * g.shape[0] >= ph.parallel_min:
        return update_layer_parallel(g, dev, ph, layer, d, a, lr, seed, step, cnt_up, cnt_dn, t)
    return update_layer_serial(g, dev, ph, layer, d, a, lr, seed, step, cnt_up, cnt_dn, t)


@njit(cache=True)
def program(g, dev, ph, dw, seed, step, cnt_up, cnt_dn):
    """Write an arbitrary per-cross-point weight change ``dw`` (N,) as counted pulses, with the
    encoding, routing and device law of :func:`update_layer` (used to program initial weights);
    returns (pulses up, pulses down)."""
    nz, m = nonzero(dw, g.shape[1])
    return _write_rows(g, dev, ph, 0, g.shape[1], 0, 1, _MINUS_ONE, dw, nz, m, 1.0, key3(seed, STREAM_PULSE, step),
                       key3(seed, STREAM_ROUND, step), potentiate_route(ph, step), cnt_up, cnt_dn, np.zeros(0))


_MINUS_ONE = np.array([-1.0])  # program(): one "row" with (-lr·d) = 1, so ΔW_j = dw_j exactly


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
