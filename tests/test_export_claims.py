"""Every claim's engine programs, at smoke scale, lower for CUDA and TPU
(`python -m experiments --plan --export cuda,tpu`) and pass the audit: no host callback,
float64 only in the solves that declare it, `auto` choices on their accelerator branch."""

import dataclasses

import jax
import numpy as np
import pytest
from jax.interpreters import batching, mlir

from esparse import engine, execution
from experiments import claims, exports
from experiments.__main__ import main, parse_args
from experiments.runner import plan_claim

PLATFORMS = ("cuda", "tpu")
# The programs that ask for float64 (inside jax.enable_x64): the minimum-norm solve of
# double-descent and the ridge fits of rf-single-neuron's random features.
FLOAT64_CALLS = {"double-descent": {"vmap_seeds(_fit)"}, "rf-single-neuron": {"vmap_seeds(_rf)"}}
# Claims whose programs choose a method per backend (kwta in expand-and-sparsify and FlyHash,
# the KSG k-th neighbour of layer-mi): the accelerator branch ("default") must be lowered.
AUTO_CLAIMS = {"es-expansion", "flyhash-search", "layer-mi"}

_CPU_ONLY = jax.extend.core.Primitive("cpu_only_op")
_CPU_ONLY.def_abstract_eval(lambda v: v)
mlir.register_lowering(_CPU_ONLY, lambda ctx, v: [v], platform="cpu")
batching.primitive_batchers[_CPU_ONLY] = lambda args, dims: (_CPU_ONLY.bind(*args), dims[0])


@pytest.fixture(scope="module")
def plans():
    found = exports.export_claims(claims.claim_ids(), "smoke", PLATFORMS, seeds=2)
    return {plan["claim"]: plan for plan in found}


def test_every_claims_programs_lower_for_cuda_and_tpu_and_pass_the_audit(plans):
    assert set(plans) == set(claims.claim_ids())
    problems = [f"{cid}: {p}" for cid, plan in plans.items() for p in plan["problems"]]
    assert not problems, "\n".join(problems)
    for cid, plan in plans.items():
        assert plan["calls"], cid
        for call in plan["calls"]:
            audit = call["export"]
            assert not audit["callbacks"], (cid, call["call"])
            (low,) = audit["lowerings"]  # one module for both platforms
            assert low["platform"] == "cuda+tpu" and low["error"] is None, (cid, low)
            assert call["flops"] >= 0 and call["peak_bytes_per_call"] is None


def test_float64_only_in_the_solves_that_declare_it(plans):
    found = {cid: set(p["float64_calls"]) for cid, p in plans.items() if p["float64_calls"]}
    assert found == FLOAT64_CALLS
    for cid, plan in plans.items():
        for call in plan["calls"]:
            (low,) = call["export"]["lowerings"]
            assert low["float64"] == call["float64"], (cid, call["call"])
            if call["float64"]:
                assert call["export"]["float64_declared"], (cid, call["call"])


def test_auto_choices_lower_their_accelerator_branch(plans):
    branches = {
        cid: {
            b
            for call in plan["calls"]
            for low in call["export"]["lowerings"]
            for b in low["auto_branches"]
        }
        for cid, plan in plans.items()
    }
    assert {cid for cid, found in branches.items() if found} == AUTO_CLAIMS
    assert all(found <= {"default"} for found in branches.values()), branches


def test_the_table_names_float64_and_every_problem(plans, capsys):
    listed = [plans[cid] for cid in claims.claim_ids()]
    assert exports.print_exports(listed, PLATFORMS) == 0
    out = capsys.readouterr().out
    assert "0 problem(s)" in out and "cusolver" in out and "Eigh" in out
    float64 = next(line for line in out.splitlines() if line.startswith("float64:"))
    assert "double-descent" in float64 and "rf-single-neuron" in float64
    assert "emulated in software on TPU" in float64
    broken = dict(listed[0], problems=["call 0 vmap_seeds(f): does not lower on tpu: ..."])
    assert exports.print_exports([broken], PLATFORMS) == 1
    assert f"PROBLEM {broken['claim']}: call 0 vmap_seeds(f)" in capsys.readouterr().out


def _fine(key):
    return jax.random.normal(key, (4,))


def _with_cpu_only_op(key):
    return _CPU_ONLY.bind(jax.random.normal(key, (4,)))


def _with_callback(key):
    x = jax.random.normal(key, (4,))
    out = jax.ShapeDtypeStruct((4,), x.dtype)
    return jax.pure_callback(lambda a: np.asarray(a) * 2, out, x, vmap_method="sequential")


def _broken_run(keys, config):
    with np.errstate(all="ignore"):
        engine.vmap_seeds(_fine, keys)
        engine.vmap_seeds(_with_cpu_only_op, keys)
        engine.vmap_seeds(_with_callback, keys)
    return {}


def test_a_failure_names_the_claim_the_call_and_the_primitive():
    claim = dataclasses.replace(claims.get("flyhash-search"), id="broken", run=_broken_run)
    plan = plan_claim(claim, "smoke", seeds=2, chunk_size=None, export=PLATFORMS)
    assert [p.split(":")[0] for p in plan["problems"]] == [
        "call 1 vmap_seeds(_with_cpu_only_op)",
        "call 1 vmap_seeds(_with_cpu_only_op)",
        "call 2 vmap_seeds(_with_callback)",
    ]
    assert "does not lower on cuda: primitive 'cpu_only_op'" in plan["problems"][0]
    assert "does not lower on tpu: primitive 'cpu_only_op'" in plan["problems"][1]
    assert "host callback 'pure_callback'" in plan["problems"][2]
    with execution.execution(plan=True, export=("tpu",)):
        assert execution.current().export == ("tpu",)
    with pytest.raises(ValueError, match="needs plan=True"):
        with execution.execution(export=("cuda",)):
            pass
    with pytest.raises(ValueError, match="export platform"):
        with execution.execution(plan=True, export=("gpu",)):
            pass


def test_cli_export_flags(tmp_path, capsys):
    args = parse_args(["--plan", "--export", "cuda, tpu", "--out", str(tmp_path)])
    assert args.export == ("cuda", "tpu")
    for bad in (["--export", "cuda"], ["--plan", "--export", "gpu"], ["--plan", "--export", ","]):
        with pytest.raises(SystemExit):
            parse_args([*bad, "--out", str(tmp_path)])
    assert "--export" in capsys.readouterr().err
    argv = ["flyhash-search", "--scale", "smoke", "--seeds", "2", "--plan", "--export", "cuda,tpu"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[:3] == ["flyhash-search", "2", "2/2"]
    assert "0 problem(s)" in out and not list(tmp_path.glob("*.json"))
