"""Benchmarks of the esparse kernels against numpy and torch on the same machine.

python -m experiments.bench [group ...] [--out results/bench.json]
python -m experiments.bench device [--small | --full] [--out PATH]   (experiments.bench.device)

Groups are functions registered in GROUPS (name -> fn() returning a list of row dicts with
keys group, name, esparse_ms, peer, peer_ms, ratio, ceiling_fraction, note). ratio is
esparse_ms / peer_ms (below 1: esparse is faster). ceiling_fraction: for `ceiling`, this
library's GFLOP/s over the best of the three; for `kernels`, the jax matmul alone over the
kernel's time (1 means the kernel costs no more than its matmul). Times are medians of
repeated runs after a warm-up, with block_until_ready; an esparse row and its peer are timed
alternately (`timed_pair`), so a drift in the machine's speed affects both. The table is
printed and merged into the JSON file (written atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from experiments.bench.analysis import analysis
from experiments.bench.hamming import hamming
from experiments.bench.kernels import ceiling, kernels
from experiments.bench.outputs import outputs
from experiments.bench.peers import torch_or_none
from experiments.bench.results import (
    BENCH_ENVIRONMENT,
    print_table,
    recorded_environment,
    write_json,
)
from experiments.bench.training import masked, seeds

GROUPS: dict[str, Callable[[], list[dict]]] = {
    "ceiling": ceiling,
    "kernels": kernels,
    "masked": masked,
    "seeds": seeds,
    "analysis": analysis,
    "outputs": outputs,  # sparse outputs vs the dense floor
    "hamming": hamming,  # Hamming k-NN vs FAISS and numpy
}


DESCRIPTION = """\
Time the esparse kernels against numpy, torch, scikit-learn and FAISS on this machine; print
a table and merge the rows into the JSON file --out. Each row: the esparse time, the peer's,
their ratio (below 1: esparse is faster) and a fraction of the matmul ceiling. Times are
medians after a warm-up.

groups: {groups}

The device check (its own flags; see `python -m experiments.bench device --help`):
  python -m experiments.bench device [--small | --full] [--out PATH] [--claims ID ...]
      [--full-claims a,b,...|prepared] [--budget-s SECONDS]
"""


def unwritable(path: Path) -> str | None:
    """Why a JSON file could not be written at `path` (checked before any timing), or None."""
    if path.is_dir():
        return "it is a directory"
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is not writable"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as err:
        return err.strerror or str(err)
    return None


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The benchmark flags (not `device`'s), checked before any timing (exit 2 on a bad one)."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments.bench",
        description=DESCRIPTION.format(groups=", ".join(GROUPS)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("groups", nargs="*", help="groups to run (default: all)")
    parser.add_argument(
        "--out",
        default="results/bench.json",
        help="JSON file to merge into (default: results/bench.json)",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.groups if name not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {unknown}; known: {', '.join(GROUPS)}, or device")
    problem = unwritable(Path(args.out))
    if problem:
        parser.error(f"--out {args.out!r} is not a writable JSON path: {problem}")
    return args


def main(argv: list[str] | None = None) -> int:
    """The benchmark command line (see the module docstring); `device` runs the device check."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["device"]:  # the one-shot device check has its own options and JSON
        from experiments.bench import device

        return device.main(argv[1:])
    args = parse_args(argv)
    torch_or_none()  # the torch peer is loaded (all cores) before the environment records it
    env = recorded_environment(BENCH_ENVIRONMENT)
    print(json.dumps(env))
    results, all_rows = {}, []
    for name in args.groups or list(GROUPS):
        rows = GROUPS[name]()
        results[name] = {"rows": rows, "environment": env, "when": time.strftime("%Y-%m-%d %H:%M")}
        all_rows += rows
    print_table(all_rows)
    write_json(Path(args.out), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
