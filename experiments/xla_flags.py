"""The suite's XLA setting, applied by its command line before JAX starts a backend.

XLA compiles CPU programs through LLVM at -O3 by default (`--xla_backend_optimization_level`
3). At -O2 the suite's programs compile in about half the time and run no slower (BUILD_NOTES.md,
2026-12-04: flyhash-search 46 -> 23 s of compilation, rf-single-neuron 36 -> 16 s, a training
step unchanged), and at quick scale compilation is a quarter of the suite's time. So the runner
asks for -O2 when this process can only run on the CPU. GPU and TPU runs keep XLA's default
(the flag also sets their LLVM level, which was not measured), and a level already named in
XLA_FLAGS is kept. XLA reads XLA_FLAGS when JAX starts its first backend: after that, a change
has no effect.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from collections.abc import MutableMapping

__all__ = ["CPU_LEVEL", "LEVEL_FLAG", "cpu_only", "prefer_fast_cpu_compiles", "with_cpu_level"]

LEVEL_FLAG = "--xla_backend_optimization_level"
CPU_LEVEL = 2


def cpu_only(environ: MutableMapping[str, str]) -> bool:
    """Whether JAX can only start its CPU backend here: JAX_PLATFORMS names only "cpu", or,
    when it is unset, no accelerator plugin is installed (no "jax_plugins" entry point or
    package, e.g. jax-cuda12-plugin, and no libtpu)."""
    platforms = environ.get("JAX_PLATFORMS", "").strip()
    if platforms:
        return {p.strip() for p in platforms.split(",")} <= {"cpu"}
    plugins = importlib.metadata.entry_points(group="jax_plugins")
    installed = importlib.util.find_spec("jax_plugins") or importlib.util.find_spec("libtpu")
    return not plugins and installed is None


def with_cpu_level(flags: str) -> str:
    """`flags` (an XLA_FLAGS value) with the CPU compile level added, unless it names a level."""
    if LEVEL_FLAG in flags:
        return flags
    return f"{flags} {LEVEL_FLAG}={CPU_LEVEL}".strip()


def prefer_fast_cpu_compiles(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Add the CPU compile level to environ["XLA_FLAGS"] on a CPU-only process (`cpu_only`);
    returns whether XLA_FLAGS now holds it. Call before the first JAX computation."""
    if not cpu_only(environ):
        return False
    environ["XLA_FLAGS"] = with_cpu_level(environ.get("XLA_FLAGS", ""))
    return f"{LEVEL_FLAG}={CPU_LEVEL}" in environ["XLA_FLAGS"]
