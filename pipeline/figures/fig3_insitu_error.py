"""fig3_insitu_error: errors computed in situ on the hardware match the ideal ones — parity of the
hidden-layer and output errors (in situ, through noisy reads and already-updated arrays) against
the exact backprop errors of the same weights, with their correlation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import caption, color, describe_params, plt, save

NAME = "fig3_insitu_error"
CLAIM = ("errors computed in situ on the hardware (progressive: through the just-updated arrays above; "
         "progressive-held: through the updated array with held activations) match the ideal backprop errors.")
ORDER = ("progressive", "progressive-held", "backprop", "manhattan", "progressive-float", "progressive-held-float")
INPUTS = ("eval",)


def make(out: Path, data: dict, fp) -> list[Path]:
    ds = data["eval"]
    algs = [a for a in ORDER if a in [str(v) for v in ds.algorithm.values]]
    layer = ds.unit_layer.values
    L = int(layer.max()) + 1
    groups = [("output layer", layer == L - 1)]
    if L > 1:
        groups.insert(0, ("hidden layers", layer < L - 1))
    fig, axes = plt.subplots(len(groups), max(1, len(algs)), figsize=(3.6 * max(1, len(algs)), 3.6 * len(groups) + 0.8),
                             squeeze=False)
    fig.subplots_adjust(bottom=0.16, top=0.88, hspace=0.45, wspace=0.35)
    ep = slice(1, None) if ds.sizes["epoch"] > 1 else slice(None)
    for c, alg in enumerate(algs):
        a = ds.sel(algorithm=alg).isel(epoch=ep)
        for r, (label, mask) in enumerate(groups):
            ax = axes[r, c]
            x = a.probe_ideal.values[..., mask].ravel()
            y = a.probe_insitu.values[..., mask].ravel()
            ok = np.isfinite(x) & np.isfinite(y)
            x, y = x[ok], y[ok]
            ax.scatter(x, y, s=3, alpha=0.3, color=color(alg), rasterized=True)
            lim = float(np.max(np.abs(np.concatenate([x, y])))) if x.size else 1.0
            lim = lim if lim > 0 else 1.0
            ax.plot([-lim, lim], [-lim, lim], color="k", lw=0.7)
            rr = float(np.corrcoef(x, y)[0, 1]) if x.size > 2 and np.std(x) > 0 and np.std(y) > 0 else float("nan")
            slope = float(np.dot(x, y) / np.dot(x, x)) if x.size and np.dot(x, x) > 0 else float("nan")
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="ideal error (backprop, exact)",
                   ylabel="in-situ error", title=f"{alg}: {label}")
            ax.text(0.04, 0.96, f"r = {rr:.4f}\nslope = {slope:.3f}\nn = {x.size}", transform=ax.transAxes,
                    va="top", fontsize=8)
    fig.suptitle("In-situ errors vs ideal backprop errors on probe samples (all epochs and seeds)", fontsize=12)
    caption(fig, CLAIM, describe_params(ds.attrs) + f"; {ds.sizes['probe']} probe samples")
    return save(fig, out, NAME, fp.formats, fp.dpi)
