"""Tiki-Taka (issue 11): the four-plane tile's algebra (forward weight γ·A + C), the transfer
kernels of TTv1 / TTv2 / c-TTv2 (zero reads change nothing, conductances stay in bounds, TTv1
moves A's read into C within a step, TTv2's buffer loses exactly the issued pulses' worth, the
chopper's sign is undone on the read), zero-shift calibration (finds the analytic symmetry point
of soft-bounds devices), the ledger against the kernel counters, resume identity through the
checkpoint and 1 vs 2 numba threads."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import config
from pipeline.crossbar import arrays as arr
from pipeline.crossbar import kernels as K
from pipeline.crossbar import reference as R
from pipeline.crossbar import schemes as KS
from pipeline.devices import law
from pipeline.errors import InputError
from pipeline.training import loop, run, schemes
from tests.training.test_schemes import _iris_run, digest, same_with_one_and_two_threads
from tests.training.test_training_algebra import IDEAL, make_net

TILE4 = ((0.5, -0.5, 1.0, -1.0), (0.0,) * 4, (0, 1))


def _zeros(g):
    return np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)


def _tt_net(gamma, sizes=(3, 4, 2), zero_shift=True, spec=IDEAL):
    net = arr.with_transfer_pair(make_net(list(sizes), spec=spec), gamma, 0)
    return arr.zero_shift(net, 20, 3) if zero_shift else net


def _A(g, dev, ph):
    z = dev.zero if dev.zero.shape[0] else 0.0
    return (g[0] - g[1] - z) / ph.g_scale


def _C(g, ph):
    return (g[2] - g[3]) / ph.g_scale


def _transfer(net, g, H, chop, alg, *, n_reads=1, lt=1.0, thres=1.0, momentum=0.0, forget=False, chop_prob=0.0,
              max_steps=10**6, event=0, step=0, ph=None):
    cu, cd = _zeros(g)
    L = net.dev.rows.shape[0]
    out = KS.tt_transfer(g, net.dev, net.ph if ph is None else ph, H, chop, alg, n_reads, np.full(L, lt), 1.0, thres,
                         momentum, forget, chop_prob, max_steps, event, 7, step, cu, cd)
    return out, cu, cd


def _fill_A(net, g, rng, scale=0.05):
    """Training-like writes into A of every layer (ideal device: A moves by whole steps)."""
    cu, cd = _zeros(g)
    for layer in range(net.dev.rows.shape[0]):
        d = rng.normal(size=int(net.dev.rows[layer]))
        a = rng.uniform(-1.0, 1.0, size=int(net.dev.cols[layer]))
        KS.tt_write_fast(g, net.dev, net.ph, layer, d, a, scale, np.zeros(0), False, 5, layer, cu, cd)
    return cu, cd


# ---------------------------------------------------------------------------------- registry, params


def test_registry_params_and_storage():
    tt = schemes.get("tiki-taka")
    assert tt.planes == 4 and tt.code == schemes.TIKI_TAKA
    for key in tt.params:
        assert hasattr(config.Train(), key)
    sizes = [4, 8, 3]
    t = config.with_changes(config.Train(), {"tt_zero_shift": False, "tt_auto_scale": False})
    W = 5 * 8 + 9 * 3
    assert schemes.digital_per_weight("tiki-taka", config.with_changes(t, {"tt_algorithm": "ttv1"}), sizes) == 0.0
    assert schemes.digital_per_weight("tiki-taka", config.with_changes(t, {"tt_algorithm": "ttv2"}), sizes) == 1.0
    assert schemes.digital_per_weight("tiki-taka", config.with_changes(t, {"tt_algorithm": "c-ttv2"}), sizes) == \
        pytest.approx(1.0 + (5 + 9) / W)
    assert schemes.digital_per_weight("direct", config.with_changes(t, {"zero_shift": True}), sizes) == 1.0
    # the defaults without auto-scale: TTv2 with A zero-shift calibrated (H and the offset), the registry's figure
    assert tt.digital_per_weight == 2.0
    assert schemes.digital_per_weight("tiki-taka", config.with_changes(config.Train(), {"tt_auto_scale": False}),
                                      sizes) == 2.0
    with pytest.raises(InputError, match="train.tt_algorithm"):
        config.with_changes(config.Params(), {"train.tt_algorithm": "ttv3"})
    p = config.with_changes(config.Params(), {"train.scheme": "tiki-taka", "train.tt_algorithm": "c-ttv2",
                                              "train.tt_gamma": 0.5})
    with pytest.raises(InputError, match="train.tt_gamma"):
        run.make_config(p, "progressive", 0)


# ---------------------------------------------------------------------------------------- algebra


def test_forward_weight_is_gamma_A_plus_C():
    """Ideal symmetric device, A zero-shift calibrated: every read of the tile is γ·A + C."""
    net = _tt_net(0.5)
    g = net.g0.copy()
    dev, ph = net.dev, net.ph
    np.testing.assert_allclose(_A(g, dev, ph), 0.0, atol=1e-12)  # A starts at its zero (no read noise)
    np.testing.assert_allclose(arr.initial_weights(g, ph, dev), make_net([3, 4, 2]).weights0(), atol=1e-12)
    _fill_A(net, g, np.random.default_rng(1))
    A, C = _A(g, dev, ph), _C(g, ph)
    assert np.abs(A).max() > 100 * ph.dw_pot
    w = np.concatenate([K.weights(g, dev, ph, l).ravel() for l in range(2)])
    np.testing.assert_allclose(w, 0.5 * A + C, rtol=0, atol=1e-12)
    x = np.random.default_rng(2).uniform(-1, 1, 4)
    x[-1] = 1.0
    y = np.zeros(4)
    K.read_forward(g, dev, ph, 0, x, y, np.uint64(1), False)
    np.testing.assert_allclose(y, (0.5 * A + C)[:16].reshape(4, 4) @ x, rtol=0, atol=1e-12)


def test_zero_A_and_zero_gradient_change_nothing():
    net = _tt_net(0.0, sizes=(4, 4, 2))
    g0 = net.g0.copy()
    H = np.zeros(g0.shape[1])
    chop = np.ones(int(net.dev.cols.sum()))
    for alg in (KS.TT_V1, KS.TT_V2, KS.TT_C2):
        g = g0.copy()
        (up, dn, nr), cu, cd = _transfer(net, g, H, chop, alg, n_reads=5)
        assert up == dn == 0 and cu.sum() + cd.sum() == 0 and nr == g.shape[1]  # every column once
        assert np.array_equal(g, g0) and not H.any()
    cu, cd = _zeros(g0)
    g = g0.copy()
    assert KS.tt_write_fast(g, net.dev, net.ph, 0, np.zeros(4), np.ones(5), 1.0, chop, True, 1, 0, cu, cd) == (0, 0)
    assert np.array_equal(g, g0)


@pytest.mark.parametrize("family", [law.SOFT_BOUNDS, law.TABLE, law.POWER])
def test_conductances_stay_in_bounds(family):
    rng = np.random.default_rng(family)
    g, dev, ph = R.random_array(rng, (4, 6, 3), family=family, mapping=K.MAP_PLANES, tile=TILE4, c2c=0.3,
                                policy=K.POL_ALTERNATE)
    net = arr.Crossbars(dev, ph, g, [4, 6, 3], {})
    H = np.zeros(g.shape[1])
    chop = np.ones(int(dev.cols.sum()))
    for step in range(30):
        for layer in (1, 0):
            d = rng.normal(size=int(dev.rows[layer])) * 50
            a = rng.uniform(-1, 1, int(dev.cols[layer]))
            cu, cd = _zeros(g)
            KS.tt_write_fast(g, dev, ph, layer, d, a, 1.0, chop, True, 1, step, cu, cd)
        for alg in (KS.TT_V1, KS.TT_C2):
            _transfer(net, g, H, chop, alg, n_reads=3, lt=20.0, chop_prob=0.5, event=step, step=step)
    assert np.all((g >= dev.g_min) & (g <= dev.g_max))
    assert np.abs(H).max() > 0 and (chop == -1).any()


def test_ttv1_moves_A_into_C_within_a_step():
    """TTv1, transfer rate 1, nearest rounding: one event over every column adds A's read to C
    within half a step per weight; A is kept (TTv1 does not reset it)."""
    net = _tt_net(0.0, sizes=(4, 4, 2))
    ph = net.ph._replace(encoding=K.ENC_NEAREST)
    g = net.g0.copy()
    _fill_A(net, g, np.random.default_rng(3))
    A0, C0 = _A(g, net.dev, ph), _C(g, ph)
    (up, dn, nr), cu, cd = _transfer(net, g, np.zeros(0), np.zeros(0), KS.TT_V1, n_reads=5, ph=ph)
    assert nr == g.shape[1] and up + dn == cu[2:].sum() + cd[2:].sum() > 0 and cu[:2].sum() + cd[:2].sum() == 0
    np.testing.assert_array_equal(_A(g, net.dev, ph), A0)
    assert np.abs(_C(g, ph) - C0 - A0).max() <= 0.5 * ph.dw_pot * (1 + 1e-9)


def test_ttv2_buffer_loses_exactly_the_pulses_issued():
    """TTv2 (forget_buffer false, momentum 0, thres_scale 1): after a transfer,
    H = H_before + lr·A − n·ε with n the signed pulses issued to C, and |H| < ε."""
    net = _tt_net(0.0, sizes=(4, 4, 2))
    ph = net.ph
    g = net.g0.copy()
    _fill_A(net, g, np.random.default_rng(4), scale=0.002)
    rng = np.random.default_rng(5)
    N = g.shape[1]
    H0 = rng.uniform(-3, 3, N) * ph.dw_pot
    H = H0.copy()
    A, C0 = _A(g, net.dev, ph), _C(g, ph)
    (up, dn, nr), cu, cd = _transfer(net, g, H, np.zeros(0), KS.TT_V2, n_reads=5, lt=2.0)
    assert up + dn > 0 and nr == N
    eps = ph.dw_pot  # ideal device: every pulse is exactly one nominal step
    n = np.rint((_C(g, ph) - C0) / eps)
    np.testing.assert_allclose(_C(g, ph) - C0, n * eps, rtol=0, atol=1e-12)
    assert np.abs(n).sum() == up + dn
    np.testing.assert_allclose(H, H0 + 2.0 * A - n * eps, rtol=0, atol=1e-15)
    assert np.abs(H).max() < eps
    # forget_buffer with momentum m: a weight that pulsed keeps m·H, the others keep H
    H = H0.copy()
    g = net.g0.copy()
    _fill_A(net, g, np.random.default_rng(4), scale=0.002)
    C0 = _C(g, ph)
    _transfer(net, g, H, np.zeros(0), KS.TT_V2, n_reads=5, lt=2.0, forget=True, momentum=0.25, max_steps=1)
    pulsed = np.rint((_C(g, ph) - C0) / eps)
    assert np.abs(pulsed).max() == 1
    expect = np.where(pulsed != 0, 0.25 * (H0 + 2.0 * A), H0 + 2.0 * A)
    np.testing.assert_allclose(H, expect, rtol=0, atol=1e-15)


def test_chopper_sign_is_undone_on_read():
    """c-TTv2: a column written with chopper −1 holds −A in the devices, and the read into H
    multiplies it back: H is that of the unchopped write (ideal, symmetric device)."""
    net = _tt_net(0.0, sizes=(4, 4, 2))
    ph = net.ph._replace(encoding=K.ENC_NEAREST)
    rng = np.random.default_rng(6)
    d, a = rng.normal(size=4), rng.uniform(-1, 1, 5)
    Hs, As = [], []
    ncol = int(net.dev.cols.sum())
    chop_neg = np.ones(ncol)
    chop_neg[[0, 2]] = -1.0
    for chop in (np.ones(ncol), chop_neg):
        g = net.g0.copy()
        cu, cd = _zeros(g)
        KS.tt_write_fast(g, net.dev, ph, 0, d, a, 0.01, chop, True, 1, 0, cu, cd)
        As.append(_A(g, net.dev, ph)[:20].reshape(4, 5))
        H = np.zeros(g.shape[1])
        c = chop.copy()
        _transfer(net, g, H, c, KS.TT_C2, n_reads=5, lt=1e-6, thres=1e6, ph=ph)  # no pulse: H = lr·c·A
        assert np.array_equal(c, chop)  # flip probability 0
        Hs.append(H)
    np.testing.assert_allclose(As[1][:, [0, 2]], -As[0][:, [0, 2]], atol=1e-12)
    assert np.abs(As[0][:, [0, 2]]).max() > 0
    np.testing.assert_allclose(Hs[1], Hs[0], rtol=0, atol=1e-18)
    # flip probability 1: every column read flips once
    c = np.ones(ncol)
    _transfer(net, net.g0.copy(), np.zeros(net.g0.shape[1]), c, KS.TT_C2, n_reads=2, chop_prob=1.0, event=1)
    flipped = np.array([2, 3, 5 + 2, 5 + 3])  # event 1 reads columns 2 and 3 of each layer
    assert (c[flipped] == -1).all() and (np.delete(c, flipped) == 1).all()


def test_zero_shift_finds_the_soft_bounds_symmetry_point():
    """Soft bounds: up step dg_up·(1 − x), down step dg_down·x; equal at x_sp = dg_up/(dg_up + dg_down).
    Calibration leaves each device within one step of G_sp and reads the pair's offset there."""
    rng = np.random.default_rng(8)
    tile = ((1.0, -1.0), (0.0, 0.0), (0, 1))
    g, dev, ph = R.random_array(rng, (4, 3), family=law.SOFT_BOUNDS, mapping=K.MAP_PLANES, tile=tile, c2c=0.0)
    cu, cd = _zeros(g)
    zero = np.zeros(g.shape[1])
    up, dn, nr = KS.zero_shift_calibrate(g, dev, ph, 400, 1, cu, cd, zero)
    assert up == dn == 400 * g.size and nr == g.shape[1] and (cu == 400).all()
    rng_ = dev.g_max - dev.g_min
    g_sp = dev.g_min + rng_ * dev.dg_up / (dev.dg_up + dev.dg_down)
    step = np.maximum(dev.dg_up, dev.dg_down)  # the largest step near the symmetry point
    assert np.abs(g - g_sp).max() <= step.max() and np.all(np.abs(g - g_sp) <= step)
    np.testing.assert_allclose(zero, g[0] - g[1], rtol=0, atol=1e-18)  # no read noise here
    dz = dev._replace(zero=zero)
    np.testing.assert_allclose([K.weight(g, dz, ph, i) for i in range(g.shape[1])], 0.0, atol=1e-12)
    # the zero-shifted direct scheme keeps its initial weights (programmed back)
    net = make_net([3, 4, 2], spec=IDEAL)
    zs = arr.zero_shift(net, 5, 2)
    assert zs.ph.mapping == K.MAP_PLANES and zs.attrs["zero_shift"]["reprogram"]["pulses_up"] >= 0
    d, gs, z = zs.dev, zs.ph.g_scale, zs.dev.zero
    lo = (d.g_min[0] - d.g_max[1] - z) / gs  # the weights the pair can hold relative to its new zero
    hi = (d.g_max[0] - d.g_min[1] - z) / gs
    w0 = net.weights0()
    ok = (w0 > lo + 1e-3) & (w0 < hi - 1e-3)
    assert ok.mean() > 0.8
    np.testing.assert_allclose(zs.weights0()[ok], w0[ok], rtol=0, atol=2 * net.ph.dw_pot)


# ------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("order", ["progressive", "backprop", "progressive-held"])
def test_training_counts_and_transfers(order):
    net = _tt_net(0.0, sizes=(4, 5, 3))
    rng = np.random.default_rng(4)
    X = rng.random((12, 4))
    T = np.eye(3)[rng.integers(0, 3, 12)]
    cfg = loop.Config(loop.ALGORITHM_CODES[order], loop.SIGMOID, loop.SIGMOID, loop.LOSS_MSE, loop.DERIV_EXACT, 5,
                      schemes.TIKI_TAKA, tt_algorithm=KS.TT_C2, tt_transfer_every=3, tt_n_reads=2,
                      tt_transfer_lr=50.0, tt_in_chop_prob=0.3, tt_forget_buffer=False)
    g = net.g0.copy()
    cu, cd = _zeros(g)
    led = np.zeros(loop.N_LEDGER, np.int64)
    H = np.zeros(g.shape[1])
    chop = np.ones(int(net.dev.cols.sum()))
    loop.run_epoch(g, net.weights0(), net.dev, net.ph, cfg, np.array([2.0, 2.0]), X, T, np.arange(36) % 12, 0,
                   10**9, cu, cd, led, np.zeros((1, 1, 1)), np.zeros(1, np.int64), 0.0, H, chop)
    assert led[loop.L_TRANSFERS] == 12
    assert led[loop.L_VERIFY_READS] == 12 * 2 * (5 + 3)  # rows read per column, two columns per layer
    assert led[loop.L_PULSES_UP] == cu.sum() and led[loop.L_PULSES_DOWN] == cd.sum()
    assert cu[2:].sum() + cd[2:].sum() > 0 and np.abs(H).max() > 0 and (chop == -1).any()
    assert np.all((g >= net.dev.g_min) & (g <= net.dev.g_max))


@pytest.mark.parametrize("order", ["progressive", "backprop", "progressive-held"])
def test_gamma_one_without_transfers_trains_like_float(order):
    """The float limit: ideal device (ε = 2e-5 weight units), γ = 1 and no transfer event in the
    run, so the forward weight is A + C and only A is written, like ``direct`` on A: the weights
    follow the float algorithm of the same order to a few ε."""
    from tests.training.test_schemes import _weights, float_reference
    net = _tt_net(1.0, sizes=(4, 5, 3))
    X, T, W0, Wf = float_reference(net, order)
    cfg = loop.Config(loop.ALGORITHM_CODES[order], loop.SIGMOID, loop.SIGMOID, loop.LOSS_MSE, loop.DERIV_EXACT, 5,
                      schemes.TIKI_TAKA, tt_algorithm=KS.TT_V1, tt_transfer_every=10**6)
    g = net.g0.copy()
    cu, cd = _zeros(g)
    led = np.zeros(loop.N_LEDGER, np.int64)
    loop.run_epoch(g, W0.copy(), net.dev, net.ph, cfg, np.array([0.5, 0.5]), X, T, np.arange(36) % 12, 0,
                   10**9, cu, cd, led, np.zeros((1, 1, 1)), np.zeros(1, np.int64), 0.0, np.zeros(g.shape[1]),
                   np.ones(int(net.dev.cols.sum())))
    assert led[loop.L_TRANSFERS] == 0 and cu[2:].sum() + cd[2:].sum() == 0  # C untouched
    assert led[loop.L_PULSES_UP] == cu.sum() and led[loop.L_PULSES_DOWN] == cd.sum()
    eps = max(net.ph.dw_pot, net.ph.dw_dep)
    moved = np.abs(Wf - W0).max()
    err = np.abs(_weights(g, net.dev, net.ph) - Wf).max()
    assert moved > 0.05 and err < 20 * eps, (moved, err, eps)


_TT = ("train.scheme=tiki-taka", "train.tt_algorithm=c-ttv2", "train.zero_shift=true", "train.zero_shift_cycles=50",
       "train.tt_transfer_every=2", "train.tt_in_chop_prob=0.3")


def test_resume_through_checkpoint_is_bit_identical():
    whole, led_whole = _iris_run([3], extra=_TT)
    cut, led_cut = _iris_run([1, 3], extra=_TT)
    assert whole.g.shape[0] == 4 and (whole.chop == -1).any() and np.abs(whole.chi).max() > 0
    assert led_whole[:, loop.L_TRANSFERS].sum() == 3 * 105 // 2
    assert digest(whole, led_whole) == digest(cut, led_cut)
    np.testing.assert_array_equal(whole.chop, cut.chop)
    assert led_whole[:, loop.L_PULSES_UP].sum() == whole.cnt_up.sum()


def test_one_and_two_threads_bit_identical():
    same_with_one_and_two_threads(
        "import hashlib; from tests.training.test_schemes import _iris_run, digest; "
        "from tests.training.test_tiki_taka import _TT; s, l = _iris_run([2], extra=_TT)",
        "digest(s, l), hashlib.sha256(s.chop.tobytes()).hexdigest()")
