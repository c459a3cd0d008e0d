"""The mixed-precision write visits only the cross-points that can change (``schemes.mp_write_layer``:
columns with a_j = 0 are read, not written, unless χ already holds a step): the same bits as the
NumPy reference that visits every cross-point (``reference.mixed_precision``), for every family,
mapping, encoding and subtraction, with zero inputs, zero errors, χ left above a step by the pulse
cap and by devices at their bounds, and non-finite rows."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.crossbar import kernels as K
from pipeline.crossbar import reference as R
from pipeline.crossbar import schemes as KS
from pipeline.devices import law

CASES = [
    (law.SOFT_BOUNDS, K.MAP_DIFFERENTIAL, K.ENC_NEAREST, KS.MP_READBACK),
    (law.POWER, K.MAP_DIFFERENTIAL, K.ENC_STOCHASTIC, KS.MP_READBACK),
    (law.POWER, K.MAP_DIFFERENTIAL, K.ENC_SPARSE, KS.MP_NOMINAL),
    (law.TABLE, K.MAP_REFERENCE, K.ENC_STOCHASTIC, KS.MP_READBACK),
    (law.LINEAR, K.MAP_REFERENCE, K.ENC_NEAREST, KS.MP_NOMINAL),
    (law.SOFT_BOUNDS, K.MAP_PLANES, K.ENC_STOCHASTIC, KS.MP_READBACK),
]


def _same(x, y):
    return np.asarray(x).tobytes() == np.asarray(y).tobytes()


@pytest.mark.parametrize("family,mapping,encoding,subtract", CASES)
def test_sparse_mixed_precision_matches_dense_reference(family, mapping, encoding, subtract):
    rng = np.random.default_rng(100 + family * 10 + mapping)
    tile = ((2.0, -2.0, 1.0, -1.0), (6.5e-4,) * 4, (0, 1)) if mapping == K.MAP_PLANES else None
    # n_max 2: large requests leave χ above a step, so zero-input columns must still be written
    g, dev, ph = R.random_array(rng, (6, 5, 3), family=family, mapping=mapping, tile=tile, stuck_fraction=0.05,
                                encoding=encoding, n_max=2, policy=K.POL_ALTERNATE)
    # a few devices at their bounds: their change is not realised and stays in χ (readback)
    pin = rng.random(g.shape) < 0.1
    g = np.where(pin, dev.g_max, g)
    P, N = g.shape
    chi = np.zeros(N)
    cu, cd = np.zeros((P, N), np.int64), np.zeros((P, N), np.int64)
    gr, chir, cur, cdr = g.copy(), chi.copy(), cu.copy(), cd.copy()
    pending_zero_col_writes = 0
    for step in range(24):
        for layer in (1, 0):
            r, c = int(dev.rows[layer]), int(dev.cols[layer])
            d = rng.normal(size=r) * (0.0 if step == 5 else 1.0)
            d[rng.random(r) < 0.2] = 0.0
            a = rng.uniform(-1.0, 1.0, size=c) * rng.choice([0.0, 1.0], size=c, p=[0.5, 0.5])
            lr = 0.04 if step % 3 else 0.004
            before = chi.copy()
            out = KS.mp_write_layer(g, dev, ph, layer, d, a, lr, chi, subtract, 9, step, cu, cd)
            gr, chir, cur, cdr, up, dn, nv = R.mixed_precision(gr, dev, ph, layer, d, a, lr, chir, subtract, 9, step,
                                                               cur, cdr)
            assert out == (up, dn, nv)
            assert _same(g, gr) and _same(chi, chir) and _same(cu, cur) and _same(cd, cdr), (step, layer)
            o = int(dev.off[layer])
            zero_cols = np.zeros((r, c), bool)
            zero_cols[:, a == 0.0] = True
            changed = (chi[o:o + r * c] != before[o:o + r * c]).reshape(r, c)
            pending_zero_col_writes += int((changed & zero_cols).sum())
    assert cu.sum() + cd.sum() > 0
    assert pending_zero_col_writes > 0  # the pending path (a_j = 0, |χ| >= ε) was exercised


def test_non_finite_rows_match_dense_reference():
    """An infinite error row makes χ NaN across the row (s·0 = NaN), as visiting every cross-point
    does; a NaN input column likewise."""
    rng = np.random.default_rng(5)
    g, dev, ph = R.random_array(rng, (4, 3), family=law.SOFT_BOUNDS, encoding=K.ENC_NEAREST)
    P, N = g.shape
    chi = np.zeros(N)
    cu, cd = np.zeros((P, N), np.int64), np.zeros((P, N), np.int64)
    gr = g.copy()
    d = np.array([np.inf, 0.5, 0.0])
    a = np.array([0.0, 1.0, np.nan, 0.0, 1.0])
    out = KS.mp_write_layer(g, dev, ph, 0, d, a, 0.1, chi, KS.MP_READBACK, 1, 0, cu, cd)
    gr, chir, cur, cdr, up, dn, nv = R.mixed_precision(gr, dev, ph, 0, d, a, 0.1, np.zeros(N), KS.MP_READBACK, 1,
                                                       0, np.zeros((P, N), np.int64), np.zeros((P, N), np.int64))
    assert not np.isfinite(chi[:5]).any() and np.isnan(chi[5 + 2]) and chi[5] == 0.0
    assert _same(chi, chir) and _same(g, gr) and out == (up, dn, nv)
