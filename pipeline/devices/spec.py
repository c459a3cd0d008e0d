"""``device.yaml``: the single description of a device population (written by the fit, or by hand).

Schema (keys beyond these are allowed only under ``families``, ``uncertainty``, ``fit`` and
``table``)::

    model: soft-bounds            # family (DESIGN §1.3): constant | linear | soft-bounds | power | table
    source: data/enode/single     # what was fitted
    devices: 1                    # devices in the data
    population:                   # mean and device-to-device std of each parameter
      g_min_S:   {mean: 3.0e-4, std: 0.0}
      g_max_S:   {mean: 9.8e-4, std: 0.0}
      dg_up_S:   {mean: 1.0e-5, std: 0.0}
      dg_down_S: {mean: 2.0e-6, std: 0.0}
      gamma_up:   {mean: 0.5, std: 0.0}    # linear and power only
      gamma_down: {mean: 0.5, std: 0.0}
    correlations:                 # optional: device-to-device correlation matrix
      names: [g_min_S, g_max_S, dg_up_S, dg_down_S]
      matrix: [[1, ...], ...]
    c2c_std: 0.3                  # relative std of one pulse's step
    read_noise_S: 0.0             # std of one conductance read
    table:                        # optional: measured look-up tables (model 'table', or kept beside)
      source: data/enode/multi

Parameter names follow aihwkit where the meaning matches (``gamma_up``/``gamma_down`` are
aihwkit's LinearStep slopes and PowStep exponents; ``dg_*`` is aihwkit's ``dw_min`` in siemens).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..errors import InputError
from .families import CODES as FAMILY_CODES, FILE_UNITS, REGISTRY

# family -> the population keys it needs (device.yaml names), from the family registry
PARAMS_BY_FAMILY = {f.name: f.file_params for f in REGISTRY}
UNITS = dict(FILE_UNITS)  # device.yaml parameter name -> unit
TOP_KEYS = ("model", "source", "devices", "population", "correlations", "c2c_std", "read_noise_S",
            "table", "families", "uncertainty", "fit")


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float = 0.0


@dataclass(frozen=True)
class DeviceSpec:
    model: str
    population: dict[str, Stat]
    c2c_std: float = 0.0
    read_noise_S: float = 0.0
    source: str = "hand-written"
    devices: int = 1
    correlations: dict | None = None
    table: dict | None = None
    extra: dict = field(default_factory=dict)  # families, uncertainty, fit (reported, not used)

    @property
    def family_code(self) -> int:
        return FAMILY_CODES[self.model]

    def mean(self, name: str, default: float = 0.0) -> float:
        s = self.population.get(name)
        return s.mean if s is not None else default

    def to_dict(self) -> dict:
        out = {"model": self.model, "source": self.source, "devices": int(self.devices),
               "population": {k: {"mean": _sig6(v.mean), "std": _sig6(v.std)} for k, v in self.population.items()},
               "c2c_std": _sig6(self.c2c_std), "read_noise_S": _sig6(self.read_noise_S)}
        if self.correlations is not None:
            out["correlations"] = self.correlations
        if self.table is not None:
            out["table"] = self.table
        out.update(self.extra)
        return out


def _sig6(v) -> float:
    """v rounded to 6 significant digits (inf, -inf and NaN pass through unchanged)."""
    return float(f"{float(v):.6g}")


def _pos_number(value, where: str, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(where, f"got {value!r}, expected a number (write floats as 1.0e-3)")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise InputError(where, f"got {value!r}, expected a {'non-negative' if allow_zero else 'positive'} finite number")
    return v


def from_dict(raw: dict, where: str = "device.yaml") -> DeviceSpec:
    if not isinstance(raw, dict):
        raise InputError(where, "expected a mapping with keys model, population, c2c_std, ...")
    for k in raw:
        if k not in TOP_KEYS:
            raise InputError(f"{where}: {k}", f"unknown key; valid keys: {', '.join(TOP_KEYS)}")
    model = raw.get("model")
    if model not in PARAMS_BY_FAMILY:
        raise InputError(f"{where}: model", f"got {model!r}, expected one of {', '.join(PARAMS_BY_FAMILY)}")
    pop_raw = raw.get("population")
    if not isinstance(pop_raw, dict):
        raise InputError(f"{where}: population", "missing, expected a mapping of parameters to {mean, std}")
    population = {}
    for name in PARAMS_BY_FAMILY[model]:
        if name not in pop_raw:
            raise InputError(f"{where}: population.{name}", f"missing; the {model} family needs {', '.join(PARAMS_BY_FAMILY[model])}")
    for name, st in pop_raw.items():
        if name not in UNITS:
            raise InputError(f"{where}: population.{name}", f"unknown parameter; valid: {', '.join(UNITS)}")
        if isinstance(st, (int, float)) and not isinstance(st, bool):
            st = {"mean": st, "std": 0.0}
        if not isinstance(st, dict) or "mean" not in st or set(st) - {"mean", "std"}:
            raise InputError(f"{where}: population.{name}", "expected {mean: <number>, std: <number>}")
        mean = _pos_number(st["mean"], f"{where}: population.{name}.mean", allow_zero=name.startswith("gamma") or name == "g_min_S")
        std = _pos_number(st.get("std", 0.0), f"{where}: population.{name}.std", allow_zero=True)
        population[name] = Stat(mean, std)
    if population["g_max_S"].mean <= population["g_min_S"].mean:
        raise InputError(f"{where}: population.g_max_S.mean", "must be larger than g_min_S.mean")
    c2c = _pos_number(raw.get("c2c_std", 0.0), f"{where}: c2c_std", allow_zero=True)
    rn = _pos_number(raw.get("read_noise_S", 0.0), f"{where}: read_noise_S", allow_zero=True)
    devices = raw.get("devices", 1)
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise InputError(f"{where}: devices", f"got {devices!r}, expected a positive integer")
    corr = raw.get("correlations")
    if corr is not None:
        names, mat = corr.get("names"), corr.get("matrix") if isinstance(corr, dict) else (None, None)
        try:
            m = np.asarray(mat, float)
            ok = isinstance(names, list) and m.shape == (len(names), len(names)) and all(n in population for n in names)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InputError(f"{where}: correlations", "expected {names: [population keys], matrix: square list of lists}")
    table = raw.get("table")
    if model == "table" and not (isinstance(table, dict) and "source" in table):
        raise InputError(f"{where}: table", "model 'table' needs table: {source: <look-up-table folder>}")
    extra = {k: raw[k] for k in ("families", "uncertainty", "fit") if k in raw}
    return DeviceSpec(model=model, population=population, c2c_std=c2c, read_noise_S=rn,
                      source=str(raw.get("source", "hand-written")), devices=devices,
                      correlations=corr, table=table, extra=extra)


def read(path: str | Path) -> DeviceSpec:
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "device file not found" if not path.exists() else "expected a YAML file, found a folder")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(str(path), f"not valid YAML ({exc.__class__.__name__})") from None
    return from_dict(raw, str(path))


def dump(spec: DeviceSpec) -> str:
    return yaml.safe_dump(spec.to_dict(), sort_keys=False, default_flow_style=None, width=120)
