"""Counter-based generator (DESIGN §2.3): kernels equal their NumPy references; the ziggurat
normal has the N(0, 1) distribution."""

import math

import numpy as np
import pytest

from pipeline import rng  # first: pipeline sets the numba cache folder
from numba import njit  # noqa: E402, I001


@njit(cache=True)
def _draws(seed, stream, step, index, n, which):
    out = np.empty(n)
    key = rng.key4(seed, stream, step, index)
    same = rng.subkey(rng.key3(seed, stream, step), index) == key
    for k in range(n):
        out[k] = rng.normal(key, k) if which == 0 else rng.uniform(key, k)
    return out, same


def test_kernels_equal_numpy_reference():
    k = np.arange(3000)
    z, same = _draws(7, 3, 11, 5, 3000, 0)
    u, _ = _draws(7, 3, 11, 5, 3000, 1)
    assert same
    assert np.array_equal(z, rng.normal_np(7, 3, 11, 5, k))  # includes ~36 wedge/tail draws
    assert np.array_equal(u, rng.uniform_np(7, 3, 11, 5, k))
    key = int(rng.key4_np(7, 3, 11, 5))
    assert rng.normal_key_np(key, 17) == z[17] and rng.uniform_key_np(key, 17) == u[17]


def test_normal_distribution():
    stats = pytest.importorskip("scipy.stats")
    z, _ = _draws(1, 2, 3, 4, 1_000_000, 0)
    assert abs(z.mean()) < 5e-3 and abs(z.std() - 1) < 5e-3
    assert stats.kstest(z, "norm").pvalue > 1e-3
    r = 3.442619855899  # the ziggurat's tail start: the tail must carry its exact mass
    expect = math.erfc(r / math.sqrt(2))
    assert abs((np.abs(z) > r).mean() - expect) < 6 * math.sqrt(expect / z.size)
    assert abs((z > 0).mean() - 0.5) < 3e-3


def test_uniform_range_and_independence_of_streams():
    u, _ = _draws(1, 2, 3, 4, 100_000, 1)
    v, _ = _draws(1, 2, 3, 5, 100_000, 1)
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 5e-3
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.02
