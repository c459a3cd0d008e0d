"""Stage ``instantiate`` (``ecram array init``): draw the crossbars of the configured network
from the fitted device population and store them (``arrays.zarr``); the store's reader.

The draw itself is :func:`pipeline.crossbar.arrays.build`; this module reads ``device.yaml`` and
the dataset (for the layer sizes) and owns the store layout: per layer ``G_<l>`` (initial
conductances, dims ``pair, row_<l>, col_<l>``), the per-device parameters ``<name>_<l>``,
``stuck_<l>``, ``table_<l>``, the look-up tables ``tab_*``, and in ``attrs`` the mapping, scales,
physics and the ``array`` params. One draw per training seed (``train.seeds``; seed s's arrays are
drawn with ``base.seed + s``, as the sweeps draw them): every per-device variable has a leading
``draw`` dim, each draw's scales and physics are in ``attrs['draws'][str(s)]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import datasets, fsutil, progress, store
from .. import config
from ..config import to_dict
from ..crossbar import kernels as K
from ..crossbar.arrays import PARAM_NAMES, Crossbars, build, geometry, layer_block, network_sizes
from ..devices import spec as dspec
from ..devices.population import UNITS
from ..errors import InputError

# params sections this stage reads (dvc.yaml declares them: tested); train: only seeds (one array draw per
# training seed, drawn with base.seed + seed) and parallel_min
SECTIONS = ("base", "array", "network", "dataset", "device", "train")


def save_arrays(draws: dict[int, Crossbars] | Crossbars, path: Path, array_params: dict) -> None:
    """Store one array draw per training seed (``draws``: seed -> arrays; a single
    :class:`Crossbars` is stored as the draw of its ``attrs['seed']``). Every per-device variable
    has a leading ``draw`` dim (coordinate: the training seed); the look-up tables are shared;
    each draw's attrs and physics are in ``attrs['draws'][str(seed)]``."""
    if isinstance(draws, Crossbars):
        draws = {int(draws.attrs.get("seed", 0)): draws}
    seeds = sorted(int(k) for k in draws)
    nets = [draws[k] for k in seeds]
    net = nets[0]
    per_draw = {str(k): {**n.attrs, "physics": n.ph._asdict()} for k, n in zip(seeds, nets)}
    common = {k: v for k, v in net.attrs.items() if all(n.attrs.get(k) == v for n in nets)}
    s = store.Store.create(path, attrs={**common, "array_params": array_params, "draws": per_draw})
    dev = net.dev
    P = net.g0.shape[0]
    D = len(seeds)
    s.array("draw", ("draw",), (D,), dtype="i8", data=np.asarray(seeds),
            attrs={"units": "1", "description": "training seed that trains on this draw (drawn with base.seed + seed)"})
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
        dims = ("draw", "pair", f"row_{l}", f"col_{l}")
        shape = (D, P, int(dev.rows[l]), int(dev.cols[l]))

        def stack(get):
            return np.stack([layer_block(get(n), n.dev, l) for n in nets])

        s.array(f"G_{l}", dims, shape, attrs={"units": "S", "long_name": f"initial conductance, layer {l}"},
                data=stack(lambda n: n.g0))
        for nm in PARAM_NAMES:
            s.array(f"{nm}_{l}", dims, shape, attrs={"units": UNITS[nm]}, data=stack(lambda n: getattr(n.dev, nm)))
        s.array(f"stuck_{l}", dims, shape, dtype="u1", attrs={"units": "1"}, data=stack(lambda n: n.dev.stuck))
        s.array(f"table_{l}", dims, shape, dtype="i8", attrs={"units": "1"}, data=stack(lambda n: n.dev.table))
    for nm in ("tab_g", "tab_p", "tab_up", "tab_down", "tab_nb", "tab_np"):
        v = getattr(dev, nm)
        if not all(np.array_equal(getattr(n.dev, nm), v) for n in nets):
            raise ValueError(f"save_arrays: the draws do not share their look-up tables ({nm})")
        s.array(nm, tuple(f"{nm}_d{k}" for k in range(v.ndim)), v.shape, dtype=v.dtype.str,
                attrs={"units": "S" if nm in ("tab_g", "tab_up", "tab_down") else "1"}, data=v)
    s.consolidate()


def load_arrays(path: Path, parallel_min: int | None = None, draw: int | None = None) -> Crossbars:
    """The arrays of training seed ``draw`` (None: the store's only draw)."""
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), "arrays store not found (run: python -m pipeline array init)")
    s = store.Store.open(path, mode="r")
    attrs = dict(s.group.attrs)
    if "draws" not in attrs:
        raise InputError(str(path), "arrays store without per-seed draws (an older layout); rerun: python -m pipeline array init")
    seeds = [int(v) for v in s.read("draw")]
    if draw is None:
        if len(seeds) != 1:
            raise InputError(str(path), f"holds draws for seeds {seeds}; name the seed")
        draw = seeds[0]
    if int(draw) not in seeds:
        raise InputError(str(path), f"holds array draws for train seeds {seeds}, not seed {draw}; add it to train.seeds "
                                    "and rerun: python -m pipeline array init")
    k = seeds.index(int(draw))
    sizes = attrs["sizes"]
    off, rows, cols = geometry(sizes)
    P = len(s.read("pair"))
    N = int(off[-1])

    def flat(prefix, dtype):
        out = np.empty((P, N), dtype)
        for l in range(len(rows)):
            out[:, off[l]:off[l + 1]] = s.group[f"{prefix}_{l}"][k].reshape(P, -1)
        return out

    g0 = flat("G", np.float64)
    pars = [flat(nm, np.float64) for nm in PARAM_NAMES]
    tabs = [np.ascontiguousarray(s.read(nm)) for nm in ("tab_g", "tab_nb", "tab_p", "tab_np", "tab_up", "tab_down")]
    mine = dict(attrs["draws"][str(int(draw))])
    phd = dict(mine.pop("physics"))
    if parallel_min is not None:
        phd["parallel_min"] = int(parallel_min)
    ph = K.Physics(**phd)
    if ph.mapping == K.MAP_PLANES:
        tile = K.tile(ph.mapping, P, coef=s.read("plane_coef"), ref=s.read("plane_ref"), write=s.read("plane_write"))
    else:
        tile = K.tile(ph.mapping, P, ph.g_ref)
    dev = K.Devices(*pars, flat("stuck", np.uint8), flat("table", np.int64), *tabs, off, rows, cols, *tile)
    return Crossbars(dev, ph, g0, list(sizes), mine)


def draw_params(p, seed: int):
    """The params of training seed ``seed``'s array draw: ``base.seed + seed`` (as the sweeps)."""
    return config.with_changes(p, {"base.seed": int(p.base.seed) + int(seed)})


def run(p, *, device: Path, out: Path) -> None:
    """``ecram array init``: draw the arrays of the configured network and store them."""
    spec = dspec.read(device)
    data = datasets.load(p.dataset)
    sizes = network_sizes(data.n_features, p.network.hidden, data.n_classes)
    seeds = sorted(set(int(k) for k in p.train.seeds))
    draws = {k: build(draw_params(p, k), spec, sizes) for k in seeds}
    with fsutil.atomic_path(out, defer_signals=True) as tmp:
        fsutil.remove(tmp)
        save_arrays(draws, tmp, to_dict(p.array))
    net = draws[seeds[0]]
    progress.log(f"arrays: {' -> '.join(map(str, sizes))} ({net.attrs['mapping']}, {net.attrs['model']}, "
                 f"{int(net.dev.off[-1]) * net.g0.shape[0]} devices, init {net.attrs['init']}) x {len(seeds)} draws "
                 f"(train seeds {seeds}, base.seed + seed) -> {out}")
