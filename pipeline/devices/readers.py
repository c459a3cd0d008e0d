"""Characterization readers (DESIGN §1.5): long-form pulse-train tables and CrossSim look-up tables.

Two kinds of input, two results:

* a **long-form table** (CSV, gzipped CSV, Zarr or NetCDF), one row per read with the columns
  ``device``, ``cycle``, ``pulse``, ``polarity`` (+1 potentiation, -1 depression, 0 the read
  before the first pulse), a conductance column and optional ``time_s`` → :class:`Traces`;
* a **CrossSim look-up-table folder**, one device (``dG_increasing.txt[.gz]``,
  ``dG_decreasing.txt[.gz]``) or several (``device*/`` sub-folders) → :class:`LutSet`.

Conductance units: ``conductance_S`` is used as is; ``conductance_uS`` (×1e-6),
``conductance_mS`` (×1e-3) and ``current_A`` / ``read_voltage_V`` are converted to siemens.
Look-up tables are read as siemens, as CrossSim does (its loader prints ``G·1e6`` as µS); the
nine-device ENODe set thus spans 20.5-27.3 mS (see data/README.md).

Every problem raises :class:`~pipeline.errors.InputError` naming the file, the row (1-based line
of the file, header = line 1) or column, and what was expected.
"""

from __future__ import annotations

import gzip
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

REQUIRED = ("device", "cycle", "pulse", "polarity")
CONDUCTANCE_COLUMNS = {"conductance_S": 1.0, "conductance_mS": 1e-3, "conductance_uS": 1e-6}
MIN_PULSES = 2


@dataclass
class Traces:
    """Pulse trains on a regular grid (NaN-padded): read ``k`` of cycle ``c`` of device ``d``.

    ``g[d, c, k]`` is the measured conductance (S) after the pulse of polarity ``pol[d, c, k]``
    (+1 / -1; 0 for a read before the first pulse); ``pulse[d, c, k]`` the pulse index as given.
    """

    source: str
    devices: list[str]
    g: np.ndarray      # (device, cycle, read) S
    pol: np.ndarray    # (device, cycle, read) int8, 0 where no pulse preceded or padding
    pulse: np.ndarray  # (device, cycle, read) float, NaN padding
    unit_note: str = "conductance_S"

    @property
    def n_devices(self) -> int:
        return self.g.shape[0]

    def steps(self):
        """Successive measured steps inside each cycle: (g_prev, dg, polarity), each (device, cycle, read-1)."""
        g_prev = self.g[:, :, :-1]
        dg = self.g[:, :, 1:] - g_prev
        pol = self.pol[:, :, 1:].astype(np.int8)
        ok = np.isfinite(dg) & (pol != 0)
        return np.where(ok, g_prev, np.nan), np.where(ok, dg, np.nan), np.where(ok, pol, 0)


@dataclass
class LutSet:
    """CrossSim look-up tables of one or more devices, padded to common shapes (the arrays that
    :func:`pipeline.devices.law.apply_pulses` takes: ``tab_g, tab_nb, tab_p, tab_np, tab_up, tab_down``)."""

    source: str
    devices: list[str]
    tab_g: np.ndarray     # (table, bin) S, bin centres (padding repeats the last centre)
    tab_nb: np.ndarray    # (table,) bins
    tab_p: np.ndarray     # (table, cdf) cumulative probabilities
    tab_np: np.ndarray    # (table,) CDF points
    tab_up: np.ndarray    # (table, cdf, bin) S, ΔG of one potentiation pulse
    tab_down: np.ndarray  # (table, cdf, bin) S, ΔG of one depression pulse

    @property
    def n_devices(self) -> int:
        return len(self.devices)

    def arrays(self):
        return self.tab_g, self.tab_nb, self.tab_p, self.tab_np, self.tab_up, self.tab_down

    def moments(self, t: int):
        """Mean and std of ΔG per bin of table ``t`` (integrals over the inverse CDF): g, mean_up,
        std_up, mean_down, std_down, each (bin,)."""
        nb, m = int(self.tab_nb[t]), int(self.tab_np[t])
        p = self.tab_p[t, :m]
        out = [self.tab_g[t, :nb]]
        for tab in (self.tab_up, self.tab_down):
            q = tab[t, :m, :nb]
            mean = np.trapezoid(q, p, axis=0)
            var = np.trapezoid((q - mean) ** 2, p, axis=0)
            out += [mean, np.sqrt(np.maximum(var, 0.0))]
        return tuple(out)


# ------------------------------------------------------------------------------- dispatch


def read_characterization(path: str | Path) -> Traces | LutSet:
    """Read any supported characterization input (file or folder)."""
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), "not found; expected a table (.csv, .csv.gz), a dataset (.zarr, .nc) or a look-up-table folder")
    if path.is_dir() and not (path.suffix == ".zarr" or (path / "zarr.json").exists() or (path / ".zgroup").exists()):
        return read_lut_folder(path)
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz", ".txt", ".txt.gz", ".tsv")):
        return read_table_csv(path)
    if name.endswith((".zarr", ".nc", ".nc4", ".netcdf")) or path.is_dir():
        return read_table_dataset(path)
    raise InputError(str(path), "unknown input type; expected .csv, .csv.gz, .zarr, .nc or a look-up-table folder")


# ------------------------------------------------------------------------------ long-form table


def read_table_csv(path: Path) -> Traces:
    import pandas as pd

    path = Path(path)
    try:
        raw = gzip.open(path, "rb").read() if path.name.lower().endswith(".gz") else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise InputError(str(path), f"cannot read ({exc.__class__.__name__}); expected a CSV or gzipped CSV file") from None
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        raise InputError(str(path), "empty file; expected a header line and one row per read")
    sep = "\t" if "\t" in text.splitlines()[0] else ","
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, skipinitialspace=True, comment="#")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(str(path), f"not a valid CSV table ({str(exc).splitlines()[0]})") from None
    df.columns = [str(c).strip() for c in df.columns]
    cols = {c: df[c].to_numpy() for c in df.columns}
    return table_from_columns(cols, str(path), row_offset=2)


def read_table_dataset(path: Path) -> Traces:
    from ..store import open_any_dataset

    ds = open_any_dataset(path)
    cols = {}
    for name, var in ds.variables.items():
        if var.ndim == 1:
            cols[str(name)] = np.asarray(var.values)
    return table_from_columns(cols, str(path), row_offset=0, row_word="index")


def _column(cols: dict, name: str, where: str, row_offset: int, row_word: str, *, integer: bool) -> np.ndarray:
    v = cols[name]
    try:
        x = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        x = np.array([_to_float(e) for e in v])
    bad = ~np.isfinite(x)
    if integer:
        bad |= np.isfinite(x) & (np.round(x) != x)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{where}: {row_word} {i + row_offset}, column {name}",
                         f"got {_val(v[i])}, expected {'an integer' if integer else 'a finite number'}")
    return x


def _to_float(e) -> float:
    try:
        return float(e)
    except (TypeError, ValueError):
        return np.nan


def table_from_columns(cols: dict, where: str, *, row_offset: int = 2, row_word: str = "row") -> Traces:
    """Validate long-form columns and arrange them as :class:`Traces` (the shared path of all
    table formats). ``row_offset`` turns a 0-based row index into the number shown to the user."""
    n = len(next(iter(cols.values()))) if cols else 0
    if n == 0:
        raise InputError(where, "empty table; expected one row per read with columns " + ", ".join(REQUIRED) + ", conductance_S")
    found = ", ".join(cols) or "none"
    for c in REQUIRED:
        if c not in cols:
            raise InputError(f"{where}: column {c}", f"missing; expected columns {', '.join(REQUIRED)}, conductance_S (found: {found})")
    g, unit_note = _conductance(cols, where, row_offset, row_word, found)

    dev_raw = np.asarray(cols["device"])
    if dev_raw.dtype.kind == "f":
        _column(cols, "device", where, row_offset, row_word, integer=True)
    dev_str = np.array([str(int(d)) if isinstance(d, (float, np.floating)) else str(d).strip() for d in dev_raw])
    cyc = _column(cols, "cycle", where, row_offset, row_word, integer=True).astype(np.int64)
    pulse = _column(cols, "pulse", where, row_offset, row_word, integer=True)
    pol_raw = cols["polarity"]
    pol = np.array([_to_float(e) for e in pol_raw]) if np.asarray(pol_raw).dtype.kind not in "iuf" else np.asarray(pol_raw, float)
    bad = ~np.isin(pol, (-1.0, 0.0, 1.0))
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{where}: {row_word} {i + row_offset}, column polarity", f"got {_val(pol_raw[i])}, expected +1, -1 or 0")
    pol = pol.astype(np.int8)

    # device names in natural order (numbers numerically)
    names = sorted(set(dev_str.tolist()), key=lambda s: (0, int(s), "") if re.fullmatch(r"-?\d+", s) else (1, 0, s))
    dev = _index(names, dev_str)
    cycles = np.unique(cyc)
    ci = np.searchsorted(cycles, cyc)

    # keep file order inside (device, cycle); pulse must increase inside a ramp (device, cycle, polarity)
    order = np.lexsort((np.arange(n), ci, dev))
    d_o, c_o, p_o, pu_o = dev[order], ci[order], pol[order], pulse[order]
    group_key = d_o.astype(np.int64) * 3 * len(cycles) + c_o * 3 + (p_o + 1)
    # previous row of the same ramp (same device, cycle, polarity) in file order
    o2 = np.lexsort((np.arange(n), group_key))
    gk, pk = group_key[o2], pu_o[o2]
    back = (gk[1:] == gk[:-1]) & (pk[1:] <= pk[:-1])
    if back.any():
        j = int(np.argmax(back)) + 1
        i = int(order[o2[j]])
        prev = int(order[o2[j - 1]])
        raise InputError(f"{where}: {row_word} {i + row_offset}, column pulse",
                         f"pulse {pulse[i]:g} after pulse {pulse[prev]:g} ({row_word} {prev + row_offset}) in the same ramp "
                         f"(device {dev_str[i]}, cycle {cyc[i]}, polarity {int(pol[i]):+d}); expected increasing pulse indices")
    # at least MIN_PULSES pulses of each polarity per device
    for d, name in enumerate(names):
        sel = dev == d
        for s, word in ((1, "potentiation (+1)"), (-1, "depression (-1)")):
            k = int(np.count_nonzero(pol[sel] == s))
            if k < MIN_PULSES:
                raise InputError(f"{where}: device {name}", f"{k} {word} pulse(s), expected at least {MIN_PULSES} per polarity")

    counts = np.zeros((len(names), len(cycles)), np.int64)
    np.add.at(counts, (dev, ci), 1)
    k_in = np.empty(n, np.int64)
    # position of each (ordered) row inside its (device, cycle)
    start = np.r_[True, ~((d_o[1:] == d_o[:-1]) & (c_o[1:] == c_o[:-1]))]
    idx = np.arange(n)
    first = np.maximum.accumulate(np.where(start, idx, 0))
    k_in[order] = idx - first
    shape = (len(names), len(cycles), int(counts.max()))
    G = np.full(shape, np.nan)
    P = np.zeros(shape, np.int8)
    PU = np.full(shape, np.nan)
    G[dev, ci, k_in] = g
    P[dev, ci, k_in] = pol
    PU[dev, ci, k_in] = pulse
    return Traces(source=where, devices=names, g=G, pol=P, pulse=PU, unit_note=unit_note)


def _index(names, dev_str):
    lookup = {s: i for i, s in enumerate(names)}
    return np.array([lookup[s] for s in dev_str])


def _conductance(cols, where, row_offset, row_word, found):
    for name, scale in CONDUCTANCE_COLUMNS.items():
        if name in cols:
            g = _column(cols, name, where, row_offset, row_word, integer=False) * scale
            _nonneg(g, cols[name], name, where, row_offset, row_word)
            return g, name
    if "current_A" in cols:
        if "read_voltage_V" not in cols:
            raise InputError(f"{where}: column read_voltage_V", f"missing; a current_A column needs read_voltage_V to give a conductance (found: {found})")
        i_a = _column(cols, "current_A", where, row_offset, row_word, integer=False)
        v = _column(cols, "read_voltage_V", where, row_offset, row_word, integer=False)
        if (v == 0).any():
            i = int(np.argmax(v == 0))
            raise InputError(f"{where}: {row_word} {i + row_offset}, column read_voltage_V", "got 0, expected a non-zero read voltage")
        g = i_a / v
        _nonneg(g, g, "current_A / read_voltage_V", where, row_offset, row_word)
        return g, "current_A/read_voltage_V"
    raise InputError(f"{where}: column conductance_S",
                     f"missing; expected one of conductance_S, conductance_mS, conductance_uS, or current_A with read_voltage_V (found: {found})")


def _nonneg(g, raw, name, where, row_offset, row_word):
    bad = g < 0
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{where}: {row_word} {i + row_offset}, column {name}", f"got {_val(raw[i])}, expected a non-negative conductance")


# --------------------------------------------------------------------------- look-up tables


def _lut_file(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.txt", f"{stem}.txt.gz"):
        if (folder / name).is_file():
            return folder / name
    raise InputError(str(folder), f"missing {stem}.txt (or {stem}.txt.gz); a look-up-table folder holds dG_increasing and dG_decreasing, or device*/ sub-folders")


def read_lut_file(path: Path):
    """One CrossSim LUT file → (g bins, cdf points, dG matrix (cdf, bin))."""
    path = Path(path)
    try:
        raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise InputError(str(path), f"cannot read ({exc.__class__.__name__})") from None
    lines = raw.decode("utf-8", errors="replace").splitlines()
    rows, lineno = [], []
    for i, line in enumerate(lines[1:], start=2):
        fields = [f for f in re.split(r"[,\t;]|\s+", line.strip()) if f != ""]
        if not fields:
            continue
        try:
            rows.append(np.array([float(f) for f in fields]))
        except ValueError:
            bad = next(f for f in fields if _to_float(f) != _to_float(f))
            raise InputError(f"{path}: row {i}", f"got {bad!r}, expected numbers separated by commas") from None
        lineno.append(i)
    if len(rows) < 3:
        raise InputError(str(path), "empty or too short; expected a header line, the G bins, the CDF points and the dG matrix")
    g, p, mat = rows[0], rows[1], rows[2:]
    nb = len(g)
    for r, ln in zip(mat, lineno[2:]):
        if len(r) != nb:
            raise InputError(f"{path}: row {ln}", f"has {len(r)} values, expected {nb} (one per G bin of row {lineno[0]}); the table is ragged")
    if len(mat) != len(p):
        raise InputError(str(path), f"{len(mat)} dG rows, expected {len(p)} (one per CDF point of row {lineno[1]}); the table is ragged")
    M = np.vstack(mat)
    if not (np.isfinite(g).all() and np.isfinite(p).all() and np.isfinite(M).all()):
        raise InputError(str(path), "NaN or infinite value; expected finite numbers")
    if (g < 0).any():
        raise InputError(f"{path}: row {lineno[0]}", "negative conductance bin, expected G >= 0")
    if nb > 1 and (np.diff(g) <= 0).any():
        raise InputError(f"{path}: row {lineno[0]}", "G bins must increase")
    if (np.diff(p) < 0).any() or p[0] < 0 or p[-1] > 1 + 1e-9:
        raise InputError(f"{path}: row {lineno[1]}", "CDF points must increase from 0 to 1")
    return g, p, M


def read_lut_folder(folder: Path) -> LutSet:
    folder = Path(folder)
    subs = sorted((d for d in folder.iterdir() if d.is_dir() and d.name.startswith("device")),
                  key=lambda d: (len(d.name), d.name))
    dirs = subs if subs else [folder]
    names = [d.name for d in subs] if subs else [folder.name]
    tabs = []
    for d in dirs:
        gu, pu, up = read_lut_file(_lut_file(d, "dG_increasing"))
        gd, pd_, down = read_lut_file(_lut_file(d, "dG_decreasing"))
        if len(gu) != len(gd) or not np.allclose(gu, gd, rtol=1e-9, atol=0) or len(pu) != len(pd_) or not np.allclose(pu, pd_):
            raise InputError(str(d), "dG_increasing and dG_decreasing have different G bins or CDF points; expected the same grid")
        tabs.append((gu, pu, up, down))
    T = len(tabs)
    nbm = max(len(t[0]) for t in tabs)
    npm = max(len(t[1]) for t in tabs)
    tab_g = np.zeros((T, nbm))
    tab_p = np.ones((T, npm))
    tab_up = np.zeros((T, npm, nbm))
    tab_down = np.zeros((T, npm, nbm))
    tab_nb = np.array([len(t[0]) for t in tabs], np.int64)
    tab_np = np.array([len(t[1]) for t in tabs], np.int64)
    for i, (g, p, up, down) in enumerate(tabs):
        nb, m = len(g), len(p)
        tab_g[i, :nb], tab_g[i, nb:] = g, g[-1]
        tab_p[i, :m] = p
        tab_up[i, :m, :nb], tab_down[i, :m, :nb] = up, down
    return LutSet(source=str(folder), devices=names, tab_g=tab_g, tab_nb=tab_nb, tab_p=tab_p, tab_np=tab_np,
                  tab_up=tab_up, tab_down=tab_down)


def _val(x) -> str:
    """A table value as the user wrote it (NumPy scalars shown as plain numbers)."""
    return repr(x.item() if hasattr(x, "item") else x)
