"""One device-to-device draw (DESIGN §1.3): per-device parameters from a fitted population.

The population of ``device.yaml`` gives each parameter's mean, device-to-device std and
correlations; :func:`draw` returns ``n`` devices' parameters, drawn once at array instantiation
with a NumPy generator (the draw is then stored data, never recomputed). A ``table`` population
draws whole measured look-up tables instead (:func:`load_tables` reads them from the
``table.source`` that ``device.yaml`` names).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import InputError
from .families import PARAMETERS
from .spec import DeviceSpec

# per-device parameters of the arrays, and their names and units in device.yaml (one table:
# pipeline.devices.families.PARAMETERS)
PARAM_NAMES = tuple(PARAMETERS)
SPEC_NAMES = {name: file for name, (file, _) in PARAMETERS.items()}
UNITS = {name: unit for name, (_, unit) in PARAMETERS.items()}


def draw(spec: DeviceSpec, n: int, rng: np.random.Generator, dist: str, d2d: bool) -> dict:
    """Draw ``n`` devices' parameters: truncated normal (resampled until positive and g_max >
    g_min) or log-normal with the population's mean and std, correlated where given."""
    names = [nm for nm in PARAM_NAMES if SPEC_NAMES[nm] in spec.population]
    means = np.array([spec.population[SPEC_NAMES[nm]].mean for nm in names])
    stds = np.array([spec.population[SPEC_NAMES[nm]].std for nm in names]) if d2d else np.zeros(len(names))
    corr = np.eye(len(names))
    if spec.correlations and d2d:
        cn = spec.correlations["names"]
        cm = np.asarray(spec.correlations["matrix"], float)
        for a, na in enumerate(names):
            for b, nb in enumerate(names):
                if SPEC_NAMES[na] in cn and SPEC_NAMES[nb] in cn:
                    corr[a, b] = cm[cn.index(SPEC_NAMES[na]), cn.index(SPEC_NAMES[nb])]
    w, v = np.linalg.eigh((corr + corr.T) / 2)
    chol = v * np.sqrt(np.clip(w, 0, None))  # valid square root even if the estimate is not PD
    out = np.empty((len(names), n))
    todo = np.arange(n)
    for _ in range(100):
        z = chol @ rng.standard_normal((len(names), len(todo)))
        if dist == "lognormal":
            with np.errstate(divide="ignore", invalid="ignore"):
                s2 = np.log1p((stds / np.where(means > 0, means, 1.0)) ** 2)
            vals = np.where(means[:, None] > 0, means[:, None] * np.exp(np.sqrt(s2)[:, None] * z - s2[:, None] / 2),
                            means[:, None] + stds[:, None] * z)
        else:
            vals = means[:, None] + stds[:, None] * z
        out[:, todo] = vals
        ok = np.all(out[:, todo] >= 0, axis=0)
        gi, ga = names.index("g_min"), names.index("g_max")
        ok &= out[ga, todo] > out[gi, todo]
        for nm in ("dg_up", "dg_down"):
            ok &= out[names.index(nm), todo] > 0
        todo = todo[~ok]
        if todo.size == 0:
            break
    if todo.size:
        raise InputError("device.yaml population", "device-to-device spread too wide: cannot draw valid devices (g_max > g_min > 0, steps > 0)")
    res = {nm: out[k] for k, nm in enumerate(names)}
    for nm in ("gamma_up", "gamma_down"):
        res.setdefault(nm, np.zeros(n))
    return res


def load_tables(spec: DeviceSpec):
    """Stacked look-up tables of a ``table`` device (``tab_g, tab_nb, tab_p, tab_np, tab_up,
    tab_down`` as the kernels take them; padded bins repeat the last centre)."""
    src = Path(spec.table["source"])
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in sorted(src.rglob("*")) if f.is_file()) \
        if src.is_dir() else ()
    return tuple(a.copy() for a in _read_tables(str(src.resolve()), stamp))


@functools.lru_cache(maxsize=4)
def _read_tables(src: str, stamp: tuple):
    """The tables of folder ``src`` (reading the text files takes seconds: kept per process, keyed
    on the files' names, sizes and modification times)."""
    from . import readers

    luts = readers.read_characterization(Path(src))
    if not isinstance(luts, readers.LutSet):
        raise InputError(f"device.yaml: table.source ({src})", "expected a look-up-table folder (dG_increasing / dG_decreasing files)")
    return tuple(np.ascontiguousarray(getattr(luts, nm)) for nm in ("tab_g", "tab_nb", "tab_p", "tab_np", "tab_up", "tab_down"))
