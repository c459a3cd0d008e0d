"""Array instantiation (issue 4): d2d draws, table draws, stuck devices, initial conductances,
derived scales, storage round trip, and bad array params stopping with exit 2 and one line."""

from pathlib import Path

import numpy as np
import pytest

from pipeline import cli, config
from pipeline.crossbar import arrays, kernels as K
from pipeline.stages.instantiate import load_arrays, save_arrays
from pipeline.devices import law, spec as dspec

ROOT = Path(__file__).resolve().parents[2]
POP = {"g_min_S": {"mean": 3.0e-4, "std": 3.0e-5}, "g_max_S": {"mean": 1.0e-3, "std": 1.0e-4},
       "dg_up_S": {"mean": 1.4e-5, "std": 2.8e-6}, "dg_down_S": {"mean": 1.0e-5, "std": 2.0e-6}}
CORR = {"names": ["g_min_S", "g_max_S", "dg_up_S", "dg_down_S"],
        "matrix": [[1, 0.6, 0, 0], [0.6, 1, 0, -0.4], [0, 0, 1, 0.7], [0, -0.4, 0.7, 1]]}
SIZES = [60, 40, 30]


def _spec(**kw):
    return dspec.from_dict({"model": "soft-bounds", "population": POP, "c2c_std": 0.3, **kw})


def _params(**changes):
    return config.with_changes(config.Params(), {f"array.{k}" if "." not in k else k: v for k, v in changes.items()})


@pytest.mark.parametrize("dist", ["truncnormal", "lognormal"])
def test_d2d_draws_keep_moments_and_correlations(dist):
    net = arrays.build(_params(d2d_dist=dist), _spec(correlations=CORR), SIZES)
    dev = net.dev
    v = {nm: getattr(dev, nm).ravel() for nm in ("g_min", "g_max", "dg_up", "dg_down")}
    for nm, key in zip(v, CORR["names"]):
        assert v[nm].mean() == pytest.approx(POP[key]["mean"], rel=0.02)
        assert v[nm].std() == pytest.approx(POP[key]["std"], rel=0.08)
        assert v[nm].min() > 0
    assert np.all(dev.g_max > dev.g_min)
    c = np.corrcoef(np.vstack(list(v.values())))
    assert np.allclose(c, np.asarray(CORR["matrix"]), atol=0.06)
    if dist == "lognormal":  # skewed to the right like a log-normal
        x = v["dg_up"]
        assert ((x - x.mean()) ** 3).mean() > 0


def test_scales_initial_state_and_stuck():
    p = _params(init="mid", stuck_fraction=0.1, stuck_high=0.3, init_center=0.4, init_spread=0.05, w_max=2.0)
    net = arrays.build(p, _spec(), SIZES)
    dev, g0, ph = net.dev, net.g0, net.ph
    rng_ = dev.g_max - dev.g_min
    assert ph.g_scale == pytest.approx(rng_.mean() / 2.0)
    assert ph.g_ref == pytest.approx(dev.g_min.mean() + 0.5 * rng_.mean())
    assert ph.dw_pot == pytest.approx(1.4e-5 * 0.5 / ph.g_scale) and ph.dw_dep == pytest.approx(1.0e-5 * 0.5 / ph.g_scale)
    stuck = dev.stuck != 0
    assert stuck.mean() == pytest.approx(0.1, abs=0.01)
    hi = stuck & (g0 == dev.g_max)
    assert hi.sum() / stuck.sum() == pytest.approx(0.3, abs=0.05)
    assert np.all(g0[stuck & ~hi] == dev.g_min[stuck & ~hi])
    x = ((g0 - dev.g_min) / rng_)[~stuck]
    assert x.mean() == pytest.approx(0.4, abs=0.005) and x.std() == pytest.approx(0.05, rel=0.05)
    assert g0.shape == (2, int(dev.off[-1])) and list(dev.rows) == [40, 30] and list(dev.cols) == [61, 41]


def test_programmed_initial_weights():
    p = _params(init="programmed", init_weight=1.0, policy="alternate")
    net = arrays.build(p, _spec(), SIZES)
    info = net.attrs["init_pulses"]
    assert info["pulses_up"] + info["pulses_down"] > 0
    target = arrays.target_weights(SIZES, p.array, np.random.default_rng(0))
    assert np.all(np.abs(target[:40 * 61]) <= 1 / np.sqrt(61))
    # programmed weights are close to targets: error well below the targets' own spread
    assert info["rms_weight_error"] < 0.3 * np.sqrt(np.mean(target ** 2))
    assert np.all(net.g0 >= net.dev.g_min) and np.all(net.g0 <= net.dev.g_max)


def test_table_device_draws_one_measured_table_per_crosspoint():
    src = ROOT / "data" / "enode" / "multi"
    if not src.exists():
        pytest.skip("no bundled look-up tables")
    spec = dspec.from_dict({"model": "table", "population": POP, "table": {"source": str(src)}})
    net = arrays.build(_params(), spec, [30, 20])
    dev = net.dev
    T = len(dev.tab_nb)
    counts = np.bincount(dev.table.ravel(), minlength=T)
    assert T >= 2 and counts.min() > 0.5 * counts.mean()
    last = dev.tab_g[dev.table, dev.tab_nb[dev.table] - 1]
    assert np.array_equal(dev.g_min, dev.tab_g[dev.table, 0]) and np.array_equal(dev.g_max, last)
    assert net.ph.family == law.TABLE and net.ph.c2c == 0.0 and net.ph.dw_pot > 0 and net.ph.dw_dep > 0


def test_save_load_round_trip(tmp_path):
    net = arrays.build(_params(stuck_fraction=0.05), _spec(), [5, 4, 3])
    save_arrays(net, tmp_path / "a.zarr", {"x": 1})
    back = load_arrays(tmp_path / "a.zarr", parallel_min=7)
    assert np.array_equal(back.g0, net.g0)
    for nm in K.Devices._fields:
        assert np.array_equal(getattr(back.dev, nm), getattr(net.dev, nm)), nm
    assert back.ph == net.ph._replace(parallel_min=7)


def test_same_seed_same_arrays_other_seed_other_arrays():
    a = arrays.build(_params(), _spec(), [5, 4])
    b = arrays.build(_params(), _spec(), [5, 4])
    c = arrays.build(_params(**{"base.seed": 1}), _spec(), [5, 4])
    assert np.array_equal(a.g0, b.g0) and np.array_equal(a.dev.dg_up, b.dev.dg_up)
    assert not np.array_equal(a.g0, c.g0)


@pytest.mark.parametrize("override, key", [
    ("network.hidden=[0]", "network.hidden"),
    ("array.mapping=crossed", "array.mapping"),
    ("array.g_ref=0.99", "array.g_ref"),
    ("array.adc_bits=0", "array.adc_bits"),
])
def test_bad_array_params_exit_2_one_line(tmp_path, capsys, monkeypatch, override, key):
    monkeypatch.chdir(ROOT)  # bundled dataset
    dev = tmp_path / "device.yaml"
    dev.write_text(dspec.dump(_spec()))
    (tmp_path / "params.yaml").write_text("dataset:\n  name: iris\nnetwork:\n  hidden: [4]\n")
    extra = ["--set", "array.mapping=reference"] if "g_ref" in override else []
    with pytest.raises(SystemExit) as exc:
        cli.main(["array", "init", "--device", str(dev), "--out", str(tmp_path / "a.zarr"),
                  "--params", str(tmp_path / "params.yaml"), *extra, "--set", override])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and key.split(".")[-1] in err, err
    assert not (tmp_path / "a.zarr").exists()


def test_array_init_command_writes_store(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    dev = tmp_path / "device.yaml"
    dev.write_text(dspec.dump(_spec()))
    (tmp_path / "params.yaml").write_text("dataset:\n  name: iris\nnetwork:\n  hidden: [4]\narray:\n  init: programmed\n")
    cli.main(["array", "init", "--device", str(dev), "--out", str(tmp_path / "a.zarr"), "--params", str(tmp_path / "params.yaml")])
    net = load_arrays(tmp_path / "a.zarr", draw=0)
    assert net.sizes[1] == 4 and net.attrs["init"] == "programmed" and net.attrs["init_pulses"]["pulses_up"] > 0
