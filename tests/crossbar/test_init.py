"""Initial weights independent of the device offsets (issue 11): arrays programmed by counted
pulses (write-verify) to a drawn weight matrix scaled to fan-in; float runs start from the same
weights read back; one array draw per training seed (base.seed + seed)."""

from pathlib import Path

import numpy as np
import pytest

from pipeline import cli, config
from pipeline.crossbar import arrays
from pipeline.devices import spec as dspec
from pipeline.errors import InputError
from pipeline.stages.instantiate import draw_params, load_arrays
from pipeline.training import run as R

ROOT = Path(__file__).resolve().parents[2]
POP = {"g_min_S": {"mean": 3.0e-4, "std": 6.0e-5}, "g_max_S": {"mean": 1.0e-3, "std": 1.5e-4},
       "dg_up_S": {"mean": 1.4e-5, "std": 2.8e-6}, "dg_down_S": {"mean": 1.0e-5, "std": 2.0e-6}}
SIZES = [30, 20, 5]


def _spec():
    return dspec.from_dict({"model": "soft-bounds", "population": POP, "c2c_std": 0.05})


def _params(**changes):
    return config.with_changes(config.Params(), changes)


def test_programmed_is_the_default_and_independent_of_the_device_offsets():
    assert config.Params().array.init == "programmed"
    p = _params()
    a = arrays.build(p, _spec(), SIZES)
    mid = arrays.build(_params(**{"array.init": "mid"}), _spec(), SIZES)
    # the same target on the same draw; the mid-range start carries the offsets of the draw
    target = a.weights0() + 0.0
    rng = np.random.default_rng(np.random.SeedSequence([0, 0xA55A]).spawn(3)[2])
    rng.normal(size=mid.g0.shape)  # the x0 draw comes first from the same generator
    t = arrays.target_weights(SIZES, p.array, rng)
    err = target - t
    assert np.sqrt(np.mean(err ** 2)) == pytest.approx(a.attrs["init_pulses"]["rms_weight_error"])
    step = max(a.ph.dw_pot, a.ph.dw_dep)  # one nominal pulse, in weight units: the write granularity
    assert np.sqrt(np.mean(err ** 2)) < min(step, 0.3 * np.sqrt(np.mean(t ** 2)))
    # the offsets: mid-range weights are set by the device spread, programmed ones are not
    offsets = np.sqrt(np.mean(mid.weights0() ** 2))
    assert offsets > 3 * np.sqrt(np.mean(t ** 2))
    # scaled to fan-in: layer l ~ U(-b, b), b = init_weight / sqrt(fan-in + 1)
    for l, fan_in in enumerate(SIZES[:-1]):
        w = arrays.layer_block(t, a.dev, l)
        b = 1.0 / np.sqrt(fan_in + 1)
        assert np.abs(w).max() <= b and np.std(w) == pytest.approx(b / np.sqrt(3), rel=0.15)


def test_two_device_draws_start_from_the_same_weights_up_to_the_write_error():
    """Programming makes the initial weights a property of the drawn matrix, not of the devices."""
    rng_t = np.random.default_rng(7)
    p = _params()
    t = arrays.target_weights(SIZES, p.array, rng_t)
    got = []
    for s in (0, 1):
        net = arrays.build(_params(**{"base.seed": s, "array.init": "mid"}), _spec(), SIZES)
        g = net.g0.copy()
        arrays.program_weights(g, net.dev, net.ph, t, seed=s)
        got.append(arrays.initial_weights(g, net.ph, net.dev))
        step = max(net.ph.dw_pot, net.ph.dw_dep)
        offsets = np.sqrt(np.mean(net.weights0() ** 2))
    assert not np.array_equal(got[0], got[1])
    diff = np.sqrt(np.mean((got[0] - got[1]) ** 2))
    assert diff < 1.5 * step and diff < 0.1 * offsets


def test_float_runs_start_from_the_programmed_weights_read_back():
    net = arrays.build(_params(), _spec(), SIZES)
    st = R.State.initial(net)
    assert np.array_equal(st.W, arrays.initial_weights(net.g0, net.ph, net.dev))


def test_one_draw_per_training_seed(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    dev = tmp_path / "device.yaml"
    dev.write_text(dspec.dump(_spec()))
    (tmp_path / "params.yaml").write_text("base:\n  seed: 3\ndataset:\n  name: iris\nnetwork:\n  hidden: [4]\n"
                                          "train:\n  seeds: [0, 2]\n")
    cli.main(["array", "init", "--device", str(dev), "--out", str(tmp_path / "a.zarr"), "--params", str(tmp_path / "params.yaml")])
    p = config.load(tmp_path / "params.yaml")
    nets = {s: load_arrays(tmp_path / "a.zarr", draw=s) for s in (0, 2)}
    for s, net in nets.items():  # seed s's arrays are the draw of base.seed + s
        ref = arrays.build(draw_params(p, s), _spec(), net.sizes)
        assert np.array_equal(net.g0, ref.g0) and np.array_equal(net.dev.g_min, ref.dev.g_min)
        assert net.ph == ref.ph._replace(parallel_min=net.ph.parallel_min) and net.attrs["seed"] == 3 + s
    assert not np.array_equal(nets[0].dev.g_min, nets[2].dev.g_min)
    with pytest.raises(InputError, match="seeds \\[0, 2\\], not seed 1"):
        load_arrays(tmp_path / "a.zarr", draw=1)
