"""Fit a device population to characterization data (DESIGN §1.5).

Per device and per family (``constant``, ``linear``, ``soft-bounds``, ``power``):

* **traces: maximum likelihood of the conductance trajectory** (state-space model). The true
  conductance G_k is hidden; a pulse maps it to ``clip(G + μ(G)(1 + c2c·ξ), G_min, G_max)`` (the
  one pulse law, :func:`pipeline.devices.law.mean_step`), every read adds N(0, σ_read²). Regressing
  the measured step on the measured G before it is biased twice over: the read error of G_k sits in
  the regressor and (with the opposite sign) in the step, and near a bound the expected step is
  E[clip(·)], not clip(E[·]). The fit instead runs a Gaussian assumed-density (Kalman) filter per
  cycle — the predicted state is moment-matched through the censored normal of the clip, its
  variance grows by ``c2c²·μ²`` per pulse (write noise ∝ step) and the read noise enters only the
  observation — and maximises the prediction-error likelihood over the family's parameters, c2c
  and σ_read together (SLSQP, starting from the least squares of the steps below). This separates
  write from read noise by the likelihood itself (read noise: negatively correlated successive
  steps; write noise: a random walk of G). AIC/BIC come from this likelihood (k = family
  parameters + 2 noise parameters). Standard errors: sandwich covariance ``H⁻¹(Σ s_k s_kᵀ)H⁻¹``
  of the per-read scores, or a bootstrap over whole cycles when ``device.bootstrap > 0``; computed
  for the chosen family only (NaN in ``fit.zarr`` for the others).
* **look-up tables** (and the starting point for traces) — scipy least squares of the measured
  step against ``clip(G + μ(G), G_min, G_max) - G``; covariance ``(JᵀJ)⁻¹`` sandwich or bootstrap
  over points; R² of the mean step per bin; ``σ_c2c`` = spread of ΔG per bin relative to its mean,
  read noise 0 (not separable).
* **goodness of fit** — R² of the conductance trace (the mean law integrated open-loop from each
  cycle's first read), RMSE of the steps; the lag-1 correlation of step residuals (-0.5 for read
  noise alone) as a diagnostic.
* **population** — mean over devices, and a device-to-device std with the estimation noise
  removed (``sqrt(max(0, var(estimates) - mean(se²)))``, random-effects), plus correlations;
  c2c and read noise pooled as root-mean-square over devices.
* **family choice** — ``auto`` takes the lowest BIC summed over devices.

Outputs (atomically, in ``--out``): ``device.yaml`` (schema of :mod:`pipeline.devices.spec` plus
``families``, ``uncertainty``, ``fit``), ``fit.zarr`` (per-device estimates and errors, residuals,
traces and laws for fig2), ``metrics.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit
from scipy.optimize import least_squares, minimize

from ..errors import InputError
from ..fsutil import atomic_path, check_output_path
from . import spec as specmod
from .law import FAMILY_CODES, mean_step, mean_step_np
from .readers import LutSet, Traces, read_characterization

FIT_FAMILIES = ("constant", "linear", "soft-bounds", "power")
PARAMS = ("g_min_S", "g_max_S", "dg_up_S", "dg_down_S", "gamma_up", "gamma_down")
N_FREE = {"constant": 4, "soft-bounds": 4, "linear": 6, "power": 6}
GAMMA_BOUNDS = {"linear": (0.0, 20.0), "power": (0.02, 20.0)}
MAX_POINTS = 4000  # steps per device kept in fit.zarr for the figure
TRACE_CYCLES = 4


# ------------------------------------------------------------------------------- data


@dataclass
class DeviceData:
    """The points of one device: conductance before the step, step, polarity (flat, finite), and
    for traces the (cycle, read-1) grid used for the lag-1 statistics."""

    g: np.ndarray
    dg: np.ndarray
    pol: np.ndarray
    grid: tuple | None = None      # (g_prev, dg, pol) each (cycle, read-1), NaN padded
    spread: np.ndarray | None = None  # LUT: std of ΔG per point
    pair: np.ndarray | None = None    # point i and i+1 are successive steps of one ramp
    reads: np.ndarray | None = None   # traces: the measured conductance (cycle, read), NaN padded
    rpol: np.ndarray | None = None    # traces: polarity of the pulse before each read (cycle, read)


def device_data(obj: Traces | LutSet) -> list[DeviceData]:
    out = []
    if isinstance(obj, Traces):
        gp, dg, pol = obj.steps()
        for d in range(obj.n_devices):
            ok = np.isfinite(dg[d])
            nxt = np.zeros_like(ok)
            nxt[:, :-1] = ok[:, :-1] & ok[:, 1:] & (pol[d][:, :-1] == pol[d][:, 1:])
            out.append(DeviceData(gp[d][ok], dg[d][ok], pol[d][ok].astype(np.int8), grid=(gp[d], dg[d], pol[d]),
                                  pair=nxt[ok], reads=obj.g[d], rpol=obj.pol[d]))
    else:
        for t in range(obj.n_devices):
            g, mu, su, md, sd = obj.moments(t)
            out.append(DeviceData(np.r_[g, g], np.r_[mu, md], np.r_[np.ones(len(g)), -np.ones(len(g))].astype(np.int8),
                                  spread=np.r_[su, sd]))
    return out


# ------------------------------------------------------------------------------ the model


def law(family: str, theta, g, pol):
    """Unclipped mean step μ(G) of the family's law for polarities ``pol``."""
    gmin, gmax, dgu, dgd, gu, gd = theta
    code = FAMILY_CODES[family]
    up = mean_step_np(code, 1, g, gmin, gmax, dgu, dgd, gu, gd)
    dn = mean_step_np(code, -1, g, gmin, gmax, dgu, dgd, gu, gd)
    return np.where(pol > 0, up, dn)


def predict(family: str, theta, g, pol):
    """Mean step including the clip at the bounds: clip(G + μ(G), G_min, G_max) - G."""
    return np.clip(g + law(family, theta, g, pol), theta[0], theta[1]) - g


@dataclass
class FamilyFit:
    theta: np.ndarray                 # (6,) in S / 1, NaN for parameters the family lacks
    se: np.ndarray                    # (6,) standard errors
    rss: float
    n: int
    k: int
    c2c_num: float = 0.0              # Σ r² - 2 n σ²  (pooling)
    c2c_den: float = 0.0              # Σ μ²
    read_num: float = 0.0             # -Σ r_i r_{i+1}
    read_den: int = 0                 # pairs
    lag1: float = float("nan")
    nll: float | None = None          # traces: -log-likelihood of the reads (state-space model)
    nll_n: int = 0                    # reads in it
    c2c_ml: float = float("nan")      # traces: maximum-likelihood c2c and read noise of this device
    read_ml: float = float("nan")
    ss: tuple | None = None           # traces: what ss_uncertainty needs

    def _ll(self):
        if self.nll is not None:
            return 2.0 * self.nll, self.nll_n
        return self.n * math.log(max(self.rss, 1e-300) / self.n), self.n

    @property
    def aic(self):
        return self._ll()[0] + 2 * self.k

    @property
    def bic(self):
        m2ll, n = self._ll()
        return m2ll + self.k * math.log(n)


def _line(x, y):
    """Least-squares line y = a + b x (returns a, b)."""
    if len(x) < 2 or np.ptp(x) == 0:
        return (float(np.mean(y)) if len(y) else 0.0), 0.0
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b)


def _starts(family: str, dd: DeviceData, s: float):
    """Starting points (scaled units) for the least squares of one family."""
    g, dg, pol = dd.g / s, dd.dg / s, dd.pol
    lo, hi = float(g.min()), float(g.max())
    span = max(hi - lo, 1e-12)
    # steps away from the far bound of their direction (a saturated ramp reads steps of ~0 there)
    up = (pol > 0) & (g <= lo + 0.8 * span)
    dn = (pol < 0) & (g >= lo + 0.2 * span)
    up = up if up.sum() >= 2 else pol > 0
    dn = dn if dn.sum() >= 2 else pol < 0
    mu_up = max(float(np.mean(dg[up])), 1e-9 * span)
    mu_dn = max(float(-np.mean(dg[dn])), 1e-9 * span)
    # soft bounds in closed form: up step = a (gmax - G), down step = -b (G - gmin)
    au, bu = _line(g[up], dg[up])
    ad, bd = _line(g[dn], dg[dn])
    sb = None
    if bu < 0 and bd < 0:
        gmax, gmin = au / -bu, -ad / -bd
        if gmax > gmin:
            sb = [max(gmin, 0.0), gmax, -bu * (gmax - gmin), -bd * (gmax - gmin), 1.0, 1.0]
    obs = [lo, hi]
    if family == "constant":
        return [obs + [mu_up, mu_dn, 0.0, 0.0]]
    if family == "soft-bounds":
        wide = [max(lo - 0.2 * span, 0.0), hi + 0.2 * span]
        return ([sb] if sb else []) + [wide + [2 * mu_up, 2 * mu_dn, 1.0, 1.0]]
    if family == "linear":
        rng_ = obs[1] - obs[0]
        dgu = max(au + bu * obs[0], 1e-9 * span)
        dgd = max(-(ad + bd * obs[1]), 1e-9 * span)
        gu = float(np.clip(-bu * rng_ / dgu, 0.0, 20.0))
        gd = float(np.clip(bd * rng_ / dgd, 0.0, 20.0))
        out = [obs + [dgu, dgd, gu, gd]]
        return out + ([sb] if sb else [])
    # power
    out = [(sb if sb else obs + [mu_up, mu_dn, 1.0, 1.0])]
    for gam, pad in ((2.0, 0.05), (0.5, 0.01)):
        w = [max(lo - pad * span, 0.0), hi + pad * span]
        out.append(w + [mu_up * (1.5 ** gam) * 2, mu_dn * (1.5 ** gam) * 2, gam, gam])
    return out


def fit_family(family: str, dd: DeviceData, *, bootstrap: int = 0, seed: int = 0) -> FamilyFit:
    """Fit one family to one device: least squares of the steps (look-up tables; the starting point
    for traces), then for traces the maximum likelihood of the state-space model."""
    if dd.reads is None:
        return _ls_fit(family, dd, bootstrap=bootstrap, seed=seed)
    return _ss_fit(family, dd, _ls_fit(family, dd, tol=1e-5), bootstrap, seed)


def _ls_fit(family: str, dd: DeviceData, *, keep: np.ndarray | None = None, bootstrap: int = 0,
            seed: int = 0, tol: float = 1e-8) -> FamilyFit:
    """Least-squares fit of the mean step of one family to one device (on the points ``keep``)."""
    s = float(np.max(np.abs(dd.g))) or 1.0
    g, dg, pol = dd.g / s, dd.dg / s, dd.pol
    k = N_FREE[family]
    free = list(range(k))
    lo_g, hi_g = float(g.min()), float(g.max())
    span = max(hi_g - lo_g, 1e-12)
    lb = [0.0, lo_g, 0.0, 0.0]
    ub = [hi_g, hi_g + 10 * span + 1.0, np.inf, np.inf]
    if k == 6:
        a, b = GAMMA_BOUNDS[family]
        lb += [a, a]
        ub += [b, b]

    def full(x):
        th = np.zeros(6)
        th[free] = x
        return th

    def resid(x, gg=g, yy=dg, pp=pol):
        th = full(x)
        if th[1] <= th[0] + 1e-9 * span:
            return np.full(len(gg), 1e3 * span)
        return predict(family, th, gg, pp) - yy

    best = None
    for x0 in _starts(family, dd, s):
        x0 = np.clip(np.asarray(x0[:k], float), np.asarray(lb) + 1e-12, np.asarray(ub) - 1e-12)
        x0[1] = max(x0[1], x0[0] + 0.05 * span)
        r = least_squares(resid, x0, bounds=(lb, ub), method="trf", x_scale="jac", max_nfev=200 * k, ftol=tol,
                          xtol=tol)
        if best is None or r.cost < best.cost:
            best = r
    if keep is None:
        keep = np.ones(len(g), bool)
    elif not keep.all():
        best = least_squares(lambda z: resid(z, g[keep], dg[keep], pol[keep]), best.x, bounds=(lb, ub),
                             method="trf", x_scale="jac", max_nfev=200 * k)
    x = best.x
    rss = float(2 * best.cost)
    n = int(keep.sum())
    se = _sandwich_se(best.jac, best.fun, dd.pair[keep] if dd.pair is not None else None)
    if bootstrap > 0:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xB007]))
        reps = []
        for _ in range(bootstrap):
            i = rng.choice(np.flatnonzero(keep), int(keep.sum()))
            rb = least_squares(lambda z: resid(z, g[i], dg[i], pol[i]), x, bounds=(lb, ub), method="trf",
                               x_scale="jac", max_nfev=50 * k)
            reps.append(rb.x)
        se = np.std(np.array(reps), axis=0, ddof=1)
    th = full(x)
    scale = np.array([s, s, s, s, 1.0, 1.0])
    theta = th * scale
    se_full = np.full(6, np.nan)
    se_full[free] = se * scale[free]
    if k == 4:
        theta[4:] = np.nan
    ff = FamilyFit(theta=theta, se=se_full, rss=rss * s * s, n=n, k=k)
    _noise(ff, family, dd)
    return ff


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


SS_FREE = {"constant": [0, 1, 2, 3, 6, 7], "soft-bounds": [0, 1, 2, 3, 6, 7], "linear": list(range(8)),
           "power": list(range(8))}


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


def _sandwich_se(J: np.ndarray, r: np.ndarray, pair: np.ndarray | None) -> np.ndarray:
    """Standard errors from the sandwich covariance (JᵀJ)⁻¹ M (JᵀJ)⁻¹, M = Σ s_i s_iᵀ plus the
    lag-1 cross terms of successive steps (s_i = J_i r_i): robust to the heteroscedastic write noise
    and to the negatively correlated read-noise part of successive steps. Directions the data do
    not constrain get an infinite error."""
    with np.errstate(all="ignore"):
        bread = np.linalg.pinv(J.T @ J)
        sc = J * r[:, None]
        meat = sc.T @ sc
        if pair is not None and pair.any():
            i = np.flatnonzero(pair[:-1])
            cross = sc[i].T @ sc[i + 1]
            meat += cross + cross.T
        se = np.sqrt(np.clip(np.diag(bread @ meat @ bread), 0, None))
        u, sv, vt = np.linalg.svd(J, full_matrices=False)
        if sv.size and sv[-1] < 1e-10 * sv[0]:
            null = vt[sv < 1e-10 * sv[0]]
            se[np.any(np.abs(null) > 1e-3, axis=0)] = np.inf
    return se


def _noise(ff: FamilyFit, family: str, dd: DeviceData) -> None:
    """Separate write (c2c) noise from read noise with the lag-1 covariance of the residuals."""
    th = np.nan_to_num(ff.theta)
    if dd.grid is None:  # look-up tables: the spread of ΔG per bin, relative to its mean
        ff.c2c_num = float(np.sum(dd.spread ** 2))
        ff.c2c_den = float(np.sum(dd.dg ** 2))
        return
    gp, dg, pol = dd.grid
    with np.errstate(invalid="ignore"):
        mu = law(family, th, gp, pol)
        pred = np.clip(gp + mu, th[0], th[1]) - gp
        r = dg - pred
        active = np.isfinite(r) & (pol != 0) & (np.abs(pred - mu) <= 1e-9 * np.abs(th[1])) & (gp >= th[0]) & (gp <= th[1])
    a, b = r[:, :-1], r[:, 1:]
    pair = active[:, :-1] & active[:, 1:] & (pol[:, :-1] == pol[:, 1:])
    ab = np.where(pair, a * b, 0.0)
    npair = int(pair.sum())
    ra = np.where(active, r, 0.0)
    n_act = int(active.sum())
    read_var = max(0.0, -float(ab.sum()) / npair) if npair else 0.0
    ff.read_num, ff.read_den = -float(ab.sum()), npair
    ff.c2c_num = float(np.sum(ra ** 2)) - 2 * n_act * read_var
    ff.c2c_den = float(np.sum(np.where(active, mu, 0.0) ** 2))
    if npair:
        aa = float(np.sum(np.where(pair, a * a, 0.0)))
        bb = float(np.sum(np.where(pair, b * b, 0.0)))
        ff.lag1 = float(ab.sum() / math.sqrt(aa * bb)) if aa > 0 and bb > 0 else float("nan")


def c2c_of(fits) -> float:
    num = sum(f.c2c_num for f in fits)
    den = sum(f.c2c_den for f in fits)
    return math.sqrt(max(num, 0.0) / den) if den > 0 else 0.0


def read_noise_of(fits) -> float:
    num = sum(f.read_num for f in fits)
    den = sum(f.read_den for f in fits)
    return math.sqrt(max(num, 0.0) / den) if den > 0 else 0.0


# ---------------------------------------------------------------------------- goodness


def trace_model(family: str, thetas: np.ndarray, tr: Traces) -> np.ndarray:
    """The mean law integrated open-loop from each cycle's first read: (device, cycle, read)."""
    th = np.nan_to_num(thetas)[:, :, None]  # (device, 6, 1)
    g = np.full(tr.g.shape, np.nan)
    cur = tr.g[:, :, 0].copy()
    g[:, :, 0] = cur
    code = FAMILY_CODES[family]
    for k in range(1, tr.g.shape[2]):
        pol = tr.pol[:, :, k]
        args = (th[:, 0], th[:, 1], th[:, 2], th[:, 3], th[:, 4], th[:, 5])
        with np.errstate(invalid="ignore"):
            up = mean_step_np(code, 1, cur, *args)
            dn = mean_step_np(code, -1, cur, *args)
        mu = np.where(pol > 0, up, np.where(pol < 0, dn, 0.0))
        cur = np.clip(cur + mu, th[:, 0], th[:, 1])
        cur = np.where(np.isfinite(tr.g[:, :, k]), cur, np.nan)
        g[:, :, k] = cur
        cur = np.where(np.isfinite(cur), cur, tr.g[:, :, k])
    return g


def r2_trace(meas: np.ndarray, model: np.ndarray):
    """R² per device and pooled (each device around its own mean)."""
    ok = np.isfinite(meas) & np.isfinite(model)
    res = np.where(ok, meas - model, 0.0)
    mean = np.nanmean(np.where(ok, meas, np.nan), axis=(1, 2), keepdims=True)
    tot = np.where(ok, meas - mean, 0.0)
    ss_res, ss_tot = (res ** 2).sum(axis=(1, 2)), (tot ** 2).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        per = 1.0 - ss_res / ss_tot
    return per, float(1.0 - ss_res.sum() / ss_tot.sum())


def r2_steps(family: str, thetas: np.ndarray, dds: list[DeviceData]):
    """R² of the mean step (look-up tables), per device and pooled (around each polarity's mean)."""
    res_all, tot_all, per = 0.0, 0.0, []
    for th, dd in zip(thetas, dds):
        res = dd.dg - predict(family, np.nan_to_num(th), dd.g, dd.pol)
        tot = dd.dg - np.where(dd.pol > 0, dd.dg[dd.pol > 0].mean(), dd.dg[dd.pol < 0].mean())
        per.append(1.0 - np.sum(res ** 2) / np.sum(tot ** 2))
        res_all += np.sum(res ** 2)
        tot_all += np.sum(tot ** 2)
    return np.array(per), float(1.0 - res_all / tot_all)


# ----------------------------------------------------------------------------- population


def population(est: np.ndarray, se: np.ndarray, names: tuple[str, ...]):
    """Mean and device-to-device std (estimation noise removed) of every parameter; correlations."""
    nd = est.shape[0]
    pop, unc = {}, {}
    idx = [PARAMS.index(n) for n in names]
    for n, i in zip(names, idx):
        v, e = est[:, i], se[:, i]
        mean = float(np.mean(v))
        raw_var = float(np.var(v, ddof=1)) if nd > 1 else 0.0
        ok = np.all(np.isfinite(e)) and np.all(e < 0.5 * max(abs(mean), 1e-300))
        var = max(0.0, raw_var - float(np.mean(e ** 2))) if ok else raw_var
        pop[n] = specmod.Stat(mean, math.sqrt(var))
        sem = math.sqrt(raw_var / nd) if nd > 1 else float(e[0])
        unc[n] = {"se_mean": _num(sem), "se_device_median": _num(float(np.median(e))),
                  "identified": bool(ok)}
    corr = None
    if nd >= 3:
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.corrcoef(est[:, idx].T)
        m = np.nan_to_num(m)
        np.fill_diagonal(m, 1.0)
        corr = {"names": list(names), "matrix": [[_num(x) for x in row] for row in m]}
    return pop, unc, corr


def _num(v) -> float:
    v = float(v)
    return float(f"{v:.6g}") if math.isfinite(v) else (float("inf") if v > 0 else float("nan"))


# ------------------------------------------------------------------------------ fit all


@dataclass
class FitResult:
    data: Traces | LutSet
    dds: list
    fits: dict                  # family -> list[FamilyFit] (per device)
    chosen: str
    chosen_by: str
    r2: dict                    # family -> pooled R²
    r2_dev: dict                # family -> (device,) R²
    r2_kind: str
    spec: specmod.DeviceSpec
    metrics: dict
    models: dict = field(default_factory=dict)  # family -> model trace (Traces input)


def fit_data(data: Traces | LutSet, *, family: str = "auto", source: str = "", keep_table: bool = True,
             bootstrap: int = 0, seed: int = 0, compare: bool = True) -> FitResult:
    """Fit every family (``compare=False`` with a named family: that family only) and choose one."""
    if family != "auto" and family not in FIT_FAMILIES:
        raise InputError("--family", f"got {family!r}, expected auto or one of {', '.join(FIT_FAMILIES)}")
    dds = device_data(data)
    for name, dd in zip(data.devices, dds):
        for s, word in ((1, "potentiation (+1)"), (-1, "depression (-1)")):
            if np.count_nonzero(dd.pol == s) < 2:
                raise InputError(f"{data.source}: device {name}", f"fewer than 2 {word} steps, expected at least 2 per polarity")
    fams = FIT_FAMILIES if (compare or family == "auto") else (family,)
    from .. import progress

    fits = {f: [] for f in fams}
    with progress.bar(f"fit {len(dds)} devices x {len(fams)} families", total=len(dds) * len(fams)) as bar:
        for f in fams:
            for dd in dds:
                fits[f].append(fit_family(f, dd, bootstrap=bootstrap, seed=seed))
                bar.advance()
    r2, r2_dev, models = {}, {}, {}
    is_trace = isinstance(data, Traces)
    for f in fams:
        th = np.array([x.theta for x in fits[f]])
        if is_trace:
            models[f] = trace_model(f, th, data)
            r2_dev[f], r2[f] = r2_trace(data.g, models[f])
        else:
            r2_dev[f], r2[f] = r2_steps(f, th, dds)
    bic = {f: sum(x.bic for x in fits[f]) for f in fams}
    aic = {f: sum(x.aic for x in fits[f]) for f in fams}
    chosen = min(fams, key=lambda f: bic[f]) if family == "auto" else family
    chosen_by = "lowest BIC" if family == "auto" else "user (--family)"
    cf = fits[chosen]
    for x in cf:
        ss_uncertainty(x)
    est = np.array([x.theta for x in cf])
    se = np.array([x.se for x in cf])
    names = specmod.PARAMS_BY_FAMILY[chosen]
    pop, unc, corr = population(est, se, names)
    c2c = c2c_of(cf)
    rn = read_noise_of(cf) if is_trace else 0.0
    lag1 = [x.lag1 for x in cf]
    families = {f: {"aic": _num(aic[f]), "bic": _num(bic[f]), "r2": _num(r2[f]),
                    "rmse_step_S": _num(math.sqrt(sum(x.rss for x in fits[f]) / sum(x.n for x in fits[f])))}
                for f in fams}
    r2_kind = "trace" if is_trace else "mean step per bin"
    fit_info = {"chosen_by": chosen_by, "input": "long-form table" if is_trace else "look-up tables",
                "r2_of": r2_kind, "uncertainty": f"bootstrap ({bootstrap} resamples)" if bootstrap else "covariance",
                "units": "S" if is_trace else "S (look-up tables read as siemens, as CrossSim does)",
                "lag1_corr_mean": _num(np.nanmean(lag1)) if is_trace else None,
                "c2c_std_by_family": {f: _num(c2c_of(fits[f])) for f in fams}}
    if is_trace:
        fit_info["read_noise_S_by_family"] = {f: _num(read_noise_of(fits[f])) for f in fams}
    table = {"source": source or data.source} if (not is_trace and keep_table) else None
    raw = specmod.DeviceSpec(model=chosen, population=pop, c2c_std=c2c, read_noise_S=rn, source=source or data.source,
                             devices=len(dds), correlations=corr, table=table,
                             extra={"families": families, "uncertainty": unc, "fit": fit_info}).to_dict()
    spec = specmod.from_dict(json.loads(json.dumps(raw)), "fitted device")
    metrics = {"family": chosen, "chosen_by": chosen_by, "devices": len(dds), "input": fit_info["input"],
               "r2_of": r2_kind, "r2": {f: _num(r2[f]) for f in fams}, "bic": {f: _num(bic[f]) for f in fams},
               "c2c_std": _num(c2c), "read_noise_S": _num(rn),
               "lag1_corr": _num(np.nanmean(lag1)) if is_trace else None}
    return FitResult(data=data, dds=dds, fits=fits, chosen=chosen, chosen_by=chosen_by, r2=r2, r2_dev=r2_dev,
                     r2_kind=r2_kind, spec=spec, metrics=metrics, models=models)


# ------------------------------------------------------------------------------- outputs


def to_dataset(res: FitResult):
    """fit.zarr content: per-device estimates, residuals, traces and laws (for fig2)."""
    import xarray as xr

    nd = len(res.dds)
    fams = list(res.fits)
    est = np.array([[x.theta for x in res.fits[f]] for f in fams]).transpose(1, 0, 2)
    se = np.array([[x.se for x in res.fits[f]] for f in fams]).transpose(1, 0, 2)
    per = lambda attr: np.array([[getattr(x, attr) for x in res.fits[f]] for f in fams]).T  # noqa: E731
    c2c = np.array([[c2c_of([x]) for x in res.fits[f]] for f in fams]).T
    rn = np.array([[read_noise_of([x]) for x in res.fits[f]] for f in fams]).T
    units = {"units": "S for *_S parameters, 1 for gamma_*"}
    ds = xr.Dataset(
        {"estimate": (("device", "family", "param"), est, {**units, "long_name": "per-device least-squares estimate"}),
         "stderr": (("device", "family", "param"), se, {**units, "long_name": "standard error (inf: not identified; NaN: not computed, families not chosen)"}),
         "rss": (("device", "family"), per("rss"), {"units": "S2"}),
         "n_points": (("device", "family"), per("n"), {"units": "1"}),
         "aic": (("device", "family"), per("aic"), {"units": "1"}),
         "bic": (("device", "family"), per("bic"), {"units": "1"}),
         "r2": (("device", "family"), np.array([res.r2_dev[f] for f in fams]).T, {"units": "1", "of": res.r2_kind}),
         "c2c_std": (("device", "family"), c2c, {"units": "1", "long_name": "relative std of one pulse's step"}),
         "read_noise_S": (("device", "family"), rn, {"units": "S"}),
         "lag1_corr": (("device", "family"), per("lag1"), {"units": "1", "long_name": "lag-1 correlation of step residuals inside ramps"}),
         "r2_total": (("family",), np.array([res.r2[f] for f in fams]), {"units": "1", "of": res.r2_kind}),
         "bic_total": (("family",), np.array([sum(x.bic for x in res.fits[f]) for f in fams]), {"units": "1"}),
         "aic_total": (("family",), np.array([sum(x.aic for x in res.fits[f]) for f in fams]), {"units": "1"})},
        coords={"device": list(res.data.devices), "family": fams, "param": list(PARAMS)},
        attrs={"chosen_family": res.chosen, "chosen_by": res.chosen_by, "source": res.spec.source,
               "input": res.metrics["input"], "r2_of": res.r2_kind, "c2c_std": res.spec.c2c_std,
               "read_noise_S": res.spec.read_noise_S})
    # step points (a prefix per device) with the chosen family's residuals
    npt = min(MAX_POINTS, max(len(dd.g) for dd in res.dds))
    pg, pdg, ppol, pres, psd = (np.full((nd, npt), np.nan) for _ in range(5))
    for d, (dd, ff) in enumerate(zip(res.dds, res.fits[res.chosen])):
        m = min(npt, len(dd.g))
        pg[d, :m], pdg[d, :m], ppol[d, :m] = dd.g[:m], dd.dg[:m], dd.pol[:m]
        pres[d, :m] = dd.dg[:m] - predict(res.chosen, np.nan_to_num(ff.theta), dd.g[:m], dd.pol[:m])
        if dd.spread is not None:
            psd[d, :m] = dd.spread[:m]
    ds["point_g"] = (("device", "point"), pg, {"units": "S", "long_name": "conductance before the step"})
    ds["point_dg"] = (("device", "point"), pdg, {"units": "S", "long_name": "measured step (LUT: mean step of the bin)"})
    ds["point_polarity"] = (("device", "point"), ppol, {"units": "1"})
    ds["point_residual"] = (("device", "point"), pres, {"units": "S", "family": res.chosen})
    ds["point_spread"] = (("device", "point"), psd, {"units": "S", "long_name": "LUT: std of the step in the bin"})
    # fitted laws on a grid of each device's conductance range
    ng = 100
    grid = np.array([np.linspace(dd.g.min(), dd.g.max(), ng) for dd in res.dds])
    lu = np.zeros((nd, len(fams), ng))
    ld = np.zeros((nd, len(fams), ng))
    for j, f in enumerate(fams):
        for d, ff in enumerate(res.fits[f]):
            th = np.nan_to_num(ff.theta)
            lu[d, j] = predict(f, th, grid[d], np.ones(ng))
            ld[d, j] = predict(f, th, grid[d], -np.ones(ng))
    ds["grid_g"] = (("device", "grid"), grid, {"units": "S"})
    ds["law_up"] = (("device", "family", "grid"), lu, {"units": "S", "long_name": "fitted mean step of a potentiation pulse"})
    ds["law_down"] = (("device", "family", "grid"), ld, {"units": "S", "long_name": "fitted mean step of a depression pulse"})
    if isinstance(res.data, Traces):
        tc = min(TRACE_CYCLES, res.data.g.shape[1])
        ds["trace_g"] = (("device", "trace_cycle", "read"), res.data.g[:, :tc], {"units": "S", "long_name": "measured conductance"})
        ds["trace_model"] = (("device", "trace_cycle", "read"), res.models[res.chosen][:, :tc],
                             {"units": "S", "long_name": "chosen family's mean law integrated from the cycle's first read"})
        ds["trace_polarity"] = (("device", "trace_cycle", "read"), res.data.pol[:, :tc].astype(np.int8), {"units": "1"})
    return ds


def write_outputs(res: FitResult, out: Path) -> None:
    from ..store import write_dataset

    ds = to_dataset(res)
    with atomic_path(Path(out), is_dir=True, defer_signals=True) as tmp:
        tmp = Path(tmp)
        (tmp / "device.yaml").write_text(specmod.dump(res.spec))
        write_dataset(ds, tmp / "fit.zarr")
        (tmp / "metrics.json").write_text(json.dumps(res.metrics, indent=2, sort_keys=True) + "\n")


def fit_command(p, *, data: Path | None = None, family: str | None = None, out: Path = Path("results/device")) -> FitResult:
    """CLI entry: read (or synthesise), fit, write ``out`` atomically."""
    out = Path(out)
    check_output_path(out, want_dir=True)
    family = family or p.device.family
    if family != "auto" and family not in FIT_FAMILIES:
        raise InputError("--family", f"got {family!r}, expected auto or one of {', '.join(FIT_FAMILIES)}")
    src = str(data) if data is not None else p.characterization.source
    if data is None and src == "synth":
        from .synth import synthesize

        sy = p.characterization.synth
        obj, _ = synthesize(specmod.read(sy.device), sy.devices, sy.cycles, sy.pulses, sy.seed)
        src = f"synth:{sy.device}"
    else:
        obj = read_characterization(Path(src))
    res = fit_data(obj, family=family, source=src, keep_table=p.device.keep_table, bootstrap=p.device.bootstrap)
    write_outputs(res, out)
    return res
