"""Characterization readers: formats, unit conversion, look-up tables and every bad input (issue 3)."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from pipeline import cli
from pipeline.devices import readers
from pipeline.stages import characterize as synth  # write_table (the stage) and synthesize (imported there)
from _device_cases import make_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def traces():
    tr, _ = synth.synthesize(make_spec("soft-bounds"), 3, 2, 10, 7)
    return tr


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".zarr", ".nc"])
def test_table_roundtrip(tmp_path, traces, suffix):
    out = tmp_path / f"t{suffix}"
    synth.write_table(traces, out)
    back = readers.read_characterization(out)
    np.testing.assert_allclose(back.g, traces.g, rtol=1e-9)
    assert (back.pol == traces.pol).all() and back.devices == traces.devices


def _write_csv(path, cols):
    names = list(cols)
    rows = [",".join(names)] + [",".join(str(cols[c][i]) for c in names) for i in range(len(cols[names[0]]))]
    path.write_text("\n".join(rows) + "\n")
    return path


def _base():
    g = [5e-4, 5.1e-4, 5.2e-4, 5.15e-4, 5.1e-4]
    return {"device": ["a"] * 5, "cycle": [0] * 5, "pulse": [0, 1, 2, 3, 4], "polarity": [0, 1, 1, -1, -1],
            "conductance_S": g}


@pytest.mark.parametrize("col,scale", [("conductance_uS", 1e6), ("conductance_mS", 1e3)])
def test_unit_columns(tmp_path, col, scale):
    c = _base()
    c[col] = [v * scale for v in c.pop("conductance_S")]
    tr = readers.read_characterization(_write_csv(tmp_path / "u.csv", c))
    np.testing.assert_allclose(tr.g[0, 0], _base()["conductance_S"], rtol=1e-12)


def test_current_and_voltage(tmp_path):
    c = _base()
    c["current_A"] = [v * 0.1 for v in c.pop("conductance_S")]
    c["read_voltage_V"] = [0.1] * 5
    tr = readers.read_characterization(_write_csv(tmp_path / "i.csv", c))
    np.testing.assert_allclose(tr.g[0, 0], _base()["conductance_S"], rtol=1e-12)


def test_enode_tables():
    single = readers.read_characterization(ROOT / "data/enode/single")
    multi = readers.read_characterization(ROOT / "data/enode/multi")
    assert single.n_devices == 1 and single.tab_nb[0] == 48 and single.tab_np[0] == 122
    assert multi.n_devices == 9 and (multi.tab_nb == 501).all()
    assert 0.02 < multi.tab_g.min() and multi.tab_g.max() < 0.03  # siemens as shipped (20-28 mS)


def _bad_cases(tmp_path):
    cases = {}
    c = _base(); c.pop("polarity"); cases["missing"] = (_write_csv(tmp_path / "missing.csv", c), "column polarity")
    c = _base(); c["polarity"][2] = 2; cases["polarity"] = (_write_csv(tmp_path / "pol.csv", c), "row 4, column polarity")
    c = _base(); c["conductance_S"][1] = "nan"; cases["nan"] = (_write_csv(tmp_path / "nan.csv", c), "row 3, column conductance_S")
    c = _base(); c["conductance_S"][3] = -1e-4; cases["neg"] = (_write_csv(tmp_path / "neg.csv", c), "row 5, column conductance_S")
    c = _base(); c["pulse"] = [0, 2, 1, 3, 4]; cases["back"] = (_write_csv(tmp_path / "back.csv", c), "row 4, column pulse")
    (tmp_path / "empty.csv").write_text(""); cases["empty"] = (tmp_path / "empty.csv", "empty")
    c = _base(); c["polarity"] = [0, 1, 1, -1, 1]; cases["few"] = (_write_csv(tmp_path / "few.csv", c), "device a")
    lut = tmp_path / "lut"; lut.mkdir()
    body = "header\n1e-4,2e-4,3e-4\n0,0.5,1\n1e-6,1e-6,1e-6\n1e-6,1e-6\n1e-6,1e-6,1e-6\n"
    (lut / "dG_increasing.txt").write_text(body)
    with gzip.open(lut / "dG_decreasing.txt.gz", "wt") as fh:
        fh.write(body)
    cases["ragged"] = (lut, "row 5")
    return cases


@pytest.mark.parametrize("case", ["missing", "polarity", "nan", "neg", "back", "empty", "few", "ragged"])
def test_bad_input_exit_2(tmp_path, capsys, case):
    path, expect = _bad_cases(tmp_path)[case]
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        cli.main(["device", "fit", "--data", str(path), "--out", str(out), "--params", str(_params(tmp_path))])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and expect in err, err
    assert not out.exists() and not (tmp_path / ".out.tmp").exists()


def _params(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("device:\n  family: auto\n")
    return p
