"""Progressive's fresh forward pass before each layer's write evaluates only the layers above that
layer when reads are noise-free (the layers below are not written yet this sample, so their
outputs are those of the first pass to the bit). The result equals a sample that evaluates every
layer of every pass — conductances, counters, ledger, float weights — and with read noise every
layer is read again (fresh noise per read)."""

import numpy as np
import pytest

from pipeline.crossbar import kernels as K
from pipeline.crossbar import reference as R
from pipeline.devices import law
from pipeline.training import loop
from pipeline.training.neurons import output_error


def _setup(read_noise, flt, seed=4):
    rng = np.random.default_rng(seed)
    sizes = (12, 9, 7, 4)
    g, dev, ph = R.random_array(rng, sizes, family=law.POWER, read_noise=read_noise, encoding=K.ENC_STOCHASTIC, c2c=0.3)
    alg = "progressive-float" if flt else "progressive"
    cfg = loop.Config(loop.ALGORITHM_CODES[alg], loop.SIGMOID, loop.SIGMOID, loop.LOSS_MSE, loop.DERIV_EXACT, 3)
    lrs = np.array([2.0, 2.0, 2.0])
    W = rng.normal(0, 0.5, g.shape[1]) if flt else np.zeros(g.shape[1])
    st = loop.State(g, W, np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64), np.zeros(loop.N_LEDGER, np.int64),
                    np.zeros(0), np.zeros(0), np.zeros(0) if flt else K.terms(g, dev, ph), np.zeros(0))
    X = rng.random((5, sizes[0]))
    T = np.eye(sizes[-1])[rng.integers(0, sizes[-1], 5)]
    return loop.Static(dev, ph, cfg, lrs), st, loop.work(dev), X, T


def _every_layer_every_pass(s, st, wk, x, t, step, reuse=False):
    """Progressive written out with a full forward pass (every layer read) before every write
    (``reuse``: the passes after the first evaluate only the layers above the one written next)."""
    flt = loop.is_float(s.cfg.algorithm)
    dev, A, Z, D, aoff, zoff = s.dev, wk.A, wk.Z, wk.D, wk.aoff, wk.zoff
    L = dev.rows.shape[0]
    out = (A[aoff[L]:aoff[L] + dev.rows[L - 1]], Z[zoff[L - 1]:zoff[L]], D[zoff[L - 1]:zoff[L]])
    nread = loop.forward(s, st, wk, flt, x, step, 0, True, 0)
    output_error(s.cfg, *out[:2], t, out[2], s.cfg.derivative)
    for l in range(L - 1, -1, -1):
        if l < L - 1:
            nread = loop.forward(s, st, wk, flt, x, step, nread, True, l + 1 if reuse else 0)
            output_error(s.cfg, *out[:2], t, out[2], s.cfg.derivative)
            for k in range(L - 2, l - 1, -1):
                nread = loop.hidden_error(s, st, wk, flt, k, step, nread, True, s.cfg.derivative)
        loop.write_layer(s, st, wk, flt, l, step)


def _state_bytes(st):
    return b"".join(np.ascontiguousarray(v).tobytes() for v in (st.g, st.W, st.cnt_up, st.cnt_dn, st.ledger, st.t))


@pytest.mark.parametrize("flt", [False, True], ids=["devices", "float"])
def test_noise_free_progressive_equals_every_layer_every_pass(flt):
    s, st_a, wk_a, X, T = _setup(0.0, flt)
    _, st_b, wk_b, _, _ = _setup(0.0, flt)
    start = _state_bytes(st_a)
    for k in range(X.shape[0]):
        loop.train_sample(s, st_a, wk_a, X[k], T[k], k, np.zeros(1), False)
        _every_layer_every_pass(s, st_b, wk_b, X[k], T[k], k)
    assert _state_bytes(st_a) == _state_bytes(st_b)
    assert _state_bytes(st_a) != start  # the samples did write
    # every pass is in the ledger: 1 + (L − 1) forward passes of L reads each per sample
    assert st_a.ledger[loop.L_FORWARD] == 3 * X.shape[0]
    if not flt:
        assert st_a.cnt_up.sum() + st_a.cnt_dn.sum() > 0


def test_noisy_reads_read_every_layer_again():
    """With read noise a fresh pass reads the lower layers again (new noise): the result differs from
    a sample that reused the first pass's lower-layer outputs, and equals the full written-out one."""
    s, st_a, wk_a, X, T = _setup(0.05, False)
    _, st_b, wk_b, _, _ = _setup(0.05, False)
    _, st_c, wk_c, _, _ = _setup(0.05, False)
    for k in range(X.shape[0]):
        loop.train_sample(s, st_a, wk_a, X[k], T[k], k, np.zeros(1), False)
        _every_layer_every_pass(s, st_b, wk_b, X[k], T[k], k)
        _every_layer_every_pass(s, st_c, wk_c, X[k], T[k], k, reuse=True)
    assert _state_bytes(st_a) == _state_bytes(st_b)
    assert _state_bytes(st_a) != _state_bytes(st_c)
