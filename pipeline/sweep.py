"""Parameter sweeps on Dask distributed (DESIGN §2.5): many independent trainings over a grid.

A sweep is named in ``params.yaml`` under ``sweeps:`` (format below). ``python -m pipeline sweep
NAME`` resolves it against the other params, validates **every** grid point before any task
starts (a bad key or value is one line, exit status 2), pre-creates one zarr store, and submits
one Dask task per (grid point, algorithm, seed). Each task trains in memory
(:func:`pipeline.training.run.simulate`) and writes its own region of the store: chunk 1 along
every sweep axis, the algorithm and the seed, so no two tasks ever write one chunk. A task marks
its region ``done`` last. Metadata is consolidated once, at the end.

Sweep spec (``params.yaml``)::

    sweeps:
      defaults:                     # merged under every sweep (a sweep's own keys win)
        dataset: optdigits          # dataset.name of every point
        epochs: 5                   # train.epochs of every point
        algorithms: [progressive, backprop]
        seeds: [0, 1]               # seed s: training seed s, arrays drawn with base.seed + s
        set: {network.output: softmax, train.lr: 0.1}   # fixed overrides of any params key
        paper: {epochs: 20, seeds: [0, 1, 2, 3, 4]}     # replaces keys when base.profile: paper
      depth:
        grid:                       # cartesian product over these keys (one sweep axis each)
          network.hidden: [[32], [32, 32], [32, 32, 32]]
        paper: {grid: {network.hidden: [[64], [64, 64], [64, 64, 64]]}}

Layers are merged in the order defaults, defaults.<profile>, the sweep, the sweep's <profile>;
``set`` mappings merge key by key, every other key is replaced. Grid keys are any params key of
the sections array, network, dataset, train (except train.algorithms / seeds / epochs) and device,
plus device-population transforms of the fitted ``device.yaml``:

* ``device.states``    number of states (G_max − G_min) / dG_up; dG_up and dG_down are rescaled
  together (their ratio and relative device-to-device spreads kept);
* ``device.asymmetry`` dG_down / dG_up (dG_up kept);
* ``device.c2c``       cycle-to-cycle noise (relative std of one step);
* ``device.d2d_scale`` multiplies every device-to-device std of the population.

Transforms apply in the order d2d_scale, states, asymmetry, c2c. Float algorithms ignore the
devices. The store (``results/sweeps/<name>.zarr``) has dims ``<axis>..., algorithm, seed,
epoch`` (axis dims are the keys with ``.`` → ``_``), every metric of ``simulate`` per epoch,
``done`` and ``diverged`` per task. It is built in ``.<name>.zarr.tmp`` and renamed into place
when complete; a failed task is reported with its grid point and does not stop the others, the
partial store keeps every finished region, and rerunning the sweep runs only the missing ones
(the store remembers a fingerprint of its spec, params, device and code, and is started afresh
when any of them changed). ``--allow-incomplete`` (or ``evaluate.allow_incomplete: true``) puts
an incomplete store in place, marked so, which fig5 then accepts. ``--scheduler tcp://host:port``
(or ``DASK_SCHEDULER_ADDRESS``) sends the tasks to a running Dask cluster instead of a local one.

Testing hook: ``ECRAM_SWEEP_FAIL=<glob>`` makes every task whose label (``key=value ...
algorithm=A seed=S``) matches fail (``ECRAM_SWEEP_FAIL_MODE=exit``: the worker process exits,
as a killed worker would).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import itertools
import json
import logging
import math
import os
import shutil
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import config, fsutil, progress, store
from .errors import InputError, TrainingDiverged

SPEC_KEYS = ("description", "dataset", "epochs", "algorithms", "seeds", "set", "grid", "default", "paper")
PROFILES = ("default", "paper")
RESERVED = ("defaults",)
DEVICE_KEYS = {  # key -> (lower bound, open?, doc)
    "device.states": (1.0, True, "number of states (G_max - G_min) / dG_up"),
    "device.asymmetry": (0.0, True, "dG_down / dG_up"),
    "device.c2c": (0.0, False, "cycle-to-cycle noise, relative std of one step"),
    "device.d2d_scale": (0.0, False, "factor on every device-to-device std"),
}
SWEEPABLE_SECTIONS = ("array", "network", "dataset", "train", "device")
FORBIDDEN = {"train.algorithms": "use the sweep's 'algorithms'", "train.seeds": "use the sweep's 'seeds'",
             "train.epochs": "use the sweep's 'epochs' (every epoch is stored)",
             "dataset.name": "use the sweep's 'dataset'"}
METRICS = ("train_loss", "train_acc", "train_loss_eval", "train_acc_eval", "test_loss", "test_acc", "energy_J",
           "reads", "device_reads", "pulses_up", "pulses_down", "forward_passes")
UNITS = {"energy_J": "J", "reads": "reads", "device_reads": "reads", "pulses_up": "pulses", "pulses_down": "pulses",
         "forward_passes": "passes"}
DEFAULT_DEVICE = Path("results/device/device.yaml")


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


def transform_spec(spec, changes: dict):
    """A copy of a device population with the ``device.*`` sweep transforms applied."""
    from .devices.spec import Stat

    if not changes:
        return spec
    pop = dict(spec.population)
    if "device.d2d_scale" in changes:
        f = float(changes["device.d2d_scale"])
        pop = {k: Stat(v.mean, v.std * f) for k, v in pop.items()}
    up, dn = pop["dg_up_S"], pop["dg_down_S"]

    def scaled(stat, mean):
        return Stat(mean, stat.std * mean / stat.mean if stat.mean > 0 else stat.std)

    if "device.states" in changes:
        rng = pop["g_max_S"].mean - pop["g_min_S"].mean
        new_up = rng / float(changes["device.states"])
        ratio = dn.mean / up.mean
        up, dn = scaled(up, new_up), scaled(dn, new_up * ratio)
    if "device.asymmetry" in changes:
        dn = scaled(dn, up.mean * float(changes["device.asymmetry"]))
    pop["dg_up_S"], pop["dg_down_S"] = up, dn
    c2c = float(changes["device.c2c"]) if "device.c2c" in changes else spec.c2c_std
    return dataclasses.replace(spec, population=pop, c2c_std=c2c)


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
    from .devices import spec as dspec

    # float algorithms ignore the devices, but start from the weights of the same array draw
    base_spec = dspec.read(device or DEFAULT_DEVICE)
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


def _check_sizes(sw: Sweep) -> None:
    """Build each distinct network config once, so an impossible one (loss vs output) stops here."""
    from .training import run

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


# ------------------------------------------------------------------------------------ the store


NUMBER_SOURCES = ("training/", "crossbar/", "devices/", "datasets.py", "config.py", "sweep.py")


def _code_hash() -> str:
    """Sources that shape a sweep's numbers (not the CLI, evaluation or figures)."""
    root = Path(__file__).resolve().parent
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
                attrs={"units": UNITS.get(name, "1"), "description": f"{name} per epoch (epoch 0: before training)"})
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


# ------------------------------------------------------------------------------------ the tasks


def run_task(path: str, index: tuple[int, ...], p, spec, algorithm: str, seed: int, threads: int = 1,
             fail: str = "") -> dict:
    """One sweep task (runs on a Dask worker): train with at most ``threads`` numba threads, write
    this task's region, mark it done."""
    import numba

    from .training import run

    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    if fail == "exit":
        os._exit(17)
    if fail == "raise":
        raise RuntimeError("failure injected by ECRAM_SWEEP_FAIL")
    t0 = time.perf_counter()
    diverged = False
    try:
        out = run.simulate(p, spec, algorithm, seed)
    except TrainingDiverged:
        diverged = True
        out = {k: np.full(p.train.epochs + 1, np.nan) for k in METRICS}
    s = store.Store.open(Path(path), mode="r+")
    for name in METRICS:
        s.write(name, index + (slice(None),), np.asarray(out[name], np.float64))
    s.write("diverged", index, diverged)
    s.write("done", index, True)
    return {"seconds": time.perf_counter() - t0, "diverged": diverged,
            "test_acc": float(out["test_acc"][-1])}


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def local_cluster(workers: int, threads: int):
    """An in-process Dask LocalCluster: spawned worker processes (never forked: numba's OpenMP
    pool does not survive a fork), one task at a time each.

    Workers keep the parent's ``NUMBA_NUM_THREADS`` (so they share its numba cache, which is keyed
    on it: a parallel function cached under one thread count can crash a process started with
    another); each task limits itself to ``threads`` with ``numba.set_num_threads``."""
    import dask
    from distributed import LocalCluster

    env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn",
                          "distributed.nanny.pre-spawn-environ": env,
                          "distributed.scheduler.allowed-failures": 1,
                          "distributed.worker.daemon": True}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                            silence_logs=logging.CRITICAL, env=env)


def _fail_mode(label: str) -> str:
    pat = os.environ.get("ECRAM_SWEEP_FAIL", "")
    if pat and fnmatch.fnmatchcase(label, pat):
        return "exit" if os.environ.get("ECRAM_SWEEP_FAIL_MODE") == "exit" else "raise"
    return ""


def warm_up(sw: Sweep) -> None:
    """Compile (or load from numba's cache) the kernels once in this process, on a few samples, so
    that the local workers load the cache instead of all compiling at once."""
    from .training import run

    t = next((t for t in sw.tasks if not t.algorithm.endswith("-float")), sw.tasks[0])
    q = config.with_changes(t.params, {"train.epochs": 1, "dataset.max_train": 10, "dataset.max_test": 10})
    try:
        run.simulate(q, t.spec, t.algorithm, t.seed)
    except Exception:  # noqa: BLE001 - the real task will report it with its grid point
        pass


def execute(client, path: Path, tasks: list[Task], name: str, threads: int = 1) -> list[tuple[Task, str]]:
    """Submit every task to ``client``; returns the failures (task, reason). Never raises for a
    failing task."""
    from distributed import as_completed

    futures = {}
    for t in tasks:
        fut = client.submit(run_task, str(path), t.index, t.params, t.spec, t.algorithm, t.seed, threads,
                            _fail_mode(t.label),
                            key=f"sweep-{name}-{'-'.join(map(str, t.index))}-{os.getpid()}-{time.monotonic_ns()}",
                            pure=False, retries=0)
        futures[fut] = t
    failed = []
    with progress.bar(f"sweep {name}", total=len(tasks)) as bar:
        for fut in as_completed(list(futures)):
            t = futures[fut]
            if fut.status == "finished":
                r = fut.result()
                progress.log(f"{t.label}: test acc {r['test_acc']:.3f} ({r['seconds']:.1f} s)"
                             + (" DIVERGED" if r["diverged"] else ""), verbose_only=True)
            else:
                exc = fut.exception()
                reason = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:200]
                failed.append((t, reason))
                progress.log(f"sweep {name}: task failed: {t.label}: {reason}")
            fut.release()
            bar.advance()
    return failed


def local_workers(workers: int, threads: int) -> int:
    """Workers of the local cluster: numba threads x workers must not exceed the cores."""
    n = cores()
    if threads > n:
        raise InputError("--threads", f"got {threads}, more than the {n} cores available")
    workers = workers or max(1, n // threads)
    if workers * threads > n:
        raise InputError("--workers", f"{workers} workers x {threads} numba threads = {workers * threads} exceeds the "
                                      f"{n} cores available; lower --workers or --threads")
    return workers


def _open_client(scheduler: str | None, workers: int, threads: int, n_tasks: int):
    from distributed import Client

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except OSError as exc:
            raise InputError(f"--scheduler {scheduler}", f"cannot connect ({exc})") from None
    cluster = local_cluster(min(workers, max(n_tasks, 1)), threads)
    return Client(cluster), cluster


def sweep_command(p, *, name: str, out: Path | None = None, scheduler: str | None = None, workers: int = 0,
                  threads: int = 1, allow_incomplete: bool | None = None, device: Path | None = None,
                  source: str = "params.yaml", client=None) -> Path:
    """``ecram sweep NAME``: run (or complete) a sweep into ``out`` (default results/sweeps/NAME.zarr).

    ``client``: an existing ``distributed.Client`` to use (tests), instead of ``scheduler``."""
    sw = resolve(p, name, source=source, device=device)
    if client is None and not scheduler:
        import dask

        scheduler = dask.config.get("scheduler-address", None)  # DASK_SCHEDULER_ADDRESS=tcp://host:port
    if client is None and not scheduler:
        workers = local_workers(workers, threads)
    allow = p.evaluate.allow_incomplete if allow_incomplete is None else bool(allow_incomplete)
    out = Path(out) if out is not None else Path("results/sweeps") / f"{name}.zarr"
    fsutil.check_output_path(out, want_dir=True)
    from .devices import spec as dspec

    base_spec = dspec.read(device or DEFAULT_DEVICE)
    fp = fingerprint(sw, p, base_spec)
    tmp = fsutil.tmp_sibling(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and _fingerprint_of(out) == fp:
        left = missing(out)
        if not left:
            progress.log(f"sweep {name}: {out} is complete and up to date")
            return out
        if not _fingerprint_of(tmp) == fp:
            fsutil.remove(tmp)
            shutil.copytree(out, tmp)
    if _fingerprint_of(tmp) != fp:
        fsutil.remove(tmp)
        attrs = {"sweep": sw.to_dict(), "fingerprint": fp, "device": base_spec.to_dict(),
                 "params": {k: config.to_dict(getattr(p, k)) for k in ("base", "array", "network", "dataset", "train")},
                 "metrics": list(METRICS), "complete": False, "allow_incomplete": False, "missing": []}
        create_store(tmp, sw, attrs)
    done = np.asarray(store.Store.open(tmp, mode="r").read("done"), bool)
    todo = [t for t in sw.tasks if not done[t.index]]
    progress.log(f"sweep {name} ({sw.profile} profile): {len(sw.tasks)} tasks, {len(todo)} to run"
                 + (f", {len(sw.tasks) - len(todo)} already done" if len(todo) < len(sw.tasks) else ""))
    failed: list = []
    t0 = time.perf_counter()
    if todo:
        own = client is None
        cluster = None
        if own:
            if not scheduler:
                warm_up(sw)
            client, cluster = _open_client(scheduler, workers, threads, len(todo))
        try:
            failed = execute(client, tmp, todo, name, threads)
        except KeyboardInterrupt:
            progress.log(f"sweep {name}: interrupted; finished regions kept in {tmp}; rerun to complete the rest")
            raise
        finally:
            if own:
                client.close()
                if cluster is not None:
                    cluster.close()
    wall = time.perf_counter() - t0
    left = missing(tmp)
    s = store.Store.open(tmp, mode="r+")
    if left and not allow:
        for lab in left[:20]:
            progress.log(f"sweep {name}: missing: {lab}")
        progress.log(f"sweep {name}: {len(left)} of {len(sw.tasks)} tasks missing after {wall:.1f} s; finished regions "
                     f"are kept in {tmp}; rerun the same command to run only the missing ones, or pass "
                     "--allow-incomplete (evaluate.allow_incomplete: true) to keep an incomplete store")
        raise SystemExit(1)
    s.set_attrs(complete=not left, allow_incomplete=bool(left), missing=left)
    s.consolidate()
    _replace(tmp, out)
    progress.log(f"sweep {name}: {len(todo)} tasks in {wall:.1f} s -> {out}"
                 + (f" (INCOMPLETE: {len(left)} missing)" if left else ""))
    return out


def _fingerprint_of(path: Path) -> str | None:
    if not Path(path).exists():
        return None
    try:
        return store.Store.open(Path(path), mode="r").group.attrs.get("fingerprint")
    except Exception:  # noqa: BLE001 - an unreadable leftover is simply not reused
        return None


def _replace(tmp: Path, out: Path) -> None:
    old = out.with_name(f".{out.name}.old")
    fsutil.remove(old)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    fsutil.remove(old)
