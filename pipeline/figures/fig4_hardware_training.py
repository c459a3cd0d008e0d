"""fig4_hardware_training: a two-layer network trained in situ — loss and test accuracy vs epoch
(mean ± sd over seeds) for every run label, the final accuracies against the software reference
(backprop-float) with a ±1-point band, the η → 0 check (progressive-float against backprop-float,
paired by seed), and, for progressive with direct pulses and for the best update scheme, the
conductance trajectories of the devices (first seed) and the confusion matrix (all seeds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import caption, color, describe_params, linestyle, lr_text, plt, save
from ..training.variants import parse

NAME = "fig4_hardware_training"
CLAIM = ("trained in situ, progressive gradient descent learns like software backprop (backprop-float) to within "
         "1 point of final test accuracy once the update scheme absorbs the device error (mixed precision); with "
         "direct pulse writes it falls short. The algorithm itself loses nothing: as the learning rate η → 0 "
         "progressive-float (progressive GD in floating point) is backprop-float, step for step.")
INPUTS = ("eval",)
REFERENCE = "backprop-float"
TOLERANCE = 0.01  # the claim's 1 point of test accuracy


def _band(ax, x, y, alg, label):
    m = np.nanmean(y, axis=0)
    ax.plot(x, m, color=color(alg), ls=linestyle(alg), lw=1.6, label=label, marker="o" if len(x) < 3 else None, ms=3)
    if y.shape[0] > 1:
        sd = np.nanstd(y, axis=0, ddof=1)
        ax.fill_between(x, m - sd, m + sd, color=color(alg), alpha=0.18, lw=0)
        if len(x) < 3:  # one or two epochs: the band is too thin to see
            ax.errorbar(x, m, sd, color=color(alg), ls="none", capsize=3)


def _final(ds, alg) -> tuple[float, float]:
    v = ds.isel(epoch=-1).sel(algorithm=alg).test_acc.values
    return float(np.nanmean(v)), float(np.nanstd(v, ddof=1)) if v.size > 1 else 0.0


def _focus(algs: list[str], hw: list[str], ds) -> list[str]:
    """Progressive with direct pulses, and the run label with an update scheme that ends highest."""
    out = ["progressive"] if "progressive" in hw else hw[:1]
    schemed = [a for a in hw if parse(a)[1] is not None and a in algs]
    if schemed:
        best = max(schemed, key=lambda a: _final(ds, a)[0])
        if best not in out:
            out.append(best)
    return out


def _verdict(ds, algs: list[str]) -> str:
    """The claim's numbers, computed: each label's final accuracy against the reference."""
    if REFERENCE not in algs:
        return f"(no {REFERENCE} run: nothing to compare against)"
    ref, ref_sd = _final(ds, REFERENCE)
    parts = [f"{REFERENCE} {ref:.3f} ± {ref_sd:.3f}"]
    for a in algs:
        if a == REFERENCE:
            continue
        m, sd = _final(ds, a)
        d = 100 * (m - ref)
        parts.append(f"{a} {m:.3f} ± {sd:.3f} ({d:+.1f} pt, {'within' if abs(d) <= 100 * TOLERANCE else 'NOT within'} 1)")
    n = int(ds.attrs.get("test_samples", 0) or 0)
    res = f"; one test sample = {100 / n:.2f} pt" if n else ""
    return f"Measured (final test accuracy, mean ± sd over {ds.sizes['seed']} seeds{res}): " + "; ".join(parts) + "."


def _trajectories(ax, ds, alg, layer, limit, title):
    G = ds[f"traj_G_{layer}"].sel(algorithm_hw=alg).values  # snapshot, pair, row, col
    flat = G.reshape(G.shape[0], -1) * 1e3
    total = flat.shape[1]
    n = total if not limit else min(limit, total)
    pick = np.unique(np.linspace(0, total - 1, n).round().astype(int))  # evenly over pairs, rows and columns
    snap = ds.snapshot.values
    lw, alpha = (0.4, 0.6) if n <= 200 else (0.15, 0.15)
    ax.plot(snap, flat[:, pick], lw=lw, alpha=alpha, rasterized=n > 200)
    lo, med, hi = np.percentile(flat, [5, 50, 95], axis=1)
    ax.plot(snap, med, color="k", lw=1.0, label="median, all devices")
    ax.plot(snap, lo, color="k", lw=0.7, ls="--", label="5th / 95th percentile")
    ax.plot(snap, hi, color="k", lw=0.7, ls="--")
    ax.legend(fontsize=6, loc="upper right")
    shown = f"all {total}" if pick.size == total else f"{pick.size} of {total}"
    seed = int(ds.seed.values[0])  # the evaluate stage keeps the trajectories of the first seed
    ax.set(xlabel="training sample", ylabel="conductance (mS)",
           title=f"{title} {alg}, seed {seed}:\n{shown} devices of layer {layer}")
    ax.title.set_fontsize(8)


def _confusion(ax, ds, alg, title):
    cm = ds.confusion.sel(algorithm=alg).sum("seed").values
    k = cm.shape[0]
    ax.imshow(cm, cmap="Blues")
    fs = 8 if k <= 4 else 5.5
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=fs, color="black" if v < cm.max() / 2 else "white")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.tick_params(labelsize=7)
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set(xlabel="predicted class", ylabel="true class")
    ax.set_title(f"{title} confusion, {alg}\n(all seeds, test set, accuracy {acc:.3f})", fontsize=8)


def _eta_check(ax, ds, algs, title):
    """progressive-float − backprop-float, paired by seed (same array draw, same sample order)."""
    ax.axhline(0.0, color="k", lw=0.7)
    ax.axhspan(-100 * TOLERANCE, 100 * TOLERANCE, color="0.85", lw=0, label="±1 point")
    ep = ds.epoch.values
    if "progressive-float" in algs and REFERENCE in algs:
        d = 100 * (ds.sel(algorithm="progressive-float").test_acc.values - ds.sel(algorithm=REFERENCE).test_acc.values)
        _band(ax, ep, d, "progressive-float", "progressive-float − backprop-float")
        m, sd = float(np.nanmean(d[:, -1])), float(np.nanstd(d[:, -1], ddof=1)) if d.shape[0] > 1 else 0.0
        eta = lr_text(ds.attrs.get("params", {}).get("train", {}))
        text = (f"η → 0: progressive-float ≡ backprop-float\n(the two differ by O(η²) per step)\n"
                f"at {eta.split(' (')[0]}:\nfinal Δ = {m:+.2f} ± {sd:.2f} pt")
        spread = np.abs(np.nanmean(d, axis=0)) + (np.nanstd(d, axis=0, ddof=1) if d.shape[0] > 1 else 0.0)
        ax.set_ylim(-max(5.0, float(np.nanmax(spread)) + 1.0), max(5.0, float(np.nanmax(spread)) + 1.0))
    else:
        text = "η → 0: progressive-float ≡ backprop-float\n(add both to train.algorithms to check it)"
    ax.text(0.04, 0.96, text, transform=ax.transAxes, va="top", fontsize=7.5,
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.6"})
    if "progressive-float" not in algs or REFERENCE not in algs:
        ax.set_ylim(-5, 5)
    ax.set(xlabel="epoch", ylabel="Δ test accuracy (points)")
    ax.set_title(f"{title} the algorithm at η → 0 (paired by seed)", fontsize=8)
    ax.legend(fontsize=6, loc="lower right")


def _gap(ax, ds, algs, title):
    """Every label − backprop-float, paired by seed: which labels stay within 1 point."""
    ax.axhline(0.0, color="k", lw=0.7)
    ax.axhspan(-100 * TOLERANCE, 100 * TOLERANCE, color="0.85", lw=0, label="±1 point")
    ep = ds.epoch.values
    ref = ds.sel(algorithm=REFERENCE).test_acc.values
    for a in algs:
        if a != REFERENCE:
            _band(ax, ep, 100 * (ds.sel(algorithm=a).test_acc.values - ref), a, a)
    ax.set(xlabel="epoch", ylabel=f"test accuracy − {REFERENCE} (points)")
    ax.set_title(f"{title} gap to {REFERENCE} (paired by seed)", fontsize=8)
    ax.legend(fontsize=6, loc="lower right")


def make(out: Path, data: dict, fp) -> list[Path]:
    ds = data["eval"]
    algs = [str(a) for a in ds.algorithm.values]
    hw = [str(a) for a in ds.algorithm_hw.values] if "algorithm_hw" in ds.coords else []
    focus = _focus(algs, hw, ds)
    layers = sorted(int(v.split("_")[-1]) for v in ds.data_vars if v.startswith("traj_G_"))
    ncols = max(4, len(layers) + 2)
    nrows = 1 + max(1, len(focus))
    height = 4.0 * nrows + 2.0
    fig = plt.figure(figsize=(4.4 * ncols, height))
    gs = fig.add_gridspec(nrows, ncols, hspace=0.5, wspace=0.32, bottom=1.6 / height, top=1 - 0.7 / height)
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    tag = lambda: f"({next(letters)})"  # noqa: E731
    ep = ds.epoch.values

    ax = fig.add_subplot(gs[0, 0])
    for alg in algs:
        a = ds.sel(algorithm=alg)
        loss = a.train_loss.values.copy()
        loss[:, 0] = a.train_loss_eval.values[:, 0]
        _band(ax, ep, loss, alg, alg)
    ax.set(xlabel="epoch", ylabel="training loss (online)", title=f"{tag()} loss, mean ± sd over seeds")
    ax.set_yscale("log")
    ax.legend(fontsize=6)

    ax = fig.add_subplot(gs[0, 1])
    for alg in algs:
        _band(ax, ep, ds.sel(algorithm=alg).test_acc.values, alg, alg)
    ax.set(xlabel="epoch", ylabel="test accuracy (hardware inference)", title=f"{tag()} test accuracy", ylim=(0, 1.02))
    ax.legend(fontsize=6, loc="lower right")

    # the same, from epoch 1, on an axis that resolves one point
    ax = fig.add_subplot(gs[0, 2])
    later = slice(1, None) if ds.sizes["epoch"] > 1 else slice(None)
    lows = []
    for alg in algs:
        y = ds.sel(algorithm=alg).test_acc.values[:, later]
        _band(ax, ep[later], y, alg, alg)
        lows.append(np.nanmin(np.nanmean(y, axis=0) - (np.nanstd(y, axis=0, ddof=1) if y.shape[0] > 1 else 0)))
    if REFERENCE in algs:
        ref = _final(ds, REFERENCE)[0]
        ax.axhspan(ref - TOLERANCE, ref + TOLERANCE, color="0.88", lw=0, zorder=0)
    lo = float(np.nanmin(lows)) if lows else 0.0
    ax.set(xlabel="epoch", ylabel="test accuracy", ylim=(max(0.0, lo - 0.01), 1.0),
           title=f"{tag()} test accuracy from epoch 1 (grey: {REFERENCE} final ± 1 pt)")
    ax.title.set_fontsize(8)

    ax = fig.add_subplot(gs[0, 3])
    fin = [_final(ds, a) for a in algs]
    means, sds = [f[0] for f in fin], [f[1] for f in fin]
    ax.bar(range(len(algs)), means, yerr=sds, color=[color(a) for a in algs], capsize=3)
    if REFERENCE in algs:
        ref = _final(ds, REFERENCE)[0]
        ax.axhspan(ref - TOLERANCE, ref + TOLERANCE, color="0.8", lw=0, zorder=0, label=f"{REFERENCE} ± 1 pt")
        ax.legend(fontsize=6, loc="upper left")
    bottom = max(0.0, min(m - s for m, s in zip(means, sds)) - 0.03)
    for k, (m, s) in enumerate(zip(means, sds)):
        ax.text(k, m + s + 0.002, f"{m:.3f}", ha="center", fontsize=7)
    ax.set_xticks(range(len(algs)), algs, rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="final test accuracy", ylim=(bottom, 1.0 + 0.005),
           title=f"{tag()} after {int(ep[-1])} epochs, {ds.sizes['seed']} seeds")

    # right of the device rows: the η → 0 check, then (if a row is left) every label's gap to the reference
    side = [lambda ax, t: _eta_check(ax, ds, algs, t)]
    if REFERENCE in algs:
        side.append(lambda ax, t: _gap(ax, ds, algs, t))
    for r, alg in enumerate(focus, start=1):
        for k, l in enumerate(layers):
            _trajectories(fig.add_subplot(gs[r, k]), ds, alg, l, fp.trajectories, tag())
        _confusion(fig.add_subplot(gs[r, len(layers)]), ds, alg, tag())
        if r - 1 < len(side):
            side[r - 1](fig.add_subplot(gs[r, len(layers) + 1]), tag())
    if not focus:  # float runs only: no devices to draw
        side[0](fig.add_subplot(gs[1, 0]), tag())

    sizes = "-".join(str(s) for s in ds.attrs.get("sizes", []))
    fig.suptitle(f"In-situ training on simulated EC-RAM arrays ({sizes}): progressive GD vs backpropagation",
                 fontsize=12)
    caption(fig, CLAIM + "\n" + _verdict(ds, algs), describe_params(ds.attrs))
    return save(fig, out, NAME, fp.formats, fp.dpi)
