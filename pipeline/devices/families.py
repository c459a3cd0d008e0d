"""The device-family registry (DESIGN §1.3): one entry per family of the pulse law.

Every table that lists family names (``law.FAMILY_CODES``, ``spec.PARAMS_BY_FAMILY``, the fit's
free-parameter counts, bounds, starting points and fittable set, ``config.FAMILIES``) is derived
from :data:`REGISTRY`. Adding a family = one :class:`Family` entry here + one branch in
:func:`pipeline.devices.law.shape_up` / ``shape_down`` (and its code in ``law._LAW_CODES``) + tests.
The consistency checks at the bottom (and in ``law``) fail at import when an entry is incomplete.

Also the one table of per-device parameter names: :data:`PARAMETERS` maps the array name
(``g_min``) to its ``device.yaml`` name (``g_min_S``) and unit.

A leaf module: it imports only the standard library and NumPy, so ``law``, ``spec``, ``config`` and
the crossbar code can import it without pulling in numba or scipy.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import numpy as np

# ------------------------------------------------------------------- per-device parameters

#: array name -> (device.yaml name, unit), in the fixed order of the 6-vector theta of the fit
PARAMETERS: dict[str, tuple[str, str]] = {
    "g_min": ("g_min_S", "S"),
    "g_max": ("g_max_S", "S"),
    "dg_up": ("dg_up_S", "S"),
    "dg_down": ("dg_down_S", "S"),
    "gamma_up": ("gamma_up", "1"),
    "gamma_down": ("gamma_down", "1"),
}
#: the parameters every family has (array names)
COMMON_PARAMETERS = ("g_min", "g_max", "dg_up", "dg_down")
#: device.yaml names in theta order: ("g_min_S", ..., "gamma_down")
FILE_NAMES = tuple(v[0] for v in PARAMETERS.values())
#: device.yaml name -> unit
FILE_UNITS = {v[0]: v[1] for v in PARAMETERS.values()}


# ------------------------------------------------------------------------------- families


@dataclass(frozen=True)
class Family:
    name: str
    code: int                                   # the integer the jitted law branches on
    shape_params: tuple[str, ...]               # array names of the shape parameters (beyond COMMON_PARAMETERS)
    fittable: bool                              # offered by ``device fit``
    shape_bounds: tuple[float, float] | None = None  # fit bounds of every shape parameter
    starts: Callable | None = None              # fit starting points: starts(StartStats) -> list of 6-lists

    @property
    def params(self) -> tuple[str, ...]:
        """Array names of all parameters the family uses."""
        return COMMON_PARAMETERS + self.shape_params

    @property
    def file_params(self) -> tuple[str, ...]:
        """``device.yaml`` names of all parameters the family uses."""
        return tuple(PARAMETERS[p][0] for p in self.params)

    @property
    def units(self) -> dict[str, str]:
        """``device.yaml`` name -> unit of the family's parameters."""
        return {PARAMETERS[p][0]: PARAMETERS[p][1] for p in self.params}

    @property
    def n_free(self) -> int:
        """Free parameters of the mean-step least squares (AIC/BIC of the step fit)."""
        return len(self.params)

    @property
    def ss_free(self) -> list[int]:
        """Free entries of the state-space parameter vector (g_min, g_max, log dg_up, log dg_down,
        gamma_up, gamma_down, log c2c, log σ_read): the family's parameters + the 2 noise ones."""
        idx = [list(PARAMETERS).index(p) for p in self.params]
        return idx + [6, 7]


# ----------------------------------------------------- fit starting points (scaled units)


def start_stats(g: np.ndarray, dg: np.ndarray, pol: np.ndarray) -> SimpleNamespace:
    """What the starting points of every family are built from (``g``, ``dg`` scaled)."""
    lo, hi = float(g.min()), float(g.max())
    span = max(hi - lo, 1e-12)
    # steps away from the far bound of their direction (a saturated ramp reads steps of ~0 there)
    up = (pol > 0) & (g <= lo + 0.8 * span)
    dn = (pol < 0) & (g >= lo + 0.2 * span)
    up = up if up.sum() >= 2 else pol > 0
    dn = dn if dn.sum() >= 2 else pol < 0
    mu_up = max(float(np.mean(dg[up])), 1e-9 * span)
    mu_dn = max(float(-np.mean(dg[dn])), 1e-9 * span)
    # soft bounds in closed form: up step = a (gmax - G), down step = -b (G - gmin)
    au, bu = _line(g[up], dg[up])
    ad, bd = _line(g[dn], dg[dn])
    sb = None
    if bu < 0 and bd < 0:
        gmax, gmin = au / -bu, -ad / -bd
        if gmax > gmin:
            sb = [max(gmin, 0.0), gmax, -bu * (gmax - gmin), -bd * (gmax - gmin), 1.0, 1.0]
    return SimpleNamespace(lo=lo, hi=hi, span=span, mu_up=mu_up, mu_dn=mu_dn, au=au, bu=bu, ad=ad, bd=bd, sb=sb,
                           obs=[lo, hi])


def _line(x, y):
    """Least-squares line y = a + b x (returns a, b)."""
    if len(x) < 2 or np.ptp(x) == 0:
        return (float(np.mean(y)) if len(y) else 0.0), 0.0
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b)


def _starts_constant(st):
    return [st.obs + [st.mu_up, st.mu_dn, 0.0, 0.0]]


def _starts_soft_bounds(st):
    wide = [max(st.lo - 0.2 * st.span, 0.0), st.hi + 0.2 * st.span]
    return ([st.sb] if st.sb else []) + [wide + [2 * st.mu_up, 2 * st.mu_dn, 1.0, 1.0]]


def _starts_linear(st):
    obs, span = st.obs, st.span
    rng_ = obs[1] - obs[0]
    dgu = max(st.au + st.bu * obs[0], 1e-9 * span)
    dgd = max(-(st.ad + st.bd * obs[1]), 1e-9 * span)
    gu = float(np.clip(-st.bu * rng_ / dgu, 0.0, 20.0))
    gd = float(np.clip(st.bd * rng_ / dgd, 0.0, 20.0))
    out = [obs + [dgu, dgd, gu, gd]]
    return out + ([st.sb] if st.sb else [])


def _starts_power(st):
    out = [(st.sb if st.sb else st.obs + [st.mu_up, st.mu_dn, 1.0, 1.0])]
    for gam, pad in ((2.0, 0.05), (0.5, 0.01)):
        w = [max(st.lo - pad * st.span, 0.0), st.hi + pad * st.span]
        out.append(w + [st.mu_up * (1.5 ** gam) * 2, st.mu_dn * (1.5 ** gam) * 2, gam, gam])
    return out


# ------------------------------------------------------------------------------ registry

_GAMMAS = ("gamma_up", "gamma_down")

#: in code order (this order is the order of every derived table, of fit.zarr's family axis and of
#: ``config.FAMILIES``, whose non-fittable ``table`` comes last)
REGISTRY: tuple[Family, ...] = (
    Family("constant", 0, (), fittable=True, starts=_starts_constant),
    Family("linear", 1, _GAMMAS, fittable=True, shape_bounds=(0.0, 20.0), starts=_starts_linear),
    Family("soft-bounds", 2, (), fittable=True, starts=_starts_soft_bounds),
    Family("power", 3, _GAMMAS, fittable=True, shape_bounds=(0.02, 20.0), starts=_starts_power),
    Family("table", 4, (), fittable=False),
)

BY_NAME: dict[str, Family] = {f.name: f for f in REGISTRY}
NAMES: tuple[str, ...] = tuple(BY_NAME)
CODES: dict[str, int] = {f.name: f.code for f in REGISTRY}
FIT_NAMES: tuple[str, ...] = tuple(f.name for f in REGISTRY if f.fittable)


def get(name: str) -> Family:
    """The registry entry of family ``name`` (KeyError naming the known families otherwise)."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown device family {name!r}; registered: {', '.join(NAMES)}") from None


# ------------------------------------------------------------- consistency (at import)

assert len(BY_NAME) == len(REGISTRY), "duplicate family name in the registry"
assert sorted(CODES.values()) == list(range(len(REGISTRY))), f"family codes must be 0..n-1, got {CODES}"
for _f in REGISTRY:
    assert all(p in PARAMETERS for p in _f.shape_params), f"{_f.name}: unknown parameter in {_f.shape_params}"
    assert (_f.shape_bounds is not None) == bool(_f.shape_params) or not _f.fittable, \
        f"{_f.name}: a fittable family with shape parameters needs shape_bounds (and only then)"
    assert (_f.starts is not None) == _f.fittable, f"{_f.name}: fittable families (only) need starting points"
del _f
