"""The peers esparse is timed against, written as a user of each library would write them:
numpy, torch (CPU) and FAISS. torch and FAISS are optional (the `bench` extra): without them
their rows say so. scikit-learn's estimators are called as they are (`analysis`)."""

from __future__ import annotations

import functools
import os

import numpy as np

_NUMPY_CHUNK = 8  # queries per numpy k-NN step: (8, n, words / 2) uint64 temporaries


@functools.cache
def torch_or_none():
    """The torch module set to use every core, or None when it is not importable. Imported on
    first use, so that a process that needs only numpy or FAISS never loads it."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


def faiss_available() -> bool:
    """Whether FAISS (faiss-cpu) is importable."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- k-WTA


def numpy_kwta(y: np.ndarray, k: int) -> np.ndarray:
    """The k largest of each row of y kept, the rest zeroed: argpartition + put."""
    idx = np.argpartition(y, y.shape[1] - k, axis=1)[:, y.shape[1] - k :]
    out = np.zeros_like(y)
    np.put_along_axis(out, idx, np.take_along_axis(y, idx, axis=1), axis=1)
    return out


def torch_kwta(y, k: int):
    """The k largest of each row of the tensor y kept, the rest zeroed: topk + scatter."""
    torch = torch_or_none()
    values, idx = torch.topk(y, k, dim=1, sorted=False)
    return torch.zeros_like(y).scatter_(1, idx, values)


# --------------------------------------------------------------------------- masked training


def torch_mlp(sizes: tuple[int, ...]):
    """A torch MLP of Linear layers of `sizes` with ReLU between them."""
    torch = torch_or_none()
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def torch_masked_steps(model, masks, x, y, order, steps: int, batch: int) -> None:
    """`steps` Adam steps of the masked torch MLP (weights and their updates masked, the
    usual hand-written torch recipe), minibatches in the order of `order`."""
    torch = torch_or_none()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for w, m in zip(weights, masks, strict=True):
            w.mul_(m)
    for step in range(steps):
        idx = order[step * batch : (step + 1) * batch]
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
        with torch.no_grad():
            for w, m in zip(weights, masks, strict=True):
                w.mul_(m)


def torch_imp(model, x, y, order, rounds: int, steps: int, batch: int) -> list:
    """IMP with rewinding in torch: train, prune 20% of each layer's remaining weights by
    magnitude (kthvalue), rewind to the initial weights; `rounds` + 1 trainings."""
    torch = torch_or_none()
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    theta0 = [lin.weight.detach().clone() for lin in linears]
    masks = [torch.ones_like(w) for w in theta0]
    for _ in range(rounds + 1):
        with torch.no_grad():
            for lin, w0 in zip(linears, theta0, strict=True):
                lin.weight.copy_(w0)
        torch_masked_steps(model, masks, x, y, order, steps, batch)
        with torch.no_grad():
            for i, lin in enumerate(linears):
                alive = lin.weight.abs()[masks[i].bool()]
                n_prune = int(round(0.2 * alive.numel()))
                cut = torch.kthvalue(alive, n_prune).values
                masks[i] = masks[i] * (lin.weight.abs() > cut)
    return masks


# --------------------------------------------------------------------------- Hamming k-NN


def numpy_knn(database: np.ndarray, queries: np.ndarray, k: int) -> tuple:
    """numpy peer: popcount distances (np.bitwise_count on uint64 words) per chunk of queries,
    argpartition for the k smallest, then a stable order by (distance, index)."""
    db64, q64 = database.view(np.uint64), queries.view(np.uint64)
    dist, idx = [], []
    for s in range(0, len(q64), _NUMPY_CHUNK):
        d = np.bitwise_count(q64[s : s + _NUMPY_CHUNK, None, :] ^ db64[None]).sum(-1, np.int32)
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(d, part, 1).max(1, keepdims=True)
        for row_d, row_kth in zip(d, kth, strict=True):  # all ties at the k-th, lowest first
            cand = np.flatnonzero(row_d <= row_kth)
            order = cand[np.lexsort((cand, row_d[cand]))][:k]
            dist.append(row_d[order])
            idx.append(order)
    return np.stack(dist), np.stack(idx)


def faiss_index(database: np.ndarray):
    """A FAISS IndexBinaryFlat holding the packed uint32 codes of `database` (n, words)."""
    import faiss

    index = faiss.IndexBinaryFlat(32 * database.shape[1])
    index.add(database.view(np.uint8))
    return index
