"""fig5_scaling: the approach scales to large and deep networks — final test accuracy on a real
dataset (optdigits) vs depth and width, progressive vs backprop on the devices and in float; the
progressive − backprop gap vs learning rate; accuracy vs the device non-idealities (number of
states, up/down asymmetry, cycle-to-cycle noise).

Draws from the sweep stores ``<sweeps>/{depth,width,lr,states,asymmetry,c2c}.zarr`` (written by
``python -m pipeline sweep NAME``, opened by the figures stage, which refuses a store with missing
regions unless it was put in place with ``--allow-incomplete`` or ``evaluate.allow_incomplete:
true``) and draws the panels whose store exists. Also writes ``fig5_scaling.json``: every plotted number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import caption, color, linestyle, lr_text, plt, save, save_json

NAME = "fig5_scaling"
CLAIM = ("the approach scales to large and deep networks: on {dataset}, progressive GD reaches the accuracy of "
         "backprop across depth, width and learning rate, and needs the same device specs (states, asymmetry, c2c noise).")
PANELS = (
    ("depth", "(a) accuracy vs depth", "hidden layers"),
    ("width", "(b) accuracy vs width (one hidden layer)", "hidden units"),
    ("lr", "(c) progressive − backprop gap vs learning rate", "learning rate η"),
    ("states", "(d) accuracy vs number of device states", "states (G_max − G_min)/ΔG_up"),
    ("asymmetry", "(e) accuracy vs up/down asymmetry", "ΔG_down / ΔG_up"),
    ("c2c", "(f) accuracy vs cycle-to-cycle noise", "c2c noise (relative std of a step)"),
)
LOG_X = {"width", "lr", "states", "asymmetry"}
INPUTS = ("sweeps",)
SWEEPS = tuple(name for name, _, _ in PANELS)  # the stores <sweeps>/<name>.zarr this figure reads


def _axis(ds):
    ax = ds.attrs["sweep"]["axes"]
    if len(ax) != 1:
        return None, None, None
    a = ax[0]
    return a["dim"], a["values"], a["labels"]


def _x_of(name: str, values: list) -> np.ndarray:
    if name == "depth":
        return np.array([len(v) if isinstance(v, list) else 1 for v in values], float)
    if name == "width":
        return np.array([v[0] if isinstance(v, list) else v for v in values], float)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, float)
    if all(isinstance(v, list) and len(v) == 1 for v in values):
        return np.array([v[0] for v in values], float)
    return np.arange(len(values), dtype=float)


def _stats(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd over the last axis (seeds), NaN-aware."""
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m = np.nanmean(a, axis=-1)
            sd = np.nanstd(a, axis=-1, ddof=1) if a.shape[-1] > 1 else np.zeros_like(m)
    return m, sd


def _line(ax, x, m, sd, alg, label=None):
    ax.errorbar(x, m, yerr=sd, color=color(alg), ls=linestyle(alg), marker="o", ms=3.5, lw=1.5, capsize=2.5,
                label=label or alg)


def _fitted_marker(name: str, device: dict) -> float | None:
    pop = (device or {}).get("population", {})
    try:
        if name == "states":
            return (pop["g_max_S"]["mean"] - pop["g_min_S"]["mean"]) / pop["dg_up_S"]["mean"]
        if name == "asymmetry":
            return pop["dg_down_S"]["mean"] / pop["dg_up_S"]["mean"]
        if name == "c2c":
            return float(device["c2c_std"])
    except (KeyError, TypeError, ZeroDivisionError):
        return None
    return None


def _r(v) -> float | None:
    return None if not np.isfinite(v) else float(round(float(v), 6))


def panel(ax, name: str, ds, numbers: dict) -> None:
    dim, values, labels = _axis(ds)
    if dim is None:
        ax.text(0.5, 0.5, f"{name}: expected a sweep over one key", ha="center", transform=ax.transAxes)
        return
    x = _x_of(name, values)
    final = ds.test_acc.isel(epoch=-1).transpose(dim, "algorithm", "seed")
    algs = [str(a) for a in ds.algorithm.values]
    rec: dict = {"x": labels, "key": ds.attrs["sweep"]["axes"][0]["key"]}
    if name == "lr":
        pairs = [("progressive", "backprop"), ("progressive-float", "backprop-float"),
                 ("progressive-held", "backprop")]
        for pa, pb in pairs:
            if pa in algs and pb in algs:
                gap = final.sel(algorithm=pa).values - final.sel(algorithm=pb).values
                m, sd = _stats(gap)
                _line(ax, x, m, sd, pa, f"{pa} − {pb}")
                rec[f"{pa} - {pb}"] = {"mean": [_r(v) for v in m], "sd": [_r(v) for v in sd]}
        ax.axhline(0.0, color="#999999", lw=0.8)
        ax.set_ylabel("Δ final test accuracy")
        for alg in algs:
            m, sd = _stats(final.sel(algorithm=alg).values)
            rec[alg] = {"mean": [_r(v) for v in m], "sd": [_r(v) for v in sd]}
    else:
        device_axis = name in ("states", "asymmetry", "c2c")
        for alg in algs:
            m, sd = _stats(final.sel(algorithm=alg).values)
            rec[alg] = {"mean": [_r(v) for v in m], "sd": [_r(v) for v in sd]}
            if device_axis and alg.endswith("-float"):
                ref = float(np.nanmean(m))
                ax.axhline(ref, color=color(alg), ls="--", lw=1.0, label=f"{alg} (no devices)")
                continue
            _line(ax, x, m, sd, alg)
        ax.set_ylabel("final test accuracy")
        fitted = _fitted_marker(name, ds.attrs.get("device"))
        if fitted is not None:
            ax.axvline(fitted, color="#888888", ls=":", lw=1.0, label=f"fitted device ({fitted:.3g})")
            rec["fitted_device"] = _r(fitted)
    if name in LOG_X and np.all(x > 0):
        ax.set_xscale("log")
    elif name == "c2c" and np.any(x == 0) and np.any(x > 0):
        ax.set_xscale("symlog", linthresh=float(np.min(x[x > 0])), linscale=0.5)
        ax.set_xlim(-0.05 * float(np.min(x[x > 0])), float(np.max(x)) * 1.3)
    ax.set_xticks(x, [f"{int(v)}" if name in ("depth", "width") else f"{v:g}" for v in x])
    ax.minorticks_off()
    if ds.diverged.values.any():
        rec["diverged"] = int(ds.diverged.values.sum())
        ax.text(0.02, 0.02, f"{rec['diverged']} runs diverged (NaN)", transform=ax.transAxes, fontsize=7, color="#aa0000")
    if not ds.done.values.all():
        rec["missing"] = int((~ds.done.values).sum())
        ax.text(0.02, 0.08, f"INCOMPLETE: {rec['missing']} tasks missing", transform=ax.transAxes, fontsize=7,
                color="#aa0000")
    ax.legend(fontsize=6.5, loc="best")
    numbers[name] = rec


def _produced_by(stores: dict) -> str:
    if not stores:
        return "no sweeps"
    ds = next(iter(stores.values()))
    sw = ds.attrs["sweep"]
    fixed = sw.get("set", {})
    net = ", ".join(f"{k.split('.')[-1]} {fixed[k]}" for k in ("network.activation", "network.output", "network.loss",
                                                               "network.hidden") if k in fixed)
    train = dict(ds.attrs.get("params", {}).get("train", {}))
    train.update({k.split(".", 1)[1]: v for k, v in fixed.items() if k.startswith("train.")})
    net += "; " + lr_text(train)
    n_train = ds.attrs.get("params", {}).get("dataset", {})
    dev = ds.attrs.get("device", {}) or {}
    grids = "; ".join(f"{n}: {', '.join(d.attrs['sweep']['axes'][0]['labels'])}" for n, d in stores.items()
                      if len(d.attrs["sweep"]["axes"]) == 1)
    return (f"profile {sw['profile']}; dataset {sw['dataset']} (max_train {fixed.get('dataset.max_train', n_train.get('max_train'))}, "
            f"max_test {fixed.get('dataset.max_test', n_train.get('max_test'))}); {sw['epochs']} epochs; seeds {sw['seeds']} "
            f"(mean ± sd); {net}; device {dev.get('model')} from {dev.get('source')} (c2c {dev.get('c2c_std')}); "
            f"grids {grids}. Final-epoch test accuracy by hardware inference; params.yaml sweeps:, python -m pipeline sweep NAME.")


def make(out: Path, data: dict, fp) -> list[Path]:
    stores = {name: data["sweeps"][name] for name in SWEEPS if name in data["sweeps"]}
    if not stores:
        return []
    fig = plt.figure(figsize=(15.5, 9.4))
    gs = fig.add_gridspec(2, 3, hspace=0.36, wspace=0.26, bottom=0.14, top=0.93, left=0.05, right=0.985)
    numbers: dict = {}
    for k, (name, title, xlabel) in enumerate(PANELS):
        ax = fig.add_subplot(gs[k // 3, k % 3])
        ax.set_title(title, fontsize=10)
        if name in stores and stores[name].attrs["sweep"]["axes"][0]["key"] == "train.lr_base":
            xlabel = "fan-in rule base rate lr_base (layer l: lr_base / (inputs_l + 1))"
        ax.set_xlabel(xlabel)
        if name not in stores:
            ax.text(0.5, 0.5, f"sweep '{name}' not run", ha="center", va="center", transform=ax.transAxes, color="#777777")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        panel(ax, name, stores[name], numbers)
        if name != "lr":
            lo = min(0.9, np.nanmin([v for a in numbers[name].values() if isinstance(a, dict) and "mean" in a
                                     for v in a["mean"] if v is not None] or [0.0]))
            ax.set_ylim(max(0.0, lo - 0.1), 1.0)
    dataset = next(iter(stores.values())).attrs["sweep"]["dataset"]
    fig.suptitle(f"Figure 5 — scaling: depth, width, learning rate and device non-idealities ({dataset})", fontsize=12)
    caption(fig, CLAIM.format(dataset=dataset), _produced_by(stores))
    paths = save(fig, out, NAME, list(fp.formats), fp.dpi)
    return paths + [save_json(out, NAME, numbers)]
