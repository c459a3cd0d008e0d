"""Bookkeeping of the aihwkit side-by-side benchmark (no aihwkit needed): the expected-coincidence
formula of aihwkit's update management, the driver's medians and ratios, its bad-input lines."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import aihwkit as B
from benchmarks.aihwkit_worker import expected_coincidences

UP = SimpleNamespace(desired_bl=31, update_bl_management=True, update_management=True, um_grad_scale=1.0)
LR, DW = 0.01, 1e-3


def signs(n, seed):
    return np.random.default_rng(seed).choice([-1.0, 1.0], n)


@pytest.mark.parametrize("q", [0.2, 0.9, 1.0, 3.55, 7.0, 30.5])
def test_dense_unit_inputs_give_q_coincidences_per_device(q):
    # |x| = 1 and |d| = q·dw/lr everywhere: k = q, BL = ceil q, p = sqrt(q/BL) for every line
    x, d = signs(784, 0), signs(256, 1) * q * DW / LR
    bl, c = expected_coincidences(x, d, LR, DW, UP)
    assert bl == int(np.ceil(q - 1e-12))
    assert c / (784 * 256) == pytest.approx(q, rel=1e-12)


def test_coincidences_capped_at_desired_bl_per_device():
    x, d = signs(100, 2), signs(50, 3) * 1000 * DW / LR  # k = 1000 > 31
    bl, c = expected_coincidences(x, d, LR, DW, UP)
    assert bl == 31
    assert c / (100 * 50) == pytest.approx(31.0, rel=1e-12)


def test_zero_input_or_error_fires_nothing_and_zero_lines_add_nothing():
    x, d = np.random.default_rng(4).uniform(-1, 1, 64), np.random.default_rng(5).normal(size=32) * 0.1
    assert expected_coincidences(np.zeros(64), d, LR, DW, UP) == (0, 0.0)
    assert expected_coincidences(x, np.zeros(32), LR, DW, UP) == (0, 0.0)
    bl, c = expected_coincidences(x, d, LR, DW, UP)
    x2 = np.concatenate([x, np.zeros(100)])  # zero columns: no bit line fires, max unchanged
    assert expected_coincidences(x2, d, LR, DW, UP) == (bl, pytest.approx(c, rel=1e-12))
    # below saturation the expected count is lr·Σ|x|·Σ|d|/dw_min (each product's pulses), whatever BL is
    assert c == pytest.approx(LR * np.abs(x).sum() * np.abs(d).sum() / DW, rel=1e-12)


def test_summary_medians_and_ratios():
    def rnd(k):
        alg = {a: {"samples_per_s": (i + 1) * 100.0 * k} for i, a in enumerate(B.PROJECT_ALGS)}
        aih = {"aihwkit-softbounds": {"samples_per_s": 50.0 * k}, "torch-fp32-sgd": {"samples_per_s": 1000.0 * k}}
        return {"train": {"n": {"project": alg, "aihwkit 2t": aih}},
                "update_784x256": {"project": {"1.0": {"device_updates_per_s": 4e6 * k}},
                                   "aihwkit 2t": {"1.0": {"device_updates_per_s": 1e6 * k}}}}

    s = B.summarise([rnd(1), rnd(3), rnd(2)], [2])
    assert s["median"]["train"]["n"]["progressive"] == 200.0
    assert s["median"]["train"]["n"]["aihwkit-softbounds 2t"] == 100.0
    assert s["ratios"]["train"]["n"]["progressive / aihwkit 2t"] == 2.0
    assert s["ratios"]["train"]["n"]["backprop-float / torch-fp32 2t"] == pytest.approx(0.3)
    assert s["ratios"]["update_784x256"]["1.0"]["project 1t / aihwkit 2t"] == 4.0


@pytest.mark.parametrize("argv", [["--samples", "0"], ["--rounds", "0"], ["--threads", "2,x"],
                                  ["--aihwkit-python", "/nonexistent/python"]])
def test_bad_inputs_exit_2_with_one_line(argv, capsys):
    assert B.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("benchmarks.aihwkit: ")
