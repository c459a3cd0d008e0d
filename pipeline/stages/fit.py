"""Stage ``fit`` (DESIGN §1.5, §2.2): read (or synthesise) characterization data, fit the device
families (:mod:`pipeline.devices.fit`), write ``--out`` atomically.

Outputs (in ``out``): ``device.yaml`` (schema of :mod:`pipeline.devices.spec` plus ``families``,
``uncertainty``, ``fit``), ``fit.zarr`` (per-device estimates and errors, residuals, traces and
laws for fig2), ``metrics.json``.
"""

from __future__ import annotations

# params sections this stage reads (dvc.yaml declares them: tested)
SECTIONS = ("characterization", "device")

import json
from pathlib import Path

import numpy as np

from ..devices import spec as specmod
from ..devices.fit import FIT_FAMILIES, PARAMS, FitResult, c2c_of, fit_data, predict, read_noise_of
from ..devices.readers import Traces, read_characterization
from ..errors import InputError
from ..fsutil import atomic_path, check_output_path

MAX_POINTS = 4000  # steps per device kept in fit.zarr for the figure
TRACE_CYCLES = 4


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


def run(p, *, data: Path | None = None, family: str | None = None, out: Path = Path("results/device")) -> FitResult:
    """CLI entry: read (or synthesise), fit, write ``out`` atomically."""
    out = Path(out)
    check_output_path(out, want_dir=True)
    family = family or p.device.family
    if family != "auto" and family not in FIT_FAMILIES:
        raise InputError("--family", f"got {family!r}, expected auto or one of {', '.join(FIT_FAMILIES)}")
    src = str(data) if data is not None else p.characterization.source
    if data is None and src == "synth":
        from ..devices.synth import synthesize

        sy = p.characterization.synth
        obj, _ = synthesize(specmod.read(sy.device), sy.devices, sy.cycles, sy.pulses, sy.seed)
        src = f"synth:{sy.device}"
    else:
        obj = read_characterization(Path(src))
    res = fit_data(obj, family=family, source=src, keep_table=p.device.keep_table, bootstrap=p.device.bootstrap)
    write_outputs(res, out)
    return res
