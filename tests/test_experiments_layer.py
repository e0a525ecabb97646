"""The experiment layer: runner, skip-on-rerun, atomic results, report, CLI errors."""

import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass

import jax
import numpy as np
import pytest

from esparse import stats
from experiments import runner
from experiments.__main__ import parse_args
from experiments.core import Claim, Evaluation, errorbar, save_figure, subplots
from experiments.report import write_report


@dataclass(frozen=True)
class ToyConfig:
    seeds: int = 4
    shift: float = 1.0


def _toy_run(keys, config):
    draws = jax.vmap(lambda k: jax.random.normal(k, (3,)))(keys)
    return {"gain": draws.mean(axis=1) * 0.01 + config.shift}


def _toy_evaluate(metrics, config):
    ci = stats.mean_ci(metrics["gain"])
    return Evaluation(
        checks=[stats.ci_above("gain above 0", ci)],
        summary={"gain": ci.to_dict()},
        headline=f"gain {ci.mean:.3f}",
        sub_verdicts={"strict": [stats.at_least("gain >= 2", ci.mean, 2.0)]},
    )


def _toy_plot(metrics, config, path):
    fig, (ax,) = subplots()
    ax.plot(metrics["gain"])
    save_figure(fig, path)


def _toy_claim(shift=1.0):
    configs = {s: ToyConfig(shift=shift) for s in ("smoke", "quick", "full")}
    return Claim("toy", "MH", "a toy claim", "none", configs, _toy_run, _toy_evaluate, _toy_plot)


def test_seed_keys_are_prefix_stable():
    a, b = runner.seed_keys(3, 4), runner.seed_keys(3, 8)
    np.testing.assert_array_equal(jax.random.key_data(a), jax.random.key_data(b[:4]))


def test_run_claim_writes_json_png_and_report(tmp_path):
    record = runner.run_claim(_toy_claim(), "smoke", out_dir=tmp_path)
    assert record["verdict"] == stats.REPRODUCED
    assert record["sub_verdicts"]["strict"]["verdict"] == stats.NOT_REPRODUCED
    saved = json.loads((tmp_path / "toy.json").read_text())
    assert saved["seeds"] == 4 and len(saved["metrics"]["gain"]) == 4
    assert saved["environment"]["jax"] == jax.__version__
    assert (tmp_path / "toy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp"))
    report = write_report(tmp_path, ["toy"]).read_text()
    assert "| `toy` | MH |" in report and "[toy.png](toy.png)" in report


def test_rerun_skips_same_config_and_redoes_changed_or_forced(tmp_path):
    claim = _toy_claim()
    runner.run_claim(claim, "smoke", out_dir=tmp_path)
    assert runner.run_claim(claim, "smoke", out_dir=tmp_path).get("skipped")
    assert not runner.run_claim(claim, "smoke", out_dir=tmp_path, force=True).get("skipped")
    assert not runner.run_claim(claim, "smoke", seeds=5, out_dir=tmp_path).get("skipped")
    failing = runner.run_claim(_toy_claim(shift=-1.0), "smoke", out_dir=tmp_path)
    assert failing["verdict"] == stats.NOT_REPRODUCED


def test_unknown_scale_is_an_error():
    with pytest.raises(ValueError, match="scale"):
        _toy_claim().config("huge")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["no-such-claim"], "unknown claim"),
        (["--scale", "huge"], "--scale"),
        (["--seed", "-3"], "--seed must be in"),
        (["--seed", str(2**40)], "--seed must be in"),
        (["--out", "/proc/esparse-results"], "--out '/proc/esparse-results' is not a writable"),
    ],
)
def test_cli_rejects_bad_arguments(argv, message, capsys):
    # the CLI's own parser, in process (a subprocess per case cost ~5 s of imports each;
    # the entry point is covered by the test below)
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code != 0
    assert message in capsys.readouterr().err


def test_cli_entry_point_rejects_a_bad_argument():
    proc = subprocess.run(
        [sys.executable, "-m", "experiments", "no-such-claim"], capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "unknown claim" in proc.stderr


def test_errorbar_log_mode_is_geometric_and_stays_positive():
    """Losses spanning decades: the arithmetic interval crosses zero, the log one does not."""
    values = np.array([[1e-3, 1.0], [1e-1, 2.0], [1e-2, 4.0]])
    fig, (ax,) = subplots(1)
    errorbar(ax, [0, 1], values, "linear")
    errorbar(ax, [0, 1], values, "log", log=True)
    (linear_line, _, (linear_bars,)), (log_line, _, (log_bars,)) = ax.containers
    np.testing.assert_allclose(linear_line.get_ydata(), values.mean(axis=0))
    np.testing.assert_allclose(log_line.get_ydata(), np.exp(np.log(values).mean(axis=0)))
    assert min(seg[0, 1] for seg in linear_bars.get_segments()) < 0
    assert min(seg[0, 1] for seg in log_bars.get_segments()) > 0
    # an exact 0 (rf-single-neuron's GD fits reach it) is drawn at the smallest positive value
    errorbar(ax, [0, 1], np.array([[0.0, 1.0], [1e-3, 1.0]]), "zero", log=True)
    np.testing.assert_allclose(ax.containers[-1][0].get_ydata(), [1e-3, 1.0])


def test_code_change_changes_the_config_hash(tmp_path, monkeypatch):
    """A change to any source behind a claim makes the runner redo it, not show a stale row."""
    source = tmp_path / "kernel.py"
    source.write_text("x = 1\n")
    monkeypatch.setattr(runner, "_source_files", lambda claim: [source])
    claim, config = _toy_claim(), _toy_claim().config("smoke")
    before = runner.config_hash(claim, "smoke", config, 0)
    assert runner.config_hash(claim, "smoke", config, 0) == before
    source.write_text("x = 2\n")
    assert runner.config_hash(claim, "smoke", config, 0) != before


def test_report_lists_protocol_changes_and_code(tmp_path):
    from experiments.core import ProtocolChange

    change = ProtocolChange("2026-12-02", "budget doubled", "under-trained", "not reproduced")
    claim = dataclasses.replace(_toy_claim(), changes=(change,))
    record = runner.run_claim(claim, "smoke", out_dir=tmp_path)
    assert record["code"]["source_digest"] and record["environment"]["matmul_precision"]
    report = write_report(tmp_path, ["toy"]).read_text()
    assert "## Changes made after results were seen" in report
    assert (
        "| `toy` | 2026-12-02 | budget doubled | under-trained | not reproduced | reproduced"
        in report
    )
    assert f"`{record['code']['source_digest']}`" in report


def test_ci_checks_report_half_width_and_power():
    wide = stats.Interval(mean=0.005, low=-0.015, high=0.025, n=8)
    check = stats.ci_above("ticket - dense", wide, -0.01, margin=0.01)
    assert check.outcome == "inconclusive" and check.half_width == pytest.approx(0.02)
    assert check.lacks_power and check.to_dict()["lacks_power"]
    narrow = stats.Interval(mean=0.005, low=0.0, high=0.01, n=8)
    assert not stats.ci_above("ticket - dense", narrow, -0.01, margin=0.01).lacks_power


def test_truncated_result_json_is_recomputed(tmp_path):
    """A result file cut short (a full disk, a killed copy) is not trusted: the claim reruns."""
    claim = _toy_claim()
    runner.run_claim(claim, "smoke", out_dir=tmp_path)
    path = tmp_path / "toy.json"
    path.write_text(path.read_text()[:100])
    record = runner.run_claim(claim, "smoke", out_dir=tmp_path)
    assert not record.get("skipped") and record["verdict"] == stats.REPRODUCED
    assert json.loads(path.read_text())["verdict"] == stats.REPRODUCED


def test_concurrent_runs_into_one_out_dir_both_finish_with_valid_json(tmp_path):
    """Two runs of the same claim into one --out at once: each writes atomically, so both
    finish and the result file is one run's complete JSON, never a mix."""
    from concurrent.futures import ThreadPoolExecutor

    claim = _toy_claim()
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(runner.run_claim, claim, "smoke", out_dir=tmp_path) for _ in "ab"]
        records = [r.result(timeout=300) for r in runs]
    assert all(r["verdict"] == stats.REPRODUCED for r in records)
    assert json.loads((tmp_path / "toy.json").read_text())["verdict"] == stats.REPRODUCED
    assert not list(tmp_path.glob("*.tmp"))


# The command lines' help and their errors that need the devices or the cluster (issue 27,
# item 8): in process through main(), so each case costs milliseconds, not a fresh import.


def test_cli_help_shows_the_defaults(capsys):
    from experiments.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal width
    for shown in (
        "one of smoke, quick, full (default: quick)",
        "base of the seed keys (default: 0)",
        "output directory (default: results)",
        "(default: all seeds in one call; auto with --plan or --memory)",
        "(default: one device)",
        "(default: no checkpoints)",
        "seconds to wait for the coordinator (default: 60)",
        "JAX_COORDINATOR_ADDRESS",
    ):
        assert shown in out
    assert "(default: None)" not in out and "(default: False)" not in out


def test_bench_help_lists_groups_and_device_without_internals(capsys):
    from experiments.bench.__main__ import GROUPS
    from experiments.bench.__main__ import main as bench_main

    with pytest.raises(SystemExit) as exit_info:
        bench_main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"groups: {', '.join(GROUPS)}" in out
    assert "\n  python -m experiments.bench device [--small | --full]" in out  # its own line
    assert "(default: results/bench.json)" in out
    for internal in ("GROUPS", "timed_pair", "block_until_ready", "row dicts"):
        assert internal not in out


@pytest.mark.parametrize(
    "out, problem",
    [("/proc/esparse-bench/bench.json", "No such file or directory"), (".", "it is a directory")],
)
def test_bench_checks_out_before_any_timing(out, problem, capsys, monkeypatch):
    from experiments.bench import __main__ as bench

    monkeypatch.setattr(bench, "torch_or_none", lambda: pytest.fail("timing started"))
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["kernels", "--out", out])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: --out {out!r} is not a writable JSON path: {problem}" in err


def test_devices_beyond_those_present_exit_2_in_one_line(tmp_path, capsys, monkeypatch):
    from experiments.__main__ import main

    monkeypatch.setattr(jax, "device_count", lambda: 1)
    with pytest.raises(SystemExit) as exit_info:
        main(["dropout", "--scale", "smoke", "--out", str(tmp_path), "--devices", "4"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m experiments: error: --devices 4 exceeds the 1 device present")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.glob("*.json"))


CLUSTER_ENV = (
    "JAX_COORDINATOR_ADDRESS",
    "JAX_LOCAL_DEVICE_IDS",
    "SLURM_JOB_ID",
    "OMPI_MCA_orte_hnp_uri",
    "KUBERNETES_SERVICE_HOST",
    "TPU_WORKER_HOSTNAMES",
    "TPU_WORKER_ID",
)


def test_distributed_outside_a_cluster_exits_2_naming_the_variables(tmp_path, capsys, monkeypatch):
    """The real `jax.distributed.initialize()` with no cluster around. (In the CLI it runs
    before JAX touches a device; this test process has, so that one guard is lifted.)"""
    from experiments.__main__ import main

    for name in CLUSTER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("jax._src.xla_bridge.backends_are_initialized", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        main(["dropout", "--scale", "smoke", "--out", str(tmp_path), "--distributed"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("python -m experiments: error: --distributed found no cluster (")
    for name in ("JAX_COORDINATOR_ADDRESS", "SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri"):
        assert name in err
    assert "--coordinator HOST:PORT --num-processes N --process-id I" in err


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"JAX_PLATFORMS": "cpu"}, "--xla_backend_optimization_level=2"),
        (
            {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=4"},
            "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=2",
        ),
        (  # a level the user named is kept
            {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_backend_optimization_level=3"},
            "--xla_backend_optimization_level=3",
        ),
        ({"JAX_PLATFORMS": "cuda,cpu"}, None),  # an accelerator keeps XLA's default
        ({"JAX_PLATFORMS": "tpu"}, None),
    ],
)
def test_the_cli_compiles_cpu_programs_at_o2_only_where_jax_runs_on_the_cpu(environ, expected):
    from experiments import xla_flags

    set_it = xla_flags.prefer_fast_cpu_compiles(environ)
    assert environ.get("XLA_FLAGS") == expected
    assert set_it == (expected is not None and expected.endswith("level=2"))


def test_without_jax_platforms_an_installed_accelerator_plugin_keeps_xlas_default(monkeypatch):
    from experiments import xla_flags

    installed: set[str] = set()
    monkeypatch.setattr(
        xla_flags.importlib.util, "find_spec", lambda name: name in installed or None
    )
    monkeypatch.setattr(xla_flags.importlib.metadata, "entry_points", lambda group: [])
    assert xla_flags.cpu_only({})
    installed.add("libtpu")
    assert not xla_flags.cpu_only({})
    assert xla_flags.cpu_only({"JAX_PLATFORMS": "cpu"})
    installed.clear()
    monkeypatch.setattr(xla_flags.importlib.metadata, "entry_points", lambda group: ["cuda12"])
    assert not xla_flags.cpu_only({})
