"""Shared fixtures. Numba compile time dominates small tests: kernels are compiled once per
session (cache=True keeps them across sessions, keyed on the package sources)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import pipeline  # noqa: E402,F401  (first: keys the numba cache folder before numba is imported)


# The iris experiment (4-8-3, sigmoid/MSE, lr 0.3, 40 epochs): the default before optdigits 64-16-10 and
# the named alternative of README (Default experiment). Tests build on it so they stay small and fast;
# a test's own changes go on top.
IRIS = {"dataset.name": "iris", "network.hidden": [8], "network.output": "sigmoid", "network.loss": "mse",
        "train.epochs": 40, "train.lr": [0.3]}


def iris_params(changes: dict | None = None):
    """``config.Params()`` with the iris experiment, then ``changes`` (dotted keys)."""
    from pipeline import config

    return config.with_changes(config.Params(), {**IRIS, **(changes or {})})


def iris_overrides(*extra: str) -> list[str]:
    """The iris experiment as ``--set key=value`` overrides (for ``config.load`` or the CLI), then ``extra``."""
    import json

    return [f"{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in IRIS.items()] + list(extra)


def iris_yaml(text: str = "") -> str:
    """A params.yaml text: the iris experiment, with the sections of ``text`` merged over it key by key."""
    import yaml

    raw: dict = {}
    for key, value in IRIS.items():
        section, name = key.split(".")
        raw.setdefault(section, {})[name] = value
    for section, keys in (yaml.safe_load(text) or {}).items():
        raw[section] = {**raw.get(section, {}), **keys} if isinstance(keys, dict) else keys
    return yaml.safe_dump(raw, sort_keys=False)


COPY_SKIP = {".git", ".venv", ".cache", ".dvc/cache", ".dvc/tmp", "results", ".pytest_cache", ".hypothesis",
             "__pycache__"}


def copy_repo(dst: Path, skip: set[str] = COPY_SKIP) -> None:
    """Copy the working tree (sources, params, dvc files, data) without outputs and caches."""
    import shutil

    def ignore(folder, names):
        rel = Path(folder).relative_to(ROOT)
        return [n for n in names if (rel / n).as_posix() in skip or n in ("__pycache__", ".pytest_cache")
                or n.endswith(".egg-info") or n.startswith(".") and n.endswith(".tmp")]

    shutil.copytree(ROOT, dst, ignore=ignore)


def run_cli(args: list[str], cwd: Path | None = None) -> tuple[int, str]:
    """Run ``python -m pipeline`` in-process; returns (exit status, stderr+stdout text)."""
    import contextlib
    import io

    from pipeline.cli import main

    buf = io.StringIO()
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stderr(buf), contextlib.redirect_stdout(buf):
            try:
                main(args)
                code = 0
            except SystemExit as exc:
                code = int(exc.code or 0)
    finally:
        os.chdir(old)
    return code, buf.getvalue()


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def pytest_collection_modifyitems(config, items):
    """The end-to-end test (``dvc repro`` of a copy, minutes) first: under pytest-xdist (``make
    test``, whole files per worker, ``--no-loadscope-reorder``) one worker starts it at once while
    the others share the rest, instead of it running alone at the end."""
    items.sort(key=lambda item: 0 if item.nodeid.startswith("tests/e2e/test_end_to_end.py") else 1)
