"""classic's CPU layer forms: the same functions as their textbook forms, in shapes XLA:CPU runs
several times faster (docs/performance.md; equality: tests/models/test_layers.py).

classic/models/layers.py uses them when `classic.platform.cpu_kernels()` is on (the
CLASSIC_CPU_KERNELS switch; by default on CPU only) and the plain flax/lax forms otherwise. They are
custom VJPs, so forward-mode autodiff (`jax.jvp`, `jax.jacfwd`) does not go through them.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def normalize(x: jax.Array, scale: jax.Array, bias: jax.Array, axes: tuple[int, ...], epsilon: float):
  """scale * (x - mean) / sqrt(var + epsilon) + bias with the batch's statistics over `axes`.

  Returns (y, mean, var). `scale` and `bias` are per channel (x's last axis). The forward pass is the
  textbook two-pass form (mean, then the mean square of x - mean). The backward pass is its closed form
  (Ioffe & Szegedy 2015 §3): the two per-channel sums sum(g) and sum(g * xhat) give the gradients of
  bias, scale and x, with one element-wise pass, rather than autodiff's derivative of each op (more
  passes over the activations, which on CPU were a third of ResNet-20's step). The same function:
  tests/models/test_layers.py.
  """
  return _normalize_fwd(x, scale, bias, axes, epsilon)[0]


def batch_sum(v: jax.Array, axes: tuple[int, ...]) -> jax.Array:
  """jnp.sum(v, axes, keepdims=True) for BatchNorm's (group, positions..., channel) layout, in the form
  XLA:CPU runs fastest: sums of 16 consecutive positions first (a small reduction XLA fuses with v's
  producer, e.g. the square of the variance), kept apart from the rest by a fusion barrier, then
  the sum of those. Left as one reduction, XLA:CPU splits it over strided windows without its producer:
  4-17x slower on ResNet activations (docs/performance.md). The same sum, to float rounding.
  """
  rows = int(np.prod(v.shape[1:-1]))
  block = next((b for b in (16, 8, 4, 2) if rows % b == 0 and rows > b), 0)
  if axes != tuple(range(1, v.ndim - 1)) or not block:
    return jnp.sum(v, axes, keepdims=True)
  groups, channels = v.shape[0], v.shape[-1]
  partial = jnp.sum(v.reshape(groups, rows // block, block, channels), 2)
  sums = jnp.sum(opaque_identity(partial, axis=1), 1)
  return sums.reshape((groups,) + (1,) * (v.ndim - 2) + (channels,))


def _normalize_fwd(x, scale, bias, axes, epsilon):
  n = int(np.prod([x.shape[a] for a in axes]))
  mean = batch_sum(x, axes) / n
  centered = x - mean
  var = batch_sum(jnp.square(centered), axes) / n
  rstd = jax.lax.rsqrt(var + epsilon)
  return (centered * rstd * scale + bias, mean, var), (x, scale, mean, rstd)


def _normalize_bwd(axes, epsilon, residuals, cotangents):
  del epsilon
  x, scale, mean, rstd = residuals
  g, g_mean, g_var = cotangents
  n = int(np.prod([x.shape[a] for a in axes]))
  centered = x - mean
  xhat = centered * rstd
  # one pass over g and x for both sums: they are the channels of one array
  sum_g, sum_gx = jnp.split(batch_sum(jnp.concatenate([g, g * xhat], -1), axes), 2, -1)
  per_channel = tuple(range(x.ndim - 1))  # the groups too: scale and bias are shared by all of them
  d_scale = jnp.sum(sum_gx, per_channel).reshape(scale.shape)
  d_bias = jnp.sum(sum_g, per_channel).reshape(scale.shape)  # bias has scale's shape
  dx = (scale * rstd) * (g - sum_g / n - xhat * (sum_gx / n)) + g_mean / n + g_var * (2.0 / n) * centered
  return dx, d_scale, d_bias


normalize.defvjp(_normalize_fwd, _normalize_bwd)


def opaque_identity(x: jax.Array, axis: int = 0) -> jax.Array:
  """x, through a conditional on a run-time predicate, which XLA cannot fuse across.

  Both branches return x's values (`v + 0.0` only turns -0.0 into +0.0); they must differ in form, or
  XLA removes the conditional. `axis` is the one that may be sharded (the batch's).
  """
  # Unknown at compile time. A sum over the (possibly sharded) axis, not a slice of it.
  predicate = jnp.sum(x[tuple(slice(None) if a == axis else 0 for a in range(x.ndim))]) >= 0
  return jax.lax.cond(predicate, lambda v: v, lambda v: v + 0.0, x)


@jax.custom_vjp
def fusion_barrier(x: jax.Array) -> jax.Array:
  """The identity, which also stops XLA from fusing element-wise chains through x (and its gradient).

  A residual stream relu(bn(conv(.)) + x) is one element-wise chain through every block of a stage.
  XLA:CPU fuses the chain into each backward transpose that reads a block's input, recomputing all
  earlier blocks' BN and additions there: O(blocks^2) work, half of ResNet-56's step. With a barrier
  at each block's output, each block's output is computed once. (jax.lax.optimization_barrier does not
  survive XLA:CPU's passes.)
  """
  return opaque_identity(x)


fusion_barrier.defvjp(lambda x: (opaque_identity(x), None), lambda _, g: (opaque_identity(g),))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def pointwise_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int], precision) -> jax.Array:
  """A 1x1 NHWC/HWIO convolution (no padding) as the matrix product it is, forward and backward.

  XLA:CPU computes a 1x1 convolution's kernel gradient as a convolution over the batch, with both
  operands transposed to batch-minor layouts first: 2-3x slower than x^T g for ResNet-50's bottleneck
  convolutions (docs/performance.md). The forward pass and input gradient are products too, so that
  all three read the same (positions, channels) view of x and XLA does not compute x's producer twice,
  once per layout."""
  return _pointwise_by_dot(x, kernel, strides, precision)


def _matmul(a, b, contract, precision):
  return jax.lax.dot_general(a, b, (contract, ((), ())), precision=precision)


def _pointwise_by_dot(x, kernel, strides, precision):
  """The 1x1 convolution as the matrix product it is: positions x channels times channels x features."""
  taken = x[:, ::strides[0], ::strides[1], :]
  y = _matmul(taken.reshape(-1, x.shape[-1]), kernel.reshape(kernel.shape[2:]), ((1,), (0,)), precision)
  return y.reshape(taken.shape[:-1] + (kernel.shape[-1],))


def _pointwise_conv_bwd(strides, precision, residuals, g):
  x, kernel = residuals
  taken, to_x = jax.vjp(lambda v: v[:, ::strides[0], ::strides[1], :], x)
  g2 = g.reshape(-1, g.shape[-1])
  d_taken = _matmul(g2, kernel.reshape(kernel.shape[2:]), ((1,), (1,)), precision).reshape(taken.shape)
  d_kernel = _matmul(taken.reshape(-1, x.shape[-1]), g2, ((0,), (0,)), precision)
  return to_x(d_taken)[0], d_kernel.reshape(kernel.shape)


pointwise_conv.defvjp(lambda x, kernel, strides, precision: (_pointwise_by_dot(x, kernel, strides, precision),
                                                             (x, kernel)),
                      _pointwise_conv_bwd)


def _pool_taps(padded: jax.Array, window, strides, out_hw) -> list[jax.Array]:
  """The window's kh * kw strided views of a padded NHWC input, row-major: tap (i, j) is the input under
  offset (i, j) of every window."""
  (kh, kw), (sh, sw), (oh, ow) = window, strides, out_hw
  n, _, _, c = padded.shape
  return [jax.lax.slice(padded, (0, i, j, 0), (n, i + sh * (oh - 1) + 1, j + sw * (ow - 1) + 1, c),
                        (1, sh, sw, 1)) for i in range(kh) for j in range(kw)]


def _max_pool_grad_by_taps(x, y, g, window, strides, pads):
  """The gradient of a max pool as XLA defines it (each window's first maximum, row-major, gets the
  window's gradient), written with the window's taps: find each window's first maximal tap once, then
  add each tap's share back at its strided offset. XLA:CPU lowers select_and_scatter through index
  tensors instead, 3-4x slower (docs/performance.md)."""
  (sh, sw), (_, h, w, _) = strides, x.shape
  padded = jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-jnp.inf)
  taps = _pool_taps(padded, window, strides, y.shape[1:3])
  first = jnp.full(y.shape, float(len(taps)), jnp.float32)  # float: the barrier's branches need a float
  for t in reversed(range(len(taps))):
    first = jnp.where(taps[t] == y, jnp.float32(t), first)
  first = opaque_identity(first)  # computed once, not again inside each tap's term below
  grad = jnp.zeros(padded.shape, g.dtype)
  zero = jnp.zeros((), g.dtype)
  for t, (i, j) in enumerate((i, j) for i in range(window[0]) for j in range(window[1])):
    share = jnp.where(first == t, g, zero)
    grad = grad + jax.lax.pad(share, zero, ((0, 0, 0),
                                            (i, padded.shape[1] - i - sh * (y.shape[1] - 1) - 1, sh - 1),
                                            (j, padded.shape[2] - j - sw * (y.shape[2] - 1) - 1, sw - 1),
                                            (0, 0, 0)))
  return grad[:, pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + w, :]


def _reduce_window_max(x, window, strides, pads):
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, *window, 1), (1, *strides, 1),
                               ((0, 0), *pads, (0, 0)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def max_pool(x, window, strides, pads):
  """An NHWC max pool (explicit pads) with XLA's gradient computed by taps (below)."""
  return _reduce_window_max(x, window, strides, pads)


def _max_pool_fwd(x, window, strides, pads):
  y = _reduce_window_max(x, window, strides, pads)
  return y, (x, y)


def _max_pool_bwd(window, strides, pads, residuals, g):
  x, y = residuals
  return (_max_pool_grad_by_taps(x, y, g, window, strides, pads),)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)
