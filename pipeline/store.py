"""Every zarr / xarray read and write of the project goes through here (DESIGN §2.1).

Stores are zarr format 3, unconsolidated while being written (``consolidated=False``); finished
stores are consolidated once at the end. Large outputs are written region by region from NumPy
buffers (never one step at a time). No timestamps or host names are ever written.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from .errors import InputError

warnings.filterwarnings("ignore", message=".*Consolidated metadata is currently not part.*")
warnings.filterwarnings("ignore", message=".*consolidated metadata.*", category=RuntimeWarning)
warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")


def _jsonable(obj: Any) -> Any:
    """Attrs → JSON-safe values (numpy scalars, tuples)."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


class Store:
    """A zarr group created up front with fixed-shape arrays, filled region by region."""

    def __init__(self, group: zarr.Group):
        self.group = group

    @classmethod
    def create(cls, path: Path, attrs: dict | None = None) -> "Store":
        g = zarr.open_group(str(path), mode="w", zarr_format=3)
        if attrs:
            g.attrs.update(_jsonable(attrs))
        return cls(g)

    @classmethod
    def open(cls, path: Path, mode: str = "r+") -> "Store":
        return cls(zarr.open_group(str(path), mode=mode, zarr_format=3))

    def array(self, name: str, dims: tuple[str, ...], shape: tuple[int, ...], dtype="f8", *, chunks=None,
              fill=np.nan, attrs: dict | None = None, data: np.ndarray | None = None):
        if chunks is None:
            chunks = tuple(max(1, s) for s in shape)
        fill_value = fill if np.dtype(dtype).kind == "f" else (0 if fill is np.nan else fill)
        arr = self.group.create_array(name, shape=tuple(int(s) for s in shape), chunks=tuple(int(c) for c in chunks),
                                      dtype=dtype, fill_value=fill_value, dimension_names=list(dims),
                                      attributes=_jsonable(attrs or {}), overwrite=True)
        if data is not None:
            arr[...] = np.asarray(data, dtype=dtype)
        return arr

    def write(self, name: str, index, values) -> None:
        self.group[name][index] = values

    def read(self, name: str):
        return self.group[name][...]

    def set_attrs(self, **attrs) -> None:
        self.group.attrs.update(_jsonable(attrs))

    def consolidate(self) -> None:
        zarr.consolidate_metadata(self.group.store)


def write_dataset(ds: xr.Dataset, path: Path) -> None:
    """Write a whole (small) xarray dataset, then consolidate once."""
    ds = ds.copy()
    ds.attrs = _jsonable(dict(ds.attrs))
    for v in ds.variables.values():
        v.encoding = {}
        v.attrs = _jsonable(dict(v.attrs))
    ds.to_zarr(str(path), mode="w", zarr_format=3, consolidated=False)
    zarr.consolidate_metadata(str(path))


def open_dataset(path: Path, *, what: str = "store") -> xr.Dataset:
    """Open a zarr store as an xarray dataset (loaded into memory)."""
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), f"{what} not found")
    try:
        with xr.open_zarr(str(path), consolidated=False) as ds:
            return ds.load()
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(str(path), f"cannot read as a zarr {what} ({exc.__class__.__name__}: {exc})") from None


def open_any_dataset(path: Path) -> xr.Dataset:
    """A user dataset: zarr folder, or NetCDF file (``.nc``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), "file not found")
    try:
        if path.is_dir() or path.suffix == ".zarr":
            return open_dataset(path, what="dataset")
        return xr.load_dataset(str(path))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad input
        raise InputError(str(path), f"cannot read as a Zarr or NetCDF dataset ({exc.__class__.__name__})") from None
