"""The reproduction suite's command line.

python -m experiments [CLAIM ...] --scale {smoke,quick,full} --seeds N --seed BASE --out DIR
    [--chunk-size N|auto] [--devices N|all] [--checkpoint-every STEPS]
    [--coordinator HOST:PORT --num-processes N --process-id I | --distributed]
python -m experiments calibrate [CLAIM ...] [--scale S] [--plan]   (experiments.calibrate)

Seeds run through the engine (`esparse.execution`): --chunk-size runs them in chunks,
--devices shards the seed axis over devices, --checkpoint-every saves every training run's
state so that the same command, run again after an interruption (Ctrl-C, a killed job),
resumes where it stopped. The multi-process flags call `jax.distributed.initialize`; every
process runs the same command, computes its shard of the seeds, and process 0 writes.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

from esparse import execution
from experiments import claims, xla_flags
from experiments.core import SCALES
from experiments.report import write_report
from experiments.runner import plan_claim, run_claim

PROG = "python -m experiments"

# The variables `jax.distributed.initialize()` reads when no coordinator is given: its own, and
# those of the clusters it detects (SLURM, Open MPI, Kubernetes; a Cloud TPU VM is detected
# from its metadata server).
CLUSTER_VARIABLES = (
    "JAX_COORDINATOR_ADDRESS",
    "JAX_LOCAL_DEVICE_IDS",
    "SLURM_JOB_ID/SLURM_NTASKS/SLURM_PROCID",
    "OMPI_MCA_orte_hnp_uri/OMPI_COMM_WORLD_SIZE/OMPI_COMM_WORLD_RANK",
    "KUBERNETES_SERVICE_HOST",
    "TPU_WORKER_HOSTNAMES/TPU_WORKER_ID",
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help with every default shown: argparse's "(default: X)" where the flag has a value
    and its help does not already say the default; the description's lines kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        if action.default is None or action.default is False or "default" in help_text:
            return help_text
        return super()._get_help_string(action)


def fail(message: str) -> NoReturn:
    """A bad flag found after parsing (it needs the devices or the cluster): one line on
    stderr, exit 2 like argparse's own errors, no traceback."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The runner's argument parser (`parse_args` adds the checks that need no device)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Re-run the esparse claims and write JSON, figures and REPORT.md.\n"
        "  python -m experiments calibrate --help   the budget calibration (its own flags)",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("claims", nargs="*", help="claim ids (default: all; see --list)")
    parser.add_argument("--scale", default="quick", help=f"one of {', '.join(SCALES)}")
    parser.add_argument(
        "--seeds", type=int, default=None, help="seed count (default: the scale's, 8 quick)"
    )
    parser.add_argument("--seed", type=int, default=0, help="base of the seed keys")
    parser.add_argument("--out", default="results", help="output directory")
    parser.add_argument("--force", action="store_true", help="redo claims already done")
    parser.add_argument("--list", action="store_true", help="list the claims and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    engine = parser.add_argument_group("seed engine and scale-out")
    engine.add_argument(
        "--chunk-size",
        help="seeds per compiled call: N, or auto (on a CPU, 8 is fastest) (default: all seeds "
        "in one call; auto with --plan or --memory)",
    )
    engine.add_argument(
        "--devices", help="shard the seed axis over N local devices, or all (default: one device)"
    )
    engine.add_argument(
        "--checkpoint-every",
        type=int,
        help="save training state every STEPS steps (resumable) (default: no checkpoints)",
    )
    engine.add_argument(
        "--memory", type=float, help="GB per device for --chunk-size auto (default: the device's)"
    )
    engine.add_argument(
        "--plan",
        action="store_true",
        help="compile (do not run) every claim's programs; print chunk, memory, FLOPs, time",
    )
    engine.add_argument(
        "--peak-tflops",
        type=float,
        default=50.0,
        help="peak TFLOP/s for --plan's time estimate (default 50, a recent GPU in float32)",
    )
    engine.add_argument(
        "--export",
        metavar="PLATFORMS",
        help="with --plan: lower every claim's programs for these platforms (e.g. cuda,tpu) "
        "instead of compiling them here, and audit them (exit 1 on a problem) (default: "
        "compile for this machine)",
    )
    engine.add_argument(
        "--coordinator", help="HOST:PORT of process 0 (multi-process run) (default: one process)"
    )
    engine.add_argument("--num-processes", type=int, help="processes in a multi-process run")
    engine.add_argument("--process-id", type=int, help="this process's id in [0, N)")
    engine.add_argument(
        "--distributed",
        action="store_true",
        help="multi-process with the cluster's environment, as jax.distributed.initialize() "
        "finds it: JAX_COORDINATOR_ADDRESS, or a SLURM, Open MPI, Kubernetes or Cloud TPU job",
    )
    engine.add_argument(
        "--init-timeout", type=int, default=60, help="seconds to wait for the coordinator"
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, with every check that needs no device (exit 2 on a bad one)."""
    parser = build_parser()
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
    _check_engine_flags(parser, args)
    if not args.list:
        problem = _unwritable(Path(args.out))
        if problem:
            parser.error(f"--out {args.out!r} is not a writable directory: {problem}")
    return args


def _check_engine_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Flag values that need no devices to check (the device count is known only after
    `jax.distributed.initialize`; `resolve_engine` checks the rest)."""
    if args.chunk_size not in (None, "auto") and not (
        args.chunk_size.isdigit() and int(args.chunk_size) >= 1
    ):
        parser.error(f"--chunk-size must be a positive int or auto, got {args.chunk_size!r}")
    if args.devices not in (None, "all") and not (
        args.devices.isdigit() and int(args.devices) >= 1
    ):
        parser.error(f"--devices must be a positive int or all, got {args.devices!r}")
    if args.memory is not None and not args.memory > 0:
        parser.error(f"--memory must be a positive number of GB, got {args.memory}")
    if not args.peak_tflops > 0:
        parser.error(f"--peak-tflops must be positive, got {args.peak_tflops}")
    if args.export is not None:
        from experiments.exports import parse_platforms

        if not args.plan:
            parser.error("--export needs --plan (it lowers the planned programs)")
        try:
            args.export = parse_platforms(args.export)
        except ValueError as err:
            parser.error(str(err))
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        parser.error(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    multi = (args.coordinator, args.num_processes, args.process_id)
    if any(v is not None for v in multi):
        if any(v is None for v in multi):
            parser.error("--coordinator, --num-processes and --process-id go together")
        if args.num_processes < 1:
            parser.error(f"--num-processes must be >= 1, got {args.num_processes}")
        if not 0 <= args.process_id < args.num_processes:
            parser.error(
                f"--process-id must be in [0, {args.num_processes}), got {args.process_id}"
            )
        if args.coordinator.rpartition(":")[2].isdigit() is False:
            parser.error(f"--coordinator must be HOST:PORT, got {args.coordinator!r}")
    if args.init_timeout < 1:
        parser.error(f"--init-timeout must be >= 1, got {args.init_timeout}")


def start_processes(args: argparse.Namespace) -> None:
    """`jax.distributed.initialize` from the flags (before any device is touched)."""
    import jax

    if args.coordinator is not None:
        if args.process_id != 0:  # jax aborts the process when the coordinator never answers
            _wait_for_coordinator(args.coordinator, args.init_timeout)
        try:
            jax.distributed.initialize(
                coordinator_address=args.coordinator,
                num_processes=args.num_processes,
                process_id=args.process_id,
                initialization_timeout=args.init_timeout,
            )
        except Exception as err:  # a coordinator that never answers: say which flag
            raise SystemExit(
                f"python -m experiments: error: --coordinator {args.coordinator}: no multi-process "
                f"start within --init-timeout {args.init_timeout} s ({type(err).__name__})"
            ) from err
    elif args.distributed:
        try:
            jax.distributed.initialize(initialization_timeout=args.init_timeout)
        except (ValueError, RuntimeError) as err:  # no cluster found: say what was looked for
            reason = " ".join(str(err).split()).rstrip(".")
            fail(
                f"--distributed found no cluster ({reason}): it reads "
                f"{', '.join(CLUSTER_VARIABLES)}; on another machine give --coordinator "
                "HOST:PORT --num-processes N --process-id I"
            )


def _wait_for_coordinator(address: str, timeout: int) -> None:
    """Return once HOST:PORT accepts a connection; exit with a clear message after `timeout`."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"python -m experiments: error: --coordinator {address}: no multi-process "
                    f"start within --init-timeout {timeout} s (nothing answers there)"
                ) from None
            time.sleep(0.2)


def resolve_engine(args: argparse.Namespace) -> dict:
    """The engine settings of the flags: chunk_size, devices, checkpoint_every."""
    import jax

    chunk = args.chunk_size
    if chunk is None and (args.plan or args.memory is not None):
        chunk = "auto"
    devices = args.devices
    if devices == "all":
        devices = jax.device_count()
    elif devices is not None:
        devices = int(devices)
        present = jax.device_count()
        if devices > present:
            fail(
                f"--devices {devices} exceeds the {present} "
                f"{'device' if present == 1 else 'devices'} present "
                f"({jax.default_backend()}; --devices all uses them all)"
            )
    return {
        "chunk_size": chunk if chunk in (None, "auto") else int(chunk),
        "devices": devices,
        "checkpoint_every": args.checkpoint_every,
        "memory_bytes": None if args.memory is None else int(args.memory * 1e9),
    }


def print_plan(ids: list[str], args: argparse.Namespace, engine: dict) -> int:
    """--plan: compile every claim's engine calls and print what a run would need (with
    --export: lower them for those platforms and audit them, `experiments.exports`)."""
    if args.export:
        from experiments.exports import export_claims, print_exports

        chunk = engine["chunk_size"] if engine["chunk_size"] != "auto" else None
        plans = export_claims(
            ids,
            args.scale,
            args.export,
            seeds=args.seeds,
            chunk_size=chunk,
            devices=engine["devices"],
        )
        return 1 if print_exports(plans, args.export) else 0
    flops_per_s = args.peak_tflops * 1e12
    print(
        f"{'claim':22s} {'seeds':>5s} {'per call':>9s} {'peak GB/call':>12s} "
        f"{'TFLOP':>10s} {'est. time':>10s} {'compile s':>9s}  (at {args.peak_tflops:g} TFLOP/s)"
    )
    total, compile_s, float64 = 0.0, 0.0, []
    for cid in ids:
        plan = plan_claim(
            claims.get(cid),
            args.scale,
            seeds=args.seeds,
            chunk_size=engine["chunk_size"],
            devices=engine["devices"],
            memory_bytes=engine["memory_bytes"],
        )
        seconds = plan["flops"] / flops_per_s
        total += seconds
        compile_s += plan["plan_seconds"]
        if plan["float64_calls"]:
            float64.append(f"{cid} ({len(plan['float64_calls'])} of {len(plan['calls'])} calls)")
        per_call = ",".join(str(c) for c in plan["seeds_per_call"]) or "-"
        print(
            f"{cid:22s} {plan['seeds']:5d} {per_call:>9s} "
            f"{plan['peak_bytes_per_call'] / 1e9:12.3g} {plan['flops'] / 1e12:10.4g} "
            f"{seconds:9.3g}s {plan['plan_seconds']:9.1f}"
        )
    print(f"total estimated compute: {total:.3g} s (FLOPs / peak; real runs are slower)")
    print(f"total plan time (compiling on this machine): {compile_s:.1f} s")
    if float64:
        from experiments.exports import FLOAT64_NOTE

        print(f"float64: {'; '.join(float64)}: {FLOAT64_NOTE}")
    return 0


def _check_divisible(ids: list[str], args: argparse.Namespace, engine: dict) -> None:
    """Refuse, before any compute, a seed count (or chunk) that does not divide the mesh."""
    if engine["devices"] is None:
        return
    for cid in ids:
        per_call = claims.get(cid).config(args.scale, args.seeds).seeds
        per_call = min(engine["chunk_size"] or per_call, per_call)
        if per_call % engine["devices"]:
            fail(
                f"{cid} runs {per_call} seeds per call, which does not divide over --devices "
                f"{engine['devices']}: choose --seeds or --chunk-size a multiple of the device "
                "count"
            )


def _stop_at_next_checkpoint(signum, frame) -> None:
    """Ctrl-C with checkpoints: stop after the running segment's checkpoint is written; a
    second Ctrl-C stops at once."""
    if execution.stop_requested():
        raise KeyboardInterrupt
    execution.request_stop()


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
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["calibrate"]:  # python -m experiments calibrate [CLAIM ...] [--scale S]
        from experiments.calibrate import main as calibrate_main

        return calibrate_main(argv[1:])
    args = parse_args(argv)
    if args.list:
        for cid in claims.claim_ids():
            claim = claims.get(cid)
            print(f"{cid:22s} {claim.paper:4s} {claim.statement}")
        return 0
    start_processes(args)
    engine = resolve_engine(args)
    ids = args.claims or claims.claim_ids()
    for cid in ids:  # a config that cannot run (e.g. an odd seed count where seeds pair up)
        try:
            claims.get(cid).config(args.scale, args.seeds)
        except ValueError as err:
            fail(f"--seeds for {cid}: {err}")
    _check_divisible(ids, args, engine)
    if args.plan:
        try:
            return print_plan(ids, args, engine)
        except ValueError as err:
            fail(f"--memory: {err}")
    import jax
    from tqdm import tqdm

    writer = jax.process_index() == 0
    if engine["checkpoint_every"]:
        signal.signal(signal.SIGINT, _stop_at_next_checkpoint)
    rows = []
    bar = tqdm(ids, desc="claims", unit="claim", disable=args.quiet or not writer or None)
    for cid in bar:
        bar.set_postfix_str(cid)
        start = time.perf_counter()
        try:
            record = run_claim(
                claims.get(cid),
                args.scale,
                seeds=args.seeds,
                base_seed=args.seed,
                out_dir=args.out,
                force=args.force,
                **engine,
            )
            if execution.stop_requested():  # Ctrl-C came between checkpointed runs
                raise KeyboardInterrupt
        except ValueError as err:
            if "memory budget" not in str(err):
                raise
            fail(f"--memory: {err}")
        except KeyboardInterrupt:
            saved = (
                f"its checkpoints (every {engine['checkpoint_every']} steps) are under "
                f"{Path(args.out) / '.checkpoints'}"
                if engine["checkpoint_every"]
                else "nothing of it was saved (add --checkpoint-every STEPS to make it resumable)"
            )
            print(
                f"\ninterrupted during {cid}: {saved}. Run the same command again to resume; "
                "finished claims are skipped.",
                file=sys.stderr,
            )
            return 130
        took = "skipped (done)" if record.get("skipped") else f"{time.perf_counter() - start:.1f} s"
        rows.append((cid, record["verdict"], took, record["headline"]))
    if not writer:
        return 0
    report = write_report(args.out, claims.claim_ids())
    width = max(len(r[0]) for r in rows)
    print(f"\n{'claim':{width}s}  {'verdict':15s}  {'time':15s}  key numbers")
    for cid, verdict, took, headline in rows:
        print(f"{cid:{width}s}  {verdict:15s}  {took:15s}  {headline}")
    print(f"\nreport: {report}")
    return 0


if __name__ == "__main__":
    xla_flags.prefer_fast_cpu_compiles()  # before the first computation starts a backend
    sys.exit(main())
