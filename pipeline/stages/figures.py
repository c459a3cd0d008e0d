"""Stage ``figures`` (``ecram figures``): open the evaluated results each figure declares
(``INPUTS`` of its module in :mod:`pipeline.figures`) and draw the requested figures into
``out`` (DESIGN §3). Figures read only evaluated results, never re-run a simulation; this module
does all the file reading; the figure modules draw and save."""

from __future__ import annotations

# params sections this stage reads (dvc.yaml declares them: tested)
SECTIONS = ("figures",)

from pathlib import Path

from .. import figures, fsutil, progress, store
from ..errors import InputError

# kind -> (what a missing input is called in the error of --only)
NEEDS = {"eval": "evaluated runs (run: python -m pipeline evaluate)",
         "device": "a device fit (run: python -m pipeline device fit)",
         "sweeps": "sweep results (run: python -m pipeline sweep ...)"}


def load_sweep(path: Path):
    """A sweep store as a loaded xarray dataset; refuses one with missing regions unless it is
    marked ``allow_incomplete``."""
    ds = store.open_dataset(path, what="sweep store")
    if "done" not in ds or "sweep" not in ds.attrs:
        raise InputError(str(path), "not a sweep store (no 'done' variable; run: python -m pipeline sweep NAME)")
    done = ds.done.values
    if not done.all():
        n = int((~done).sum())
        miss = list(ds.attrs.get("missing") or [])
        if not ds.attrs.get("allow_incomplete"):
            raise InputError(str(path), f"incomplete sweep: {n} of {done.size} tasks missing"
                             + (f" (first: {miss[0]})" if miss else "")
                             + f"; rerun: python -m pipeline sweep {ds.attrs['sweep']['name']}, "
                               "or allow it with --allow-incomplete / evaluate.allow_incomplete: true")
    return ds


def load_sweeps(sweeps_dir: Path, names) -> dict:
    """The stores ``sweeps_dir/<name>.zarr`` of ``names`` that exist, checked by :func:`load_sweep`."""
    sweeps_dir = Path(sweeps_dir)
    out = {}
    for name in names:
        path = sweeps_dir / f"{name}.zarr"
        if path.exists():
            out[name] = load_sweep(path)
    return out


class _Inputs:
    """Where each kind of input lives; opened on first use, once."""

    def __init__(self, eval_dir: Path, device_dir: Path, sweeps_dir: Path):
        self.eval_dir, self.device_dir, self.sweeps_dir = Path(eval_dir), Path(device_dir), Path(sweeps_dir)
        self._cache: dict = {}

    def where(self, kind: str) -> Path:
        return {"eval": self.eval_dir / "eval.zarr", "device": self.device_dir / "fit.zarr",
                "sweeps": self.sweeps_dir}[kind]

    def exists(self, kind: str) -> bool:
        if kind == "sweeps":
            return self.sweeps_dir.exists() and any(self.sweeps_dir.glob("*.zarr"))
        return self.where(kind).exists()

    def get(self, kind: str, module):
        if kind == "sweeps":  # which stores depends on the figure
            return load_sweeps(self.sweeps_dir, module.SWEEPS)
        if kind not in self._cache:
            if kind == "eval":
                self._cache[kind] = store.open_dataset(self.where(kind), what="evaluation")
            elif kind == "device":
                from ..devices import spec as specmod

                self._cache[kind] = {"fit": store.open_dataset(self.where(kind), what="fit store"),
                                     "spec": specmod.read(self.device_dir / "device.yaml")}
        return self._cache[kind]


def run(p, *, out: Path, only: list[str] | None, eval_dir: Path, device_dir: Path, sweeps_dir: Path) -> list[Path]:
    """Draw the requested figures (default: every figure whose inputs exist)."""
    modules = figures.discover()
    known = tuple(modules)
    wanted = list(only) if only else list(known)
    for name in wanted:
        if name.split("_")[0] not in known:
            raise InputError("--only", f"got {name!r}, expected some of {', '.join(known)}")
    wanted = [w.split("_")[0] for w in wanted]
    out = Path(out)
    fsutil.check_output_path(out, want_dir=True)
    inputs = _Inputs(eval_dir, device_dir, sweeps_dir)
    made: list[Path] = []
    fp = p.figures
    for name in wanted:
        module = modules[name]
        absent = [k for k in module.INPUTS if not inputs.exists(k)]
        if absent:
            if only:
                raise InputError(str(inputs.where(absent[0])), f"{name} needs {NEEDS[absent[0]]}")
            continue
        made += module.make(out, {k: inputs.get(k, module) for k in module.INPUTS}, fp)
    for path in made:
        progress.log(f"figure: {path}", verbose_only=True)
    return made
