"""The per-epoch metrics of a training run: names, units and descriptions in one list.

``run.zarr`` (the train stage), ``eval.zarr`` (the evaluate stage) and the sweeps hold one value
per epoch of each; epoch 0 is the state before training. The ledger counts come last, in the
order of the kernels' ledger slots (``loop.L_READS`` …, ``loop.N_LEDGER``).

This module imports nothing (the jitted loop takes its ledger slots from here).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    units: str
    description: str
    ledger: bool = False  # a ledger count (int64, counted by the kernels) rather than a float metric


# float metrics, evaluated by Python once per epoch
EPOCH_METRICS: tuple[Metric, ...] = (
    Metric("train_loss", "1", "mean loss of the training samples as seen during training (online)"),
    Metric("train_acc", "1", "accuracy of the training samples as seen during training (online)"),
    Metric("train_loss_eval", "1", "loss on the training set after the epoch (hardware inference)"),
    Metric("train_acc_eval", "1", "accuracy on the training set after the epoch (hardware inference)"),
    Metric("test_loss", "1", "loss on the test set after the epoch (hardware inference)"),
    Metric("test_acc", "1", "accuracy on the test set after the epoch (hardware inference)"),
    Metric("energy_J", "J", "write and read energy spent in the epoch"),
)

# the cost ledger (DESIGN §1.2), counted by the kernels; position = ledger slot
LEDGER_METRICS: tuple[Metric, ...] = (
    Metric("reads", "reads", "array reads (vector-matrix products, forward or transposed) in the epoch", True),
    Metric("device_reads", "device-reads", "device reads (multiply-accumulates on devices) in the epoch", True),
    Metric("pulses_up", "pulses", "potentiation pulses in the epoch", True),
    Metric("pulses_down", "pulses", "depression pulses in the epoch", True),
    Metric("forward_passes", "passes", "forward passes through the network in the epoch", True),
    Metric("verify_reads", "cross-point reads", "verify reads of one cross-point's weight (all its devices) "
           "by an update scheme (mixed precision with readback: before and after each write; carry: "
           "write-verify of each pair, counted per pair read; tiki-taka: each cross-point of an A column read by a "
           "transfer) in the epoch", True),
    Metric("refreshes", "pairs", "device pairs refreshed (read, reset, programmed back) in the epoch", True),
    Metric("transfers", "transfers", "transfer events of the whole network in the epoch (carry: LSB pairs into the "
           "MSB pairs; tiki-taka: columns of A into C)", True),
)

PER_EPOCH: tuple[Metric, ...] = EPOCH_METRICS + LEDGER_METRICS
NAMES: tuple[str, ...] = tuple(m.name for m in PER_EPOCH)
EPOCH_NAMES: tuple[str, ...] = tuple(m.name for m in EPOCH_METRICS)
LEDGER_NAMES: tuple[str, ...] = tuple(m.name for m in LEDGER_METRICS)
UNITS: dict[str, str] = {m.name: m.units for m in PER_EPOCH}
DESCRIPTIONS: dict[str, str] = {m.name: m.description for m in PER_EPOCH}
LEDGER_SLOT: dict[str, int] = {m.name: k for k, m in enumerate(LEDGER_METRICS)}
N_LEDGER = len(LEDGER_METRICS)
