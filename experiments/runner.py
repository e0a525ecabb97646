"""Run claims: keys for the seeds, one vmapped run per claim, verdict, JSON + PNG written
atomically, and a skip of claims already done with the same config (so a suite resumes)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from esparse import engine, execution, io, stats
from experiments.core import MIN_SEEDS, PAPERS, Claim, Evaluation, training_checks

RESULT_VERSION = 2  # 2: decision, preliminary, under-trained fractions, budget


def seed_keys(base_seed: int, n_seeds: int) -> jax.Array:
    """n_seeds keys; key i is fold_in(key(base_seed), i), whatever n_seeds is."""
    base = jax.random.key(base_seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(n_seeds))


def _source_files(claim: Claim) -> list[Path]:
    """The code a claim's numbers depend on: the esparse package, the shared claim helpers and
    the claim's own module."""
    import esparse

    package = sorted(Path(esparse.__file__).parent.rglob("*.py"))
    claim_module = Path(sys.modules[claim.run.__module__].__file__)
    return [*package, Path(__file__).with_name("core.py"), claim_module]


def code_identity(claim: Claim) -> dict:
    """The package version and a digest of the sources behind `claim` (`_source_files`), so
    that a code change makes the runner redo the claim instead of showing an older verdict."""
    import esparse

    digest = hashlib.sha256()
    for path in _source_files(claim):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return {"esparse_version": esparse.__version__, "source_digest": digest.hexdigest()[:16]}


def config_hash(claim: Claim, scale: str, config: Any, base_seed: int) -> str:
    """A digest of everything that determines a claim's result: config, scale, seeds, the
    record format and the code (`code_identity`)."""
    payload = {
        "claim": claim.id,
        "scale": scale,
        "config": dataclasses.asdict(config),
        "base_seed": base_seed,
        "version": RESULT_VERSION,
        "code": code_identity(claim),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def matmul_precision() -> dict:
    """The float32 matmul precision of this run: the training default and the verdict path."""
    default = jax.config.jax_default_matmul_precision
    return {
        "default": default or f"backend default ({jax.default_backend()})",
        "solves_distances_predictions": "highest (precision=HIGHEST in esparse)",
    }


def environment(*, host: bool = False) -> dict:
    """Versions, backend and devices, and the git commit when available.

    host=True adds what the benchmarks record about the machine and the libraries this
    process has loaded (`_host`); a claim's record has only the keys above."""

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args],
                capture_output=True,
                text=True,
                check=True,
                cwd=Path(__file__).parent,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "esparse", "experiments")
    import jaxlib

    env = {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "devices": str(jax.devices()[0].device_kind),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "git_commit": commit,
        "git_dirty": None if dirty is None else bool(dirty),
        "matmul_precision": matmul_precision(),
        "xla_flags": os.environ.get("XLA_FLAGS"),
    }
    return {**env, **_host()} if host else env


def _host() -> dict:
    """CPU count, the first device's platform, numpy's version and the BLAS libraries loaded
    in this process (threadpoolctl), torch's version if this process has imported torch (the
    benchmarks do, as a peer; None otherwise: this never imports it)."""
    torch = sys.modules.get("torch")
    host = {
        "cpus": os.cpu_count(),
        "platform": jax.devices()[0].platform,
        "numpy": np.__version__,
        "torch": None if torch is None else torch.__version__,
    }
    try:
        from threadpoolctl import threadpool_info

        host["numpy_blas"] = [
            {k: i.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        ]
    except ImportError:
        host["numpy_blas"] = "threadpoolctl not installed"
    return host


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray | jax.Array):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def write_json(path: Path, record: dict) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(_jsonable(record), f, indent=1)

    io.atomic_write(path, write)


def load_record(path: Path) -> dict | None:
    """A finished result file, or None when absent or unreadable."""
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return record if "verdict" in record else None


def checkpoint_dir(out_dir: str | os.PathLike, claim: Claim, digest: str) -> Path:
    """Where a claim's engine checkpoints go: one directory per claim and config hash, so a
    changed config or code never resumes from another run's state."""
    return Path(out_dir) / ".checkpoints" / f"{claim.id}-{digest}"


def plan_claim(
    claim: Claim,
    scale: str = "full",
    *,
    seeds: int | None = None,
    chunk_size: int | str | None = "auto",
    devices: int | None = None,
    memory_bytes: int | None = None,
    export: tuple[str, ...] = (),
) -> dict:
    """Compile, without running, every engine call of one claim (`esparse.execution` plan
    mode): per call the seeds per call chosen for the memory budget, the peak memory per call
    and the FLOPs; returns them with the claim's totals. Non-engine code of the claim runs on
    the zeros the planned calls return (cheap next to the engine's work).

    export: lower each call for these platforms instead (`esparse.exporting`, no memory
    measured); "problems" then lists, per call, what its audit found ("call i name: ...")."""
    config = claim.config(scale, seeds)
    keys = seed_keys(0, config.seeds)
    start = time.perf_counter()
    with execution.execution(
        chunk_size=chunk_size, devices=devices, memory_bytes=memory_bytes, plan=True, export=export
    ):
        try:
            with np.errstate(all="ignore"):  # the claim's own code runs on planned zeros
                claim.run(keys, config)
            calls = execution.planned_calls()
        finally:
            engine.clear_caches()  # a claim's compiled programs are not needed by the next
    return {
        "claim": claim.id,
        "scale": scale,
        "seeds": config.seeds,
        "calls": calls,
        "seeds_per_call": sorted({c["seeds_per_call"] for c in calls}),
        "peak_bytes_per_call": max((c["peak_bytes_per_call"] or 0 for c in calls), default=0),
        "flops": float(sum(c["flops"] for c in calls)),
        "float64_calls": [c["call"] for c in calls if c.get("float64")],
        "problems": [
            f"call {i} {c['call']}: {problem}"
            for i, c in enumerate(calls)
            for problem in c.get("export", {}).get("problems", [])
        ],
        "plan_seconds": round(time.perf_counter() - start, 1),
    }


def judge(claim: Claim, scale: str, metrics: dict, config: Any) -> dict:
    """The claim's criterion on its per-seed metrics, under the one verdict rule.

    Adds to the claim's own checks the convergence checks of its training curves (a claim
    that trains at this config's budget must return them), decides the main verdict and each
    sub-verdict (`stats.decide`, preliminary below the scale's minimum seeds), and returns the
    record's summary, headline, checks, verdict, decision, under-trained fractions and
    sub-verdicts.
    """
    evaluation: Evaluation = claim.evaluate(metrics, config)
    under_trained, guards = training_checks(claim, scale, metrics, config)
    if claim.trains(config) and not under_trained:
        raise ValueError(f"claim {claim.id} trains but its run returned no training curves")
    min_seeds = MIN_SEEDS[scale]
    checks = [*evaluation.checks, *guards]
    decision = stats.decide(checks, config.seeds, min_seeds)
    sub_verdicts = {}
    for name, sub_checks in evaluation.sub_verdicts.items():
        sub = stats.decide([*sub_checks, *guards], config.seeds, min_seeds)
        sub_verdicts[name] = {
            "verdict": sub.verdict,
            "decision": sub.to_dict(),
            "checks": [c.to_dict() for c in [*sub_checks, *guards]],
        }
    return {
        "summary": {**evaluation.summary, "under_trained": under_trained},
        "headline": evaluation.headline,
        "checks": [c.to_dict() for c in checks],
        "verdict": decision.verdict,
        "decision": decision.to_dict(),
        "preliminary": decision.preliminary,
        "under_trained": under_trained,
        "sub_verdicts": sub_verdicts,
    }


def run_claim(
    claim: Claim,
    scale: str = "quick",
    *,
    seeds: int | None = None,
    base_seed: int = 0,
    out_dir: str | os.PathLike = "results",
    force: bool = False,
    chunk_size: int | str | None = None,
    devices: int | None = None,
    checkpoint_every: int | None = None,
    memory_bytes: int | None = None,
) -> dict:
    """Run one claim (its seeds through the engine), decide its verdict, write
    DIR/<claim>.json and DIR/<claim>.png; skip when the same config is already done.

    chunk_size, devices, checkpoint_every, memory_bytes: the seed engine's settings for every
    call the claim makes (`esparse.execution`; chunk_size "auto" fits memory_bytes). With
    checkpoint_every, each training run saves its state every that many steps under
    `checkpoint_dir(...)`; run again after an interruption, the claim resumes from there and
    ends with the same per-seed numbers; the checkpoints are removed once the claim's JSON is
    written. In a multi-process run every process computes its shard of the seeds and only
    process 0 writes.
    """
    out = Path(out_dir)
    config = claim.config(scale, seeds)
    digest = config_hash(claim, scale, config, base_seed)
    json_path, png_path = out / f"{claim.id}.json", out / f"{claim.id}.png"
    previous = load_record(json_path)
    if not force and previous is not None and previous.get("config_hash") == digest:
        previous["skipped"] = True
        return previous

    ckpt_dir = checkpoint_dir(out, claim, digest) if checkpoint_every is not None else None
    if force and ckpt_dir is not None and jax.process_index() == 0:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    start = time.perf_counter()
    keys = seed_keys(base_seed, config.seeds)
    with execution.execution(
        chunk_size=chunk_size,
        devices=devices,
        checkpoint_dir=None if ckpt_dir is None else str(ckpt_dir),
        checkpoint_every=checkpoint_every,
        memory_bytes=memory_bytes,
    ):
        try:
            metrics = {name: np.asarray(v) for name, v in claim.run(keys, config).items()}
        finally:
            engine.clear_caches()
    wall = time.perf_counter() - start
    judged = judge(claim, scale, metrics, config)
    record = {
        "claim": claim.id,
        "paper": claim.paper,
        "paper_title": PAPERS[claim.paper],
        "statement": claim.statement,
        "anchor": claim.anchor,
        "reconstruction": claim.reconstruction,
        "scale": scale,
        "config": dataclasses.asdict(config),
        "config_hash": digest,
        "base_seed": base_seed,
        "seeds": config.seeds,
        "metrics": metrics,
        **judged,
        "budget": claim.budget(scale),
        "wall_time_s": round(wall, 2),
        "code": code_identity(claim),
        "protocol_changes": [dataclasses.asdict(c) for c in claim.changes],
        "environment": environment(),
        "execution": {
            "chunk_size": chunk_size,
            "devices": devices,
            "checkpoint_every": checkpoint_every,
            "memory_bytes": memory_bytes,
            "processes": jax.process_count(),
        },
        "figure": png_path.name,
    }
    if jax.process_index() == 0:
        io.atomic_write(png_path, lambda tmp: claim.plot(metrics, config, tmp))
        write_json(json_path, record)
        if ckpt_dir is not None:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
            with contextlib.suppress(OSError):  # the parent, once no other claim uses it
                ckpt_dir.parent.rmdir()
    return record
