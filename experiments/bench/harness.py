"""How the benchmarks measure: medians of repeated runs after a warm-up, esparse and its peer
timed alternately, the first call's time, a run in a fresh process for its peak RSS, and the
row every group returns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

_PAUSE_S = 0.25
_ROOT = Path(__file__).resolve().parents[2]  # the checkout, for fresh processes' imports

# /proc/self/status in MB, for code run by `in_fresh_process`. VmHWM is the peak resident
# set; it resets at exec (unlike ru_maxrss) and when "5" is written to /proc/self/clear_refs.
_STATUS_MB = """
def status_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
"""


def timed(fn: Callable[[], object], reps: int = 5) -> float:
    """Median wall time in ms of fn() over `reps` runs after one warm-up run."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def timed_pair(fn_a: Callable[[], object], fn_b: Callable[[], object], reps: int = 7):
    """Median wall times in ms of fn_a() and fn_b(), run alternately after a warm-up of each,
    so that a change in the machine's speed during the run (a shared VM) hits both alike.
    A pause before each run lets the other library's worker threads, which spin for a while
    after each call (OpenBLAS, XLA's pool), go idle instead of stealing a core."""
    jax.block_until_ready(fn_a())
    jax.block_until_ready(fn_b())
    times: tuple[list, list] = ([], [])
    for _ in range(reps):
        for fn, out in ((fn_a, times[0]), (fn_b, times[1])):
            time.sleep(_PAUSE_S)
            start = time.perf_counter()
            jax.block_until_ready(fn())
            out.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times[0])), 1e3 * float(np.median(times[1]))


def first_call_ms(fn: Callable[[], object]) -> float:
    """Wall time in ms of one call of fn(), compilation included when it is the first."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return 1e3 * (time.perf_counter() - start)


def row(group, name, esparse_ms, peer, peer_ms, ceiling_fraction=None, note="") -> dict:
    """One result row; ratio is esparse_ms / peer_ms (None without a peer time)."""
    ratio = None if peer_ms is None else esparse_ms / peer_ms
    return {
        "group": group,
        "name": name,
        "esparse_ms": esparse_ms,
        "peer": peer,
        "peer_ms": peer_ms,
        "ratio": ratio,
        "ceiling_fraction": ceiling_fraction,
        "note": note,
    }


def in_fresh_process(code: str, *args: str) -> dict:
    """Run `code` (python -c, with `args` as sys.argv[1:]) in a fresh process that imports
    this checkout, and return the JSON object on the last line it prints. The code may call
    status_mb(field), a field of /proc/self/status in MB (VmRSS, VmHWM: peak resident set)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(_ROOT)] + sys.path)
    done = subprocess.run(
        [sys.executable, "-c", _STATUS_MB + code, *args],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])
