"""Counter-based random numbers for numba kernels (DESIGN §2.3).

Every random number is a pure function of a key built from (seed, stream, step, index, pulse):
``key = mix(mix(mix(mix(seed) ^ stream) ^ step) ^ index)`` and the draw for pulse ``k`` is
``mix(key ^ k·φ)`` (splitmix64 finaliser). No generator state exists, so a result does not depend
on thread count, execution order, executor or on resuming from a checkpoint.

Streams (``STREAM_*``) separate independent uses (pulse noise, read noise per read, stochastic
rounding, ...). ``index`` is the flat device (or output line) index.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53
_TWO_PI = 2.0 * np.pi

# stream identifiers (any distinct integers)
STREAM_PULSE = 1
STREAM_ROUND = 2
STREAM_INIT = 3
STREAM_SYNTH_READ = 4
STREAM_READ = 1000  # + read number within a sample


@njit(uint64(uint64), cache=True, inline="always")
def mix(z):
    """splitmix64 finaliser: a bijective avalanche hash of a 64-bit word."""
    z = z + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def key4(seed, stream, step, index):
    """Key of one (seed, stream, step, index) counter; arguments are any integers >= 0."""
    h = mix(uint64(seed))
    h = mix(h ^ uint64(stream))
    h = mix(h ^ uint64(step))
    return mix(h ^ uint64(index))


@njit(cache=True, inline="always")
def uniform(key, k):
    """U[0, 1) for draw ``k`` of ``key`` (53-bit resolution)."""
    return float(mix(key ^ (uint64(k) * _GOLDEN)) >> _S11) * _INV53


@njit(cache=True, inline="always")
def normal(key, k):
    """N(0, 1) for draw ``k`` of ``key`` (Box-Muller on two independent uniforms)."""
    h = mix(key ^ (uint64(k) * _GOLDEN))
    u1 = (float(h >> _S11) + 1.0) * _INV53  # (0, 1]
    u2 = float(mix(h) >> _S11) * _INV53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(_TWO_PI * u2)


def uniform_np(seed, stream, step, index, k):
    """NumPy reference of :func:`uniform` (vectorised over arrays of counters)."""
    with np.errstate(over="ignore"):
        key = _key4_np(seed, stream, step, index)
        return (_mix_np(key ^ (np.asarray(k, np.uint64) * _GOLDEN)) >> _S11).astype(np.float64) * _INV53


def normal_np(seed, stream, step, index, k):
    """NumPy reference of :func:`normal`."""
    with np.errstate(over="ignore"):
        key = _key4_np(seed, stream, step, index)
        h = _mix_np(key ^ (np.asarray(k, np.uint64) * _GOLDEN))
        u1 = ((h >> _S11).astype(np.float64) + 1.0) * _INV53
        u2 = (_mix_np(h) >> _S11).astype(np.float64) * _INV53
        return np.sqrt(-2.0 * np.log(u1)) * np.cos(_TWO_PI * u2)


def _mix_np(z):
    z = np.asarray(z, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def _key4_np(seed, stream, step, index):
    u = lambda v: np.asarray(v).astype(np.uint64)  # noqa: E731
    h = _mix_np(u(seed))
    h = _mix_np(h ^ u(stream))
    h = _mix_np(h ^ u(step))
    return _mix_np(h ^ u(index))
