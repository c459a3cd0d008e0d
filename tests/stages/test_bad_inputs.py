"""The bad-input corpus (issue 7): every case stops with exit status 2 and ONE line that names the
place and what was expected, no traceback, and nothing written where the output would go."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from conftest import ROOT, run_cli

HEADER = "device,cycle,pulse,polarity,conductance_S\n"
GOOD_DEVICE = (ROOT / "data" / "devices" / "ecram-softbounds.yaml").read_text()


def _ramp_rows(device="d1", n=4, g0=3.0e-4, step=1.0e-5):
    rows = [f"{device},0,0,0,{g0:.6e}"]
    g = g0
    for k in range(1, n + 1):
        g += step
        rows.append(f"{device},0,{k},1,{g:.6e}")
    for k in range(n + 1, 2 * n + 1):
        g -= step
        rows.append(f"{device},0,{k},-1,{g:.6e}")
    return rows


def _csv(rows, header=HEADER):
    return header + "\n".join(rows) + "\n"


@dataclass
class Case:
    name: str
    files: dict[str, str | bytes]  # relative path -> content
    argv: Callable[[Path], list[str]]
    expect: str  # a fragment of the one-line message
    out: str = "out"  # what must not appear


def fit(data: str, out: str = "out", *extra: str):
    return lambda d: ["device", "fit", "--data", str(d / data), "--out", str(d / out), "--params", str(d / "params.yaml"), *extra]


def init(device: str = "dev.yaml", params: str = "params.yaml"):
    return lambda d: ["array", "init", "--device", str(d / device), "--params", str(d / params), "--out", str(d / "out")]


def train(*extra: str):
    return lambda d: ["train", "-a", "progressive", "--arrays", str(d / "arrays.zarr"), "--params", str(d / "params.yaml"),
                      "--out", str(d / "out"), *extra]


def _bad_rows(transform):
    rows = _ramp_rows()
    return _csv(transform(rows))


def _replace(rows, i, new):
    rows = list(rows)
    rows[i] = new
    return rows


LUT_OK = "1st Row = Gbins\n0.1, 0.2, 0.3\n0.0, 0.5, 1.0\n1.0, 1.0, 1.0\n2.0, 2.0, 2.0\n3.0, 3.0, 3.0\n"
LUT_RAGGED = "1st Row = Gbins\n0.1, 0.2, 0.3\n0.0, 0.5, 1.0\n1.0, 1.0, 1.0\n2.0, 2.0\n3.0, 3.0, 3.0\n"
LUT_TEXT = "1st Row = Gbins\n0.1, 0.2, 0.3\n0.0, 0.5, 1.0\n1.0, abc, 1.0\n2.0, 2.0, 2.0\n3.0, 3.0, 3.0\n"

CASES = [
    # ----------------------------------------------------------------- characterization tables
    Case("table-header-only", {"t.csv": HEADER}, fit("t.csv"), "empty"),
    Case("table-zero-bytes", {"t.csv": ""}, fit("t.csv"), "t.csv"),
    Case("table-missing-column", {"t.csv": _csv([r.rsplit(",", 2)[0] + "," + r.rsplit(",", 1)[1] for r in _ramp_rows()],
                                                "device,cycle,pulse,conductance_S\n")}, fit("t.csv"), "polarity"),
    Case("table-unknown-polarity", {"t.csv": _bad_rows(lambda r: _replace(r, 2, "d1,0,2,2,3.2e-4"))}, fit("t.csv"),
         "column polarity: got 2, expected +1, -1 or 0"),
    Case("table-nan-conductance", {"t.csv": _bad_rows(lambda r: _replace(r, 3, "d1,0,3,1,nan"))}, fit("t.csv"),
         "expected a finite number"),
    Case("table-negative-conductance", {"t.csv": _bad_rows(lambda r: _replace(r, 3, "d1,0,3,1,-3.0e-4"))}, fit("t.csv"),
         "non-negative"),
    Case("table-pulse-backwards", {"t.csv": _bad_rows(lambda r: _replace(r, 3, "d1,0,1,1,3.3e-4"))}, fit("t.csv"),
         "pulse"),
    Case("table-too-few-pulses", {"t.csv": _csv(_ramp_rows(n=1))}, fit("t.csv"), "expected at least 2 per polarity"),
    Case("table-wrong-units", {"t.csv": _csv(_ramp_rows(), HEADER.replace("conductance_S", "conductance_kS"))}, fit("t.csv"),
         "conductance"),
    Case("table-current-without-voltage", {"t.csv": _csv(_ramp_rows(), HEADER.replace("conductance_S", "current_A"))},
         fit("t.csv"), "read_voltage_V"),
    Case("table-not-gzip", {"t.csv.gz": b"this is not gzip"}, fit("t.csv.gz"), "t.csv.gz"),
    Case("table-missing-path", {}, fit("nope.csv"), "nope.csv"),
    Case("fit-output-is-a-file", {"t.csv": _csv(_ramp_rows()), "outfile": "x"}, fit("t.csv", "outfile"), "outfile",
         out="outfile/device.yaml"),
    # ----------------------------------------------------------------------- look-up tables
    Case("lut-ragged", {"lut/dG_increasing.txt": LUT_RAGGED, "lut/dG_decreasing.txt": LUT_OK}, fit("lut"), "dG_increasing"),
    Case("lut-non-numeric", {"lut/dG_increasing.txt": LUT_OK, "lut/dG_decreasing.txt": LUT_TEXT}, fit("lut"), "dG_decreasing"),
    Case("lut-missing-file", {"lut/dG_increasing.txt": LUT_OK}, fit("lut"), "dG_decreasing"),
    Case("lut-empty-folder", {"lut/README": "nothing"}, fit("lut"), "lut"),
    # --------------------------------------------------------------------------- params.yaml
    Case("params-unknown-key", {"params.yaml": "train:\n  epochz: 2\n"}, train(), "train.epochz: unknown key"),
    Case("params-wrong-type", {"params.yaml": "train:\n  epochs: two\n"}, train(), "train.epochs: got 'two', expected an integer"),
    Case("params-negative-lr", {"params.yaml": "train:\n  lr: [-0.1]\n"}, train(), "train.lr[0]: got -0.1"),
    Case("params-zero-epochs", {"params.yaml": "train:\n  epochs: 0\n"}, train(), "train.epochs: got 0"),
    Case("params-unknown-section", {"params.yaml": "trian:\n  epochs: 2\n"}, train(), "unknown section"),
    Case("params-bad-yaml", {"params.yaml": "train:\n  epochs: [1,\n"}, train(), "not valid YAML"),
    Case("params-missing-file", {}, train(), "params.yaml: file not found"),
    Case("params-adc-bits-zero", {"params.yaml": "array:\n  adc_bits: 0\n", "dev.yaml": GOOD_DEVICE}, init(),
         "array.adc_bits: got 0"),
    Case("params-zero-width-layer", {"params.yaml": "network:\n  hidden: [0]\n", "dev.yaml": GOOD_DEVICE}, init(),
         "network.hidden[0]: got 0"),
    Case("params-unknown-mapping", {"params.yaml": "array:\n  mapping: crossbar\n", "dev.yaml": GOOD_DEVICE}, init(),
         "array.mapping"),
    Case("params-nan", {"params.yaml": "train:\n  lr: [.nan]\n"}, train(), "finite"),
    Case("params-dataset-missing", {"params.yaml": "dataset:\n  name: mine.csv\n", "dev.yaml": GOOD_DEVICE}, init(),
         "dataset.name mine.csv"),
    Case("params-dataset-nan", {"params.yaml": "dataset:\n  name: DIR/mine.csv\n", "mine.csv": "1,2,0\n3,nan,1\n1,1,0\n2,2,1\n",
                                "dev.yaml": GOOD_DEVICE}, init(), "row 2"),
    # ---------------------------------------------------------------------------- device.yaml
    Case("device-missing-param", {"params.yaml": "", "dev.yaml": GOOD_DEVICE.replace("  dg_up_S:", "  dg_upp_S:")}, init(),
         "population.dg_up"),
    Case("device-negative-step", {"params.yaml": "", "dev.yaml": GOOD_DEVICE.replace("{mean: 1.4e-5", "{mean: -1.4e-5")},
         init(), "population.dg_up_S.mean"),
    Case("device-gmax-below-gmin", {"params.yaml": "", "dev.yaml": GOOD_DEVICE.replace("{mean: 1.0e-3", "{mean: 1.0e-4")},
         init(), "g_max_S"),
    Case("device-unknown-model", {"params.yaml": "", "dev.yaml": GOOD_DEVICE.replace("model: soft-bounds", "model: memristor")},
         init(), "model"),
    Case("device-file-missing", {"params.yaml": ""}, init("nodev.yaml"), "nodev.yaml"),
    Case("g-ref-outside-range", {"params.yaml": "array:\n  mapping: reference\n  g_ref: 0.0\n", "dev.yaml": GOOD_DEVICE},
         init(), "array.g_ref"),
    # ---------------------------------------------------------------------- command-line args
    Case("cli-unknown-algorithm", {"params.yaml": ""}, lambda d: ["train", "-a", "sgd", "--params", str(d / "params.yaml"),
                                                                 "--out", str(d / "out")], "--algorithm: got 'sgd'"),
    Case("cli-arrays-missing", {"params.yaml": ""}, train(), "arrays store not found"),
    Case("cli-unknown-figure", {"params.yaml": ""}, lambda d: ["figures", "--only", "fig9", "--params", str(d / "params.yaml"),
                                                              "--out", str(d / "out")], "--only"),
    Case("cli-runs-missing", {"params.yaml": ""}, lambda d: ["evaluate", "--runs", str(d / "none"), "--params",
                                                            str(d / "params.yaml"), "--out", str(d / "out")], "runs folder not found"),
    Case("cli-set-without-value", {"params.yaml": ""}, train("--set", "train.epochs"), "--set"),
    Case("cli-train-out-is-file", {"params.yaml": "", "outfile": "x"},
         lambda d: ["train", "-a", "progressive", "--params", str(d / "params.yaml"), "--arrays", str(d / "arrays.zarr"),
                    "--out", str(d / "outfile" / "run")], "outfile", out="outfile/run"),
    Case("cli-synth-zero-devices", {"dev.yaml": GOOD_DEVICE},
         lambda d: ["device", "synth", "--device", str(d / "dev.yaml"), "--devices", "0", "--out", str(d / "out.csv")],
         "--devices", out="out.csv"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path):
    for rel, content in case.files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content.replace("DIR", str(tmp_path)))
    if "params.yaml" not in case.files and case.name != "params-missing-file":
        (tmp_path / "params.yaml").write_text("")
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    code, text = run_cli(case.argv(tmp_path))
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert code == 2, text
    assert len(lines) == 1, text
    assert lines[0].startswith("error: ") and "Traceback" not in text
    assert case.expect in lines[0], lines[0]
    after = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert after == before, set(after) ^ set(before)  # nothing written, not even a temporary sibling
    assert not (tmp_path / case.out).exists()


def test_corpus_is_large_enough():
    assert len(CASES) >= 30


def test_gzip_and_units_are_accepted(tmp_path):
    """The good twins of two corpus cases: a gzipped table in µS fits."""
    rows = [r.rsplit(",", 1)[0] + f",{float(r.rsplit(',', 1)[1]) * 1e6:.4f}" for r in
            _ramp_rows(n=6) + _ramp_rows("d2", n=6, g0=3.2e-4)]
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(_csv(rows, HEADER.replace("conductance_S", "conductance_uS")))
    (tmp_path / "params.yaml").write_text("")
    code, text = run_cli(["device", "fit", "--data", str(path), "--family", "constant", "--out", str(tmp_path / "out"),
                          "--params", str(tmp_path / "params.yaml")])
    assert code == 0, text
    from pipeline.devices import spec

    s = spec.read(tmp_path / "out" / "device.yaml")
    assert np.isclose(s.population["dg_up_S"].mean, 1.0e-5, rtol=0.05)


@pytest.mark.parametrize("fmt", ["zarr", "nc"])
@pytest.mark.parametrize("problem", ["missing-variable", "nan"])
def test_bad_dataset_inputs(tmp_path, fmt, problem):
    """Zarr and NetCDF characterization datasets get the same checks as tables."""
    import xarray as xr

    rows = [r.split(",") for r in _ramp_rows(n=5)]
    n = len(rows)
    g = np.array([float(r[4]) for r in rows])
    if problem == "nan":
        g[3] = np.nan
    ds = xr.Dataset({"device": ("read", np.array(["d1"] * n)), "cycle": ("read", np.zeros(n, int)),
                     "pulse": ("read", np.array([int(r[2]) for r in rows])),
                     "polarity": ("read", np.array([int(r[3]) for r in rows])), "conductance_S": ("read", g)})
    if problem == "missing-variable":
        ds = ds.drop_vars("polarity")
    path = tmp_path / f"char.{fmt}"
    if fmt == "zarr":
        ds.to_zarr(path, zarr_format=3, consolidated=False)
    else:
        ds.to_netcdf(path)
    (tmp_path / "params.yaml").write_text("")
    code, text = run_cli(["device", "fit", "--data", str(path), "--out", str(tmp_path / "out"), "--params",
                          str(tmp_path / "params.yaml")])
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), text
    assert ("polarity" if problem == "missing-variable" else "finite") in lines[0]
    assert not (tmp_path / "out").exists()
