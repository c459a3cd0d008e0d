"""Depth sweeps of the mnist profile at several output-layer base rates: numbers and figure.

Reads depth-sweep stores written by ``python -m pipeline sweep depth`` (each with its own
``train.lr_base_out``, read from the store's sweep attributes) and, for the profile's own
``lr_base_out: 1`` whose store was not kept, the committed ``profile/fig5_scaling.json`` (mean and
sd only). Writes ``output_rate.json`` (per-seed test accuracy after the last epoch, pulses per
training sample, paired progressive − backprop gap) and ``output_rate.png`` beside this script, and
prints the markdown table of docs/mnist-study/README.md (*Why progressive-float fails at depth 4*).

Usage::

    python docs/mnist-study/output_rate.py study/depth_o03.zarr study/depth_o01.zarr
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from pipeline.training import ledger  # noqa: E402

HERE = Path(__file__).parent
LABELS = ["progressive", "backprop", "progressive-float", "backprop-float"]


def from_store(path: str) -> tuple[float, dict]:
    d = xr.open_zarr(path, consolidated=False)
    sweep = d.attrs["sweep"]
    rate = float(sweep["set"]["train.lr_base_out"])
    last = int(d.epoch.values[-1])
    acc = d.test_acc.sel(epoch=last)
    # training samples of the epoch: backprop runs one forward pass per sample (ledger)
    n_train = d.forward_passes.sel(epoch=last, algorithm="backprop") / ledger.forward_passes_per_sample("backprop", 1)
    pulses = (d.pulses_up + d.pulses_down).sel(epoch=last) / n_train
    out = {"x": [str(h) for h in d.network_hidden.values], "epochs": last, "seeds": [int(s) for s in d.seed.values]}
    for a in LABELS:
        v = acc.sel(algorithm=a).values
        out[a] = {"per_seed": np.round(v, 6).tolist(), "mean": np.round(v.mean(1), 6).tolist(),
                  "sd": np.round(v.std(1, ddof=1), 6).tolist()}
        if not a.endswith("-float"):
            out[a]["pulses_per_sample"] = np.round(pulses.sel(algorithm=a).values.mean(1), 1).tolist()
    gap = (acc.sel(algorithm="progressive") - acc.sel(algorithm="backprop")).values * 100
    out["gap_points"] = {"mean": np.round(gap.mean(1), 3).tolist(), "sd": np.round(gap.std(1, ddof=1), 3).tolist()}
    return rate, out


def main(stores: list[str]) -> None:
    results = {}
    ref = json.loads((HERE / "profile" / "fig5_scaling.json").read_text())["depth"]
    results[1.0] = {"x": ref["x"], "source": "profile/fig5_scaling.json (lr_base_out 1, the profile's)",
                    **{a: {"mean": ref[a]["mean"], "sd": ref[a]["sd"]} for a in LABELS}}
    for s in stores:
        rate, out = from_store(s)
        results[rate] = out
    rates = sorted(results, reverse=True)
    (HERE / "output_rate.json").write_text(json.dumps({str(r): results[r] for r in rates}, indent=1) + "\n")

    print("| `lr_base_out` | hidden | " + " | ".join(LABELS) + " | progressive − backprop (points) |")
    print("|---|---|" + "---|" * (len(LABELS) + 1))
    for r in rates:
        res = results[r]
        for i, h in enumerate(res["x"]):
            cells = [f"{res[a]['mean'][i]:.3f} ± {res[a]['sd'][i]:.3f}" for a in LABELS]
            gap = (f"{res['gap_points']['mean'][i]:+.2f} ± {res['gap_points']['sd'][i]:.2f}"
                   if "gap_points" in res else "")
            print(f"| {r:g} | {h} | " + " | ".join(cells) + f" | {gap} |")

    fig, axes = plt.subplots(1, len(LABELS), figsize=(13, 3.2), sharey=True)
    for ax, a in zip(axes, LABELS):
        for r in rates:
            res = results[r]
            x = np.arange(1, len(res["x"]) + 1)
            ax.errorbar(x, res[a]["mean"], yerr=res[a]["sd"], marker="o", capsize=3, label=f"lr_base_out {r:g}")
        ax.set_title(a)
        ax.set_xlabel("hidden layers of 256")
        ax.set_xticks(x)
        ax.set_ylim(0.85, 0.95)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (MNIST, 1 epoch)")
    axes[-1].legend(fontsize=8, loc="lower left")
    fig.suptitle("mnist profile depth sweep, lr_base 16, three output base rates (mean ± sd, 3 seeds); "
                 "progressive-float at lr_base_out 1, depth 4: 0.311 (off scale)", fontsize=9)
    fig.tight_layout()
    fig.savefig(HERE / "output_rate.png", dpi=120, metadata={"Software": None})


if __name__ == "__main__":
    main(sys.argv[1:])
