"""The sweep spec language (DESIGN §2.5): merging of the ``sweeps:`` layers and profiles,
validation of every key, every grid axis and every grid point before any task starts, and the
list of tasks (one per grid point, algorithm and seed). See :mod:`pipeline.sweep` for the format."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import pickle
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .. import config
from ..training import schemes as _schemes
from ..devices import transforms
from ..devices.transforms import transform_spec
from ..errors import InputError

PROFILES = config.PROFILES  # base.profile choices: each can be a layer of the defaults and of every sweep
SPEC_KEYS = ("description", "dataset", "epochs", "algorithms", "seeds", "set", "grid") + PROFILES
RESERVED = ("defaults",)
DEVICE_KEYS = transforms.KEYS  # key -> (lower bound, open?, doc)
SWEEPABLE_SECTIONS = ("array", "network", "dataset", "train", "device")
FORBIDDEN = {"train.algorithms": "use the sweep's 'algorithms'", "train.seeds": "use the sweep's 'seeds'",
             "train.epochs": "use the sweep's 'epochs' (every epoch is stored)",
             "dataset.name": "use the sweep's 'dataset'"}
DEFAULT_DEVICE = Path("results/device/device.yaml")
# train keys a float algorithm never reads (pipeline.training.run.setup builds the carry pair, the
# tiki-taka pairs and the zero shift for hardware algorithms only; the loop's writes, transfers and
# refreshes branch on is_float): the update scheme, every key of every scheme in the registry
# (training.schemes.REGISTRY[*].params, so a new scheme key cannot be forgotten) and the options of
# any scheme (SCHEME_INDEPENDENT). Everything else stays in a float run's identity: the rates,
# epochs, seed, network, dataset, and every key that changes the array draw or its initial
# programming (array.*, device.*, base.seed), since float runs start from the weights read back from
# that draw. A key missing here only costs a repeated run, never a wrong one.
SCHEME_INDEPENDENT = ("train.scheme", "train.refresh_margin", "train.zero_shift", "train.zero_shift_cycles")
FLOAT_IGNORES = SCHEME_INDEPENDENT + tuple(dict.fromkeys(f"train.{k}" for s in _schemes.REGISTRY for k in s.params))


# ------------------------------------------------------------------------------------ the spec


@dataclass(frozen=True)
class Axis:
    key: str
    dim: str
    values: list
    labels: list[str]
    numeric: bool


@dataclass(frozen=True)
class Task:
    index: tuple[int, ...]      # position along every sweep axis, then algorithm, seed
    label: str
    params: object              # pipeline.config.Params of this point
    spec: object                # DeviceSpec of this point (float algorithms use only its initial weights)
    algorithm: str
    seed: int


@dataclass
class Sweep:
    name: str
    profile: str
    dataset: str
    epochs: int
    algorithms: list[str]
    seeds: list[int]
    fixed: dict
    axes: list[Axis]
    description: str = ""
    tasks: list[Task] = field(default_factory=list)
    base_spec: object = field(default=None, repr=False, compare=False)  # the DeviceSpec read, before transforms

    def to_dict(self) -> dict:
        return {"name": self.name, "profile": self.profile, "description": self.description, "dataset": self.dataset,
                "epochs": self.epochs, "algorithms": self.algorithms, "seeds": self.seeds, "set": self.fixed,
                "axes": [{"key": a.key, "dim": a.dim, "values": a.values, "labels": a.labels} for a in self.axes]}


def _label(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "-".join(_label(x) for x in v)
    return str(v)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _merge(layers: list[dict]) -> dict:
    out: dict = {}
    for layer in layers:
        for k, v in layer.items():
            if k in PROFILES:
                continue
            if k == "set" and isinstance(v, dict) and isinstance(out.get("set"), dict):
                out["set"] = {**out["set"], **v}
            else:
                out[k] = v
    return out


def _check_layer(raw, where: str, nested: bool) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError(where, f"got {raw!r}, expected a mapping with keys {', '.join(SPEC_KEYS)}")
    for k, v in raw.items():
        if k not in SPEC_KEYS or (nested and k in PROFILES):
            valid = [s for s in SPEC_KEYS if not (nested and s in PROFILES)]
            raise InputError(f"{where}.{k}", f"unknown key; valid keys: {', '.join(valid)}")
        if k in PROFILES:
            _check_layer(v, f"{where}.{k}", True)
    return raw


def _check_key(key, where: str) -> None:
    if not isinstance(key, str):
        raise InputError(where, f"got key {key!r}, expected a params key such as network.hidden")
    if key in DEVICE_KEYS:
        return
    if key in FORBIDDEN:
        raise InputError(f"{where}.{key}", f"cannot be swept here; {FORBIDDEN[key]}")
    parts = key.split(".")
    valid = ", ".join(list(DEVICE_KEYS) + [f"{s}.<key>" for s in SWEEPABLE_SECTIONS])
    if len(parts) < 2 or parts[0] not in SWEEPABLE_SECTIONS:
        raise InputError(f"{where}.{key}", f"unknown key; expected one of {valid}")
    node = config.Params
    for i, part in enumerate(parts):
        names = {f.name: f for f in dataclasses.fields(node)}
        if part not in names:
            what = ".".join(parts[:i]) or "params"
            raise InputError(f"{where}.{key}", f"unknown key; valid keys of {what}: "
                             + ", ".join(n for n in names if ".".join(parts[:i] + [n]) not in FORBIDDEN)
                             + ("; device transforms: " + ", ".join(DEVICE_KEYS) if parts[0] == "device" else ""))
        tp = typing.get_type_hints(node)[part]
        if i < len(parts) - 1:
            if not dataclasses.is_dataclass(tp):
                raise InputError(f"{where}.{key}", f"'{'.'.join(parts[:i + 1])}' is not a section")
            node = tp
        elif dataclasses.is_dataclass(tp):
            raise InputError(f"{where}.{key}", "is a section, expected a key inside it")


def _check_device_value(key: str, value, where: str) -> float:
    lo, lo_open, doc = DEVICE_KEYS[key]
    if not _is_number(value) or not math.isfinite(float(value)):
        hint = " (write floats as 1.0e-3)" if isinstance(value, str) else ""
        raise InputError(where, f"got {value!r}, expected a number ({doc}){hint}")
    if float(value) < lo or (lo_open and float(value) == lo):
        raise InputError(where, f"got {value!r}, expected a value {'>' if lo_open else '>='} {lo:g} ({doc})")
    return float(value)


def _device_only(changes: dict) -> tuple[dict, dict]:
    dev = {k: v for k, v in changes.items() if k in DEVICE_KEYS}
    return {k: v for k, v in changes.items() if k not in DEVICE_KEYS}, dev


def resolve(p, name: str, *, source: str = "params.yaml", device: Path | None = None) -> Sweep:
    """Resolve sweep ``name`` against params ``p``: merge the layers, validate every key and every
    grid point (params built and checked, device transforms applied), list the tasks."""
    where0 = f"{source}: sweeps"
    raw_all = p.sweeps or {}
    names = [k for k in raw_all if k not in RESERVED]
    if name in RESERVED or name not in raw_all:
        raise InputError(f"{where0}.{name}", f"no such sweep; defined: {', '.join(names) or 'none'}")
    profile = p.base.profile
    defaults = _check_layer(raw_all.get("defaults"), f"{where0}.defaults", False)
    mine = _check_layer(raw_all[name], f"{where0}.{name}", False)
    layers = [defaults, defaults.get(profile) or {}, mine, mine.get(profile) or {}]
    m = _merge(layers)
    where = f"{where0}.{name}"

    dataset = m.get("dataset", p.dataset.name)
    if not isinstance(dataset, str):
        raise InputError(f"{where}.dataset", f"got {dataset!r}, expected a dataset name or path")
    epochs = m.get("epochs", p.train.epochs)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InputError(f"{where}.epochs", f"got {epochs!r}, expected an integer >= 1")
    algorithms = m.get("algorithms", list(p.train.algorithms))
    if isinstance(algorithms, str):
        algorithms = [algorithms]
    if not isinstance(algorithms, list) or not algorithms:
        raise InputError(f"{where}.algorithms", f"got {algorithms!r}, expected a non-empty list of algorithms")
    for i, a in enumerate(algorithms):
        if a not in config.ALGORITHMS:
            raise InputError(f"{where}.algorithms[{i}]", f"got {a!r}, expected one of {', '.join(config.ALGORITHMS)}")
    if len(set(algorithms)) != len(algorithms):
        raise InputError(f"{where}.algorithms", "lists an algorithm twice")
    seeds = m.get("seeds", list(p.train.seeds))
    if _is_number(seeds):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds:
        raise InputError(f"{where}.seeds", f"got {seeds!r}, expected a non-empty list of integers >= 0")
    for i, s in enumerate(seeds):
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise InputError(f"{where}.seeds[{i}]", f"got {s!r}, expected an integer >= 0")
    if len(set(seeds)) != len(seeds):
        raise InputError(f"{where}.seeds", "lists a seed twice")
    fixed = m.get("set") or {}
    if not isinstance(fixed, dict):
        raise InputError(f"{where}.set", f"got {fixed!r}, expected a mapping of params keys to values")
    for k, v in fixed.items():
        _check_key(k, f"{where}.set")
        if k in DEVICE_KEYS:
            _check_device_value(k, v, f"{where}.set.{k}")
    grid = m.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise InputError(f"{where}.grid", f"got {grid!r}: empty grid; expected a mapping of params keys to "
                                          "non-empty lists of values")
    axes = []
    for k, vals in grid.items():
        _check_key(k, f"{where}.grid")
        if not isinstance(vals, list) or not vals:
            raise InputError(f"{where}.grid.{k}", f"got {vals!r}: empty grid axis; expected a non-empty list of values")
        if k in DEVICE_KEYS:
            vals = [_check_device_value(k, v, f"{where}.grid.{k}[{i}]") for i, v in enumerate(vals)]
        labels = [_label(v) for v in vals]
        if len(set(labels)) != len(labels):
            raise InputError(f"{where}.grid.{k}", f"lists a value twice ({', '.join(labels)})")
        dim = k.replace(".", "_")
        if dim in ("algorithm", "seed", "epoch") or any(a.dim == dim for a in axes):
            raise InputError(f"{where}.grid.{k}", f"axis name '{dim}' is taken")
        axes.append(Axis(k, dim, vals, labels, all(_is_number(v) for v in vals)))

    sw = Sweep(name, profile, dataset, int(epochs), list(algorithms), [int(s) for s in seeds], dict(fixed), axes,
               str(m.get("description", "")))
    from ..devices import spec as dspec

    # float algorithms ignore the devices, but start from the weights of the same array draw
    base_spec = dspec.read(device or DEFAULT_DEVICE)
    sw.base_spec = base_spec
    base_changes = {"dataset.name": dataset, "train.epochs": int(epochs)}
    for combo in itertools.product(*[range(len(a.values)) for a in axes]):
        changes = dict(base_changes)
        changes.update(fixed)
        point = {a.key: a.values[i] for a, i in zip(axes, combo)}
        changes.update(point)
        plain, dev = _device_only(changes)
        text = " ".join(f"{a.key}={a.labels[i]}" for a, i in zip(axes, combo))
        try:
            q = config.with_changes(p, plain)
        except InputError as exc:
            key = exc.where.split("[")[0]
            src = "grid" if key in point else "set" if key in fixed else ""
            raise InputError(f"{where}.{src + '.' if src else ''}{exc.where}", f"{exc.problem} (grid point {text})") from None
        if dev and (base_spec.model == "table" or (q.device.use == "table" and base_spec.table is not None)):
            raise InputError(f"{where}.grid", f"device transforms ({', '.join(dev)}) need a fitted device family, "
                                              "not look-up tables (set device.use: fit)")
        pspec = transform_spec(base_spec, dev)
        for ai, alg in enumerate(algorithms):
            for si, seed in enumerate(sw.seeds):
                qs = config.with_changes(q, {"base.seed": int(p.base.seed) + int(seed)})
                lab = f"{text} algorithm={alg} seed={seed}".strip()
                sw.tasks.append(Task(tuple(combo) + (ai, si), lab, qs, pspec, alg, int(seed)))
    _check_sizes(sw)
    return sw


def float_identity(t: Task) -> bytes | None:
    """What a float task's numbers depend on (its algorithm, seed, params without
    :data:`FLOAT_IGNORES`, device population), or None for a hardware task or a float task whose own
    params do not resolve (that one runs on its own and fails as it would)."""
    from ..training import algorithms, run, variants

    alg, scheme = variants.parse(t.algorithm)
    if scheme is not None or alg not in algorithms.BY_NAME or not algorithms.get(alg).is_float:
        return None
    try:
        run.make_config(t.params, alg, t.seed)
    except InputError:
        return None
    d = config.to_dict(t.params)
    for key in FLOAT_IGNORES:
        section, name = key.split(".")
        del d[section][name]
    return json.dumps([t.algorithm, t.seed, d], sort_keys=True).encode() + pickle.dumps(t.spec)


def distinct_runs(tasks: list[Task]) -> list[list[Task]]:
    """``tasks`` grouped into the trainings they need, in task order: a float task shares the run of
    an earlier task that differs from it only in keys a float algorithm ignores (the same scheme
    grid point trained once per seed, not once per scheme); the first task of a group is the one
    that runs, and its result fills every region of the group."""
    groups: list[list[Task]] = []
    first: dict[bytes, list[Task]] = {}
    for t in tasks:
        key = float_identity(t)
        if key is not None and key in first:
            first[key].append(t)
            continue
        groups.append([t])
        if key is not None:
            first[key] = groups[-1]
    return groups


def _check_sizes(sw: Sweep) -> None:
    """Build each distinct network config once, so an impossible one (loss vs output) stops here."""
    from ..training import run

    seen = set()
    for t in sw.tasks:
        n = t.params.network
        key = (n.output, n.loss, t.algorithm)
        if key in seen:
            continue
        seen.add(key)
        try:
            run.make_config(t.params, t.algorithm, t.seed)
        except InputError as exc:
            raise InputError(f"sweeps.{sw.name} ({t.label})", f"{exc.where}: {exc.problem}") from None
