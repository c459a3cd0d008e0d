"""Full in-situ training throughput (issue 5): optdigits 64-32-10, batch 1, one thread.

``python -m benchmarks.training [--quick]`` (or ``python -m pipeline bench training``) trains the
64-32-10 network on the 3823 optdigits training samples with the soft-bounds EC-RAM population
of ``data/devices/ecram-softbounds.yaml`` (c2c noise 0.3 on every pulse, 10 % device-to-device
spread, differential pairs, stochastic-rounding pulse encoding), one epoch per timing, for every
algorithm; the figure of merit is training samples per second of the jitted epoch (forward
reads, in-situ errors, pulse updates — everything a sample costs), median of repeats after a
warm-up epoch. For comparison it also times a plain NumPy float64 online-SGD loop of the same
network. Results go to ``benchmarks/results/training.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import pipeline  # noqa: F401  (first: sets the numba cache folder before numba is imported)
import numba  # noqa: E402

from pipeline import config, datasets
from pipeline.crossbar import arrays as arr
from pipeline.devices import spec as dspec
from pipeline.training import loop, run

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "training.json"
AIHWKIT_SAMPLES_PER_S = 2070.0  # aihwkit 1.2.0, pulsed SoftBounds, this machine class (issue 5)
ALGORITHMS = ("progressive", "progressive-held", "backprop", "manhattan", "backprop-float", "progressive-float")


def numpy_sgd(x, T, W1, W2, lr, order) -> float:
    """Reference: online float64 SGD in NumPy (one sample at a time); returns seconds."""
    t0 = time.perf_counter()
    for i in order:
        a0 = np.append(x[i], 1.0)
        a1 = 1.0 / (1.0 + np.exp(-(W1 @ a0)))
        a1b = np.append(a1, 1.0)
        a2 = 1.0 / (1.0 + np.exp(-(W2 @ a1b)))
        d2 = (a2 - T[i]) * a2 * (1.0 - a2)
        d1 = (W2[:, :-1].T @ d2) * a1 * (1.0 - a1)
        W2 -= lr * np.outer(d2, a1b)
        W1 -= lr * np.outer(d1, a0)
    return time.perf_counter() - t0


def main(quick: bool = False) -> dict:
    numba.set_num_threads(1)
    spec = dspec.read(ROOT / "data" / "devices" / "ecram-softbounds.yaml")
    p = config.with_changes(config.load(ROOT / "params.yaml"), {
        "dataset.name": "optdigits", "network.hidden": [32], "train.lr": [0.1], "array.encoding": "stochastic",
        "train.parallel_min": 1 << 40})
    data = datasets.load(p.dataset)
    net = arr.build(p, spec, [64, 32, 10])
    n = len(data.y_train)
    repeats = 3 if quick else 7
    results = {}
    for alg in ALGORITHMS:
        su = run.setup(p, alg, 0, net)
        g, W = net.g0.copy(), net.weights0().copy()
        cu = np.zeros(g.shape, np.int64)
        cd = np.zeros(g.shape, np.int64)
        snaps, ss = np.zeros((1, 1, 1)), np.zeros(1, np.int64)
        times, pulses = [], 0
        for ep in range(1, repeats + 2):
            led = np.zeros(loop.N_LEDGER, np.int64)
            t0 = time.perf_counter()
            loop.run_epoch(g, W, su.net.dev, su.net.ph, su.cfg, su.lrs, data.x_train, su.T_train, run.epoch_order(0, ep, n),
                           (ep - 1) * n, 1 << 60, cu, cd, led, snaps, ss)
            dt = time.perf_counter() - t0
            if ep > 1:  # the first epoch is the warm-up (compilation, caches)
                times.append(dt)
                pulses = int(led[loop.L_PULSES_UP] + led[loop.L_PULSES_DOWN])
        med = float(np.median(times))
        results[alg] = {"samples_per_s": n / med, "median_epoch_s": med, "pulses_per_sample": pulses / n,
                        "reads_per_sample": int(led[loop.L_READS]) / n}
    rng = np.random.default_rng(0)
    W1 = rng.normal(0, 0.1, (32, 65))
    W2 = rng.normal(0, 0.1, (10, 33))
    T = run.targets(data.y_train, 10, "sigmoid")
    np_times = [numpy_sgd(data.x_train, T, W1, W2, 0.1, run.epoch_order(0, k, n)) for k in range(2 if quick else 3)]
    results["numpy-float64-sgd"] = {"samples_per_s": n / float(np.median(np_times))}
    summary = {
        "network": "optdigits 64-32-10, sigmoid, MSE, batch 1",
        "device": "soft-bounds (data/devices/ecram-softbounds.yaml), c2c 0.3, d2d 10 %, differential, stochastic rounding",
        "threads": 1, "samples_per_epoch": n, "repeats": repeats,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "numba": numba.__version__, "numpy": np.__version__,
        "results": results,
        "progressive_over_backprop_float": results["progressive"]["samples_per_s"] / results["backprop-float"]["samples_per_s"],
        "progressive_over_aihwkit": results["progressive"]["samples_per_s"] / AIHWKIT_SAMPLES_PER_S,
        "aihwkit_reference_samples_per_s": AIHWKIT_SAMPLES_PER_S,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{'algorithm':24s} {'samples/s':>12s} {'pulses/sample':>14s} {'reads/sample':>13s}")
    for alg, r in results.items():
        print(f"{alg:24s} {r['samples_per_s']:12.0f} {r.get('pulses_per_sample', float('nan')):14.2f} "
              f"{r.get('reads_per_sample', float('nan')):13.1f}")
    print(f"progressive / backprop-float: {summary['progressive_over_backprop_float']:.3f}; "
          f"progressive / aihwkit (2,070/s): {summary['progressive_over_aihwkit']:.1f}x")
    return summary


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    main(quick=ap.parse_args().quick)
