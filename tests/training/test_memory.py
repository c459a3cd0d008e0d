"""Memory bounded by the store: snapshots streamed a block at a time are byte-identical to one
epoch-long call; the auto cadence; the fixed training-set evaluation subset."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ROOT, iris_params, iris_yaml, run_cli
from pipeline import config, store
from pipeline.crossbar import arrays as arr
from pipeline.devices import spec as dspec
from pipeline.training import run

SPEC = ROOT / "data" / "devices" / "ecram-softbounds.yaml"


def _setup(alg: str, **changes):
    p = iris_params({"base.seed": 2, "network.hidden": [5], "train.epochs": 2,
                     "array.read_noise": 0.01, "array.drift_tau": 3000.0, **changes})
    net = arr.build(p, dspec.read(SPEC), [4, 5, 3])
    return p, run.setup(p, alg, 1, net)


def _drive(p, su, every, block):
    state = run.State.initial(su.net)
    got, steps, out = [], [], []
    on = None
    if block is not None:
        def on(s, st):  # noqa: E306
            got.append(s.copy())
            steps.append(st.copy())
    for res in run.run_epochs(p, su, state, 1, 2, every=every, on_snaps=on, block=block):
        out.append((res.metrics, res.ledger.copy(), res.pred.copy()))
        if block is None:
            got.append(res.snaps.copy())
            steps.append(res.snap_steps.copy())
    return state, np.concatenate(got), np.concatenate(steps), out


@pytest.mark.parametrize("alg", ["progressive", "backprop-float"])
def test_streamed_blocks_are_byte_identical_to_one_call(alg):
    p, su = _setup(alg)
    n = len(su.data.y_train)
    every = 4  # 105 samples: blocks of 2 snapshots = 8 samples, slices straddle the epoch boundary's phase
    ref_state, ref_snaps, ref_steps, ref_out = _drive(p, su, every, None)
    st, snaps, steps, out = _drive(p, su, every, 2)
    for a, b in ((ref_state.g, st.g), (ref_state.W, st.W), (ref_state.cnt_up, st.cnt_up), (ref_state.cnt_dn, st.cnt_dn)):
        assert a.tobytes() == b.tobytes()
    assert ref_snaps.tobytes() == snaps.tobytes() and np.array_equal(ref_steps, steps)
    assert np.array_equal(steps, run.snapshot_steps(n, 2, every)[1:])
    for (m0, l0, p0), (m1, l1, p1) in zip(ref_out, out):
        assert m0 == m1  # float equality of every metric, the running loss sum included
        assert np.array_equal(l0, l1) and np.array_equal(p0, p1)
    assert np.any(np.diff(snaps.reshape(len(snaps), -1), axis=0) != 0)  # the state moved between snapshots


def test_auto_cadence_keeps_iris_at_ten_and_scales_with_the_training_set():
    rec = config.Record()
    assert rec.every == 0 and run.snapshot_every(rec, 105) == 10  # iris 105 samples: today's every 10
    assert run.snapshot_every(rec, 60000) == 6000 and run.snapshot_every(rec, 7) == 1
    assert run.snapshot_every(config.Record(every=3), 60000) == 3  # an explicit cadence is kept
    # memory: an MNIST 784-256-128-10 snapshot is 1.9 MB per plane; a block of 64 MB holds 17 of two planes
    n_dev = 256 * 785 + 128 * 257 + 10 * 129
    assert run.block_snapshots(rec, 2, n_dev) == (64 << 20) // (16 * n_dev) == 17
    assert run.block_snapshots(config.Record(block_mb=1), 2, 10**7) == 1


def test_training_set_evaluation_subset_is_fixed_and_the_test_set_full():
    assert run.train_eval_idx(105, 10000) is None and run.train_eval_idx(105, 0) is None
    idx = run.train_eval_idx(60000, 10000)
    assert len(np.unique(idx)) == 10000 and idx[0] == 0 and idx[-1] == 59999
    assert np.array_equal(idx, run.train_eval_idx(60000, 10000))
    p, su = _setup("backprop-float", **{"record.train_eval": 30})
    full_p, full = _setup("backprop-float")
    assert su.x_eval.shape == (30, 4) and full.x_eval is None
    ev = run.train_eval_idx(len(su.data.y_train), 30)
    assert np.array_equal(su.x_eval, su.data.x_train[ev]) and np.array_equal(su.T_eval, su.T_train[ev])
    st = run.State.initial(su.net)
    (_, acc_sub), (tl, ta) = run._eval_epoch(su, st.g, st.W, 0)
    (_, acc_all), (tl2, ta2) = run._eval_epoch(full, st.g, st.W, 0)
    assert (tl, ta) == (tl2, ta2)  # the test set is evaluated in full either way
    assert acc_sub * 30 == np.round(acc_sub * 30) and acc_all * 105 == np.round(acc_all * 105)


def test_train_stage_streams_blocks_into_the_same_store(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(iris_yaml("base: {seed: 3}\nnetwork: {hidden: [4]}\ntrain: {epochs: 2}\n"
                                                   "record: {every: 3, probes: 2}\n"))
    code, out = run_cli(["array", "init", "--device", str(SPEC), "--params", str(tmp_path / "params.yaml"),
                         "--out", str(tmp_path / "arrays.zarr")])
    assert code == 0, out
    args = ["--quiet", "train", "-a", "progressive", "--arrays", str(tmp_path / "arrays.zarr"),
            "--params", str(tmp_path / "params.yaml")]
    assert run_cli(args + ["--out", str(tmp_path / "one")])[0] == 0
    monkeypatch.setattr(run, "block_snapshots", lambda record, P, N: 4)  # blocks of 4 snapshots (12 samples)
    assert run_cli(args + ["--out", str(tmp_path / "blocks")])[0] == 0
    a = store.open_dataset(tmp_path / "one" / "run.zarr")
    b = store.open_dataset(tmp_path / "blocks" / "run.zarr")
    assert b["G_0"].encoding["chunks"][0] == 4 and a["G_0"].encoding["chunks"][0] == 35
    for v in a.data_vars:
        assert a[v].values.tobytes() == b[v].values.tobytes(), v
    assert len(a["snapshot"]) == 1 + 2 * 35
