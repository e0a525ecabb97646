"""flyhash-search (Mukherjee & Huberman; Dasgupta et al. 2017): FlyHash (sparse binary expansion
+ winner-take-all) finds nearest neighbours better than LSH of the same hash length.

Protocol (CLAIMS.md): digits and MNIST-1D, inputs mean-centred. Hash length k in {4,8,16,32};
fly: m = 20k binary units each summing a random 10% of the inputs, top k set to 1; LSH: k
Gaussian projections + sign; also LSH at the fly code's information content, ceil(log2 C(m, k))
bits. mAP of the true top-2% l2 neighbours (centred input space) over 500 queries per seed,
Hamming ties broken at random, the query itself excluded from the database.
Criterion (CLAIMS.md, line for line): for each dataset, fly mAP > LSH mAP at every k <= 16,
paired 95% CI above 0 (each check reads the arms DATASET:fly and DATASET:lsh; no ridge
readout, no training, so no validity conditions).
Negative control (tests only, `Config.control="random-winners"`): the fly's winner-take-all
replaced by a random k-subset of its m units per point, drawn independently of the units'
activity, so the code carries no similarity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from esparse import codes, data, engine, hashing, sparsify, stats
from experiments.core import (
    Claim,
    Evaluation,
    ProtocolChange,
    errorbar,
    grid_intervals,
    save_figure,
    subplots,
)


@dataclass(frozen=True)
class Config:
    seeds: int
    hash_lengths: tuple[int, ...] = (4, 8, 16, 32)
    expansion: int = 20
    input_fraction: float = 0.1
    neighbor_fraction: float = 0.02
    queries: int = 500
    datasets: tuple[str, ...] = ("digits", "mnist1d")
    mnist1d_samples: int = 5000
    control: str | None = None  # negative control, tests only: "random-winners"


CONFIGS = {
    "smoke": Config(seeds=3, hash_lengths=(4, 16), queries=100, datasets=("digits",)),
    # hash lengths 4-16 (k = 32 left out) for the suite's time (ProtocolChange)
    "quick": Config(seeds=8, hash_lengths=(4, 8, 16)),
    "full": Config(seeds=32, hash_lengths=(2, 4, 8, 16, 32, 64)),
}


def _points(name: str, config: Config) -> jax.Array:
    ds = data.digits() if name == "digits" else data.mnist1d(num_samples=config.mnist1d_samples)
    x = jnp.concatenate([ds.x_train, ds.x_test]).astype(jnp.float32)
    return x - x.mean(axis=0)


def _info_bits(m: int, k: int) -> int:
    return math.ceil(math.log2(math.comb(m, k)))


def _fly_codes(key, x, k: int, m: int, c: int, control: str | None) -> jax.Array:
    """FlyHash codes of x; control="random-winners": k of the m units set at random per point
    (the negative control: the same code shape, no similarity kept)."""
    if control == "random-winners":
        noise = jax.random.uniform(key, (x.shape[0], m))
        return codes.pack_bits(sparsify.kwta_mask(noise, k))
    return hashing.flyhash(key, x, m, k, c)


def _maps(
    key,
    x,
    k: int,
    m: int,
    c: int,
    info_bits: int,
    n_queries: int,
    n_neighbors: int,
    control: str | None,
):
    """mAP of fly, LSH (k bits) and LSH (information-content bits) for one seed.

    Codes are packed bits, distances popcounts of XOR (int), and the mAP counts each relevant
    item's rank (no sort of the database per query)."""
    q_key, f_key, l_key, i_key, t_key = jax.random.split(key, 5)
    queries = jax.random.choice(q_key, x.shape[0], (n_queries,), replace=False)
    relevant = hashing.true_neighbors(x[queries], x, n_neighbors, queries)
    out = {}
    for name, packed in (  # packed uint32 codes; Hamming distances by XOR + popcount
        ("fly", _fly_codes(f_key, x, k, m, c, control)),
        ("lsh", hashing.lsh(l_key, x, k)),
        ("lsh_info", hashing.lsh(i_key, x, info_bits)),
    ):
        dist = hashing.hamming(packed[queries], packed)
        out[name] = hashing.mean_average_precision(t_key, dist, relevant, queries)
    return out


def run(keys, config: Config) -> dict:
    if config.control not in (None, "random-winners"):
        raise ValueError(f"control must be None or 'random-winners', got {config.control!r}")
    metrics = {}
    for name in config.datasets:
        x = _points(name, config)
        d, n = x.shape[1], x.shape[0]
        c = max(1, round(config.input_fraction * d))
        n_neighbors = max(1, round(config.neighbor_fraction * n))
        per_k = []
        for k in config.hash_lengths:
            m = config.expansion * k
            maps = partial(
                _maps,
                k=k,
                m=m,
                c=c,
                info_bits=_info_bits(m, k),
                n_queries=config.queries,
                n_neighbors=n_neighbors,
                control=config.control,
            )
            per_k.append(engine.vmap_seeds(maps, keys, x))
        for method in ("fly", "lsh", "lsh_info"):
            metrics[f"{name}_{method}_map"] = np.stack([np.asarray(p[method]) for p in per_k], 1)
    return metrics


def evaluate(metrics: dict, config: Config) -> Evaluation:
    checks, summary, parts = [], {"hash_lengths": list(config.hash_lengths)}, []
    for name in config.datasets:
        fly, lsh = metrics[f"{name}_fly_map"], metrics[f"{name}_lsh_map"]
        info = metrics[f"{name}_lsh_info_map"]
        gains = {}
        for j, k in enumerate(config.hash_lengths):
            gain = stats.paired_ci(fly[:, j], lsh[:, j])
            gains[k] = gain.to_dict()
            if k <= 16:
                check = stats.ci_above(f"{name}: fly - LSH mAP at k={k}", gain, 0.0)
                checks.append(check.on(f"{name}:fly", f"{name}:lsh"))
        summary[name] = {
            "fly_map": grid_intervals(fly),
            "lsh_map": grid_intervals(lsh),
            "lsh_info_content_map": grid_intervals(info),
            "lsh_info_content_bits": [
                _info_bits(config.expansion * k, k) for k in config.hash_lengths
            ],
            "fly_minus_lsh": gains,
            "fly_minus_lsh_info_content": {
                k: stats.paired_ci(fly[:, j], info[:, j]).to_dict()
                for j, k in enumerate(config.hash_lengths)
            },
        }
        parts.append(
            f"{name} k={config.hash_lengths[0]}: fly {fly[:, 0].mean():.3f} vs LSH "
            f"{lsh[:, 0].mean():.3f} (info-bits LSH {info[:, 0].mean():.3f})"
        )
    return Evaluation(checks, summary, "; ".join(parts))


def plot(metrics: dict, config: Config, path) -> None:
    fig, axes = subplots(ncols=len(config.datasets), width=5)
    for ax, name in zip(axes, config.datasets, strict=True):
        errorbar(ax, config.hash_lengths, metrics[f"{name}_fly_map"], "FlyHash (m = 20k, top k)")
        errorbar(ax, config.hash_lengths, metrics[f"{name}_lsh_map"], "LSH, k bits")
        errorbar(ax, config.hash_lengths, metrics[f"{name}_lsh_info_map"], "LSH, log2 C(m,k) bits")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("hash length k (active bits)")
        ax.set_ylabel("mAP of true top-2% neighbours")
        ax.set_title(f"{name}: nearest-neighbour search")
        ax.legend(fontsize=8)
    save_figure(fig, path)


CLAIM = Claim(
    id="flyhash-search",
    paper="MH",
    statement=(
        "FlyHash (sparse binary expansion + winner-take-all) finds nearest neighbours better "
        "than LSH of the same hash length."
    ),
    anchor=(
        "Dasgupta et al., Science 2017: 40x expansion, ~6 inputs per Kenyon cell, top 5% kept; "
        "fly beats LSH most at short hashes."
    ),
    configs=CONFIGS,
    run=run,
    evaluate=evaluate,
    plot=plot,
    changes=(
        ProtocolChange(
            date="2026-12-04",
            what="quick hash lengths k in {4, 8, 16} (was {4, 8, 16, 32})",
            reason="the quick suite's 15 minutes on 2 cores (96 s with k = 32)",
            verdict_before=(
                "reproduced (digits k=4: fly 0.286 vs LSH 0.086; MNIST-1D k=4: 0.108 vs 0.056)"
            ),
        ),
    ),
)
