"""One module per paper figure (DESIGN §3); figures read only evaluated results, never simulate.

A figure is a module ``figN_<what>.py`` in this package; it is found by its name (adding a figure
is adding one file). Each declares:

* ``NAME``   its output name (``"fig1_storage"``: writes ``fig1_storage.png`` / ``.pdf``);
* ``CLAIM``  the one claim it checks (printed in its caption);
* ``INPUTS`` the kinds of results it reads, some of :data:`KINDS`;
* ``make(out, data, fp) -> list[Path]``: draws from ``data`` (one already-opened input per kind
  of ``INPUTS``, see :data:`KINDS`) with the params section ``figures`` ``fp``, writes through
  :func:`pipeline.figures.common.save` into folder ``out`` and returns the paths written.

The driver that opens the inputs and writes the files is :func:`pipeline.stages.figures.run`.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from types import ModuleType

# kind of input -> what ``make`` receives for it
KINDS = {
    "eval": "the evaluated runs (results/eval/eval.zarr) as an xarray Dataset",
    "device": "the device fit: {'fit': fit.zarr as an xarray Dataset, 'spec': the DeviceSpec of device.yaml}",
    "sweeps": "the sweep stores: {sweep name: xarray Dataset} (the names of the module's SWEEPS that exist)",
}
_MODULE = re.compile(r"^(fig\d+)_\w+$")


@functools.lru_cache(maxsize=None)
def discover() -> dict[str, ModuleType]:
    """Every figure module of this package, by short name (``"fig1"``), in figure order."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        m = _MODULE.match(info.name)
        if m is None or info.ispkg:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for attr in ("NAME", "CLAIM", "INPUTS", "make"):
            if not hasattr(module, attr):
                raise TypeError(f"figure module {module.__name__} lacks {attr}")
        unknown = [k for k in module.INPUTS if k not in KINDS]
        if unknown:
            raise TypeError(f"figure module {module.__name__}: unknown INPUTS {unknown}; expected some of {list(KINDS)}")
        found[m.group(1)] = module
    return dict(sorted(found.items(), key=lambda kv: int(kv[0][3:])))


def names() -> tuple[str, ...]:
    """Short names of every figure (``fig1``, ``fig2``, ...)."""
    return tuple(discover())
