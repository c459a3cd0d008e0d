"""Kernel throughput (issue 4): pulsed update, forward read and transposed read of one array.

``python -m benchmarks.kernels [--quick]`` (or ``python -m pipeline bench kernels``) times, at
64×32, 256×256, 784×256 and 1024×1024, batch 1, with 1 thread (serial kernels) and 2 threads
(``prange`` kernels, ``numba.set_num_threads(2)``):

* ``update``: one pulsed update ΔW = −lr·d·aᵀ of the whole array with the full device model —
  soft-bounds law, 10 % device-to-device spread, cycle-to-cycle noise 0.3 on every pulse,
  ``reference`` mapping (one device per cross-point, as an aihwkit tile), ``nearest`` encoding,
  inputs chosen so that every device gets exactly one pulse per step (random polarity);
* ``forward`` / ``transposed``: one noisy read (read noise on) y = W x / x = Wᵀ d.

Each case is warmed up (compiled, caches hot), then timed as the median of repeats; the figure
of merit is device-updates (or device-reads) per second = rows·cols / median time. The machine's
memory bandwidth is measured with a NumPy copy (STREAM "copy": 2 × bytes per second) and the
update's effective traffic at the largest size is reported as a fraction of it.

Results go to ``benchmarks/results/kernels.json``; ``benchmarks/RESULTS.md`` quotes them.
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

from pipeline.crossbar import kernels as K
from pipeline.rng import key4
from pipeline.devices import law

SIZES = [(64, 32), (256, 256), (784, 256), (1024, 1024)]
AIHWKIT_TILE_STEP = 2.0e7  # device-updates/s, aihwkit 1.2.0, 256×256 pulsed SoftBounds tile, 2 threads (issue 4)
AIHWKIT_UPDATE = 65536 / 2.5e-3  # its update alone: 2.5 ms for 65,536 devices
OUT = Path(__file__).resolve().parent / "results" / "kernels.json"


def bench_array(rows: int, cols: int, *, mapping: int = K.MAP_REFERENCE, parallel_min: int = 1, c2c: float = 0.3,
                read_noise: float = 0.01, seed: int = 0):
    """A one-layer soft-bounds array of ``rows × cols`` devices (``cols`` counts the bias column)."""
    rng = np.random.default_rng(seed)
    P = 2 if mapping == K.MAP_DIFFERENTIAL else 1
    N = rows * cols

    def spread(mean):
        return np.ascontiguousarray(mean * (1.0 + 0.1 * rng.standard_normal((P, N))))

    g_min, g_max = spread(3e-4), spread(1e-3)
    g_max = np.maximum(g_max, g_min * 1.5)
    tabs = law.empty_tables()
    dev = K.Devices(g_min, g_max, spread(1.4e-5), spread(1e-5), np.zeros((P, N)), np.zeros((P, N)),
                    np.zeros((P, N), np.uint8), np.zeros((P, N), np.int64), *tabs,
                    np.array([0, N], np.int64), np.array([rows], np.int64), np.array([cols], np.int64),
                    *K.tile(mapping, P, 6.5e-4))
    g = np.ascontiguousarray(g_min + rng.uniform(0.3, 0.7, (P, N)) * (g_max - g_min))
    g_scale = 7e-4
    ph = K.Physics(family=law.SOFT_BOUNDS, mapping=mapping, g_scale=g_scale, g_ref=6.5e-4, c2c=c2c,
                   read_noise=read_noise, w_max=1.0, adc_bits=0, adc_range=4.0, out_clip=0.0, drift=1.0,
                   drift_rest=0.5, encoding=K.ENC_NEAREST, n_max=31, threshold=0.5, policy=K.POL_POTENTIATE,
                   dw_pot=1e-2, dw_dep=1e-2, parallel_min=parallel_min)
    return g, dev, ph


def one_pulse_inputs(rows, cols, ph, seed=1):
    """d, a, lr with |lr·d_i·a_j| / Δw ∈ [0.6, 1.4]: exactly one pulse per device, random polarity."""
    rng = np.random.default_rng(seed)
    d = rng.choice([-1.0, 1.0], rows)
    a = rng.uniform(0.6, 1.4, cols) * ph.dw_pot
    return d, a, 1.0


def _times(fn, repeats: int, inner: int) -> list[float]:
    """Seconds per call of ``fn(step)``: ``repeats`` timings of ``inner`` calls, after a warm-up."""
    fn(0)
    ts = []
    for r in range(repeats):
        t0 = time.perf_counter()
        for k in range(inner):
            fn(1 + r * inner + k)
        ts.append((time.perf_counter() - t0) / inner)
    return ts


def time_kernels(rows, cols, threads, repeats, budget_s=0.05):
    """{kernel: (median, min) seconds per call} and the pulses per device of one update step."""
    g, dev, ph = bench_array(rows, cols)
    d, a, lr = one_pulse_inputs(rows, cols, ph)
    x = np.random.default_rng(2).uniform(0, 1, cols)
    y = np.zeros(rows)
    xt = np.zeros(cols)
    cu = np.zeros(g.shape, np.int64)
    cd = np.zeros(g.shape, np.int64)
    if threads == 1:
        upd, fwd, tr = K.update_layer_serial, K.read_forward, K.read_transposed
    else:
        upd, fwd, tr = K.update_layer_parallel, K.read_forward_parallel, K.read_transposed_parallel
    fns = {
        "update": lambda s: upd(g, dev, ph, 0, d, a, lr, 7, s, cu, cd),
        "forward": lambda s: fwd(g, dev, ph, 0, x, y, np.uint64(key4(0, 1000, s, 0)), True),
        "transposed": lambda s: tr(g, dev, ph, 0, d, xt, np.uint64(key4(0, 1000, s, 0)), True),
    }
    up, dn = fns["update"](0)
    pulses = (up + dn) / (rows * cols)
    out = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        fn(0)
        once = max(time.perf_counter() - t0, 1e-7)
        ts = _times(fn, repeats, max(1, int(budget_s / repeats / once)))
        out[name] = (float(np.median(ts)), float(np.min(ts)))
    return out, pulses


def stream_bandwidth(n_bytes=256 * 2**20, repeats=7) -> float:
    """Copy bandwidth (bytes read + written per second) of a large NumPy array copy."""
    src = np.ones(n_bytes // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        ts.append(time.perf_counter() - t0)
    return 2 * n_bytes / min(ts)


# bytes moved per device by one update (soft-bounds, reference mapping, one pulse):
# g read+write 16, g_min g_max 16, dg of the polarity 8, stuck 1, one counter read+write 16
UPDATE_BYTES = 57
READ_BYTES = 8


def main(quick: bool = False) -> dict:
    sizes = SIZES[:2] if quick else SIZES
    repeats = 5 if quick else 15
    # 1 thread: the serial kernels; 2 threads: the prange kernels on a pool of 2. The pool size is
    # set once: with numba's OpenMP layer, lowering it to 1 and raising it again makes every later
    # parallel call take ~20 ms (seen with numba 0.61 / libgomp).
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    load0 = list(os.getloadavg())
    rows_out = []
    for rows, cols in sizes:
        for threads in (1, 2):
            t, pulses = time_kernels(rows, cols, threads, repeats, budget_s=0.1 if quick else 0.4)
            n = rows * cols
            rec = {"rows": rows, "cols": cols, "threads": threads, "pulses_per_device_per_step": pulses}
            for k, (med, best) in t.items():
                rec.update({f"{k}_s": med, f"{k}_per_s": n / med, f"{k}_best_per_s": n / best})
            rows_out.append(rec)
            print(f"{rows:5d}x{cols:<5d} {threads} thr  update {rec['update_per_s']:.3e} (best {rec['update_best_per_s']:.3e})  "
                  f"forward {rec['forward_per_s']:.3e}  transposed {rec['transposed_per_s']:.3e} device-ops/s", flush=True)
    bw = stream_bandwidth()
    big = [r for r in rows_out if (r["rows"], r["cols"]) == sizes[-1] and r["threads"] == 2][0]
    res = {
        "command": "python -m benchmarks.kernels" + (" --quick" if quick else ""),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "numba": numba.__version__, "numpy": np.__version__},
        "model": "soft-bounds, reference mapping, d2d 10 %, c2c 0.3, nearest encoding, 1 pulse/device/step; reads with read noise",
        "load_average_before": load0,
        "load_average_after": list(os.getloadavg()),
        "results": rows_out,
        "stream_copy_bytes_per_s": bw,
        "largest": {"size": list(sizes[-1]), "update_bytes_per_device": UPDATE_BYTES,
                    "update_bandwidth_fraction": big["update_per_s"] * UPDATE_BYTES / bw,
                    "forward_bandwidth_fraction": big["forward_per_s"] * READ_BYTES / bw},
        "aihwkit_1_2_0_reference": {"tile_step_per_s": AIHWKIT_TILE_STEP, "update_only_per_s": AIHWKIT_UPDATE},
    }
    print(f"stream copy bandwidth {bw / 1e9:.1f} GB/s; update at {sizes[-1]} uses "
          f"{res['largest']['update_bandwidth_fraction']:.1%} of it")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=1) + "\n")
    print(markdown_table(res))
    return res


def markdown_table(res: dict) -> str:
    """The results as the Markdown table of ``benchmarks/RESULTS.md`` (device-ops/s, median; best)."""
    lines = ["| size (rows×cols) | threads | update | update, best | forward read | transposed read |",
             "|---|---|---|---|---|---|"]
    for r in res["results"]:
        lines.append(f"| {r['rows']}×{r['cols']} | {r['threads']} | {r['update_per_s']:.2e} | {r['update_best_per_s']:.2e} "
                     f"| {r['forward_per_s']:.2e} | {r['transposed_per_s']:.2e} |")
    return "\n".join(lines)


def update_only(repeats: int = 40) -> None:
    """The pulsed update alone, 1 and 2 threads, at the three large sizes, plus the copy bandwidth
    (a short run that fits in a quiet window of a shared machine)."""
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    for rows, cols in SIZES[1:]:
        g, dev, ph = bench_array(rows, cols)
        d, a, lr = one_pulse_inputs(rows, cols, ph)
        cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
        for threads, kern in ((1, K.update_layer_serial), (2, K.update_layer_parallel)):
            ts = _times(lambda s: kern(g, dev, ph, 0, d, a, lr, 7, s, cu, cd), repeats, 1)
            print(f"{rows:5d}x{cols:<5d} {threads} thr  update median {rows * cols / np.median(ts):.3e}  "
                  f"best {rows * cols / min(ts):.3e} device-updates/s", flush=True)
    print(f"stream copy bandwidth {stream_bandwidth() / 1e9:.1f} GB/s; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two sizes, fewer repeats")
    ap.add_argument("--update-only", action="store_true", help="only the pulsed update (40 repeats) and the bandwidth")
    args = ap.parse_args()
    update_only() if args.update_only else main(quick=args.quick)
