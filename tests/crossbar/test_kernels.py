"""Every crossbar kernel equals its NumPy reference (pipeline.crossbar.reference) on random inputs:
to the bit where the arithmetic is the same (updates, drift), within 1e-12 of the terms' magnitude
where only the summation order differs (reads)."""

import itertools

import numpy as np
import pytest

from pipeline.crossbar import kernels as K
from pipeline.crossbar import reference as R
from pipeline.devices import law

FAMILIES = [law.CONSTANT, law.LINEAR, law.SOFT_BOUNDS, law.POWER, law.TABLE]
SIZES = (6, 9, 4)


def _counters(g):
    return np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)


@pytest.mark.parametrize("family", FAMILIES, ids=[law.FAMILY_NAMES[f] for f in FAMILIES])
def test_update_equals_reference(family):
    rng = np.random.default_rng(family)
    combos = itertools.product(K.MAPPINGS.values(), K.ENCODINGS.values(), K.POLICIES.values())
    for mapping, encoding, policy in combos:
        g, dev, ph = R.random_array(rng, SIZES, family=family, mapping=mapping, encoding=encoding, policy=policy,
                                    stuck_fraction=0.1, n_max=int(rng.integers(1, 8)), c2c=0.3)
        layer = int(rng.integers(0, 2))
        r, c = int(dev.rows[layer]), int(dev.cols[layer])
        d = rng.normal(size=r) * (rng.random(r) > 0.2)  # some rows without any change
        a = rng.uniform(-1, 1, c) * 0.05 * (rng.random(c) > 0.2)
        if encoding == K.ENC_FLOOR:  # floor fires only from one whole step on
            a *= 4.0
        lr, seed, step = float(rng.uniform(0.2, 2)), int(rng.integers(0, 2**31)), int(rng.integers(0, 1000))
        cu, cd = _counters(g)
        cu += rng.integers(0, 5, cu.shape)
        want = R.update_layer(g, dev, ph, layer, d, a, lr, seed, step, cu, cd)
        assert want[3] + want[4] > 0
        for kern in (K.update_layer_serial, K.update_layer_parallel, K.update_layer):
            g1, cu1, cd1 = g.copy(), cu.copy(), cd.copy()
            up, dn = kern(g1, dev, ph, layer, d, a, lr, seed, step, cu1, cd1)
            where = (law.FAMILY_NAMES[family], mapping, encoding, policy, kern.__name__)
            assert (up, dn) == (want[3], want[4]), where
            assert np.array_equal(g1, want[0]), where
            assert np.array_equal(cu1, want[1]) and np.array_equal(cd1, want[2]), where


def test_program_equals_reference_and_law():
    """``program`` writes arbitrary per-device changes; a single device's result is exactly what
    the shared device law (``law.apply_pulses``, also used by the synthesiser) gives."""
    rng = np.random.default_rng(5)
    for family in FAMILIES:
        g, dev, ph = R.random_array(rng, SIZES, family=family, mapping=K.MAP_REFERENCE, encoding=K.ENC_STOCHASTIC,
                                    c2c=0.2)
        N = g.shape[1]
        dw = rng.normal(0, 0.05, N) * (rng.random(N) > 0.3)
        cu, cd = _counters(g)
        want = R.program(g, dev, ph, dw, 9, 4, cu, cd)
        g1, cu1, cd1 = g.copy(), cu.copy(), cd.copy()
        assert K.program(g1, dev, ph, dw, 9, 4, cu1, cd1) == (want[3], want[4])
        assert np.array_equal(g1, want[0]) and np.array_equal(cu1, want[1]) and np.array_equal(cd1, want[2])
        for idx in np.flatnonzero((cu1 + cd1)[0])[:5]:
            n, pol = (int(cu1[0, idx]), 1) if cu1[0, idx] else (int(cd1[0, idx]), -1)
            gl = law.apply_pulses(g[0, idx], n, pol, ph.family, dev.g_min[0, idx], dev.g_max[0, idx],
                                  dev.dg_up[0, idx], dev.dg_down[0, idx], dev.gamma_up[0, idx], dev.gamma_down[0, idx],
                                  ph.c2c, R.pulse_key(9, 4, idx), dev.table[0, idx], dev.tab_g,
                                  dev.tab_nb, dev.tab_p, dev.tab_np, dev.tab_up, dev.tab_down)
            assert gl == g1[0, idx]


READ_MODELS = [dict(), dict(read_noise=0.05), dict(read_noise=0.02, out_clip=0.3),
               dict(read_noise=0.02, adc_bits=6, adc_range=0.5), dict(adc_bits=3, adc_range=0.2, out_clip=0.1)]


@pytest.mark.parametrize("mapping", [K.MAP_DIFFERENTIAL, K.MAP_REFERENCE], ids=["differential", "reference"])
def test_reads_equal_reference(mapping):
    rng = np.random.default_rng(mapping)
    for model in READ_MODELS:
        g, dev, ph = R.random_array(rng, (70, 9, 3), mapping=mapping, **model)
        for layer in (0, 1):
            r, c = int(dev.rows[layer]), int(dev.cols[layer])
            x, d = rng.normal(size=c), rng.normal(size=r)
            key = np.uint64(rng.integers(0, 2**63))
            W = R.weights(g, dev, ph, layer)
            assert np.allclose(K.weights(g, dev, ph, layer), W, rtol=1e-15, atol=0)
            for noisy in (True, False):
                fy = R.read_forward(g, dev, ph, layer, x, key, noisy)
                fx = R.read_transposed(g, dev, ph, layer, d, key, noisy)
                tol_y = 1e-12 * (np.abs(W) @ np.abs(x) + 1e-300)
                tol_x = 1e-12 * (np.abs(W).T @ np.abs(d) + 1e-300)
                for kf, kt in ((K.read_forward, K.read_transposed), (K.read_forward_parallel, K.read_transposed_parallel),
                               (K.read_fwd, K.read_tr)):
                    y, xt = np.empty(r), np.empty(c)
                    kf(g, dev, ph, layer, x, y, key, noisy)
                    kt(g, dev, ph, layer, d, xt, key, noisy)
                    assert np.all(np.abs(y - fy) <= tol_y), (model, kf.__name__)
                    assert np.all(np.abs(xt - fx) <= tol_x), (model, kt.__name__)


def test_reads_serial_and_parallel_identical():
    g, dev, ph = R.random_array(np.random.default_rng(3), (300, 130), read_noise=0.03)
    x, d = np.linspace(-1, 1, 301), np.linspace(1, -2, 130)
    outs = []
    for kf, kt in ((K.read_forward, K.read_transposed), (K.read_forward_parallel, K.read_transposed_parallel)):
        y, xt = np.empty(130), np.empty(301)
        kf(g, dev, ph, 0, x, y, np.uint64(5), True)
        kt(g, dev, ph, 0, d, xt, np.uint64(5), True)
        outs.append((y, xt))
    assert np.array_equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])


def test_drift_equals_reference():
    rng = np.random.default_rng(2)
    for mapping in K.MAPPINGS.values():
        g, dev, ph = R.random_array(rng, SIZES, mapping=mapping, stuck_fraction=0.2, drift=0.97, drift_rest=0.3)
        want = R.drift(g, dev, ph)
        K.drift(g, dev, ph)
        assert np.array_equal(g, want)
    g0 = g.copy()
    K.drift(g, dev, ph._replace(drift=1.0))
    assert np.array_equal(g, g0)


def _in_order(terms, axis):
    """Sums along ``axis`` strictly left to right (``np.add.accumulate`` is sequential)."""
    return np.add.accumulate(terms, axis=axis).take(-1, axis=axis)


@pytest.mark.parametrize("mapping", [K.MAP_DIFFERENTIAL, K.MAP_REFERENCE], ids=["differential", "reference"])
def test_fast_reads_are_the_dense_in_order_sums_to_the_bit(mapping):
    """The reads skip zero inputs (zero errors) and sum four rows side by side; each output must
    still be, to the bit, the in-order sum over every column (row) — zeros included — that a
    dense one-row-at-a-time loop gives. Row counts 7 and 9 cover the rows left over after groups
    of four; exact zeros (and -0.0) are a third of the inputs."""
    rng = np.random.default_rng(11)
    g, dev, ph = R.random_array(rng, (40, 7, 9), mapping=mapping)
    for layer in (0, 1):
        r, c, o = int(dev.rows[layer]), int(dev.cols[layer]), int(dev.off[layer])
        G = g[:, o:o + r * c].reshape(g.shape[0], r, c)
        diff = G[0] - G[1] if mapping == K.MAP_DIFFERENTIAL else G[0] - ph.g_ref
        x = rng.normal(size=c) * (rng.random(c) > 0.35)
        x[rng.random(c) < 0.1] = -0.0
        d = rng.normal(size=r) * (rng.random(r) > 0.35)
        want_y = _in_order(diff * x[None, :], 1) / ph.g_scale
        want_x = _in_order(diff * d[:, None], 0) / ph.g_scale
        for kf, kt in ((K.read_forward, K.read_transposed), (K.read_forward_parallel, K.read_transposed_parallel)):
            y, xt = np.empty(r), np.empty(c)
            kf(g, dev, ph, layer, x, y, np.uint64(1), False)
            kt(g, dev, ph, layer, d, xt, np.uint64(1), False)
            assert np.array_equal(y, want_y), (layer, kf.__name__)
            assert np.array_equal(xt, want_x), (layer, kt.__name__)
        # the float forward of the training loop: the same in-order sums, four rows side by side
        from pipeline.training import loop
        W = rng.normal(size=g.shape[1])
        y = np.empty(r)
        loop._float_fwd(W, dev, layer, x, y)
        assert np.array_equal(y, _in_order(W[o:o + r * c].reshape(r, c) * x[None, :], 1)), layer
        # its float transposed read and update (vectorised row loops): in-order column sums, and
        # W += (-lr·d)·aᵀ elementwise, to the bit
        Wl = W[o:o + r * c].reshape(r, c)
        xt = np.empty(c)
        loop._float_tr(W, dev, layer, d, xt)
        assert np.array_equal(xt, _in_order(Wl * d[:, None], 0)), layer
        want_W = W.copy()
        want_W[o:o + r * c] += ((-0.3 * d)[:, None] * x[None, :]).ravel()
        loop._float_update(W, dev, layer, d, x, 0.3)
        assert np.array_equal(W, want_W), layer
