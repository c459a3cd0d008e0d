"""``device synth`` (DESIGN §1.5): synthesise a characterization table from a device description
(:func:`pipeline.devices.synth.synthesize`) and write it (long form: .csv, .csv.gz, .zarr or .nc)
atomically, with the drawn per-device parameters (``--truth``) beside it.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import yaml

from ..devices import spec as specmod
from ..devices.readers import Traces
from ..devices.synth import synthesize, traces_to_columns
from ..errors import InputError
from ..fsutil import atomic_path, check_output_path


def write_table(tr: Traces, out: Path) -> None:
    """Write traces as a long-form table (.csv, .csv.gz, .zarr or .nc), atomically."""
    import pandas as pd

    out = Path(out)
    name = out.name.lower()
    cols = traces_to_columns(tr)
    if name.endswith((".csv", ".csv.gz")):
        buf = io.StringIO()
        pd.DataFrame(cols).to_csv(buf, index=False, float_format="%.10e", lineterminator="\n")
        data = buf.getvalue().encode()
        with atomic_path(out, is_dir=False) as tmp:
            if name.endswith(".gz"):
                with open(tmp, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
                    gz.write(data)
            else:
                Path(tmp).write_bytes(data)
        return
    import xarray as xr

    ds = xr.Dataset({k: ("read", np.asarray(v)) for k, v in cols.items()})
    ds["device"] = ds["device"].astype(str)
    ds["conductance_S"].attrs["units"] = "S"
    if name.endswith(".zarr"):
        from ..store import write_dataset

        with atomic_path(out, is_dir=True) as tmp:
            write_dataset(ds, tmp)
    elif name.endswith(".nc"):
        with atomic_path(out, is_dir=False) as tmp:
            ds.to_netcdf(str(tmp), engine="scipy")
    else:
        raise InputError(f"--out {out}", "unknown table type; expected .csv, .csv.gz, .zarr or .nc")


def run(*, device: Path, devices: int, cycles: int, pulses: int, seed: int, out: Path,
        truth: Path | None = None) -> None:
    if not str(out).lower().endswith((".csv", ".csv.gz", ".zarr", ".nc")):
        raise InputError(f"--out {out}", "unknown table type; expected .csv, .csv.gz, .zarr or .nc")
    check_output_path(Path(out), want_dir=str(out).lower().endswith(".zarr"))
    if truth is not None:
        check_output_path(Path(truth), want_dir=False, where="--truth")
    spec = specmod.read(device)
    tr, tru = synthesize(spec, devices, cycles, pulses, seed)
    tru["device_file"] = str(device)
    write_table(tr, Path(out))
    if truth is not None:
        with atomic_path(Path(truth), is_dir=False) as tmp:
            Path(tmp).write_text(yaml.safe_dump(tru, sort_keys=False, width=120))
