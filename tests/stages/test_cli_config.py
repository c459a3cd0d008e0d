"""The command line and the params loader: help texts, one-line errors with exit status 2, no
partial output."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT, run_cli
from pipeline import config
from pipeline.errors import InputError

COMMANDS = [[], ["info"], ["device"], ["device", "synth"], ["device", "fit"], ["array"], ["array", "init"],
            ["train"], ["evaluate"], ["figures"], ["sweep"], ["bench"], ["bench", "kernels"], ["bench", "training"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_help_of_every_command(cmd):
    code, out = run_cli(cmd + ["--help"])
    assert code == 0, out
    assert "Usage" in out
    if len(cmd) == 2 or cmd in (["info"], ["train"], ["evaluate"], ["figures"], ["sweep"]):
        assert "Example" in out


def test_python_m_pipeline_lists_stages():
    res = subprocess.run([sys.executable, "-m", "pipeline", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0
    for stage in ("device", "array", "train", "evaluate", "figures", "sweep"):
        assert stage in res.stdout


@pytest.mark.parametrize("text,where,expect", [
    ("train:\n  epochz: 3\n", "train.epochz", "unknown key; valid keys: algorithms"),
    ("train:\n  epochs: three\n", "train.epochs", "expected an integer"),
    ("train:\n  lr: [1e-3]\n", "train.lr[0]", "signed exponent"),
    ("train:\n  epochs: 0\n", "train.epochs", ">= 1"),
    ("array:\n  mapping: diagonal\n", "array.mapping", "one of differential, reference"),
    ("array:\n  adc_bits: 0\n", "array.adc_bits", ">= 1"),
    ("network:\n  hidden: [0]\n", "network.hidden[0]", ">= 1"),
    ("array:\n  d2d: yes please\n", "array.d2d", "true or false"),
    ("bogus:\n  x: 1\n", "bogus", "unknown section"),
    ("train: [1, 2]\n", "train", "expected a mapping"),
    ("train:\n  algorithms: [progressive, sgd]\n", "train.algorithms[1]", "one of backprop-float"),
])
def test_params_errors_are_one_line(tmp_path, text, where, expect):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as exc:
        config.load(path)
    msg = str(exc.value)
    assert where in msg and expect in msg and "\n" not in msg


def test_bad_params_exit_2_and_write_nothing(tmp_path):
    (tmp_path / "params.yaml").write_text("network:\n  hiden: [4]\n")
    out = tmp_path / "arrays.zarr"
    code, text = run_cli(["array", "init", "--device", str(ROOT / "data/devices/ecram-softbounds.yaml"),
                          "--params", str(tmp_path / "params.yaml"), "--out", str(out)])
    assert code == 2
    lines = [ln for ln in text.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("error:") and "network.hiden" in lines[0]
    assert "Traceback" not in text
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "params.yaml"]


def test_subprocess_exit_status_and_single_line(tmp_path):
    (tmp_path / "params.yaml").write_text("train:\n  epochs: -1\n")
    res = subprocess.run([sys.executable, "-m", "pipeline", "train", "-a", "progressive", "--params",
                          str(tmp_path / "params.yaml"), "--out", str(tmp_path / "run")],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "train.epochs" in res.stderr
    assert not (tmp_path / "run").exists()


def test_set_override_and_debug(tmp_path):
    (tmp_path / "params.yaml").write_text("train:\n  epochs: 3\n")
    p = config.load(tmp_path / "params.yaml", overrides=["train.epochs=5", "network.hidden=[4, 4]"])
    assert p.train.epochs == 5 and p.network.hidden == [4, 4]
    with pytest.raises(InputError):
        config.load(tmp_path / "params.yaml", overrides=["train.epochs"])
    with pytest.raises(InputError):  # --debug lets the error (and its traceback) through
        run_cli(["--debug", "train", "-a", "nope", "--params", str(tmp_path / "params.yaml")])


def test_sections_are_isolated(tmp_path):
    """Unknown sections are refused in any case, but only the requested sections are built."""
    (tmp_path / "params.yaml").write_text("train:\n  epochs: 7\nfigures:\n  dpi: 100\n")
    p = config.load(tmp_path / "params.yaml", sections=("figures",))
    assert p.figures.dpi == 100 and p.train.epochs == config.Train().epochs


def test_unknown_algorithm_on_cli(tmp_path):
    code, text = run_cli(["train", "-a", "sgd", "--arrays", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "r")])
    assert code == 2 and "--algorithm: got 'sgd'" in text


def test_info_reports_threads_cache_and_paths():
    code, out = run_cli(["info"])
    assert code == 0
    for key in ("numba threads:", "numba threading layer:", "numba cache dir:", "params:", "results:", "zarr"):
        assert key in out
