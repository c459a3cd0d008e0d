"""Parameter sweeps on Dask distributed (DESIGN §2.5): many independent trainings over a grid.

A sweep is named in ``params.yaml`` under ``sweeps:`` (format below). ``python -m pipeline sweep
NAME`` resolves it against the other params, validates **every** grid point before any task
starts (a bad key or value is one line, exit status 2), pre-creates one zarr store, and submits
one Dask task per (grid point, algorithm, seed), except that a float algorithm's run is trained once
for all grid points that differ only in keys it ignores (the update scheme and its settings,
:data:`.spec.FLOAT_IGNORES`) and its result written to each of their regions. Each task trains in memory
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
(the temporary store remembers a fingerprint of its spec, params, device and code, and is started
afresh when any of them changed; the final store does not contain it: it is kept beside it, in
``.<name>.zarr.fingerprint``, for the "complete and up to date" shortcut). ``--allow-incomplete`` (or ``evaluate.allow_incomplete: true``) puts
an incomplete store in place, marked so, which fig5 then accepts. ``--scheduler tcp://host:port``
(or ``DASK_SCHEDULER_ADDRESS``) sends the tasks to a running Dask cluster instead of a local one.

Testing hook: ``ECRAM_SWEEP_FAIL=<glob>`` makes every task whose label (``key=value ...
algorithm=A seed=S``) matches fail, with every task that shares its run
(``ECRAM_SWEEP_FAIL_MODE=exit``: the worker process exits, as a killed worker would).

Modules: :mod:`.spec` (the spec language: merging, validation, the task list), :mod:`.store`
(store layout, regions, the resume fingerprint), :mod:`.executor` (Dask cluster or client, the
task, submitting). The device transforms are :mod:`pipeline.devices.transforms`; the command,
which does the file I/O, is :func:`pipeline.stages.sweep.run`.
"""

from __future__ import annotations

from ..devices.transforms import transform_spec
from .executor import cores, execute, local_cluster, local_workers, open_client, run_task, warm_up
from .spec import (DEVICE_KEYS, FLOAT_IGNORES, FORBIDDEN, PROFILES, SPEC_KEYS, SWEEPABLE_SECTIONS, Axis, Sweep, Task,
                   distinct_runs, resolve)
from .store import METRICS, UNITS, create_store, fingerprint, missing

__all__ = ["DEVICE_KEYS", "FLOAT_IGNORES", "FORBIDDEN", "METRICS", "PROFILES", "SPEC_KEYS", "SWEEPABLE_SECTIONS", "UNITS", "Axis", "Sweep",
           "Task", "cores", "create_store", "distinct_runs", "execute", "fingerprint", "local_cluster", "local_workers", "missing",
           "open_client", "resolve", "run_task", "transform_spec", "warm_up"]
