"""fig6_schemes: which update scheme keeps progressive GD's no-storage property and still learns
like software on the measured devices? Final test accuracy of every update order × update scheme
(mean ± sd over seeds) against (a) the digital values the scheme holds per weight plus the
per-sample values the order holds between phases (per weight of the network, log axis) and (b)
the pulses per training sample; (c) every number as a table. Float backprop is the reference line.

Draws from the sweep store ``<sweeps>/schemes.zarr`` (``python -m pipeline sweep schemes``: a
grid over ``train.scheme`` × algorithms × seeds). Also writes ``fig6_schemes.json``: every
plotted number.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..training import algorithms, schemes
from ..training import ledger as ledger_mod
from .common import caption, color, save_json, plt, save

NAME = "fig6_schemes"
CLAIM = ("a scheme in which progressive GD keeps its no-storage property (no digital value per weight) and still "
         "learns like software backprop on these devices — or the least storage that does.")
INPUTS = ("sweeps",)
SWEEPS = ("schemes",)
MARKERS = "osD^v<>pP*"


def _r(v) -> float | None:
    return None if v is None or not np.isfinite(v) else float(round(float(v), 6))


def _stats(a: np.ndarray) -> tuple[float, float]:
    a = a[np.isfinite(a)]
    if a.size == 0:
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def rows(ds) -> list[dict]:
    """One record per (scheme, algorithm): final test accuracy, storage and pulses (all from the
    sweep store and the registries; nothing typed in)."""
    axes = ds.attrs["sweep"]["axes"]
    if len(axes) != 1 or axes[0]["key"] != "train.scheme":
        raise ValueError(f"sweep 'schemes' must be a grid over train.scheme alone, got {[a['key'] for a in axes]}")
    dim = axes[0]["dim"]
    sizes = [int(s) for s in ds.attrs["sizes"]]
    L = len(sizes) - 1
    n_weights = sum((sizes[l] + 1) * sizes[l + 1] for l in range(L))
    # the sweep's train params (its base params with the sweep's fixed train.* settings): the
    # digital values a scheme holds depend on its variant (tiki-taka: ttv1 / ttv2 / c-ttv2, zero-shift)
    tp = dict((ds.attrs.get("params") or {}).get("train") or {})
    tp.update({k.split(".", 1)[1]: v for k, v in (ds.attrs["sweep"].get("set") or {}).items()
               if str(k).startswith("train.")})
    train = SimpleNamespace(**tp) if tp else None
    out = []
    for k, scheme in enumerate(axes[0]["labels"]):
        sc = schemes.get(scheme)
        for alg in (str(a) for a in ds.algorithm.values):
            entry = algorithms.get(alg)
            if entry.is_float and k > 0:
                continue  # float runs ignore the scheme: one record
            sel = ds.isel({dim: k}).sel(algorithm=alg)
            acc = sel.test_acc.isel(epoch=-1).values
            m, sd = _stats(acc)
            pulses = (sel.pulses_up + sel.pulses_down).isel(epoch=slice(1, None)).sum("epoch").values
            samples = sel.forward_passes.isel(epoch=slice(1, None)).sum("epoch").values / \
                ledger_mod.forward_passes_per_sample(alg, L)
            with np.errstate(invalid="ignore", divide="ignore"):
                pm, _ = _stats(pulses / samples)
            digital = 1.0 if entry.is_float else schemes.digital_per_weight(sc.name, train, sizes)
            held = ledger_mod.values_held(alg, sizes)
            out.append({"algorithm": alg, "scheme": "float" if entry.is_float else scheme,
                        "order": entry.order, "acc_mean": _r(m), "acc_sd": _r(sd),
                        "digital_per_weight": digital, "values_held_per_sample": held,
                        "storage_per_weight": _r(digital + held / n_weights),
                        "analog_per_weight": 0 if entry.is_float else int(sc.planes),
                        "pulses_per_sample": _r(pm) if not entry.is_float else None,
                        "seeds": int(np.isfinite(acc).sum())})
    return out


def make(out: Path, data: dict, fp) -> list[Path]:
    ds = data["sweeps"].get("schemes")
    if ds is None:
        return []
    recs = rows(ds)
    hw = [r for r in recs if r["scheme"] != "float"]
    ref = [r for r in recs if r["scheme"] == "float"]
    scheme_names = list(dict.fromkeys(r["scheme"] for r in hw))
    algs = list(dict.fromkeys(r["algorithm"] for r in hw))
    fig = plt.figure(figsize=(16, 6.6))
    gs = fig.add_gridspec(1, 3, width_ratios=(1, 1, 1.5), wspace=0.22, bottom=0.2, top=0.88, left=0.05, right=0.995)
    for k, (xkey, xlabel, title) in enumerate((
            ("storage_per_weight", "digital values held per weight\n(scheme's per-weight state + order's per-sample "
                                   "values / weights)", "(a) accuracy vs storage"),
            ("pulses_per_sample", "pulses per training sample (whole network, log)", "(b) accuracy vs pulses"))):
        ax = fig.add_subplot(gs[0, k])
        for r in hw:
            if r[xkey] is None or r["acc_mean"] is None:
                continue
            ax.errorbar(r[xkey], r["acc_mean"], yerr=r["acc_sd"], color=color(r["algorithm"]),
                        marker=MARKERS[scheme_names.index(r["scheme"]) % len(MARKERS)], ms=6, capsize=2.5, ls="none")
        for r in ref:
            if r["acc_mean"] is not None:
                ax.axhline(r["acc_mean"], color=color(r["algorithm"]), ls="--", lw=1.0)
                ax.axhspan(r["acc_mean"] - r["acc_sd"], r["acc_mean"] + r["acc_sd"], color=color(r["algorithm"]),
                           alpha=0.08, lw=0)
        ax.set_xscale("log")
        ax.minorticks_off()
        handles = [plt.Line2D([], [], color="#444444", marker=MARKERS[i % len(MARKERS)], ls="none", label=s)
                   for i, s in enumerate(scheme_names)]
        handles += [plt.Line2D([], [], color=color(a), marker="s", ls="none", label=a) for a in algs]
        handles += [plt.Line2D([], [], color=color(r["algorithm"]), ls="--", label=f"{r['algorithm']} (software)")
                    for r in ref]
        ax.legend(handles=handles, fontsize=7, loc="lower right")
        ax.set(xlabel=xlabel, ylabel="final test accuracy (hardware inference)", title=title)
    ax = fig.add_subplot(gs[0, 2])
    ax.axis("off")
    head = ["algorithm", "scheme", "test acc", "digital/w", "held/sample", "devices/w", "pulses/sample"]
    cells = [[r["algorithm"], r["scheme"], f"{r['acc_mean']:.3f}±{r['acc_sd']:.3f}" if r["acc_mean"] is not None
              else "n/a", f"{r['digital_per_weight']:g}", str(r["values_held_per_sample"]), str(r["analog_per_weight"]),
              "—" if r["pulses_per_sample"] is None else f"{r['pulses_per_sample']:.0f}"] for r in recs]
    table = ax.table(cellText=cells, colLabels=head, loc="upper center", cellLoc="center",
                     colWidths=[0.2, 0.2, 0.16, 0.1, 0.11, 0.1, 0.13])
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1.0, 1.25)
    ax.set_title("(c) every run: final test accuracy and what it costs", fontsize=10)
    sw = ds.attrs["sweep"]
    fixed = sw.get("set", {})
    produced = (f"sweep 'schemes' (profile {sw['profile']}), dataset {sw['dataset']} "
                f"({'-'.join(str(s) for s in ds.attrs['sizes'])}), {sw['epochs']} epochs, seeds {sw['seeds']} "
                f"(mean ± sd); fixed {fixed}; device {(ds.attrs.get('device') or {}).get('model')} from "
                f"{(ds.attrs.get('device') or {}).get('source')}. python -m pipeline sweep schemes.")
    fig.suptitle("Figure 6 — update schemes: accuracy against the storage and pulses they cost", fontsize=12)
    caption(fig, CLAIM, produced)
    paths = save(fig, out, NAME, list(fp.formats), fp.dpi)
    return paths + [save_json(out, NAME, recs)]
