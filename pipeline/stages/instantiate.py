"""Stage ``instantiate`` (``ecram array init``): draw the crossbars of the configured network
from the fitted device population and store them (``arrays.zarr``); the store's reader.

The draw itself is :func:`pipeline.crossbar.arrays.build`; this module reads ``device.yaml`` and
the dataset (for the layer sizes) and owns the store layout: per layer ``G_<l>`` (initial
conductances, dims ``pair, row_<l>, col_<l>``), the per-device parameters ``<name>_<l>``,
``stuck_<l>``, ``table_<l>``, the look-up tables ``tab_*``, and in ``attrs`` the mapping, scales,
physics and the ``array`` params.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import datasets, fsutil, progress, store
from ..config import to_dict
from ..crossbar import kernels as K
from ..crossbar.arrays import PARAM_NAMES, Crossbars, build, geometry, layer_block, network_sizes
from ..devices import spec as dspec
from ..devices.population import UNITS
from ..errors import InputError

# params sections this stage reads (dvc.yaml declares them: tested); train: only train.parallel_min
SECTIONS = ("base", "array", "network", "dataset", "device", "train")


def save_arrays(net: Crossbars, path: Path, array_params: dict) -> None:
    s = store.Store.create(path, attrs={**net.attrs, "array_params": array_params,
                                        "physics": net.ph._asdict()})
    dev = net.dev
    P = net.g0.shape[0]
    if net.ph.mapping == K.MAP_PLANES:  # a general tile: its planes and how they make a weight
        s.array("pair", ("pair",), (P,), dtype="i8", data=np.arange(P),
                attrs={"units": "1", "labels": [f"plane{p}" for p in range(P)], "description": "device plane"})
        s.array("plane_coef", ("pair",), (P,), data=dev.coef, attrs={"units": "1", "description": "read coefficient"})
        s.array("plane_ref", ("pair",), (P,), data=dev.ref, attrs={"units": "S", "description": "reference conductance"})
        s.array("plane_write", ("write",), (2,), dtype="i8", data=dev.write,
                attrs={"units": "1", "description": "the planes pulses go to (+, -)"})
    else:
        pair = ["plus", "minus"] if P == 2 else ["device"]
        s.array("pair", ("pair",), (P,), dtype="i8", data=np.arange(P),
                attrs={"units": "1", "labels": pair, "description": "0: G+ (or the single device), 1: G-"})
    for l in range(net.n_layers):
        dims = ("pair", f"row_{l}", f"col_{l}")
        shape = (P, int(dev.rows[l]), int(dev.cols[l]))
        s.array(f"G_{l}", dims, shape, attrs={"units": "S", "long_name": f"initial conductance, layer {l}"},
                data=layer_block(net.g0, dev, l))
        for nm in PARAM_NAMES:
            s.array(f"{nm}_{l}", dims, shape, attrs={"units": UNITS[nm]}, data=layer_block(getattr(dev, nm), dev, l))
        s.array(f"stuck_{l}", dims, shape, dtype="u1", attrs={"units": "1"}, data=layer_block(dev.stuck, dev, l))
        s.array(f"table_{l}", dims, shape, dtype="i8", attrs={"units": "1"}, data=layer_block(dev.table, dev, l))
    for nm in ("tab_g", "tab_p", "tab_up", "tab_down", "tab_nb", "tab_np"):
        v = getattr(dev, nm)
        s.array(nm, tuple(f"{nm}_d{k}" for k in range(v.ndim)), v.shape, dtype=v.dtype.str,
                attrs={"units": "S" if nm in ("tab_g", "tab_up", "tab_down") else "1"}, data=v)
    s.consolidate()


def load_arrays(path: Path, parallel_min: int | None = None) -> Crossbars:
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), "arrays store not found (run: python -m pipeline array init)")
    s = store.Store.open(path, mode="r")
    attrs = dict(s.group.attrs)
    sizes = attrs["sizes"]
    off, rows, cols = geometry(sizes)
    P = len(s.read("pair"))
    N = int(off[-1])

    def flat(prefix, dtype):
        out = np.empty((P, N), dtype)
        for l in range(len(rows)):
            out[:, off[l]:off[l + 1]] = s.read(f"{prefix}_{l}").reshape(P, -1)
        return out

    g0 = flat("G", np.float64)
    pars = [flat(nm, np.float64) for nm in PARAM_NAMES]
    tabs = [np.ascontiguousarray(s.read(nm)) for nm in ("tab_g", "tab_nb", "tab_p", "tab_np", "tab_up", "tab_down")]
    phd = dict(attrs["physics"])
    if parallel_min is not None:
        phd["parallel_min"] = int(parallel_min)
    ph = K.Physics(**phd)
    if ph.mapping == K.MAP_PLANES:
        tile = K.tile(ph.mapping, P, coef=s.read("plane_coef"), ref=s.read("plane_ref"), write=s.read("plane_write"))
    else:
        tile = K.tile(ph.mapping, P, ph.g_ref)
    dev = K.Devices(*pars, flat("stuck", np.uint8), flat("table", np.int64), *tabs, off, rows, cols, *tile)
    keep = {k: v for k, v in attrs.items() if k not in ("physics", "array_params")}
    return Crossbars(dev, ph, g0, list(sizes), keep)


def run(p, *, device: Path, out: Path) -> None:
    """``ecram array init``: draw the arrays of the configured network and store them."""
    spec = dspec.read(device)
    data = datasets.load(p.dataset)
    sizes = network_sizes(data.n_features, p.network.hidden, data.n_classes)
    net = build(p, spec, sizes)
    with fsutil.atomic_path(out, defer_signals=True) as tmp:
        fsutil.remove(tmp)
        save_arrays(net, tmp, to_dict(p.array))
    progress.log(f"arrays: {' -> '.join(map(str, sizes))} ({net.attrs['mapping']}, {net.attrs['model']}, "
                 f"{int(net.dev.off[-1]) * net.g0.shape[0]} devices) -> {out}")
