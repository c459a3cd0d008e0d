"""The update-scheme registry (DESIGN §1.6): how a requested weight change ΔW reaches the
devices, orthogonal to the update order of the algorithm (:mod:`pipeline.training.algorithms`).

One entry per scheme: its name (``train.scheme``), its integer code in the jitted loop
(``loop.Config.scheme``) and its storage facts for the ledger and the figures.

Float algorithms (``*-float``) hold their weights in float64 and ignore the scheme: they are the
software reference every scheme is compared with.

This module imports nothing (``config`` imports it to validate ``train.scheme``).
"""

from __future__ import annotations

from dataclasses import dataclass

# how mixed precision takes the written change out of its accumulator (``train.mp_subtract``)
MP_SUBTRACT = ("readback", "nominal")
# tiki-taka's variant (``train.tt_algorithm``), in the order of the kernel codes (crossbar.schemes.TT_*)
TT_ALGORITHMS = ("ttv1", "ttv2", "c-ttv2")


@dataclass(frozen=True)
class Scheme:
    """One update scheme: name, code in the jitted loop and its storage facts."""

    name: str
    code: int  # ``loop.Config.scheme``
    description: str
    digital_per_weight: float  # digital values held per weight between samples (χ, H …)
    planes: int  # analog devices per weight
    params: tuple[str, ...]  # the ``train.*`` keys the scheme reads (besides ``train.scheme``)
    marker: str  # figures: marker
    color: str  # figures: colour


REGISTRY: tuple[Scheme, ...] = (
    Scheme("direct", 0,
           "the requested ΔW becomes pulses at once (encoding, routing and law of the array); nothing is held",
           0.0, 2, (), "o", "#d62728"),
    Scheme("mixed-precision", 1,
           "a float64 accumulator χ per weight gathers ΔW; n = trunc(χ/ε) pulses of the nominal step ε when "
           "|χ| ≥ ε, then the written change leaves χ: read back from the devices (noise-free verify read, "
           "two per written weight) or the nominal n·ε (Nandakumar et al. 2020; Le Gallo et al. 2018)",
           1.0, 2, ("mp_subtract",), "s", "#17becf"),
    Scheme("carry", 2,
           "four devices per weight, W = γ·W_lsb + W_msb: training pulses the fast LSB pair; every carry_every "
           "samples the LSB is read, moved into the slow MSB pair by write-verify and programmed back to the "
           "residual (Agarwal et al. 2017; Ambrogio et al. 2018); analog storage only",
           0.0, 4, ("carry_every", "carry_gamma", "carry_rounds"), "^", "#bcbd22"),
    Scheme("tiki-taka", 3,
           "four devices per weight, forward weight γ·A + C: training pulses the fast pair A (zero at its "
           "symmetry point with train.zero_shift); every tt_transfer_every samples columns of A are read and "
           "moved into the slow pair C (or rows, tt_transfer_columns false; in turn or from a random line): "
           "TTv1 as pulses at once (optionally resetting the read line of A), TTv2 through a digital buffer H "
           "per weight that pulses C when it crosses a threshold, c-TTv2 also with a chopper sign per read "
           "line (and per line of the other axis with tt_out_chop_prob) "
           "(Gokmen & Haensch 2020; Gokmen 2021; aihwkit TransferCompound)",
           2.0, 4, ("tt_zero_shift", "tt_algorithm", "tt_gamma", "tt_transfer_every", "tt_n_reads_per_transfer", "tt_transfer_lr",
                    "tt_fast_lr", "tt_thres_scale", "tt_momentum", "tt_forget_buffer", "tt_in_chop_prob",
                    "tt_max_steps", "tt_transfer_columns", "tt_random_selection", "tt_in_chop_random",
                    "tt_out_chop_prob", "tt_with_reset_prob", "tt_scale_fast_lr", "tt_auto_scale",
                    "tt_auto_momentum", "tt_auto_granularity", "tt_correct_gradient_magnitudes"), "D", "#9467bd"),
)

NAMES: tuple[str, ...] = tuple(s.name for s in REGISTRY)
BY_NAME: dict[str, Scheme] = {s.name: s for s in REGISTRY}
CODES: dict[str, int] = {s.name: s.code for s in REGISTRY}
DIRECT = CODES["direct"]
MIXED_PRECISION = CODES["mixed-precision"]
CARRY = CODES["carry"]
TIKI_TAKA = CODES["tiki-taka"]


def tt_rate_options(train) -> tuple[bool, float, bool]:
    """The ChoppedTransferCompound rate options a tiki-taka run uses: (auto_scale, auto_granularity,
    correct_gradient_magnitudes) from ``train``; ttv1 (aihwkit's TransferCompound) has none and
    ignores them. Missing keys (stores written before the options existed) read as off."""
    if str(getattr(train, "tt_algorithm", "ttv2")) == "ttv1":
        return False, 0.0, False
    return (bool(getattr(train, "tt_auto_scale", False)), float(getattr(train, "tt_auto_granularity", 0.0)),
            bool(getattr(train, "tt_correct_gradient_magnitudes", False)))


def digital_per_weight(name: str, train=None, sizes=None) -> float:
    """Digital values held per weight between samples by scheme ``name`` with the ``train``
    params (None: the registry's figure, for the scheme's default variant): tiki-taka holds
    nothing for TTv1, its buffer H (1) for TTv2, H plus one chopper sign per read line of every
    layer (Σ cols / weights; Σ rows with ``tt_transfer_columns`` false) for c-TTv2, plus one per
    line of the other axis with ``tt_out_chop_prob`` > 0 (Σ rows, or Σ cols, / weights: the
    out-choppers); TTv2 / c-TTv2 with ``tt_auto_scale`` add the running means m_x, m_d of every
    layer (2·L / weights); ``train.zero_shift`` (or, for tiki-taka,
    ``train.tt_zero_shift``) adds the zero offset of every weight (1). ``sizes``: the layer widths
    (needed for c-TTv2 and auto-scale). The registry's figure is that of the defaults without their per-layer
    values (tiki-taka: TTv2 with zero-shift, 2; the defaults' auto-scale adds 2·L / weights)."""
    s = get(name)
    if train is None:
        return s.digital_per_weight
    d = s.digital_per_weight
    if s.code == TIKI_TAKA:
        alg = str(getattr(train, "tt_algorithm", "ttv2"))
        d = 0.0 if alg == "ttv1" else 1.0
        auto = tt_rate_options(train)[0]
        if alg == "c-ttv2" or auto:
            if sizes is None:
                raise ValueError("digital_per_weight: c-ttv2 and tt_auto_scale need the layer sizes")
            cols = [int(n) + 1 for n in sizes[:-1]]
            rows = [int(n) for n in sizes[1:]]
            n_w = sum(c * r for c, r in zip(cols, rows))
            if auto:  # m_x and m_d of every layer
                d += 2 * len(rows) / n_w
        if alg == "c-ttv2":
            read, other = (cols, rows) if getattr(train, "tt_transfer_columns", True) else (rows, cols)
            d += sum(read) / n_w
            if float(getattr(train, "tt_out_chop_prob", 0.0)) > 0.0:
                d += sum(other) / n_w
    if getattr(train, "zero_shift", False) or (s.code == TIKI_TAKA and getattr(train, "tt_zero_shift", True)):
        d += 1.0
    return float(d)


def get(name: str) -> Scheme:
    """The entry of ``name`` (KeyError naming the known schemes if there is none)."""
    try:
        return BY_NAME[str(name)]
    except KeyError:
        raise KeyError(f"unknown update scheme {name!r}, expected one of {', '.join(NAMES)}") from None


def _check() -> None:
    if len(BY_NAME) != len(REGISTRY):
        raise ImportError("scheme registry: duplicate names")
    if sorted(CODES.values()) != list(range(len(REGISTRY))):
        raise ImportError(f"scheme registry: codes must be 0..{len(REGISTRY) - 1}, each once: {CODES}")
    for s in REGISTRY:
        if s.digital_per_weight < 0 or s.planes < 1:
            raise ImportError(f"scheme registry: {s.name} has negative storage or no device plane")


_check()
