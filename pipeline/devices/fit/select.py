"""Fit every family to every device and choose one (DESIGN §1.5): goodness of fit, the population
summary (random-effects std, correlations), the family choice by BIC, and :class:`FitResult`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from ...errors import InputError
from .. import spec as specmod
from ..law import FAMILY_CODES, mean_step_np
from ..readers import LutSet, Traces
from .steps import FIT_FAMILIES, PARAMS, DeviceData, FamilyFit, _ls_fit, c2c_of, device_data, predict, read_noise_of
from .trace import _ss_fit, ss_uncertainty


def fit_family(family: str, dd: DeviceData, *, bootstrap: int = 0, seed: int = 0) -> FamilyFit:
    """Fit one family to one device: least squares of the steps (look-up tables; the starting point
    for traces), then for traces the maximum likelihood of the state-space model."""
    if dd.reads is None:
        return _ls_fit(family, dd, bootstrap=bootstrap, seed=seed)
    return _ss_fit(family, dd, _ls_fit(family, dd, tol=1e-5), bootstrap, seed)


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
        unc[n] = {"se_mean": _sig6_neginf_to_nan(sem), "se_device_median": _sig6_neginf_to_nan(float(np.median(e))),
                  "identified": bool(ok)}
    corr = None
    if nd >= 3:
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.corrcoef(est[:, idx].T)
        m = np.nan_to_num(m)
        np.fill_diagonal(m, 1.0)
        corr = {"names": list(names), "matrix": [[_sig6_neginf_to_nan(x) for x in row] for row in m]}
    return pop, unc, corr


def _sig6_neginf_to_nan(v) -> float:
    """v rounded to 6 significant digits; +inf stays inf, NaN and -inf become NaN (compare
    ``spec._sig6``, which keeps -inf)."""
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
    from ... import progress

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
    families = {f: {"aic": _sig6_neginf_to_nan(aic[f]), "bic": _sig6_neginf_to_nan(bic[f]), "r2": _sig6_neginf_to_nan(r2[f]),
                    "rmse_step_S": _sig6_neginf_to_nan(math.sqrt(sum(x.rss for x in fits[f]) / sum(x.n for x in fits[f])))}
                for f in fams}
    r2_kind = "trace" if is_trace else "mean step per bin"
    fit_info = {"chosen_by": chosen_by, "input": "long-form table" if is_trace else "look-up tables",
                "r2_of": r2_kind, "uncertainty": f"bootstrap ({bootstrap} resamples)" if bootstrap else "covariance",
                "units": "S" if is_trace else "S (look-up tables read as siemens, as CrossSim does)",
                "lag1_corr_mean": _sig6_neginf_to_nan(np.nanmean(lag1)) if is_trace else None,
                "c2c_std_by_family": {f: _sig6_neginf_to_nan(c2c_of(fits[f])) for f in fams}}
    if is_trace:
        fit_info["read_noise_S_by_family"] = {f: _sig6_neginf_to_nan(read_noise_of(fits[f])) for f in fams}
    table = {"source": source or data.source} if (not is_trace and keep_table) else None
    raw = specmod.DeviceSpec(model=chosen, population=pop, c2c_std=c2c, read_noise_S=rn, source=source or data.source,
                             devices=len(dds), correlations=corr, table=table,
                             extra={"families": families, "uncertainty": unc, "fit": fit_info}).to_dict()
    spec = specmod.from_dict(json.loads(json.dumps(raw)), "fitted device")
    metrics = {"family": chosen, "chosen_by": chosen_by, "devices": len(dds), "input": fit_info["input"],
               "r2_of": r2_kind, "r2": {f: _sig6_neginf_to_nan(r2[f]) for f in fams}, "bic": {f: _sig6_neginf_to_nan(bic[f]) for f in fams},
               "c2c_std": _sig6_neginf_to_nan(c2c), "read_noise_S": _sig6_neginf_to_nan(rn),
               "lag1_corr": _sig6_neginf_to_nan(np.nanmean(lag1)) if is_trace else None}
    return FitResult(data=data, dds=dds, fits=fits, chosen=chosen, chosen_by=chosen_by, r2=r2, r2_dev=r2_dev,
                     r2_kind=r2_kind, spec=spec, metrics=metrics, models=models)
