"""The cached read terms (issue 12, the fast path): ``K.terms`` is the weight matrix × g_scale that
the ``*_t`` reads multiply; every write that receives it keeps it in step, so a cached read gives
the bits of an uncached one on every mapping, device family and update scheme, and a training run
with the cache is bit-identical to one that derives every term from the conductances."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.crossbar import kernels as K
from pipeline.crossbar import reference as R
from pipeline.crossbar import schemes as KS
from pipeline.devices import law
from pipeline.rng import key3
from pipeline.training import loop, schemes

FOUR = (np.array([0.5, -0.5, 1.0, -1.0]), np.full(4, 6.5e-4), np.array([0, 1], np.int64))  # carry / tiki-taka tile

CASES = [(K.MAP_DIFFERENTIAL, law.SOFT_BOUNDS, None), (K.MAP_DIFFERENTIAL, law.POWER, None),
         (K.MAP_DIFFERENTIAL, law.TABLE, None), (K.MAP_REFERENCE, law.SOFT_BOUNDS, None),
         (K.MAP_PLANES, law.SOFT_BOUNDS, FOUR), (K.MAP_PLANES, law.TABLE, FOUR)]


def _array(rng, mapping, family, tile, **ph):
    g, dev, phys = R.random_array(rng, (6, 9, 4), family=family, mapping=mapping, tile=tile, c2c=0.3,
                                  read_noise=0.05, encoding=K.ENC_STOCHASTIC, **ph)
    if mapping == K.MAP_PLANES:  # with a zero-shift offset of the written pair
        dev = dev._replace(zero=rng.normal(0.0, 2e-5, g.shape[1]))
    return g, dev, phys


def _reads_equal(t, g, dev, ph, rng):
    for layer in range(dev.rows.shape[0]):
        r, c = int(dev.rows[layer]), int(dev.cols[layer])
        x = rng.uniform(-1, 1, c) * (rng.random(c) < 0.6)  # with zero inputs (skipped)
        d = rng.normal(size=r) * (rng.random(r) < 0.7)
        y0, y1, x0, x1 = np.empty(r), np.empty(r), np.empty(c), np.empty(c)
        key = np.uint64(key3(3, 1000, layer))
        K.read_forward(g, dev, ph, layer, x, y0, key, True)
        K.read_forward_t(t, g, dev, ph, layer, x, y1, key, True)
        K.read_transposed(g, dev, ph, layer, d, x0, key, True)
        K.read_transposed_t(t, g, dev, ph, layer, d, x1, key, True)
        assert y0.tobytes() == y1.tobytes() and x0.tobytes() == x1.tobytes()


@pytest.mark.parametrize("mapping,family,tile", CASES)
def test_writes_keep_the_cache_in_step_and_cached_reads_are_the_same_bits(mapping, family, tile):
    rng = np.random.default_rng(int(mapping) * 10 + int(family))
    g, dev, ph = _array(rng, mapping, family, tile)
    t = K.terms(g, dev, ph)
    assert t.tobytes() == np.array([K.term(g, dev, ph, i) for i in range(g.shape[1])]).tobytes()
    g_ref = g.copy()
    cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    cu2, cd2 = cu.copy(), cd.copy()
    pulses = 0
    for step in range(12):
        for layer in (1, 0):
            d = rng.normal(size=int(dev.rows[layer]))
            a = rng.uniform(-1, 1, int(dev.cols[layer]))
            n = K.update_layer_serial(g, dev, ph, layer, d, a, 3.0, 7, step, cu, cd, t)
            assert n == K.update_layer_serial(g_ref, dev, ph, layer, d, a, 3.0, 7, step, cu2, cd2)
            pulses += sum(n)
    assert pulses > 100  # the writes moved devices
    assert g.tobytes() == g_ref.tobytes() and cu.tobytes() == cu2.tobytes()
    assert t.tobytes() == K.terms(g, dev, ph).tobytes()
    _reads_equal(t, g, dev, ph, rng)


def test_the_threaded_update_keeps_the_cache_in_step():
    rng = np.random.default_rng(5)
    g, dev, ph = _array(rng, K.MAP_DIFFERENTIAL, law.SOFT_BOUNDS, None, parallel_min=1)
    t = K.terms(g, dev, ph)
    cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    K.update_layer(g, dev, ph, 0, rng.normal(size=9), rng.uniform(-1, 1, 7), 3.0, 7, 0, cu, cd, t)
    assert (cu + cd).sum() > 0 and t.tobytes() == K.terms(g, dev, ph).tobytes()


def test_scheme_kernels_keep_the_cache_in_step():
    """Mixed precision, carry transfers, tiki-taka transfers and refresh all write through pulses
    that the cache must follow (each checked against the terms re-derived from the devices)."""
    rng = np.random.default_rng(9)
    for mapping, tile in ((K.MAP_DIFFERENTIAL, None), (K.MAP_PLANES, FOUR)):
        g, dev, ph = _array(rng, mapping, law.SOFT_BOUNDS, tile)
        t = K.terms(g, dev, ph)
        N = g.shape[1]
        cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
        chi = np.zeros(N)
        for step in range(6):
            for layer in (1, 0):
                d = rng.normal(size=int(dev.rows[layer]))
                a = rng.uniform(-1, 1, int(dev.cols[layer]))
                KS.mp_write_layer(g, dev, ph, layer, d, a, 2.0, chi, KS.MP_READBACK, 3, step, cu, cd, t)
        assert (cu + cd).sum() > 0 and t.tobytes() == K.terms(g, dev, ph).tobytes()
        up, dn, _, nr = KS.refresh(g, dev, ph, 0.45, 3, 3, 7, cu, cd, t)
        assert nr > 0 and t.tobytes() == K.terms(g, dev, ph).tobytes()
        if mapping == K.MAP_PLANES:
            n0 = (cu + cd).sum()
            KS.carry_transfer(g, dev, ph, 3, 3, 8, cu, cd, t)
            assert (cu + cd).sum() > n0 and t.tobytes() == K.terms(g, dev, ph).tobytes()
            H = np.full(N, 0.0)
            for ev in range(8):
                KS.tt_transfer(g, dev, ph, H, np.ones(int(dev.cols.sum())), KS.TT_V2, 2, np.array([30.0, 30.0]), 4.0,
                               0.1, 0.0, True, 0.0, 3, ev, 3, 9 + ev, cu, cd, t)
            assert t.tobytes() == K.terms(g, dev, ph).tobytes()


@pytest.mark.parametrize("alg", ["progressive", "backprop", "progressive-held"])
@pytest.mark.parametrize("scheme", [schemes.DIRECT, schemes.MIXED_PRECISION])
def test_a_sample_with_the_cache_is_bit_identical_to_one_without(alg, scheme):
    rng = np.random.default_rng(1)
    g0, dev, ph = _array(rng, K.MAP_DIFFERENTIAL, law.POWER, None)
    cfg = loop.Config(loop.ALGORITHM_CODES[alg], loop.SIGMOID, loop.SIGMOID, loop.LOSS_MSE, loop.DERIV_EXACT, 5,
                      scheme)
    s = loop.Static(dev, ph, cfg, np.array([2.0, 2.0]))
    xs = rng.uniform(0, 1, (8, 6)) * (rng.random((8, 6)) < 0.7)
    out = []
    for cached in (False, True):
        g = g0.copy()
        st = loop.State(g, np.zeros(g.shape[1]), np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64),
                        np.zeros(loop.N_LEDGER, np.int64), np.zeros(g.shape[1]), np.zeros(0),
                        K.terms(g, dev, ph) if cached else np.zeros(0))
        wk = loop.work(dev)
        res = []
        for step in range(8):
            res.append(loop.train_sample(s, st, wk, xs[step], np.eye(4)[step % 4], step, np.zeros(1), False))
        out.append((res, g.tobytes(), st.chi.tobytes(), st.ledger.tobytes(), st.cnt_up.tobytes()))
        if cached:
            assert st.t.tobytes() == K.terms(g, dev, ph).tobytes()
    assert out[0] == out[1]
    assert st.ledger[loop.L_PULSES_UP] + st.ledger[loop.L_PULSES_DOWN] > 0

