"""The state-space trace likelihood (DESIGN §1.5): a Gaussian assumed-density (Kalman) filter of
the hidden conductance per cycle, maximised over the family's parameters, c2c and σ_read (SLSQP),
with sandwich or cycle-bootstrap standard errors. See :mod:`pipeline.devices.fit` for the model.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy.optimize import minimize

from ..families import BY_NAME
from ..law import FAMILY_CODES, mean_step
from .steps import FIT_FAMILIES, GAMMA_BOUNDS, DeviceData, FamilyFit, c2c_of, predict, read_noise_of

# ------------------------------------------------------------------ state-space likelihood


@njit(cache=True, inline="always")
def _phi(t):
    return math.exp(-0.5 * t * t) * 0.3989422804014327


@njit(cache=True, inline="always")
def _Phi(t):
    return 0.5 * math.erfc(-t * 0.7071067811865476)


@njit(cache=True, inline="always")
def _clip_moments(mu, var, a, b):
    """Mean and variance of clip(Z, a, b) for Z ~ N(mu, var) (doubly censored normal)."""
    s = math.sqrt(var)
    if s <= 1e-12 * (b - a):
        m = min(max(mu, a), b)
        return m, 0.0
    al, be = (a - mu) / s, (b - mu) / s
    if al < -9.0 and be > 9.0:  # no mass beyond the bounds
        return mu, var
    pa, pb, fa, fb = _Phi(al), _Phi(be), _phi(al), _phi(be)
    mid = pb - pa
    m = a * pa + b * (1.0 - pb) + mu * mid + s * (fa - fb)
    m2 = (a * a * pa + b * b * (1.0 - pb) + (mu * mu + var) * mid + 2.0 * mu * s * (fa - fb)
          + var * (al * fa - be * fb))
    v = m2 - m * m
    return min(max(m, a), b), (v if v > 0.0 else 0.0)


@njit(cache=True)
def _ss_contrib(family, p, ys, pols, out):
    """Prediction-error decomposition of the Gaussian (assumed-density) filter of one device.

    Hidden state: the true conductance G_k; a pulse maps it to clip(G + μ(G)(1 + c2c·ξ), G_min,
    G_max) (the one pulse law; moments of the censored normal), every read adds N(0, σ_read²).
    ``p`` = (g_min, g_max, log dg_up, log dg_down, gamma_up, gamma_down, log c2c, log σ_read) in
    scaled units. Writes -log-likelihood contributions of every read after a cycle's first into
    ``out`` (cycle, read) and returns their sum."""
    gmin, gmax = p[0], p[1]
    dgu, dgd = math.exp(p[2]), math.exp(p[3])
    gu, gd = p[4], p[5]
    c2 = math.exp(2.0 * p[6])
    r2 = math.exp(2.0 * p[7])
    total = 0.0
    nc, nr = ys.shape
    for c in range(nc):
        started = False
        m, P = 0.0, 0.0
        for k in range(nr):
            out[c, k] = 0.0
            y = ys[c, k]
            if not started:
                if not math.isnan(y):
                    m, P, started = y, r2, True
                continue
            pol = pols[c, k]
            if pol != 0:
                if gmax <= gmin:
                    out[c, k] = 1e6
                    total += 1e6
                    continue
                sd = math.sqrt(P)
                mu0 = mean_step(family, pol, m, gmin, gmax, dgu, dgd, gu, gd)
                mup = mean_step(family, pol, m + sd, gmin, gmax, dgu, dgd, gu, gd)
                mum = mean_step(family, pol, m - sd, gmin, gmax, dgu, dgd, gu, gd)
                slope = (mup - mum) / (2.0 * sd) if sd > 0.0 else 0.0
                zm = m + mu0
                zv = (1.0 + slope) ** 2 * P + c2 * (mu0 * mu0 + slope * slope * P)
                m, P = _clip_moments(zm, zv, gmin, gmax)
            if math.isnan(y):
                continue
            S = P + r2
            nu = y - m
            ll = 0.5 * (math.log(6.283185307179586 * S) + nu * nu / S)
            out[c, k] = ll
            total += ll
            K = P / S
            m = min(max(m + K * nu, gmin), gmax)
            P = (1.0 - K) * P
    return total


SS_FREE = {f: BY_NAME[f].ss_free for f in FIT_FAMILIES}
assert set(SS_FREE) == set(FIT_FAMILIES) and all(len(v) in (6, 8) for v in SS_FREE.values()), SS_FREE


def _ss_scaled(dd: DeviceData):
    ys = dd.reads
    off = float(np.nanmin(ys))
    sc = float(np.nanmax(ys) - off) or (abs(off) or 1.0)
    return (ys - off) / sc, off, sc


def _ss_bounds(family: str):
    lb = [-1.0, 0.0, -25.0, -25.0, 0.0, 0.0, math.log(1e-4), math.log(1e-7)]
    ub = [1.0, 11.0, 3.0, 3.0, 0.0, 0.0, math.log(3.0), math.log(1.0)]
    if family in GAMMA_BOUNDS:
        lb[4] = lb[5] = GAMMA_BOUNDS[family][0]
        ub[4] = ub[5] = GAMMA_BOUNDS[family][1]
    return np.array(lb), np.array(ub)


def _ss_minimize(code, free, full, lb, ub, x0, ys, pols):
    buf = np.empty(ys.shape)

    def f(x):
        return _ss_contrib(code, full(x), ys, pols, buf)

    x0 = np.clip(x0, lb[free] + 1e-9, ub[free] - 1e-9)
    # SLSQP: fast here (L-BFGS-B spends its time in threaded BLAS calls on tiny matrices)
    r = minimize(f, x0, method="SLSQP", bounds=list(zip(lb[free], ub[free])), options={"maxiter": 300, "ftol": 1e-7})
    return r


def _ss_cov(code, free, full, x, ys, pols, lb, ub):
    """Sandwich covariance H⁻¹ (Σ s_k s_kᵀ) H⁻¹ of the per-read scores s_k (central differences)."""
    buf = np.empty(ys.shape)
    p = len(x)
    h = 1e-4 * np.maximum(1.0, np.abs(x))

    def scores(z):
        cols = []
        for j in range(p):
            a, b = z.copy(), z.copy()
            a[j] += h[j]
            b[j] -= h[j]
            _ss_contrib(code, full(a), ys, pols, buf)
            la = buf.copy()
            _ss_contrib(code, full(b), ys, pols, buf)
            cols.append(((la - buf) / (2 * h[j])).ravel())
        return np.array(cols).T

    S = scores(x)
    H = np.empty((p, p))
    for i in range(p):
        a, b = x.copy(), x.copy()
        a[i] += h[i]
        b[i] -= h[i]
        H[i] = (scores(a).sum(0) - scores(b).sum(0)) / (2 * h[i])
    H = 0.5 * (H + H.T)
    with np.errstate(all="ignore"):
        Hi = np.linalg.pinv(H)
        cov = Hi @ (S.T @ S) @ Hi
        var = np.diag(cov).copy()
        w, v = np.linalg.eigh(H)
        bad = w <= 1e-10 * max(w.max(), 1e-300)
        if bad.any():
            var[np.any(np.abs(v[:, bad]) > 1e-3, axis=1)] = np.inf
    at_bound = (x <= lb[free] + 1e-6) | (x >= ub[free] - 1e-6)
    var[at_bound & ~np.isfinite(var)] = np.inf
    return np.sqrt(np.clip(var, 0, None))


def _ss_fit(family: str, dd: DeviceData, pilot: FamilyFit, bootstrap: int, seed: int) -> FamilyFit:
    """Maximum likelihood of the conductance trajectory (state-space model, see module doc)."""
    ys, off, sc = _ss_scaled(dd)
    pols = np.nan_to_num(dd.rpol).astype(np.int64)
    code = FAMILY_CODES[family]
    free = SS_FREE[family]
    lb, ub = _ss_bounds(family)
    th = np.nan_to_num(pilot.theta)
    c2c0 = c2c_of([pilot]) if pilot.c2c_den > 0 else 0.1
    rn0 = read_noise_of([pilot])
    base = np.array([(th[0] - off) / sc, (th[1] - off) / sc, math.log(max(th[2] / sc, 1e-9)),
                     math.log(max(th[3] / sc, 1e-9)), th[4], th[5], math.log(min(max(c2c0, 0.02), 2.0)),
                     math.log(max(rn0 / sc, 1e-4))])

    def full(x):
        q = base.copy()
        q[free] = x
        return q

    r = _ss_minimize(code, free, full, lb, ub, base[free], ys, pols)
    x = r.x
    q = full(x)
    theta = np.array([off + sc * q[0], off + sc * q[1], sc * math.exp(q[2]), sc * math.exp(q[3]), q[4], q[5]])
    if len(free) == 6:
        theta[4:] = np.nan
    n = int(np.count_nonzero(np.isfinite(ys)) - np.count_nonzero(np.isfinite(ys).any(axis=1)))
    c2c, rn = math.exp(q[6]), sc * math.exp(q[7])
    # step residuals of the mean law (RMSE, figure) at the fitted parameters
    pred = predict(family, np.nan_to_num(theta), dd.g, dd.pol)
    rss = float(np.sum((dd.dg - pred) ** 2))
    ff = FamilyFit(theta=theta, se=np.full(6, np.nan), rss=rss, n=len(dd.g), k=len(free),
                   nll=float(r.fun) + n * math.log(sc), nll_n=n, c2c_num=n * c2c * c2c, c2c_den=float(n),
                   read_num=n * rn * rn, read_den=n, lag1=pilot.lag1, c2c_ml=c2c, read_ml=rn)
    ff.ss = (code, free, full, x, ys, pols, lb, ub, sc, bootstrap, seed)
    return ff


def ss_uncertainty(ff: FamilyFit) -> None:
    """Standard errors of a state-space fit (sandwich covariance, or a bootstrap over whole cycles —
    the reads inside a cycle are dependent — when ``bootstrap > 0`` and there are 2 cycles or more).
    Computed on demand: only the chosen family needs them."""
    if ff.ss is None:
        return
    code, free, full, x, ys, pols, lb, ub, sc, bootstrap, seed = ff.ss
    nc = ys.shape[0]
    if bootstrap > 0 and nc >= 2:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xB007]))
        reps = []
        for _ in range(bootstrap):
            i = rng.integers(0, nc, nc)
            reps.append(_ss_minimize(code, free, full, lb, ub, x, ys[i], pols[i]).x)
        se = np.std(np.array(reps), axis=0, ddof=1)
    else:
        se = _ss_cov(code, free, full, x, ys, pols, lb, ub)
    qse = np.zeros(8)
    qse[free] = se
    th = ff.theta
    se6 = np.array([sc * qse[0], sc * qse[1], th[2] * qse[2], th[3] * qse[3], qse[4], qse[5]])
    if len(free) == 6:
        se6[4:] = np.nan
    ff.se = se6
    ff.ss = None
