"""fig2_device (DESIGN §3): the devices are characterised and modelled faithfully.

Draws from the fit stage's outputs (``results/device/fit.zarr`` and ``device.yaml``, opened by the
figures stage); never re-fits.
Panels: (a) conductance vs pulse number, data and model (several cycles and devices; for look-up
tables the mean step per bin instead), (b) ΔG per pulse vs G, up and down, with the fitted law,
(c) residual / noise statistics (residual histogram, lag-1 correlation per device), (d) the
device-to-device spread of the parameters, (e) the family comparison (R² and ΔBIC).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import plt, save

NAME = "fig2_device"
CLAIM = ("the devices are characterised and modelled faithfully (mean law, write and read noise, device-to-device "
         "spread, model choice).")
INPUTS = ("device",)
MAX_DEVICES = 4


def make(out: Path, data: dict, fp) -> list[Path]:
    ds, spec = data["device"]["fit"], data["device"]["spec"]
    chosen = str(ds.attrs["chosen_family"])
    fams = [str(f) for f in ds["family"].values]
    j = fams.index(chosen)
    devs = [str(d) for d in ds["device"].values]
    show = list(range(min(MAX_DEVICES, len(devs))))
    colors = plt.cm.viridis(np.linspace(0, 0.85, max(len(show), 1)))

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.2))
    (a, b, c), (d, e, f) = axes
    # (a) traces
    if "trace_g" in ds:
        tg, tm = ds["trace_g"].values, ds["trace_model"].values
        for i, di in enumerate(show):
            ys, ms = tg[di].ravel(), tm[di].ravel()
            x = np.arange(len(ys))
            a.plot(x, ys * 1e6, ".", ms=1.5, color=colors[i], label=f"device {devs[di]}")
            a.plot(x, ms * 1e6, "-", lw=0.8, color="k" if i == 0 else colors[i])
        a.set_xlabel("read number (cycles concatenated)")
        a.set_title("(a) G vs pulse: data (dots), model (lines)")
    else:
        for i, di in enumerate(show):
            g, dg, pol = ds["point_g"].values[di], ds["point_dg"].values[di], ds["point_polarity"].values[di]
            up = pol > 0
            # the conductance a device reaches pulse by pulse under the measured mean step
            a.plot(g[up] * 1e6, np.cumsum(1.0 / np.maximum(dg[up], 1e-30) * np.gradient(g[up])), color=colors[i],
                   label=f"device {devs[di]}")
        a.set_xlabel("G (µS)")
        a.set_title("(a) pulses to reach G\n(mean look-up-table step, potentiation)", fontsize=10)
    a.set_ylabel("G (µS)" if "trace_g" in ds else "pulse number")
    a.legend(fontsize=7)
    # (b) step vs G
    for i, di in enumerate(show):
        g, dg, pol = ds["point_g"].values[di], ds["point_dg"].values[di], ds["point_polarity"].values[di]
        ok = np.isfinite(g)
        b.plot(g[ok] * 1e6, dg[ok] * 1e6, ".", ms=1.2, alpha=0.35, color=colors[i])
        gg = ds["grid_g"].values[di] * 1e6
        b.plot(gg, ds["law_up"].values[di, j] * 1e6, "-", color=colors[i], lw=1.4)
        b.plot(gg, ds["law_down"].values[di, j] * 1e6, "--", color=colors[i], lw=1.4)
    b.axhline(0, color="0.6", lw=0.5)
    b.set_xlabel("G before the pulse (µS)")
    b.set_ylabel("ΔG per pulse (µS)")
    b.set_title(f"(b) step vs G, fitted {chosen} law\n(up —, down --)", fontsize=10)
    # (c) residuals
    res = ds["point_residual"].values
    res = res[np.isfinite(res)]
    if res.size:
        c.hist(res * 1e6, bins=60, color="0.4")
    c.set_xlabel(f"step residual, {chosen} (µS)")
    c.set_ylabel("count")
    lag = ds["lag1_corr"].values[:, j]
    txt = f"c2c σ = {spec.c2c_std:.3g}\nread noise = {spec.read_noise_S * 1e6:.3g} µS"
    if np.isfinite(lag).any():
        txt += f"\nlag-1 corr = {np.nanmean(lag):.2f} (−0.5: read noise only)"
    c.text(0.02, 0.97, txt, transform=c.transAxes, va="top", fontsize=8)
    c.set_title("(c) noise: residuals, write vs read noise")
    # (d) d2d spread (relative to the mean) of every parameter of the chosen family
    names = list(spec.population)
    pidx = [list(ds["param"].values).index(n) for n in names]
    est = ds["estimate"].values[:, j][:, pidx]
    rel = est / np.nanmean(est, axis=0)
    for k in range(len(names)):
        d.plot(np.full(len(rel), k) + np.linspace(-0.15, 0.15, len(rel)), rel[:, k], "o", ms=3, color="C0")
    d.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
    d.axhline(1, color="0.6", lw=0.5)
    d.set_ylabel("per-device estimate / population mean")
    d.set_title(f"(d) device-to-device spread ({len(devs)} devices)")
    # (e) family comparison
    r2 = ds["r2_total"].values
    bic = ds["bic_total"].values
    e.bar(range(len(fams)), r2, color=["C3" if fam == chosen else "C0" for fam in fams])
    e.set_xticks(range(len(fams)), fams, fontsize=8)
    e.set_ylim(min(0.0, float(np.nanmin(r2))), 1.0)
    e.set_ylabel(f"R² ({ds.attrs['r2_of']})")
    for k, v in enumerate(bic - np.nanmin(bic)):
        e.text(k, 0.02, f"ΔBIC\n{v:.0f}", ha="center", fontsize=7, color="w")
    e.set_title(f"(e) model comparison: {chosen} ({ds.attrs['chosen_by']})")
    # (f) caption
    f.axis("off")
    f.text(0.0, 1.0,
           "Claim: the devices are characterised and modelled\nfaithfully (mean law, write and read noise,\n"
           "device-to-device spread, model choice).\n\n"
           f"Source: {spec.source}\n({ds.attrs['input']}, {len(devs)} devices)\n\n"
           f"Chosen family: {chosen}, R² = {r2[j]:.3f}\n"
           f"c2c σ = {spec.c2c_std:.3g}, read noise = {spec.read_noise_S:.3g} S\n\n"
           "Produced by `ecram device fit` → results/device/\n(fit.zarr, device.yaml); "
           "drawn by `ecram figures`.",
           va="top", fontsize=9, family="monospace", transform=f.transAxes)
    fig.suptitle("Fig. 2 — EC-RAM device characterization and model fit", fontsize=12)
    fig.tight_layout()
    return save(fig, Path(out), NAME, list(fp.formats), fp.dpi)
