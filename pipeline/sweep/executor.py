"""Running sweep tasks on Dask distributed (DESIGN §2.5): the in-process LocalCluster (spawned
workers) or a client of a running scheduler, the task that trains one grid point and writes its
region (and the regions of the float tasks that share its run: :func:`.spec.distinct_runs`),
submitting the tasks and collecting the failures without stopping the others."""

from __future__ import annotations

import fnmatch
import logging
import os
import time
from pathlib import Path

import numpy as np

from .. import config, progress, store
from ..errors import InputError, TrainingDiverged
from .spec import Sweep, Task, distinct_runs
from .store import METRICS


def run_task(path: str, index: tuple[int, ...], p, spec, algorithm: str, seed: int, threads: int = 1,
             fail: str = "", also: tuple[tuple[int, ...], ...] = ()) -> dict:
    """One sweep task (runs on a Dask worker): train with at most ``threads`` numba threads, write
    this task's region, mark it done; then the same for each region in ``also`` (the float tasks
    that differ from this one only in keys a float algorithm ignores)."""
    from ..training import run

    run.set_threads(threads)  # > 1: the threaded twin of the loop (same bits)
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
    for region in (tuple(index),) + tuple(tuple(r) for r in also):
        for name in METRICS:
            s.write(name, region + (slice(None),), np.asarray(out[name], np.float64))
        s.write("diverged", region, diverged)
        s.write("done", region, True)
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


def _fail_mode(labels: list[str]) -> str:
    pat = os.environ.get("ECRAM_SWEEP_FAIL", "")
    if pat and any(fnmatch.fnmatchcase(label, pat) for label in labels):
        return "exit" if os.environ.get("ECRAM_SWEEP_FAIL_MODE") == "exit" else "raise"
    return ""


def warm_up(sw: Sweep) -> None:
    """Compile (or load from numba's cache) the kernels once in this process, on a few samples, so
    that the local workers load the cache instead of all compiling at once."""
    from ..training import run

    t = next((t for t in sw.tasks if not t.algorithm.endswith("-float")), sw.tasks[0])
    q = config.with_changes(t.params, {"train.epochs": 1, "dataset.max_train": 10, "dataset.max_test": 10})
    try:
        run.simulate(q, t.spec, t.algorithm, t.seed)
    except Exception:  # noqa: BLE001 - the real task will report it with its grid point
        pass


def execute(client, path: Path, tasks: list[Task], name: str, threads: int = 1) -> list[tuple[Task, str]]:
    """Submit one Dask task per distinct run of ``tasks`` (:func:`.spec.distinct_runs`: a float run
    is trained once for every grid point that differs only in keys a float algorithm ignores, and
    fills all their regions) to ``client``; returns the failures (task, reason), every task of a
    failed run. Never raises for a failing task."""
    from distributed import as_completed

    runs = distinct_runs(tasks)
    if len(runs) < len(tasks):
        progress.log(f"sweep {name}: {len(tasks)} tasks in {len(runs)} runs (float runs shared by the grid points "
                     "that differ only in update-scheme keys)")
    futures = {}
    for group in runs:
        t = group[0]
        fut = client.submit(run_task, str(path), t.index, t.params, t.spec, t.algorithm, t.seed, threads,
                            _fail_mode([u.label for u in group]), tuple(u.index for u in group[1:]),
                            key=f"sweep-{name}-{'-'.join(map(str, t.index))}-{os.getpid()}-{time.monotonic_ns()}",
                            pure=False, retries=0)
        futures[fut] = group
    failed = []
    with progress.bar(f"sweep {name}", total=len(runs)) as bar:
        for fut in as_completed(list(futures)):
            group = futures[fut]
            if fut.status == "finished":
                r = fut.result()
                for t in group:
                    progress.log(f"{t.label}: test acc {r['test_acc']:.3f} ({r['seconds']:.1f} s)"
                                 + (" DIVERGED" if r["diverged"] else "")
                                 + (f" (the run of {group[0].label})" if t is not group[0] else ""), verbose_only=True)
            else:
                exc = fut.exception()
                reason = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:200]
                for t in group:
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


def open_client(scheduler: str | None, workers: int, threads: int, n_tasks: int):
    from distributed import Client

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except OSError as exc:
            raise InputError(f"--scheduler {scheduler}", f"cannot connect ({exc})") from None
    cluster = local_cluster(min(workers, max(n_tasks, 1)), threads)
    return Client(cluster), cluster
