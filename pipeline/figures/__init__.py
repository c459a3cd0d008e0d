"""One module per paper figure (DESIGN §3); figures read only evaluated results, never simulate."""

from __future__ import annotations

from pathlib import Path

from .. import progress
from ..errors import InputError

FIGURES = ("fig1", "fig2", "fig3", "fig4", "fig5")


def make_figures(p, *, out: Path, only: list[str] | None, eval_dir: Path, device_dir: Path, sweeps_dir: Path) -> list[Path]:
    """Draw the requested figures (default: every figure whose inputs exist)."""
    from .. import fsutil

    wanted = list(only) if only else list(FIGURES)
    for name in wanted:
        if name.split("_")[0] not in FIGURES:
            raise InputError("--only", f"got {name!r}, expected some of {', '.join(FIGURES)}")
    wanted = [w.split("_")[0] for w in wanted]
    fsutil.check_output_path(out, want_dir=True)
    made: list[Path] = []
    fp = p.figures
    for name in wanted:
        if name in ("fig1", "fig3", "fig4"):
            if not (eval_dir / "eval.zarr").exists():
                if only:
                    raise InputError(str(eval_dir / "eval.zarr"), f"{name} needs evaluated runs (run: python -m pipeline evaluate)")
                continue
            from .. import store

            ds = store.open_dataset(eval_dir / "eval.zarr", what="evaluation")
            mod = {"fig1": "fig1_storage", "fig3": "fig3_insitu_error", "fig4": "fig4_hardware_training"}[name]
            module = __import__(f"pipeline.figures.{mod}", fromlist=["make"])
            made += module.make(out, ds, fp)
        elif name == "fig2":
            if not (device_dir / "fit.zarr").exists():
                if only:
                    raise InputError(str(device_dir / "fit.zarr"), "fig2 needs a device fit (run: python -m pipeline device fit)")
                continue
            from . import fig2_device

            made += fig2_device.make(out, device_dir, fp)
        elif name == "fig5":
            if not sweeps_dir.exists() or not any(sweeps_dir.glob("*.zarr")):
                if only:
                    raise InputError(str(sweeps_dir), "fig5 needs sweep results (run: python -m pipeline sweep ...)")
                continue
            from . import fig5_scaling

            made += fig5_scaling.make(out, sweeps_dir, fp)
    for path in made:
        progress.log(f"figure: {path}", verbose_only=True)
    return made
