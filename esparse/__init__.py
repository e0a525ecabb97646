"""esparse: expand-and-sparsify kernels in JAX, and the tools to test why neural networks work.

The names a user imports are re-exported here, in the style of optax
(`esparse.expand_and_sparsify`, `esparse.kwta`, `esparse.train_seeds`, ...). Everything else
lives in the submodules, imported on first use (`esparse.projection`, `esparse.masks`, ...):
`import esparse` itself imports neither JAX nor any submodule, so it costs a few
milliseconds; the first access to a name imports the module that defines it.

Groups of the curated API:
- kernels: random projections, k-winners-take-all, FlyHash and packed binary codes;
- masks: pruning, lottery tickets, supermasks, dropout, optax transforms for masked training;
- models: small Flax models as pure (init, apply) pairs;
- engine: `esparse.train.train` one model; `train_seeds` / `vmap_seeds` (`esparse.engine`)
  over a seed axis (chunked, sharded, checkpointed);
- analysis: random-feature regression, readouts, mean-field nets, mutual information.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Name -> submodule that defines it. One table, so a moved function is moved here once
# (tests/test_public_api.py checks that every name resolves and is documented).
_KERNELS = {
    "expand_and_sparsify": "expansion",
    "project": "projection",
    "gaussian": "projection",
    "sparse_sign": "projection",
    "fly": "projection",
    "apply_fly": "projection",
    "srht": "hadamard",
    "apply_srht": "hadamard",
    "SRHTParams": "hadamard",
    "kwta": "sparsify",
    "kwta_mask": "sparsify",
    "kwta_binary": "sparsify",
    "kwta_st": "sparsify",
    "kwta_binary_st": "sparsify",
    "kwta_indices": "sparsify",
    "flyhash": "hashing",
    "hamming_knn": "hashing",
    "pack_bits": "codes",
    "unpack_bits": "codes",
}
_MASKS = {
    "apply_mask": "masks",
    "magnitude_prune": "pruning",
    "random_mask": "pruning",
    "imp": "lottery",
    "ImpResult": "lottery",
    "reinit_control": "lottery",
    "random_mask_control": "lottery",
    "keep_pruned_zero": "optim",
    "train_only": "optim",
    "edge_popup_mask": "supermasks",
    "dropout": "nn",
    "dropout_mask": "nn",
}
_MODELS = {
    "Model": "nn",
    "mlp": "nn",
    "supermask_mlp": "nn",
    "expansion_readout": "nn",
    "meanfield_two_layer": "nn",
    "kernel_mask_spec": "nn",
}
# `train` (one model) stays `esparse.train.train`: the name is the engine's module.
_ENGINE = {
    "train_seeds": "engine",
    "vmap_seeds": "engine",
    "TrainResult": "train",
    "Dataset": "data",
}
_ANALYSIS = {
    "random_relu_features": "features",
    "random_fourier_features": "features",
    "ridge": "regression",
    "ridge_path": "regression",
    "ridge_select": "regression",
    "min_norm_lstsq": "regression",
    "ridge_classifier": "readout",
    "noisy_gd": "meanfield",
    "mmd": "meanfield",
    "sliced_wasserstein": "meanfield",
    "mutual_information": "info",
    "pca_scores": "info",
}
_EXPORTS: dict[str, str] = {**_KERNELS, **_MASKS, **_MODELS, **_ENGINE, **_ANALYSIS}
# Old names still reachable (not in __all__); calling them warns (CHANGELOG.md).
_DEPRECATED = {"expand_sparsify": "nn"}  # the model, now expansion_readout

# Public submodules, also reachable as attributes (`esparse.masks`) without an import.
_SUBMODULES = (
    "checkpoint",
    "codes",
    "convergence",
    "data",
    "engine",
    "execution",
    "expansion",
    "exporting",
    "features",
    "hadamard",
    "hashing",
    "info",
    "io",
    "lottery",
    "masks",
    "meanfield",
    "nn",
    "optim",
    "placement",
    "planning",
    "projection",
    "pruning",
    "readout",
    "regression",
    "selection",
    "sparsify",
    "stats",
    "supermasks",
    "train",
)

__all__ = [
    "__version__",
    "expand_and_sparsify",
    "project",
    "gaussian",
    "sparse_sign",
    "fly",
    "apply_fly",
    "srht",
    "apply_srht",
    "SRHTParams",
    "kwta",
    "kwta_mask",
    "kwta_binary",
    "kwta_st",
    "kwta_binary_st",
    "kwta_indices",
    "flyhash",
    "hamming_knn",
    "pack_bits",
    "unpack_bits",
    "apply_mask",
    "magnitude_prune",
    "random_mask",
    "imp",
    "ImpResult",
    "reinit_control",
    "random_mask_control",
    "keep_pruned_zero",
    "train_only",
    "edge_popup_mask",
    "dropout",
    "dropout_mask",
    "Model",
    "mlp",
    "supermask_mlp",
    "expansion_readout",
    "meanfield_two_layer",
    "kernel_mask_spec",
    "train_seeds",
    "vmap_seeds",
    "TrainResult",
    "Dataset",
    "random_relu_features",
    "random_fourier_features",
    "ridge",
    "ridge_path",
    "ridge_select",
    "min_norm_lstsq",
    "ridge_classifier",
    "noisy_gd",
    "mmd",
    "sliced_wasserstein",
    "mutual_information",
    "pca_scores",
]


def __getattr__(name: str) -> Any:
    """Import on first use: a curated name from its submodule, or a public submodule."""
    if name in _DEPRECATED:
        return getattr(importlib.import_module(f"esparse.{_DEPRECATED[name]}"), name)
    if name in _EXPORTS:
        module = importlib.import_module(f"esparse.{_EXPORTS[name]}")
        value = getattr(module, name)
        globals()[name] = value  # later accesses skip this function
        return value
    if name in _SUBMODULES or (not name.startswith("_") and _is_submodule(name)):
        return importlib.import_module(f"esparse.{name}")
    raise AttributeError(f"module 'esparse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBMODULES})


def _is_submodule(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(f"esparse.{name}") is not None


if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from esparse import (  # noqa: F401
        checkpoint,
        codes,
        convergence,
        data,
        engine,
        execution,
        expansion,
        exporting,
        features,
        hadamard,
        hashing,
        info,
        io,
        lottery,
        masks,
        meanfield,
        nn,
        optim,
        placement,
        planning,
        projection,
        pruning,
        readout,
        regression,
        selection,
        sparsify,
        stats,
        supermasks,
        train,
    )
    from esparse.codes import pack_bits, unpack_bits
    from esparse.data import Dataset
    from esparse.engine import train_seeds, vmap_seeds
    from esparse.expansion import expand_and_sparsify
    from esparse.features import random_fourier_features, random_relu_features
    from esparse.hadamard import SRHTParams, apply_srht, srht
    from esparse.hashing import flyhash, hamming_knn
    from esparse.info import mutual_information, pca_scores
    from esparse.lottery import ImpResult, imp, random_mask_control, reinit_control
    from esparse.masks import apply_mask
    from esparse.meanfield import mmd, noisy_gd, sliced_wasserstein
    from esparse.nn import (
        Model,
        dropout,
        dropout_mask,
        expansion_readout,
        kernel_mask_spec,
        meanfield_two_layer,
        mlp,
        supermask_mlp,
    )
    from esparse.optim import keep_pruned_zero, train_only
    from esparse.projection import apply_fly, fly, gaussian, project, sparse_sign
    from esparse.pruning import magnitude_prune, random_mask
    from esparse.readout import ridge_classifier
    from esparse.regression import min_norm_lstsq, ridge, ridge_path, ridge_select
    from esparse.sparsify import (
        kwta,
        kwta_binary,
        kwta_binary_st,
        kwta_indices,
        kwta_mask,
        kwta_st,
    )
    from esparse.supermasks import edge_popup_mask
    from esparse.train import TrainResult
