"""The algebra of the training algorithms (DESIGN §1.2), on random networks, in float64 and on
ideal devices: the progressive-held identity, the η → 0 limit and its η² scaling, the ledger."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import config
from pipeline.crossbar import arrays as arr
from pipeline.devices import spec as dspec
from pipeline.training import ledger, loop
from pipeline.training.run import targets

IDEAL = dspec.from_dict({
    "model": "constant",
    "population": {"g_min_S": {"mean": 0.0, "std": 0.0}, "g_max_S": {"mean": 1.0e-3, "std": 0.0},
                   "dg_up_S": {"mean": 1.0e-8, "std": 0.0}, "dg_down_S": {"mean": 1.0e-8, "std": 0.0}},
    "c2c_std": 0.0,
})


def make_net(sizes, *, spec=IDEAL, seed=0, **array_changes):
    changes = {"base.seed": seed, "array.init": "mid", "array.init_spread": 0.15, "array.n_max": 10**9, "array.w_max": 2.0,
               **{f"array.{k}": v for k, v in array_changes.items()}}
    p = config.with_changes(config.Params(), changes)
    return arr.build(p, spec, sizes)


def cfg_for(alg, seed=0, hidden="sigmoid", output="sigmoid", loss="mse"):
    return loop.Config(algorithm=loop.ALGORITHM_CODES[alg], hidden=loop.ACTIVATION_CODES[hidden],
                       output=loop.ACTIVATION_CODES[output], loss=0 if loss == "mse" else 1, derivative=0, seed=seed)


def one_sample(net, alg, W, x, t, lrs, g=None, step=0, **cfgkw):
    """Run one training sample; returns (recorded δ (flat), W after, g after, ledger)."""
    dev, ph = net.dev, net.ph
    aoff, zoff = loop.offsets(dev)
    A, Z, D = np.zeros(aoff[-1]), np.zeros(zoff[-1]), np.zeros(zoff[-1])
    tmp = np.zeros(int(dev.cols.max()) + 1)
    g = (net.g0 if g is None else g).copy()
    W = W.copy()
    cu = np.zeros(g.shape, np.int64)
    cd = np.zeros(g.shape, np.int64)
    led = np.zeros(loop.N_LEDGER, np.int64)
    rec = np.zeros(zoff[-1])
    loop.train_sample(loop.Static(dev, ph, cfg_for(alg, **cfgkw), np.asarray(lrs, float)), loop.State(g, W, cu, cd, led),
                      loop.Work(A, Z, D, tmp, aoff, zoff), x, t, step, rec, True)
    return rec, W, g, led


def random_case(rng, sizes):
    net = make_net(sizes, seed=int(rng.integers(1 << 30)))
    W = rng.normal(0.0, 0.8, size=net.g0.shape[1])
    x = rng.random(sizes[0])
    t = np.zeros(sizes[-1])
    t[rng.integers(sizes[-1])] = 1.0
    return net, W, x, t


def last_hidden(net, W, x):
    """a^{L-1}: the sigmoid forward pass of ``x`` through every layer but the output, float weights ``W``."""
    a = x
    for l in range(net.n_layers - 1):
        a = 1.0 / (1.0 + np.exp(-(arr.layer_block(W, net.dev, l) @ np.r_[a, 1.0])))
    return a


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.mark.parametrize("sizes", [[5, 7, 3], [4, 6, 5, 2], [3, 9, 4, 4, 3]])
def test_progressive_held_identity(sizes, rng):
    """δ^{L-1}_held = δ^{L-1}_bp − η_L ‖δ^L‖² (a^{L-1} ⊙ f'(z^{L-1})) to machine precision."""
    for _ in range(5):
        net, W, x, t = random_case(rng, sizes)
        eta = float(rng.uniform(0.05, 2.0))
        lrs = np.full(len(sizes) - 1, eta)
        d_bp, *_ = one_sample(net, "backprop-float", W, x, t, lrs)
        d_held, *_ = one_sample(net, "progressive-held-float", W, x, t, lrs)
        _, zoff = loop.offsets(net.dev)
        L = len(sizes) - 1
        out = slice(zoff[L - 1], zoff[L])
        hid = slice(zoff[L - 2], zoff[L - 1])
        np.testing.assert_array_equal(d_held[out], d_bp[out])
        # a^{L-1} and f'(z^{L-1}) of the (single) forward pass with the original weights
        a = last_hidden(net, W, x)
        predicted = d_bp[hid] - eta * np.dot(d_bp[out], d_bp[out]) * (a * a * (1.0 - a))
        np.testing.assert_allclose(d_held[hid], predicted, rtol=0, atol=1e-12 * max(1.0, np.abs(predicted).max()))
        assert np.abs(d_held[hid] - d_bp[hid]).max() > 1e-9  # the identity is not trivially zero


@pytest.mark.parametrize("sizes", [[5, 7, 3], [4, 6, 5, 4]])
def test_progressive_drift_term(sizes, rng):
    """Progressive (fresh forward pass) sends the layer below the output the error read through the
    *written* output array: δ^{L-1} = (W_Lᵀ δ_L′)[:r] ⊙ f' − η_L (δ_L·δ_L′) a ⊙ f', with δ_L′ the
    output error of the re-run forward. For sigmoid units the second term has one sign for every
    unit — the drift that saturates the last hidden layer of deep progressive-float networks on MNIST
    (docs/mnist-study, *Why progressive-float fails at depth 4*)."""
    for _ in range(5):
        net, W, x, t = random_case(rng, sizes)
        eta = float(rng.uniform(0.05, 2.0))
        lrs = np.full(len(sizes) - 1, eta)
        d_prog, *_ = one_sample(net, "progressive-float", W, x, t, lrs, output="softmax", loss="ce")
        L = len(sizes) - 1
        w_last = arr.layer_block(W, net.dev, L - 1)
        a = last_hidden(net, W, x)
        at = np.r_[a, 1.0]
        d = softmax(w_last @ at) - t
        w_out = w_last - eta * np.outer(d, at)
        d_new = softmax(w_out @ at) - t
        fprime = a * (1.0 - a)
        through_written = (w_out.T @ d_new)[:-1] * fprime
        drift = -eta * np.dot(d, d_new) * a * fprime
        _, zoff = loop.offsets(net.dev)
        hid = d_prog[zoff[L - 2]:zoff[L - 1]]
        scale = max(1.0, np.abs(through_written).max())
        np.testing.assert_allclose(hid, through_written, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(hid, (w_last.T @ d_new)[:-1] * fprime + drift, rtol=0, atol=1e-12 * scale)
        assert np.dot(d, d_new) > 0 and np.all(drift < 0)  # one sign for every unit


def _dw_deviation(net, alg, W, x, t, eta):
    lrs = np.full(net.n_layers, eta)
    _, W_bp, _, _ = one_sample(net, "backprop-float", W, x, t, lrs)
    _, W_alg, _, _ = one_sample(net, alg, W, x, t, lrs)
    return np.linalg.norm(W_alg - W_bp), np.linalg.norm(W_bp - W)


@pytest.mark.parametrize("alg", ["progressive-held-float", "progressive-float"])
def test_progressive_follows_backprop_as_eta_squared(alg, rng):
    """Per-sample weight change deviates from backprop's as η² (log-log slope 2 ± 0.3) and the
    relative deviation vanishes as η → 0."""
    net, W, x, t = random_case(rng, [6, 8, 5, 3])
    etas = np.geomspace(1e-3, 1e-1, 7)
    dev = np.array([_dw_deviation(net, alg, W, x, t, e) for e in etas])
    slope = np.polyfit(np.log(etas), np.log(dev[:, 0]), 1)[0]
    assert abs(slope - 2.0) < 0.3, slope
    rel = dev[:, 0] / dev[:, 1]
    assert rel[0] < 0.03 * rel[-1]  # relative deviation ∝ η: vanishes as η → 0


def test_ideal_device_progressive_matches_float_within_one_pulse(rng):
    """Noise-free constant-step devices with many states: progressive on the hardware writes
    the float progressive update to within one pulse per device."""
    sizes = [4, 6, 3]
    net = make_net(sizes, encoding="nearest")
    W0 = net.weights0()
    x = rng.random(4)
    t = np.array([0.0, 1.0, 0.0])
    lrs = np.array([0.5, 0.5])
    _, W_f, _, _ = one_sample(net, "progressive-float", W0, x, t, lrs)
    _, _, g_hw, led = one_sample(net, "progressive", W0, x, t, lrs)
    W_hw = arr.initial_weights(g_hw, net.ph)
    dw = max(net.ph.dw_pot, net.ph.dw_dep)
    assert led[loop.L_PULSES_UP] + led[loop.L_PULSES_DOWN] > 1000  # the update is many pulses
    assert np.abs(W_hw - W_f).max() <= 0.5 * dw * (1 + 1e-6) + 1e-9


@pytest.mark.parametrize("alg", list(loop.ALGORITHM_CODES))
@pytest.mark.parametrize("sizes", [[3, 4, 2], [3, 5, 4, 2], [3, 4, 4, 4, 2]])
def test_ledger_reads_match_kernel_counts(alg, sizes, rng):
    net, W, x, t = random_case(rng, sizes)
    _, _, _, led = one_sample(net, alg, W, x, t, np.full(len(sizes) - 1, 0.1))
    L = len(sizes) - 1
    assert led[loop.L_READS] == ledger.reads_per_sample(alg, L)
    assert led[loop.L_FORWARD] == ledger.forward_passes_per_sample(alg, L)


def test_values_held_ordering():
    for sizes in ([4, 8, 3], [64, 32, 32, 10], [784, 256, 256, 256, 10]):
        bp = ledger.values_held("backprop", sizes)
        held = ledger.values_held("progressive-held", sizes)
        prog = ledger.values_held("progressive", sizes)
        assert prog <= held <= bp
    # the present layer's δ and input, plus the f'(z) of the layers above it kept by the re-forward
    assert ledger.values_held("progressive", [4, 8, 3]) == 8 + 5 + 3
    assert ledger.values_held("progressive", [4, 8, 8, 8, 3]) == 8 + 5 + 8 + 8 + 3


def test_zero_error_changes_nothing():
    """A sample whose output already equals its target writes no pulse (identity output, MSE)."""
    net = make_net([3, 4, 2])
    W0 = net.weights0()
    x = np.array([0.2, 0.5, 0.9])
    # target = present output of the hardware
    aoff, zoff = loop.offsets(net.dev)
    A, Z = np.zeros(aoff[-1]), np.zeros(zoff[-1])
    led = np.zeros(loop.N_LEDGER, np.int64)
    cfg = cfg_for("progressive", hidden="sigmoid", output="identity")
    cnt = np.zeros(net.g0.shape, np.int64)
    loop.forward(loop.Static(net.dev, net.ph, cfg, np.zeros(1)), loop.State(net.g0, W0, cnt, cnt, led),
                 loop.Work(A, Z, np.zeros(zoff[-1]), np.zeros(8), aoff, zoff), False, x, 0, 0, False)
    t = A[aoff[2]:aoff[2] + 2].copy()
    for alg in ("progressive", "backprop", "progressive-held"):
        _, _, g, led = one_sample(net, alg, W0, x, t, [0.5, 0.5], output="identity")
        assert led[loop.L_PULSES_UP] + led[loop.L_PULSES_DOWN] == 0
        np.testing.assert_array_equal(g, net.g0)


def test_softmax_ce_output_error():
    d = np.zeros(3)
    cfg = cfg_for("backprop-float", output="softmax", loss="ce")
    a = np.array([0.2, 0.5, 0.3])
    loss, ok = loop.output_error(cfg, a, np.zeros(3), np.array([0.0, 1.0, 0.0]), d, 0)
    np.testing.assert_allclose(d, a - np.array([0.0, 1.0, 0.0]))
    assert ok == 1 and abs(loss + np.log(0.5)) < 1e-12


def test_targets_tanh_range():
    t = targets(np.array([0, 2]), 3, "tanh")
    assert t.min() == -1.0 and t.max() == 1.0 and (t == 1.0).sum() == 2


def test_manhattan_writes_at_most_one_pulse_per_device(rng):
    from conftest import iris_params  # here, not at the top: test_schemes imports this module outside pytest
    from pipeline.training import run

    p = iris_params({"array.n_max": 50, "array.w_max": 2.0, "network.hidden": [6]})
    net = arr.build(p, IDEAL, [4, 6, 3])
    su = run.setup(p, "manhattan", 0, net)
    assert su.net.ph.encoding == 3  # sign encoding
    x = rng.random(4)
    t = np.array([1.0, 0.0, 0.0])
    aoff, zoff = loop.offsets(su.net.dev)
    g = su.net.g0.copy()
    cu = np.zeros(g.shape, np.int64)
    cd = np.zeros(g.shape, np.int64)
    led = np.zeros(loop.N_LEDGER, np.int64)
    loop.train_sample(loop.Static(su.net.dev, su.net.ph, su.cfg, np.array([50.0, 50.0])),
                      loop.State(g, su.net.weights0(), cu, cd, led),
                      loop.Work(np.zeros(aoff[-1]), np.zeros(zoff[-1]), np.zeros(zoff[-1]), np.zeros(8), aoff, zoff),
                      x, t, 0, np.zeros(zoff[-1]), False)
    assert (cu + cd).max() == 1 and (cu + cd).sum() > 10
