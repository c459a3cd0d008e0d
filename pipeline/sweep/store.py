"""The sweep store (DESIGN §2.5): its layout (dims ``<axis>..., algorithm, seed, epoch``, chunk 1
along every sweep dimension), creating it, reading which regions are missing, the resume
fingerprint and putting a finished store in place.

The fingerprint (spec, params, device and the code that shapes the numbers) lives in the
temporary ``.NAME.zarr.tmp`` store only, so that a rerun resumes a partial store only when
nothing changed. The final store does not contain it (a code edit must not change the bytes of
an output whose numbers did not change); it is kept beside the output instead, in
``.NAME.zarr.fingerprint``, for the "complete and up to date" shortcut."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import config, fsutil, store
from ..training import metrics as _metrics

if TYPE_CHECKING:  # annotations only
    from .spec import Sweep

# the per-epoch metrics of a run (one list: pipeline.training.metrics)
METRICS = _metrics.NAMES
UNITS = _metrics.UNITS
NUMBER_SOURCES = ("training/", "crossbar/", "devices/", "datasets.py", "config.py", "sweep/")


def _code_hash() -> str:
    """Sources that shape a sweep's numbers (not the CLI, evaluation or figures)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha1()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if not rel.startswith(NUMBER_SOURCES):
            continue
        h.update(rel.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def fingerprint(sw: Sweep, base_params, spec) -> str:
    blob = {"sweep": sw.to_dict(), "params": {k: config.to_dict(getattr(base_params, k)) for k in
                                              ("base", "array", "network", "dataset", "train", "device")},
            "device": spec.to_dict() if spec is not None else None, "code": _code_hash()}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:24]


def create_store(path: Path, sw: Sweep, attrs: dict) -> None:
    E = sw.epochs + 1
    lead = [len(a.values) for a in sw.axes] + [len(sw.algorithms), len(sw.seeds)]
    lead_dims = [a.dim for a in sw.axes] + ["algorithm", "seed"]
    s = store.Store.create(path, attrs=attrs)
    for a in sw.axes:
        if a.numeric:
            s.array(a.dim, (a.dim,), (len(a.values),), data=np.asarray(a.values, np.float64),
                    attrs={"key": a.key, "labels": a.labels, "units": "1"})
        else:
            s.array(a.dim, (a.dim,), (len(a.values),), dtype=f"<U{max(map(len, a.labels))}", fill="",
                    data=np.asarray(a.labels), attrs={"key": a.key, "values": a.values, "units": "1"})
    s.array("algorithm", ("algorithm",), (len(sw.algorithms),), dtype=f"<U{max(map(len, sw.algorithms))}", fill="",
            data=np.asarray(sw.algorithms), attrs={"units": "1"})
    s.array("seed", ("seed",), (len(sw.seeds),), dtype="i8", data=np.asarray(sw.seeds), attrs={"units": "1"})
    s.array("epoch", ("epoch",), (E,), dtype="i8", data=np.arange(E), attrs={"units": "1"})
    ones = (1,) * len(lead)
    for name in METRICS:
        s.array(name, tuple(lead_dims) + ("epoch",), tuple(lead) + (E,), chunks=ones + (E,),
                attrs={"units": UNITS[name], "description": _metrics.DESCRIPTIONS[name]
                       + " (epoch 0: before training; NaN where there is no value then)"})
    s.array("done", tuple(lead_dims), tuple(lead), dtype="bool", fill=False, chunks=ones,
            attrs={"units": "1", "description": "the task of this region finished and wrote it"})
    s.array("diverged", tuple(lead_dims), tuple(lead), dtype="bool", fill=False, chunks=ones,
            attrs={"units": "1", "description": "training stopped on NaN/Inf (metrics left NaN)"})


def missing(path: Path) -> list[str]:
    """Labels of the tasks whose regions are not done in a sweep store."""
    s = store.Store.open(Path(path), mode="r")
    done = np.asarray(s.read("done"), bool)
    spec = s.group.attrs["sweep"]
    out = []
    for idx in zip(*np.nonzero(~done)):
        parts = [f"{a['key']}={a['labels'][i]}" for a, i in zip(spec["axes"], idx[:-2])]
        parts += [f"algorithm={spec['algorithms'][idx[-2]]}", f"seed={spec['seeds'][idx[-1]]}"]
        out.append(" ".join(parts))
    return out



def fingerprint_of(path: Path) -> str | None:
    """The fingerprint a (temporary) sweep store was started with, or None."""
    if not Path(path).exists():
        return None
    try:
        return store.Store.open(Path(path), mode="r").group.attrs.get("fingerprint")
    except Exception:  # noqa: BLE001 - an unreadable leftover is simply not reused
        return None


def sidecar(out: Path) -> Path:
    """Where the fingerprint of the final store ``out`` is kept: beside it, not inside it."""
    out = Path(out)
    return out.with_name(f".{out.name}.fingerprint")


def fingerprint_beside(out: Path) -> str | None:
    """The fingerprint recorded beside a final store, or None (no store, or no record)."""
    path = sidecar(out)
    if not Path(out).exists() or not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def start_from(out: Path, tmp: Path, stamp: str) -> None:
    """Continue an incomplete final store: copy it to ``tmp`` and mark the copy with ``stamp``."""
    import shutil

    fsutil.remove(tmp)
    shutil.copytree(out, tmp)
    store.Store.open(tmp, mode="r+").set_attrs(fingerprint=stamp)


def finish(tmp: Path, out: Path, *, left: list[str]) -> None:
    """Mark the store complete (or incomplete with ``left`` missing), drop its fingerprint,
    consolidate its metadata and rename it into place; record the fingerprint beside it."""
    s = store.Store.open(tmp, mode="r+")
    stamp = s.group.attrs.get("fingerprint")
    s.set_attrs(complete=not left, allow_incomplete=bool(left), missing=left)
    if "fingerprint" in s.group.attrs:
        del s.group.attrs["fingerprint"]
    s.consolidate()
    side = sidecar(out)
    fsutil.remove(side)
    fsutil.replace(tmp, out)
    if stamp:
        t = side.with_name(f"{side.name}.tmp")
        t.write_text(json.dumps({"fingerprint": stamp}) + "\n")
        os.replace(t, side)

