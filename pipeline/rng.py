"""Counter-based random numbers for numba kernels (DESIGN §2.3).

Every random number is a pure function of a key built from (seed, stream, step, index, pulse):
``key = mix(mix(mix(mix(seed) ^ stream) ^ step) ^ index)`` (splitmix64 finaliser) and the first
64-bit word of draw ``k`` is ``mix(key ^ k·φ)``. No generator state exists, so a result does not
depend on thread count, execution order, executor or on resuming from a checkpoint. A kernel that draws
for many indices at one (seed, stream, step) hoists the first three rounds: ``key3`` once, then
``subkey(key3, index)`` per device (the same value as ``key4``).

Normal deviates use the ziggurat method (Marsaglia & Tsang 2000, in Doornik's 2005 exact form,
128 layers): draw ``k``'s first 64-bit word ``h`` gives the layer (low 7 bits)
and a signed uniform (high 53 bits); in 98.8 % of draws that is the whole cost (one hash, one
multiply, one compare). Rejected draws continue with ``h ← mix(h)``, the wedge test evaluates the
exact density, the tail (|z| > R) uses Marsaglia's exponential method. The distribution is
exactly N(0, 1) up to the 53-bit resolution of the uniforms.

Streams (``STREAM_*``) separate independent uses (pulse noise, read noise per read, stochastic
rounding, ...). ``index`` is the flat device (or output line) index.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, uint64

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_LAYER = np.uint64(127)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53
_INV52 = 2.0 / 9007199254740992.0  # 2**-52

# stream identifiers (any distinct integers)
STREAM_PULSE = 1
STREAM_ROUND = 2
STREAM_INIT = 3
STREAM_SYNTH_READ = 4
STREAM_READ = 1000  # + read number within a sample


def _ziggurat_tables(c=128, r=3.442619855899, v=9.91256303526217e-3):
    """Doornik's ZIGNOR tables: layer edges ``x`` (c + 1,) and acceptance ratios ``x[i+1]/x[i]``."""
    f = lambda t: math.exp(-0.5 * t * t)  # noqa: E731
    x = np.zeros(c + 1)
    x[0] = v / f(r)
    x[1] = r
    for i in range(2, c):
        x[i] = math.sqrt(-2.0 * math.log(v / x[i - 1] + f(x[i - 1])))
    x[c] = 0.0
    return x, x[1:] / x[:-1], r


ZIG_X, ZIG_RATIO, ZIG_R = _ziggurat_tables()


@njit(uint64(uint64), cache=True, inline="always")
def mix(z):
    """splitmix64 finaliser: a bijective avalanche hash of a 64-bit word."""
    z = z + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def key3(seed, stream, step):
    """The (seed, stream, step) prefix of a key; ``subkey(key3(...), index) == key4(...)``."""
    h = mix(uint64(seed))
    h = mix(h ^ uint64(stream))
    return mix(h ^ uint64(step))


@njit(cache=True, inline="always")
def subkey(prefix, index):
    return mix(prefix ^ uint64(index))


@njit(cache=True, inline="always")
def key4(seed, stream, step, index):
    """Key of one (seed, stream, step, index) counter; arguments are any integers >= 0."""
    return subkey(key3(seed, stream, step), index)


@njit(cache=True, inline="always")
def word(key, k):
    """First 64-bit word of draw ``k`` of ``key``."""
    return mix(key ^ (uint64(k) * _GOLDEN))


@njit(cache=True, inline="always")
def _u53(h):
    return float(h >> _S11) * _INV53


@njit(cache=True, inline="always")
def uniform(key, k):
    """U[0, 1) for draw ``k`` of ``key`` (53-bit resolution)."""
    return _u53(word(key, k))


@njit(cache=True)
def _normal_slow(h, u, i):
    """The rejected ziggurat draws (1.2 %): wedge test or tail, continuing the hash chain ``h``."""
    while True:
        if i == 0:  # tail beyond R (Marsaglia 1964)
            while True:
                h = mix(h)
                xt = math.log(1.0 - _u53(h)) / ZIG_R
                h = mix(h)
                yt = math.log(1.0 - _u53(h))
                if -2.0 * yt >= xt * xt:
                    break
            return xt - ZIG_R if u < 0.0 else ZIG_R - xt
        z = u * ZIG_X[i]
        f0 = math.exp(-0.5 * (ZIG_X[i] * ZIG_X[i] - z * z))
        f1 = math.exp(-0.5 * (ZIG_X[i + 1] * ZIG_X[i + 1] - z * z))
        h = mix(h)
        if f1 + _u53(h) * (f0 - f1) < 1.0:
            return z
        h = mix(h)
        u = float(h >> _S11) * _INV52 - 1.0
        i = int(h & _LAYER)
        if abs(u) < ZIG_RATIO[i]:
            return u * ZIG_X[i]


@njit(cache=True, inline="always")
def normal(key, k):
    """N(0, 1) for draw ``k`` of ``key`` (ziggurat; see the module docstring)."""
    h = word(key, k)
    u = float(h >> _S11) * _INV52 - 1.0  # [-1, 1)
    i = h & _LAYER  # unsigned: no negative-index wraparound on the table reads
    if abs(u) < ZIG_RATIO[i]:
        return u * ZIG_X[i]
    return _normal_slow(h, u, int(i))


# ------------------------------------------------------------------------- NumPy references


def _mix_np(z):
    z = np.asarray(z, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def _key4_np(seed, stream, step, index):
    return _mix_np(key3_np(seed, stream, step) ^ np.asarray(index).astype(np.uint64))


def key3_np(seed, stream, step):
    u = lambda v: np.asarray(v).astype(np.uint64)  # noqa: E731
    with np.errstate(over="ignore"):
        return _mix_np(_mix_np(_mix_np(u(seed)) ^ u(stream)) ^ u(step))


def key4_np(seed, stream, step, index):
    with np.errstate(over="ignore"):
        return _key4_np(seed, stream, step, index)


def draw_word_np(key, k):
    """The first 64-bit word of draw ``k`` of ``key`` (scalar)."""
    with np.errstate(over="ignore"):
        return np.uint64(_mix_np(np.uint64(key) ^ (np.uint64(k) * _GOLDEN)))


def uniform_key_np(key, k):
    """Scalar reference of ``uniform(key, k)``."""
    return float(draw_word_np(key, k) >> _S11) * _INV53


def normal_key_np(key, k):
    """Scalar reference of ``normal(key, k)``."""
    with np.errstate(over="ignore"):
        return _normal_scalar(draw_word_np(key, k))


def uniform_np(seed, stream, step, index, k):
    """NumPy reference of :func:`uniform` (vectorised over arrays of counters)."""
    with np.errstate(over="ignore"):
        return (_words_np(seed, stream, step, index, k) >> _S11).astype(np.float64) * _INV53


def _normal_scalar(h):
    """The ziggurat of :func:`normal` for one first word ``h``, written out step by step."""
    h = np.uint64(h)

    def u53(w):
        return float(w >> _S11) * _INV53

    def nxt(w):
        with np.errstate(over="ignore"):
            return np.uint64(_mix_np(w))

    while True:
        u = float(h >> _S11) * _INV52 - 1.0
        i = int(h & _LAYER)
        if abs(u) < ZIG_RATIO[i]:
            return u * ZIG_X[i]
        if i == 0:
            while True:
                h = nxt(h)
                xt = math.log(1.0 - u53(h)) / ZIG_R
                h = nxt(h)
                yt = math.log(1.0 - u53(h))
                if -2.0 * yt >= xt * xt:
                    return xt - ZIG_R if u < 0.0 else ZIG_R - xt
        z = u * ZIG_X[i]
        f0 = math.exp(-0.5 * (ZIG_X[i] * ZIG_X[i] - z * z))
        f1 = math.exp(-0.5 * (ZIG_X[i + 1] * ZIG_X[i + 1] - z * z))
        h = nxt(h)
        if f1 + u53(h) * (f0 - f1) < 1.0:
            return z
        h = nxt(h)


def normal_np(seed, stream, step, index, k):
    """NumPy reference of :func:`normal` (any broadcastable counters)."""
    with np.errstate(over="ignore"):
        h = _words_np(seed, stream, step, index, k)
        out = np.array([_normal_scalar(w) for w in np.atleast_1d(h).ravel()]).reshape(np.shape(h))
        return out if np.ndim(h) else out[()]


def _words_np(seed, stream, step, index, k):
    key = _key4_np(seed, stream, step, index)
    k = np.asarray(k, np.uint64)
    return _mix_np(key ^ (k * _GOLDEN))
