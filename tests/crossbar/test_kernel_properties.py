"""Property tests (hypothesis) of the pulse update on random arrays of every family."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.crossbar import kernels as K
from pipeline.crossbar import reference as R
from pipeline.devices import law

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PARAMETRIC = [law.CONSTANT, law.LINEAR, law.SOFT_BOUNDS, law.POWER]

cases = st.fixed_dictionaries({
    "family": st.sampled_from(PARAMETRIC + [law.TABLE]),
    "mapping": st.sampled_from(list(K.MAPPINGS.values())),
    "encoding": st.sampled_from(list(K.ENCODINGS.values())),
    "policy": st.sampled_from(list(K.POLICIES.values())),
    "n_max": st.integers(1, 40),
    "c2c": st.sampled_from([0.0, 0.3, 2.0]),
    "seed": st.integers(0, 2**32),
    "step": st.integers(0, 10**6),
    "scale": st.floats(1e-3, 2.0),
})


def _setup(c, stuck=0.1):
    rng = np.random.default_rng(c["seed"])
    g, dev, ph = R.random_array(rng, (7, 5), family=c["family"], mapping=c["mapping"], encoding=c["encoding"],
                                policy=c["policy"], n_max=c["n_max"], c2c=c["c2c"], stuck_fraction=stuck)
    d = rng.normal(size=5)
    a = rng.normal(size=8) * c["scale"]
    return g, dev, ph, d, a


def _update(g, dev, ph, d, a, c, steps=1):
    cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    for s in range(steps):
        K.update_layer(g, dev, ph, 0, d, a, 0.1, c["seed"], c["step"] + s, cu, cd)
    return cu, cd


@SETTINGS
@given(cases)
def test_within_bounds_and_stuck_never_move(c):
    g, dev, ph, d, a = _setup(c, stuck=0.3)
    g0 = g.copy()
    _update(g, dev, ph, d, a * 20, c, steps=4)  # large updates: hit the bounds
    assert np.all(g >= dev.g_min) and np.all(g <= dev.g_max)
    stuck = dev.stuck != 0
    assert np.array_equal(g[stuck], g0[stuck])


@SETTINGS
@given(cases)
def test_zero_request_zero_pulses(c):
    g, dev, ph, d, a = _setup(c)
    g0 = g.copy()
    for dd, aa in ((d * 0, a), (d, a * 0)):
        cu, cd = _update(g, dev, ph, dd, aa, c)
        assert cu.sum() == 0 and cd.sum() == 0 and np.array_equal(g, g0)
    # below half a nominal step: nothing with nearest, floor, stochastic at q = 0 exactly
    tiny = a * 0 + 1e-300
    cu, cd = _update(g, dev, ph._replace(encoding=K.ENC_FLOOR), d * 0 + 1e-3, tiny, c)
    assert cu.sum() == 0 and cd.sum() == 0 and np.array_equal(g, g0)


@SETTINGS
@given(cases.filter(lambda c: c["family"] != law.TABLE))
def test_sign_of_realised_change_follows_request(c):
    """Parametric families: the realised weight change of every cross-point has the sign of the
    request (or is zero)."""
    g, dev, ph, d, a = _setup(c)
    w0 = np.array([K.weight(g, dev, ph, i) for i in range(g.shape[1])])
    _update(g, dev, ph, d, a, c)
    w1 = np.array([K.weight(g, dev, ph, i) for i in range(g.shape[1])])
    req = (-0.1 * d)[:, None] * a[None, :]
    assert np.all((w1 - w0) * req.ravel() >= 0)


@SETTINGS
@given(cases, st.integers(1, 12))
def test_constant_device_without_noise_gives_n_dg(c, n):
    """Noise off, constant family, far from the bounds: a request of n nominal steps changes G by
    exactly n·dG (n pulses, each adding dG, summed in order)."""
    c = dict(c, family=law.CONSTANT, c2c=0.0)
    g, dev, ph, d, a = _setup(c, stuck=0.0)
    ph = ph._replace(encoding=K.ENC_NEAREST, n_max=64, mapping=K.MAP_REFERENCE, dw_pot=1e-2, dw_dep=1e-2)
    rng = np.random.default_rng(c["seed"] + 1)
    N = g.shape[1]
    g = np.ascontiguousarray((dev.g_min + dev.g_max) / 2)[:1]
    dev = dev._replace(**{k: np.ascontiguousarray(getattr(dev, k)[:1]) for k in ("g_min", "g_max", "dg_up", "dg_down", "gamma_up", "gamma_down", "stuck", "table")})
    dev = dev._replace(dg_up=dev.dg_up * 1e-3, dg_down=dev.dg_down * 1e-3)
    sign = rng.choice([-1.0, 1.0], N)
    dw = sign * n * 1e-2
    g0 = g.copy()
    cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    K.program(g, dev, ph, dw, c["seed"], c["step"], cu, cd)
    want = g0.copy()
    for _ in range(n):
        want = want + np.where(sign > 0, dev.dg_up, -dev.dg_down)
    assert np.array_equal(g, want)
    assert np.array_equal(cu + cd, np.full(g.shape, n))


def test_nan_and_infinite_requests():
    """A NaN request writes nothing; an infinite one gives the capped pulse count."""
    g, dev, ph, d, a = _setup(dict(family=law.SOFT_BOUNDS, mapping=K.MAP_REFERENCE, encoding=K.ENC_NEAREST, policy=0,
                                   n_max=5, c2c=0.3, seed=1, scale=1.0), stuck=0.0)
    dw = np.zeros(g.shape[1])
    dw[:3] = [np.nan, np.inf, -np.inf]
    cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    g0 = g.copy()
    assert K.program(g, dev, ph, dw, 1, 2, cu, cd) == (5, 5)
    assert g[0, 0] == g0[0, 0] and cu[0, 1] == 5 and cd[0, 2] == 5
    assert R.program(g0, dev, ph, dw, 1, 2, cu * 0, cd * 0)[3:] == (5, 5)
