"""aihwkit's TTv2 / c-TTv2 preset settings on the default experiment (optdigits 64-16-10, fitted
ENODe population, progressive order, 10 epochs, seeds 0-4): final test accuracy, pulses and
verify reads per sample, digital values per weight. Writes results.json next to this file.

    python docs/tiki-taka-presets/measure.py        # from the repository root, after `dvc repro` of fit
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

# aihwkit 1.2.0 presets (presets/configs.py, TTv2EcRamPreset / ChoppedTTv2EcRamPreset): fast_lr 0.1
# (scale_fast_lr false), auto_scale, auto_granularity 500, transfer_lr 1 (scale_transfer_lr),
# transfer_update desired_bl 1 (max_steps 1), in_chop_prob 0 (TTv2) / 0.01 (c-TTv2).
PRESET = {"train.scheme": "tiki-taka", "train.tt_fast_lr": 0.1, "train.tt_scale_fast_lr": False,
          "train.tt_auto_scale": True, "train.tt_auto_granularity": 500.0, "train.tt_transfer_lr": 1.0,
          "train.tt_max_steps": 1}
CASES = {
    "earlier defaults (ttv2, transfer_lr 4)": {"train.scheme": "tiki-taka", "train.tt_transfer_lr": 4.0, "train.tt_fast_lr": 1.0,
                                                 "train.tt_scale_fast_lr": True, "train.tt_auto_scale": False,
                                                 "train.tt_auto_granularity": 0.0},
    "TTv2 EcRam preset": {**PRESET, "train.tt_algorithm": "ttv2"},
    "c-TTv2 EcRam preset": {**PRESET, "train.tt_algorithm": "c-ttv2", "train.tt_in_chop_prob": 0.01},
    "TTv2 preset, auto_scale off": {**PRESET, "train.tt_algorithm": "ttv2", "train.tt_auto_scale": False},
}
SEEDS = range(5)


def one(task):
    name, seed = task
    sys.path.insert(0, str(ROOT))
    from pipeline import config
    from pipeline.devices import spec as dspec
    from pipeline.training import run, schemes
    from pipeline.crossbar import arrays as arr
    from pipeline import datasets

    p = config.with_changes(config.load(ROOT / "params.yaml"), CASES[name])
    spec = dspec.read(Path(os.environ.get("DEVICE", ROOT / "results" / "device" / "device.yaml")))
    t0 = time.perf_counter()
    out = run.simulate(p, spec, "progressive", seed)
    d = datasets.load(p.dataset)
    sizes = arr.network_sizes(d.n_features, p.network.hidden, d.n_classes)
    n = len(d.y_train) * p.train.epochs
    return {"case": name, "seed": seed, "test_acc": float(out["test_acc"][-1]),
            "pulses_per_sample": float((out["pulses_up"][1:].sum() + out["pulses_down"][1:].sum()) / n),
            "verify_reads_per_sample": float(out["verify_reads"][1:].sum() / n),
            "digital_per_weight": schemes.digital_per_weight("tiki-taka", p.train, sizes),
            "wall_s": time.perf_counter() - t0}


if __name__ == "__main__":
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    tasks = [(c, s) for c in CASES for s in SEEDS]
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(int(os.environ.get("WORKERS", "2"))) as pool:
        rows = pool.map(one, tasks, chunksize=1)
    import numpy as np
    summary = {}
    for c in CASES:
        r = [x for x in rows if x["case"] == c]
        acc = np.array([x["test_acc"] for x in r])
        summary[c] = {"test_acc_mean": float(acc.mean()), "test_acc_sd": float(acc.std(ddof=1)),
                      "pulses_per_sample": float(np.mean([x["pulses_per_sample"] for x in r])),
                      "verify_reads_per_sample": float(np.mean([x["verify_reads_per_sample"] for x in r])),
                      "digital_per_weight": r[0]["digital_per_weight"], "settings": CASES[c]}
        print(f"{c:45s} {acc.mean():.3f} ± {acc.std(ddof=1):.3f}  pulses/sample "
              f"{summary[c]['pulses_per_sample']:.0f}  verify/sample {summary[c]['verify_reads_per_sample']:.0f}")
    (HERE / "results.json").write_text(json.dumps({"summary": summary, "runs": [{k: v for k, v in x.items() if k != "wall_s"}
                                                                                for x in rows]}, indent=1) + "\n")
    print(f"wall {time.perf_counter() - t0:.0f} s")
