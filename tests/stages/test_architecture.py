"""The shape of the house: exact DVC code dependencies, the one-way import flow, and params.yaml
equal to the code defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, copy_repo
from pipeline import config
from pipeline.stages import STAGES, deps

# Import flow, lowest first: a module may import modules of its own rank or lower only.
RANKS = {
    "rng": 0, "errors": 0,
    "config": 1, "fsutil": 1, "store": 1, "progress": 1, "datasets": 1,
    "devices": 2,
    "crossbar": 3,
    "training": 4,
    "sweep": 5, "figures": 5,
    "info": 6, "stages": 6,
    "cli": 7, "__main__": 7,
}


# registries: leaf modules (no package imports) that the params schema and every layer may read
REGISTRIES = ("pipeline.devices.families", "pipeline.training.algorithms", "pipeline.training.metrics",
              "pipeline.training.schemes", "pipeline.training.variants")


def _rank(module: str) -> int:
    return -1 if module in REGISTRIES else RANKS[_group(module)]


def _group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> list[str]:
    out = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(parts))
    return out


def test_imports_flow_one_way():
    """devices never imports crossbar or training, crossbar never training, no domain package the
    stages or the CLI (every import counted, also those inside functions)."""
    bad = []
    for m in _modules():
        g = _group(m)
        if g == "__init__":
            continue
        assert g in RANKS, f"{m}: module group {g!r} has no rank in this test"
        for n in deps.imported_modules(m):
            if _group(n) != "__init__" and _rank(n) > _rank(m):
                bad.append(f"{m} imports {n}")
    assert not bad, "imports against the flow:\n" + "\n".join(bad)


def test_registries_are_leaves():
    for m in REGISTRIES:
        assert deps.module_path(m) is not None, m
        inside = {n for n in deps.imported_modules(m) if n != m and _group(n) != "__init__" and n not in REGISTRIES}
        assert not inside, f"{m} imports {inside} (a registry may read only other registries)"


def test_dvc_deps_are_the_imports():
    """Every stage's code deps in dvc.yaml are exactly the package files its command executes."""
    lines = deps.problems()
    assert not lines, "\n".join(lines) + "\nregenerate with: python -m pipeline.stages.deps --write"


def test_dvc_params_are_the_sections_each_stage_reads():
    """Each stage declares in dvc.yaml params (whole sections or keys of them) exactly the params
    sections its command loads (``SECTIONS`` of its module)."""
    import importlib

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for stage, module in STAGES.items():
        body = stages[stage].get("do", stages[stage])
        declared = {(p if isinstance(p, str) else next(iter(p))).split(".")[0] for p in body.get("params", [])}
        reads = set(importlib.import_module(f"pipeline.stages.{module}").SECTIONS)
        assert declared == reads, (stage, sorted(declared), sorted(reads))


# train.* keys a stage does not read from params.yaml: the DVC matrix (train stage) or the sweep spec
# (sweep stage) gives them
_TRAIN_NOT_READ = {"train": {"algorithms", "seeds"}, "sweep": {"algorithms", "seeds", "epochs"}}


def test_dvc_params_cover_every_train_key():
    """A train.* key missing from a stage's params would let `dvc repro` serve stale numbers
    after it changes: the train and sweep stages declare every key of the section they read."""
    import dataclasses

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    keys = {f.name for f in dataclasses.fields(config.Train)}
    for stage, skip in _TRAIN_NOT_READ.items():
        body = stages[stage].get("do", stages[stage])
        declared = {p.split(".", 1)[1] for p in body["params"] if isinstance(p, str) and p.startswith("train.")}
        assert declared == keys - skip, (stage, sorted(keys - skip - declared), sorted(declared - keys))


def test_deps_rewrite_is_idempotent():
    text = (ROOT / "dvc.yaml").read_text()
    assert deps.rewrite(text, deps.expected()) == text


def test_params_yaml_equals_code_defaults():
    """Every key the code reads is in params.yaml, with the value the code uses by default."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    code = config.to_dict(config.Params())
    for section in config.SECTIONS:
        if section == "sweeps":  # a user's grids: validated by the sweep spec, no code defaults
            continue
        assert raw.get(section) == code[section], section


def _stage_files(stage: str) -> set[str]:
    return {deps.module_path(m).relative_to(ROOT).as_posix() for m in deps.stage_modules(stage)}


@pytest.mark.slow
def test_dvc_status_sees_exactly_the_importing_stages(tmp_path):
    """Edit a comment in a copy, ask `dvc status`: exactly the stages whose code imports the
    edited file report it changed (and a figure module never invalidates the fit)."""
    repo = tmp_path / "repo"
    copy_repo(repo)
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env)
    figure = sorted((ROOT / "pipeline" / "figures").glob("fig*_*.py"))[0].relative_to(ROOT).as_posix()
    found = {}
    for rel in ("pipeline/devices/law.py", "pipeline/config.py", figure):
        path = repo / rel
        original = path.read_text()
        path.write_text(original + "\n# a comment\n")
        res = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=repo, env=env,
                             capture_output=True, text=True, timeout=300)
        path.write_text(original)
        assert res.returncode == 0, res.stderr
        status = json.loads(res.stdout or "{}")
        changed = set()
        for stage, entries in status.items():
            for entry in entries:
                if not isinstance(entry, dict):
                    continue
                for dep in entry.get("changed deps", {}):
                    if rel == dep or rel.startswith(dep.rstrip("/") + "/"):
                        changed.add(stage.split("@")[0])
        found[rel] = changed
        assert changed == {s for s in STAGES if rel in _stage_files(s)}, (rel, changed)
    assert {"fit", "instantiate", "train", "sweep"} <= found["pipeline/devices/law.py"]
    assert "figures" in found[figure] and "fit" not in found[figure]
    assert found["pipeline/config.py"] == set(STAGES)
