"""fig1_storage: progressive GD removes the storage that conventional hardware backprop needs —
values held between phases, array reads and pulses per sample, vs depth and width, per algorithm.

Held values and reads per sample follow from the algorithm and the layer sizes
(:mod:`pipeline.training.ledger`, whose read counts the tests check against the kernels' own
counters); the markers are the counts the kernels recorded in the evaluated runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..training import ledger
from .common import caption, color, describe_params, plt, save

NAME = "fig1_storage"
CLAIM = ("progressive gradient descent removes the storage of partial derivatives that conventional hardware "
         "backprop needs, at the cost of extra forward passes (reads).")
ORDERS = ("backprop", "progressive", "progressive-held")
INPUTS = ("eval",)


def make(out: Path, data: dict, fp) -> list[Path]:
    ds = data["eval"]
    sizes = [int(s) for s in ds.attrs["sizes"]]
    n_in, n_out = sizes[0], sizes[-1]
    width = max(sizes[1:-1]) if len(sizes) > 2 else 32
    depths = np.arange(1, 9)
    widths = np.array([8, 16, 32, 64, 128, 256, 512])
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.6))
    fig.subplots_adjust(bottom=0.28, top=0.85, wspace=0.32)
    ax = axes[0]
    for fam in ORDERS:
        held = [ledger.values_held(fam, [n_in] + [width] * (d - 1) + [n_out]) for d in depths]
        ax.plot(depths, held, "o-", color=color(fam), label=fam, ms=3)
    ax.set(xlabel="layers (depth)", ylabel="analog values held between phases",
           title=f"(a) storage vs depth (width {width})", yscale="log")
    ax.legend(fontsize=7)
    ax = axes[1]
    for fam in ORDERS:
        held = [ledger.values_held(fam, [n_in, int(w), int(w), n_out]) for w in widths]
        ax.plot(widths, held, "o-", color=color(fam), label=fam, ms=3)
    ax.set(xlabel="hidden width (two hidden layers)", ylabel="analog values held", title="(b) storage vs width",
           xscale="log", yscale="log")
    ax = axes[2]
    for fam in ORDERS:
        ax.plot(depths, [ledger.reads_per_sample(fam, int(d)) for d in depths], "o-", color=color(fam), label=fam, ms=3)
    n = float(ds.attrs.get("samples_per_epoch", 1))
    L = len(sizes) - 1
    for alg in ds.algorithm.values:
        measured = float(ds.reads.sel(algorithm=alg).isel(epoch=slice(1, None)).mean()) / n
        ax.plot([L], [measured], marker="*", ms=12, color=color(str(alg)), ls="none", mec="k", mew=0.5)
    ax.set(xlabel="layers (depth)", ylabel="array reads per training sample",
           title="(c) reads per sample (lines: ledger, *: measured)", yscale="log")
    ax = axes[3]
    algs = [str(a) for a in ds.algorithm.values if not str(a).endswith("float")]
    ups = [float(ds.pulses_up.sel(algorithm=a).isel(epoch=slice(1, None)).mean()) / n for a in algs]
    dns = [float(ds.pulses_down.sel(algorithm=a).isel(epoch=slice(1, None)).mean()) / n for a in algs]
    x = np.arange(len(algs))
    ax.bar(x, ups, color=[color(a) for a in algs], label="potentiation")
    ax.bar(x, dns, bottom=ups, color=[color(a) for a in algs], alpha=0.45, label="depression")
    ax.set_xticks(x, algs, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="pulses per training sample", title=f"(d) measured pulses ({'-'.join(map(str, sizes))})")
    ax.legend(fontsize=7)
    fig.suptitle("Storage and cost per training sample: conventional hardware backprop vs progressive GD", fontsize=12)
    caption(fig, CLAIM, describe_params(ds.attrs))
    return save(fig, out, NAME, fp.formats, fp.dpi)
