"""The project against IBM aihwkit 1.2.0, side by side in one run (issue 12, item 6).

``python -m benchmarks.aihwkit [--quick] [--samples N] [--rounds R] [--threads 2,1] [--project-threads 1,2]
[--aihwkit-python PATH]`` (run with ``NUMBA_NUM_THREADS`` = the largest project thread count) trains 784-256-128-10 and 784-256-10
(sigmoid hidden, softmax output + cross-entropy, lr ``benchmarks.mnist.LR``, batch 1) on the first
``N`` real MNIST training images (÷255) with

- the project (one thread, the fitted default device, :mod:`benchmarks.mnist`'s ``Bench`` and
  ``throughput``: a warm-up epoch, then one timed jitted ``run_epoch``): ``progressive``,
  ``backprop`` (on the devices) and ``backprop-float``, and ``progressive-sparse`` /
  ``backprop-sparse``: the same with ``array.encoding: stochastic-sparse`` (the same rounding
  probabilities, drawn row by row);
- aihwkit (``benchmarks/aihwkit_worker.py`` in aihwkit's own venv, one persistent process per
  thread count, ``torch.set_num_threads`` and OpenMP/OpenBLAS pools at that count): AnalogLinear
  layers, ``SingleRPUConfig(device=SoftBoundsDevice())`` with default IO, update and mapping
  parameters, AnalogSGD; and torch fp32 ``nn.Linear`` SGD of the same network as the float
  yardstick — also a warm-up epoch, then one timed epoch over the same sample order.

The timing windows interleave (per round and network: project, then each aihwkit process), so
machine load hits both alike; ``R`` rounds, medians. Then the 784×256 layer update alone at
equal pulse work: the project's ``update_784x256`` at 1 and 3.95 requested pulses per device, and
aihwkit's tile update with dense ±1 inputs scaled so that it expects exactly the pulses per
device the project measured. Pulse work in training: the project's ledger (pulses per sample) and
aihwkit's expected coincidences per sample (every tile update's inputs recorded in an untimed
epoch, aihwkit's update-management formulas; checked against aihwkit itself on a noise-free
ConstantStep tile). Writes ``benchmarks/results/aihwkit.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from itertools import product
from pathlib import Path

import numpy as np

from benchmarks import mnist as M
from pipeline.training import run

import numba  # noqa: E402  (after the project: it sets the numba cache folder)

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "aihwkit.json"
WORKER = HERE / "aihwkit_worker.py"
DENSE_ALGS = ("progressive", "backprop", "backprop-float")  # with the array's encoding (stochastic rounding)
PROJECT_ALGS = DENSE_ALGS + tuple(f"{a}-sparse" for a in M.SPARSE_ALGORITHMS)
PROGRESSIVE = ("progressive", "progressive-sparse")  # the labels every ratio is given for
UPDATE_REQUESTS = (1.0, 3.95)  # pulses per device requested of the project's 784×256 update


class Worker:
    """One persistent aihwkit process (JSON lines on stdin/stdout, answers prefixed ``@@``)."""

    def __init__(self, python: str, threads: int, log: Path):
        self.threads, self.log = threads, log
        self.err = open(log, "w")
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
                   MKL_NUM_THREADS=str(threads), PYTHONPATH="")
        self.p = subprocess.Popen([python, str(WORKER), "--threads", str(threads)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self.err, text=True, env=env, cwd=str(log.parent))

    def ask(self, **cmd) -> dict:
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        for line in self.p.stdout:
            if line.startswith("@@ "):
                return json.loads(line[3:])
        self.err.flush()
        tail = self.log.read_text()[-2000:]
        raise RuntimeError(f"aihwkit worker ({self.threads} threads) ended during {cmd['cmd']!r}:\n{tail}")

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.p.stdin.flush()
                self.p.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
        self.err.close()


def median(v) -> float:
    return float(np.median(np.asarray(v, np.float64)))


def summarise(rounds: list[dict], threads: list[int], project_threads=(1,)) -> dict:
    """Medians over rounds of every samples/s and device-updates/s, and the ratios of medians
    (``project_threads`` > 1: the project's threaded twin of the loop, keys ``<alg> <n>t``)."""
    nets = list(rounds[0]["train"])
    more = [n for n in project_threads if n > 1]
    med: dict = {"train": {}, "update_784x256": {}}
    for net in nets:
        m = {alg: median([r["train"][net]["project"][alg]["samples_per_s"] for r in rounds]) for alg in PROJECT_ALGS}
        for n in more:
            for alg in PROJECT_ALGS:
                m[f"{alg} {n}t"] = median([r["train"][net][f"project {n}t"][alg]["samples_per_s"] for r in rounds])
        for t in threads:
            for v in ("aihwkit-softbounds", "torch-fp32-sgd"):
                m[f"{v} {t}t"] = median([r["train"][net][f"aihwkit {t}t"][v]["samples_per_s"] for r in rounds])
        med["train"][net] = m
    for q in rounds[0]["update_784x256"]["project"]:
        m = {"project 1t": median([r["update_784x256"]["project"][q]["device_updates_per_s"] for r in rounds])}
        for t in threads:
            m[f"aihwkit {t}t"] = median([r["update_784x256"][f"aihwkit {t}t"][q]["device_updates_per_s"] for r in rounds])
        med["update_784x256"][q] = m
    ratios: dict = {"train": {}, "update_784x256": {}}
    for net, m in med["train"].items():
        r = {}
        for t in threads:
            a, f = m[f"aihwkit-softbounds {t}t"], m[f"torch-fp32-sgd {t}t"]
            for p in PROGRESSIVE:
                r[f"{p} / aihwkit {t}t"] = m[p] / a
            r[f"backprop / aihwkit {t}t"] = m["backprop"] / a
            r[f"backprop-float / torch-fp32 {t}t"] = m["backprop-float"] / f
            r[f"aihwkit / torch-fp32 {t}t"] = a / f
            for n, p in product(more, PROGRESSIVE):
                r[f"{p} {n}t / aihwkit {t}t"] = m[f"{p} {n}t"] / a
        for p in PROGRESSIVE:
            r[f"{p} / backprop-float"] = m[p] / m["backprop-float"]
        for n, p in product(more, PROGRESSIVE):
            r[f"{p} {n}t / {p} 1t"] = m[f"{p} {n}t"] / m[p]
            # equal threads on both sides: the twin's float path at n threads
            r[f"{p} {n}t / backprop-float {n}t"] = m[f"{p} {n}t"] / m[f"backprop-float {n}t"]
        ratios["train"][net] = r
    for q, m in med["update_784x256"].items():
        ratios["update_784x256"][q] = {f"project 1t / aihwkit {t}t": m["project 1t"] / m[f"aihwkit {t}t"] for t in threads}
    return {"median": med, "ratios": ratios}


def project(b, bs) -> dict:
    """The project's timings of one network: :data:`DENSE_ALGS` on ``b`` (the array's encoding) and
    the ``-sparse`` labels on ``bs`` (the same network built with stochastic-sparse)."""
    return M.throughput(b, DENSE_ALGS, 1) | M.sparse_throughput(bs, 1)


def run_bench(samples: int, rounds: int, threads: list[int], python: str, update_repeats: int,
              project_threads=(1,)) -> dict:
    M.set_threads(1)
    load_start = os.getloadavg()
    x, y = M.load_mnist(samples)
    orders = [run.epoch_order(0, ep, samples).tolist() for ep in (1, 2, 3)]  # warm-up, timed, counted (aihwkit)
    benches = {"-".join(map(str, s)): M.Bench(s, x, y) for s in M.NETWORKS}
    sparse = {k: M.Bench(b.sizes, x, y, M.SPARSE) for k, b in benches.items()}  # built once, timed every round
    cross_points = {k: int(sum(b.net.dev.rows * b.net.dev.cols)) for k, b in benches.items()}
    tmp = Path(tempfile.mkdtemp(prefix="aihwkit-bench-"))
    np.savez(tmp / "mnist.npz", x=x.astype(np.float32), y=y)
    workers = {t: Worker(python, t, tmp / f"worker-{t}t.log") for t in threads}
    try:
        info = {f"{t}t": w.ask(cmd="info") for t, w in workers.items()}
        for w in workers.values():
            w.ask(cmd="data", path=str(tmp / "mnist.npz"))
        check = workers[threads[0]].ask(cmd="check")
        print(f"coincidence formula vs aihwkit (noise-free ConstantStep tile, {check['updates']} MNIST updates): "
              f"fired {check['fired']:.0f}, expected {check['expected']:.0f} (ratio {check['fired_over_expected']:.4f} "
              f"± {check['standard_error']:.4f})", flush=True)
        out_rounds, q_aihwkit = [], None
        for r in range(rounds):
            rr: dict = {"load_avg_start": os.getloadavg(), "train": {}, "update_784x256": {}}
            for net, b in benches.items():
                cell = {"project": project(b, sparse[net])}
                for n in project_threads:
                    if n > 1:  # the threaded twin of the loop (same bits), then back to one thread
                        M.set_threads(n)
                        cell[f"project {n}t"] = project(b, sparse[net])
                        M.set_threads(1)
                for t, w in workers.items():
                    cell[f"aihwkit {t}t"] = w.ask(cmd="train", sizes=b.sizes, lr=M.LR, orders=orders,
                                                      count=(r == 0 and t == threads[0]))
                rr["train"][net] = cell
                print(f"round {r} {net}: " + ", ".join(
                    [f"{a} {cell['project'][a]['samples_per_s']:.0f}" for a in PROJECT_ALGS]
                    + [f"{k} {v['aihwkit-softbounds']['samples_per_s']:.0f} (torch {v['torch-fp32-sgd']['samples_per_s']:.0f})"
                       for k, v in cell.items() if k.startswith("aihwkit")]
                    + [f"{a} {k[8:]} {v[a]['samples_per_s']:.0f}" for k, v in cell.items() if k.startswith("project ")
                       for a in PROJECT_ALGS]), flush=True)
            proj = {str(q): M.update_784x256(q, update_repeats) for q in UPDATE_REQUESTS}
            if q_aihwkit is None:  # aihwkit at the pulses per device the project fired (deterministic keys: every round alike)
                q_aihwkit = [proj[str(q)]["pulses_per_device"] for q in UPDATE_REQUESTS]
            upd = {"project": proj}
            for t, w in workers.items():
                a = w.ask(cmd="update", q=q_aihwkit, repeats=update_repeats)
                upd[f"aihwkit {t}t"] = {str(q): a[str(qa)] for q, qa in zip(UPDATE_REQUESTS, q_aihwkit)}
            rr["update_784x256"] = upd
            rr["load_avg_end"] = os.getloadavg()
            print(f"round {r} update 784x256: " + ", ".join(
                f"{q}: project {proj[str(q)]['device_updates_per_s']:.3g} at {proj[str(q)]['pulses_per_device']:.2f}/device"
                + "".join(f", {k} {v[str(q)]['device_updates_per_s']:.3g} at {v[str(q)]['coincidences_per_device']:.2f}"
                          for k, v in upd.items() if k != "project") for q in UPDATE_REQUESTS), flush=True)
            out_rounds.append(rr)
    finally:
        for w in workers.values():
            w.close()
        shutil.rmtree(tmp, ignore_errors=True)
    pulse_work = {}
    for net in benches:
        first = out_rounds[0]["train"][net]
        pw = {"project_cross_points": cross_points[net]}
        for alg in (a for a in PROJECT_ALGS if "float" not in a):
            p = first["project"][alg]["pulses_per_sample"]
            pw[f"project {alg} pulses_per_sample"] = p
            pw[f"project {alg} pulses_per_cross_point_per_sample"] = p / cross_points[net]
        a = first[f"aihwkit {threads[0]}t"]["aihwkit-softbounds"]["pulse_work"]
        pw |= {f"aihwkit {k}": v for k, v in a.items()}
        pw["aihwkit coincidences / project progressive pulses"] = a["coincidences_per_sample"] / pw["project progressive pulses_per_sample"]
        pulse_work[net] = pw
    s = summarise(out_rounds, threads, project_threads)
    return {
        "what": "training samples/s side by side in one run, batch 1, first N MNIST training images (/255), sigmoid hidden, "
                "softmax/CE, lr %g; project: one thread, fitted default device, warm-up epoch then one timed run_epoch; "
                "aihwkit 1.2.0: AnalogLinear + SingleRPUConfig(SoftBoundsDevice()) defaults, AnalogSGD, and torch fp32 "
                "nn.Linear SGD, warm-up epoch then one timed epoch, same sample order; rounds interleaved per network; "
                "medians over rounds" % M.LR,
        "pulse_work_note": "NOT equal in training: aihwkit fires stochastic bit lines for every device of every tile at every "
                           "update (update management, BL up to desired_bl); the project pulses only where stochastic rounding "
                           "of the requested step fires. Equal pulse work only in update_784x256 (aihwkit inputs scaled to the "
                           "pulses per device the project fired).",
        "samples": samples, "rounds": rounds, "project_threads": list(project_threads), "aihwkit_threads": threads,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "load_avg_start": load_start, "load_avg_end": os.getloadavg()},
        "project_versions": {"numba": numba.__version__, "numpy": np.__version__, "python": platform.python_version()},
        "aihwkit_info": info, "coincidence_check": check,
        "median": s["median"], "ratios": s["ratios"], "pulse_work": pulse_work,
        "aihwkit_update_coincidences_per_device": dict(zip(map(str, UPDATE_REQUESTS), q_aihwkit)),
        "rounds_raw": out_rounds,
    }


def table(res: dict) -> str:
    th = res["aihwkit_threads"]
    lines = [f"samples {res['samples']}, rounds {res['rounds']}, load average {res['machine']['load_avg_start'][0]:.2f} "
             f"-> {res['machine']['load_avg_end'][0]:.2f}", "",
             "| network | " + " | ".join(PROJECT_ALGS) + " | " + " | ".join(
                 f"aihwkit SoftBounds {t}t | torch fp32 {t}t" for t in th) + " |",
             "|---|" + "---:|" * (len(PROJECT_ALGS) + 2 * len(th))]
    for net, m in res["median"]["train"].items():
        lines.append(f"| {net} | " + " | ".join(f"{m[a]:,.0f}" for a in PROJECT_ALGS) + " | " + " | ".join(
            f"{m[f'aihwkit-softbounds {t}t']:,.0f} | {m[f'torch-fp32-sgd {t}t']:,.0f}" for t in th) + " |")
    lines.append("")
    for net, m in res["median"]["train"].items():
        extra = [f"{k} {v:,.0f}" for k, v in m.items() if len(k.split()) == 2 and k.split()[0] in PROJECT_ALGS]
        if extra:
            lines.append(f"{net} project with threads: " + ", ".join(extra))
    for net, r in res["ratios"]["train"].items():
        lines.append(f"{net}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items()))
    lines.append("")
    for net, pw in res["pulse_work"].items():
        lines.append(f"{net} pulse work per sample: project progressive {pw['project progressive pulses_per_sample']:.1f} "
                     f"({pw['project progressive pulses_per_cross_point_per_sample']:.2e}/cross-point), backprop "
                     f"{pw['project backprop pulses_per_sample']:.1f}, progressive-sparse "
                     f"{pw['project progressive-sparse pulses_per_sample']:.1f}; aihwkit {pw['aihwkit coincidences_per_sample']:.4g} "
                     f"coincidences ({pw['aihwkit coincidences_per_device_per_sample']:.3f}/device, mean BL "
                     f"{pw['aihwkit mean_bl']:.1f}): {pw['aihwkit coincidences / project progressive pulses']:.0f}x the project's")
    lines.append("")
    for q, m in res["median"]["update_784x256"].items():
        p = res["rounds_raw"][0]["update_784x256"]["project"][q]["pulses_per_device"]
        lines.append(f"784x256 update at {p:.2f} pulses (coincidences) per device: " + ", ".join(
            f"{k} {v:.3g} device-updates/s" for k, v in m.items()) + "; " + ", ".join(
            f"{k} {v:.2f}" for k, v in res["ratios"]["update_784x256"][q].items()))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: 200 samples, 1 round")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="2,1", help="aihwkit thread counts, one persistent process each")
    ap.add_argument("--project-threads", default="1", help="the project's thread counts (1 always; > 1: the threaded "
                    "twin of the loop; run with NUMBA_NUM_THREADS at least that)")
    ap.add_argument("--aihwkit-python", default=os.environ.get("AIHWKIT_PYTHON",
                                                               str(Path.home() / ".cache" / "aihwkit-venv" / "bin" / "python")))
    a = ap.parse_args(argv)
    samples, rounds = (200, 1) if a.quick else (a.samples, a.rounds)
    try:
        threads = [int(t) for t in a.threads.split(",")]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        print(f"benchmarks.aihwkit: --threads {a.threads!r}: expected a comma-separated list of positive integers", file=sys.stderr)
        return 2
    try:
        project_threads = sorted({1, *(int(t) for t in a.project_threads.split(","))})
    except ValueError:
        project_threads = [0]
    if min(project_threads) < 1 or max(project_threads) > numba.config.NUMBA_NUM_THREADS:
        print(f"benchmarks.aihwkit: --project-threads {a.project_threads!r}: expected positive integers up to "
              f"NUMBA_NUM_THREADS ({numba.config.NUMBA_NUM_THREADS})", file=sys.stderr)
        return 2
    if not 1 <= samples <= 60000:
        print(f"benchmarks.aihwkit: --samples {samples}: expected 1..60000 (MNIST training images)", file=sys.stderr)
        return 2
    if rounds < 1:
        print(f"benchmarks.aihwkit: --rounds {rounds}: expected at least 1", file=sys.stderr)
        return 2
    if not Path(a.aihwkit_python).is_file():
        print(f"benchmarks.aihwkit: aihwkit venv python {a.aihwkit_python} not found (build it with "
              "../shared/bench/setup_aihwkit_venv.sh, or pass --aihwkit-python / AIHWKIT_PYTHON)", file=sys.stderr)
        return 2
    try:
        res = run_bench(samples, rounds, threads, a.aihwkit_python, 3 if a.quick else 7, project_threads)
    except RuntimeError as e:
        print(f"benchmarks.aihwkit: {e}", file=sys.stderr)
        return 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=2) + "\n")
    print()
    print(table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
