"""Numba kernels of the update schemes (DESIGN §1.6; registry: :mod:`pipeline.training.schemes`).

``direct`` is :func:`pipeline.crossbar.updates.update_layer_serial`. The kernels here write a
layer through the same pulse path (``updates._write_rows``: encoding, routing, device law, pulse
keys of the device and the step), so a scheme changes *what* is requested, never how a pulse acts.

``mp_write_layer`` — mixed precision: a float64 accumulator χ per weight gathers the requested
ΔW = −η δ ãᵀ; a weight whose |χ| reaches the nominal step ε of the polarity it would be written
with gets n = trunc(|χ|/ε) pulses (capped at ``n_max``), requested as exactly n·ε (the write
encoding is then irrelevant: the request is an integer number of nominal steps, rounded to
nearest); the written change leaves χ either as read back from the devices (a noise-free verify
read of the cross-point before and after, counted) or as the nominal n·ε.

``carry_transfer`` — carry (Agarwal et al. 2017; Ambrogio et al. 2018): a tile of four planes,
W = γ·(G0 − G1)/g_scale + (G2 − G3)/g_scale; training pulses the fast LSB pair (0, 1); every
``train.carry_every`` samples the LSB's contribution is moved into the MSB pair by write-verify
and the LSB is programmed back to the residual (analog storage only, no digital word per weight).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..rng import STREAM_PULSE, STREAM_ROUND, key3
from ..devices.law import TABLE
from .layout import MAP_DIFFERENTIAL, MAP_PLANES, POL_DEPRESS, POL_POTENTIATE, SHAPED
from .reads import weight
from .updates import _PHI2, _pulses, _route, _table_pulses, _write_rows, nonzero, potentiate_route

MP_READBACK, MP_NOMINAL = 0, 1  # loop.Config.mp_subtract (schemes.MP_SUBTRACT order)
_MINUS_ONE = np.array([-1.0])  # one "row" with (−lr·d) = 1: ΔW_j = req_j exactly


@njit(cache=True)
def write_request(g, dev, ph, layer, req, seed, step, cnt_up, cnt_dn):
    """Write the per-cross-point change ``req`` (rows·cols, the layer's flat block) into ``layer``
    as pulses with the keys of :func:`update_layer_serial` at ``step``; returns (up, down)."""
    c = dev.rows[layer] * dev.cols[layer]
    nz, m = nonzero(req, c)
    return _write_rows(g, dev, ph, dev.off[layer], c, 0, 1, _MINUS_ONE, req, nz, m, 1.0,
                       key3(seed, STREAM_PULSE, step), key3(seed, STREAM_ROUND, step), potentiate_route(ph, step),
                       cnt_up, cnt_dn)


@njit(cache=True)
def mp_write_layer(g, dev, ph, layer, d, a, lr, chi, subtract, seed, step, cnt_up, cnt_dn):
    """Mixed-precision write of ΔW = −lr·d·aᵀ into ``layer`` (see module docstring).

    ``chi`` (N,) is the accumulator (updated in place). Returns (pulses up, pulses down, verify reads of a cross-point)."""
    o, r, c = dev.off[layer], dev.rows[layer], dev.cols[layer]
    planes = ph.mapping == MAP_PLANES
    pairwise = ph.mapping == MAP_DIFFERENTIAL or (planes and dev.write[0] != dev.write[1])
    pot = potentiate_route(ph, step)
    inv_pot = 1.0 / ph.dw_pot
    inv_dep = 1.0 / ph.dw_dep
    req = np.empty(r * c)
    nw = 0
    for i in range(r):
        s = -lr * d[i]
        for j in range(c):
            k = i * c + j
            x = chi[o + k] + s * a[j]
            chi[o + k] = x
            req[k] = 0.0
            if x == 0.0 or not np.isfinite(x):
                continue
            pair, polarity, q = _route(x, pairwise, pot, inv_pot, inv_dep)
            n = min(int(q), ph.n_max) if q < 4.0e18 else ph.n_max
            if n == 0:
                continue
            eps = ph.dw_pot if (pairwise and pot) or (not pairwise and polarity > 0) else ph.dw_dep
            req[k] = n * eps if x > 0.0 else -n * eps
            nw += 1
    if nw == 0:
        return 0, 0, 0
    reads = 0
    wb = np.empty(r * c)
    if subtract == MP_READBACK:
        for k in range(r * c):
            if req[k] != 0.0:
                wb[k] = weight(g, dev, ph, o + k)
    up, dn = write_request(g, dev, ph, layer, req, seed, step, cnt_up, cnt_dn)
    for k in range(r * c):
        if req[k] != 0.0:
            if subtract == MP_READBACK:
                chi[o + k] -= weight(g, dev, ph, o + k) - wb[k]
                reads += 2
            else:
                chi[o + k] -= req[k]
    return up, dn, reads


# ------------------------------------------------------------------------------------------ carry

STREAM_CARRY = 200  # + verify round: pulse keys of the transfers (distinct from training pulses)
LSB = (0, 1)  # carry tile: planes of the fast least-significant pair (pulsed by training)
MSB = (2, 3)  # planes of the slow most-significant pair (written only by transfers)


@njit(cache=True)
def _pulse_pair(g, dev, ph, idx, dw, eps_scale, p_plus, p_minus, key, pot, cnt_up, cnt_dn):
    """Write the weight change ``dw`` of the pair (p_plus, p_minus) of cross-point ``idx`` as
    pulses (nearest count of the pair's nominal step ``eps_scale``·dw_pot/dw_dep, capped at
    n_max; routing by the array's policy; the device law pulse by pulse); returns (up, down)."""
    if dw == 0.0:
        return 0, 0
    if pot:  # potentiate the + device for a positive change, the − device for a negative one
        p = p_plus if dw > 0.0 else p_minus
        polarity = 1
        q = abs(dw) / (eps_scale * ph.dw_pot)
    else:
        p = p_minus if dw > 0.0 else p_plus
        polarity = -1
        q = abs(dw) / (eps_scale * ph.dw_dep)
    n = min(int(np.floor(q + 0.5)), ph.n_max) if q < 4.0e18 else ph.n_max
    if n == 0 or dev.stuck[p, idx] != 0:
        return 0, 0
    k = key ^ (np.uint64(p * g.shape[1] + idx) * _PHI2)
    lo, hi = dev.g_min[p, idx], dev.g_max[p, idx]
    if ph.family == TABLE:
        g[p, idx] = _table_pulses(g[p, idx], n, polarity, lo, hi, k, dev.table[p, idx], dev)
    elif polarity > 0:
        gam = dev.gamma_up[p, idx] if SHAPED[ph.family] else 0.0
        g[p, idx] = _pulses(g[p, idx], n, 1, ph.family, lo, hi, dev.dg_up[p, idx], gam, ph.c2c, k)
    else:
        gam = dev.gamma_down[p, idx] if SHAPED[ph.family] else 0.0
        g[p, idx] = _pulses(g[p, idx], n, -1, ph.family, lo, hi, dev.dg_down[p, idx], gam, ph.c2c, k)
    if polarity > 0:
        cnt_up[p, idx] += n
        return n, 0
    cnt_dn[p, idx] += n
    return 0, n


@njit(cache=True, inline="always")
def _pair_weight(g, dev, ph, idx, p_plus, p_minus):
    """Contribution of one pair of planes to the weight of ``idx`` (its tile coefficients)."""
    return (dev.coef[p_plus] * (g[p_plus, idx] - dev.ref[p_plus])
            + dev.coef[p_minus] * (g[p_minus, idx] - dev.ref[p_minus])) / ph.g_scale


@njit(cache=True)
def carry_transfer(g, dev, ph, rounds, seed, step, cnt_up, cnt_dn):
    """Carry of every cross-point (tile planes: LSB pair 0, 1 with coefficients ±γ, MSB pair 2, 3
    with ±1): read the LSB's contribution w_l; program it into the MSB by write-verify (up to
    ``rounds`` program-and-read rounds, stopping when the residual is below half an MSB step);
    then program the LSB to what the MSB did not take (w_l − realised), again by write-verify, so
    the weight is kept up to the programming residual. ``dev.write`` must be the LSB pair and
    ``ph.dw_pot``/``dw_dep`` its nominal weight steps (γ·device step). Returns (pulses up,
    pulses down, verify reads of a pair)."""
    N = g.shape[1]
    gam = abs(dev.coef[LSB[0]])
    up = 0
    dn = 0
    reads = 0
    pot = potentiate_route(ph, step)
    half_msb = 0.5 * min(ph.dw_pot, ph.dw_dep) / gam
    half_lsb = 0.5 * min(ph.dw_pot, ph.dw_dep)
    for idx in range(N):
        wl = _pair_weight(g, dev, ph, idx, LSB[0], LSB[1])
        reads += 1
        if abs(wl) < half_lsb:
            continue
        m0 = _pair_weight(g, dev, ph, idx, MSB[0], MSB[1])
        reads += 1
        done = 0.0
        for r in range(rounds):
            res = wl - done
            if abs(res) < half_msb:
                break
            key = key3(seed, STREAM_CARRY + r, step)
            u, d = _pulse_pair(g, dev, ph, idx, res, 1.0 / gam, MSB[0], MSB[1], key, pot, cnt_up, cnt_dn)
            up += u
            dn += d
            done = _pair_weight(g, dev, ph, idx, MSB[0], MSB[1]) - m0
            reads += 1
        target = wl - done  # the LSB keeps what the MSB did not take
        for r in range(rounds):
            cur = _pair_weight(g, dev, ph, idx, LSB[0], LSB[1])
            if r > 0:
                reads += 1
            res = target - cur
            if abs(res) < half_lsb:
                break
            key = key3(seed, STREAM_CARRY + rounds + r, step)
            u, d = _pulse_pair(g, dev, ph, idx, res, 1.0, LSB[0], LSB[1], key, pot, cnt_up, cnt_dn)
            up += u
            dn += d
    return up, dn, reads


# ---------------------------------------------------------------------------------------- refresh

STREAM_REFRESH = 300  # + verify round: pulse keys of the refresh writes


@njit(cache=True)
def refresh(g, dev, ph, margin, rounds, seed, step, cnt_up, cnt_dn):
    """Refresh of the written pair (``dev.write``) of every cross-point with a device within
    ``margin`` (fraction of its range) of a bound: read the pair's weight, reset both devices
    (an ideal reset, counted: to G_min under the ``potentiate`` policy, to G_max under ``depress``,
    to the middle of the pair's common range under ``alternate``) and program the weight back by
    write-verify (up to ``rounds`` rounds, stopping below half a step). Returns (pulses up, pulses
    down, verify reads of a pair, pairs refreshed)."""
    N = g.shape[1]
    p, m = dev.write[0], dev.write[1]
    if p == m:
        return 0, 0, 0, 0
    up = 0
    dn = 0
    reads = 0
    nref = 0
    pot = potentiate_route(ph, step)
    half = 0.5 * min(ph.dw_pot, ph.dw_dep)
    for idx in range(N):
        if dev.stuck[p, idx] != 0 or dev.stuck[m, idx] != 0:
            continue
        near = False
        for q in (p, m):
            lo, hi = dev.g_min[q, idx], dev.g_max[q, idx]
            x = (g[q, idx] - lo) / (hi - lo)
            if x > 1.0 - margin or x < margin:
                near = True
        if not near:
            continue
        w = _pair_weight(g, dev, ph, idx, p, m)
        reads += 1
        nref += 1
        if ph.policy == POL_POTENTIATE:
            g[p, idx] = dev.g_min[p, idx]
            g[m, idx] = dev.g_min[m, idx]
        elif ph.policy == POL_DEPRESS:
            g[p, idx] = dev.g_max[p, idx]
            g[m, idx] = dev.g_max[m, idx]
        else:
            lo = max(dev.g_min[p, idx], dev.g_min[m, idx])
            hi = min(dev.g_max[p, idx], dev.g_max[m, idx])
            mid = 0.5 * (lo + hi)
            g[p, idx] = min(max(mid, dev.g_min[p, idx]), dev.g_max[p, idx])
            g[m, idx] = min(max(mid, dev.g_min[m, idx]), dev.g_max[m, idx])
        for r in range(rounds):
            res = w - _pair_weight(g, dev, ph, idx, p, m)
            reads += 1
            if abs(res) < half:
                break
            u, d = _pulse_pair(g, dev, ph, idx, res, 1.0, p, m, key3(seed, STREAM_REFRESH + r, step), pot,
                               cnt_up, cnt_dn)
            up += u
            dn += d
    return up, dn, reads, nref
