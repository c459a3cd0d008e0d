"""Shared figure plumbing: deterministic PNG/PDF output, captions, algorithm colours."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..training import schemes  # noqa: E402
from ..training.algorithms import REGISTRY  # noqa: E402
from ..training.variants import parse  # noqa: E402

# from the algorithm registry (one entry per algorithm holds its colour and line style); a run
# label <algorithm>+<scheme> is drawn in its scheme's colour, dash-dotted
COLORS = {a.name: a.color for a in REGISTRY}
STYLE = {a.name: a.linestyle for a in REGISTRY if a.linestyle != "-"}


def color(label: str) -> str:
    alg, scheme = parse(str(label))
    if scheme is not None and scheme in schemes.NAMES:
        return schemes.get(scheme).color
    return COLORS.get(alg, "#7f7f7f")


def linestyle(label: str) -> str:
    alg, scheme = parse(str(label))
    return "-." if scheme is not None else STYLE.get(alg, "-")


def caption(fig, claim: str, produced_by: str) -> None:
    """The caption names the claim the figure checks and the params behind it."""
    text = f"Claim checked: {claim}\nProduced by: {produced_by}"
    wrapped = "\n".join(textwrap.fill(line, 160) for line in text.splitlines())
    fig.text(0.01, 0.005, wrapped, fontsize=7, va="bottom", ha="left", family="monospace")


def save(fig, out: Path, name: str, formats: list[str], dpi: int) -> list[Path]:
    """Write ``name`` in every format, without timestamps (deterministic bytes for DVC)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        meta = {"png": {"Software": None}, "pdf": {"CreationDate": None, "ModDate": None, "Producer": None,
                                                    "Creator": None},
                "svg": {"Date": None, "Creator": None}}[fmt]
        tmp = path.with_name(f".{path.name}.tmp")
        fig.savefig(tmp, dpi=dpi, metadata=meta, format=fmt)
        os.replace(tmp, path)
        paths.append(path)
    plt.close(fig)
    return paths


def save_json(out: Path, name: str, obj) -> Path:
    """Write ``obj`` as ``out/<name>.json`` (sorted keys, atomic): the numbers behind a figure."""
    import json

    path = out / f"{name}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def lr_text(train: dict) -> str:
    """The learning rates as configured: ``lr [0.3]`` or the fan-in rule with its bases."""
    if train.get("lr_rule") == "fan-in":
        out = train.get("lr_base_out") or 0.0
        return (f"lr fan-in rule, lr_base {train.get('lr_base')}" + (f", output layer {out}" if out > 0 else "")
                + " (layer l: base / (inputs_l + 1))")
    return f"lr {train.get('lr')}"


def describe_params(attrs: dict) -> str:
    """A one-line summary of the params stored with evaluated results."""
    pr = attrs.get("params", {})
    ar = attrs.get("arrays", {})
    net = pr.get("network", {})
    tr = pr.get("train", {})
    ds = pr.get("dataset", {})
    sizes = "-".join(str(s) for s in attrs.get("sizes", []))
    return (f"dataset {ds.get('name')} ({sizes}, {net.get('activation')}/{net.get('output')}, loss {net.get('loss')}); "
            f"{lr_text(tr)}, {tr.get('epochs')} epochs; device {ar.get('model')} from {ar.get('source')}, "
            f"{ar.get('mapping')} mapping, c2c {ar.get('c2c_std')}")
