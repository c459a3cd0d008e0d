"""NumPy reference of every crossbar kernel (slow, written straight from DESIGN §1.3–1.4; used only
by the tests). Loops run over devices and pulses in Python with scalar arithmetic; randomness
comes from the scalar references of :mod:`pipeline.rng`, keyed exactly as the kernels
key it: pulse k of device (pair, idx) at ``step`` draws ``(key3(seed, STREAM_PULSE, step) ^
(pair·N + idx)·φ₂, k)``, its stochastic rounding ``(key4(seed, STREAM_ROUND, step, pair·N + idx), 0)``,
output line i of a read ``(key_read, i)``.

Also :func:`random_array`, a random one-or-more-layer array of any family for tests and
benchmarks.
"""

from __future__ import annotations

import math

import numpy as np

from ..devices import law
from . import kernels as K
from . import schemes as KS
from ..rng import STREAM_PULSE, STREAM_ROUND, _mix_np, key3_np, key4_np, normal_key_np, uniform_key_np

# ------------------------------------------------------------------------------------- weights


def weights(g, dev, ph, layer):
    r, c, o = int(dev.rows[layer]), int(dev.cols[layer]), int(dev.off[layer])
    sl = slice(o, o + r * c)
    if ph.mapping == K.MAP_DIFFERENTIAL:
        return ((g[0, sl] - g[1, sl]) / ph.g_scale).reshape(r, c)
    if ph.mapping == K.MAP_PLANES:
        t = sum(dev.coef[p] * (g[p, sl] - dev.ref[p]) for p in range(g.shape[0]))
        return (t / ph.g_scale).reshape(r, c)
    return ((g[0, sl] - ph.g_ref) / ph.g_scale).reshape(r, c)


def read_power(g, dev, ph):
    """Σ coef² of the tile's planes (the plane count for the standard mappings)."""
    return float(np.sum(dev.coef ** 2)) if ph.mapping == K.MAP_PLANES else g.shape[0]


def _read_out(y, ph, scale, key_read, noisy):
    """Read noise (std read_noise·w_max·‖v‖₂·√P), clipping, ADC on a vector of outputs."""
    y = np.array(y, float)
    if noisy and ph.read_noise > 0:
        y = y + ph.read_noise * ph.w_max * scale * np.array([normal_key_np(key_read, i) for i in range(len(y))])
    if ph.out_clip > 0:
        y = np.clip(y, -ph.out_clip, ph.out_clip)
    if ph.adc_bits > 0:
        q = 2 * ph.adc_range / (2.0 ** ph.adc_bits - 1)
        y = np.floor(np.clip(y, -ph.adc_range, ph.adc_range) / q + 0.5) * q
    return y


def read_forward(g, dev, ph, layer, x, key_read, noisy):
    """y = W x with the read model."""
    P = read_power(g, dev, ph)
    return _read_out(weights(g, dev, ph, layer) @ x, ph, math.sqrt(P * float(x @ x)), key_read, noisy)


def read_transposed(g, dev, ph, layer, d, key_read, noisy):
    """x = Wᵀ d with the read model."""
    P = read_power(g, dev, ph)
    return _read_out(weights(g, dev, ph, layer).T @ d, ph, math.sqrt(P * float(d @ d)), key_read, noisy)


# -------------------------------------------------------------------------------------- pulses


def pulse_count(q, ph, key_round):
    """n = round(q) by the encoding, capped at n_max (NaN: none)."""
    if not q > 0:
        return 0
    q = min(q, K.Q_HUGE)
    if ph.encoding == K.ENC_NEAREST:
        n = math.floor(q + 0.5)
    elif ph.encoding in (K.ENC_STOCHASTIC, K.ENC_SPARSE):  # (a sparse outer product: update_layer)
        n = math.floor(q) + (1 if uniform_key_np(key_round, 0) < q - math.floor(q) else 0)
    elif ph.encoding == K.ENC_FLOOR:
        n = math.floor(q)
    else:
        n = 1 if q > ph.threshold else 0
    return min(int(n), ph.n_max)


def table_step(g, polarity, t, dev, u):
    """ΔG from table t: nearest bin centre (first on a tie), linear interpolation along the CDF."""
    nb, m = int(dev.tab_nb[t]), int(dev.tab_np[t])
    k = int(np.argmin(np.abs(dev.tab_g[t, :nb] - g)))
    tab = dev.tab_up if polarity > 0 else dev.tab_down
    return float(np.interp(u, dev.tab_p[t, :m], tab[t, :m, k]))


def apply_pulses(gv, n, polarity, ph, dev, pair, idx, key):
    """n pulses of one polarity through the device law (DESIGN §1.3), one at a time."""
    lo, hi = float(dev.g_min[pair, idx]), float(dev.g_max[pair, idx])
    for k in range(n):
        if ph.family == law.TABLE:
            step = table_step(gv, polarity, int(dev.table[pair, idx]), dev, uniform_key_np(key, k))
        else:
            x = min(max((gv - lo) / (hi - lo), 0.0), 1.0)
            if polarity > 0:
                gam = float(dev.gamma_up[pair, idx])
                s = {law.CONSTANT: 1.0, law.LINEAR: max(1.0 - gam * x, 0.0), law.SOFT_BOUNDS: 1.0 - x,
                     law.POWER: (1.0 - x) ** gam}[ph.family]
                step = float(dev.dg_up[pair, idx]) * s
            else:
                gam = float(dev.gamma_down[pair, idx])
                s = {law.CONSTANT: 1.0, law.LINEAR: max(1.0 - gam * (1.0 - x), 0.0), law.SOFT_BOUNDS: x,
                     law.POWER: x ** gam}[ph.family]
                step = -float(dev.dg_down[pair, idx]) * s
            if ph.c2c > 0:
                step *= max(1.0 + ph.c2c * normal_key_np(key, k), 0.0)
        gv = min(max(gv + step, lo), hi)
    return gv


def potentiates(ph, step):
    """Differential policy: is a positive change written by potentiating the + device at ``step``?"""
    return ph.policy == K.POL_POTENTIATE or (ph.policy == K.POL_ALTERNATE and step % 2 == 0)


def route(dw, ph, step, dev=None):
    """(plane, polarity, q) of a requested change dw (DESIGN §1.4); a general tile (MAP_PLANES)
    writes its pair of planes ``dev.write``."""
    pot = potentiates(ph, step)
    planes = ph.mapping == K.MAP_PLANES
    plus, minus = (int(dev.write[0]), int(dev.write[1])) if planes else (0, 1)
    if ph.mapping == K.MAP_DIFFERENTIAL or (planes and plus != minus):
        if pot:
            return (plus if dw > 0 else minus), 1, abs(dw) * (1.0 / ph.dw_pot)
        return (minus if dw > 0 else plus), -1, abs(dw) * (1.0 / ph.dw_dep)
    return (plus, 1, dw * (1.0 / ph.dw_pot)) if dw > 0 else (plus, -1, -dw * (1.0 / ph.dw_dep))


def program(g, dev, ph, dw, seed, step, cnt_up, cnt_dn, decide=None):
    """Write per-cross-point changes dw (N,) as pulses; returns new (g, cnt_up, cnt_dn, up, dn).
    ``decide``: {idx: pulse count} of the devices whose count was already drawn (a sparse write's
    rows); the others round by the encoding."""
    g, cnt_up, cnt_dn = g.copy(), cnt_up.copy(), cnt_dn.copy()
    N = g.shape[1]
    up = dn = 0
    for idx in np.flatnonzero(dw):
        pair, pol, q = route(float(dw[idx]), ph, step, dev)
        flat = pair * N + int(idx)
        if decide is not None and int(idx) in decide:
            n = decide[int(idx)]
        else:
            n = pulse_count(q, ph, key4_np(seed, STREAM_ROUND, step, flat))
        if n == 0 or dev.stuck[pair, idx]:
            continue
        g[pair, idx] = apply_pulses(float(g[pair, idx]), n, pol, ph, dev, pair, idx, pulse_key(seed, step, flat))
        if pol > 0:
            cnt_up[pair, idx] += n
            up += n
        else:
            cnt_dn[pair, idx] += n
            dn += n
    return g, cnt_up, cnt_dn, up, dn


def pulse_key(seed, step, flat):
    """Key of the pulses of device ``flat`` (= pair·N + idx) at ``step``."""
    with np.errstate(over="ignore"):
        return np.uint64(key3_np(seed, STREAM_PULSE, step) ^ (np.uint64(flat) * K._PHI2))


def update_layer(g, dev, ph, layer, d, a, lr, seed, step, cnt_up, cnt_dn):
    """ΔW = -lr·d·aᵀ on ``layer`` (ΔW_ij = (-lr·d_i)·a_j) as pulses; a stochastic-sparse array
    draws the pulse counts of its rows below ``SPARSE_P_MAX`` by :func:`sparse_rows`."""
    r, c, o = int(dev.rows[layer]), int(dev.cols[layer]), int(dev.off[layer])
    dw = np.zeros(g.shape[1])
    s = -lr * np.asarray(d, float)
    dw[o:o + r * c] = (s[:, None] * np.asarray(a, float)[None, :]).ravel()
    decide = sparse_rows(ph, dev, s, np.asarray(a, float), o, seed, step) if ph.encoding == K.ENC_SPARSE else None
    return program(g, dev, ph, dw, seed, step, cnt_up, cnt_dn, decide)


def sparse_rows(ph, dev, s, a, o, seed, step):
    """{idx: 0 or 1} for every visited cross-point of the rows of ΔW = s·aᵀ that a stochastic-sparse
    write samples by row (DESIGN: p = |s_i|·max|a|·max(1/dw_pot, 1/dw_dep) < SPARSE_P_MAX; candidates
    Geometric(p) visited columns apart, each firing with probability q_ij / p)."""
    nz = [j for j in range(len(a)) if a[j] != 0.0]  # NaN included, as the kernels' column compaction
    amax = max([abs(float(a[j])) for j in nz if not math.isnan(a[j])], default=0.0)
    amax_inv = amax * max(1.0 / ph.dw_pot, 1.0 / ph.dw_dep)
    kr = key3_np(seed, STREAM_ROUND, step)
    out = {}
    for i, si in enumerate(s):
        si = float(si)
        if si == 0.0:  # (d_i = ±0)
            continue
        p = abs(si) * amax_inv
        if not p < K.SPARSE_P_MAX:
            continue  # device by device (also NaN)
        row = o + i * len(a)
        for j in nz:
            out[row + j] = 0
        if not p > 0.0:
            continue
        with np.errstate(over="ignore"):
            krow = np.uint64(_mix_np(np.uint64(kr) ^ K.ROWS_TAG ^ np.uint64(row)))
        lp = math.log1p(-p)
        jj, t = -1, 0
        while True:
            gf = math.log(1.0 - uniform_key_np(krow, 2 * t)) / lp
            if gf >= len(nz):
                break
            jj += 1 + int(gf)
            if jj >= len(nz):
                break
            ua = uniform_key_np(krow, 2 * t + 1)
            t += 1
            dw = si * float(a[nz[jj]])
            if dw == 0.0:
                continue
            q = route(dw, ph, step, dev)[2]
            out[row + nz[jj]] = min(1 if ua < q / p else 0, ph.n_max)
    return out


def mixed_precision(g, dev, ph, layer, d, a, lr, chi, subtract, seed, step, cnt_up, cnt_dn):
    """The mixed-precision write (``schemes.mp_write_layer``) visiting every cross-point of the
    layer: χ += (−lr·d_i)·a_j; a cross-point with n = trunc(|χ|/ε) >= 1 steps of its route's
    polarity (capped) is requested n·ε; the requests are written by :func:`program`; χ then loses
    the change read back (``MP_READBACK``, two verify reads) or the request. Returns new
    (g, chi, cnt_up, cnt_dn, up, dn, reads)."""
    r, c, o = int(dev.rows[layer]), int(dev.cols[layer]), int(dev.off[layer])
    chi = chi.copy()
    pot = potentiates(ph, step)
    pairwise = ph.mapping == K.MAP_DIFFERENTIAL or (ph.mapping == K.MAP_PLANES and dev.write[0] != dev.write[1])
    req = np.zeros(g.shape[1])
    for i in range(r):
        s = -lr * float(d[i])
        for j in range(c):
            k = o + i * c + j
            x = float(chi[k]) + s * float(a[j])
            chi[k] = x
            if x == 0.0 or not math.isfinite(x):
                continue
            q = route(x, ph, step, dev)[2]
            n = min(int(q), ph.n_max) if q < K.Q_HUGE else ph.n_max
            if n == 0:
                continue
            eps = ph.dw_pot if (pairwise and pot) or (not pairwise and x > 0.0) else ph.dw_dep
            req[k] = n * eps if x > 0.0 else -n * eps
    before = weights(g, dev, ph, layer).ravel()
    g, cnt_up, cnt_dn, up, dn = program(g, dev, ph, req, seed, step, cnt_up, cnt_dn)
    after = weights(g, dev, ph, layer).ravel()
    reads = 0
    for k in np.flatnonzero(req):
        if subtract == KS.MP_READBACK:
            chi[k] -= after[k - o] - before[k - o]
            reads += 2
        else:
            chi[k] -= req[k]
    return g, chi, cnt_up, cnt_dn, up, dn, reads


def drift(g, dev, ph):
    """G ← G_rest + (G − G_rest)·drift for free devices, G_rest = G_min + drift_rest·(G_max − G_min)."""
    if ph.drift >= 1.0:
        return g.copy()
    rest = dev.g_min + ph.drift_rest * (dev.g_max - dev.g_min)
    return np.where(dev.stuck != 0, g, rest + (g - rest) * ph.drift)


# ----------------------------------------------------------------------------- random arrays


def random_tables(rng, T=3, B=6, M=5, g_lo=3e-4, g_hi=1e-3):
    """T look-up tables with B bins and M CDF points: increasing steps of a few µS, decreasing
    towards the top (up) or the bottom (down) of the range, sorted along the CDF."""
    tab_g = np.sort(rng.uniform(g_lo, g_hi, (T, B)), axis=1)
    tab_p = np.tile(np.linspace(0.0, 1.0, M), (T, 1))
    x = (tab_g - g_lo) / (g_hi - g_lo)
    base = np.sort(rng.uniform(0.2, 1.8, (T, M)), axis=1)[:, :, None]
    tab_up = 1e-5 * base * (1.05 - x)[:, None, :]
    tab_down = -1e-5 * base[:, ::-1] * (0.05 + x)[:, None, :]
    return (tab_g, np.full(T, B, np.int64), tab_p, np.full(T, M, np.int64), tab_up, tab_down)


def random_array(rng, sizes=(5, 4), *, family=law.SOFT_BOUNDS, mapping=K.MAP_DIFFERENTIAL, spread=0.1,
                 stuck_fraction=0.0, parallel_min=1 << 40, tile=None, **physics):
    """Random (g, dev, ph) of a network with layer widths ``sizes`` (input first; bias columns
    added), per-device parameters with ``spread`` relative d2d variation. ``physics`` overrides
    fields of :class:`~pipeline.crossbar.kernels.Physics`; ``tile`` = (coef, ref, write) of a
    general tile (``mapping=K.MAP_PLANES``)."""
    rows = np.asarray(sizes[1:], np.int64)
    cols = np.asarray([s + 1 for s in sizes[:-1]], np.int64)
    off = np.concatenate([[0], np.cumsum(rows * cols)]).astype(np.int64)
    P = len(tile[0]) if mapping == K.MAP_PLANES else 2 if mapping == K.MAP_DIFFERENTIAL else 1
    N = int(off[-1])

    def draw(mean):
        return np.ascontiguousarray(mean * np.abs(1.0 + spread * rng.standard_normal((P, N))))

    if family == law.TABLE:
        tabs = random_tables(rng)
        table = rng.integers(0, len(tabs[1]), (P, N)).astype(np.int64)
        g_min, g_max = tabs[0][table, 0], tabs[0][table, -1]
    else:
        tabs = law.empty_tables()
        table = np.zeros((P, N), np.int64)
        g_min = draw(3e-4)
        g_max = g_min + draw(7e-4)
    stuck = (rng.random((P, N)) < stuck_fraction).astype(np.uint8)
    dev = K.Devices(g_min, g_max, draw(1.4e-5), draw(1e-5), draw(0.8), draw(1.5), stuck, table,
                    *(np.ascontiguousarray(t) for t in tabs), off, rows, cols,
                    *(K.tile(mapping, P, coef=tile[0], ref=tile[1], write=tile[2]) if mapping == K.MAP_PLANES
                      else K.tile(mapping, P, 6.5e-4)))
    g = np.ascontiguousarray(g_min + rng.uniform(0.0, 1.0, (P, N)) * (g_max - g_min))
    fields = dict(family=int(family), mapping=int(mapping), g_scale=7e-4, g_ref=6.5e-4, c2c=0.3, read_noise=0.0,
                  w_max=1.0, adc_bits=0, adc_range=4.0, out_clip=0.0, drift=1.0, drift_rest=0.5,
                  encoding=K.ENC_NEAREST, n_max=31, threshold=0.5, policy=K.POL_ALTERNATE, dw_pot=1e-2,
                  dw_dep=1e-2, parallel_min=int(parallel_min))
    fields.update(physics)
    return g, dev, make_physics(**fields)


def make_physics(**fields):
    """Physics with every field cast to its declared type (one numba signature for all tests)."""
    return K.Physics(**{k: int(fields[k]) if k in _INT_FIELDS else float(fields[k]) for k in K.Physics._fields})


_INT_FIELDS = {"family", "mapping", "adc_bits", "encoding", "n_max", "policy", "parallel_min"}
