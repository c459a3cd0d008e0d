"""Adding a figure is adding one file: a throw-away figure module, written in a test folder that
is put on the figures package's path, is discovered, drawn by the figures stage through
``--only`` from an evaluation store, and its file name is one the figures stage's generated code
dependencies cover (``pipeline.stages.deps.DYNAMIC``)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import xarray as xr

from pipeline import config, figures
from pipeline.stages import figures as figures_stage

FIGURE = textwrap.dedent('''
    """fig99_throwaway: a figure defined inside a test."""
    from .common import plt, save

    NAME = "fig99_throwaway"
    CLAIM = "a new figure is one file."
    INPUTS = ("eval",)


    def make(out, data, fp):
        ds = data["eval"]
        fig, ax = plt.subplots()
        ax.plot(ds.epoch.values, ds.test_acc.values)
        return save(fig, out, NAME, fp.formats, fp.dpi)
''')


@pytest.fixture
def throwaway_figure(tmp_path, monkeypatch):
    folder = tmp_path / "figs"
    folder.mkdir()
    (folder / "fig99_throwaway.py").write_text(FIGURE)
    monkeypatch.setattr(figures, "__path__", list(figures.__path__) + [str(folder)])
    figures.discover.cache_clear()
    yield folder
    figures.discover.cache_clear()
    import sys

    sys.modules.pop("pipeline.figures.fig99_throwaway", None)


def test_a_new_figure_is_one_file(throwaway_figure, tmp_path):
    from fnmatch import fnmatch

    from pipeline.stages import deps

    assert fnmatch("fig99_throwaway", deps.DYNAMIC["pipeline.figures"])
    assert "fig99" in figures.names()
    ev = tmp_path / "eval"
    ev.mkdir()
    ds = xr.Dataset({"test_acc": (("epoch",), np.array([0.3, 0.6, 0.9]))}, coords={"epoch": [0, 1, 2]})
    ds.to_zarr(ev / "eval.zarr", consolidated=False)
    p = config.Params()
    made = figures_stage.run(p, out=tmp_path / "out", only=["fig99"], eval_dir=ev, device_dir=tmp_path / "none",
                             sweeps_dir=tmp_path / "none")
    assert sorted(m.name for m in made) == ["fig99_throwaway.pdf", "fig99_throwaway.png"]
    assert (tmp_path / "out" / "fig99_throwaway.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
