"""Every public kernel, and every claim's engine programs, lower for CUDA and TPU (jax.export
on this CPU-only machine), and the lowered modules pass the audit of esparse.exporting: no
host callback, float64 only where declared, the `auto` choices on their accelerator branch."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import esparse
from esparse import exporting, projection, selection

PLATFORMS = ("cuda", "tpu")
DTYPES = (jnp.float32, jnp.bfloat16)
KEY = jax.random.key(0)
N, D, M, K, C = 32, 24, 256, 13, 4  # rows, inputs, units, winners, fly fan-in


def _x(dtype):
    return jax.ShapeDtypeStruct((N, D), dtype)


def _kernel_cases() -> dict[str, list[tuple[str, object, tuple]]]:
    """Public kernel name -> [(case id, fn, args)]: a small shape for each method= and each
    supported dtype (float32, bfloat16)."""
    cases: dict[str, list] = {}

    def add(name, label, fn, *args):
        cases.setdefault(name, []).append((f"{name}[{label}]", fn, args))

    y = {d: jax.ShapeDtypeStruct((N, M), d) for d in DTYPES}
    for dtype in DTYPES:
        dn = jnp.dtype(dtype).name
        for method in selection.METHODS:
            for name in ("kwta", "kwta_mask", "kwta_binary", "kwta_indices"):
                fn = functools.partial(getattr(esparse, name), k=K, method=method)
                add(name, f"{method},{dn}", fn, y[dtype])
            for name in ("kwta_st", "kwta_binary_st"):  # the forward and the backward pass
                kernel = functools.partial(getattr(esparse, name), k=K, method=method)
                fn = jax.grad(lambda v, kernel=kernel: jnp.sum(kernel(v).astype(jnp.float32)))
                add(name, f"{method},{dn}", fn, y[dtype])
            # expand-and-sparsify: each method with a Gaussian projection, each kind with auto
            for kind in projection.KINDS if method == "auto" else ("gaussian",):
                extra = {"c": C} if kind == "fly" else {}
                fn = functools.partial(
                    esparse.expand_and_sparsify, m=M, k=K, kind=kind, method=method, **extra
                )
                add("expand_and_sparsify", f"{kind},{method},{dn}", fn, KEY, _x(dtype))
        for output in ("indices", "packed"):
            fn = functools.partial(esparse.expand_and_sparsify, m=M, k=K, output=output)
            add("expand_and_sparsify", f"{output},{dn}", fn, KEY, _x(dtype))
        blocked = functools.partial(esparse.expand_and_sparsify, m=2 * M, k=K, block_size=M)
        add("expand_and_sparsify", f"blocked,{dn}", blocked, KEY, _x(dtype))
        for kind in projection.KINDS:
            extra = {"c": C} if kind == "fly" else {}
            fn = functools.partial(esparse.project, m=M, kind=kind, **extra)
            add("project", f"{kind},{dn}", fn, KEY, _x(dtype))
        blocked = functools.partial(esparse.project, m=2 * M, block_size=M)
        add("project", f"blocked,{dn}", blocked, KEY, _x(dtype))
        add("gaussian", dn, lambda k, dt=dtype: esparse.gaussian(k, D, M, dt), KEY)
        add("sparse_sign", dn, lambda k, dt=dtype: esparse.sparse_sign(k, D, M, dtype=dt), KEY)
        idx = jax.ShapeDtypeStruct((M, C), jnp.int32)
        add("apply_fly", dn, esparse.apply_fly, _x(dtype), idx)
        params = jax.eval_shape(lambda k: esparse.srht(k, D, M), KEY)
        add("apply_srht", dn, esparse.apply_srht, _x(dtype), params)
        add("flyhash", dn, functools.partial(esparse.flyhash, m=M, k=K, c=C), KEY, _x(dtype))
    add("fly", "int32", lambda k: esparse.fly(k, D, M, C), KEY)
    add("srht", "float32", lambda k: esparse.srht(k, D, M), KEY)
    words = jax.ShapeDtypeStruct((N, M // 32), jnp.uint32)
    add("pack_bits", "bool", esparse.pack_bits, jax.ShapeDtypeStruct((N, M), jnp.bool_))
    add("unpack_bits", "uint32", functools.partial(esparse.unpack_bits, m=M), words)
    knn = functools.partial(esparse.hamming_knn, k=5, block_size=64)
    add("hamming_knn", "uint32", lambda q, db: knn(queries=q, database=db), words, words)
    return cases


KERNEL_CASES = _kernel_cases()
CASES = [case for group in KERNEL_CASES.values() for case in group]


def test_every_public_kernel_has_an_export_case():
    kernels = {n for n, module in esparse._KERNELS.items() if n != "SRHTParams"}
    assert set(KERNEL_CASES) == kernels  # a new kernel needs a case here


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_kernel_lowers_for_cuda_and_tpu(case):
    name, fn, args = case
    audit = exporting.audit(jax.jit(fn), *args, platforms=PLATFORMS, together=True)
    assert not audit.problems(), f"{name}: {audit.problems()}"
    assert not audit.float64 and not any(low.float64 for low in audit.lowerings), name
    assert all(low.error is None for low in audit.lowerings), name


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
def test_auto_resolves_to_top_k_on_accelerators_and_to_the_search_on_cpu(dtype):
    x = jax.ShapeDtypeStruct((N, M), dtype)
    audits = {
        m: exporting.audit(
            jax.jit(lambda v, m=m: esparse.kwta(v, K, method=m)), x, platforms=("cpu", *PLATFORMS)
        )
        for m in selection.METHODS
    }
    auto = {low.platform: low for low in audits["auto"].lowerings}
    for platform in PLATFORMS:  # top_k, no search loop: the module of method="top_k"
        low, top_k = auto[platform], audits["top_k"].lowerings[1 + PLATFORMS.index(platform)]
        assert low.auto_branches == ("default",) and selection.AUTO["default"] == "top_k"
        assert low.top_k == top_k.top_k == 1 and low.while_loops == top_k.while_loops == 0
    search = audits["search"].lowerings[0]
    assert auto["cpu"].auto_branches == ("cpu",) and auto["cpu"].top_k == 0
    assert auto["cpu"].while_loops == search.while_loops > 0


def test_float64_solves_lower_with_their_solvers_and_are_reported():
    with jax.enable_x64(True):
        phi = jax.ShapeDtypeStruct((40, 30), jnp.float64)
        y = jax.ShapeDtypeStruct((40, 3), jnp.float64)
        audit = exporting.audit(jax.jit(esparse.min_norm_lstsq), phi, y, platforms=PLATFORMS)
        ridge = exporting.audit(
            jax.jit(functools.partial(esparse.ridge, lam=1e-3)), phi, y, platforms=PLATFORMS
        )
    assert not audit.problems() and not ridge.problems()
    assert audit.float64 and audit.float64_declared and all(lo.float64 for lo in audit.lowerings)
    cuda, tpu = audit.lowerings
    assert any("gesvd" in t for t in cuda.custom_calls), cuda.custom_calls
    assert "Eigh" in tpu.custom_calls or "Qr" in tpu.custom_calls, tpu.custom_calls
    # the same solve in float32 carries no float64
    f32 = jax.ShapeDtypeStruct((40, 30), jnp.float32), jax.ShapeDtypeStruct((40, 3), jnp.float32)
    assert not exporting.audit(jax.jit(esparse.min_norm_lstsq), *f32).float64


def test_the_audit_names_a_host_callback_a_missing_lowering_and_undeclared_float64():
    x = jax.ShapeDtypeStruct((8, 4), jnp.float32)

    def with_callback(v):
        out = jax.ShapeDtypeStruct(v.shape, v.dtype)
        return jax.pure_callback(lambda a: np.asarray(a) * 2, out, v) + 1

    problems = exporting.audit(jax.jit(with_callback), x, platforms=PLATFORMS).problems()
    assert problems == ["host callback 'pure_callback' inside the program"]

    def printing(v):
        jax.debug.print("sum {}", v.sum())
        return v

    assert "debug_print" in exporting.audit(jax.jit(printing), x).callbacks

    cpu_only = jax.extend.core.Primitive("cpu_only_op")
    cpu_only.def_abstract_eval(lambda v: v)
    jax.interpreters.mlir.register_lowering(cpu_only, lambda ctx, v: [v], platform="cpu")
    audit = exporting.audit(jax.jit(lambda v: cpu_only.bind(v) * 2), x, platforms=("cpu", "tpu"))
    (problem,) = audit.problems()
    assert problem.startswith("does not lower on tpu: primitive 'cpu_only_op'"), problem
    assert audit.lowerings[1].primitive == "cpu_only_op" and audit.lowerings[0].error is None

    undeclared = exporting.Audit((), True, False, (exporting.Lowering("tpu", float64=True),))
    assert undeclared.problems() == ["float64 on tpu in a program not traced under jax.enable_x64"]
    cpu_branch = exporting.Audit(
        (), False, False, (exporting.Lowering("cuda", auto_branches=("cpu",)),)
    )
    assert cpu_branch.problems() == ["an auto choice lowered its CPU branch on cuda"]
    with pytest.raises(ValueError, match="platforms"):
        exporting.audit(jax.jit(jnp.sin), x, platforms=("gpu",))
