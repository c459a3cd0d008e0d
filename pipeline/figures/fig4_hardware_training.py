"""fig4_hardware_training: a two-layer network trained in situ with progressive GD learns like
software backprop — loss and accuracy vs epoch (mean ± sd over seeds) per algorithm, the
conductance trajectory of every device, and the confusion matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import caption, color, describe_params, linestyle, plt, save

NAME = "fig4_hardware_training"
CLAIM = ("a two-layer network trained in situ with progressive gradient descent learns like software backprop "
         "(same loss and accuracy curves, within the seed-to-seed spread).")
INPUTS = ("eval",)


def _band(ax, x, y, alg, label):
    m = np.nanmean(y, axis=0)
    ax.plot(x, m, color=color(alg), ls=linestyle(alg), lw=1.6, label=label)
    if y.shape[0] > 1:
        sd = np.nanstd(y, axis=0, ddof=1)
        ax.fill_between(x, m - sd, m + sd, color=color(alg), alpha=0.18, lw=0)


def make(out: Path, data: dict, fp) -> list[Path]:
    ds = data["eval"]
    algs = [str(a) for a in ds.algorithm.values]
    hw = [str(a) for a in ds.algorithm_hw.values] if "algorithm_hw" in ds.coords else []
    focus = "progressive" if "progressive" in hw else (hw[0] if hw else None)
    layers = sorted(int(v.split("_")[-1]) for v in ds.data_vars if v.startswith("traj_G_"))
    ncols = max(2, len(layers)) + 1
    fig = plt.figure(figsize=(4.2 * ncols, 8.6))
    gs = fig.add_gridspec(2, ncols, hspace=0.38, wspace=0.3, bottom=0.12, top=0.93)
    ep = ds.epoch.values
    ax = fig.add_subplot(gs[0, 0])
    for alg in algs:
        a = ds.sel(algorithm=alg)
        loss = a.train_loss.values.copy()
        loss[:, 0] = a.train_loss_eval.values[:, 0]
        _band(ax, ep, loss, alg, alg)
    ax.set(xlabel="epoch", ylabel="training loss (online)", title="(a) loss, mean ± sd over seeds")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax = fig.add_subplot(gs[0, 1])
    for alg in algs:
        _band(ax, ep, ds.sel(algorithm=alg).test_acc.values, alg, alg)
    ax.set(xlabel="epoch", ylabel="test accuracy (hardware inference)", title="(b) test accuracy", ylim=(0, 1.02))
    ax.legend(fontsize=7, loc="lower right")
    ax = fig.add_subplot(gs[0, 2])
    last = ds.isel(epoch=-1)
    means = [float(np.nanmean(last.sel(algorithm=a).test_acc.values)) for a in algs]
    sds = [float(np.nanstd(last.sel(algorithm=a).test_acc.values, ddof=1)) if ds.sizes["seed"] > 1 else 0.0 for a in algs]
    ax.bar(range(len(algs)), means, yerr=sds, color=[color(a) for a in algs], capsize=3)
    for k, m in enumerate(means):
        ax.text(k, m + 0.02, f"{m:.3f}", ha="center", fontsize=7)
    ax.set_xticks(range(len(algs)), algs, rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="final test accuracy", ylim=(0, 1.1), title=f"(c) after {int(ep[-1])} epochs, {ds.sizes['seed']} seeds")
    if focus is not None:
        snap = ds.snapshot.values
        for k, l in enumerate(layers):
            ax = fig.add_subplot(gs[1, k])
            G = ds[f"traj_G_{l}"].sel(algorithm_hw=focus).values  # snapshot, pair, row, col
            flat = G.reshape(G.shape[0], -1) * 1e3
            n = flat.shape[1] if not fp.trajectories else min(fp.trajectories, flat.shape[1])
            ax.plot(snap, flat[:, :n], lw=0.4, alpha=0.6)
            ax.set(xlabel="training sample", ylabel="conductance (mS)",
                   title=f"({'def'[k] if k < 3 else k}) {focus}: all {n} devices of layer {l}")
        ax = fig.add_subplot(gs[1, len(layers)])
        cm = ds.confusion.sel(algorithm=focus).sum("seed").values
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color="black" if v < cm.max() / 2 else "white")
        ax.set_xticks(range(cm.shape[1]))
        ax.set_yticks(range(cm.shape[0]))
        ax.set(xlabel="predicted class", ylabel="true class", title=f"({'defgh'[len(layers)]}) confusion, {focus} (all seeds, test set)")
    fig.suptitle("In-situ training on simulated EC-RAM arrays: progressive GD vs backpropagation", fontsize=12)
    caption(fig, CLAIM, describe_params(ds.attrs))
    return save(fig, out, NAME, fp.formats, fp.dpi)
