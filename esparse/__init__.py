"""esparse: expand-and-sparsify kernels in JAX, and the tools to test why neural networks work.

Submodules (imported on first use): data, projection, sparsify, masks, nn, train, checkpoint,
features, hashing, readout, meanfield, info, stats.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "checkpoint",
    "data",
    "features",
    "hashing",
    "info",
    "masks",
    "meanfield",
    "nn",
    "projection",
    "readout",
    "sparsify",
    "stats",
    "train",
)

__all__ = [*_SUBMODULES, "expand_and_sparsify", "__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"esparse.{name}")
    if name == "expand_and_sparsify":
        from esparse.projection import expand_and_sparsify

        return expand_and_sparsify
    raise AttributeError(f"module 'esparse' has no attribute {name!r}")
