"""``ecram info``: versions, numba threading, cache folder, data and results paths."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path


def describe(params: Path) -> str:
    import numba

    lines = [f"ecram-insitu {metadata.version('ecram-insitu') if _has('ecram-insitu') else '(not installed)'}",
             f"python {platform.python_version()} ({platform.machine()})"]
    for pkg in ("numpy", "numba", "xarray", "zarr", "dask", "distributed", "dvc", "typer", "scipy", "matplotlib"):
        lines.append(f"{pkg:12s} {metadata.version(pkg) if _has(pkg) else 'missing'}")
    try:
        from numba.np.ufunc.parallel import _launch_threads

        _launch_threads()
        layer = numba.threading_layer()
    except Exception as exc:  # noqa: BLE001
        layer = f"unavailable ({exc.__class__.__name__})"
    lines += [
        f"numba threads: {numba.get_num_threads()} of {numba.config.NUMBA_NUM_THREADS} (NUMBA_NUM_THREADS)",
        f"numba threading layer: {layer}",
        f"numba cache dir: {os.environ.get('NUMBA_CACHE_DIR') or '(next to the sources, __pycache__)'}",
        f"cores: {os.cpu_count()}",
        f"params: {params.resolve()} ({'found' if params.exists() else 'missing'})",
        f"data: {Path('data').resolve()}",
        f"results: {Path('results').resolve()}",
    ]
    return "\n".join(lines)


def _has(pkg: str) -> bool:
    try:
        metadata.version(pkg)
        return True
    except metadata.PackageNotFoundError:
        return False
