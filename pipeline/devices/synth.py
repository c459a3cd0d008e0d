"""Synthetic characterization data (DESIGN §1.5): pulse trains from any device description.

Each device gets its own parameters drawn once from the population of ``device.yaml`` (normal
around the mean with the device-to-device std, with the given correlations; truncated so that
steps stay positive and ``g_max > g_min``; NumPy ``SeedSequence`` generator). Every cycle is one
read before the first pulse (polarity 0, pulse 0), ``P`` potentiation pulses then ``P``
depression pulses (pulse 1 … 2P), a read after every pulse. Pulses go through the one pulse law
(:func:`pipeline.devices.law.apply_pulses`, cycle-to-cycle noise included; the ``table`` family
samples the look-up tables pulse by pulse); each read adds Gaussian read noise of std
``read_noise_S``. All noise comes from the counter-based RNG (streams ``STREAM_PULSE``,
``STREAM_SYNTH_READ``), so a table is a pure function of (device file, sizes, seed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit

from ..rng import STREAM_PULSE, STREAM_SYNTH_READ, key4, normal
from . import spec as specmod
from .families import FILE_NAMES
from .law import apply_pulses, empty_tables
from .readers import Traces, read_lut_folder

PARAMS = FILE_NAMES  # ("g_min_S", ..., "gamma_down"): device.yaml names, from the family registry
D2D_STREAM = 0xD2D


def draw_devices(spec: specmod.DeviceSpec, n: int, seed: int, tables=None) -> dict[str, np.ndarray]:
    """Per-device parameters (arrays of length n) drawn from the population of ``spec``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), D2D_STREAM]))
    names = [k for k in PARAMS if k in spec.population]
    mean = np.array([spec.population[k].mean for k in names])
    std = np.array([spec.population[k].std for k in names])
    corr = np.eye(len(names))
    if spec.correlations:
        idx = {k: i for i, k in enumerate(names)}
        cn, cm = spec.correlations["names"], np.asarray(spec.correlations["matrix"], float)
        for a, na in enumerate(cn):
            for b, nb in enumerate(cn):
                if na in idx and nb in idx:
                    corr[idx[na], idx[nb]] = cm[a, b]
    cov = corr * np.outer(std, std)
    z = rng.multivariate_normal(np.zeros(len(names)), cov, size=n, method="eigh") if std.any() else np.zeros((n, len(names)))
    vals = mean + z
    out = {k: vals[:, i] for i, k in enumerate(names)}
    for k in ("dg_up_S", "dg_down_S"):
        out[k] = np.maximum(out[k], 0.05 * spec.population[k].mean)
    for k in ("gamma_up", "gamma_down"):
        if k in out:
            out[k] = np.maximum(out[k], 0.0)
        else:
            out[k] = np.zeros(n)
    rng_mean = spec.mean("g_max_S") - spec.mean("g_min_S")
    out["g_min_S"] = np.maximum(out["g_min_S"], 0.0)
    out["g_max_S"] = np.maximum(out["g_max_S"], out["g_min_S"] + 0.2 * rng_mean)
    if tables is not None:  # the table family: each device is one measured table (cycled)
        t = np.arange(n) % tables.n_devices
        nb = tables.tab_nb[t]
        out["g_min_S"] = tables.tab_g[t, 0].copy()
        out["g_max_S"] = tables.tab_g[t, nb - 1].copy()
        out["table"] = t
    return out


@njit(cache=True)
def _synth_kernel(family, gmin, gmax, dgu, dgd, gu, gd, tix, c2c, read_sd, seed, cycles, pulses,
                  tab_g, tab_nb, tab_p, tab_np, tab_up, tab_down):
    nd = gmin.shape[0]
    nr = 2 * pulses + 1
    out = np.empty((nd, cycles, nr))
    for d in range(nd):
        g = gmin[d] + 0.5 * (gmax[d] - gmin[d])
        for c in range(cycles):
            for k in range(nr):
                if k > 0:
                    pol = 1 if k <= pulses else -1
                    key = key4(seed, STREAM_PULSE, c * nr + k, d)
                    g = apply_pulses(g, 1, pol, family, gmin[d], gmax[d], dgu[d], dgd[d], gu[d], gd[d], c2c,
                                     key, tix[d], tab_g, tab_nb, tab_p, tab_np, tab_up, tab_down)
                r = g
                if read_sd > 0.0:
                    r = g + read_sd * normal(key4(seed, STREAM_SYNTH_READ, c * nr + k, d), 0)
                out[d, c, k] = r if r > 0.0 else 0.0
    return out


def synthesize(spec: specmod.DeviceSpec, devices: int, cycles: int, pulses: int, seed: int):
    """Synthesise pulse trains in memory → (Traces, truth dict)."""
    tables = None
    if spec.model == "table":
        tables = read_lut_folder(Path(spec.table["source"]))
        tab = tables.arrays()
    else:
        tab = empty_tables()
    par = draw_devices(spec, devices, seed, tables)
    tix = par.get("table", np.zeros(devices, np.int64)).astype(np.int64)
    g = _synth_kernel(spec.family_code, par["g_min_S"], par["g_max_S"], par["dg_up_S"], par["dg_down_S"],
                      par["gamma_up"], par["gamma_down"], tix, float(spec.c2c_std), float(spec.read_noise_S),
                      int(seed), int(cycles), int(pulses), *tab)
    nr = 2 * pulses + 1
    pol = np.zeros((devices, cycles, nr), np.int8)
    pol[:, :, 1:pulses + 1], pol[:, :, pulses + 1:] = 1, -1
    pulse = np.broadcast_to(np.arange(nr, dtype=float), g.shape).copy()
    tr = Traces(source="synth", devices=[str(i) for i in range(devices)], g=g, pol=pol, pulse=pulse)
    names = specmod.PARAMS_BY_FAMILY[spec.model] if spec.model != "table" else ("g_min_S", "g_max_S")
    truth = {
        "model": spec.model, "c2c_std": float(spec.c2c_std), "read_noise_S": float(spec.read_noise_S),
        "devices": int(devices), "cycles": int(cycles), "pulses": int(pulses), "seed": int(seed),
        "parameters": {k: [float(v) for v in par[k]] for k in names},
        "drawn": {k: {"mean": float(np.mean(par[k])), "std": float(np.std(par[k], ddof=1)) if devices > 1 else 0.0}
                  for k in names},
    }
    if tables is not None:
        truth["table"] = {"source": str(spec.table["source"]), "device_table": [int(t) for t in tix]}
    return tr, truth


def traces_to_columns(tr: Traces) -> dict[str, np.ndarray]:
    """Long-form columns (one row per read) of regular traces."""
    nd, nc, nr = tr.g.shape
    d, c, _ = np.meshgrid(np.arange(nd), np.arange(nc), np.arange(nr), indexing="ij")
    ok = np.isfinite(tr.g).ravel()
    names = np.array(tr.devices)
    return {"device": names[d.ravel()[ok]], "cycle": c.ravel()[ok], "pulse": tr.pulse.ravel()[ok].astype(np.int64),
            "polarity": tr.pol.ravel()[ok].astype(np.int64), "conductance_S": tr.g.ravel()[ok]}
