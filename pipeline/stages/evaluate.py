"""The evaluate stage (``ecram evaluate``): runs → one labelled xarray dataset (dims algorithm,
seed, epoch) and metrics (DESIGN §2.2).

``eval.zarr`` holds every run's per-epoch metrics and ledger, the probes (in-situ vs ideal errors),
the confusion matrices, and the conductance trajectories of the first seed of each hardware
algorithm, so the figures never open a run store or re-run anything.
``metrics.json`` holds the final accuracies (mean and sd over seeds) per algorithm;
``curves/<algorithm>.csv`` the mean learning curves for ``dvc plots``.
"""

from __future__ import annotations

# params sections this stage reads (dvc.yaml declares them: tested)
SECTIONS = ("train", "evaluate")

import json
from pathlib import Path

import numpy as np
import xarray as xr

from .. import fsutil, progress, store
from ..errors import InputError
from ..training.variants import LABELS as ALGORITHMS
from ..training.metrics import NAMES as PER_EPOCH  # every per-epoch metric and ledger count of a run


def find_runs(runs: Path, algorithms: list[str] | None, seeds: list[int] | None) -> dict[tuple[str, int], Path]:
    """Run stores under ``runs`` named ``<algorithm>-<seed>/run.zarr``; with algorithms/seeds
    given, every combination must be present."""
    runs = Path(runs)
    if not runs.is_dir():
        raise InputError(str(runs), "runs folder not found (run: python -m pipeline train ...)")
    found = {}
    for d in sorted(runs.iterdir()):
        if not (d / "run.zarr").exists():
            continue
        alg, _, seed = d.name.rpartition("-")
        if alg in ALGORITHMS and seed.isdigit():
            found[(alg, int(seed))] = d / "run.zarr"
    if algorithms is not None and seeds is not None:
        missing = [f"{a}-{s}" for a in algorithms for s in seeds if (a, s) not in found]
        if missing:
            raise InputError(str(runs), f"missing runs: {', '.join(missing)}")
        found = {k: v for k, v in found.items() if k[0] in algorithms and k[1] in seeds}
    if not found:
        raise InputError(str(runs), "no run stores (<algorithm>-<seed>/run.zarr) found")
    return found


def collect(found: dict[tuple[str, int], Path]) -> xr.Dataset:
    algs = [a for a in ALGORITHMS if any(k[0] == a for k in found)]
    seeds = sorted({k[1] for k in found})
    first = store.open_dataset(next(iter(found.values())), what="run store")
    E = first.sizes["epoch"]
    data = {v: np.full((len(algs), len(seeds), E), np.nan) for v in PER_EPOCH}
    n_probe, n_units = first.sizes["probe"], first.sizes["unit"]
    k = first.sizes["true_class"]
    probe_ideal = np.full((len(algs), len(seeds), E, n_probe, n_units), np.nan)
    probe_insitu = np.full_like(probe_ideal, np.nan)
    conf = np.zeros((len(algs), len(seeds), k, k), np.int64)
    held = np.zeros(len(algs), np.int64)
    rps = np.zeros(len(algs), np.int64)
    traj: dict[str, xr.Dataset] = {}
    attrs = {}
    for (alg, seed), path in found.items():
        ds = store.open_dataset(path, what="run store")
        if ds.sizes["epoch"] != E:
            raise InputError(str(path), f"has {ds.sizes['epoch'] - 1} epochs, the other runs {E - 1}")
        i, j = algs.index(alg), seeds.index(seed)
        for v in PER_EPOCH:
            data[v][i, j] = ds[v].values
        probe_ideal[i, j] = ds.probe_ideal.values
        probe_insitu[i, j] = ds.probe_insitu.values
        conf[i, j] = ds.confusion.values
        held[i] = ds.attrs["values_held"]
        rps[i] = ds.attrs["reads_per_sample"]
        attrs = {k: ds.attrs[k] for k in ("sizes", "arrays", "params", "samples_per_epoch", "test_samples")}
        if seed == seeds[0] and not ds.attrs["float"]:
            keep = [v for v in ds.data_vars if v.startswith(("G_", "pulses_up_", "pulses_down_"))]
            traj[alg] = ds[keep]
    coords = {"algorithm": algs, "seed": seeds, "epoch": first.epoch.values}
    out = xr.Dataset({v: (("algorithm", "seed", "epoch"), data[v], dict(first[v].attrs)) for v in PER_EPOCH},
                     coords=coords)
    out["probe_ideal"] = (("algorithm", "seed", "epoch", "probe", "unit"), probe_ideal, dict(first.probe_ideal.attrs))
    out["probe_insitu"] = (("algorithm", "seed", "epoch", "probe", "unit"), probe_insitu, dict(first.probe_insitu.attrs))
    out["unit_layer"] = (("unit",), first.unit_layer.values)
    out["confusion"] = (("algorithm", "seed", "true_class", "predicted_class"), conf, dict(first.confusion.attrs))
    out["values_held"] = (("algorithm",), held, {"units": "values", "description": "analog values held between phases"})
    out["reads_per_sample"] = (("algorithm",), rps, {"units": "reads"})
    if traj:
        talgs = [a for a in algs if a in traj]
        out = out.assign_coords(algorithm_hw=talgs, snapshot=traj[talgs[0]].snapshot.values)
        for v in traj[talgs[0]].data_vars:
            arrs = np.stack([traj[a][v].values for a in talgs])
            dims = ("algorithm_hw",) + tuple(traj[talgs[0]][v].dims)
            out[f"traj_{v}"] = (dims, arrs, dict(traj[talgs[0]][v].attrs))
    out.attrs.update(attrs)
    return out


def metrics(ds: xr.Dataset) -> dict:
    last = ds.isel(epoch=-1)
    m = {"epochs": int(ds.epoch.values[-1]), "seeds": [int(s) for s in ds.seed.values], "algorithms": {}}
    for alg in ds.algorithm.values:
        a = last.sel(algorithm=alg)
        rec = {}
        for v in ("test_acc", "train_acc_eval", "test_loss", "train_loss"):
            vals = a[v].values
            rec[f"{v}_mean"] = round(float(np.nanmean(vals)), 6)
            rec[f"{v}_sd"] = round(float(np.nanstd(vals, ddof=1)) if len(vals) > 1 else 0.0, 6)
        full = ds.sel(algorithm=alg)
        rec["pulses_total_mean"] = int(float((full.pulses_up + full.pulses_down).sum("epoch").mean()))
        rec["energy_J_mean"] = float(f"{float(full.energy_J.sum('epoch').mean()):.6g}")
        rec["values_held"] = int(ds.values_held.sel(algorithm=alg))
        rec["reads_per_sample"] = int(ds.reads_per_sample.sel(algorithm=alg))
        m["algorithms"][str(alg)] = rec
    return m


def write_curves(ds: xr.Dataset, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for alg in ds.algorithm.values:
        a = ds.sel(algorithm=alg)
        lines = ["epoch,test_acc,test_acc_sd,train_loss,test_loss"]
        for e in range(ds.sizes["epoch"]):
            ae = a.isel(epoch=e)
            sd = float(np.nanstd(ae.test_acc.values, ddof=1)) if ds.sizes["seed"] > 1 else 0.0
            tl = float(np.nanmean(ae.train_loss.values)) if e > 0 else float(np.nanmean(ae.train_loss_eval.values))
            lines.append(f"{int(ae.epoch)},{float(np.nanmean(ae.test_acc.values)):.6f},{sd:.6f},{tl:.6f},"
                         f"{float(np.nanmean(ae.test_loss.values)):.6f}")
        (folder / f"{alg}.csv").write_text("\n".join(lines) + "\n")


def run(p, *, runs: Path, out: Path) -> None:
    """``ecram evaluate``: every run under ``runs`` into ``out`` (eval.zarr, metrics.json, curves/)."""
    found = find_runs(runs, list(p.train.algorithms), list(p.train.seeds))
    ds = collect(found)
    m = metrics(ds)
    with fsutil.atomic_path(out, defer_signals=True) as tmp:
        store.write_dataset(ds, tmp / "eval.zarr")
        (tmp / "metrics.json").write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
        write_curves(ds, tmp / "curves")
    for alg, rec in m["algorithms"].items():
        progress.log(f"{alg:24s} test accuracy {rec['test_acc_mean']:.3f} ± {rec['test_acc_sd']:.3f}")
