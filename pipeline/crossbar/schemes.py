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

``tt_write_fast`` / ``tt_transfer`` — Tiki-Taka (Gokmen & Haensch 2020; Gokmen 2021; aihwkit's
``TransferCompound``, ``BufferedTransferCompound``, ``ChoppedTransferCompound``): the same four
planes, W = γ·A + C with A = (G0 − G1)/g_scale (less its zero-shift offset) the fast pair that
training pulses and C = (G2 − G3)/g_scale the slow pair; every ``tt_transfer_every`` samples
``tt_n_reads_per_transfer`` columns (or, ``tt_transfer_columns`` false, rows) of every layer's A
are read (one-hot reads, in turn wrapping around, or from a random first line) and moved towards
C: TTv1 writes transfer_lr·A into C as pulses (optionally resetting the read line of A); TTv2 adds
transfer_lr·A into a digital buffer H per weight and writes a pulse to C when |H| reaches
thres_scale × C's step; c-TTv2 also flips a chopper sign per read line (and optionally per line
of the other axis), applied to A's update and undone on the read into H.

``zero_shift_calibrate`` — zero-shift: pulse every device of the written pair alternately up and
down (its symmetry point is where an up and a down step are equal) and read the pair back there:
that read is the pair's zero.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..rng import STREAM_PULSE, STREAM_ROUND, key3, subkey, uniform
from ..devices.law import TABLE
from .layout import MAP_DIFFERENTIAL, MAP_PLANES, POL_DEPRESS, POL_POTENTIATE, SHAPED
from .reads import _read_out, sync_term, weight
from .updates import (Q_HUGE, _PHI2, _pulses, _route, _table_pulses, _write_rows, cache_or_none, nonzero, potentiate_route,
                      pulse_count, update_layer_serial)

MP_READBACK, MP_NOMINAL = 0, 1  # loop.Config.mp_subtract (schemes.MP_SUBTRACT order)
_MINUS_ONE = np.array([-1.0])  # one "row" with (−lr·d) = 1: ΔW_j = req_j exactly


@njit(cache=True)
def write_request(g, dev, ph, layer, req, seed, step, cnt_up, cnt_dn, t=None):
    """Write the per-cross-point change ``req`` (rows·cols, the layer's flat block) into ``layer``
    as pulses with the keys of :func:`update_layer_serial` at ``step``; returns (up, down)."""
    nz, m = nonzero(req, dev.rows[layer] * dev.cols[layer])
    return _write_listed(g, dev, ph, layer, req, nz, m, seed, step, cnt_up, cnt_dn, cache_or_none(t))


@njit(cache=True)
def _write_listed(g, dev, ph, layer, req, nz, m, seed, step, cnt_up, cnt_dn, t):
    """:func:`write_request` of the entries ``nz[:m]`` of ``req`` (increasing; every other entry is
    a zero request, never read)."""
    return _write_rows(g, dev, ph, dev.off[layer], dev.rows[layer] * dev.cols[layer], 0, 1, _MINUS_ONE, req, nz, m,
                       1.0, key3(seed, STREAM_PULSE, step), key3(seed, STREAM_ROUND, step), potentiate_route(ph, step),
                       cnt_up, cnt_dn, t)


@njit(cache=True)
def mp_write_layer(g, dev, ph, layer, d, a, lr, chi, subtract, seed, step, cnt_up, cnt_dn, t=None):
    """Mixed-precision write of ΔW = −lr·d·aᵀ into ``layer`` (see module docstring).

    ``chi`` (N,) is the accumulator (updated in place). Returns (pulses up, pulses down, verify reads of a cross-point).

    Zero inputs: with a finite row factor s = −lr·d_i, a column with a_j = 0 adds s·0 = ±0, which
    leaves χ's bits as they are (χ is never −0: it starts at +0, and a sum or difference gives −0
    only from −0), so such a cross-point is only read — and written when |χ| already exceeds the
    smallest nominal step (a change that was not realised by an earlier write, e.g. at a bound).
    The requests are listed as they are made, in order, so the write visits those cross-points
    only. Same bits as visiting every cross-point (``tests/crossbar/test_mp_sparse.py``)."""
    o, r, c = dev.off[layer], dev.rows[layer], dev.cols[layer]
    planes = ph.mapping == MAP_PLANES
    pairwise = ph.mapping == MAP_DIFFERENTIAL or (planes and dev.write[0] != dev.write[1])
    pot = potentiate_route(ph, step)
    inv_pot = 1.0 / ph.dw_pot
    inv_dep = 1.0 / ph.dw_dep
    inv_max = max(inv_pot, inv_dep)  # |x|·inv_max < 1: no route gives a pulse (q = |x|·inv_route <= |x|·inv_max)
    req = np.empty(r * c)  # read only at the listed entries kw[:nw]
    kw = np.empty(min(r * c, 1024), np.int64)  # the listed cross-points (grown when full)
    nw = 0
    for i in range(r):
        s = -lr * d[i]
        fin = np.isfinite(s)
        for j in range(c):
            k = i * c + j
            aj = a[j]
            if aj == 0.0 and fin:
                x = chi[o + k]  # χ + s·0 = χ, bit for bit: no store
                if not abs(x) * inv_max >= 1.0:
                    continue
            else:
                x = chi[o + k] + s * aj
                chi[o + k] = x
            if x == 0.0 or not np.isfinite(x):
                continue
            pair, polarity, q = _route(x, pairwise, pot, inv_pot, inv_dep)
            n = min(int(q), ph.n_max) if q < Q_HUGE else ph.n_max
            if n == 0:
                continue
            eps = ph.dw_pot if (pairwise and pot) or (not pairwise and polarity > 0) else ph.dw_dep
            req[k] = n * eps if x > 0.0 else -n * eps
            if nw == kw.shape[0]:
                kw2 = np.empty(2 * nw, np.int64)
                kw2[:nw] = kw
                kw = kw2
            kw[nw] = k
            nw += 1
    if nw == 0:
        return 0, 0, 0
    reads = 0
    wb = np.empty(nw)
    if subtract == MP_READBACK:
        for w in range(nw):
            wb[w] = weight(g, dev, ph, o + kw[w])
    up, dn = _write_listed(g, dev, ph, layer, req, kw, nw, seed, step, cnt_up, cnt_dn, cache_or_none(t))
    for w in range(nw):
        k = kw[w]
        if subtract == MP_READBACK:
            chi[o + k] -= weight(g, dev, ph, o + k) - wb[w]
            reads += 2
        else:
            chi[o + k] -= req[k]
    return up, dn, reads


# ------------------------------------------------------------------------------------------ carry

STREAM_CARRY = 200  # + verify round: pulse keys of the transfers (distinct from training pulses)
LSB = (0, 1)  # carry tile: planes of the fast least-significant pair (pulsed by training)
MSB = (2, 3)  # planes of the slow most-significant pair (written only by transfers)


@njit(cache=True)
def _pulse_n(g, dev, ph, idx, n, positive, p_plus, p_minus, key, pot, cnt_up, cnt_dn):
    """``n`` pulses (n >= 0) that move the weight of the pair (p_plus, p_minus) of cross-point
    ``idx`` up (``positive``) or down, routed by the array's policy (``pot``: potentiate the +
    device for a positive change, the − device for a negative one; else depress the other),
    each through the device law; counted; returns (up, down)."""
    if pot:
        p = p_plus if positive else p_minus
        polarity = 1
    else:
        p = p_minus if positive else p_plus
        polarity = -1
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


@njit(cache=True)
def _pulse_pair(g, dev, ph, idx, dw, eps_scale, p_plus, p_minus, key, pot, cnt_up, cnt_dn):
    """Write the weight change ``dw`` of the pair (p_plus, p_minus) of cross-point ``idx`` as
    pulses (nearest count of the pair's nominal step ``eps_scale``·dw_pot/dw_dep, capped at
    n_max; routing by the array's policy; the device law pulse by pulse); returns (up, down)."""
    if dw == 0.0:
        return 0, 0
    q = abs(dw) / (eps_scale * (ph.dw_pot if pot else ph.dw_dep))
    n = min(int(np.floor(q + 0.5)), ph.n_max) if q < Q_HUGE else ph.n_max
    return _pulse_n(g, dev, ph, idx, n, dw > 0.0, p_plus, p_minus, key, pot, cnt_up, cnt_dn)


@njit(cache=True, inline="always")
def _pair_weight(g, dev, ph, idx, p_plus, p_minus):
    """Contribution of one pair of planes to the weight of ``idx`` (its tile coefficients)."""
    t = dev.coef[p_plus] * (g[p_plus, idx] - dev.ref[p_plus]) + dev.coef[p_minus] * (g[p_minus, idx] - dev.ref[p_minus])
    if dev.zero.shape[0] != 0 and p_plus == dev.write[0]:  # the written pair's zero-shift offset
        t -= dev.coef[p_plus] * dev.zero[idx]
    return t / ph.g_scale


@njit(cache=True)
def carry_transfer(g, dev, ph, rounds, seed, step, cnt_up, cnt_dn, t=None):
    """Carry of every cross-point (tile planes: LSB pair 0, 1 with coefficients ±γ, MSB pair 2, 3
    with ±1): read the LSB's contribution w_l; program it into the MSB by write-verify (up to
    ``rounds`` program-and-read rounds, stopping when the residual is below half an MSB step);
    then program the LSB to what the MSB did not take (w_l − realised), again by write-verify, so
    the weight is kept up to the programming residual. ``dev.write`` must be the LSB pair and
    ``ph.dw_pot``/``dw_dep`` its nominal weight steps (γ·device step). Returns (pulses up,
    pulses down, verify reads of a pair). ``t``: the cached read terms, kept in step (None: none)."""
    N = g.shape[1]
    tc = cache_or_none(t)
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
        sync_term(g, dev, ph, tc, idx)
    return up, dn, reads


# ---------------------------------------------------------------------------------------- refresh

STREAM_REFRESH = 300  # + verify round: pulse keys of the refresh writes (programming the weight back)
STREAM_REFRESH_RESET = 1 << 40  # + reset round: pulse keys of the reset pulses (apart from every other stream)


@njit(cache=True)
def _reset_device(g, dev, ph, idx, q, target, rounds, seed, step, cnt_up, cnt_dn):
    """Bring device ``q`` of cross-point ``idx`` towards the conductance ``target`` by pulses, as
    a chip would (organic EC-RAM has no abrupt reset): each round reads the device (one verify
    read), stops when it is within one nominal step of the polarity it needs (ph.dw_pot/dw_dep·
    g_scale/|coef|, in S) of the target, else sends the nearest count of nominal steps to it,
    capped at ``ph.n_max``, through the device law (c2c noise, bounds; counted). At most
    ``rounds`` rounds, so at most rounds·n_max pulses. Returns (up, down, verify reads)."""
    up = 0
    dn = 0
    reads = 0
    g_per_w = ph.g_scale / abs(dev.coef[q])
    for r in range(rounds):
        dist = target - g[q, idx]
        reads += 1
        pol_up = dist > 0.0
        eps = (ph.dw_pot if pol_up else ph.dw_dep) * g_per_w
        if not abs(dist) > eps:
            break
        n = min(int(np.floor(abs(dist) / eps + 0.5)), ph.n_max)
        # one device, one polarity: _pulse_n with p_plus = p_minus = q and the route that gives it
        u, d = _pulse_n(g, dev, ph, idx, n, pol_up, q, q, key3(seed, STREAM_REFRESH_RESET + r, step), pol_up,
                        cnt_up, cnt_dn)
        up += u
        dn += d
    return up, dn, reads


@njit(cache=True)
def refresh(g, dev, ph, margin, rounds, seed, step, cnt_up, cnt_dn, t=None):
    """Refresh of the written pair (``dev.write``) of every cross-point with a device within
    ``margin`` (fraction of its range) of a bound the policy writes towards (``potentiate``: G_max,
    ``depress``: G_min, ``alternate``: either): read the pair's weight, bring both devices by
    pulses through the device law towards the reset target of the routing policy (G_min by
    depress pulses under ``potentiate``, G_max by potentiate pulses under ``depress``; under
    ``alternate`` the middle of the pair's common range ± half the pair's difference G₊ − G₋, so
    the pair is centred there with its weight kept; :func:`_reset_device`: up to ``rounds``
    read-and-pulse rounds of at most ``n_max`` pulses per device, stopping within a nominal step),
    then program the weight back by write-verify (up to ``rounds`` rounds, stopping below half a
    step). A pair with a stuck device is left alone. Returns (pulses up, pulses down, verify reads
    — of a pair or, in the reset, of one device —, pairs refreshed). ``t``: the cached read terms,
    kept in step."""
    N = g.shape[1]
    tc = cache_or_none(t)
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
            # only the bound the policy writes towards: potentiate pulses never near G_min (the
            # reset target), depress pulses never G_max; alternate writes both ways
            if (x > 1.0 - margin and ph.policy != POL_DEPRESS) or (x < margin and ph.policy != POL_POTENTIATE):
                near = True
        if not near:
            continue
        w = _pair_weight(g, dev, ph, idx, p, m)
        reads += 1
        nref += 1
        # alternate: the pair centred on the middle of its common range, its difference kept
        half_d = 0.5 * (g[p, idx] - g[m, idx])
        mid = 0.5 * (max(dev.g_min[p, idx], dev.g_min[m, idx]) + min(dev.g_max[p, idx], dev.g_max[m, idx]))
        for q in (p, m):
            if ph.policy == POL_POTENTIATE:
                target = dev.g_min[q, idx]
            elif ph.policy == POL_DEPRESS:
                target = dev.g_max[q, idx]
            else:
                target = min(max(mid + half_d if q == p else mid - half_d, dev.g_min[q, idx]), dev.g_max[q, idx])
            u, d, nv = _reset_device(g, dev, ph, idx, q, target, rounds, seed, step, cnt_up, cnt_dn)
            up += u
            dn += d
            reads += nv
        for r in range(rounds):
            res = w - _pair_weight(g, dev, ph, idx, p, m)
            reads += 1
            if abs(res) < half:
                break
            u, d = _pulse_pair(g, dev, ph, idx, res, 1.0, p, m, key3(seed, STREAM_REFRESH + r, step), pot,
                               cnt_up, cnt_dn)
            up += u
            dn += d
        sync_term(g, dev, ph, tc, idx)
    return up, dn, reads, nref


# -------------------------------------------------------------------------------------- zero-shift

STREAM_ZERO = 500  # + cycle: pulse keys of the calibration; STREAM_ZERO_READ: its read noise
STREAM_ZERO_READ = 499


@njit(cache=True)
def zero_shift_calibrate(g, dev, ph, cycles, seed, cnt_up, cnt_dn, zero):
    """Zero-shift calibration of the written pair (``dev.write``) of every cross-point: ``cycles``
    times one up pulse then one down pulse on each device of the pair (through the device law,
    counted), which walks a device to its symmetry point (soft bounds: where the up and the down
    step are equal) and leaves it within a step of it; then one read of the pair, with the
    array's read noise (one-hot read of the pair, clipping and ADC of the periphery), stored in
    ``zero`` (N,) in S: (G₊ − ref₊) − (G₋ − ref₋), or G − ref for a single written device.
    Returns (pulses up, pulses down, cross-point reads)."""
    N = g.shape[1]
    p, m = dev.write[0], dev.write[1]
    up = 0
    dn = 0
    for cyc in range(cycles):
        ku = key3(seed, STREAM_ZERO + 2 * cyc, 0)
        kd = key3(seed, STREAM_ZERO + 2 * cyc + 1, 0)
        for idx in range(N):
            for t in range(1 if p == m else 2):
                q = p if t == 0 else m
                if dev.stuck[q, idx] != 0:
                    continue
                f = np.uint64(q * N + idx) * _PHI2
                lo, hi = dev.g_min[q, idx], dev.g_max[q, idx]
                if ph.family == TABLE:
                    gv = _table_pulses(g[q, idx], 1, 1, lo, hi, ku ^ f, dev.table[q, idx], dev)
                    gv = _table_pulses(gv, 1, -1, lo, hi, kd ^ f, dev.table[q, idx], dev)
                else:
                    shaped = SHAPED[ph.family]
                    gv = _pulses(g[q, idx], 1, 1, ph.family, lo, hi, dev.dg_up[q, idx],
                                 dev.gamma_up[q, idx] if shaped else 0.0, ph.c2c, ku ^ f)
                    gv = _pulses(gv, 1, -1, ph.family, lo, hi, dev.dg_down[q, idx],
                                 dev.gamma_down[q, idx] if shaped else 0.0, ph.c2c, kd ^ f)
                g[q, idx] = gv
                cnt_up[q, idx] += 1
                cnt_dn[q, idx] += 1
                up += 1
                dn += 1
    kr = key3(seed, STREAM_ZERO_READ, 0)
    ndev = 1.0 if p == m else 2.0
    for idx in range(N):
        t = g[p, idx] - dev.ref[p]
        if p != m:
            t -= g[m, idx] - dev.ref[m]
        y = _read_out(t / ph.g_scale, ph, np.sqrt(ndev), kr, idx, True)  # weight units of the pair
        zero[idx] = y * ph.g_scale
    return up, dn, N


# --------------------------------------------------------------------------------------- tiki-taka

TT_V1, TT_V2, TT_C2 = 0, 1, 2  # loop.Config.tt_algorithm (training.schemes.TT_ALGORITHMS order)
STREAM_TT_READ = 400  # read noise of the transfer reads of A
STREAM_TT_ROUND = 401  # TTv1: stochastic rounding of the transfer writes into C
STREAM_TT_PULSE = 402  # pulse keys of the transfer writes into C
STREAM_TT_CHOP = 403  # c-TTv2: in-chopper flips (random)
STREAM_TT_OUT_CHOP = 404  # c-TTv2: out-chopper flips
STREAM_TT_SELECT = 405  # random selection of the first line a transfer reads
STREAM_TT_RESET = 406  # TTv1 with_reset_prob: the draw of a reset; + 1 + verify round: its pulse keys
FAST = (0, 1)  # Tiki-Taka tile: planes of the fast pair A (pulsed by training)
SLOW = (2, 3)  # planes of the slow pair C (written by transfers only)


@njit(cache=True)
def tt_write_fast(g, dev, ph, layer, d, a, lr, chop, chopped, seed, step, cnt_up, cnt_dn, t=None):
    """Training update of the fast pair A of ``layer``: ΔA = −lr·d·aᵀ (``dev.write`` is A, the
    array's update path: encoding, routing, law); c-TTv2 (``chopped``) writes ΔA_ij·r_i·c_j with
    the chopper sign c_j of input column j and r_i of output row i (``chop``: every layer's
    column signs, layer by layer, then — when it holds Σ rows more — every layer's row signs;
    without row signs r_i = 1)."""
    if not chopped:
        return update_layer_serial(g, dev, ph, layer, d, a, lr, seed, step, cnt_up, cnt_dn, t)
    c = dev.cols[layer]
    co = 0
    ro = 0
    nc = 0
    for l in range(dev.cols.shape[0]):
        if l < layer:
            co += dev.cols[l]
            ro += dev.rows[l]
        nc += dev.cols[l]
    ac = np.empty(c)
    for j in range(c):
        ac[j] = a[j] * chop[co + j]
    if chop.shape[0] == nc:
        return update_layer_serial(g, dev, ph, layer, d, ac, lr, seed, step, cnt_up, cnt_dn, t)
    r = dev.rows[layer]
    dc = np.empty(r)
    for i in range(r):
        dc[i] = d[i] * chop[nc + ro + i]
    return update_layer_serial(g, dev, ph, layer, dc, ac, lr, seed, step, cnt_up, cnt_dn, t)


@njit(cache=True, inline="always")
def _fast_read(g, dev, ph, idx):
    """A of cross-point ``idx`` without noise (A units: (G0 − ref0) − (G1 − ref1) − zero, / g_scale)."""
    t = (g[FAST[0], idx] - dev.ref[FAST[0]]) - (g[FAST[1], idx] - dev.ref[FAST[1]])
    if dev.zero.shape[0] != 0:
        t -= dev.zero[idx]
    return t / ph.g_scale


@njit(cache=True)
def _reset_fast(g, dev, ph, idx, rounds, seed, step, pot, cnt_up, cnt_dn, tc):
    """TTv1 ``with_reset_prob``: program A of cross-point ``idx`` back to its zero by write-verify
    (a noise-free verify read, then the nearest count of nominal steps towards zero through the
    device law, up to ``rounds`` rounds, stopping below half a step). Returns (up, down, reads)."""
    half = 0.5 * min(ph.dw_pot, ph.dw_dep)
    up = 0
    dn = 0
    reads = 0
    for r in range(rounds):
        a = _fast_read(g, dev, ph, idx)
        reads += 1
        if abs(a) < half:
            break
        u, d = _pulse_pair(g, dev, ph, idx, -a, 1.0, FAST[0], FAST[1], key3(seed, STREAM_TT_RESET + 1 + r, step),
                           pot, cnt_up, cnt_dn)
        up += u
        dn += d
    sync_term(g, dev, ph, tc, idx)
    return up, dn, reads


@njit(cache=True)
def tt_transfer(g, dev, ph, H, chop, alg, n_reads, lrs, transfer_lr, thres_scale, momentum, forget, chop_prob,
                max_steps, event, seed, step, cnt_up, cnt_dn, t=None, columns=True, random_sel=False,
                in_chop_random=True, out_chop_prob=0.0, reset_prob=0.0, reset_rounds=1, h_gain=None, thr_gain=None):
    """Transfer event number ``event`` (0-based) of the whole network (see module docstring).

    For every layer l, ``n_reads`` lines of A are read: input columns j (``columns``; one-hot
    forward reads) or output rows i (not ``columns``; one-hot transposed reads), lines
    (s + k) mod lines_l for k < n_reads, from s = event·n_reads (in turn) or, ``random_sel``,
    from s drawn uniformly per layer and event (aihwkit random_selection); each read goes
    through the periphery (read noise, clipping, ADC); v = A_ij (read) for every cross-point of
    the line, and the line's C_ij (C's row i for a row read) receives:
    TTv1: C_ij += lrs[l]·transfer_lr·v as pulses (the array's encoding; cap n_max); then, with
    probability ``reset_prob`` per line read, the line of A is programmed back to zero
    (:func:`_reset_fast`, ``reset_rounds`` write-verify rounds; aihwkit with_reset_prob).
    TTv2 / c-TTv2: H_ij += lrs[l]·transfer_lr·v·c_j·r_i (c-TTv2: the chopper signs of column j
    and row i, ``chop`` laid out as in :func:`tt_write_fast`; 1 for TTv2);
    n = trunc(H_ij / (thres_scale·ε)) clamped to ±max_steps (ε: C's nominal step of the polarity
    the routing uses); when n ≠ 0, |n| pulses go to C and H_ij becomes momentum·H_ij
    (``forget``) or H_ij − (1 − momentum)·n·thres_scale·ε. c-TTv2, after a line's read: its
    in-chopper (the read line's sign) flips with probability ``chop_prob`` (``in_chop_random``)
    or, regularly (not ``in_chop_random``), when ⌊t / lines⌋ mod p = p − 1 with t = event·n_reads
    + read index the layer's read count and p = max(⌈1/chop_prob⌉, 2) (aihwkit's full-sweep
    counter: a line read in turn flips every p-th read of it); after the read of the last line
    every out-chopper (the signs of the other axis) flips with probability ``out_chop_prob``
    (aihwkit out_chop_prob). ``h_gain`` (L,): TTv2 / c-TTv2's read of layer l enters H × h_gain[l]
    (aihwkit correct_gradient_magnitudes: 1 / A's rate); ``thr_gain`` (L,): layer l's threshold
    × thr_gain[l] (aihwkit auto_granularity); None: 1.
    Returns (pulses up, pulses down, cross-point reads). ``t``: the cached read terms, kept in step."""
    tc = cache_or_none(t)
    pot = potentiate_route(ph, step)
    kr = key3(seed, STREAM_TT_READ, step)
    kq = key3(seed, STREAM_TT_ROUND, step)
    kp = key3(seed, STREAM_TT_PULSE, step)
    kc = key3(seed, STREAM_TT_CHOP, step)
    ko = key3(seed, STREAM_TT_OUT_CHOP, step)
    ks = key3(seed, STREAM_TT_SELECT, step)
    kz = key3(seed, STREAM_TT_RESET, step)
    gran = ph.dw_pot if pot else ph.dw_dep
    thr = thres_scale * gran
    sub = 1.0 - min(max(momentum, 0.0), 1.0)
    sig = np.sqrt(2.0)  # one-hot read of a pair: √P·‖x‖ with P = 2 devices, ‖x‖ = 1
    N = g.shape[1]
    L = dev.rows.shape[0]
    nc = 0
    for l in range(L):
        nc += dev.cols[l]
    chopped = alg == TT_C2
    rowsigns = chopped and chop.shape[0] > nc  # the row signs follow the column signs in ``chop``
    if chopped and (not columns or out_chop_prob > 0.0) and not rowsigns:
        raise ValueError("c-TTv2 row transfers or out-choppers without the row signs (chop: Σ cols + Σ rows)")
    regular = max(int(np.ceil(1.0 / chop_prob)), 2) if chop_prob > 0.0 else 0
    up = 0
    dn = 0
    reads = 0
    co = 0
    ro = 0
    for l in range(L):
        o, r, c = dev.off[l], dev.rows[l], dev.cols[l]
        lines = c if columns else r
        other = r if columns else c
        lt = lrs[l] * transfer_lr
        if h_gain is not None:
            lt *= h_gain[l]
        thr_l = thr
        if thr_gain is not None:
            thr_l = thr * thr_gain[l]
        s0 = event * n_reads
        if random_sel:
            s0 = min(int(uniform(subkey(ks, l), 0) * lines), lines - 1)
        for k in range(n_reads):
            j = (s0 + k) % lines
            ci = co + j if columns else nc + ro + j  # the read line's sign in ``chop``
            sgn_in = chop[ci] if chopped else 1.0
            for m in range(other):
                i, jc = (m, j) if columns else (j, m)
                idx = o + i * c + jc
                v = _read_out(_fast_read(g, dev, ph, idx), ph, sig, subkey(kr, idx), k, True)
                reads += 1
                if alg == TT_V1:
                    dw = lt * v
                    if dw == 0.0 or not np.isfinite(dw):
                        continue
                    n = pulse_count(abs(dw) / gran, ph, kq, SLOW[0] * N + idx, ph.encoding)
                    u, dd = _pulse_n(g, dev, ph, idx, n, dw > 0.0, SLOW[0], SLOW[1], kp, pot, cnt_up, cnt_dn)
                    sync_term(g, dev, ph, tc, idx)
                else:
                    sgn = sgn_in
                    if rowsigns:
                        sgn *= chop[nc + ro + m] if columns else chop[co + m]
                    h = H[idx] + lt * v * sgn
                    q = h / thr_l
                    n = 0
                    if abs(q) >= 1.0:
                        n = int(min(abs(q), Q_HUGE))
                        n = min(n, max_steps)
                    u, dd = 0, 0
                    if n > 0:
                        if forget:
                            h = h * momentum
                        elif h > 0.0:
                            h -= sub * n * thr_l
                        else:
                            h += sub * n * thr_l
                        u, dd = _pulse_n(g, dev, ph, idx, n, q > 0.0, SLOW[0], SLOW[1], kp, pot, cnt_up, cnt_dn)
                        sync_term(g, dev, ph, tc, idx)
                    H[idx] = h
                up += u
                dn += dd
            if alg == TT_V1 and reset_prob > 0.0 and uniform(subkey(kz, o + j), k) < reset_prob:
                for m in range(other):
                    i, jc = (m, j) if columns else (j, m)
                    u, dd, nr = _reset_fast(g, dev, ph, o + i * c + jc, reset_rounds, seed, step, pot, cnt_up,
                                            cnt_dn, tc)
                    up += u
                    dn += dd
                    reads += nr
            if chopped and chop_prob > 0.0:
                if in_chop_random:
                    if uniform(subkey(kc, ci), k) < chop_prob:
                        chop[ci] = -chop[ci]
                elif ((event * n_reads + k) // lines) % regular == regular - 1:
                    chop[ci] = -chop[ci]
            if rowsigns and out_chop_prob > 0.0 and j == lines - 1:
                for m in range(other):
                    oi = nc + ro + m if columns else co + m
                    if uniform(subkey(ko, oi), k) < out_chop_prob:
                        chop[oi] = -chop[oi]
        co += c
        ro += r
    return up, dn, reads
