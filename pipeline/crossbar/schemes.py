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
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..rng import STREAM_PULSE, STREAM_ROUND, key3
from .layout import MAP_DIFFERENTIAL, MAP_PLANES
from .reads import weight
from .updates import _route, _write_rows, nonzero, potentiate_route

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
