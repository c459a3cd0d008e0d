"""IBM aihwkit side of ``benchmarks.aihwkit`` (issue 12, item 6); runs INSIDE the aihwkit venv.

It must not import the project package (numpy, torch and aihwkit only): the driver
(``python -m benchmarks.aihwkit``) starts it as a persistent subprocess,
``<aihwkit venv>/bin/python benchmarks/aihwkit_worker.py --threads T``, and talks to it by JSON
lines: one command per line on stdin, one answer per line on stdout, prefixed ``@@``. Commands:

- ``{"cmd": "info"}``: versions, threads, the rpu config of the tiles.
- ``{"cmd": "data", "path": ...}``: load ``x`` (N×784 float32, pixels ÷255) and ``y`` from an
  ``.npz`` the driver wrote (the first N MNIST training images).
- ``{"cmd": "train", "sizes": [...], "lr": ..., "orders": [[...], [...]], "count": bool}``:
  one warm-up epoch (order 0, not timed) and one timed epoch (order 1) of, from the same initial
  weights (torch's default ``nn.Linear`` init, seed 0): AnalogLinear layers with
  ``SingleRPUConfig(device=SoftBoundsDevice())`` (default IO, update and mapping parameters),
  ``AnalogSGD``; and the same network as torch fp32 ``nn.Linear`` + ``torch.optim.SGD``.
  Sigmoid hidden, softmax output + cross-entropy (``nn.CrossEntropyLoss`` on the logits),
  batch 1. With ``count`` a third epoch (order 2, not timed) records, for every tile update,
  the ``(x, d)`` pair the tile receives and its learning rate, and returns the expected number
  of pulse coincidences from aihwkit's update management (see :func:`expected_coincidences`).
- ``{"cmd": "update", "q": [...], "repeats": R}``: the 784×256 layer update alone (one tile,
  ``tile.update(x, d)``, no autograd): dense ±1 inputs ``x`` and ``d = ±q·dw_min/lr``, so that
  every device expects exactly ``q`` coincidences per update (for ``q ≤ desired_bl``; see
  :func:`expected_coincidences`); device-updates per second.
- ``{"cmd": "check"}``: the coincidence formula against aihwkit itself: a ConstantStep tile with
  no noise, no spread and wide bounds, non-negative ``x`` and ``d`` (every coincidence the same
  sign), so ``|ΔW| / dw_min`` summed over the tile is the number of coincidences that fired.
- ``{"cmd": "quit"}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

# torch, aihwkit: imported by load() once the thread counts are in the environment, so that this
# module's pure-numpy part (expected_coincidences) imports anywhere, e.g. in the project's tests
torch = nn = aihwkit = AnalogLinear = AnalogSequential = AnalogSGD = None
ConstantStepDevice = SingleRPUConfig = SoftBoundsDevice = None


def load(threads: int) -> None:
    """Set every thread pool of the process to ``threads`` (before OpenMP and OpenBLAS load), import."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    # this file's folder holds benchmarks/aihwkit.py (the driver), which would shadow the package
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    global torch, nn, aihwkit, AnalogLinear, AnalogSequential, AnalogSGD
    global ConstantStepDevice, SingleRPUConfig, SoftBoundsDevice
    import torch
    from torch import nn
    import aihwkit
    from aihwkit.nn import AnalogLinear, AnalogSequential
    from aihwkit.optim import AnalogSGD
    from aihwkit.simulator.configs import ConstantStepDevice, SingleRPUConfig, SoftBoundsDevice
    torch.set_num_threads(threads)


DATA: dict = {}


def expected_coincidences(x: np.ndarray, d: np.ndarray, lr: float, dw_min: float, up) -> tuple[int, float]:
    """Expected pulse coincidences of one aihwkit CPU tile update (``StochasticCompressed`` bit
    lines, ``res = 0``), from ``PulsedUpdateMetaParameter::performUpdateManagement`` and
    ``SparseBitLineMaker::makeCounts`` of aihwkit 1.2.0: with ``k = lr·max|x|·max|d|/dw_min``
    (``um_grad_scale`` on ``d``), ``BL = min(ceil k, desired_bl)`` bit-line slots; column ``j``
    fires in each slot with probability ``p_j = min(1, |x_j|·B)``, row ``i`` with
    ``q_i = min(1, |d_i|·A)``, independently, so the expected number of coincidences (a pulse on
    device ``(i, j)``) is ``BL·Σ_j p_j·Σ_i q_i``. For ``k ≤ desired_bl`` and all ``|x_j|``,
    ``|d_i|`` at their maxima this is exactly ``k`` per device."""
    xa, da = np.abs(x.astype(np.float64)), np.abs(d.astype(np.float64))
    x_val, d_val = float(xa.max()), float(up.um_grad_scale) * float(da.max())
    if not (up.update_bl_management or up.update_management):
        raise ValueError("update management off: not modelled here")
    if x_val == 0.0 or d_val == 0.0 or lr == 0.0:
        return 0, 0.0
    k = lr * x_val * d_val / dw_min
    BL = int(up.desired_bl)
    A = B = math.sqrt(lr / (dw_min * BL))
    if up.update_bl_management:
        BL = min(int(math.ceil(k)), int(up.desired_bl))
        A = B = math.sqrt(lr / (dw_min * BL))
    if up.update_management:
        if k > up.desired_bl:
            d_val *= up.desired_bl / k
        A *= math.sqrt(x_val / d_val)
        B *= math.sqrt(d_val / x_val)
    p = np.minimum(xa * B, 1.0)
    q = np.minimum(da * A, 1.0)
    return BL, BL * float(p.sum()) * float(q.sum())


def soft_bounds_config():
    return SingleRPUConfig(device=SoftBoundsDevice())


def init_weights(sizes, seed: int = 0):
    torch.manual_seed(seed)
    layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    return [(l.weight.detach().clone(), l.bias.detach().clone()) for l in layers]


def build(sizes, w0, analog: bool):
    mods = []
    for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = AnalogLinear(a, b, bias=True, rpu_config=soft_bounds_config()) if analog else nn.Linear(a, b)
        if analog:
            lin.set_weights(w0[l][0].clone(), w0[l][1].clone())
        else:
            with torch.no_grad():
                lin.weight.copy_(w0[l][0])
                lin.bias.copy_(w0[l][1])
        mods.append(lin)
        if l < len(sizes) - 2:
            mods.append(nn.Sigmoid())
    return AnalogSequential(*mods) if analog else nn.Sequential(*mods)


def optimiser(model, lr: float, analog: bool):
    if not analog:
        return torch.optim.SGD(model.parameters(), lr=lr)
    opt = AnalogSGD(model.parameters(), lr=lr)
    opt.regroup_param_groups(model)
    return opt


def epoch(model, opt, xs, ys, order) -> float:
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for i in order:
        opt.zero_grad()
        loss_fn(model(xs[i]), ys[i]).backward()
        opt.step()
    return time.perf_counter() - t0


def count_epoch(model, opt, xs, ys, order) -> dict:
    """One untimed epoch that records every tile update's (x, d) after ``pre_update`` (what the
    C++ tile receives) and the C++ tile's learning rate; expected coincidences per sample."""
    tiles = list(model.analog_tiles())
    totals = {"coincidences": 0.0, "bl": 0.0, "updates": 0}
    for t in tiles:
        dev = t.rpu_config.device
        up = t.rpu_config.update
        orig = t.pre_update

        def rec(x_in, x_dim, d_in, d_dim, _t=t, _orig=orig, _dev=dev, _up=up):
            xx, dd = _orig(x_in, x_dim, d_in, d_dim)
            for xr, dr in zip(xx.reshape(-1, xx.shape[-1]), dd.reshape(-1, dd.shape[-1])):
                bl, c = expected_coincidences(xr.numpy(), dr.numpy(), float(_t.tile.get_learning_rate()), float(_dev.dw_min), _up)
                totals["coincidences"] += c
                totals["bl"] += bl
                totals["updates"] += 1
            return xx, dd

        t.pre_update = rec
    try:
        epoch(model, opt, xs, ys, order)
    finally:
        for t in tiles:
            del t.pre_update
    n = len(order)
    devices = sum(int(t.tile.get_x_size()) * int(t.tile.get_d_size()) for t in tiles)
    return {"coincidences_per_sample": totals["coincidences"] / n, "analog_devices": devices,
            "coincidences_per_device_per_sample": totals["coincidences"] / n / devices,
            "tile_updates_per_sample": totals["updates"] / n,
            "mean_bl": totals["bl"] / max(totals["updates"], 1)}


def cmd_train(c: dict) -> dict:
    sizes, lr, orders = c["sizes"], float(c["lr"]), [np.asarray(o, np.int64) for o in c["orders"]]
    xs = [torch.from_numpy(DATA["x"][i:i + 1]) for i in range(len(DATA["y"]))]
    ys = [torch.tensor([int(v)]) for v in DATA["y"]]
    n = len(orders[1])
    w0 = init_weights(sizes)
    out = {}
    for name, analog in (("aihwkit-softbounds", True), ("torch-fp32-sgd", False)):
        model = build(sizes, w0, analog)
        model.train()
        opt = optimiser(model, lr, analog)
        epoch(model, opt, xs, ys, orders[0])  # warm-up, not timed
        dt = epoch(model, opt, xs, ys, orders[1])
        r = {"samples_per_s": n / dt, "seconds": dt}
        if analog:
            tiles = list(model.analog_tiles())
            r["tiles"] = len(tiles)
            r["tile_shapes"] = [[int(t.tile.get_d_size()), int(t.tile.get_x_size())] for t in tiles]
            if c.get("count"):
                r["pulse_work"] = count_epoch(model, opt, xs, ys, orders[2])
                r["pulse_work"]["epoch"] = 3
        out[name] = r
    return out


def one_tile_layer(n_in: int, n_out: int, device):
    cfg = SingleRPUConfig(device=device)
    cfg.mapping.max_input_size = 0  # one physical tile, as the project's 256×785 array
    cfg.mapping.max_output_size = 0
    return AnalogLinear(n_in, n_out, bias=False, rpu_config=cfg)


def cmd_update(c: dict) -> dict:
    """784×256 tile update alone at ``q`` expected coincidences per device."""
    n_in, n_out, lr, repeats = 784, 256, 0.01, int(c.get("repeats", 7))
    torch.manual_seed(0)
    layer = one_tile_layer(n_in, n_out, SoftBoundsDevice())
    (tile,) = list(layer.analog_tiles())
    tile.set_learning_rate(lr)
    dw_min, up = float(tile.rpu_config.device.dw_min), tile.rpu_config.update
    rng = np.random.default_rng(0)
    out = {}
    for q in c["q"]:
        pool = [(torch.tensor(rng.choice([-1.0, 1.0], (1, n_in)), dtype=torch.float32),
                 torch.tensor(rng.choice([-1.0, 1.0], (1, n_out)) * q * dw_min / lr, dtype=torch.float32))
                for _ in range(16)]
        lr_t = float(tile.tile.get_learning_rate())
        ec = [expected_coincidences(x.numpy()[0], d.numpy()[0], lr_t, dw_min, up) for x, d in pool]
        for k in range(8):  # warm-up
            tile.update(*pool[k % 16])
        calls, per = 0, []
        while True:  # calls per repeat: at least 0.2 s
            calls = max(1, calls * 2)
            t0 = time.perf_counter()
            for k in range(calls):
                tile.update(*pool[k % 16])
            if time.perf_counter() - t0 >= 0.2 or calls >= 4096:
                break
        for _ in range(repeats):
            t0 = time.perf_counter()
            for k in range(calls):
                tile.update(*pool[k % 16])
            per.append((time.perf_counter() - t0) / calls)
        med = statistics.median(per)
        out[str(q)] = {"rows": n_out, "cols": n_in, "requested_coincidences_per_device": q,
                       "coincidences_per_device": float(np.mean([e[1] for e in ec])) / (n_in * n_out),
                       "bl": float(np.mean([e[0] for e in ec])), "median_s": med, "calls_per_repeat": calls,
                       "device_updates_per_s": n_in * n_out / med}
    return out


def cmd_check(c: dict) -> dict:
    """Coincidences fired by aihwkit (|ΔW|/dw_min on a noise-free ConstantStep tile) vs the formula."""
    n_in, n_out, lr = 784, 256, 0.01
    dev = ConstantStepDevice(dw_min=1e-3, dw_min_dtod=0.0, dw_min_std=0.0, up_down=0.0, up_down_dtod=0.0,
                             w_max=100.0, w_min=-100.0, w_max_dtod=0.0, w_min_dtod=0.0)
    torch.manual_seed(0)
    layer = one_tile_layer(n_in, n_out, dev)
    (tile,) = list(layer.analog_tiles())
    tile.set_learning_rate(lr)
    up = tile.rpu_config.update
    rng = np.random.default_rng(1)
    x0 = DATA["x"][:200] if DATA else rng.uniform(0, 1, (200, n_in)).astype(np.float32)
    fired, expected = [], []
    for k in range(len(x0)):
        x = torch.from_numpy(np.ascontiguousarray(x0[k:k + 1]))
        d = torch.tensor(np.abs(rng.standard_normal((1, n_out))) * 0.3, dtype=torch.float32)
        w_before = tile.tile.get_weights().double().clone()
        tile.update(x, d)
        fired.append((tile.tile.get_weights().double() - w_before).abs().sum().item() / 1e-3)
        expected.append(expected_coincidences(x.numpy()[0], d.numpy()[0], float(tile.tile.get_learning_rate()), 1e-3, up)[1])
    f, e = np.asarray(fired), np.asarray(expected)
    ratio = f.sum() / e.sum()
    # standard error of the ratio of sums over updates (each update's bit lines are independent draws)
    se = float(np.std(f - ratio * e, ddof=1) * np.sqrt(len(f)) / e.sum())
    return {"updates": len(f), "fired": float(f.sum()), "expected": float(e.sum()), "fired_over_expected": float(ratio),
            "standard_error": se}


def cmd_info(c: dict) -> dict:
    cfg = soft_bounds_config()
    return {"aihwkit": aihwkit.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "torch_threads": torch.get_num_threads(),
            "env_threads": {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
            "device": type(cfg.device).__name__, "dw_min": cfg.device.dw_min,
            "update": {k: getattr(cfg.update, k) for k in ("desired_bl", "update_bl_management", "update_management",
                                                            "um_grad_scale", "sto_round", "res")}
            | {"pulse_type": str(cfg.update.pulse_type)},
            "mapping": {"max_input_size": cfg.mapping.max_input_size, "max_output_size": cfg.mapping.max_output_size,
                        "digital_bias": cfg.mapping.digital_bias}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    load(ap.parse_args().threads)
    cmds = {"info": cmd_info, "train": cmd_train, "update": cmd_update, "check": cmd_check}
    for line in sys.stdin:
        c = json.loads(line)
        if c["cmd"] == "quit":
            break
        if c["cmd"] == "data":
            z = np.load(c["path"])
            DATA["x"], DATA["y"] = np.ascontiguousarray(z["x"], np.float32), z["y"]
            ans = {"n": int(len(DATA["y"]))}
        else:
            ans = cmds[c["cmd"]](c)
        sys.stdout.write("@@ " + json.dumps(ans) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
