"""The suite at scale: every claim's seeds through the engine, chunked, sharded, multi-process,
checkpointed and resumable from the CLI (`python -m experiments`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esparse import engine, execution, planning
from experiments import claims
from experiments.__main__ import parse_args
from experiments.runner import run_claim

ROOT = Path(__file__).resolve().parents[1]
CLAIM = "dropout"  # a training claim: its runs go through train_seeds


def _metrics(record: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, float) for k, v in record["metrics"].items()}


def _assert_same_metrics(a: dict, b: dict, atol: float = 1e-6) -> None:
    """Equal to float32 rounding: `atol`, and 1e-5 relative for values of order 1 and above
    (training losses near 2.3 differ in their last float32 bits between batch shapes)."""
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=atol, err_msg=name)


def _cli(args: list[str], devices: int = 2, **popen) -> subprocess.Popen:
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "experiments", *args, "--quiet"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The unchunked, unsharded run of CLAIM at smoke scale with 8 seeds."""
    out = tmp_path_factory.mktemp("plain")
    return _metrics(run_claim(claims.get(CLAIM), "smoke", seeds=8, out_dir=out))


@pytest.mark.parametrize("engine", [{"chunk_size": 2}, {"devices": 8}, {"checkpoint_every": 30}])
def test_chunked_sharded_and_segmented_runs_match(plain, tmp_path, engine):
    record = run_claim(claims.get(CLAIM), "smoke", seeds=8, out_dir=tmp_path, **engine)
    assert record["execution"][next(iter(engine))] == next(iter(engine.values()))
    # chunks and shards change XLA's batch sizes, so float rounding differs: not bitwise
    _assert_same_metrics(_metrics(record), plain)
    assert not (tmp_path / ".checkpoints").exists()  # removed once the JSON is written


def test_execution_block_reaches_the_engine_and_validates():
    with execution.execution(chunk_size=3, devices=2) as settings:
        assert execution.current() == settings == execution.Execution(3, 2, None, None)
    assert execution.current() == execution.Execution()
    with pytest.raises(ValueError, match="devices must be in"):
        with execution.execution(devices=jax.device_count() + 1):
            pass
    with pytest.raises(ValueError, match="checkpoint_every must be given"):
        with execution.execution(checkpoint_dir="/tmp/x"):
            pass


def test_two_processes_match_one_and_only_process_zero_writes(plain, tmp_path):
    port = _free_port()
    outs = [tmp_path / f"p{i}" for i in range(2)]
    procs = [
        _cli(
            [CLAIM, "--scale", "smoke", "--seeds", "8", "--out", str(outs[i]), "--devices", "all"]
            + ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
            + ["--process-id", str(i)]
        )
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    record = json.loads((outs[0] / f"{CLAIM}.json").read_text())
    assert record["execution"]["processes"] == 2 and record["execution"]["devices"] == 4
    _assert_same_metrics(_metrics(record), plain)
    assert not list(outs[1].glob("*.json")) and not (outs[1] / "REPORT.md").exists()


def _wait_for_checkpoint(out: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.name.isdigit() for p in out.glob(".checkpoints/*/call-*/*")):
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before its first checkpoint: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    pytest.fail("no checkpoint appeared")


def test_killed_claim_resumes_from_its_checkpoint(plain, tmp_path):
    args = [CLAIM, "--scale", "smoke", "--seeds", "8", "--out", str(tmp_path)]
    args += ["--checkpoint-every", "10"]
    first = _cli(args)
    _wait_for_checkpoint(tmp_path, first)
    first.kill()
    first.communicate()
    assert not (tmp_path / f"{CLAIM}.json").exists()
    second = _cli(args)
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-2000:]
    record = json.loads((tmp_path / f"{CLAIM}.json").read_text())
    _assert_same_metrics(_metrics(record), plain)


def test_ctrl_c_stops_within_seconds_and_says_how_to_resume(tmp_path):
    args = [CLAIM, "--scale", "smoke", "--seeds", "8", "--out", str(tmp_path)]
    proc = _cli([*args, "--checkpoint-every", "10"])
    _wait_for_checkpoint(tmp_path, proc)
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - start < 20
    assert proc.returncode == 130 and "Run the same command again to resume" in err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--chunk-size", "0"], "--chunk-size must be a positive int or auto, got '0'"),
        (["--checkpoint-every", "0"], "--checkpoint-every must be >= 1"),
        (
            ["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "5"],
            "--process-id must be in [0, 2), got 5",
        ),
        (["--coordinator", "127.0.0.1:1"], "go together"),
    ],
)
def test_cli_refuses_bad_engine_flags_before_any_device(tmp_path, flags, message, capsys):
    # flags checked by the CLI's parser, in process (a subprocess per case cost ~4 s each)
    with pytest.raises(SystemExit) as exit_info:
        parse_args([CLAIM, "--scale", "smoke", "--out", str(tmp_path / "out"), *flags])
    assert exit_info.value.code != 0 and message in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("*.json"))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--devices", "99"], "--devices 99 exceeds the 2 devices"),
        (["--devices", "2", "--seeds", "3"], "does not divide over --devices 2"),
        (["--seeds", "3"], "seeds must be even and >= 2 for feature-repopulation"),
    ],
)
def test_cli_refuses_bad_engine_flags_and_writes_nothing(tmp_path, flags, message):
    claim = CLAIM if "--devices" in flags else "feature-repopulation"
    proc = _cli([claim, "--scale", "smoke", "--out", str(tmp_path / "out"), *flags])
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and message in err
    assert not list((tmp_path / "out").glob("*.json"))


def test_a_coordinator_that_never_answers_times_out_clearly(tmp_path):
    port = _free_port()  # nobody listens there
    flags = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "1"]
    proc = _cli([CLAIM, "--scale", "smoke", "--out", str(tmp_path), *flags, "--init-timeout", "3"])
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "no multi-process start within --init-timeout 3 s" in err
    assert not list(tmp_path.glob("*.json"))


def _big(key, x):
    """Per seed a (512, 512) intermediate: 1 MiB of float32 per seed."""
    return jnp.sum(jnp.tanh(x @ jax.random.normal(key, (x.shape[1], 512))))


def test_auto_chunk_fits_the_memory_budget_and_plan_compiles_without_running():
    keys = jax.random.split(jax.random.key(0), 64)
    x = jnp.ones((512, 64))
    reference = engine.vmap_seeds(_big, keys, x)
    with execution.execution(chunk_size="auto", memory_bytes=16 * 2**20):
        chunked = engine.vmap_seeds(_big, keys, x)
    np.testing.assert_allclose(chunked, reference, rtol=1e-6)
    per_seed = planning.footprint(jax.jit(jax.vmap(_big, (0, None))), keys[:2], x).peak_bytes / 2
    with execution.execution(chunk_size="auto", memory_bytes=16 * 2**20, plan=True):
        zeros = engine.vmap_seeds(_big, keys, x)
        (call,) = execution.planned_calls()
    assert zeros.shape == (64,) and not zeros.any()
    assert 1 <= call["seeds_per_call"] < 64 and call["calls"] == -(-64 // call["seeds_per_call"])
    assert call["peak_bytes_per_call"] <= 16 * 2**20
    assert call["seeds_per_call"] * per_seed <= 16 * 2**20 * 1.5
    assert call["flops"] >= 2 * 512 * 64 * 512 * 64  # the matmuls of all 64 seeds
    with pytest.raises(ValueError, match="too small for 1 seed"):
        with execution.execution(chunk_size="auto", memory_bytes=1000):
            engine.vmap_seeds(_big, keys, x)


# Compiled plans of three claims (a single vmap, a training run, float64 solves). Every
# claim's programs are lowered and audited by tests/test_export_claims.py (--plan --export)
# and compiled and run by tests/test_claims.py; compiling the plan of all 11 here as well
# took 142-213 s.
PLANNED = ("flyhash-search", "lottery-ticket", "double-descent")


def test_plan_reports_finite_memory_flops_and_compile_time(tmp_path):
    # a fixed chunk compiles each call once (auto compiles it 3-5 times); auto chunking has
    # its own test above
    args = [*PLANNED, "--scale", "smoke", "--plan", "--seeds", "2", "--chunk-size", "2"]
    proc = _cli([*args, "--out", str(tmp_path)])
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    lines = [line.split() for line in out.splitlines()[1:]]
    rows = {row[0]: row for row in lines if row and row[0] in claims.claim_ids()}
    assert "total plan time" in out and all(float(row[6]) > 0 for row in rows.values())
    float64 = next(line for line in out.splitlines() if line.startswith("float64:"))
    assert float64.startswith("float64: double-descent (")  # its declared float64 solves
    assert set(rows) == set(PLANNED)
    for cid, row in rows.items():
        peak_gb, tflop = float(row[3]), float(row[4])
        assert 0 < peak_gb < 10 and np.isfinite(tflop) and tflop > 0, cid
    assert not list(tmp_path.glob("*.json"))


def test_memory_too_small_for_one_seed_is_refused(tmp_path):
    proc = _cli([CLAIM, "--scale", "smoke", "--memory", "1e-7", "--out", str(tmp_path)])
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0 and "--memory: memory budget" in err
    assert not list(tmp_path.glob("*.json"))


def test_chunk_for_memory_shrinks_a_linear_guess_that_does_not_fit():
    def measure(c):  # linear at 1-2 seeds, then a jump (XLA's buffers are not exactly linear)
        return planning.Footprint(100 + 10 * c + (500 if c > 8 else 0), 0.0)

    assert planning.chunk_for_memory(measure, 64, 300) <= 8
    assert measure(planning.chunk_for_memory(measure, 64, 300)).peak_bytes <= 300
    assert planning.chunk_for_memory(measure, 64, 10_000) == 64
    assert planning.chunk_for_memory(measure, 5, 10_000, multiple=2) == 6  # 5 padded up to 6
    with pytest.raises(ValueError, match="too small for 2 seed"):
        planning.chunk_for_memory(measure, 64, 50, multiple=2)


def test_chunk_for_memory_compiles_once_when_every_seed_fits():
    sizes = []

    def measure(c):
        sizes.append(c)
        return planning.Footprint(100 + 10 * c, 0.0)

    assert planning.chunk_for_memory(measure, 32, 10_000) == 32 and sizes == [32]
    sizes.clear()
    assert planning.chunk_for_memory(measure, 32, 300) == 20
    assert sizes.count(32) == 1  # the estimate (32 again) is not compiled twice


def test_plan_flops_count_every_scan_step_and_the_costlier_cond_branch():
    w = jnp.ones((16, 16))

    def f(x):
        y, _ = jax.lax.scan(lambda c, _: (jnp.tanh(c @ w), None), x, None, length=10)
        y = jax.lax.fori_loop(0, 5, lambda i, c: c @ w, y)  # static trip count: a scan
        return jax.lax.cond(y.sum() > 0, lambda: y @ w @ w, lambda: y)

    x = jnp.ones((8, 16))
    one_matmul = 2 * 8 * 16 * 16
    assert planning.matmul_flops(jax.make_jaxpr(f)(x)) == one_matmul * (10 + 5 + 2)
    # XLA counts each loop body once; the plan reports the larger count
    assert planning.footprint(jax.jit(f), x).flops == one_matmul * 17
    seeds = jax.vmap(f)
    assert planning.matmul_flops(jax.make_jaxpr(seeds)(jnp.ones((3, 8, 16)))) == 3 * one_matmul * 17
