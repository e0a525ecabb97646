"""Small models as pure (init, apply) pairs over plain params pytrees, Flax linen underneath.

`Model.init(key) -> params` and `Model.apply(params, x, key=None, train=False) -> y` are
pure functions, so `jax.vmap(model.init)(keys)` gives a population of models and the
training engine vmaps `apply` over it. `Model.hidden(params, x)` returns the hidden
activations (evaluation mode), for the mutual-information and representation claims.

Init: Dense kernels are LeCun normal (Flax's default; variance 1 / fan_in, truncated) unless
kernel_init="kaiming" (He normal, variance 2 / fan_in); biases start at zero.

Dropout (`dropout`, `dropout_mask`; Srivastava et al. 2014) lives here, next to the models
that apply it in training.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Literal, NamedTuple, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from esparse import _checks, meanfield, projection, sparsify, supermasks
from esparse._checks import count_or_fraction, float_in_range, one_of, positive_int

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "ExpandSparsify",
    "KERNEL_INITS",
    "KernelInit",
    "MLP",
    "MaskedDense",
    "MeanField",
    "Model",
    "dropout",
    "dropout_mask",
    "expand_sparsify",
    "expansion_readout",
    "kernel_mask_spec",
    "kept_fraction",
    "meanfield_two_layer",
    "mlp",
    "supermask_mlp",
]

PRNGKey = jax.Array
Params = Any

Activation = Literal["relu", "tanh", "gelu", "sigmoid", "identity"]  # keys of ACTIVATIONS
KernelInit = Literal["lecun", "kaiming"]  # keys of KERNEL_INITS
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
    "sigmoid": jax.nn.sigmoid,
    "identity": lambda x: x,
}
KERNEL_INITS = {"lecun": nn.initializers.lecun_normal(), "kaiming": nn.initializers.he_normal()}


# --------------------------------------------------------------------------- dropout


def dropout_mask(key: PRNGKey, shape: tuple[int, ...], rate: float | jax.Array) -> jax.Array:
    """Bool mask of `shape` keeping each unit independently with probability 1 - rate.

    rate: in [0, 1), may be traced (a host value out of range is a ValueError).
    """
    _checks.fraction("rate", rate)
    return jax.random.bernoulli(key, 1.0 - jnp.asarray(rate, jnp.float32), shape)


def dropout(key: PRNGKey, x: jax.Array, rate: float | jax.Array) -> jax.Array:
    """Inverted dropout (Srivastava et al. 2014): x * mask / (1 - rate); E[out] = x.

    x: any shape; rate in [0, 1), may be traced; rate 0 returns x unchanged. The mask is
    `dropout_mask(key, x.shape, rate)`: dropout is a random sparsification keeping a random
    (1 - rate) fraction of units, where k-winners-take-all (`esparse.sparsify`) keeps the k
    largest. `mlp` applies it in training.
    """
    _checks.fraction("rate", rate)
    host = _checks.host_value(rate)
    if host is not None and float(host) == 0.0:
        return x
    keep = dropout_mask(key, jnp.shape(x), rate)
    scale = (1.0 / (1.0 - jnp.asarray(rate, jnp.float32))).astype(x.dtype)
    return jnp.where(keep, x * scale, jnp.zeros_like(x))


def kept_fraction(mask: jax.Array, axis: int | tuple[int, ...] | None = None) -> jax.Array:
    """Fraction of units a dropout (or any sparsifying) mask keeps, over `axis` (all if None).

    Its expectation under `dropout_mask` is 1 - rate.
    """
    return jnp.mean(mask, axis=axis, dtype=jnp.float32)


# --------------------------------------------------------------------------- models


class Model(NamedTuple):
    """A model as pure functions.

    init(key) -> params. apply(params, x, key=None, train=False) -> y: x (..., d_in); key
    drives dropout and is needed only when train=True and the model has dropout; train is
    a Python bool. hidden(params, x) -> tuple of hidden activations (..., width_l), without
    dropout.
    """

    init: Callable[[PRNGKey], Params]
    apply: Callable[..., jax.Array]
    hidden: Callable[[Params, jax.Array], tuple[jax.Array, ...]]


def kernel_mask_spec(params: Params) -> Any:
    """Which leaves are prunable: True for Dense kernels (leaves named "kernel"), False for
    biases, fixed projections and everything else. A pytree of Python bools like params."""

    def is_kernel(path, _):
        return bool(path) and getattr(path[-1], "key", None) == "kernel"

    return jax.tree_util.tree_map_with_path(is_kernel, params)


def _check_input(x, d_in: int) -> None:
    if jnp.ndim(x) < 1 or jnp.shape(x)[-1] != d_in:
        raise ValueError(f"x must have last dimension d_in={d_in}, got shape {jnp.shape(x)}")


def _check_widths(widths: Sequence[int]) -> tuple[int, ...]:
    if isinstance(widths, (str, bytes)) or len(widths) < 2:
        raise ValueError(f"widths must be (d_in, ..., d_out) with at least 2 ints, got {widths!r}")
    return tuple(positive_int(f"widths[{i}]", w) for i, w in enumerate(widths))


class MaskedDense(nn.Module):
    """Dense layer y = x @ (kernel * mask) + bias. kernel: (d_in, features).

    mask: None, a bool (d_in, features) mask, or a float one (e.g. a straight-through
    edge-popup mask, whose gradient then flows to the scores that made it).
    """

    features: int
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        if mask is not None:
            kernel = kernel * mask.astype(kernel.dtype)
        y = x @ kernel
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return y


class MLP(nn.Module):
    """Multi-layer perceptron; returns (outputs, hidden activations).

    Layers "hidden_0".. and "out". With residual=True, a hidden layer whose input has its
    width adds an identity skip, h_{l+1} = h_l + act(W h_l + b) (no extra parameters).
    Dropout (train only): input_dropout_rate on x, dropout_rate on each hidden output.
    """

    widths: tuple[int, ...]
    activation: Activation = "relu"
    residual: bool = False
    dropout_rate: float = 0.0
    input_dropout_rate: float = 0.0
    use_bias: bool = True
    kernel_init: KernelInit = "lecun"

    @nn.compact
    def __call__(self, x, key=None, train: bool = False):
        act = ACTIVATIONS[self.activation]
        init = KERNEL_INITS[self.kernel_init]
        n_hidden = len(self.widths) - 2
        h = x
        if train and self.input_dropout_rate > 0.0:
            h = dropout(jax.random.fold_in(key, n_hidden), h, self.input_dropout_rate)
        hidden = []
        for l, width in enumerate(self.widths[1:-1]):
            z = act(MaskedDense(width, self.use_bias, init, name=f"hidden_{l}")(h))
            skip = self.residual and l > 0 and h.shape[-1] == width
            h = h + z if skip else z
            if train and self.dropout_rate > 0.0:
                h = dropout(jax.random.fold_in(key, l), h, self.dropout_rate)
            hidden.append(h)
        y = MaskedDense(self.widths[-1], self.use_bias, init, name="out")(h)
        return y, tuple(hidden)


def _model(module: nn.Module, d_in: int, needs_key: bool) -> Model:
    """Wrap a Flax module returning (y, hidden) as a Model over its "params" collection."""

    @jax.jit
    def init(key: PRNGKey) -> Params:
        return module.init(key, jnp.zeros((1, d_in), jnp.float32))["params"]

    @partial(jax.jit, static_argnums=3)
    def forward(params, x, key, train: bool):
        kwargs = {"key": key, "train": train} if needs_key else {}
        return module.apply({"params": params}, x, **kwargs)

    def apply(params: Params, x: jax.Array, key: PRNGKey | None = None, train: bool = False):
        _check_input(x, d_in)
        if train and needs_key and key is None:
            raise ValueError("key must be a PRNG key when train=True and dropout is on, got None")
        return forward(params, x, key, bool(train))[0]

    def hidden(params: Params, x: jax.Array) -> tuple[jax.Array, ...]:
        _check_input(x, d_in)
        out = forward(params, x, None, False)[1]
        return out if isinstance(out, tuple) else (out,)

    return Model(init, apply, hidden)


def mlp(
    widths: Sequence[int],
    *,
    activation: Activation = "relu",
    residual: bool = False,
    dropout_rate: float = 0.0,
    input_dropout_rate: float = 0.0,
    use_bias: bool = True,
    kernel_init: KernelInit = "lecun",
) -> Model:
    """MLP with widths (d_in, h_1, ..., d_out): x (..., d_in) -> logits (..., d_out).

    residual: identity skips between hidden layers of equal width (same parameter count as
    the plain net; He et al. 2016). dropout_rate / input_dropout_rate: inverted dropout on
    hidden / input units in training (Srivastava et al. 2014). kernel_init: "lecun" or
    "kaiming". hidden(params, x) gives the hidden layer outputs (after skip), without dropout.
    """
    widths = _check_widths(widths)
    one_of("activation", activation, ACTIVATIONS)
    one_of("kernel_init", kernel_init, KERNEL_INITS)
    float_in_range("dropout_rate", dropout_rate, 0.0, 1.0, high_open=True)
    float_in_range("input_dropout_rate", input_dropout_rate, 0.0, 1.0, high_open=True)
    module = MLP(
        widths,
        activation,
        bool(residual),
        dropout_rate,
        input_dropout_rate,
        bool(use_bias),
        kernel_init,
    )
    return _model(module, widths[0], needs_key=True)


class ExpandSparsify(nn.Module):
    """Expand-and-sparsify (Dasgupta et al. 2017): h = kwta(x @ P, k), y = readout(h).

    P (d_in, m) is a fixed Gaussian projection (`esparse.projection.gaussian`) drawn from the
    init key and stored as params["projection"], but never trained: it sits behind a
    stop_gradient, so its gradient is zero (freeze it against weight decay too with
    `esparse.optim.train_only(opt, params, "readout")`). k: the int count kept per row, or
    None with fraction: the share of m kept (exactly one; both static).
    straight_through=True uses `kwta_st`, passing gradients to x when the layer is composed.
    """

    m: int
    k: int | None
    d_out: int
    straight_through: bool = False
    use_bias: bool = True
    fraction: float | None = None

    @nn.compact
    def __call__(self, x):
        proj = self.param(
            "projection", lambda key, d_in: projection.gaussian(key, d_in, self.m), x.shape[-1]
        )
        select = sparsify.kwta_st if self.straight_through else sparsify.kwta
        h = select(x @ lax.stop_gradient(proj), self.k, fraction=self.fraction)
        return MaskedDense(self.d_out, self.use_bias, name="readout")(h), h


def expansion_readout(
    d_in: int,
    m: int,
    d_out: int,
    *,
    k: int | None = None,
    fraction: float | None = None,
    use_bias: bool = True,
) -> Model:
    """Model of `ExpandSparsify`: x (..., d_in) -> (..., d_out) through a fixed expansion to m
    units of which the k largest per row stay active (exactly one of k, an int count, and
    fraction, a share of m), then a trained linear readout. hidden(params, x) is the sparse
    code. All sizes are static Python numbers."""
    d_in, m, d_out = positive_int("d_in", d_in), positive_int("m", m), positive_int("d_out", d_out)
    count_or_fraction(k, fraction, m, stacklevel=3)
    if isinstance(k, float):  # the deprecated float share, already warned about
        k, fraction = None, k
    module = ExpandSparsify(m, k, d_out, use_bias=bool(use_bias), fraction=fraction)
    return _model(module, d_in, needs_key=False)


def expand_sparsify(
    d_in: int, m: int, k: int | float, d_out: int, *, use_bias: bool = True
) -> Model:
    """Deprecated alias of `expansion_readout(d_in, m, d_out, k=k)` (the old name differed
    from the kernel `esparse.expand_and_sparsify` by one word)."""
    warnings.warn(
        "[esparse] esparse.expand_sparsify is deprecated: use "
        "esparse.expansion_readout(d_in, m, d_out, k=...) or fraction=... (the model; "
        "esparse.expand_and_sparsify is the kernel)",
        DeprecationWarning,
        stacklevel=2,
    )
    return expansion_readout(d_in, m, d_out, k=k, use_bias=use_bias)  # type: ignore[arg-type]


class MeanField(nn.Module):
    """Mean-field two-layer net f(x) = (1/m) sum_j a_j act(w_j . x) (Mei et al. 2018; FDZ):
    `esparse.meanfield.meanfield_forward` as a Flax module.

    params: a (m,) ~ N(0, 1), w (m, d_in) ~ N(0, I / d_in). Returns (f (...,), act(x w^T)).
    """

    m: int
    activation: Activation = "relu"

    @nn.compact
    def __call__(self, x):
        d_in = x.shape[-1]
        a = self.param("a", nn.initializers.normal(1.0), (self.m,))
        w = self.param("w", nn.initializers.normal(d_in**-0.5), (self.m, d_in))
        act = ACTIVATIONS[self.activation]
        return meanfield.meanfield_forward({"a": a, "w": w}, x, act), act(x @ w.T)


def meanfield_two_layer(d_in: int, m: int, activation: Activation = "relu") -> Model:
    """Model of `MeanField`: x (..., d_in) -> f(x) (...,); hidden(params, x) = (act(x w^T),)."""
    d_in, m = positive_int("d_in", d_in), positive_int("m", m)
    one_of("activation", activation, ACTIVATIONS)
    return _model(MeanField(m, activation), d_in, needs_key=False)


# kaiming_uniform(a=sqrt(5)): uniform in +-1/sqrt(fan_in), variance 1 / (3 fan_in)
_SCORE_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def supermask_mlp(
    widths: Sequence[int], keep_fraction: float = 0.5, *, activation: str = "relu"
) -> Model:
    """Bias-free MLP whose frozen random weights are masked by learned edge-popup scores.

    params = {"scores": {"layer_l": (w_l, w_{l+1})}, "weights": {...}} (Ramanujan et al.
    2020). Weights are signed constants +-sqrt(2 / fan_in) with random signs; scores start
    uniform in +-1 / sqrt(fan_in) (PyTorch's kaiming_uniform with a = sqrt(5), as Ramanujan
    et al.'s code). Each layer uses its top round(keep_fraction * size) scores (exact
    count, ties by index), with a straight-through gradient to the scores; the weights sit
    behind a stop_gradient. Train the scores only:
    `esparse.optim.train_only(opt, params, "scores")`.
    """
    widths = _check_widths(widths)
    float_in_range("keep_fraction", keep_fraction, 0.0, 1.0, low_open=True)
    one_of("activation", activation, ACTIVATIONS)
    act = ACTIVATIONS[activation]
    shapes = list(zip(widths[:-1], widths[1:], strict=True))
    ks = [
        count_or_fraction(None, keep_fraction, a * b, fraction_name="keep_fraction")
        for a, b in shapes
    ]
    names = [f"layer_{l}" for l in range(len(shapes))]

    @jax.jit
    def init(key: PRNGKey) -> Params:
        scores, weights = {}, {}
        for l, (name, shape) in enumerate(zip(names, shapes, strict=True)):
            k_sign, k_score = jax.random.split(jax.random.fold_in(key, l))
            sigma = (2.0 / shape[0]) ** 0.5
            signs = jnp.where(jax.random.bernoulli(k_sign, 0.5, shape), 1.0, -1.0)
            weights[name] = (sigma * signs).astype(jnp.float32)
            scores[name] = _SCORE_INIT(k_score, shape, jnp.float32)
        return {"scores": scores, "weights": weights}

    @jax.jit
    def forward(params: Params, x: jax.Array) -> list[jax.Array]:
        outs, h = [], x
        for l, (name, k) in enumerate(zip(names, ks, strict=True)):
            mask = supermasks.edge_popup_mask(params["scores"][name], k)
            w = lax.stop_gradient(params["weights"][name])
            layer = MaskedDense(widths[l + 1], use_bias=False)
            h = cast(jax.Array, layer.apply({"params": {"kernel": w}}, h, mask))
            if l < len(names) - 1:
                h = act(h)
            outs.append(h)
        return outs

    def apply(params: Params, x: jax.Array, key: PRNGKey | None = None, train: bool = False):
        del key, train  # no dropout: the forward pass is the same in training and evaluation
        _check_input(x, widths[0])
        return forward(params, x)[-1]

    def hidden(params: Params, x: jax.Array) -> tuple[jax.Array, ...]:
        _check_input(x, widths[0])
        return tuple(forward(params, x)[:-1])

    return Model(init, apply, hidden)
