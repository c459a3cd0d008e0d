"""End to end: the repository copied into a temporary folder, `git init`, `dvc repro` on tiny
params; every declared output exists, every figure is a non-empty PNG, a second `dvc repro`
changes nothing, and after a commit `dvc exp run -S` runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, copy_repo

pytestmark = pytest.mark.slow


def _sh(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def test_dvc_repro_tiny(tmp_path):
    repo = tmp_path / "repo"
    copy_repo(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"].update({"epochs": 2, "seeds": [0], "algorithms": ["progressive", "backprop-float"]})
    params["dataset"].update({"max_train": 300, "max_test": 300})
    params["record"]["probes"] = 4
    params["sweeps"]["defaults"]["epochs"] = 1
    params["sweeps"]["defaults"]["seeds"] = [0]
    params["sweeps"]["defaults"]["set"].update({"dataset.max_train": 60, "dataset.max_test": 60})
    params["sweeps"]["schemes"].update({"epochs": 1, "seeds": [0]})
    params["sweeps"]["schemes"]["set"].update({"dataset.max_train": 60, "dataset.max_test": 60})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # The stages import the package from the checkout under test (PYTHONSAFEPATH: not from the
    # copy's folder, which `python -m` would put first): numba keys its cache on the absolute
    # folder of each source file, so code imported from the copy would recompile every kernel
    # (minutes) instead of sharing the session's cache. The copy's sources are the same bytes.
    for src in sorted((ROOT / "pipeline").rglob("*.py")):
        assert (repo / src.relative_to(ROOT)).read_bytes() == src.read_bytes(), src
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""), PYTHONPATH=str(ROOT),
               PYTHONSAFEPATH="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org")
    dvc = [sys.executable, "-m", "dvc"]
    _sh(["git", "init", "-q"], repo, env)
    _sh(dvc + ["repro"], repo, env)
    dvc_yaml = yaml.safe_load((repo / "dvc.yaml").read_text())
    outs = ["results/device/device.yaml", "results/device/fit.zarr", "results/device/metrics.json",
            "results/arrays/arrays.zarr", "results/train/progressive-0/run.zarr", "results/train/backprop-float-0/run.zarr",
            "results/eval/eval.zarr", "results/eval/metrics.json", "results/eval/curves/progressive.csv",
            *(f"results/sweeps/{name}.zarr" for name in ("depth", "width", "lr", "states", "asymmetry", "c2c", "schemes"))]
    assert set(dvc_yaml["stages"]) == {"fit", "instantiate", "train", "evaluate", "sweep", "figures"}
    for out in outs:
        assert (repo / out).exists(), out
    for fig in ("fig1_storage", "fig2_device", "fig3_insitu_error", "fig4_hardware_training", "fig5_scaling",
                "fig6_schemes"):
        png = repo / "results" / "figures" / f"{fig}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000, fig
        assert (repo / "results" / "figures" / f"{fig}.pdf").stat().st_size > 1000
    import json

    m = json.loads((repo / "results" / "eval" / "metrics.json").read_text())
    assert set(m["algorithms"]) == {"progressive", "backprop-float"}
    assert 0.0 <= m["algorithms"]["progressive"]["test_acc_mean"] <= 1.0
    again = _sh(dvc + ["repro"], repo, env)
    assert "didn't change" in again.stdout or "up to date" in again.stdout, again.stdout
    assert "Running stage" not in again.stdout
    _sh(["git", "add", "-A"], repo, env)
    _sh(["git", "commit", "-qm", "tiny"], repo, env)
    exp = _sh(dvc + ["exp", "run", "-S", "train.epochs=1"], repo, env)
    assert "Running stage 'train@progressive-0'" in exp.stdout
