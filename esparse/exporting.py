"""Programs lowered for another platform on this machine (`jax.export`), and what they hold.

A CPU-only machine can lower a jitted function for CUDA, ROCm or TPU:
`jax.export.export(jitted, platforms=["cuda"])(*args)` runs JAX's lowering rules for that
platform without a device. That catches what a CPU run cannot: a primitive with no lowering
there, a `lax.platform_dependent` branch (`esparse.selection.by_platform`) that picks the
CPU method on an accelerator, float64 reaching a program that did not ask for it, a host
callback inside a compiled program (which cannot be lowered for another platform at all).

`audit(jitted, *args, platforms=...)` traces the program once, lowers it for each platform
and returns an `Audit`: per platform whether it lowered (and if not, the primitive whose
lowering failed), its custom-call targets, whether float64 tensors reach it and which
`by_platform` branches were lowered; for the program, the host-callback primitives it holds.
With together=True the platforms are lowered as one multi-platform module (about the cost of
one; per-platform rules become a `case` on the platform), and separately only when that
fails, to say which platform fails.
`Audit.problems()` lists what should fail a check. The seed engine's plan mode calls it for
each engine call under `execution(plan=True, export=(...))`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from typing import Any

import jax
from jax import export
from jax.extend import core as jax_core

from esparse.planning import nested_jaxprs

__all__ = [
    "ACCELERATORS",
    "AUTO_SCOPE",
    "CALLBACKS",
    "PLATFORMS",
    "Audit",
    "Lowering",
    "audit",
    "callbacks",
    "failing_primitive",
    "uses_float64",
]

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
ACCELERATORS = ("cuda", "rocm", "tpu")
# Primitives that call back into Python on the host (jax.pure_callback, io_callback,
# jax.debug.callback / jax.debug.print): a device round trip per call inside a program.
CALLBACKS = frozenset({"pure_callback", "io_callback", "debug_callback", "debug_print"})
# `selection.by_platform` runs the branch for platform key P in named_scope("esparse_auto:P"),
# so a lowered module's locations say which branch it holds.
AUTO_SCOPE = "esparse_auto"
# Every custom call is allowed while lowering (the audit reads them instead); export's own
# check refuses targets without a compatibility guarantee, which says nothing of whether
# the program runs on the platform.
_ANY_CUSTOM_CALL = (export.DisabledSafetyCheck.custom_call("ALL"),)
_CUSTOM_CALL = re.compile(r"custom_call\s*@([\w.$-]+)")
_F64 = re.compile(r"\b(f64|complex<f64>)\b")
_BRANCH = re.compile(re.escape(AUTO_SCOPE) + r":(\w+)")
_PRIMITIVE = re.compile(r"primitive '?([\w-]+)'?")
_TOP_K = re.compile(r"chlo\.top_k\b(?!\.impl)")
_WHILE = re.compile(r"\bstablehlo\.while\b")


@dataclasses.dataclass(frozen=True)
class Lowering:
    """One program lowered for one platform (or several together: "cuda+tpu").

    error: the export's error (its first line), None when it lowered; primitive: the
    primitive whose lowering failed, when known. custom_calls: the module's custom-call
    targets (e.g. cusolver's gesvdj, TPU's Eigh). float64: float64 tensors in the module.
    auto_branches: the `by_platform` branch keys lowered ("cpu", "default"). top_k: the
    module's `lax.top_k` ops (the accelerators' selection); while_loops: its `while` ops (a
    scan, or the CPU selection's search). chars: the module's text size.
    """

    platform: str
    error: str | None = None
    primitive: str | None = None
    custom_calls: tuple[str, ...] = ()
    float64: bool = False
    auto_branches: tuple[str, ...] = ()
    top_k: int = 0
    while_loops: int = 0
    chars: int = 0


@dataclasses.dataclass(frozen=True)
class Audit:
    """A program lowered for several platforms.

    callbacks: host-callback primitives in the traced program (`CALLBACKS`). float64: float64
    values in the traced program. float64_declared: traced inside `jax.enable_x64(True)` (how
    a program asks for float64). lowerings: one `Lowering` per platform.
    """

    callbacks: tuple[str, ...]
    float64: bool
    float64_declared: bool
    lowerings: tuple[Lowering, ...]

    def problems(self) -> list[str]:
        """What fails the check: a platform that does not lower (naming the primitive), a
        host callback, float64 in a program that did not declare it, the CPU branch of an
        `auto` choice lowered for an accelerator."""
        found = [f"host callback {name!r} inside the program" for name in self.callbacks]
        for low in self.lowerings:
            where = f"on {low.platform}"
            if low.error is not None:
                if not self.callbacks:  # a callback's lowering error is reported above
                    prim = f"primitive {low.primitive!r}" if low.primitive else "a primitive"
                    found.append(f"does not lower {where}: {prim}: {low.error}")
                continue
            hosts = [t for t in low.custom_calls if "callback" in t.lower()]
            found += [f"host callback custom call {t!r} {where}" for t in hosts]
            if low.float64 and not self.float64_declared:
                found.append(f"float64 {where} in a program not traced under jax.enable_x64")
            if "cpu" not in low.platform.split("+") and "cpu" in low.auto_branches:
                found.append(f"an auto choice lowered its CPU branch {where}")
        return found

    def to_dict(self) -> dict:
        """JSON-ready form, with the problems."""
        return {**dataclasses.asdict(self), "problems": self.problems()}


def _equations(jaxpr: jax_core.ClosedJaxpr | jax_core.Jaxpr) -> Iterator[Any]:
    """Every equation of a traced program, those of nested programs (jit, scan, cond,
    custom_vjp, ...) included."""
    if isinstance(jaxpr, jax_core.ClosedJaxpr):
        jaxpr = jaxpr.jaxpr
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in nested_jaxprs(value):
                yield from _equations(sub)


def callbacks(jaxpr: jax_core.ClosedJaxpr | jax_core.Jaxpr) -> tuple[str, ...]:
    """The host-callback primitives (`CALLBACKS`) in a traced program, sorted, distinct."""
    return tuple(sorted({e.primitive.name for e in _equations(jaxpr)} & CALLBACKS))


def uses_float64(jaxpr: jax_core.ClosedJaxpr | jax_core.Jaxpr) -> bool:
    """Whether a traced program has a float64 (or complex128) input, output or value."""
    wide = {"float64", "complex128"}
    closed = jaxpr.jaxpr if isinstance(jaxpr, jax_core.ClosedJaxpr) else jaxpr
    outer = [*closed.invars, *closed.outvars]
    variables = [*outer, *(v for e in _equations(jaxpr) for v in e.outvars)]
    return any(str(getattr(getattr(v, "aval", None), "dtype", "")) in wide for v in variables)


def failing_primitive(err: BaseException) -> str | None:
    """The primitive whose lowering raised `err`: from the message ("... primitive 'x' ...")
    or else from the innermost frame of JAX's lowering loop that was lowering an equation."""
    found = None
    tb = err.__traceback__
    while tb is not None:  # the innermost jaxpr_subcomp frame holds the failing equation
        eqn = (
            tb.tb_frame.f_locals.get("eqn")
            if tb.tb_frame.f_code.co_name == "jaxpr_subcomp"
            else None
        )
        if eqn is not None and hasattr(eqn, "primitive"):
            found = eqn.primitive.name
        tb = tb.tb_next
    if found is None and err.__cause__ is not None and err.__cause__ is not err:
        found = failing_primitive(err.__cause__)
    if found is None:
        match = _PRIMITIVE.search(str(err))
        found = match.group(1) if match else None
    return found


def _code(text: str) -> str:
    """A module's text without its location lines (which repeat op names)."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("#loc"))


def _lower(jitted: Any, args: Sequence[Any], platforms: Sequence[str]) -> Lowering:
    platform = "+".join(platforms)
    try:
        lower = export.export(jitted, platforms=list(platforms), disabled_checks=_ANY_CUSTOM_CALL)
        text = lower(*args).mlir_module()
    except Exception as err:  # any lowering failure is a finding, reported with its primitive
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        return Lowering(platform, f"{type(err).__name__}: {first}", failing_primitive(err))
    return Lowering(
        platform,
        custom_calls=tuple(sorted(set(_CUSTOM_CALL.findall(text)))),
        float64=bool(_F64.search(text)),
        auto_branches=tuple(sorted(set(_BRANCH.findall(text)))),
        top_k=len(_TOP_K.findall(_code(text))),
        while_loops=len(_WHILE.findall(_code(text))),
        chars=len(text),
    )


def audit(
    jitted: Any, *args: Any, platforms: Sequence[str] = ACCELERATORS, together: bool = False
) -> Audit:
    """Lower `jitted` (a `jax.jit` function) for each of `platforms` with `args` (arrays or
    ShapeDtypeStructs); nothing is compiled or run. together: one multi-platform lowering
    (one `Lowering` named "cuda+tpu"), each platform on its own only if that fails.
    ValueError for an unknown platform."""
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown or not platforms:
        raise ValueError(f"platforms must be a non-empty subset of {PLATFORMS}, got {platforms!r}")
    declared = bool(jax.config.jax_enable_x64)  # type: ignore[attr-defined]
    jaxpr = jax.make_jaxpr(jitted)(*args)
    lowerings: tuple[Lowering, ...] = ()
    if together and len(platforms) > 1:
        lowerings = (_lower(jitted, args, platforms),)
    if not lowerings or lowerings[0].error is not None:
        lowerings = tuple(_lower(jitted, args, (p,)) for p in platforms)
    return Audit(
        callbacks=callbacks(jaxpr),
        float64=uses_float64(jaxpr),
        float64_declared=declared,
        lowerings=lowerings,
    )
