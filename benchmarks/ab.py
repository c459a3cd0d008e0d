"""Before/after of the kernels, interleaved in one run (issue 12): the same harness
(:mod:`benchmarks.mnist` ``--ab``: 784-256-128-10 on the first N MNIST images, one thread, plus the
784×256 update at 3.95 pulses per device) run alternately against two checkouts, A B A B …, so a
change of machine load hits both alike.

``python -m benchmarks.ab --a ../main --b . [--rounds 3] [--samples 1000]``; writes
``benchmarks/results/ab.json``. Each round is a fresh process per checkout (its own numba cache,
warm after the first round); the medians over rounds are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "ab.json"


def one(root: Path, samples: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root), NUMBA_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(HERE / "mnist.py"), "--ab", "--samples", str(samples)], cwd=root, env=env,
                         capture_output=True, text=True, check=True)
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("AB ")][-1]
    return json.loads(line[3:])


def main(a: Path, b: Path, rounds: int, samples: int) -> dict:
    runs = {"A": [], "B": []}
    for r in range(rounds):
        for name, root in (("A", a), ("B", b)):
            runs[name].append(one(root, samples))
            print(f"round {r} {name}: {runs[name][-1]}", flush=True)
    keys = list(runs["A"][0])
    med = {n: {k: float(np.median([x[k] for x in v])) for k in keys} for n, v in runs.items()}
    out = {"A": str(a), "B": str(b), "samples": samples, "rounds": rounds, "load_avg_end": os.getloadavg(),
           "median": med, "speedup_B_over_A": {k: med["B"][k] / med["A"][k] for k in keys}, "runs": runs}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    for k in keys:
        print(f"{k:26s} A {med['A'][k]:12.4g}  B {med['B'][k]:12.4g}  B/A {out['speedup_B_over_A'][k]:.2f}")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", type=Path, required=True)
    ap.add_argument("--b", type=Path, default=HERE.parent)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=1000)
    o = ap.parse_args()
    main(o.a.resolve(), o.b.resolve(), o.rounds, o.samples)
