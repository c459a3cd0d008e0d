"""MNIST-scale training throughput (issue 12, item 6): batch 1, one thread (``--threads N``: the
threaded twin of the loop), full device model.

``python -m benchmarks.mnist [--quick] [--samples N]`` trains 784-256-128-10 and 784-256-10
(sigmoid hidden, softmax output, cross-entropy, lr 0.01) on the first ``N`` real MNIST training
images (the IDX files of ``../shared/data/mnist`` or ``data/mnist``, pixels ÷ 255), with the
fitted default device (``results/device/device.yaml``: power-law steps, c2c noise on every
pulse, device-to-device spread, differential pairs, alternating policy, stochastic rounding), for
progressive, backprop (devices), backprop-float and progressive-float; one timing = one jitted
``run_epoch`` over the ``N`` samples, median of repeats after a warm-up. In the same run it times a
NumPy float64 online-SGD loop of the same network (``@``, ``np.outer``, one sample at a time) as
the yardstick, and the 784×256 pulsed update alone at a stated number of pulses per device.
Results go to ``benchmarks/results/mnist.json``.

``digest(root)`` (used by the fast-path check) trains a few hundred samples and hashes every
conductance, weight, counter and ledger value, so two checkouts can be compared to the bit.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import pipeline  # noqa: F401  (first: sets the numba cache folder before numba is imported)
import numba  # noqa: E402

from pipeline import config
from pipeline.crossbar import arrays as arr
from pipeline.crossbar import kernels as K
from pipeline.devices import spec as dspec
from pipeline.training import loop, run

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "mnist.json"
ALGORITHMS = ("progressive", "backprop", "backprop-float", "progressive-float")
NETWORKS = ((784, 256, 128, 10), (784, 256, 10))
LR = 0.01
THREADS = [1]  # numba threads of the training timings (set_threads)


def set_threads(n: int) -> None:
    """Time training with ``n`` numba threads: the threaded twin of the loop for n > 1."""
    THREADS[0] = int(n)
    numba.set_num_threads(int(n))


def mnist_dir() -> Path:
    for d in (ROOT / "data" / "mnist", ROOT.parent / "shared" / "data" / "mnist", Path("/work/shared/data/mnist")):
        if (d / "train-images-idx3-ubyte.gz").exists():
            return d
    raise FileNotFoundError("MNIST IDX files not found (data/mnist or ../shared/data/mnist)")


def _idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    nd = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(nd)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(shape)


def load_mnist(n: int) -> tuple[np.ndarray, np.ndarray]:
    """First ``n`` training images (float64, ÷255, flat 784, C order) and labels."""
    d = mnist_dir()
    x = _idx(d / "train-images-idx3-ubyte.gz")[:n].reshape(-1, 784).astype(np.float64) / 255.0
    y = _idx(d / "train-labels-idx1-ubyte.gz")[:n].astype(np.int64)
    return np.ascontiguousarray(x), y


def device_spec() -> dspec.DeviceSpec:
    for f in (ROOT / "results" / "device" / "device.yaml", Path("/work/main/results/device/device.yaml")):
        if f.exists():
            return dspec.read(f)
    raise FileNotFoundError("results/device/device.yaml (run: python -m pipeline device fit)")


SPARSE = "stochastic-sparse"  # array.encoding of the "-sparse" timings (same rounding probabilities, other draws)
SPARSE_ALGORITHMS = ("progressive", "backprop")  # timed with SPARSE, keys "<alg>-sparse"
MP = "mixed-precision"  # train.scheme of the "<alg>+mp-sparse" timings (with SPARSE; readback subtraction)


def params(hidden, encoding=None, scheme=None):
    # train.parallel_min stays at its default: the threaded twin (--threads) dispatches on it
    changes = {"network.hidden": list(hidden), "network.output": "softmax", "network.loss": "ce", "train.lr": [LR]}
    if encoding is not None:
        changes["array.encoding"] = encoding
    if scheme is not None:
        changes["train.scheme"] = scheme
    return config.with_changes(config.load(ROOT / "params.yaml"), changes)


class Bench:
    """One network's arrays and configurations, trained epoch by epoch from the same start."""

    def __init__(self, sizes, x, y, encoding=None, scheme=None):
        self.sizes = list(sizes)
        self.p = params(sizes[1:-1], encoding, scheme)
        self.net = arr.build(self.p, device_spec(), self.sizes)
        self.x, self.T = x, run.targets(y, 10, "softmax")
        self.n = len(y)

    def state(self):
        """(g, W, pulse counters up and down, χ): χ is the mixed-precision accumulator (zeros;
        the direct scheme never reads it)."""
        g, W = self.net.g0.copy(), self.net.weights0().copy()
        return g, W, np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64), np.zeros(g.shape[1])

    def epoch(self, alg, st, ep, ledger):
        """One epoch through the cached serial loop, or its threaded twin when ``set_threads`` asked
        for more than one thread (the same bits)."""
        g, W, cu, cd, chi = st
        cfg = run.make_config(self.p, alg, 0)
        lrs = np.asarray(config.layer_lrs(self.p.train, self.sizes), np.float64)
        ph = self.net.ph
        if THREADS[0] > 1:
            from pipeline.training import threaded  # (not imported otherwise: benchmarks.ab times older checkouts too)

            fn = threaded.run_epoch()
        else:
            fn = loop.run_epoch
        return fn(g, W, self.net.dev, ph, cfg, lrs, self.x, self.T, run.epoch_order(0, ep, self.n),
                              (ep - 1) * self.n, 1 << 60, cu, cd, ledger, np.zeros((1, 1, 1)), np.zeros(1, np.int64), 0.0,
                  chi if self.p.train.scheme == MP else None)


def digest(n: int = 300) -> dict:
    """sha256 of everything a short training changes, per network and algorithm."""
    x, y = load_mnist(n)
    out = {}
    for sizes in NETWORKS:
        b = Bench(sizes, x, y)
        for alg in ALGORITHMS:
            st = b.state()
            led = np.zeros(loop.N_LEDGER, np.int64)
            res = [b.epoch(alg, st, ep, led) for ep in (1, 2)]
            h = hashlib.sha256(repr(res).encode() + led.tobytes())
            for v in st[:4]:  # g, W, counters (χ stays zero under the direct scheme)
                h.update(v.tobytes())
            out[f"{'-'.join(map(str, sizes))} {alg}"] = h.hexdigest()[:16]
    return out


def numpy_sgd(x, T, Ws, lr, order) -> float:
    """Yardstick: float64 online SGD of the same network in NumPy (sigmoid hidden, softmax/CE)."""
    t0 = time.perf_counter()
    L = len(Ws)
    for i in order:
        acts = [np.append(x[i], 1.0)]
        for l, W in enumerate(Ws):
            z = W @ acts[-1]
            if l < L - 1:
                acts.append(np.append(1.0 / (1.0 + np.exp(-z)), 1.0))
            else:
                e = np.exp(z - z.max())
                out = e / e.sum()
        d = out - T[i]
        for l in range(L - 1, -1, -1):
            dn = (Ws[l][:, :-1].T @ d) * acts[l][:-1] * (1.0 - acts[l][:-1]) if l > 0 else None
            Ws[l] -= lr * np.outer(d, acts[l])
            d = dn
    return time.perf_counter() - t0


def update_784x256(pulses_per_device: float, repeats: int) -> dict:
    """The 784×256 layer update alone (256 rows × 785 cols, the fitted device, stochastic
    rounding): requests of ``pulses_per_device`` nominal steps on every cross-point (dense
    inputs, random signs); device-updates per second on one thread."""
    b = Bench((784, 256, 10), np.zeros((1, 784)), np.zeros(1, np.int64))
    net = b.net
    g, _, cu, cd, _ = b.state()
    rng = np.random.default_rng(0)
    r, c = int(net.dev.rows[0]), int(net.dev.cols[0])
    # |ΔW| = lr·|d|·|a| = pulses·dw with lr = 1, |a| = 1: every device gets exactly `pulses` nominal steps
    a = rng.choice([-1.0, 1.0], c)
    d = rng.choice([-1.0, 1.0], r) * pulses_per_device * min(net.ph.dw_pot, net.ph.dw_dep)
    times, tot = [], 0
    for k in range(repeats + 1):
        t0 = time.perf_counter()
        up, dn = K.update_layer_serial(g, net.dev, net.ph, 0, d, a, 1.0, 0, k, cu, cd)
        dt = time.perf_counter() - t0
        if k:
            times.append(dt)
            tot += up + dn
    med = float(np.median(times))
    return {"rows": r, "cols": c, "requested_pulses_per_device": pulses_per_device,
            "pulses_per_device": tot / repeats / (r * c), "median_s": med, "device_updates_per_s": r * c / med}


def throughput(b: Bench, algorithms, repeats: int) -> dict:
    """samples/s (median of ``repeats`` epochs after a warm-up epoch) and pulses per sample."""
    res = {}
    for alg in algorithms:
        st = b.state()
        times = []
        for ep in range(1, repeats + 2):
            led = np.zeros(loop.N_LEDGER, np.int64)
            t0 = time.perf_counter()
            b.epoch(alg, st, ep, led)
            dt = time.perf_counter() - t0
            if ep > 1:
                times.append(dt)
        med = float(np.median(times))
        res[alg] = {"samples_per_s": b.n / med, "pulses_per_sample": int(led[loop.L_PULSES_UP] + led[loop.L_PULSES_DOWN]) / b.n,
                    "verify_reads_per_sample": int(led[loop.L_VERIFY_READS]) / b.n}
    return res


def sparse_throughput(bs: Bench, repeats: int) -> dict:
    """:func:`throughput` of :data:`SPARSE_ALGORITHMS` on ``bs``, a :class:`Bench` built with
    ``encoding=SPARSE`` (keys ``<alg>-sparse``)."""
    assert bs.p.array.encoding == SPARSE, bs.p.array.encoding
    return {f"{alg}-sparse": r for alg, r in throughput(bs, SPARSE_ALGORITHMS, repeats).items()}


def mp_throughput(sizes, x, y, repeats: int) -> dict:
    """:func:`throughput` of :data:`SPARSE_ALGORITHMS` with the mixed-precision scheme on a
    stochastic-sparse array (keys ``<alg>+mp-sparse``; verify reads per sample too)."""
    b = Bench(sizes, x, y, SPARSE, MP)
    return {f"{alg}+mp-sparse": r for alg, r in throughput(b, SPARSE_ALGORITHMS, repeats).items()}


def main(quick: bool = False, samples: int = 2000, threads: int = 1) -> dict:
    set_threads(threads)
    n = 500 if quick else samples
    repeats = 2 if quick else 3
    x, y = load_mnist(n)
    results = {}
    for sizes in NETWORKS:
        b = Bench(sizes, x, y)
        name = "-".join(map(str, sizes))
        res = throughput(b, ALGORITHMS, repeats) | sparse_throughput(Bench(sizes, x, y, SPARSE), repeats)
        rng = np.random.default_rng(0)
        Ws = [rng.normal(0, 1 / np.sqrt(c), (r, c + 1)) for c, r in zip(sizes[:-1], sizes[1:])]
        np_t = [numpy_sgd(x, b.T, Ws, LR, run.epoch_order(0, k, n)) for k in range(repeats)]
        res["numpy-float64-sgd"] = {"samples_per_s": n / float(np.median(np_t))}
        res |= mp_throughput(sizes, x, y, repeats)
        results[name] = res
    upd = {str(q): update_784x256(q, 5 if quick else 15) for q in (1.0, 3.95)}
    summary = {
        "what": "training samples/s, batch 1, one thread, first N MNIST training images, sigmoid hidden, "
                "softmax/CE, lr 0.01; one timing = one run_epoch, median after a warm-up",
        "device": "fitted default (results/device/device.yaml): c2c per pulse, d2d, differential, alternate, stochastic "
                  "rounding (<alg>-sparse: array.encoding stochastic-sparse)",
        "samples": n, "repeats": repeats, "threads": threads,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "load_avg_start": os.getloadavg()},
        "numba": numba.__version__, "numpy": np.__version__,
        "results": results, "update_784x256": upd,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(summary, indent=2) + "\n")
    for name, res in results.items():
        print(name)
        for alg, r in res.items():
            print(f"  {alg:22s} {r['samples_per_s']:10.0f} samples/s  {r.get('pulses_per_sample', float('nan')):9.1f} pulses/sample")
        for alg in ("progressive", "progressive-sparse"):
            print(f"  {alg} / numpy-sgd {res[alg]['samples_per_s'] / res['numpy-float64-sgd']['samples_per_s']:.2f}"
                  f"   {alg} / backprop-float {res[alg]['samples_per_s'] / res['backprop-float']['samples_per_s']:.2f}")
    for q, u in upd.items():
        print(f"784x256 update, {u['pulses_per_device']:.2f} pulses/device: {u['device_updates_per_s']:.3e} device-updates/s")
    return summary


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--ab", action="store_true", help="one A/B round (see benchmarks.ab)")
    ap.add_argument("--digest", action="store_true", help="print the bit-identity digest of a short training")
    ap.add_argument("--threads", type=int, default=1, help="numba threads of the training timings (> 1: the "
                    "threaded twin of the loop)")
    a = ap.parse_args()
    if a.ab:  # one A/B round of benchmarks.ab: 784-256-128-10 throughput and the update, as JSON
        set_threads(a.threads)
        x, y = load_mnist(a.samples)
        out = {k: v["samples_per_s"] for k, v in throughput(Bench(NETWORKS[0], x, y), ALGORITHMS, 1).items()}
        out |= {k: v["samples_per_s"] for k, v in mp_throughput(NETWORKS[0], x, y, 1).items()}
        out["update_784x256_3.95"] = update_784x256(3.95, 5)["device_updates_per_s"]
        print("AB " + json.dumps(out))
    elif a.digest:
        print(pipeline.__file__)
        print(json.dumps(digest(a.samples), indent=1))
    else:
        main(quick=a.quick, samples=a.samples, threads=a.threads)
