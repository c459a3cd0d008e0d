"""A device researcher's journey, as the README tells it: own measurements (here synthesised, in
µS and as currents) → fit → arrays → training → fig2 and fig4."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from conftest import ROOT, iris_yaml, run_cli
from pipeline.devices import spec

READ_V = 0.1


def _rewrite(src, dst, column, scale, extra=None):
    with gzip.open(src, "rt") as fh:
        lines = fh.read().strip().splitlines()
    head = lines[0].split(",")
    k = head.index("conductance_S")
    head[k] = column
    if extra:
        head.append(extra)
    out = [",".join(head)]
    for ln in lines[1:]:
        parts = ln.split(",")
        parts[k] = repr(float(parts[k]) * scale)
        if extra:
            parts.append(repr(READ_V))
        out.append(",".join(parts))
    dst.write_text("\n".join(out) + "\n")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    d = tmp_path_factory.mktemp("journey")
    code, text = run_cli(["device", "synth", "--device", str(ROOT / "data/devices/ecram-softbounds.yaml"), "--devices", "6",
                          "--cycles", "3", "--pulses", "80", "--seed", "7", "--out", str(d / "pulses.csv.gz"),
                          "--truth", str(d / "truth.yaml")])
    assert code == 0, text
    _rewrite(d / "pulses.csv.gz", d / "pulses_uS.csv", "conductance_uS", 1e6)
    _rewrite(d / "pulses.csv.gz", d / "pulses_current.csv", "current_A", READ_V, extra="read_voltage_V")
    (d / "params.yaml").write_text(iris_yaml(  # the iris experiment: small and fast
        "characterization:\n  source: DIR/pulses_uS.csv\n"
        "train:\n  epochs: 2\n  seeds: [0]\n  algorithms: [progressive, backprop-float]\n"
        "record:\n  probes: 4\n".replace("DIR", str(d))))
    return d


def test_units_variants_fit_the_same(measured):
    d = measured
    for name in ("pulses_uS.csv", "pulses_current.csv"):
        code, text = run_cli(["device", "fit", "--data", str(d / name), "--family", "soft-bounds", "--out", str(d / name.split(".")[0]),
                              "--params", str(d / "params.yaml")])
        assert code == 0, text
    a = spec.read(d / "pulses_uS" / "device.yaml")
    b = spec.read(d / "pulses_current" / "device.yaml")
    for k in ("g_min_S", "g_max_S", "dg_up_S", "dg_down_S"):
        assert np.isclose(a.population[k].mean, b.population[k].mean, rtol=1e-6), k
    truth = spec.read(ROOT / "data/devices/ecram-softbounds.yaml")
    assert np.isclose(a.population["dg_up_S"].mean, truth.population["dg_up_S"].mean, rtol=0.25)


def test_fit_train_and_figures_from_own_data(measured):
    d = measured
    P = ["--params", str(d / "params.yaml")]
    steps = [
        ["device", "fit", "--out", str(d / "results/device"), *P],  # source from params: the µS table
        ["array", "init", "--device", str(d / "results/device/device.yaml"), "--out", str(d / "results/arrays/arrays.zarr"), *P],
        ["train", "-a", "progressive", "--arrays", str(d / "results/arrays/arrays.zarr"), "--out",
         str(d / "results/train/progressive-0"), *P],
        ["train", "-a", "backprop-float", "--arrays", str(d / "results/arrays/arrays.zarr"), "--out",
         str(d / "results/train/backprop-float-0"), *P],
        ["evaluate", "--runs", str(d / "results/train"), "--out", str(d / "results/eval"), *P],
        ["figures", "--only", "fig2", "--only", "fig4", "--eval", str(d / "results/eval"), "--device-dir",
         str(d / "results/device"), "--out", str(d / "results/figures"), *P],
    ]
    for argv in steps:
        code, text = run_cli(argv)
        assert code == 0, f"{argv[:2]}: {text}"
    s = spec.read(d / "results/device/device.yaml")
    assert s.source.endswith("pulses_uS.csv") and s.devices == 6
    for fig in ("fig2_device", "fig4_hardware_training"):
        png = d / "results/figures" / f"{fig}.png"
        assert png.stat().st_size > 10_000
    assert not (d / "results/figures/fig1_storage.png").exists()  # --only
