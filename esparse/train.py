"""Training one model: a jitted `lax.scan` over minibatch steps (the loop of the seed engine).

`train` trains one model from one key. The seed engine (`esparse.engine.train_seeds`) runs the
same loop for S keys at once, vmapped, chunked, sharded and checkpointed; it builds on the
pieces below: `prepare` (validation and the static `TrainConfig`), `init_state`, `run_steps`
(a segment of the scan), `train_result`, and `train_with` (all three in one program).

Randomness: from `key` come a data key and a dropout key; step t (0-based) draws its
minibatch and dropout from `fold_in(., t)` (shuffle sampling: epoch e's permutation from
`fold_in(data_key, e)`), so a run cut into segments is bit-identical to an uncut one.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple, cast, get_args

import jax
import jax.numpy as jnp
import numpy as np
import optax

from esparse import _checks
from esparse.data import Dataset

__all__ = [
    "LOSSES",
    "SAMPLINGS",
    "Loss",
    "Sampling",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "init_state",
    "prepare",
    "run_steps",
    "train",
    "train_result",
    "train_with",
]

PyTree = Any
ApplyFn = Callable[[PyTree, jax.Array, Any, bool], jax.Array]
LossFn = Callable[[jax.Array, jax.Array], jax.Array]
MetricFn = Callable[[PyTree, Dataset], jax.Array]

Loss = Literal["cross_entropy", "mse"]  # the built-in losses (or a function)
Sampling = Literal["shuffle", "replace"]  # how minibatches are drawn
LOSSES: tuple[str, ...] = get_args(Loss)
SAMPLINGS: tuple[str, ...] = get_args(Sampling)
_BUILTIN_METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


class TrainResult(NamedTuple):
    """Output of `train` / `train_seeds` (the latter adds a leading seed axis to every field).

    params: final parameters. history: name -> (n_logs,) values of the built-in metrics at
    `log_steps`, and of the `metrics` functions at `metric_steps`. log_steps: (n_logs,)
    int32, number of updates done at each log. final: name -> scalar, the metrics at the last
    step. metric_steps: (n_metric_logs,) int32, the updates done at each log of the `metrics`
    functions (`log_steps` unless `metrics_every` was given).
    """

    params: PyTree
    history: dict[str, jax.Array]
    log_steps: jax.Array
    final: dict[str, jax.Array]
    metric_steps: jax.Array


class TrainState(NamedTuple):
    """The carry of the training scan: params, optimizer state, the current epoch's
    permutation (shuffle sampling; None with "replace") and the history logged so far."""

    params: PyTree
    opt_state: PyTree
    perm: jax.Array | None  # current epoch's permutation (shuffle sampling), else None
    history: dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static configuration of a training run (hashable: a key of the compiled programs).

    Built and validated by `prepare`; fields as the keyword arguments of `train`, with
    metrics as a tuple of (name, fn) pairs."""

    apply_fn: ApplyFn
    optimizer: optax.GradientTransformation
    steps: int
    batch_size: int
    loss: str | LossFn
    log_every: int
    sampling: str
    metrics: tuple[tuple[str, MetricFn], ...]
    eval_rows: int | None = None
    metrics_every: int | None = None

    @property
    def metric_log_every(self) -> int:
        """Updates between two logs of the `metrics` functions."""
        return self.metrics_every or self.log_every

    def log_steps(self, every: int | None = None) -> np.ndarray:
        """(n_logs,) int32: the number of updates done at each logged evaluation (of one
        every `every` updates and after the last one, when given)."""
        every = every or self.log_every
        done = np.arange(1, -(-self.steps // every) + 1) * every
        done[-1] = self.steps
        return done.astype(np.int32)


# ----------------------------------------------------------------------------- the math


def _loss_and_accuracy(
    loss: str | LossFn, outputs: jax.Array, targets: jax.Array
) -> tuple[jax.Array, jax.Array | None]:
    """Mean loss over the batch, and accuracy when the targets are class labels or one-hot."""
    if loss == "cross_entropy":
        value = optax.softmax_cross_entropy_with_integer_labels(outputs, targets).mean()
    elif loss == "mse":
        value = jnp.mean((outputs - targets) ** 2)
    else:
        value = jnp.asarray(cast(LossFn, loss)(outputs, targets))
        if value.shape != ():
            raise ValueError(f"loss must return a scalar, got shape {value.shape}")
    accuracy = None
    if outputs.ndim == 2 and targets.ndim == 1 and jnp.issubdtype(targets.dtype, jnp.integer):
        accuracy = jnp.mean(jnp.argmax(outputs, axis=-1) == targets)
    elif outputs.ndim == 2 and targets.shape == outputs.shape and targets.shape[-1] > 1:
        accuracy = jnp.mean(jnp.argmax(outputs, axis=-1) == jnp.argmax(targets, axis=-1))
    return value, accuracy


def _apply_mask(tree: PyTree, mask: PyTree | None) -> PyTree:
    if mask is None:
        return tree
    return jax.tree.map(lambda p, m: jnp.where(m, p, jnp.zeros_like(p)), tree, mask)


def _evaluate_builtins(cfg: TrainConfig, params: PyTree, data: Dataset) -> dict[str, jax.Array]:
    """Loss and accuracy on the train and test sets (their first `cfg.eval_rows` rows when
    set, a fixed subset), in eval mode (train=False)."""
    out = {}
    rows = slice(None, cfg.eval_rows)
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        x, y = x[rows], y[rows]
        value, accuracy = _loss_and_accuracy(cfg.loss, cfg.apply_fn(params, x, None, False), y)
        out[f"{split}_loss"] = value.astype(jnp.float32)
        if accuracy is not None:
            out[f"{split}_accuracy"] = accuracy.astype(jnp.float32)
    return out


def _evaluate_metrics(cfg: TrainConfig, params: PyTree, data: Dataset) -> dict[str, jax.Array]:
    """The `metrics` functions' values, checked to be scalars."""
    out = {}
    for name, fn in cfg.metrics:
        value = jnp.asarray(fn(params, data), jnp.float32)
        if value.shape != ():
            raise ValueError(f"metrics[{name!r}] must return a scalar, got shape {value.shape}")
        out[name] = value
    return out


def _log_schedule(cfg: TrainConfig) -> list[tuple[int, Callable[..., dict[str, jax.Array]]]]:
    """(every, evaluate) pairs: the built-ins every log_every updates, the `metrics` functions
    with them or, given metrics_every, on their own cadence."""
    if cfg.metric_log_every == cfg.log_every or not cfg.metrics:
        return [(cfg.log_every, lambda *a: {**_evaluate_builtins(*a), **_evaluate_metrics(*a)})]
    return [(cfg.log_every, _evaluate_builtins), (cfg.metric_log_every, _evaluate_metrics)]


def init_state(
    cfg: TrainConfig, key: jax.Array, params: PyTree, data: Dataset, mask: PyTree
) -> TrainState:
    """The state before step 0: params masked, optimizer initialised, history zeros."""
    del key  # the state holds no key: every step derives its keys from the run's key
    params = _apply_mask(params, mask)
    history = {}
    for every, evaluate in _log_schedule(cfg):
        logged = jax.eval_shape(functools.partial(evaluate, cfg), params, data)
        n_logs = len(cfg.log_steps(every))
        history.update({name: jnp.zeros((n_logs,), jnp.float32) for name in logged})
    n = data.x_train.shape[0]
    perm = jnp.zeros((n,), jnp.int32) if cfg.sampling == "shuffle" else None
    return TrainState(params, cfg.optimizer.init(params), perm, history)


def run_steps(
    cfg: TrainConfig,
    length: int,
    state: TrainState,
    key: jax.Array,
    data: Dataset,
    mask: PyTree,
    start: jax.Array,
) -> TrainState:
    """Steps start, ..., start + length - 1 of the run, as one `lax.scan` (length static)."""
    data_key, dropout_key = jax.random.split(key)
    n = data.x_train.shape[0]
    per_epoch = n // cfg.batch_size

    def step(state: TrainState, t: jax.Array) -> tuple[TrainState, None]:
        perm = state.perm
        if cfg.sampling == "shuffle" and cfg.batch_size == n:
            # full batch: every row, no permutation (row order does not change the mean loss)
            xb, yb = data.x_train, data.y_train
        else:
            if cfg.sampling == "shuffle":
                epoch, pos = t // per_epoch, t % per_epoch
                perm = jax.lax.cond(
                    pos == 0,
                    lambda: jax.random.permutation(jax.random.fold_in(data_key, epoch), n),
                    lambda: state.perm,
                )
                idx = jax.lax.dynamic_slice_in_dim(perm, pos * cfg.batch_size, cfg.batch_size)
            else:
                idx = jax.random.randint(jax.random.fold_in(data_key, t), (cfg.batch_size,), 0, n)
            xb, yb = data.x_train[idx], data.y_train[idx]
        step_key = jax.random.fold_in(dropout_key, t)

        def loss_fn(p: PyTree) -> jax.Array:
            return _loss_and_accuracy(cfg.loss, cfg.apply_fn(p, xb, step_key, True), yb)[0]

        grads = _apply_mask(jax.grad(loss_fn)(state.params), mask)
        updates, opt_state = cfg.optimizer.update(grads, state.opt_state, state.params)
        params = _apply_mask(optax.apply_updates(state.params, updates), mask)
        done = t + 1

        history = state.history
        for every, evaluate in _log_schedule(cfg):

            def log(history: dict[str, jax.Array], every=every, evaluate=evaluate) -> dict:
                row = (done - 1) // every
                values = evaluate(cfg, params, data)
                return {**history, **{k: history[k].at[row].set(v) for k, v in values.items()}}

            is_log = (done % every == 0) | (done == cfg.steps)
            history = jax.lax.cond(is_log, log, lambda h: h, history)
        return TrainState(params, opt_state, perm, history), None

    steps = start + jnp.arange(length, dtype=jnp.int32)
    return jax.lax.scan(step, state, steps)[0]


def train_result(cfg: TrainConfig, state: TrainState) -> TrainResult:
    """The `TrainResult` of a finished run's state."""
    final = {name: values[-1] for name, values in state.history.items()}
    log_steps, metric_steps = cfg.log_steps(), cfg.log_steps(cfg.metric_log_every)
    return TrainResult(
        state.params, state.history, jnp.asarray(log_steps), final, jnp.asarray(metric_steps)
    )


def train_with(
    cfg: TrainConfig, key: jax.Array, params: PyTree, data: Dataset, mask: PyTree
) -> TrainResult:
    """A whole run in one program: `init_state`, every step by `run_steps`, `train_result`."""
    state = init_state(cfg, key, params, data, mask)
    state = run_steps(cfg, cfg.steps, state, key, data, mask, jnp.int32(0))
    return train_result(cfg, state)


_train_jit = jax.jit(train_with, static_argnums=0)


# ----------------------------------------------------------------------------- validation


def _config(
    *,
    apply_fn: ApplyFn,
    optimizer: optax.GradientTransformation,
    steps: int,
    batch_size: int,
    n_train: int,
    loss: Loss | LossFn = "cross_entropy",
    log_every: int = 100,
    sampling: Sampling = "shuffle",
    metrics: Mapping[str, MetricFn] | None = None,
    eval_rows: int | None = None,
    metrics_every: int | None = None,
) -> TrainConfig:
    if not callable(apply_fn):
        raise ValueError(f"apply_fn must be callable, got {apply_fn!r}")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax.GradientTransformation, got {optimizer!r}")
    steps = _checks.positive_int("steps", steps)
    batch_size = _checks.positive_int("batch_size", batch_size)
    if batch_size > n_train:
        raise ValueError(
            f"batch_size must be at most the number of train samples ({n_train}), got {batch_size}"
        )
    if not callable(loss):
        _checks.one_of("loss", loss, LOSSES)
    log_every = _checks.positive_int("log_every", log_every)
    _checks.one_of("sampling", sampling, SAMPLINGS)
    metrics = dict(metrics or {})
    for name, fn in metrics.items():
        if not isinstance(name, str) or name in _BUILTIN_METRICS or not callable(fn):
            raise ValueError(
                f"metrics must map new names to callables fn(params, data), got {name!r}: {fn!r}"
            )
    if eval_rows is not None:
        eval_rows = _checks.positive_int("eval_rows", eval_rows)
    if metrics_every is not None:
        metrics_every = _checks.positive_int("metrics_every", metrics_every)
    return TrainConfig(
        apply_fn,
        optimizer,
        steps,
        batch_size,
        loss,
        log_every,
        sampling,
        tuple(metrics.items()),
        eval_rows,
        metrics_every,
    )


def _check_data(data: Dataset, lead: int, check_finite: bool) -> int:
    """Validate a Dataset (with `lead` leading seed axes); returns the number of train rows.

    Shapes only, unless check_finite (which reads every array on the host: a sync); the
    loaders of esparse.data check values where data enters from the host."""
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be an esparse.data.Dataset, got {type(data).__name__}")
    for name, x in zip(data._fields, data, strict=True):
        if getattr(x, "ndim", 0) < lead + 1:
            raise ValueError(f"data.{name} must have {lead + 1}+ dimensions, got {x!r:.80}")
        if check_finite:
            _checks.finite(f"data.{name}", x)
    n_train, n_test = data.x_train.shape[lead], data.x_test.shape[lead]
    for split, n in (("train", n_train), ("test", n_test)):
        y = getattr(data, f"y_{split}")
        if y.shape[lead] != n:
            raise ValueError(
                f"data.x_{split} and data.y_{split} must have the same number of rows, "
                f"got {n} and {y.shape[lead]}"
            )
    return n_train


def _check_outputs(
    cfg: TrainConfig, params: PyTree, data: Dataset, lead: int, data_lead: int, read_labels: bool
) -> None:
    """apply_fn's outputs against the targets, by jax.eval_shape (params and data have `lead`
    and `data_lead` leading seed axes). Loss "mse": outputs must have the targets' shape (an
    (n, 1) output minus (n,) targets would broadcast to (n, n)). Loss "cross_entropy" with int
    labels: labels in [0, n_classes), checked when they are numpy arrays (already on the
    host) or when read_labels (check_finite: a sync); device labels come from the loaders,
    which check them."""
    if cfg.loss not in ("mse", "cross_entropy"):
        return

    def one(tree: PyTree, axes: int) -> PyTree:
        return jax.tree.map(lambda v: jax.ShapeDtypeStruct(jnp.shape(v)[axes:], v.dtype), tree)

    params1, data1 = one(params, lead), one(data, data_lead)
    for split in ("train", "test"):
        x, y = getattr(data1, f"x_{split}"), getattr(data1, f"y_{split}")
        if cfg.loss == "cross_entropy" and not jnp.issubdtype(y.dtype, jnp.integer):
            raise ValueError(
                f"data.y_{split} must hold int class labels for loss='cross_entropy', got dtype "
                f"{y.dtype}: cast them with .astype(jnp.int32), or use loss='mse' for "
                "real-valued targets"
            )
        out = jax.eval_shape(lambda p, v: cfg.apply_fn(p, v, None, False), params1, x)
        if cfg.loss == "mse" and out.shape != y.shape:
            raise ValueError(
                f"data.y_{split} must have the shape of apply_fn's outputs for loss='mse': "
                f"outputs {out.shape}, data.y_{split} {y.shape}"
            )
        labels = getattr(data, f"y_{split}")
        if (
            cfg.loss == "cross_entropy"
            and y.ndim == 1
            and jnp.issubdtype(y.dtype, jnp.integer)
            and (read_labels or isinstance(labels, np.ndarray))
            and not _checks.is_traced(labels)
        ):
            values = np.asarray(labels)
            bad = (values < 0) | (values >= out.shape[-1])
            if bad.any():
                raise ValueError(
                    f"data.y_{split} must hold labels in [0, {out.shape[-1]}) (apply_fn's "
                    f"outputs have {out.shape[-1]} classes), got {values[bad][0]}"
                )


def _check_mask(mask: PyTree | None, params: PyTree) -> PyTree | None:
    if mask is None:
        return None
    structure: Any = jax.tree.structure(mask)
    if structure != jax.tree.structure(params):
        raise ValueError(
            f"mask must have the tree structure of params, got {jax.tree.structure(mask)}"
        )
    mask = jax.tree.map(jnp.asarray, mask)
    for m, p in zip(jax.tree.leaves(mask), jax.tree.leaves(params), strict=True):
        if m.dtype != jnp.bool_ or m.shape != jnp.shape(p):
            raise ValueError(
                f"mask leaves must be bool arrays shaped like params, got {m.dtype}{m.shape} "
                f"for a parameter of shape {jnp.shape(p)}"
            )
    return mask


def prepare(
    params: PyTree,
    data: Dataset,
    *,
    mask: PyTree | None = None,
    seed_axis: bool = False,
    data_per_seed: bool = False,
    check_finite: bool = False,
    **train_kwargs: Any,
) -> tuple[TrainConfig, PyTree | None]:
    """Validate `train`'s arguments (shapes and static values, before any compute) and build
    its static `TrainConfig`. Returns (config, mask as bool arrays or None).

    seed_axis: params and mask have a leading seed axis (the seed engine); data_per_seed:
    so does every leaf of data. train_kwargs: the keyword arguments of `train` from apply_fn
    to metrics. Raises ValueError naming the argument and the value.
    """
    n_train = _check_data(data, 1 if data_per_seed else 0, check_finite)
    cfg = _config(n_train=n_train, **train_kwargs)
    _check_outputs(cfg, params, data, int(seed_axis), int(data_per_seed), check_finite)
    return cfg, _check_mask(mask, params)


def train(
    key: jax.Array,
    params: PyTree,
    data: Dataset,
    *,
    apply_fn: ApplyFn,
    optimizer: optax.GradientTransformation,
    steps: int,
    batch_size: int,
    loss: Loss | LossFn = "cross_entropy",
    log_every: int = 100,
    mask: PyTree | None = None,
    sampling: Sampling = "shuffle",
    metrics: Mapping[str, MetricFn] | None = None,
    check_finite: bool = False,
    eval_rows: int | None = None,
    metrics_every: int | None = None,
) -> TrainResult:
    """Train `params` for `steps` minibatch updates with `optimizer`, as one jitted `lax.scan`.

    key: PRNG key (minibatch order and dropout). params: pytree. data: `Dataset`, x_train
    (n, ...) with y_train (n,) int labels or (n, k) targets; likewise the test split.
    apply_fn(params, x, key, train) -> outputs (batch, k); called with key=None, train=False
    for evaluation. loss: "cross_entropy" (int labels), "mse" (mean over all entries of the
    squared error; outputs and targets must have the same shape, else ValueError), or
    fn(outputs, targets) -> scalar. Accuracy is logged when the targets are
    1-D int labels or 2-D with k > 1 columns (one-hot; argmax agreement).
    sampling: "shuffle" (a fresh permutation each epoch of n // batch_size batches; the last
    partial batch is dropped, so each sample is seen at most once per epoch, exactly once when
    batch_size divides n; batch_size = n is full-batch gradient descent on the rows in order)
    or "replace" (batch indices uniform with replacement).
    mask: bool pytree shaped like params; params and gradients are multiplied by it at the
    start and at every step, so masked weights stay exactly zero under any optimizer
    (Frankle & Carbin 2019). metrics: name -> fn(params, data) -> scalar, logged with the
    built-ins (train/test loss and accuracy) on the full sets every `log_every` updates and
    after the last one; eval_rows: log the built-ins on the first eval_rows rows of each split
    instead (a fixed subset: cheaper logs, e.g. every 10 steps). metrics_every: log the
    `metrics` functions every metrics_every updates (and after the last one) instead, at the
    steps `TrainResult.metric_steps`: an expensive metric (a mutual-information estimate) on a
    coarser cadence than the losses, in the same run. The optimizer, apply_fn, loss
    and metric functions are static: pass the same objects again to reuse the compiled
    program. check_finite: raise a ValueError naming the array when data holds NaN or inf, or
    int labels outside [0, n_classes) (reads data on the host: a sync; by default NaN data
    gives NaN losses; numpy labels are always checked).
    """
    cfg, mask = prepare(
        params,
        data,
        mask=mask,
        check_finite=check_finite,
        apply_fn=apply_fn,
        optimizer=optimizer,
        steps=steps,
        batch_size=batch_size,
        loss=loss,
        log_every=log_every,
        sampling=sampling,
        metrics=metrics,
        eval_rows=eval_rows,
        metrics_every=metrics_every,
    )
    return _train_jit(cfg, key, params, data, mask)
