"""Least squares of the mean step (DESIGN §1.5): the per-device points, the model, and the fit of
one family's mean law to the steps (look-up tables; the starting point of the trace likelihood).

scipy least squares of the measured step against ``clip(G + μ(G), G_min, G_max) - G``; covariance
``(JᵀJ)⁻¹`` sandwich or bootstrap over points; the write (c2c) / read noise split from the lag-1
covariance of the residuals. Starting points, bounds and free-parameter counts come from the family
registry (:mod:`pipeline.devices.families`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from ..families import BY_NAME, FILE_NAMES, FIT_NAMES, REGISTRY, start_stats
from ..law import FAMILY_CODES, mean_step_np
from ..readers import LutSet, Traces

FIT_FAMILIES = FIT_NAMES
PARAMS = FILE_NAMES
N_FREE = {f: BY_NAME[f].n_free for f in FIT_FAMILIES}
GAMMA_BOUNDS = {f.name: f.shape_bounds for f in REGISTRY if f.fittable and f.shape_bounds is not None}
assert set(N_FREE) == set(FIT_FAMILIES) and all(k in (4, 6) for k in N_FREE.values()), N_FREE
assert all(f in GAMMA_BOUNDS for f in FIT_FAMILIES if N_FREE[f] == 6), "a 6-parameter family lacks bounds"
assert all(BY_NAME[f].starts is not None for f in FIT_FAMILIES), "a fittable family lacks starting points"


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


def step_law(family: str, theta, g, pol):
    """Unclipped mean step μ(G) of the family's law for polarities ``pol``."""
    gmin, gmax, dgu, dgd, gu, gd = theta
    code = FAMILY_CODES[family]
    up = mean_step_np(code, 1, g, gmin, gmax, dgu, dgd, gu, gd)
    dn = mean_step_np(code, -1, g, gmin, gmax, dgu, dgd, gu, gd)
    return np.where(pol > 0, up, dn)


def predict(family: str, theta, g, pol):
    """Mean step including the clip at the bounds: clip(G + μ(G), G_min, G_max) - G."""
    return np.clip(g + step_law(family, theta, g, pol), theta[0], theta[1]) - g


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




def _starts(family: str, dd: DeviceData, s: float):
    """Starting points (scaled units) for the least squares of one family (from the registry)."""
    return BY_NAME[family].starts(start_stats(dd.g / s, dd.dg / s, dd.pol))


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
        mu = step_law(family, th, gp, pol)
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
