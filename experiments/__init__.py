"""esparse reproduction suite: one module per claim, the runner CLI, the report, benchmarks."""
