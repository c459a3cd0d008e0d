"""Adding a device family and a training algorithm is what the README ("Layout" → "Extending")
says it is: a throw-away family ("half-bounds", s_up = 1 - x/2, s_down = 1/2 + x/2) and a
throw-away algorithm ("backprop-again", the backprop order on the devices) are added by text edits
to a temporary copy of the repository, then used in a fresh process (the registry tables
``loop.ORDER_OF`` / ``loop.FLOAT`` / ``kernels.SHAPED`` are built at import). The kernels run as
plain Python there (``NUMBA_DISABLE_JIT=1``): the test checks the wiring and the arithmetic of the
new entries in seconds; the compiled paths are what every other test runs:

* the new family validates in a hand-written ``device.yaml``, arrays are built from it, and one
  potentiation and one depression pulse through the kernels move G by exactly
  ``dg_up·(1 - x/2)`` and ``-dg_down·(1/2 + x/2)`` (no c2c, no device-to-device spread);
* the new algorithm is accepted by params validation and trains bit-identically to ``backprop``
  on the same arrays with the same seed (same update order, same devices, same draws);
* a family entry without its law branch fails at import of ``pipeline.devices.law``, naming it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import copy_repo
from pipeline.devices import families
from pipeline.training import algorithms

FAMILY = "half-bounds"
ALGORITHM = "backprop-again"
FAMILY_CODE = len(families.REGISTRY)  # the next free code (codes are 0..n-1)
ALGORITHM_CODE = len(algorithms.REGISTRY)


def _edit(path: Path, anchor: str, new: str) -> None:
    """Replace ``anchor`` (which must occur exactly once) by ``new`` in ``path``."""
    text = path.read_text()
    n = text.count(anchor)
    assert n == 1, f"{path.name}: anchor found {n} times (expected once), the file changed shape:\n{anchor}"
    path.write_text(text.replace(anchor, new))


def _add_family_entry(repo: Path) -> None:
    """One ``Family(...)`` entry at the end of ``families.REGISTRY``."""
    _edit(repo / "pipeline/devices/families.py", "\n)\n\nBY_NAME: dict[str, Family]",
          f'\n    Family("{FAMILY}", {FAMILY_CODE}, (), fittable=False),\n)\n\nBY_NAME: dict[str, Family]')


def _add_law_branches(repo: Path) -> None:
    law = repo / "pipeline/devices/law.py"
    text = law.read_text()
    # the family's code constant, and its code in law._LAW_CODES (the import-time completeness check)
    found = re.findall(r"^_LAW_CODES = \(([^)\n]*)\)$", text, flags=re.M)
    assert len(found) == 1, f"law.py: expected one '_LAW_CODES = (...)' line, found {len(found)}"
    codes = found[0]
    _edit(law, f"_LAW_CODES = ({codes})",
          f'HALF_BOUNDS = CODES["{FAMILY}"]\n_LAW_CODES = ({codes}, HALF_BOUNDS)')
    # one branch in shape_up, one in shape_down
    _edit(law, "    if family == POWER:\n        return (1.0 - x) ** gamma_up\n",
          "    if family == POWER:\n        return (1.0 - x) ** gamma_up\n    if family == HALF_BOUNDS:\n        return 1.0 - x / 2.0\n")
    _edit(law, "    if family == POWER:\n        return x ** gamma_down\n",
          "    if family == POWER:\n        return x ** gamma_down\n    if family == HALF_BOUNDS:\n        return 0.5 + x / 2.0\n")
    # and its NumPy closed form (nominal steps of arrays.build, the fit), which raises for a code it does not list
    _edit(law, '    else:\n        raise ValueError(f"mean_step_np: family code {family} has no closed form")',
          "    elif family == HALF_BOUNDS:\n"
          "        s = 1.0 - x / 2.0 if polarity > 0 else 0.5 + x / 2.0\n"
          '    else:\n        raise ValueError(f"mean_step_np: family code {family} has no closed form")')


def _add_algorithm_entry(repo: Path) -> None:
    """One ``Algorithm(...)`` entry at the end of ``algorithms.REGISTRY`` (a known update order:
    no branch in the loop)."""
    bp = algorithms.get("backprop")
    _edit(repo / "pipeline/training/algorithms.py", "\n)\n\nNAMES: tuple[str, ...]",
          f'\n    Algorithm("{ALGORITHM}", {ALGORITHM_CODE}, False, ORDER_BACKPROP, "backprop again (a test entry)",\n'
          f'              {bp.held!r}, {bp.forward_per_layer!r}, "#17becf"),\n)\n\nNAMES: tuple[str, ...]')


def _env(tmp_path: Path, repo: Path) -> dict:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(repo), NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"),
               ECRAM_CACHE_DIR=str(tmp_path / "ecram-cache"), NUMBA_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
               NUMBA_DISABLE_JIT="1")
    return env


DEVICE_YAML = textwrap.dedent(f"""\
    # a hand-written device of the throw-away family: no cycle-to-cycle noise, no device spread
    model: {FAMILY}
    source: hand-written (test)
    devices: 1
    population:
      g_min_S:   {{mean: 3.0e-4, std: 0.0}}
      g_max_S:   {{mean: 1.0e-3, std: 0.0}}
      dg_up_S:   {{mean: 1.4e-5, std: 0.0}}
      dg_down_S: {{mean: 1.0e-5, std: 0.0}}
    c2c_std: 0.0
    read_noise_S: 0.0
""")

SCRIPT = textwrap.dedent(f"""\
    import json, sys
    from pathlib import Path

    import numpy as np

    import pipeline
    assert Path(pipeline.__file__).resolve().is_relative_to(Path.cwd().resolve()), pipeline.__file__
    from pipeline import config
    from pipeline.crossbar import arrays, kernels as K
    from pipeline.devices import families, law, spec as dspec
    from pipeline.training import algorithms, ledger, loop, run

    FAMILY, ALGORITHM = {FAMILY!r}, {ALGORITHM!r}
    out = {{"family_in_config": FAMILY in config.FAMILIES, "family_fittable": FAMILY in config.FIT_NAMES,
            "family_code": law.FAMILY_CODES[FAMILY], "shaped": [bool(v) for v in K.SHAPED],
            "algorithm_in_config": ALGORITHM in config.ALGORITHMS, "algorithm_code": algorithms.CODES[ALGORITHM],
            "order_of": [int(v) for v in loop.ORDER_OF], "float": [bool(v) for v in loop.FLOAT],
            "o_backprop": loop.O_BACKPROP}}

    # device.yaml validation reads the registry
    spec = dspec.read("device.yaml")
    out["spec_model"] = spec.model

    # params: a tiny network on a few iris samples (sigmoid/MSE, as tests/conftest.py IRIS), one epoch;
    # the new algorithm is a valid choice
    p = config.with_changes(config.Params(), {{
        "dataset.name": "iris", "network.output": "sigmoid", "network.loss": "mse", "train.lr": [0.3],
        "network.hidden": [3], "dataset.max_train": 24, "dataset.max_test": 12, "train.epochs": 1,
        "train.seeds": [0], "train.algorithms": [ALGORITHM, "backprop"], "record.probes": 0,
        "array.init_spread": 0.2}})
    run.make_config(p, ALGORITHM, 0)  # what `python -m pipeline train --algorithm ...` checks
    out["values_held"] = [ledger.values_held(a, [4, 3, 3]) for a in (ALGORITHM, "backprop")]

    # arrays of the new family; one pulse of each polarity through the kernels
    net = arrays.build(p, spec, [4, 3, 3])
    dev = net.dev
    out["ph_family"] = int(net.ph.family)
    out["nominal"] = [net.attrs["dg_nominal_up_S"], net.attrs["dg_nominal_down_S"]]
    out["nominal_expected"] = [spec.mean("dg_up_S") * 0.75, spec.mean("dg_down_S") * 0.75]
    g = net.g0.copy()
    N = g.shape[1]
    cu, cd = np.zeros(g.shape, np.int64), np.zeros(g.shape, np.int64)
    pulses = []
    for policy, idx, pair, sign in ((K.POL_POTENTIATE, 0, 0, 1), (K.POL_DEPRESS, 1, 1, -1)):
        ph = net.ph._replace(policy=policy, encoding=K.ENC_NEAREST, c2c=0.0)
        dw = np.zeros(N)
        dw[idx] = 1.2 * (ph.dw_pot if sign > 0 else ph.dw_dep)  # rounds to one pulse
        before = g.copy()
        up, dn = K.program(g, dev, ph, dw, 0, 0, cu, cd)
        lo, hi = dev.g_min[pair, idx], dev.g_max[pair, idx]
        x = (before[pair, idx] - lo) / (hi - lo)
        if sign > 0:
            expected = dev.dg_up[pair, idx] * (1.0 - x / 2.0)
        else:
            expected = -dev.dg_down[pair, idx] * (0.5 + x / 2.0)
        moved = np.argwhere(g != before).tolist()
        pulses.append({{"counts": [int(up), int(dn)], "moved": moved, "x": float(x),
                        "dg": float(g[pair, idx] - before[pair, idx]), "expected": float(expected),
                        "g_new": float(g[pair, idx]), "g_expected": float(before[pair, idx] + expected)}})
    out["pulses"] = pulses

    # the new algorithm trains exactly as backprop does on the same arrays and seed
    res = {{a: run.simulate(p, spec, a, 0) for a in (ALGORITHM, "backprop")}}
    out["identical"] = {{k: bool(np.array_equal(res[ALGORITHM][k], res["backprop"][k], equal_nan=True))
                         for k in res["backprop"]}}
    out["pulses_up_epoch1"] = float(res["backprop"]["pulses_up"][1]) + float(res["backprop"]["pulses_down"][1])
    out["test_acc"] = [float(v) for v in res[ALGORITHM]["test_acc"]]
    print("RESULT " + json.dumps(out))
""")


@pytest.mark.slow
def test_a_new_family_and_algorithm_are_registry_entries(tmp_path):
    repo = tmp_path / "repo"
    copy_repo(repo)

    # a family entry without its law branch fails at import (no numba compile: an import only)
    _add_family_entry(repo)
    env = _env(tmp_path, repo)
    bad = subprocess.run([sys.executable, "-c", "import pipeline.devices.law"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0, "a family without a branch in the pulse law imported fine"
    assert FAMILY in bad.stderr and "no branch in the pulse law" in bad.stderr, bad.stderr[-2000:]

    # with its law branches and an algorithm entry, both work end to end
    _add_law_branches(repo)
    _add_algorithm_entry(repo)
    (repo / "device.yaml").write_text(DEVICE_YAML)
    (repo / "check_extension.py").write_text(SCRIPT)
    proc = subprocess.run([sys.executable, "check_extension.py"], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=1500)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(lines) == 1, proc.stdout[-2000:]
    r = json.loads(lines[0].removeprefix("RESULT "))

    # the registries reach config, law, kernels and the loop
    assert r["family_in_config"] and not r["family_fittable"]
    assert r["family_code"] == FAMILY_CODE and r["ph_family"] == FAMILY_CODE
    assert len(r["shaped"]) == FAMILY_CODE + 1 and r["shaped"][FAMILY_CODE] is False
    assert r["spec_model"] == FAMILY
    assert r["algorithm_in_config"] and r["algorithm_code"] == ALGORITHM_CODE
    assert len(r["order_of"]) == ALGORITHM_CODE + 1 and r["order_of"][ALGORITHM_CODE] == r["o_backprop"]
    assert r["float"][ALGORITHM_CODE] is False
    assert r["values_held"][0] == r["values_held"][1]

    # the kernels use the new law: s_up(x) = 1 - x/2, s_down(x) = 1/2 + x/2 (nominal step at x = 1/2: 3/4)
    assert r["nominal"] == pytest.approx(r["nominal_expected"], rel=1e-12)
    up, down = r["pulses"]
    assert up["counts"] == [1, 0] and down["counts"] == [0, 1]
    assert up["moved"] == [[0, 0]] and down["moved"] == [[1, 1]]
    for pulse in (up, down):
        assert 0.0 < pulse["x"] < 1.0  # where s(x) differs from every other family's law
        assert pulse["g_new"] == pulse["g_expected"], pulse  # c2c = 0: the same float arithmetic
        assert pulse["dg"] == pytest.approx(pulse["expected"], rel=1e-9)

    # the new algorithm is backprop to the bit
    assert r["pulses_up_epoch1"] > 0, "nothing was written in the training epoch"
    assert all(r["identical"].values()), {k: v for k, v in r["identical"].items() if not v}
    assert len(r["test_acc"]) == 2
