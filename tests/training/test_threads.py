"""Bit-identical conductances for any thread count (subprocesses with NUMBA_NUM_THREADS=1 and 2,
threaded kernels forced with parallel_min=1), for the threaded twin of the training loop, and when
an update sequence is split at any step."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from pipeline.crossbar import kernels as K
from pipeline.crossbar import reference as R
from pipeline.devices import law

ROOT = Path(__file__).resolve().parents[2]
STEPS = 6
SCRIPT = """
import sys, numba
sys.path.insert(0, {root!r})
from tests.training.test_threads import digest, run
print(numba.get_num_threads(), digest(run(0, {steps})))
"""


def arrays(parallel_min=1):
    """Two small networks (soft-bounds, table), threaded kernels (``parallel_min=1``), noisy reads,
    stochastic rounding."""
    out = []
    for k, family in enumerate((law.SOFT_BOUNDS, law.TABLE)):
        g, dev, ph = R.random_array(np.random.default_rng(k), (40, 33, 5), family=family, parallel_min=parallel_min,
                                    read_noise=0.02, encoding=K.ENC_STOCHASTIC)
        out.append((dev, ph, [g, np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64), b""]))
    return out


def run(start, stop, states=None, parallel_min=1):
    """Steps ``start … stop-1`` (a forward and a transposed read, then both layers written) on
    each network; ``states`` ([g, cnt_up, cnt_dn, read bytes] per network) continues a sequence."""
    nets = arrays(parallel_min)
    for (dev, ph, st), given in zip(nets, states or [None] * len(nets)):
        if given is not None:
            st[:] = [np.copy(v) for v in given[:3]] + [given[3]]
        g, cu, cd = st[:3]
        y, x = np.empty(33), np.empty(41)
        for s in range(start, stop):
            srng = np.random.default_rng(1000 + s)
            K.read_fwd(g, dev, ph, 0, srng.uniform(0, 1, 41), y, np.uint64(s), True)
            K.read_tr(g, dev, ph, 0, y, x, np.uint64(s), True)
            for layer in (0, 1):
                d = srng.normal(size=int(dev.rows[layer]))
                a = srng.normal(size=int(dev.cols[layer])) * 0.05
                K.update_layer(g, dev, ph, layer, d, a, 0.5, 3, s, cu, cd)
            st[3] += y.tobytes() + x.tobytes()
    return [st for _, _, st in nets]


def digest(states):
    h = hashlib.sha256()
    for g, cu, cd, reads in states:
        h.update(g.tobytes() + cu.tobytes() + cd.tobytes() + reads)
    return h.hexdigest()


def test_thread_count_does_not_change_results():
    digests = []
    for n in (1, 2):
        env = dict(os.environ, NUMBA_NUM_THREADS=str(n))
        res = subprocess.run([sys.executable, "-c", SCRIPT.format(root=str(ROOT), steps=STEPS)], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        threads, dig = res.stdout.split()
        assert threads == str(n)
        digests.append(dig)
    assert digests[0] == digests[1] == digest(run(0, STEPS)) == digest(run(0, STEPS, parallel_min=1 << 40))


def test_split_at_any_step_is_identical():
    full = digest(run(0, STEPS))
    for cut in range(STEPS + 1):
        first = run(0, cut)
        saved = [[np.array(v, copy=True) for v in st[:3]] + [st[3]] for st in first]  # what a checkpoint holds
        assert digest(run(cut, STEPS, saved)) == full, cut


TWIN_SCRIPT = """
import sys, numba
sys.path.insert(0, {root!r})
from tests.training.test_threads import loop_digest
print(numba.get_num_threads(), loop_digest(True))
"""


def loop_digest(twin: bool) -> str:
    """Train 24 samples of a small network (power-law devices, noisy reads and stochastic rounding, or
    noise-free reads and stochastic-sparse rounding; every array threaded: ``parallel_min=1``) with
    progressive and backprop through the cached loop
    or through its threaded twin; hash everything the run changes."""
    from pipeline.training import loop, threaded

    fn = threaded.run_epoch() if twin else loop.run_epoch
    h = hashlib.sha256()
    # noisy reads with stochastic rounding; then noise-free reads (progressive's later passes reuse
    # the lower layers) with stochastic-sparse rounding at a rate whose rows are sampled by row
    for alg, enc, noise, lr in (("progressive", K.ENC_STOCHASTIC, 0.02, 3.0), ("backprop", K.ENC_STOCHASTIC, 0.02, 3.0),
                                ("progressive-held", K.ENC_STOCHASTIC, 0.02, 3.0),
                                ("progressive", K.ENC_SPARSE, 0.0, 0.01), ("backprop", K.ENC_SPARSE, 0.0, 0.01)):
        rng = np.random.default_rng(8)
        g, dev, ph = R.random_array(rng, (40, 33, 5), family=law.POWER, parallel_min=1, read_noise=noise,
                                    encoding=enc, c2c=0.3)
        cfg = loop.Config(loop.ALGORITHM_CODES[alg], loop.SIGMOID, loop.SIGMOID, loop.LOSS_MSE, loop.DERIV_EXACT, 3)
        X = rng.random((12, 40)) * (rng.random((12, 40)) < 0.4)
        T = np.eye(5)[rng.integers(0, 5, 12)]
        cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
        led = np.zeros(loop.N_LEDGER, np.int64)
        snaps, steps = np.zeros((4, 2, g.shape[1])), np.zeros(4, np.int64)
        res = fn(g, np.zeros(g.shape[1]), dev, ph, cfg, np.array([lr, lr]), X, T,
                 np.arange(24, dtype=np.int64) % 12, 0, 7, cu, cd, led, snaps, steps)
        assert led[loop.L_PULSES_UP] + led[loop.L_PULSES_DOWN] > (100 if enc == K.ENC_STOCHASTIC else 20)
        h.update(repr(res).encode() + g.tobytes() + cu.tobytes() + cd.tobytes() + led.tobytes() + snaps.tobytes())
    return h.hexdigest()


def test_threaded_training_loop_is_bit_identical_to_the_cached_serial_loop():
    """The uncached twin of the epoch loop (train --threads N), run with 2 numba threads and every
    array on the threaded kernels, against the cached serial loop of this process."""
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    res = subprocess.run([sys.executable, "-c", TWIN_SCRIPT.format(root=str(ROOT))], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    threads, dig = res.stdout.split()
    assert threads == "2" and dig == loop_digest(False)
