"""``params.yaml`` → frozen, typed, validated dataclasses, one per section.

Every stage receives only the sections it reads (``load(path, sections=...)``). Loading refuses
unknown keys (listing the valid ones), wrong types and out-of-range values with one line that
names the key path, what was given and what is allowed (:class:`pipeline.errors.InputError`).

Spelling rules (PyYAML and DVC's parser disagree otherwise): floats as ``1.0e-3``, booleans as
``true``/``false``. A string where a number is expected (PyYAML reads ``1e-3`` as a string) is
refused with a hint.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError

from .devices.families import FIT_NAMES, NAMES as FAMILIES  # noqa: E402  (the family registry, code order)
from .training.variants import LABELS as ALGORITHMS  # noqa: E402  (algorithms, and algorithm+scheme run labels)
from .training.schemes import MP_SUBTRACT, TT_ALGORITHMS, NAMES as SCHEMES  # noqa: E402  (the update-scheme registry's names)
ACTIVATIONS = ("sigmoid", "tanh", "relu", "hard-sigmoid", "identity", "softmax")
PROFILES = ("default", "paper", "mnist")  # sweep size profiles (base.profile; a sweep's layer of that name)


def _f(default, *, lo=None, hi=None, lo_open=False, hi_open=False, choices=None, doc=""):
    """A field with a range or a choice list, checked at load."""
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open, "choices": choices, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class Base:
    seed: int = _f(0, lo=0, doc="master seed; every stream is spawned from it")
    profile: str = _f("default", choices=PROFILES, doc="size profile for sweeps (mnist: the full-MNIST scaling study)")


@dataclass(frozen=True)
class Synth:
    """Synthetic characterization data (used when ``characterization.source: synth``)."""

    device: str = _f("data/devices/ecram-softbounds.yaml", doc="device.yaml to synthesise from")
    devices: int = _f(9, lo=1)
    cycles: int = _f(5, lo=1)
    pulses: int = _f(100, lo=2)
    seed: int = _f(0, lo=0)


@dataclass(frozen=True)
class Characterization:
    source: str = _f("data/enode/multi", doc="table file, dataset, look-up-table folder, or 'synth'")
    synth: Synth = field(default_factory=Synth)


@dataclass(frozen=True)
class Device:
    family: str = _f("auto", choices=("auto",) + FIT_NAMES, doc="family to fit, or auto (lowest BIC)")
    keep_table: bool = _f(True, doc="a look-up-table input is also kept as a 'table' model")
    use: str = _f("fit", choices=("fit", "table"), doc="which model the arrays use: fitted family or the measured tables")
    table_window: str = _f("aligned", choices=("aligned", "measured"), doc="table: each measured window centred on the tables' mean centre (aligned) or at its measured G (measured)")
    bootstrap: int = _f(0, lo=0, doc="bootstrap resamples for parameter uncertainty (0: covariance only)")


@dataclass(frozen=True)
class Array:
    mapping: str = _f("differential", choices=("differential", "reference"))
    w_max: float = _f(4.0, lo=0.0, lo_open=True, doc="weight of a full conductance range: G_scale = mean(G_max-G_min)/w_max")
    g_ref: float = _f(0.5, lo=0.0, hi=1.0, doc="reference conductance as a fraction of the mean range (reference mapping)")
    policy: str = _f("alternate", choices=("potentiate", "depress", "alternate"), doc="differential: how a positive update is written")
    init: str = _f("programmed", choices=("mid", "programmed"), doc="initial state: random weights U(-b, b) programmed by counted pulses (write-verify), or mid-range with spread (weights = the device offsets)")
    init_weight: float = _f(1.0, lo=0.0, doc="programmed: target weights U(-b, b), b = init_weight/sqrt(fan-in), within +-w_max")
    init_center: float = _f(0.5, lo=0.0, hi=1.0, doc="initial normalised conductance")
    init_spread: float = _f(0.05, lo=0.0, hi=0.5, doc="std of the initial normalised conductance")
    d2d: bool = _f(True, doc="draw per-device parameters from the fitted population")
    d2d_dist: str = _f("truncnormal", choices=("truncnormal", "lognormal"))
    stuck_fraction: float = _f(0.0, lo=0.0, hi=1.0)
    stuck_high: float = _f(0.5, lo=0.0, hi=1.0, doc="share of stuck devices stuck at G_max")
    read_noise: float = _f(0.0, lo=0.0, doc="std of a read, relative to the weight range of one device")
    adc: bool = _f(False, doc="quantise every read with an ADC")
    adc_bits: int = _f(8, lo=1, hi=24, doc="ADC resolution (with adc: true)")
    adc_range: float = _f(4.0, lo=0.0, lo_open=True, doc="ADC full scale +-adc_range (weight x input units)")
    out_clip: float = _f(0.0, lo=0.0, doc="clip every read output to +-out_clip (0: off)")
    drift_tau: float = _f(0.0, lo=0.0, doc="retention time constant in samples (0: no drift)")
    drift_rest: float = _f(0.5, lo=0.0, hi=1.0, doc="normalised rest conductance of the drift")
    encoding: str = _f("stochastic", choices=("nearest", "stochastic", "floor", "sign", "stochastic-sparse"),
                       doc="stochastic-sparse: stochastic rounding with the same probabilities, sampled row by row "
                           "(cost per pulse, not per cross-point; other draws than stochastic)")
    n_max: int = _f(31, lo=1, doc="pulse cap per device per update")
    threshold: float = _f(0.5, lo=0.0, doc="sign encoding: pulse when |dW| > threshold x nominal step")


@dataclass(frozen=True)
class Network:
    hidden: list[int] = _f([16], lo=1, doc="hidden layer widths (empty: single layer)")
    activation: str = _f("sigmoid", choices=ACTIVATIONS[:-2])
    output: str = _f("softmax", choices=("sigmoid", "tanh", "identity", "softmax"))
    loss: str = _f("ce", choices=("mse", "ce"))
    derivative: str = _f("exact", choices=("exact", "hardware"), doc="hardware: a piecewise-constant approximation of f'")


@dataclass(frozen=True)
class Dataset:
    name: str = _f("optdigits", doc="iris | optdigits | mnist | xor | a path to CSV/NPZ or an IDX folder "
                   "(train-* with t10k-*, or one images/labels pair)")
    test_fraction: float = _f(0.3, lo=0.0, hi=1.0, lo_open=True, hi_open=True,
                              doc="test share for sources without a fixed split")
    split_seed: int = _f(0, lo=0)
    scale: str = _f("minmax", choices=("minmax", "standard", "unit", "none"),
                    doc="unit: divide by the full scale (255 for 8-bit IDX, 16 for optdigits, or full_scale)")
    full_scale: float = _f(0.0, lo=0.0, doc="scale unit: the value that maps to 1 (0: the source's own)")
    max_train: int = _f(0, lo=0, doc="0: all; else use at most this many training samples")
    max_test: int = _f(0, lo=0)


@dataclass(frozen=True)
class Train:
    algorithms: list[str] = _f(["progressive", "progressive-held", "backprop", "backprop-float", "progressive-float",
                                "progressive+mixed-precision"], choices=ALGORITHMS)
    seeds: list[int] = _f([0, 1, 2, 3, 4], lo=0)
    epochs: int = _f(10, lo=1)
    lr: list[float] = _f([0.1], lo=0.0, lo_open=True, doc="one rate, or one per layer (output layer last); lr_rule none")
    lr_rule: str = _f("none", choices=("none", "fan-in"),
                      doc="none: the rates of train.lr; fan-in: layer l gets lr_base / fan_in_l (inputs + bias)")
    lr_base: float = _f(4.0, lo=0.0, lo_open=True, doc="lr_rule fan-in: the base rate divided by each layer's fan-in")
    lr_base_out: float = _f(0.0, lo=0.0, doc="lr_rule fan-in: the output layer's base rate (0: lr_base); progressive "
                            "writes the output layer first, and the error it passes down shrinks by about "
                            "1 - lr_base_out x mean squared input")
    e_pulse_J: float = _f(1.0e-12, lo=0.0, doc="energy of one write pulse")
    e_read_J: float = _f(1.0e-15, lo=0.0, doc="energy of one device read (one multiply-accumulate)")
    parallel_min: int = _f(16384, lo=1, doc="threaded kernels for arrays of at least this many devices, in the "
                           "kernel dispatch and in runs with train --threads > 1 (the same bits)")
    scheme: str = _f("direct", choices=SCHEMES, doc="update scheme: how a requested ΔW reaches the devices "
                     "(DESIGN §1.6; float algorithms ignore it)")
    mp_subtract: str = _f("readback", choices=MP_SUBTRACT, doc="mixed-precision: take the written change out of "
                          "χ as read back from the devices (noise-free verify reads) or as the nominal n·ε")
    carry_every: int = _f(10, lo=1, doc="carry: samples between transfers of the LSB pair into the MSB pair")
    carry_gamma: float = _f(0.25, lo=0.0, hi=1.0, lo_open=True, doc="carry: significance of the LSB pair, "
                            "W = γ·W_lsb + W_msb")
    carry_rounds: int = _f(3, lo=1, hi=50, doc="carry: write-verify rounds (program, read back) per pair and transfer")
    refresh_margin: float = _f(0.0, lo=0.0, hi=0.5, doc="any scheme: refresh a written pair (read, reset, program "
                               "back by write-verify) when a device is within this fraction of its range from a "
                               "bound, after every sample (0: never)")
    zero_shift: bool = _f(False, doc="any scheme: before training, pulse each device of the written pair "
                          "alternately up and down to its symmetry point, read the pair there and use that read "
                          "as the pair's zero (a digital offset per weight)")
    zero_shift_cycles: int = _f(1000, lo=1, doc="zero_shift: up/down pulse pairs per device")
    tt_zero_shift: bool = _f(True, doc="tiki-taka: zero-shift calibration of the fast pair A (as zero_shift, on A "
                             "only): A's zero at each pair's symmetry point, the reference Tiki-Taka needs")
    tt_algorithm: str = _f("ttv2", choices=TT_ALGORITHMS, doc="tiki-taka: ttv1 (A moved into C as pulses), ttv2 "
                           "(through a digital buffer H per weight), c-ttv2 (ttv2 with a chopper sign per column)")
    tt_gamma: float = _f(0.0, lo=0.0, hi=1.0, doc="tiki-taka: forward weight gamma*A + C (aihwkit gamma)")
    tt_transfer_every: int = _f(1, lo=1, doc="tiki-taka: samples between transfer events (aihwkit transfer_every, "
                                "units_in_mbatch with mini-batches of one sample)")
    tt_n_reads_per_transfer: int = _f(1, lo=1, doc="tiki-taka: columns of A read per layer and transfer event, in "
                                      "turn (aihwkit n_reads_per_transfer)")
    tt_transfer_lr: float = _f(1.0, lo=0.0, lo_open=True, doc="tiki-taka: the transfer moves transfer_lr x the "
                               "layer's rate x A (aihwkit transfer_lr with scale_transfer_lr)")
    tt_fast_lr: float = _f(0.1, lo=0.0, lo_open=True, doc="tiki-taka: A's rate is fast_lr (x the layer's rate with "
                           "tt_scale_fast_lr, x n_max x step / (m_x m_d) with tt_auto_scale) (aihwkit fast_lr)")
    tt_thres_scale: float = _f(1.0, lo=0.0, lo_open=True, doc="ttv2/c-ttv2: a pulse to C when |H| reaches "
                               "thres_scale x C's nominal step (aihwkit thres_scale)")
    tt_momentum: float = _f(0.0, lo=0.0, hi=1.0, doc="ttv2/c-ttv2: fraction of H kept after a transfer pulse "
                            "(aihwkit momentum)")
    tt_forget_buffer: bool = _f(True, doc="ttv2/c-ttv2: after a pulse H becomes momentum*H (true) or loses "
                                "(1 - momentum) x the pulses' worth (false) (aihwkit forget_buffer)")
    tt_in_chop_prob: float = _f(0.1, lo=0.0, hi=1.0, doc="c-ttv2: probability that a column's chopper sign "
                                "flips after its read (aihwkit in_chop_prob)")
    tt_max_steps: int = _f(1, lo=1, doc="ttv2/c-ttv2: most pulses per weight and transfer (aihwkit "
                           "transfer_update.desired_bl)")
    tt_transfer_columns: bool = _f(True, doc="tiki-taka: read columns of A (one-hot forward reads) into C's "
                                   "columns (true) or rows (one-hot transposed reads) into C's rows (false) "
                                   "(aihwkit transfer_columns)")
    tt_random_selection: bool = _f(False, doc="tiki-taka: the first line a transfer reads is drawn uniformly per "
                                   "layer and event (true) instead of in turn (aihwkit random_selection)")
    tt_in_chop_random: bool = _f(True, doc="c-ttv2: a read line's chopper flips with probability in_chop_prob "
                                 "(true) or regularly, every max(ceil(1/in_chop_prob), 2) sweeps (false) "
                                 "(aihwkit in_chop_random)")
    tt_out_chop_prob: float = _f(0.0, lo=0.0, hi=1.0, doc="c-ttv2: a chopper sign per line of the other axis "
                                 "(output rows when columns are read), flipped with this probability after each "
                                 "full sweep of the read lines (aihwkit out_chop_prob; 0: no out-choppers)")
    tt_with_reset_prob: float = _f(0.0, lo=0.0, hi=1.0, doc="ttv1: probability that a line of A, once read and "
                                   "transferred, is programmed back to zero by write-verify (train.carry_rounds "
                                   "rounds) (aihwkit with_reset_prob)")
    tt_scale_fast_lr: bool = _f(False, doc="tiki-taka: A's rate is fast_lr x the layer's rate (true) or fast_lr "
                                "alone (false) (aihwkit scale_fast_lr)")
    tt_auto_scale: bool = _f(True, doc="ttv2/c-ttv2: A's rate divided by running means m_x, m_d of the largest "
                             "|input| and |error| of each layer's updates and multiplied by n_max x A's nominal "
                             "step, so the largest update gets about fast_lr (x the layer's rate) x n_max pulses "
                             "whatever the gradient's size (aihwkit auto_scale; ttv1 ignores it)")
    tt_auto_momentum: float = _f(0.99, lo=0.0, hi=1.0, hi_open=True, doc="ttv2/c-ttv2: m <- momentum*m + "
                                 "(1 - momentum)*new of tt_auto_scale's running means (aihwkit auto_momentum)")
    tt_auto_granularity: float = _f(500.0, lo=0.0, doc="ttv2/c-ttv2: > 0 scales H's threshold by auto_granularity "
                                    "/ (samples per sweep of the read lines: lines x transfer_every / reads per "
                                    "transfer) (aihwkit auto_granularity; 0: off; ttv1 ignores it)")
    tt_correct_gradient_magnitudes: bool = _f(False, doc="ttv2/c-ttv2: the read of A enters H divided by A's "
                                              "rate, so C moves by transfer_lr x the layer's rate x the summed "
                                              "gradient whatever A's rate (aihwkit correct_gradient_magnitudes; ttv1 ignores it)")


@dataclass(frozen=True)
class Record:
    every: int = _f(0, lo=0, doc="conductance snapshot every this many samples (0: auto, about `snapshots` per epoch)")
    snapshots: int = _f(10, lo=1, doc="every 0: snapshots per epoch (every = n_train // snapshots, at least 1)")
    train_eval: int = _f(10000, lo=0, doc="per-epoch hardware inference on this many training samples, a fixed "
                         "evenly spaced subset (0: all); the test set is always evaluated in full")
    block_mb: int = _f(64, lo=1, doc="snapshots are kept in memory and written to run.zarr at most this many MB at a time")
    probes: int = _f(32, lo=0, doc="probe samples for the in-situ vs ideal error parity")


@dataclass(frozen=True)
class Evaluate:
    allow_incomplete: bool = _f(False, doc="evaluate sweeps with missing regions")


@dataclass(frozen=True)
class Figures:
    dpi: int = _f(150, lo=50, hi=600)
    formats: list[str] = _f(["png", "pdf"], choices=("png", "pdf", "svg"))
    trajectories: int = _f(100, lo=0, doc="devices drawn per layer in trajectory panels (0: all)")


@dataclass(frozen=True)
class Params:
    base: Base = field(default_factory=Base)
    characterization: Characterization = field(default_factory=Characterization)
    device: Device = field(default_factory=Device)
    array: Array = field(default_factory=Array)
    network: Network = field(default_factory=Network)
    dataset: Dataset = field(default_factory=Dataset)
    train: Train = field(default_factory=Train)
    record: Record = field(default_factory=Record)
    evaluate: Evaluate = field(default_factory=Evaluate)
    figures: Figures = field(default_factory=Figures)
    sweeps: dict = field(default_factory=dict)  # validated by pipeline.sweep


SECTIONS = tuple(f.name for f in fields(Params))

# ------------------------------------------------------------------------------------ validation


def _type_name(tp) -> str:
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if typing.get_origin(tp) is list:
        return f"a list of {_type_name(typing.get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    return getattr(tp, "__name__", str(tp))


def _show(value) -> str:
    s = repr(value)
    return s if len(s) <= 60 else s[:57] + "..."


def _check_scalar(value, tp, meta, where: str):
    hint = ""
    if isinstance(value, str) and tp in (float, int):
        try:
            float(value)
            hint = " (write floats with a dot and a signed exponent: 1.0e-3, 1.0e+3)"
        except ValueError:
            pass
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(where, f"got {_show(value)}, expected true or false")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise InputError(where, f"got {_show(value)}, expected an integer{hint}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(where, f"got {_show(value)}, expected a number{hint}")
        value = float(value)
        if not math.isfinite(value):
            raise InputError(where, f"got {_show(value)}, expected a finite number")
    elif tp is str:
        if not isinstance(value, str):
            raise InputError(where, f"got {_show(value)}, expected a string")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise InputError(where, f"got {_show(value)}, expected one of {', '.join(map(str, choices))}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        rel = ">" if meta.get("lo_open") else ">="
        raise InputError(where, f"got {_show(value)}, expected a value {rel} {lo}")
    if hi is not None and (value > hi or (meta.get("hi_open") and value == hi)):
        rel = "<" if meta.get("hi_open") else "<="
        raise InputError(where, f"got {_show(value)}, expected a value {rel} {hi}")
    return value


def build(cls, raw, where: str):
    """Build dataclass ``cls`` from mapping ``raw`` (None → defaults), validating every key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputError(where, f"got {_show(raw)}, expected a mapping of keys")
    valid = {f.name: f for f in fields(cls)}
    for key in raw:
        if key not in valid:
            raise InputError(f"{where}.{key}" if where else str(key),
                             f"unknown key; valid keys: {', '.join(valid)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in valid.items():
        if name not in raw:
            continue
        kwargs[name] = _convert(raw[name], hints[name], f.metadata, f"{where}.{name}" if where else name)
    return cls(**kwargs)


def _convert(value, tp, meta, where):
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if tp is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise InputError(where, f"got {_show(value)}, expected a mapping")
        return value
    if typing.get_origin(tp) is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list):
            value = [value] if isinstance(value, (int, float, str)) and not isinstance(value, bool) else value
            if not isinstance(value, list):
                raise InputError(where, f"got {_show(value)}, expected {_type_name(tp)}")
        return [_check_scalar(v, inner, meta, f"{where}[{i}]") for i, v in enumerate(value)]
    return _check_scalar(value, tp, meta, where)


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), "file not found")
    if path.is_dir():
        raise InputError(str(path), "is a folder, expected a YAML file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}{line}", f"not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputError(str(path), "expected a mapping of sections at the top level")
    return raw


def parse_override(text: str):
    """``key.path=value`` → (["key", "path"], value parsed as YAML)."""
    if "=" not in text:
        raise InputError("--set", f"got {text!r}, expected key.path=value")
    key, _, val = text.partition("=")
    try:
        value = yaml.safe_load(val) if val.strip() else ""
    except yaml.YAMLError:
        value = val
    return key.strip().split("."), value


def apply_overrides(raw: dict, overrides: list[str] | None) -> dict:
    import copy

    raw = copy.deepcopy(raw)
    for text in overrides or []:
        keys, value = parse_override(text)
        node = raw
        for k in keys[:-1]:
            if not isinstance(node.get(k, {}), dict):
                raise InputError(f"--set {text}", f"'{k}' is not a section")
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return raw


def load(path: str | Path = "params.yaml", sections: tuple[str, ...] | None = None,
         overrides: list[str] | None = None) -> Params:
    """Load and validate ``params.yaml``. With ``sections``, other sections are not read (they
    keep their defaults), so a stage depends only on what it declares in ``dvc.yaml``."""
    raw = apply_overrides(read_yaml(path), overrides)
    for key in raw:
        if key not in SECTIONS:
            raise InputError(f"{path}: {key}", f"unknown section; valid sections: {', '.join(SECTIONS)}")
    if sections is not None:
        for s in sections:
            if s not in SECTIONS:
                raise ValueError(f"unknown section {s!r}")
        raw = {k: v for k, v in raw.items() if k in sections}
    return _build_top(raw, path)


def _build_top(raw: dict, path) -> Params:
    try:
        return build(Params, raw, "")
    except InputError as exc:
        raise InputError(f"{path}: {exc.where}", exc.problem) from None


def to_dict(obj) -> Any:
    """Dataclass → plain dict (for attrs and YAML)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def with_changes(obj, changes: dict):
    """A copy of a frozen params tree with ``{"section.key": value}`` changes applied, validated."""
    raw = to_dict(obj)
    for dotted, value in changes.items():
        node = raw
        keys = dotted.split(".")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return build(type(obj), raw, "")


def layer_lrs(train: Train, sizes) -> list[float]:
    """The learning rate of every layer of a network of layer ``sizes`` (inputs first).

    ``lr_rule: none``: ``train.lr`` (one rate for all, or one per layer). ``fan-in``: layer l gets
    ``lr_base / (sizes[l] + 1)``, its array's column count (inputs plus the bias column), so that
    η_l·‖ã‖² — the step a single update moves a pre-activation by — stays of order lr_base × the
    mean squared input, whatever the width or depth. ``lr_base_out`` (> 0) replaces ``lr_base`` for
    the output layer: progressive writes that layer first, so the error that reaches the layers
    below is the one left after its update, smaller by about η_L·‖ã_L‖²·(loss curvature); a small
    output base keeps the lower layers learning while they take the larger steps of ``lr_base``."""
    n_layers = len(sizes) - 1
    if train.lr_rule == "fan-in":
        bases = [train.lr_base] * n_layers
        if train.lr_base_out > 0:
            bases[-1] = train.lr_base_out
        return [b / (int(n) + 1) for b, n in zip(bases, sizes[:-1])]
    if len(train.lr) == 1:
        return list(train.lr) * n_layers
    if len(train.lr) != n_layers:
        raise InputError("train.lr", f"got {len(train.lr)} rates for {n_layers} layers, expected 1 or {n_layers}")
    return list(train.lr)

