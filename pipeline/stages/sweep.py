"""Stage ``sweep`` (``ecram sweep NAME``): run (or complete) one sweep of ``params.yaml`` into
``results/sweeps/NAME.zarr`` (DESIGN §2.5). All the file I/O of the command is here: reading the
device population, the temporary store and its resume, putting the store in place; the spec
language, the store layout and the Dask executor are :mod:`pipeline.sweep`."""

from __future__ import annotations

# params sections this stage reads (dvc.yaml declares them: tested)
SECTIONS = ("base", "device", "array", "network", "dataset", "train", "evaluate", "sweeps")

import json
import time
from pathlib import Path

import numpy as np

from .. import config, datasets, fsutil, progress, store
from ..crossbar.arrays import network_sizes
from ..sweep import executor, spec, store as sweep_store


def shared_sizes(sw) -> list[int] | None:
    """The layer sizes of the sweep's network when every task trains the same one (figures that
    count storage per weight read it), else None."""
    loaded: dict[str, tuple[int, int]] = {}
    found = set()
    for t in sw.tasks:
        key = json.dumps(config.to_dict(t.params.dataset), sort_keys=True)
        if key not in loaded:
            d = datasets.load(t.params.dataset)
            loaded[key] = (d.n_features, d.n_classes)
        found.add(tuple(network_sizes(loaded[key][0], t.params.network.hidden, loaded[key][1])))
    return list(found.pop()) if len(found) == 1 else None


def run(p, *, name: str, out: Path | None = None, scheduler: str | None = None, workers: int = 0,
        threads: int = 1, allow_incomplete: bool | None = None, device: Path | None = None,
        source: str = "params.yaml", client=None) -> Path:
    """``ecram sweep NAME``: run (or complete) a sweep into ``out`` (default results/sweeps/NAME.zarr).

    ``client``: an existing ``distributed.Client`` to use (tests), instead of ``scheduler``."""
    sw = spec.resolve(p, name, source=source, device=device)
    if client is None and not scheduler:
        import dask

        scheduler = dask.config.get("scheduler-address", None)  # DASK_SCHEDULER_ADDRESS=tcp://host:port
    if client is None and not scheduler:
        workers = executor.local_workers(workers, threads)
    allow = p.evaluate.allow_incomplete if allow_incomplete is None else bool(allow_incomplete)
    out = Path(out) if out is not None else Path("results/sweeps") / f"{name}.zarr"
    fsutil.check_output_path(out, want_dir=True)
    base_spec = sw.base_spec
    stamp = sweep_store.fingerprint(sw, p, base_spec)
    tmp = fsutil.tmp_sibling(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and sweep_store.fingerprint_beside(out) == stamp:
        left = sweep_store.missing(out)
        if not left:
            progress.log(f"sweep {name}: {out} is complete and up to date")
            return out
        if not sweep_store.fingerprint_of(tmp) == stamp:
            sweep_store.start_from(out, tmp, stamp)
    if sweep_store.fingerprint_of(tmp) != stamp:
        fsutil.remove(tmp)
        attrs = {"sweep": sw.to_dict(), "fingerprint": stamp, "device": base_spec.to_dict(),
                 "params": {k: config.to_dict(getattr(p, k)) for k in ("base", "array", "network", "dataset", "train")},
                 "sizes": shared_sizes(sw),
                 "metrics": list(sweep_store.METRICS), "complete": False, "allow_incomplete": False, "missing": []}
        sweep_store.create_store(tmp, sw, attrs)
    done = np.asarray(store.Store.open(tmp, mode="r").read("done"), bool)
    todo = [t for t in sw.tasks if not done[t.index]]
    progress.log(f"sweep {name} ({sw.profile} profile): {len(sw.tasks)} tasks, {len(todo)} to run"
                 + (f", {len(sw.tasks) - len(todo)} already done" if len(todo) < len(sw.tasks) else ""))
    t0 = time.perf_counter()
    if todo:
        own = client is None
        cluster = None
        if own:
            if not scheduler:
                executor.warm_up(sw)
            client, cluster = executor.open_client(scheduler, workers, threads, len(todo))
        try:
            executor.execute(client, tmp, todo, name, threads)  # logs each failed task; missing() below lists them
        except KeyboardInterrupt:
            progress.log(f"sweep {name}: interrupted; finished regions kept in {tmp}; rerun to complete the rest")
            raise
        finally:
            if own:
                client.close()
                if cluster is not None:
                    cluster.close()
    wall = time.perf_counter() - t0
    left = sweep_store.missing(tmp)
    if left and not allow:
        for lab in left[:20]:
            progress.log(f"sweep {name}: missing: {lab}")
        progress.log(f"sweep {name}: {len(left)} of {len(sw.tasks)} tasks missing after {wall:.1f} s; finished regions "
                     f"are kept in {tmp}; rerun the same command to run only the missing ones, or pass "
                     "--allow-incomplete (evaluate.allow_incomplete: true) to keep an incomplete store")
        raise SystemExit(1)
    sweep_store.finish(tmp, out, left=left)
    progress.log(f"sweep {name}: {len(todo)} tasks in {wall:.1f} s -> {out}"
                 + (f" (INCOMPLETE: {len(left)} missing)" if left else ""))
    return out
