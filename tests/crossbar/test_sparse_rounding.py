"""``array.encoding: stochastic-sparse``: stochastic rounding whose draws of an outer-product write
are made row by row (geometric skips to candidates, each accepted with q_ij / p_row). Same
per-device probabilities as ``stochastic``, other draws; equal to its NumPy reference to the bit,
for serial, threaded and dispatched kernels."""

import itertools

import numpy as np
import pytest

from pipeline.crossbar import kernels as K
from pipeline.crossbar import reference as R
from pipeline.devices import law

FAMILIES = [law.CONSTANT, law.LINEAR, law.SOFT_BOUNDS, law.POWER, law.TABLE]
PLANES = (np.array([1.0, -1.0, 2.0, -2.0]), np.full(4, 6.5e-4), np.array([0, 1], np.int64))


def _zeros(g):
    return np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)


def _row_bound(ph, lr, d, a):
    """p_i of every row: |lr·d_i|·max|a|·max(1/dw_pot, 1/dw_dep) (the kernels' order of products)."""
    return np.abs(-lr * d) * (np.max(np.abs(a)) * max(1.0 / ph.dw_pot, 1.0 / ph.dw_dep))


@pytest.mark.parametrize("family", FAMILIES, ids=[law.FAMILY_NAMES[f] for f in FAMILIES])
def test_sparse_update_equals_reference(family):
    rng = np.random.default_rng(100 + family)
    maps = [(m, None) for m in K.MAPPINGS.values()] + [(K.MAP_PLANES, PLANES)]
    for (mapping, tile), policy in itertools.product(maps, K.POLICIES.values()):
        g, dev, ph = R.random_array(rng, (60, 24, 4), family=family, mapping=mapping, tile=tile,
                                    encoding=K.ENC_SPARSE, policy=policy, stuck_fraction=0.1,
                                    n_max=int(rng.integers(1, 8)), c2c=0.3)
        r, c = int(dev.rows[0]), int(dev.cols[0])
        # most rows below SPARSE_P_MAX (sampled by row), some above (device by device), some zero;
        # inputs of both signs, a few exact zeros
        d = rng.normal(size=r) * np.where(np.arange(r) % 3 == 0, 1.0, 0.01)
        d[np.arange(r) % 5 == 4] = 0.0
        a = rng.uniform(-1, 1, c) * 0.05 * (rng.random(c) > 0.2)
        lr, seed, step = float(rng.uniform(0.2, 2)), int(rng.integers(0, 2**31)), int(rng.integers(0, 1000))
        p = _row_bound(ph, lr, d, a)
        assert ((p > 0) & (p < K.SPARSE_P_MAX)).sum() >= 8 and (p >= K.SPARSE_P_MAX).sum() >= 2
        cu, cd = _zeros(g)
        cu += rng.integers(0, 5, cu.shape)
        want = R.update_layer(g, dev, ph, 0, d, a, lr, seed, step, cu, cd)
        assert want[3] + want[4] > 0
        for kern in (K.update_layer_serial, K.update_layer_parallel, K.update_layer):
            g1, cu1, cd1 = g.copy(), cu.copy(), cd.copy()
            where = (law.FAMILY_NAMES[family], mapping, policy, kern.__name__)
            assert kern(g1, dev, ph, 0, d, a, lr, seed, step, cu1, cd1) == (want[3], want[4]), where
            assert np.array_equal(g1, want[0]), where
            assert np.array_equal(cu1, want[1]) and np.array_equal(cd1, want[2]), where


def test_sparse_rows_fire_with_the_stochastic_probabilities():
    """Over many steps every cross-point of a row-sampled write fires with probability q_ij, as
    stochastic rounding's: per-device counts within 5σ of q·n, and the sum of squared z-scores
    within 5σ of its χ² expectation; the same for ``stochastic`` on the same requests."""
    rng = np.random.default_rng(7)
    g, dev, ph = R.random_array(rng, (40, 12), family=law.CONSTANT, mapping=K.MAP_REFERENCE, c2c=0.0,
                                encoding=K.ENC_SPARSE, dw_pot=1e-2, dw_dep=1e-2)
    r, c = int(dev.rows[0]), int(dev.cols[0])
    d = rng.uniform(0.05, 0.2, r) * rng.choice([-1.0, 1.0], r)
    a = rng.uniform(0.0, 1.0, c) * (rng.random(c) > 0.3)
    lr = 0.01
    q = np.abs(np.outer(-lr * d, a)) / 1e-2  # requested nominal steps, all < SPARSE_P_MAX
    assert q.max() < K.SPARSE_P_MAX and (q > 0).sum() > 200
    n = 3000
    for enc in (K.ENC_SPARSE, K.ENC_STOCHASTIC):
        cu, cd = _zeros(g)
        gw = g.copy()
        for step in range(n):
            K.update_layer_serial(gw, dev, ph._replace(encoding=enc), 0, d, a, lr, 3, step, cu, cd)
        k = (cu + cd)[0, :r * c].reshape(r, c)
        assert np.all(k[q == 0] == 0)
        m = q > 0
        z = (k[m] - n * q[m]) / np.sqrt(n * q[m] * (1 - q[m]))
        assert np.abs(z).max() < 5.0, enc
        assert abs((z ** 2).sum() - m.sum()) < 5 * np.sqrt(2 * m.sum()), enc
        assert abs(k.sum() - n * q.sum()) < 5 * np.sqrt(n * q.sum()), enc


def test_rows_above_the_bound_and_elementwise_writes_round_as_stochastic():
    """Rows whose largest request reaches SPARSE_P_MAX, and every element-wise write (``program``),
    draw exactly as ``stochastic`` does: the same bits."""
    rng = np.random.default_rng(11)
    g, dev, ph = R.random_array(rng, (30, 8), family=law.POWER, encoding=K.ENC_SPARSE, c2c=0.3)
    r, c = int(dev.rows[0]), int(dev.cols[0])
    a = rng.uniform(-1, 1, c)
    d = rng.uniform(0.5, 2.0, r) * rng.choice([-1.0, 1.0], r)
    assert _row_bound(ph, 0.05, d, a).min() >= K.SPARSE_P_MAX
    stoch = ph._replace(encoding=K.ENC_STOCHASTIC)
    out = []
    for p in (ph, stoch):
        g1, (cu, cd) = g.copy(), _zeros(g)
        out.append((K.update_layer_serial(g1, dev, p, 0, d, a, 0.05, 5, 9, cu, cd), g1, cu, cd))
    assert out[0][0] == out[1][0] and out[0][0] != (0, 0)
    assert all(np.array_equal(x, y) for x, y in zip(out[0][1:], out[1][1:]))
    dw = rng.normal(0, 0.02, g.shape[1])
    res = []
    for p in (ph, stoch):
        g1, (cu, cd) = g.copy(), _zeros(g)
        res.append((K.program(g1, dev, p, dw, 9, 4, cu, cd), g1, cu, cd))
    assert res[0][0] == res[1][0] and all(np.array_equal(x, y) for x, y in zip(res[0][1:], res[1][1:]))


def test_sparse_zero_and_tiny_requests():
    """A zero error changes nothing; a request too small to fire changes nothing either, and both
    leave the counters at zero."""
    rng = np.random.default_rng(3)
    g, dev, ph = R.random_array(rng, (50, 6), family=law.POWER, encoding=K.ENC_SPARSE, c2c=0.3)
    r, c = int(dev.rows[0]), int(dev.cols[0])
    a = rng.uniform(0, 1, c)
    for d in (np.zeros(r), np.full(r, 1e-300)):
        g1, (cu, cd) = g.copy(), _zeros(g)
        assert K.update_layer_serial(g1, dev, ph, 0, d, a, 0.1, 1, 2, cu, cd) == (0, 0)
        assert np.array_equal(g1, g) and not cu.any() and not cd.any()
