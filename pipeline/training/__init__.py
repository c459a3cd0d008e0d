"""Training: the algorithm registry, the per-epoch metrics, the jitted per-epoch loop, the cost
ledger and the in-memory epoch driver (no files; the train stage records runs)."""
