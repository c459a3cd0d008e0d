"""Tiles of several device planes (``MAP_PLANES``): a weight is Σ_p coef_p·(G_p − ref_p)/g_scale
and pulses go to one chosen pair of planes. The general path must reproduce the specialised
differential and reference loops to the bit, equal its NumPy reference, and leave every plane
outside the written pair untouched."""

import itertools

import numpy as np
import pytest

from pipeline.crossbar import kernels as K
from pipeline.crossbar import reference as R
from pipeline.devices import law
from pipeline.training import loop

SIZES = (6, 9, 4)
FAMILIES = [law.SOFT_BOUNDS, law.POWER, law.TABLE]


def _twin(seed, family, mapping, **physics):
    """The same random array as a specialised mapping and as the equivalent general tile."""
    P = 2 if mapping == K.MAP_DIFFERENTIAL else 1
    g, dev, ph = R.random_array(np.random.default_rng(seed), SIZES, family=family, mapping=mapping, **physics)
    coef, ref, write = K.tile(mapping, P, ph.g_ref)
    dev_p = dev._replace(coef=coef, ref=ref, write=write)
    return g, dev, ph, dev_p, ph._replace(mapping=K.MAP_PLANES)


@pytest.mark.parametrize("mapping", [K.MAP_DIFFERENTIAL, K.MAP_REFERENCE], ids=["differential", "reference"])
@pytest.mark.parametrize("family", FAMILIES, ids=[law.FAMILY_NAMES[f] for f in FAMILIES])
def test_general_tile_equals_specialised_mapping(family, mapping):
    rng = np.random.default_rng(7)
    for encoding, policy in itertools.product(K.ENCODINGS.values(), K.POLICIES.values()):
        g, dev, ph, dev_p, ph_p = _twin(int(rng.integers(1 << 30)), family, mapping, encoding=encoding, policy=policy,
                                        read_noise=0.02, c2c=0.2, stuck_fraction=0.05)
        layer = int(rng.integers(0, 2))
        r, c = int(dev.rows[layer]), int(dev.cols[layer])
        x, d = rng.uniform(-1, 1, c), rng.normal(size=r)
        for noisy in (False, True):
            y1, y2 = np.zeros(r), np.zeros(r)
            K.read_forward(g, dev, ph, layer, x, y1, np.uint64(123), noisy)
            K.read_forward(g, dev_p, ph_p, layer, x, y2, np.uint64(123), noisy)
            assert np.array_equal(y1, y2)
            t1, t2 = np.zeros(c), np.zeros(c)
            K.read_transposed(g, dev, ph, layer, d, t1, np.uint64(5), noisy)
            K.read_transposed(g, dev_p, ph_p, layer, d, t2, np.uint64(5), noisy)
            assert np.array_equal(t1, t2)
        a = rng.uniform(-1, 1, c) * 0.05
        lr, seed, step = 1.3, int(rng.integers(1 << 31)), int(rng.integers(1000))
        out = []
        for dv, pv in ((dev, ph), (dev_p, ph_p)):
            g1 = g.copy()
            cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
            n = K.update_layer_serial(g1, dv, pv, layer, d, a, lr, seed, step, cu, cd)
            out.append((n, g1, cu, cd))
        assert out[0][0] == out[1][0] and sum(out[0][0]) > 0
        for u, v in zip(out[0][1:], out[1][1:]):
            assert np.array_equal(u, v)


def test_general_tile_trains_like_differential():
    """One training sample of every order through the loop: bit-identical on the general tile."""
    g, dev, ph, dev_p, ph_p = _twin(3, law.POWER, K.MAP_DIFFERENTIAL, read_noise=0.01, c2c=0.1)
    rng = np.random.default_rng(0)
    x, t = rng.random(SIZES[0]), np.eye(SIZES[-1])[1]
    for alg in ("backprop", "progressive", "progressive-held"):
        cfg = loop.Config(loop.ALGORITHM_CODES[alg], loop.SIGMOID, loop.SIGMOID, loop.LOSS_MSE, loop.DERIV_EXACT, 4)
        res = []
        for dv, pv in ((dev, ph), (dev_p, ph_p)):
            st = loop.State(g.copy(), np.zeros(g.shape[1]), np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64),
                            np.zeros(loop.N_LEDGER, np.int64))
            rec = np.zeros(sum(SIZES[1:]))
            out = loop.train_sample(loop.Static(dv, pv, cfg, np.array([0.5, 0.5])), st, loop.work(dv), x, t, 11, rec, True)
            res.append((out, st.g, st.ledger, rec))
        assert res[0][0] == res[1][0]
        for u, v in zip(res[0][1:], res[1][1:]):
            assert np.array_equal(u, v), alg


@pytest.mark.parametrize("write", [(0, 1), (2, 3)])
def test_four_plane_tile_reads_weighted_pairs_and_writes_one_pair(write):
    """coef (γ, −γ, 1, −1): w = γ·w_lsb + w_msb; pulses reach only the written pair; every
    conductance stays within its device's bounds; kernels equal the NumPy reference."""
    gamma = 0.25
    tile = ((gamma, -gamma, 1.0, -1.0), (0.0, 0.0, 0.0, 0.0), write)
    rng = np.random.default_rng(11)
    g, dev, ph = R.random_array(rng, SIZES, family=law.SOFT_BOUNDS, mapping=K.MAP_PLANES, tile=tile,
                                read_noise=0.02, c2c=0.2, encoding=K.ENC_STOCHASTIC)
    assert g.shape[0] == 4
    w = K.weights(g, dev, ph, 0)
    r, c, o = int(dev.rows[0]), int(dev.cols[0]), int(dev.off[0])
    sl = slice(o, o + r * c)
    want = (gamma * (g[0, sl] - g[1, sl]) + (g[2, sl] - g[3, sl])) / ph.g_scale
    np.testing.assert_allclose(w, want.reshape(r, c), rtol=0, atol=1e-12 * np.abs(want).max())
    x = rng.uniform(-1, 1, c)
    y = np.zeros(r)
    key = np.uint64(9)
    K.read_forward(g, dev, ph, 0, x, y, key, True)
    np.testing.assert_allclose(y, R.read_forward(g, dev, ph, 0, x, key, True), rtol=1e-12, atol=1e-12)
    d = rng.normal(size=r)
    a = rng.uniform(-1, 1, c) * 0.05
    g1 = g.copy()
    cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    up, dn = K.update_layer_serial(g1, dev, ph, 0, d, a, 1.0, 3, 8, cu, cd)
    ref = R.update_layer(g, dev, ph, 0, d, a, 1.0, 3, 8, np.zeros_like(cu), np.zeros_like(cd))
    assert (up, dn) == (ref[3], ref[4]) and up + dn > 0
    assert np.array_equal(g1, ref[0])
    untouched = [p for p in range(4) if p not in write]
    assert np.array_equal(g1[untouched], g[untouched]) and (cu + cd)[untouched].sum() == 0
    assert (g1 >= dev.g_min).all() and (g1 <= dev.g_max).all()
