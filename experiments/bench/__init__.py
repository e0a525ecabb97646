"""Benchmarks of esparse against numpy, torch, scikit-learn and FAISS on the same machine, and
the one-shot device check.

python -m experiments.bench [group ...] [--out results/bench.json]
python -m experiments.bench device [--small | --full] [--out PATH]

Modules, one concept each:
- `harness`: timing (medians after a warm-up, pairs timed alternately), the result row, runs
  in a fresh process for peak RSS;
- `peers`: the numpy, torch and FAISS implementations esparse is timed against;
- the groups: `kernels` (ceiling, kernels), `outputs`, `hamming`, `training` (seeds,
  masked), `analysis`;
- `results`: the environment record, the printed table, the merged JSON file;
- `device`: the one-shot device check;
- `__main__`: the command line and the registry of groups.
"""

import os

os.environ.pop("OPENBLAS_CORETYPE", None)  # before numpy loads: let OpenBLAS pick its kernel
