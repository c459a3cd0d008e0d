"""Synthesiser and fit: noise separation, the ENODe sets, speed, CLI outputs (issue 3)."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline import cli
from pipeline.devices import fit, readers, spec as S, synth
from _device_cases import READ, make_spec

ROOT = Path(__file__).resolve().parents[2]


def test_read_noise_only_gives_no_c2c():
    tr, _ = synth.synthesize(make_spec("soft-bounds", c2c=0.0, d2d=0.0), 8, 3, 100, 5)
    res = fit.fit_data(tr, family="soft-bounds")
    assert res.spec.c2c_std < 0.05
    assert abs(res.spec.read_noise_S / READ - 1) < 0.1
    assert abs(res.metrics["lag1_corr"] + 0.5) < 0.05  # read noise alone: lag-1 correlation -0.5


def test_write_noise_only_gives_no_read_noise():
    tr, _ = synth.synthesize(make_spec("soft-bounds", read=0.0, d2d=0.0), 8, 3, 100, 6)
    res = fit.fit_data(tr, family="soft-bounds")
    assert res.spec.read_noise_S < 0.1 * READ
    assert abs(res.spec.c2c_std / 0.3 - 1) < 0.1


def test_synth_is_deterministic():
    a, _ = synth.synthesize(make_spec("linear"), 2, 2, 20, 9)
    b, _ = synth.synthesize(make_spec("linear"), 2, 2, 20, 9)
    assert np.array_equal(a.g, b.g)


def test_fit_time_9x10x200_and_auto_on_long_ramps():
    """Long soft-bounds ramps (most steps near the bounds) fit within a minute and auto keeps soft-bounds."""
    tr, _ = synth.synthesize(make_spec("soft-bounds"), 9, 10, 200, 11)
    t0 = time.perf_counter()
    res = fit.fit_data(tr, family="auto")
    dt = time.perf_counter() - t0
    print(f"fit 9x10x200: {dt:.2f} s", {f: v["bic"] for f, v in res.spec.extra["families"].items()})
    assert dt < 60
    assert res.chosen == "soft-bounds"


@pytest.mark.parametrize("which", ["single", "multi"])
def test_enode_fit(which):
    res = fit.fit_data(readers.read_characterization(ROOT / "data/enode" / which), family="auto")
    print(which, res.chosen, {f: round(v, 3) for f, v in res.r2.items()}, res.spec.c2c_std)
    assert res.spec.devices == (1 if which == "single" else 9)
    assert res.r2[res.chosen] > 0.5 and res.spec.table == {"source": res.spec.source}


def test_table_family_synth_samples_luts():
    raw = {"model": "table", "population": {"g_min_S": 3e-4, "g_max_S": 1e-3, "dg_up_S": 1e-5, "dg_down_S": 1e-5},
           "table": {"source": str(ROOT / "data/enode/multi")}}
    tr, truth = synth.synthesize(S.from_dict(raw), 9, 2, 50, 3)
    lut = readers.read_lut_folder(ROOT / "data/enode/multi")
    lo, hi = lut.tab_g[:, 0], lut.tab_g[np.arange(9), lut.tab_nb - 1]
    assert np.all(np.nanmin(tr.g, axis=(1, 2)) >= lo - 1e-12) and np.all(np.nanmax(tr.g, axis=(1, 2)) <= hi + 1e-12)
    assert np.all(np.nanmax(tr.g, axis=(1, 2)) > tr.g[:, 0, 0])  # potentiation moved up


def test_cli_synth_then_fit(tmp_path):
    dev = tmp_path / "dev.yaml"
    dev.write_text(S.dump(make_spec("soft-bounds")))
    table, truth, out = tmp_path / "t.csv.gz", tmp_path / "truth.yaml", tmp_path / "fit"
    params = tmp_path / "params.yaml"
    params.write_text("device:\n  family: auto\n")
    cli.main(["device", "synth", "--device", str(dev), "--devices", "4", "--cycles", "2", "--pulses", "50",
              "--seed", "1", "--out", str(table), "--truth", str(truth)])
    assert yaml.safe_load(truth.read_text())["model"] == "soft-bounds"
    cli.main(["device", "fit", "--data", str(table), "--out", str(out), "--params", str(params)])
    spec = S.read(out / "device.yaml")
    metrics = json.loads((out / "metrics.json").read_text())
    assert spec.devices == 4 and metrics["family"] == spec.model and set(spec.extra) >= {"families", "uncertainty", "fit"}
    from pipeline.store import open_dataset

    ds = open_dataset(out / "fit.zarr")
    assert ds["estimate"].dims == ("device", "family", "param") and "trace_g" in ds and ds["point_g"].attrs["units"] == "S"
    first = (out / "device.yaml").read_text()
    cli.main(["device", "fit", "--data", str(table), "--out", str(out), "--params", str(params)])
    assert (out / "device.yaml").read_text() == first  # deterministic, no timestamps
