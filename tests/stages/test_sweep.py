"""Sweeps on Dask: spec validation before any task, bit-identical stores on 1 or 2 workers and
when run twice, a failed (or killed-worker) task reported with its grid point while the others
finish, a rerun that runs only the missing regions, incomplete stores refused by fig5, float runs
trained once across update schemes with the same bytes as one run per grid point.

One spawned 2-worker LocalCluster serves the whole module (cluster start-up is the slow part);
the 1-worker run goes through the CLI and starts its own in-process cluster.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, run_cli

DEVICE = ROOT / "data" / "devices" / "ecram-softbounds.yaml"
TINY_SET = {"network.hidden": [4], "network.output": "softmax", "network.loss": "ce", "train.lr": [0.1],
            "dataset.max_train": 60, "dataset.max_test": 40}
SWEEPS = {
    "defaults": {"dataset": "optdigits", "epochs": 2, "seeds": [0, 1], "algorithms": ["progressive", "backprop-float"],
                 "set": TINY_SET, "paper": {"epochs": 3}},
    "grid2": {"grid": {"network.hidden": [[4], [4, 3]], "device.c2c": [0.0, 0.5]}},
    "depth": {"seeds": [0], "algorithms": ["progressive", "backprop"], "grid": {"network.hidden": [[4], [4, 4]]}},
    "lr": {"seeds": [0], "algorithms": ["progressive", "backprop"], "grid": {"train.lr": [0.05, 0.2]}},
    "schemes": {"algorithms": ["progressive", "backprop-float"], "grid": {"train.scheme": ["direct", "carry"]},
                "set": {"train.carry_every": 5}},
}
FAIL_LABEL = "network.hidden=4-3 device.c2c=0.5 algorithm=progressive seed=1"


def write_params(path: Path, sweeps: dict) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["sweeps"] = sweeps
    raw["base"]["profile"] = "default"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def load(path: Path):
    from pipeline import config

    return config.load(path, sections=("base", "device", "array", "network", "dataset", "train", "evaluate", "sweeps"))


def tree_digest(path: Path) -> dict[str, str]:
    """Every file of a store and the hash of its bytes."""
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(path).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def params_file(tmp_path_factory) -> Path:
    return write_params(tmp_path_factory.mktemp("sweep") / "params.yaml", SWEEPS)


@pytest.fixture(scope="module")
def client(params_file):
    """Kernels compiled (or loaded) here once, then one spawned 2-worker cluster for the module."""
    from distributed import Client

    from pipeline import sweep

    sweep.warm_up(sweep.resolve(load(params_file), "grid2", device=DEVICE))
    cluster = sweep.local_cluster(2, 1)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def reference(client, params_file, tmp_path_factory) -> Path:
    from pipeline.stages import sweep as sweep_stage

    out = tmp_path_factory.mktemp("ref") / "grid2.zarr"
    sweep_stage.run(load(params_file), name="grid2", out=out, device=DEVICE, client=client)
    return out


# ------------------------------------------------------------------------- validation (no tasks)


@pytest.mark.parametrize("change, expect", [
    (lambda s: s["grid2"]["grid"].update({"network.hiden": [[4]]}), "unknown key"),
    (lambda s: s["grid2"].update({"gird": {}}), "unknown key"),
    (lambda s: s["grid2"]["grid"].update({"sections.foo": [1]}), "unknown key"),
    (lambda s: s["grid2"].update({"grid": {}}), "empty grid"),
    (lambda s: s["grid2"]["grid"].update({"device.c2c": []}), "empty grid axis"),
    (lambda s: s["grid2"]["grid"].update({"train.lr": [0.1, "fast"]}), "expected a number"),
    (lambda s: s["grid2"]["grid"].update({"device.states": [10, "many"]}), "expected a number"),
    (lambda s: s["grid2"]["grid"].update({"network.hidden": [[4], ["x"]]}), "expected an integer"),
    (lambda s: s["defaults"].update({"epochs": "two"}), "expected an integer"),
    (lambda s: s["grid2"]["grid"].update({"train.epochs": [1, 2]}), "cannot be swept"),
    (lambda s: s["defaults"]["set"].update({"array.w_max": "1e-3"}), "write floats"),
])
def test_bad_spec_stops_before_any_task(tmp_path, change, expect):
    sweeps = copy.deepcopy(SWEEPS)
    change(sweeps)
    params = write_params(tmp_path / "params.yaml", sweeps)
    out = tmp_path / "out" / "grid2.zarr"
    code, text = run_cli(["sweep", "grid2", "--params", str(params), "--device", str(DEVICE), "--out", str(out)])
    lines = [ln for ln in text.strip().splitlines() if ln]
    assert code == 2, text
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert "sweeps.grid2" in lines[0] or "sweeps.defaults" in lines[0], text
    assert expect in lines[0], text
    assert not out.exists() and not (tmp_path / "out" / ".grid2.zarr.tmp").exists()


def test_unknown_sweep_and_too_many_workers(tmp_path, params_file):
    from pipeline import sweep

    code, text = run_cli(["sweep", "nope", "--params", str(params_file), "--device", str(DEVICE)])
    assert code == 2 and "no such sweep" in text and "grid2" in text, text
    code, text = run_cli(["sweep", "grid2", "--params", str(params_file), "--device", str(DEVICE),
                          "--workers", str(sweep.cores() + 1), "--out", str(tmp_path / "x.zarr")])
    assert code == 2 and "exceeds" in text, text
    assert not (tmp_path / ".x.zarr.tmp").exists()


def test_profiles_and_device_transforms(params_file):
    from pipeline import sweep
    from pipeline.devices import spec as dspec
    from pipeline.devices.transforms import transform_spec

    p = load(params_file)
    sw = sweep.resolve(p, "grid2", device=DEVICE)
    assert len(sw.tasks) == 2 * 2 * 2 * 2 and sw.epochs == 2
    assert [a.dim for a in sw.axes] == ["network_hidden", "device_c2c"]
    from pipeline import config

    paper = sweep.resolve(config.with_changes(p, {"base.profile": "paper"}), "grid2", device=DEVICE)
    assert paper.epochs == 3 and paper.profile == "paper"
    base = dspec.read(DEVICE)
    rng = base.mean("g_max_S") - base.mean("g_min_S")
    t = transform_spec(base, {"device.states": 50.0, "device.c2c": 0.1})
    assert np.isclose(t.mean("dg_up_S"), rng / 50)
    assert np.isclose(t.mean("dg_down_S") / t.mean("dg_up_S"), base.mean("dg_down_S") / base.mean("dg_up_S"))
    assert np.isclose(t.population["dg_up_S"].std / t.mean("dg_up_S"), 0.1) and t.c2c_std == 0.1
    a = transform_spec(base, {"device.asymmetry": 2.0})
    assert a.mean("dg_up_S") == base.mean("dg_up_S") and np.isclose(a.mean("dg_down_S"), 2 * base.mean("dg_up_S"))


# --------------------------------------------------------------------------- running on Dask


def test_store_layout_and_complete(reference):
    from pipeline import store, sweep

    ds = store.open_dataset(reference)
    assert dict(ds.sizes) == {"network_hidden": 2, "device_c2c": 2, "algorithm": 2, "seed": 2, "epoch": 3}
    assert ds.done.values.all() and not ds.diverged.values.any()
    assert list(ds.network_hidden.values) == ["4", "4-3"] and list(ds.device_c2c.values) == [0.0, 0.5]
    assert np.isfinite(ds.test_acc.values).all()
    assert ds.attrs["complete"] and sweep.missing(reference) == []
    z = store.Store.open(reference, mode="r").group
    assert z["test_acc"].chunks == (1, 1, 1, 1, 3) and z["done"].chunks == (1, 1, 1, 1)
    # c2c only changes the hardware runs' writes; float runs start from the same draw programmed to the
    # same weights, which differ only by the write error of the programming (within a test sample or so)
    fl = ds.test_acc.sel(algorithm="backprop-float")
    assert np.abs(fl.isel(device_c2c=0).values - fl.isel(device_c2c=1).values).max() <= 0.05


def test_twice_and_one_worker_bit_identical(reference, client, params_file, tmp_path):
    from pipeline.stages import sweep as sweep_stage

    again = tmp_path / "again" / "grid2.zarr"
    sweep_stage.run(load(params_file), name="grid2", out=again, device=DEVICE, client=client)
    assert tree_digest(again) == tree_digest(reference)
    one = tmp_path / "one" / "grid2.zarr"
    code, text = run_cli(["sweep", "grid2", "--params", str(params_file), "--device", str(DEVICE), "--out", str(one),
                          "--workers", "1"])
    assert code == 0, text
    assert tree_digest(one) == tree_digest(reference)
    # a complete, up-to-date store is left alone
    code, text = run_cli(["sweep", "grid2", "--params", str(params_file), "--device", str(DEVICE), "--out", str(one)])
    assert code == 0 and "up to date" in text, text


@pytest.mark.parametrize("mode", ["raise", "exit"])
def test_failed_task_then_rerun_completes_only_missing(mode, reference, client, params_file, tmp_path, monkeypatch,
                                                       capsys):
    """A task that raises, or whose worker process exits (as a killed worker), is reported with its
    grid point; the other regions finish intact; a rerun runs only the missing one."""
    from pipeline import progress, store, sweep
    from pipeline.stages import sweep as sweep_stage

    progress.configure()
    out = tmp_path / "grid2.zarr"
    monkeypatch.setenv("ECRAM_SWEEP_FAIL", FAIL_LABEL)
    monkeypatch.setenv("ECRAM_SWEEP_FAIL_MODE", mode)
    with pytest.raises(SystemExit) as exc:
        sweep_stage.run(load(params_file), name="grid2", out=out, device=DEVICE, client=client)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert f"task failed: {FAIL_LABEL}" in err and f"missing: {FAIL_LABEL}" in err, err
    tmp = tmp_path / ".grid2.zarr.tmp"
    assert not out.exists() and tmp.exists()
    missing = sweep.missing(tmp)
    # a raising task is the only one missing; a worker that exits can take a task running beside
    # it on the same worker down with it (Dask counts both as suspicious)
    assert FAIL_LABEL in missing and (len(missing) == 1 if mode == "raise" else len(missing) <= 2), missing
    part, ref = store.open_dataset(tmp), store.open_dataset(reference)
    done = part.done.values
    assert done.sum() == done.size - len(missing)
    for v in sweep.METRICS:
        a, b = part[v].values[done], ref[v].values[done]
        assert np.array_equal(a, b, equal_nan=True), v
        assert np.isnan(part[v].values[~done]).all()
    from pipeline.errors import InputError
    from pipeline.stages.figures import load_sweep

    with pytest.raises(InputError, match=f"incomplete sweep: {len(missing)} of 16"):
        load_sweep(tmp)
    monkeypatch.delenv("ECRAM_SWEEP_FAIL")
    sweep_stage.run(load(params_file), name="grid2", out=out, device=DEVICE, client=client)
    assert f"16 tasks, {len(missing)} to run, {16 - len(missing)} already done" in capsys.readouterr().err
    assert tree_digest(out) == tree_digest(reference)
    assert not tmp.exists()


def test_allow_incomplete_and_fig5(client, params_file, tmp_path, monkeypatch):
    from pipeline import config, store, sweep
    from pipeline.stages import sweep as sweep_stage
    from pipeline.figures import fig5_scaling
    from pipeline.stages.figures import load_sweeps

    sweeps_dir = tmp_path / "sweeps"
    p = load(params_file)
    monkeypatch.setenv("ECRAM_SWEEP_FAIL", "train.lr=0.2 algorithm=backprop seed=0")
    sweep_stage.run(config.with_changes(p, {"evaluate.allow_incomplete": True}), name="lr",
                    out=sweeps_dir / "lr.zarr", device=DEVICE, client=client)
    monkeypatch.delenv("ECRAM_SWEEP_FAIL")
    ds = store.open_dataset(sweeps_dir / "lr.zarr")
    assert ds.attrs["allow_incomplete"] and ds.attrs["missing"] == ["train.lr=0.2 algorithm=backprop seed=0"]
    sweep_stage.run(p, name="depth", out=sweeps_dir / "depth.zarr", device=DEVICE, client=client)
    paths = fig5_scaling.make(tmp_path / "fig", {"sweeps": load_sweeps(sweeps_dir, fig5_scaling.SWEEPS)},
                              config.Figures(formats=["png"], dpi=60))
    png = tmp_path / "fig" / "fig5_scaling.png"
    assert png in paths and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import json

    numbers = json.loads((tmp_path / "fig" / "fig5_scaling.json").read_text())
    assert set(numbers) == {"depth", "lr"} and numbers["lr"]["missing"] == 1
    assert len(numbers["depth"]["progressive"]["mean"]) == 2
    # rerunning without the flag completes the missing task in place
    sweep_stage.run(p, name="lr", out=sweeps_dir / "lr.zarr", device=DEVICE, client=client)
    assert store.open_dataset(sweeps_dir / "lr.zarr").done.values.all()


# ------------------------------------------------------------- float runs shared across schemes


def test_float_identity_keeps_what_a_float_run_reads(params_file):
    """Only update-scheme keys are ignored: grids over the network, the rate or a device transform
    (which changes the initial programming float runs start from) share no run."""
    import dataclasses

    from pipeline import config, sweep

    names = {f.name for f in dataclasses.fields(config.Train)}
    assert all(k.startswith("train.") and k[6:] in names for k in sweep.FLOAT_IGNORES)
    for k in ("train.lr", "train.epochs", "train.lr_rule", "train.lr_base"):
        assert k not in sweep.FLOAT_IGNORES
    p = load(params_file)
    for name in ("grid2", "lr", "depth"):
        tasks = sweep.resolve(p, name, device=DEVICE).tasks
        assert len(sweep.distinct_runs(tasks)) == len(tasks), name
    tasks = sweep.resolve(p, "schemes", device=DEVICE).tasks
    runs = sweep.distinct_runs(tasks)
    assert sorted(len(g) for g in runs) == [1, 1, 1, 1, 2, 2]
    for g in runs:
        assert len({(t.algorithm, t.seed) for t in g}) == 1
        if len(g) > 1:  # one float run per seed, filling both schemes' regions
            assert g[0].algorithm == "backprop-float"
            assert [t.params.train.scheme for t in g] == ["direct", "carry"]
    # a float task whose own params do not resolve is not folded into a valid one
    bad = config.with_changes(tasks[0].params, {"train.scheme": "tiki-taka", "train.tt_algorithm": "c-ttv2",
                                                "train.tt_gamma": 0.5})
    t = next(t for t in tasks if t.algorithm == "backprop-float")
    assert sweep.spec.float_identity(dataclasses.replace(t, params=bad)) is None


def test_float_runs_trained_once_per_seed_with_the_same_bytes(client, params_file, tmp_path, monkeypatch):
    """A 2-scheme grid trains backprop-float once per seed (the Dask tasks that ran, from the task
    stream), its store is byte-identical to one run per grid point, and the region filled from
    the other scheme's run equals a separate run of that point."""
    from distributed import get_task_stream

    from pipeline import store, sweep
    from pipeline.stages import sweep as sweep_stage
    from pipeline.sweep import executor
    from pipeline.training import run

    p = load(params_file)
    sw = sweep.resolve(p, "schemes", device=DEVICE)
    shared = tmp_path / "shared" / "schemes.zarr"
    with get_task_stream(client=client) as ts:
        sweep_stage.run(p, name="schemes", out=shared, device=DEVICE, client=client)
    ran = [tuple(int(i) for i in str(d["key"]).split("-")[2:5]) for d in ts.data
           if str(d["key"]).startswith("sweep-schemes-")]
    fl = sw.algorithms.index("backprop-float")
    float_runs = sorted(i for i in ran if i[1] == fl)
    assert len(float_runs) == len(sw.seeds) == 2, ran
    assert sorted(i[2] for i in float_runs) == [0, 1]
    assert sum(i[1] != fl for i in ran) == 2 * len(sw.seeds)  # progressive: once per scheme and seed

    monkeypatch.setattr(executor, "distinct_runs", lambda tasks: [[t] for t in tasks])
    alone = tmp_path / "alone" / "schemes.zarr"
    with get_task_stream(client=client) as ts:
        sweep_stage.run(p, name="schemes", out=alone, device=DEVICE, client=client)
    assert sum(str(d["key"]).startswith("sweep-schemes-") for d in ts.data) == len(sw.tasks) == 8
    assert tree_digest(shared) == tree_digest(alone)

    ds = store.open_dataset(shared)
    assert ds.done.values.all()
    for t in sw.tasks:
        if t.algorithm != "backprop-float" or t.params.train.scheme != "carry":
            continue
        ref = run.simulate(t.params, t.spec, t.algorithm, t.seed)
        got = ds.sel(train_scheme="carry", algorithm="backprop-float", seed=t.seed)
        for v in sweep.METRICS:
            assert np.array_equal(got[v].values, ref[v], equal_nan=True), (v, t.label)
    # the scheme does change the hardware runs
    prog = ds.test_loss.sel(algorithm="progressive")
    assert not np.array_equal(prog.sel(train_scheme="direct").values, prog.sel(train_scheme="carry").values)
