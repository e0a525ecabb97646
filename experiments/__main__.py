"""The reproduction suite's command line.

python -m experiments [CLAIM ...] --scale {smoke,quick,full} --seeds N --seed BASE --out DIR
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from experiments import claims
from experiments.core import SCALES
from experiments.report import write_report
from experiments.runner import run_claim


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m experiments",
        description="Re-run the esparse claims and write JSON, figures and REPORT.md.",
    )
    parser.add_argument("claims", nargs="*", help="claim ids (default: all)")
    parser.add_argument("--scale", default="quick", help=f"one of {', '.join(SCALES)}")
    parser.add_argument("--seeds", type=int, default=None, help="seed count (default: scale's)")
    parser.add_argument("--seed", type=int, default=0, help="base of the seed keys")
    parser.add_argument("--out", default="results", help="output directory")
    parser.add_argument("--force", action="store_true", help="redo claims already done")
    parser.add_argument("--list", action="store_true", help="list the claims and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.scale not in SCALES:
        parser.error(f"--scale must be one of {', '.join(SCALES)}, got {args.scale!r}")
    unknown = [c for c in args.claims if c not in claims.claim_ids()]
    if unknown:
        parser.error(f"unknown claim(s) {unknown}; known: {', '.join(claims.claim_ids())}")
    if args.seeds is not None and args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    if not 0 <= args.seed < 2**32:
        parser.error(f"--seed must be in [0, 2**32), got {args.seed}")
    if not args.list:
        problem = _unwritable(Path(args.out))
        if problem:
            parser.error(f"--out {args.out!r} is not a writable directory: {problem}")
    return args


def _unwritable(out: Path) -> str | None:
    """Why results could not be written under `out` (checked before any compute), or None."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        return err.strerror or str(err)
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for cid in claims.claim_ids():
            claim = claims.get(cid)
            print(f"{cid:22s} {claim.paper:4s} {claim.statement}")
        return 0
    from tqdm import tqdm

    ids = args.claims or claims.claim_ids()
    rows = []
    bar = tqdm(ids, desc="claims", unit="claim", disable=args.quiet or None)
    for cid in bar:
        bar.set_postfix_str(cid)
        start = time.perf_counter()
        record = run_claim(
            claims.get(cid),
            args.scale,
            seeds=args.seeds,
            base_seed=args.seed,
            out_dir=args.out,
            force=args.force,
        )
        took = "skipped (done)" if record.get("skipped") else f"{time.perf_counter() - start:.1f} s"
        rows.append((cid, record["verdict"], took, record["headline"]))
    report = write_report(args.out, claims.claim_ids())
    width = max(len(r[0]) for r in rows)
    print(f"\n{'claim':{width}s}  {'verdict':15s}  {'time':15s}  key numbers")
    for cid, verdict, took, headline in rows:
        print(f"{cid:{width}s}  {verdict:15s}  {took:15s}  {headline}")
    print(f"\nreport: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
