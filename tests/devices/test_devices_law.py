"""The one pulse law (pipeline/devices/law.py): numba and NumPy forms agree, bounds, polarity."""

import numpy as np
from hypothesis import given, settings, strategies as st

from pipeline.rng import key4
from pipeline.devices import law

fam = st.sampled_from([law.CONSTANT, law.LINEAR, law.SOFT_BOUNDS, law.POWER])
unit = st.floats(0.0, 1.0)


@settings(max_examples=200, deadline=None)
@given(fam, st.sampled_from([1, -1]), unit, st.floats(0.0, 3.0), st.floats(0.1, 3.0))
def test_mean_step_numba_equals_numpy(family, pol, x, gu, gd):
    g = 3e-4 + x * 7e-4
    a = law.mean_step(family, pol, g, 3e-4, 1e-3, 1e-5, 2e-5, gu, gd)
    b = law.mean_step_np(family, pol, g, 3e-4, 1e-3, 1e-5, 2e-5, gu, gd)
    assert np.isclose(a, b, rtol=1e-12, atol=0)
    assert (a >= 0) if pol > 0 else (a <= 0)


@settings(max_examples=100, deadline=None)
@given(fam, st.sampled_from([1, -1]), unit, st.integers(0, 50), st.floats(0.0, 1.0), st.integers(0, 2**31))
def test_apply_pulses_bounds_and_sign(family, pol, x, n, c2c, seed):
    g0 = 3e-4 + x * 7e-4
    g = law.apply_pulses(g0, n, pol, family, 3e-4, 1e-3, 3e-5, 3e-5, 0.5, 0.5, c2c, np.uint64(key4(seed, 1, 0, 0)), 0,
                         *law.empty_tables())
    assert 3e-4 <= g <= 1e-3
    if n == 0:
        assert g == g0
    assert (g >= g0) if pol > 0 else (g <= g0)


def test_soft_bounds_step_shrinks_towards_bound():
    g = np.linspace(3e-4, 1e-3, 11)
    up = law.mean_step_np(law.SOFT_BOUNDS, 1, g, 3e-4, 1e-3, 1e-5, 1e-5)
    down = law.mean_step_np(law.SOFT_BOUNDS, -1, g, 3e-4, 1e-3, 1e-5, 1e-5)
    assert np.all(np.diff(up) < 0) and up[-1] == 0
    assert np.all(np.diff(-down) > 0) and down[0] == 0
