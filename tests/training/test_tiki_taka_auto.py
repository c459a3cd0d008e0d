"""aihwkit's ChoppedTransferCompound learning-rate options for TTv2 / c-TTv2 (every aihwkit TTv2
and c-TTv2 preset sets ``auto_scale`` and ``auto_granularity``): ``tt_auto_scale`` (A's rate ×
n_max·ε / (m_x·m_d) with running means of each layer's largest |input| and |error|, aihwkit's
``updateAutoScale``), ``tt_auto_momentum``, ``tt_scale_fast_lr``, ``tt_auto_granularity`` (H's
threshold × g / samples per sweep) and ``tt_correct_gradient_magnitudes`` (A's read enters H
divided by A's rate). The state (m_x, m_d per layer) is in the checkpoint, ``run.zarr`` and the
storage ledger; ttv1 ignores the options (aihwkit's TransferCompound has none). They are the
defaults, with aihwkit's TTv2EcRamPreset values."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from pipeline import config, store
from pipeline.crossbar import kernels as K
from pipeline.crossbar import schemes as KS
from pipeline.training import loop, run, schemes
from tests.training.test_schemes import _iris_run, same_with_one_and_two_threads
from tests.training.test_tiki_taka import _A, _C, _fill_A, _tt_net, _zeros


def _cfg(order="progressive", **kw):
    return loop.Config(loop.ALGORITHM_CODES[order], loop.SIGMOID, loop.SIGMOID, loop.LOSS_MSE, loop.DERIV_EXACT, 5,
                       schemes.TIKI_TAKA, **kw)


def _write(net, ph, cfg, lrs, l, d, a, amax, g=None, step=0):
    """``loop.write_layer`` of layer ``l`` with error ``d`` and input ``a`` (in place on ``g`` and
    ``amax``); returns (g, pulses up, pulses down)."""
    g = net.g0.copy() if g is None else g
    cu, cd = _zeros(g)
    wk = loop.work(net.dev)
    wk.D[wk.zoff[l]:wk.zoff[l] + len(d)] = d
    wk.A[wk.aoff[l]:wk.aoff[l] + len(a)] = a
    st = loop.State(g, np.zeros(g.shape[1]), cu, cd, np.zeros(loop.N_LEDGER, np.int64), np.zeros(g.shape[1]),
                    np.zeros(0), np.zeros(0), amax)
    loop.write_layer(loop.Static(net.dev, ph, cfg, np.asarray(lrs, float)), st, wk, False, l, step)
    return g, cu, cd


# ------------------------------------------------------------------------------------- auto-scale


def test_running_means_are_aihwkits_update_auto_scale():
    """m takes the first positive value, then m ← (1 − τ)·m + τ·v with τ = 1 − momentum for
    every positive v; a zero v (an all-zero input or error) leaves m."""
    m = np.zeros(1)
    ref = 0.0
    vals = [0.0, 2.0, 0.5, 0.0, 3.0, 1.25]
    for v in vals:
        loop._mean_of_max(m, 0, np.array([0.5 * v, -v, 0.0]), 0.75)  # v = max |x|
        if ref <= 0.0:
            ref = v
        elif v > 0.0:
            ref = 0.75 * ref + 0.25 * v
        assert m[0] == ref
    assert m[0] == pytest.approx(0.75 * (0.75 * (0.75 * 2.0 + 0.125) + 0.75) + 0.3125)


def test_auto_scale_rate_and_the_pulses_of_the_largest_update():
    """Ideal device, nearest rounding: with auto-scale the first update of a layer sets m_x, m_d
    to its largest |a|, |δ|, and the cross-point of that largest product gets round(fast_lr·n_max)
    pulses whatever the gradient's size: (2a, δ/4) writes the same pulses bit for bit, while
    without auto-scale it writes half. A's rate is fast_lr × the layer's rate with
    ``tt_scale_fast_lr`` and fast_lr alone without; before both means are positive, the base."""
    net = _tt_net(0.0, sizes=(4, 5, 3), zero_shift=False)
    ph = net.ph._replace(encoding=K.ENC_NEAREST, n_max=31)
    rng = np.random.default_rng(3)
    d, a = rng.normal(size=3) * 0.02, rng.uniform(-1, 1, 6)
    auto = _cfg(tt_auto_scale=True, tt_scale_fast_lr=False, tt_fast_lr=0.25)
    eps = 0.5 * (ph.dw_pot + ph.dw_dep)
    lrs = [0.5, 0.5]
    amax = np.zeros(4)
    g1, cu1, cd1 = _write(net, ph, auto, lrs, 1, d, a, amax)
    assert amax[1] == np.abs(a).max() and amax[3] == np.abs(d).max() and amax[0] == amax[2] == 0.0
    dA = (_A(g1, net.dev, ph) - _A(net.g0, net.dev, ph))[net.dev.off[1]:].reshape(3, 6)
    i, j = np.abs(d).argmax(), np.abs(a).argmax()
    n = round(0.25 * ph.n_max)
    assert abs(dA[i, j]) == pytest.approx(n * eps, rel=1e-9) and np.abs(dA).max() == pytest.approx(n * eps, rel=1e-9)
    assert np.sign(dA[i, j]) == -np.sign(d[i] * a[j])
    g2, cu2, cd2 = _write(net, ph, auto, lrs, 1, d / 4, 2 * a, np.zeros(4))
    assert g1.tobytes() == g2.tobytes() and cu1.tobytes() == cu2.tobytes() and cd1.tobytes() == cd2.tobytes()
    # without auto-scale the gradient's size shows: (2a, δ/4) is half the request
    plain = _cfg(tt_fast_lr=20 * eps / (0.5 * np.abs(d).max() * np.abs(a).max()))  # the largest request: 20 ε
    g3, _, _ = _write(net, ph, plain, lrs, 1, d, a, np.zeros(0))
    g4, _, _ = _write(net, ph, plain, lrs, 1, d / 4, 2 * a, np.zeros(0))
    big = np.abs(_A(g3, net.dev, ph) - _A(net.g0, net.dev, ph)).max()
    small = np.abs(_A(g4, net.dev, ph) - _A(net.g0, net.dev, ph)).max()
    assert big == pytest.approx(20 * eps, abs=eps) and small == pytest.approx(big / 2, abs=eps)
    # the rate itself
    L = np.array(lrs)
    m = np.array([0.0, 2.0, 0.0, 0.25])
    assert loop.tt_fast_rate(auto, ph, L, m, 0) == 0.25  # layer 0 not yet updated
    assert loop.tt_fast_rate(auto, ph, L, m, 1) == pytest.approx(0.25 * ph.n_max * eps / 0.5, rel=1e-15)
    scaled = auto._replace(tt_scale_fast_lr=True)
    assert loop.tt_fast_rate(scaled, ph, L, m, 1) == pytest.approx(0.5 * 0.25 * ph.n_max * eps / 0.5, rel=1e-15)
    assert loop.tt_fast_rate(plain, ph, L, np.zeros(0), 1) == plain.tt_fast_lr * 0.5
    np.testing.assert_array_equal(loop.tt_fast_rates(auto, ph, L, m), [0.25, loop.tt_fast_rate(auto, ph, L, m, 1)])
    with pytest.raises(ValueError, match="State.amax"):
        _write(net, ph, auto, lrs, 1, d, a, np.zeros(0))


def test_zero_input_or_error_leaves_the_means_and_writes_nothing():
    net = _tt_net(0.0, sizes=(4, 5, 3), zero_shift=False)
    auto = _cfg(tt_auto_scale=True)
    amax = np.array([0.0, 0.5, 0.0, 0.125])
    g, cu, cd = _write(net, net.ph, auto, [0.5, 0.5], 1, np.zeros(3), np.ones(6), amax)
    assert g.tobytes() == net.g0.tobytes() and cu.sum() + cd.sum() == 0
    np.testing.assert_array_equal(amax, [0.0, 0.99 * 0.5 + 0.01 * 1.0, 0.0, 0.125])


# --------------------------------------------------------------------------- transfer threshold, H


def test_threshold_gains_of_auto_granularity():
    """g / (lines × transfer_every / reads per transfer), lines = input columns (+ bias) or output
    rows; None when off."""
    net = _tt_net(0.0, sizes=(4, 5, 3), zero_shift=False)
    assert loop.tt_threshold_gains(net.dev, _cfg()) is None
    cfg = _cfg(tt_auto_granularity=500.0, tt_transfer_every=2, tt_n_reads=3)
    np.testing.assert_allclose(loop.tt_threshold_gains(net.dev, cfg), [500 * 3 / (5 * 2), 500 * 3 / (6 * 2)], rtol=1e-15)
    rows = cfg._replace(tt_transfer_columns=False)
    np.testing.assert_allclose(loop.tt_threshold_gains(net.dev, rows), [500 * 3 / (5 * 2), 500 * 3 / (3 * 2)], rtol=1e-15)


@pytest.mark.parametrize("alg", [KS.TT_V2, KS.TT_C2])
def test_transfer_gains_equal_scaled_thresholds_and_rates(alg):
    """A threshold gain k is thres_scale × k, an H gain k is transfer_lr × k (powers of two: the
    same bits), layer by layer; with gains (1, k) only the second layer changes."""
    net = _tt_net(0.0, sizes=(4, 4, 2), zero_shift=False)
    ph = net.ph
    g0 = net.g0.copy()
    _fill_A(net, g0, np.random.default_rng(9), scale=0.003)
    L = 2

    def go(thres, lt, **kw):
        g = g0.copy()
        H = np.random.default_rng(10).uniform(-2, 2, g.shape[1]) * ph.dw_pot
        chop = np.ones(int(net.dev.cols.sum()))
        cu, cd = _zeros(g)
        out = KS.tt_transfer(g, net.dev, ph, H, chop, alg, 5, np.full(L, 1.0), lt, thres, 0.0, False, 0.0, 10**6,
                             0, 7, 0, cu, cd, None, True, False, True, 0.0, 0.0, 1, kw.get("h"), kw.get("t"))
        return out, g, H

    _, ref_g, ref_H = go(1.0, 2.0)
    for k in (4.0, 0.25):
        assert go(1.0, 2.0, t=np.full(L, k))[1].tobytes() == go(k, 2.0)[1].tobytes() != ref_g.tobytes()
        o1, g1, H1 = go(1.0, 2.0, h=np.full(L, k))
        o2, g2, H2 = go(1.0, 2.0 * k)
        assert o1 == o2 and g1.tobytes() == g2.tobytes() and H1.tobytes() == H2.tobytes() != ref_H.tobytes()
    _, g, _ = go(1.0, 2.0, t=np.array([1.0, 1e9]))
    first = slice(0, int(net.dev.off[1]))
    assert not np.array_equal(_C(ref_g, ph)[int(net.dev.off[1]):], _C(g0, ph)[int(net.dev.off[1]):])
    assert g[:, first].tobytes() == ref_g[:, first].tobytes()
    assert np.array_equal(_C(g, ph)[int(net.dev.off[1]):], _C(g0, ph)[int(net.dev.off[1]):])  # threshold 1e9: no pulse


def test_correct_gradient_magnitudes_divides_the_read_by_As_rate():
    """run_epoch with ``tt_correct_gradient_magnitudes``, A's rate r = fast_lr·η = 0.5 and
    transfer_lr 4 equals the run without it and transfer_lr 8 (= 4 / r) bit for bit; both
    differ from the run with transfer_lr 4 alone."""
    net = _tt_net(0.0, sizes=(4, 5, 3))
    rng = np.random.default_rng(4)
    X = rng.random((12, 4))
    T = np.eye(3)[rng.integers(0, 3, 12)]

    def go(**kw):
        cfg = _cfg(tt_algorithm=KS.TT_V2, tt_transfer_every=2, tt_n_reads=2, tt_fast_lr=0.25, tt_forget_buffer=False,
                   tt_max_steps=10**6, **kw)
        g = net.g0.copy()
        cu, cd = _zeros(g)
        led = np.zeros(loop.N_LEDGER, np.int64)
        H = np.zeros(g.shape[1])
        loop.run_epoch(g, net.weights0(), net.dev, net.ph, cfg, np.array([2.0, 2.0]), X, T, np.arange(36) % 12, 0,
                       10**9, cu, cd, led, np.zeros((1, 1, 1)), np.zeros(1, np.int64), 0.0, H, np.zeros(0),
                       np.zeros(4))
        assert led[loop.L_PULSES_UP] == cu.sum() and led[loop.L_PULSES_DOWN] == cd.sum()
        return g.tobytes() + H.tobytes()

    a = go(tt_correct_gradient=True, tt_transfer_lr=4.0)
    assert a == go(tt_transfer_lr=8.0)
    assert a != go(tt_transfer_lr=4.0)


# ----------------------------------------------------------------------- runs: state, resume, threads


_AUTO = ("train.scheme=tiki-taka", "train.tt_algorithm=c-ttv2", "train.zero_shift_cycles=50",
         "train.tt_transfer_every=2", "train.tt_in_chop_prob=0.3", "train.tt_auto_scale=true",
         "train.tt_auto_momentum=0.9", "train.tt_auto_granularity=20.0", "train.tt_fast_lr=0.1",
         "train.tt_scale_fast_lr=false")


def auto_digest(state, leds):
    h = hashlib.sha256()
    for a in (state.g, state.chi, state.chop, state.amax, state.cnt_up, state.cnt_dn, leds):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_resume_through_checkpoint_is_bit_identical():
    whole, led_whole = _iris_run([3], extra=_AUTO)
    cut, led_cut = _iris_run([1, 3], extra=_AUTO)
    assert whole.amax.shape == (4,) and (whole.amax > 0).all()
    assert whole.amax[0] >= 1.0  # m_x of the input layer: its inputs include the bias, 1
    assert auto_digest(whole, led_whole) == auto_digest(cut, led_cut)
    assert led_whole[:, loop.L_PULSES_UP].sum() == whole.cnt_up.sum()
    # auto-scale changes the run (params.yaml turns it on: switched off explicitly)
    plain, led_plain = _iris_run([3], extra=(*_AUTO, "train.tt_auto_scale=false"))
    assert auto_digest(plain, led_plain) != auto_digest(whole, led_whole)


def test_one_and_two_threads_bit_identical():
    same_with_one_and_two_threads(
        "from tests.training.test_schemes import _iris_run; "
        "from tests.training.test_tiki_taka_auto import _AUTO, auto_digest; s, l = _iris_run([2], extra=_AUTO)",
        "auto_digest(s, l)")


def test_run_store_holds_the_means_and_the_ledger_counts_them(tmp_path):
    from conftest import ROOT, iris_yaml, run_cli  # (not at the top: the threads test imports this module)
    (tmp_path / "params.yaml").write_text(iris_yaml("network: {hidden: [4]}\ntrain: {epochs: 2}\n"
                                                    "record: {probes: 2}\n"))
    dev = ROOT / "data" / "devices" / "ecram-softbounds.yaml"
    code, out = run_cli(["array", "init", "--device", str(dev), "--params", str(tmp_path / "params.yaml"),
                         "--out", str(tmp_path / "arrays.zarr")])
    assert code == 0, out
    sets = [x for kv in _AUTO for x in ("--set", kv)]
    code, out = run_cli(["train", "-a", "progressive", "--arrays", str(tmp_path / "arrays.zarr"), "--params",
                         str(tmp_path / "params.yaml"), "--out", str(tmp_path / "run"), *sets])
    assert code == 0, out
    ds = store.open_dataset(tmp_path / "run" / "run.zarr")
    for l in range(2):
        m = ds[f"tt_amax_{l}"].values
        assert m.shape == (2,) and (m > 0).all()
    W = 5 * 4 + 5 * 3
    assert ds.attrs["scheme_digital_per_weight"] == pytest.approx(1 + (5 + 5) / W + 2 * 2 / W + 1)
    # ttv1 ignores auto-scale (on by default): no means stored, none counted
    code, out = run_cli(["train", "-a", "progressive", "--arrays", str(tmp_path / "arrays.zarr"), "--params",
                         str(tmp_path / "params.yaml"), "--out", str(tmp_path / "run1"), "--set",
                         "train.scheme=tiki-taka", "--set", "train.tt_algorithm=ttv1", "--set", "train.epochs=1"])
    assert code == 0, out
    ds1 = store.open_dataset(tmp_path / "run1" / "run.zarr")
    assert "tt_amax_0" not in ds1.data_vars and ds1.attrs["scheme_digital_per_weight"] == 1.0  # A's zero only


# ------------------------------------------------------------------------------- params, storage


def test_storage_and_ttv1_ignores_the_options():
    sizes = [4, 8, 3]
    W = 5 * 8 + 9 * 3
    t = config.with_changes(config.Train(), {"tt_zero_shift": False, "tt_auto_scale": True})
    dpw = schemes.digital_per_weight
    assert dpw("tiki-taka", t, sizes) == pytest.approx(1.0 + 4 / W)  # H and m_x, m_d of two layers
    assert dpw("tiki-taka", config.with_changes(t, {"tt_auto_scale": False}), sizes) == 1.0
    # ttv1 (aihwkit's TransferCompound) has none of the three: it runs without them and holds nothing
    p = config.with_changes(config.Params(), {"train.scheme": "tiki-taka", "train.tt_algorithm": "ttv1",
                                              "train.tt_auto_scale": True, "train.tt_auto_granularity": 1000.0,
                                              "train.tt_correct_gradient_magnitudes": True})
    c = run.make_config(p, "progressive", 0)
    assert not c.tt_auto_scale and c.tt_auto_granularity == 0.0 and not c.tt_correct_gradient
    c2 = run.make_config(config.with_changes(p, {"train.tt_algorithm": "ttv2"}), "progressive", 0)
    assert c2.tt_auto_scale and c2.tt_auto_granularity == 1000.0 and c2.tt_correct_gradient
    assert dpw("tiki-taka", config.with_changes(t, {"tt_algorithm": "ttv1"}), sizes) == 0.0


def test_defaults_are_aihwkits_ttv2_ecram_preset():
    """aihwkit 1.2.0 TTv2EcRamPreset: fast_lr 0.1 (scale_fast_lr false), auto_scale, auto_granularity
    500, transfer_lr 1, one pulse per transfer, no chopper (ttv2); the registry's storage figure
    is the defaults' up to the 2·L running means."""
    t = config.Train()
    assert (t.tt_algorithm, t.tt_fast_lr, t.tt_scale_fast_lr, t.tt_auto_scale, t.tt_auto_granularity,
            t.tt_transfer_lr, t.tt_max_steps, t.tt_auto_momentum) == ("ttv2", 0.1, False, True, 500.0, 1.0, 1, 0.99)
    sizes = [64, 16, 10]
    W = 65 * 16 + 17 * 10
    assert schemes.digital_per_weight("tiki-taka", t, sizes) == pytest.approx(
        schemes.get("tiki-taka").digital_per_weight + 4 / W)
