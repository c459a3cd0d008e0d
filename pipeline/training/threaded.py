"""Threads inside one training run (issue 12): an uncached twin of the epoch loop.

The loop of :mod:`pipeline.training.loop` is compiled with ``cache=True`` and calls the serial
kernels only: a cached library that contains ``prange`` code can bind the wrong code when several
processes load it (numba #10128, #4807). The twin built here is the same Python code — the
functions ``forward``, ``hidden_error``, ``write_layer``, ``train_sample`` and ``run_epoch`` of
``loop``, re-created over a copy of that module's globals — in which the kernel module ``K`` is
replaced by one whose cached reads and direct-scheme update are the dispatchers (threaded
``prange`` kernels for arrays of at least ``train.parallel_min`` devices, serial below). It is
compiled with ``cache=False``, in each process that asks for it (a one-off cost: 116 s measured
on the 2-core development machine with its other core busy), so no cached library ever holds its
``prange`` code.

Same numbers: the threaded kernels give the bits of the serial ones (every device is written by
one task with draws keyed on the device; every output line is summed by one task in the serial
order), so a run with threads is bit-identical to one without (tests/training/test_threads.py).
The other schemes' kernels (mixed precision, carry, tiki-taka) stay serial inside the twin.
"""

from __future__ import annotations

import types

from numba import njit

from ..crossbar import kernels as K
from . import loop

TWINNED = ("forward", "hidden_error", "write_layer", "train_sample", "run_epoch")

_twin = None


def _threaded_kernels() -> types.ModuleType:
    """``K`` with the loop's serial calls re-pointed at the dispatchers."""
    kt = types.ModuleType(K.__name__ + "_threaded")
    kt.__dict__.update({k: v for k, v in K.__dict__.items() if not k.startswith("__")})
    kt.read_forward_t = K.read_fwd_t
    kt.read_transposed_t = K.read_tr_t
    kt.update_layer_serial = K.update_layer
    return kt


def run_epoch():
    """The threaded twin of :func:`pipeline.training.loop.run_epoch` (same arguments, same
    results), built once per process."""
    global _twin
    if _twin is None:
        env = dict(loop.__dict__)
        env["K"] = _threaded_kernels()
        for name in TWINNED:
            f = getattr(loop, name).py_func
            env[name] = njit(cache=False)(types.FunctionType(f.__code__, env, name, f.__defaults__, f.__closure__))
        _twin = env["run_epoch"]
    return _twin
