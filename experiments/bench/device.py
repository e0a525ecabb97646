"""One-shot device check: the figures an accelerator must report, in one JSON file.

python -m experiments.bench device [--small | --full] [--out PATH] [--claims ID ...]
    [--seed-counts S ...] [--budget-s SECONDS] [--full-claims ID,ID,...|prepared]
    [--full-seeds 32] [--full-scale full] [--full-out results/full] [--no-check]

When a GPU is at hand, the one command (about 10 minutes on one H200, compile included):
    python -m experiments.bench device --claims none --full-claims prepared --budget-s 570

Run once on a GPU or TPU machine (--full, the default there; under 8 minutes) and on CPU
(--small, the default there; about 2 minutes). Sections, each timed after a warm-up:
- device: backend, device kind and count, versions;
- matmul: float32 ceiling at the default precision and at HIGHEST (TF32 / bf16 passes on
  accelerators, which is why esparse's solves ask for HIGHEST);
- kwta: every selection method (esparse.selection) vs `lax.top_k` alone, and whether all
  methods gave identical outputs on this backend;
- expand_and_sparsify: gaussian E&S per method, as a multiple of its matmul alone;
- seeds: vmapped `train_seeds` vs a Python loop at each S (experiments.bench.training.seeds);
- claims: each claim at quick scale (smoke with --small), time and verdict next to the CPU
  quick verdict of BUILD_NOTES.md; claims are run shortest first, and one is skipped when the
  time budget cannot fit it;
- full_claims (--full-claims): those claims at full scale, 32 seeds, each in its own process
  (experiments.bench.fullclaims; "prepared": the claims whose 141 GB plan fits), their JSON,
  PNG and REPORT.md under --full-out, and one table: claim, seconds, seeds, verdict, GPU
  memory peak. They share the time budget; a claim still running at its end is stopped.
The JSON is written atomically after every section, so a run cut short keeps what it did.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import esparse
from esparse import projection, selection, sparsify
from experiments.bench import fullclaims
from experiments.bench.harness import timed
from experiments.bench.results import recorded_environment, write_record
from experiments.bench.training import seeds

# Quick-scale verdicts and wall times (s) on the 2-core CPU (BUILD_NOTES.md, 2026-11-23).
CPU_QUICK = {
    "lottery-ticket": ("reproduced", 15),
    "es-expansion": ("reproduced", 19),
    "random-net": ("reproduced", 25),
    "random-labels": ("reproduced", 27),
    "supermask": ("reproduced", 28),
    "double-descent": ("reproduced", 33),
    "feature-repopulation": ("reproduced", 49),
    "layer-mi": ("inconclusive", 57),
    "rf-single-neuron": ("reproduced", 74),
    "flyhash-search": ("reproduced", 79),
    "dropout": ("reproduced", 165),
}

SIZES = {
    "full": {
        "matmul": 8192,
        "kwta": (4096, 8192, 410),
        "es": (4096, 784, 8192, 410),
        "seed_counts": (1, 8, 32, 128, 512),
        "seed_steps": 200,
        "scale": "quick",
        "budget_s": 450.0,
    },
    "small": {
        "matmul": 1024,
        "kwta": (512, 2048, 102),
        "es": (512, 784, 2048, 102),
        "seed_counts": (1, 8),
        "seed_steps": 50,
        "scale": "smoke",
        "budget_s": 110.0,
    },
}


# Names in the device record -> keys of experiments.runner.environment(host=True).
DEVICE_ENVIRONMENT = {
    "backend": "backend",
    "device_kind": "devices",
    "device_count": "device_count",
    "platform": "platform",
    "jax": "jax",
    "jaxlib": "jaxlib",
    "machine": "machine",
    "cpus": "cpus",
}


def device_info() -> dict:
    """Backend, device kind and count, platform, versions, machine and CPU count."""
    return recorded_environment(DEVICE_ENVIRONMENT)


def matmul_ceiling(n: int) -> dict:
    """float32 n^3 matmul: ms and TFLOP/s at the default precision and at HIGHEST."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    out = {"n": n}
    for name, precision in (("default", None), ("highest", lax.Precision.HIGHEST)):
        mm = jax.jit(lambda u, p=precision: jnp.matmul(u, u, precision=p))
        ms = timed(lambda mm=mm: mm(a))
        out[name] = {"ms": ms, "tflops": 2 * n**3 / (ms * 1e9)}
    return out


def kwta_methods(rows: int, n: int, k: int) -> dict:
    """kwta (values) with each method vs lax.top_k alone on Gaussian rows."""
    x = jax.random.normal(jax.random.key(1), (rows, n))
    top_k = jax.jit(lambda v: lax.top_k(v, k)[0])
    out = {"shape": [rows, n], "k": k, "lax.top_k ms": timed(lambda: top_k(x))}
    results = {}
    for method in selection.METHODS:
        out[f"{method} ms"] = timed(lambda m=method: sparsify.kwta(x, k, method=m))
        results[method] = np.asarray(sparsify.kwta(x, k, method=method))
    first = results[selection.METHODS[0]]
    out["identical"] = all(np.array_equal(first, r) for r in results.values())
    out["auto is"] = _auto_method()
    return out


def _auto_method() -> str:
    return selection.AUTO.get(jax.default_backend(), selection.AUTO["default"])


def es_fraction(batch: int, d_in: int, m: int, k: int) -> dict:
    """Gaussian expand_and_sparsify per method, and as a multiple of the matmul alone."""
    key = jax.random.key(2)
    x = jax.random.normal(jax.random.key(3), (batch, d_in))
    w = projection.gaussian(key, d_in, m)
    matmul = jax.jit(lambda a, b: a @ b)
    out = {"shape": [batch, d_in, m], "k": k, "matmul ms": timed(lambda: matmul(x, w))}
    for method in selection.METHODS:
        ms = timed(lambda m_=method: esparse.expand_and_sparsify(key, x, m, k, method=m_))
        out[f"{method} ms"] = ms
        out[f"{method} / matmul"] = ms / out["matmul ms"]
    return out


def run_claims(ids: list[str], scale: str, deadline: float, out_dir: Path) -> list[dict]:
    """Each claim's time and verdict at `scale`, shortest on CPU first, within the deadline."""
    from experiments import claims as registry
    from experiments.runner import run_claim

    known = registry.claim_ids()
    order = sorted(ids, key=lambda c: CPU_QUICK.get(c, (None, 1e9))[1])
    rows = []
    for claim_id in order:
        cpu_verdict, cpu_s = CPU_QUICK.get(claim_id, (None, None))
        entry = {"claim": claim_id, "scale": scale, "cpu_quick_verdict": cpu_verdict}
        left = deadline - time.perf_counter()
        if claim_id not in known:
            entry["skipped"] = "unknown claim"
        elif left < min(cpu_s or 60, 60) * (0.2 if scale == "smoke" else 1.0):
            entry["skipped"] = f"time budget ({left:.0f} s left)"
        else:
            start = time.perf_counter()
            record = run_claim(registry.get(claim_id), scale, out_dir=out_dir, force=True)
            entry["seconds"] = round(time.perf_counter() - start, 1)
            entry["verdict"] = record["verdict"]
            if scale == "quick":
                entry["same_as_cpu"] = record["verdict"] == cpu_verdict
        rows.append(entry)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench device", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--small", action="store_true", help="reduced sizes (default on CPU)")
    size.add_argument("--full", action="store_true", help="device sizes (default on GPU/TPU)")
    parser.add_argument("--out", help="JSON path (default results/device_<backend>.json)")
    parser.add_argument("--claims", nargs="*", help="claim ids (default: all; none: no claims)")
    parser.add_argument("--seed-counts", type=int, nargs="*", help="S values for the seeds rows")
    parser.add_argument("--budget-s", type=float, help="seconds for the whole check")
    parser.add_argument(
        "--full-claims",
        help="comma-separated claim ids to run at full scale after the check, or 'prepared' "
        f"({','.join(fullclaims.PREPARED)})",
    )
    parser.add_argument("--full-seeds", type=int, default=32, help="seeds of the full claims")
    parser.add_argument("--full-scale", default="full", help="their scale (smoke: a dry run)")
    parser.add_argument("--full-out", default="results/full", help="their JSON and REPORT.md")
    parser.add_argument(
        "--no-check", action="store_true", help="skip the matmul, kwta, E&S and seeds sections"
    )
    args = parser.parse_args(argv)
    full = [] if not args.full_claims else args.full_claims.split(",")
    if full == ["prepared"]:
        full = list(fullclaims.PREPARED)
    from experiments import claims as registry

    unknown = [c for c in full if c not in registry.claim_ids()]
    if unknown:  # before any device time is spent
        parser.error(f"--full-claims: unknown claim(s) {unknown}; known: {registry.claim_ids()}")
    start = time.perf_counter()
    small = args.small or (not args.full and jax.default_backend() == "cpu")
    sizes = SIZES["small" if small else "full"]
    deadline = start + (args.budget_s or sizes["budget_s"])
    path = Path(args.out or f"results/device_{jax.default_backend()}.json")
    record = {"size": "small" if small else "full", "when": time.strftime("%Y-%m-%d %H:%M")}
    record["device"] = device_info()
    sections = (
        ("matmul", lambda: matmul_ceiling(sizes["matmul"])),
        ("kwta", lambda: kwta_methods(*sizes["kwta"])),
        ("expand_and_sparsify", lambda: es_fraction(*sizes["es"])),
        (
            "seeds",
            lambda: seeds(tuple(args.seed_counts or sizes["seed_counts"]), sizes["seed_steps"]),
        ),
    )
    for name, run in sections if not args.no_check else ():
        section_start = time.perf_counter()
        record[name] = run()
        print(f"{name}: {time.perf_counter() - section_start:.1f} s", flush=True)
        write_record(path, record, indent=1)
    ids = list(CPU_QUICK) if args.claims is None else [c for c in args.claims if c != "none"]
    with tempfile.TemporaryDirectory() as tmp:
        record["claims"] = run_claims(ids, sizes["scale"], deadline, Path(tmp))
    if full:
        write_record(path, record, indent=1)
        print(fullclaims.table([], header=True), flush=True)
        rows = fullclaims.run_full_claims(
            full, args.full_scale, args.full_seeds, Path(args.full_out), deadline
        )
        record["full_claims"] = {"scale": args.full_scale, "out": args.full_out, "rows": rows}
    record["total_s"] = round(time.perf_counter() - start, 1)
    write_record(path, record, indent=1)
    shown = ("device", "kwta", "claims", "total_s")
    print(json.dumps({k: record[k] for k in shown if k in record}, indent=1))
    if full:
        print(fullclaims.table(record["full_claims"]["rows"]))
    print(f"wrote {path}")
    return 0
