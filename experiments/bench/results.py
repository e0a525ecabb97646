"""What the benchmarks write: the environment record, the printed table of rows, and JSON
files, written atomically (`esparse.io.atomic_write`, through `write_record` only)."""

from __future__ import annotations

import json
from pathlib import Path

from esparse import io
from experiments.runner import environment

# Names in a bench record -> keys of experiments.runner.environment(host=True).
BENCH_ENVIRONMENT = {
    "machine": "machine",
    "cpus": "cpus",
    "jax": "jax",
    "jax_backend": "backend",
    "numpy": "numpy",
    "torch": "torch",
    "numpy_blas": "numpy_blas",
}


def recorded_environment(names: dict[str, str]) -> dict:
    """experiments.runner.environment(host=True), its keys renamed and chosen by `names`
    (record name -> environment key)."""
    env = environment(host=True)
    return {name: env[key] for name, key in names.items()}


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_table(rows: list[dict]) -> None:
    """Print rows (harness.row) as a fixed-width table."""
    head = f"{'group':8} {'name':48} {'esparse ms':>10} {'peer':14} {'peer ms':>9} {'ratio':>6}"
    print(head + f" {'ceil':>5}  note")
    for r in rows:
        print(
            f"{r['group']:8} {r['name'][:48]:48} {_fmt(r['esparse_ms'], '10.1f')} "
            f"{(r['peer'] or '-')[:14]:14} {_fmt(r['peer_ms'], '9.1f')} "
            f"{_fmt(r['ratio'], '6.2f')} {_fmt(r['ceiling_fraction'], '5.2f')}  {r['note']}"
        )


def write_record(path: Path, record: dict, indent: int) -> None:
    """Write record as JSON to path atomically (a temp file, then a rename)."""

    def write(tmp):
        with open(tmp, "w") as fh:
            json.dump(record, fh, indent=indent)

    io.atomic_write(path, write)


def write_json(path: Path, results: dict) -> None:
    """Merge `results` (group -> entry) into the JSON file at path, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    merged = {"groups": {}}
    if path.exists():
        try:
            merged = json.loads(path.read_text())
        except json.JSONDecodeError:
            merged = {"groups": {}}
    merged.setdefault("groups", {}).update(results)
    write_record(path, merged, indent=2)
