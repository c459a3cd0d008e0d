"""Training algorithms, the jitted per-epoch loop, and the run driver with its recorder."""
