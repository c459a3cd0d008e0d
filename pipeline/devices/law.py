"""The pulse law of one EC-RAM cross-point (DESIGN §1.3): the single definition shared by the
synthesiser, the fit (mean response) and the array kernels.

Normalised state ``x = (G - G_min) / (G_max - G_min)``. One potentiation pulse changes G by
``+dg_up · s_up(x) · max(0, 1 + c2c·ξ)``, one depression pulse by ``-dg_down · s_down(x) · max(0,
1 + c2c·ξ)`` with ξ ~ N(0, 1) fresh for every pulse, then ``G`` is clipped to ``[G_min, G_max]``.
The noise factor is floored at 0 so a pulse never moves G against its polarity (at c2c = 0.3 the
floor acts with probability 4e-4).

=============  ========================  ==============================  =====================
family         s_up(x)                   s_down(x)                       aihwkit name
=============  ========================  ==============================  =====================
constant       1                         1                               ConstantStepDevice
linear         1 - gamma_up·x            1 - gamma_down·(1 - x)          LinearStepDevice
soft-bounds    1 - x                     x                               SoftBoundsDevice
power          (1 - x)^gamma_up          x^gamma_down                    PowStepDevice
table          measured inverse CDF of ΔG in the bin of the present G (CrossSim look-up table)
=============  ========================  ==============================  =====================

The ``linear`` factors are floored at 0 (a step never reverses sign). For ``table`` the step is
drawn from the measured distribution itself (c2c is part of the table and the parameter is
ignored): bin k = the bin whose centre is nearest to G (edge bins outside the range), u ~ U(0,1),
ΔG = linear interpolation of ``dG[:, k]`` at u along the CDF points ``p``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..rng import normal, uniform
from .families import CODES

# the codes the jitted branches below test (values from the family registry)
CONSTANT, LINEAR, SOFT_BOUNDS, POWER, TABLE = (CODES[n] for n in ("constant", "linear", "soft-bounds", "power", "table"))
FAMILY_CODES = dict(CODES)
FAMILY_NAMES = {v: k for k, v in FAMILY_CODES.items()}
# a family registered without its branch in shape_up/shape_down (or apply_pulses) must fail here,
# never fall through to the power law
_LAW_CODES = (CONSTANT, LINEAR, SOFT_BOUNDS, POWER, TABLE)
assert sorted(_LAW_CODES) == sorted(FAMILY_CODES.values()), \
    f"families {sorted(set(FAMILY_CODES) - {FAMILY_NAMES[c] for c in _LAW_CODES})} have no branch in the pulse law"


@njit(cache=True, inline="always")
def shape_up(family, x, gamma_up):
    """s_up(x) of the parametric families (x is clipped to [0, 1])."""
    x = min(max(x, 0.0), 1.0)
    if family == CONSTANT:
        return 1.0
    if family == LINEAR:
        return max(1.0 - gamma_up * x, 0.0)
    if family == SOFT_BOUNDS:
        return 1.0 - x
    if family == POWER:
        return (1.0 - x) ** gamma_up
    return np.nan  # a family without a branch here: NaN steps stop training loudly


@njit(cache=True, inline="always")
def shape_down(family, x, gamma_down):
    """s_down(x) of the parametric families (x is clipped to [0, 1])."""
    x = min(max(x, 0.0), 1.0)
    if family == CONSTANT:
        return 1.0
    if family == LINEAR:
        return max(1.0 - gamma_down * (1.0 - x), 0.0)
    if family == SOFT_BOUNDS:
        return x
    if family == POWER:
        return x ** gamma_down
    return np.nan  # a family without a branch here: NaN steps stop training loudly


@njit(cache=True, inline="always")
def mean_step(family, polarity, g, g_min, g_max, dg_up, dg_down, gamma_up, gamma_down):
    """Expected signed ΔG of one noise-free pulse of ``polarity`` (+1 / -1) at conductance g."""
    x = (g - g_min) / (g_max - g_min)
    if polarity > 0:
        return dg_up * shape_up(family, x, gamma_up)
    return -dg_down * shape_down(family, x, gamma_down)


@njit(cache=True, inline="always")
def parametric_step(g, polarity, family, g_min, g_max, dg, gamma, c2c, key, k):
    """Signed ΔG of pulse ``k`` of ``polarity`` on a parametric device at conductance ``g``: the
    one step law (DESIGN §1.3), ``±dg·s(x)·(1 + c2c·ξ)`` with ``dg``/``gamma`` of that polarity and
    ξ drawn from ``(key, k)`` (a step never changes sign). The kernels and the synthesiser call it."""
    x = (g - g_min) / (g_max - g_min)
    if polarity > 0:
        m = dg * shape_up(family, x, gamma)
    else:
        m = -dg * shape_down(family, x, gamma)
    if c2c > 0.0:
        f = 1.0 + c2c * normal(key, k)
        m = m * (f if f > 0.0 else 0.0)
    return m


@njit(cache=True, inline="always")
def clip(g, g_min, g_max):
    """``g`` within the device's bounds."""
    if g < g_min:
        return g_min
    if g > g_max:
        return g_max
    return g


@njit(cache=True, inline="always")
def table_step(g, polarity, t, tab_g, tab_nb, tab_p, tab_np, tab_up, tab_down, u):
    """ΔG of one pulse drawn from look-up table ``t`` at conductance g with uniform u."""
    nb = tab_nb[t]
    # nearest bin centre (bins are increasing)
    lo, hi = 0, nb - 1
    if g <= tab_g[t, 0]:
        k = 0
    elif g >= tab_g[t, hi]:
        k = hi
    else:
        while hi - lo > 1:
            mid = (lo + hi) >> 1
            if tab_g[t, mid] <= g:
                lo = mid
            else:
                hi = mid
        k = lo if (g - tab_g[t, lo]) <= (tab_g[t, hi] - g) else hi
    m = tab_np[t]
    # interpolate along the CDF points p (increasing, p[0]=0, p[m-1]=1)
    a, b = 0, m - 1
    if u <= tab_p[t, 0]:
        b = 0
    elif u >= tab_p[t, b]:
        a = b
    else:
        while b - a > 1:
            mid = (a + b) >> 1
            if tab_p[t, mid] <= u:
                a = mid
            else:
                b = mid
    if polarity > 0:
        d0 = tab_up[t, a, k]
        d1 = tab_up[t, b, k]
    else:
        d0 = tab_down[t, a, k]
        d1 = tab_down[t, b, k]
    if a == b:
        return d0
    w = (u - tab_p[t, a]) / (tab_p[t, b] - tab_p[t, a])
    return d0 + w * (d1 - d0)


@njit(cache=True)
def apply_pulses(g, n, polarity, family, g_min, g_max, dg_up, dg_down, gamma_up, gamma_down, c2c,
                 key, t, tab_g, tab_nb, tab_p, tab_np, tab_up, tab_down):
    """Apply ``n`` pulses of ``polarity`` one at a time; pulse k draws its noise from ``(key, k)``.
    Returns the new conductance (always within [g_min, g_max])."""
    for k in range(n):
        if family == TABLE:
            dg = table_step(g, polarity, t, tab_g, tab_nb, tab_p, tab_np, tab_up, tab_down, uniform(key, k))
        elif polarity > 0:
            dg = parametric_step(g, polarity, family, g_min, g_max, dg_up, gamma_up, c2c, key, k)
        else:
            dg = parametric_step(g, polarity, family, g_min, g_max, dg_down, gamma_down, c2c, key, k)
        g = clip(g + dg, g_min, g_max)
    return g


def empty_tables():
    """Table arguments for devices that use no look-up table (parametric families)."""
    return (np.zeros((1, 1)), np.ones(1, np.int64), np.array([[0.0, 1.0]]), np.full(1, 2, np.int64),
            np.zeros((1, 2, 1)), np.zeros((1, 2, 1)))


def mean_step_np(family: int, polarity: int, g, g_min, g_max, dg_up, dg_down, gamma_up=0.0, gamma_down=0.0):
    """Vectorised NumPy form of :func:`mean_step` (used by the fit's least squares).

    Written out rather than derived from the jitted :func:`mean_step` (e.g. a ``numba.vectorize``
    ufunc over it): that ufunc gives the same floats for constant, linear and soft-bounds, but for
    ``power`` about 2.5% of points differ by 1 ulp (NumPy's ``power`` — SIMD loops and fast paths
    for exponents 0.5 and 2 — versus the libm ``pow`` numba calls), and the fit's outputs
    (``fit.zarr``) depend on those bits."""
    x = np.clip((np.asarray(g, float) - g_min) / (g_max - g_min), 0.0, 1.0)
    if family == CONSTANT:
        s = np.ones_like(x)
    elif family == LINEAR:
        s = np.maximum(1.0 - gamma_up * x, 0.0) if polarity > 0 else np.maximum(1.0 - gamma_down * (1.0 - x), 0.0)
    elif family == SOFT_BOUNDS:
        s = 1.0 - x if polarity > 0 else x
    elif family == POWER:
        s = (1.0 - x) ** gamma_up if polarity > 0 else x ** gamma_down
    else:
        raise ValueError(f"mean_step_np: family code {family} has no closed form")
    return dg_up * s if polarity > 0 else -dg_down * s
