"""Layers shared by several families: BatchNorm with per-device groups, LRN, conv + BN + activation,
the pooling conventions of the Caffe era (rounded-up pools, PyTorch-style adaptive pooling), and
the fusion barrier that keeps a residual stream out of XLA:CPU's backward transposes.

Where `classic.platform.cpu_kernels()` is on (CLASSIC_CPU_KERNELS; by default on CPU only),
BatchNorm's backward, max pooling's gradient, 1x1 convolutions (`Conv`) and `fusion_barrier` take the
forms of classic/models/cpu_kernels.py, which XLA:CPU runs several times faster and which compute the
same functions (tests/models/test_layers.py). Otherwise every layer is its plain flax/lax form.

Families keep layers that only they use in their own file; what two families share lives here.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from classic import platform
from classic.models import cpu_kernels

# He et al. 2015 ("Delving deep into rectifiers") initialisation, as the ResNet/VGG papers used it.
he_normal = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

_RELU_RULES: list[Callable[[jax.Array], jax.Array]] = []   # relu_rule() contexts, innermost last


def relu(x: jax.Array) -> jax.Array:
  """The rectifier every model calls: `nn.relu`, or the rule of an enclosing `relu_rule` (looked up
  when traced, so it reaches every family, ConvBN's default activation included)."""
  return _RELU_RULES[-1](x) if _RELU_RULES else nn.relu(x)


@contextlib.contextmanager
def relu_rule(rule: Callable[[jax.Array], jax.Array]):
  """Models traced inside use `rule` for every ReLU (classic.visualize's deconvnet rectification)."""
  _RELU_RULES.append(rule)
  try:
    yield
  finally:
    _RELU_RULES.pop()


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None):
  """jax.lax.conv_general_dilated, with 1x1 NHWC convolutions as matrix products where the CPU
  kernels are on (cpu_kernels.pointwise_conv). `Conv` (below) is flax's Conv with it."""
  args = (lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
          batch_group_count, precision, preferred_element_type)
  if not platform.cpu_kernels():
    return jax.lax.conv_general_dilated(*args)
  specs = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  pointwise = (lhs.ndim == 4 and tuple(rhs.shape[:2]) == (1, 1) and feature_group_count == 1
               and batch_group_count == 1 and preferred_element_type is None
               and (specs.lhs_spec, specs.rhs_spec, specs.out_spec) == ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))
               and all(d == 1 for d in (lhs_dilation or (1, 1))))
  if pointwise:
    pads = (jax.lax.padtype_to_pads(lhs.shape[1:3], (1, 1), window_strides, padding) if isinstance(padding, str)
            else padding)
    pointwise = all(tuple(p) == (0, 0) for p in pads)
  if not pointwise:
    return jax.lax.conv_general_dilated(*args)
  return cpu_kernels.pointwise_conv(lhs, rhs, tuple(window_strides), precision)


Conv = functools.partial(nn.Conv, conv_general_dilated=conv_general_dilated)


def normalize(x: jax.Array, scale: jax.Array, bias: jax.Array, axes: tuple[int, ...], epsilon: float):
  """(scale * (x - mean) / sqrt(var + epsilon) + bias, mean, var) with the batch's statistics over
  `axes` (two-pass); with the CPU kernels on, cpu_kernels.normalize (closed-form backward)."""
  if platform.cpu_kernels():
    return cpu_kernels.normalize(x, scale, bias, axes, epsilon)
  mean = jnp.mean(x, axes, keepdims=True)
  centered = x - mean
  var = jnp.mean(jnp.square(centered), axes, keepdims=True)
  return centered * jax.lax.rsqrt(var + epsilon) * scale + bias, mean, var


def fusion_barrier(x: jax.Array) -> jax.Array:
  """The identity; with the CPU kernels on, also a barrier to XLA:CPU's fusion of a residual stream
  into the backward transposes (cpu_kernels.fusion_barrier)."""
  return cpu_kernels.fusion_barrier(x) if platform.cpu_kernels() else x


class BatchNorm(nn.Module):
  """Batch normalisation (Ioffe & Szegedy 2015) over the global batch or over groups of it.

  `group_size=0` normalises over the whole (global, sharded) batch. `group_size=k` normalises each run
  of k consecutive examples on its own, as the papers trained with k images per GPU ("ghost" BN); the
  running statistics average the groups. With the batch sharded along the mesh's data axis and k
  dividing the per-device batch, every group lives on one device, so no cross-device reduction is done.
  Parameter names match `flax.linen.BatchNorm` (scale, bias; mean, var in `batch_stats`).
  """

  momentum: float = 0.9
  epsilon: float = 1e-5
  group_size: int = 0
  use_scale: bool = True
  use_bias: bool = True
  scale_init: Callable[..., Any] = nn.initializers.ones
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    features = x.shape[-1]
    ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32))
    ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((features,), jnp.float32))
    scale = (self.param("scale", self.scale_init, (features,), jnp.float32) if self.use_scale
             else jnp.ones((features,), jnp.float32))
    bias = (self.param("bias", nn.initializers.zeros, (features,), jnp.float32) if self.use_bias
            else jnp.zeros((features,), jnp.float32))
    if train:
      xf = x.astype(jnp.float32)
      if self.group_size and x.shape[0] > self.group_size:
        if x.shape[0] % self.group_size:
          raise ValueError(f"batch {x.shape[0]} is not a multiple of bn_group_size {self.group_size}")
        xf = xf.reshape((x.shape[0] // self.group_size, self.group_size) + x.shape[1:])
      else:
        xf = xf[None]
      y, mean, var = normalize(xf, scale, bias, tuple(range(1, xf.ndim - 1)), self.epsilon)
      if not self.is_initializing():
        ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean.mean(0).reshape(-1)
        ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var.mean(0).reshape(-1)
      y = y.reshape(x.shape)
    else:
      y = (x.astype(jnp.float32) - ra_mean.value) * jax.lax.rsqrt(ra_var.value + self.epsilon) * scale + bias
    return y.astype(self.dtype or x.dtype)


class LocalResponseNorm(nn.Module):
  """Local response normalisation across channels, Krizhevsky et al. 2012 §3.3.

  b = a / (k + alpha * sum_{n neighbouring channels} a^2)^beta, the paper's formula, with its k=2,
  n=5, alpha=1e-4, beta=0.75. `alpha_per_size=True` uses alpha/n instead, as Caffe and PyTorch do.
  """

  size: int = 5
  k: float = 2.0
  alpha: float = 1e-4
  beta: float = 0.75
  alpha_per_size: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    sq = jnp.square(x.astype(jnp.float32))
    half = self.size // 2
    summed = jax.lax.reduce_window(sq, 0.0, jax.lax.add, (1,) * (x.ndim - 1) + (self.size,),
                                   (1,) * x.ndim,
                                   [(0, 0)] * (x.ndim - 1) + [(half, self.size - 1 - half)])
    alpha = self.alpha / self.size if self.alpha_per_size else self.alpha
    return (x / jnp.power(self.k + alpha * summed, self.beta)).astype(x.dtype)


class ConvBN(nn.Module):
  """Convolution, optional BatchNorm, optional activation: the unit most families are made of."""

  features: int
  kernel: Sequence[int] = (3, 3)
  strides: int | Sequence[int] = 1
  padding: Any = "SAME"
  bn: bool = True
  act: Callable[[jax.Array], jax.Array] | None = relu
  groups: int = 1
  bn_group_size: int = 0
  bn_epsilon: float = 1e-5
  bn_scale_init: Callable[..., Any] = nn.initializers.ones
  kernel_init: Callable[..., Any] = he_normal
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    strides = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides)
    x = Conv(self.features, tuple(self.kernel), strides, padding=self.padding,
             use_bias=not self.bn, feature_group_count=self.groups,
             kernel_init=self.kernel_init, dtype=self.dtype, name="conv")(x)
    if self.bn:
      x = BatchNorm(group_size=self.bn_group_size, epsilon=self.bn_epsilon,
                    scale_init=self.bn_scale_init, dtype=self.dtype, name="bn")(x, train)
    return self.act(x) if self.act is not None else x


def max_pool(x: jax.Array, window: Sequence[int], strides: Sequence[int] | None = None,
             padding: str | Sequence[tuple[int, int]] = "VALID") -> jax.Array:
  """flax.linen.max_pool (same arguments, same values and gradient); with the CPU kernels on, NHWC
  float input takes cpu_kernels.max_pool, whose gradient XLA:CPU runs 3-4x faster."""
  window = tuple(window)
  strides = tuple(strides) if strides is not None else (1,) * len(window)
  if (not platform.cpu_kernels() or x.ndim != 4 or len(window) != 2
      or not jnp.issubdtype(x.dtype, jnp.floating)):
    return nn.max_pool(x, window, strides, padding)
  pads = jax.lax.padtype_to_pads(x.shape[1:3], window, strides, padding) if isinstance(padding, str) else padding
  return cpu_kernels.max_pool(x, window, strides, tuple(tuple(p) for p in pads))


# Pooling conventions of the Caffe / cuda-convnet era, shared by alexnet, zfnet, nin and vgg.


def caffe_pool(x: jax.Array, kind: str, window: int, stride: int, pad: int = 0) -> jax.Array:
  """Caffe's pooling: symmetric `pad`, output size rounded *up*, windows clipped at the far edge.

  out = ceil((H + 2 pad - window) / stride) + 1, less one if the last window would start in the
  padding. 'max' ignores everything outside the image; 'avg' divides by the window's size clipped to
  the padded image (so the symmetric padding counts, the overhang does not), as Caffe does.
  """
  if kind not in ("max", "avg"):
    raise ValueError(f"pool kind must be 'max' or 'avg', got {kind!r}.")
  pads = []
  for size in x.shape[1:3]:
    out = -(-(size + 2 * pad - window) // stride) + 1
    if pad and (out - 1) * stride >= size + pad:
      out -= 1
    extra = (out - 1) * stride + window - (size + 2 * pad)
    pads.append((pad, pad + max(extra, 0)))
  if kind == "max":
    return max_pool(x, (window, window), (stride, stride), padding=pads)
  summed = nn.pool(jnp.pad(x, [(0, 0), *pads, (0, 0)]), 0.0, jax.lax.add, (window, window),
                   (stride, stride), "VALID")
  # The count of each window: the image and its symmetric padding count, the overhang does not.
  inside = np.pad(np.ones(x.shape[1:3], np.float32), [(pad, pad), (pad, pad)], constant_values=1.0)
  inside = np.pad(inside, [(0, p[1] - p[0]) for p in pads])
  counts = np.lib.stride_tricks.sliding_window_view(inside, (window, window))[::stride, ::stride]
  counts = counts.sum(axis=(-1, -2))
  return summed / jnp.asarray(counts, summed.dtype)[None, :, :, None]


def _adaptive_matrix(size: int, out: int) -> np.ndarray:
  """Rows average the input bins of PyTorch's AdaptiveAvgPool: [floor(i n/m), ceil((i+1) n/m))."""
  m = np.zeros((out, size), np.float32)
  for i in range(out):
    lo, hi = (i * size) // out, -(-((i + 1) * size) // out)
    m[i, lo:hi] = 1.0 / (hi - lo)
  return m


def adaptive_avg_pool(x: jax.Array, out: int) -> jax.Array:
  """Average pool an NHWC map to out x out with PyTorch's bin edges (the identity if already so)."""
  if x.shape[1:3] == (out, out):
    return x
  rows = jnp.asarray(_adaptive_matrix(x.shape[1], out), x.dtype)
  cols = jnp.asarray(_adaptive_matrix(x.shape[2], out), x.dtype)
  return jnp.einsum("ih,nhwc,jw->nijc", rows, x, cols)


def symmetric(pad: int) -> tuple[tuple[int, int], tuple[int, int]]:
  return ((pad, pad), (pad, pad))


def global_avg_pool(x: jax.Array) -> jax.Array:
  return jnp.mean(x, axis=(1, 2))


ACTIVATIONS = ("relu", "tanh", "scaled_tanh", "sigmoid")


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  """Activation by config name: relu, tanh, scaled_tanh (LeCun 1998: 1.7159 tanh(2x/3)), sigmoid."""
  table = {
      "relu": relu,
      "tanh": jnp.tanh,
      "scaled_tanh": lambda x: 1.7159 * jnp.tanh(2.0 * x / 3.0),
      "sigmoid": nn.sigmoid,
  }
  if name not in table:
    raise ValueError(f"Unknown activation {name!r}; known: {', '.join(table)}.")
  return table[name]
