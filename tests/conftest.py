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
