"""The Inception module, shared by GoogLeNet, BN-Inception (v2) and Inception v3.

An Inception module (Szegedy et al. 2014 "Going deeper with convolutions", Fig. 2b) runs parallel
branches of convolutions over one input and concatenates their outputs along channels; the last branch
pools (3x3) and optionally projects with a 1x1 convolution.

The layer specs, one vocabulary for Inception v1-v4 (classic/models/inception_v4.py builds its stems,
modules and reductions from them too): `ConvSpec` (a convolution + BN + ReLU), `PoolSpec` (a max or
average pool), `Split` (parallel specs on one input whose outputs are concatenated: Inception v3's
expanded 8x8 bank, Fig. 7 of Szegedy et al. 2015) and `Parallel` (parallel branches, each a sequence
of specs, concatenated: a stem's 'mixed' stage). A branch is a sequence of them, and `apply_specs` is
the one interpreter of the vocabulary, for every family. Strided modules (BN-Inception 3c/4e, Inception v3's grid reductions, Fig. 10)
are the same module with stride-2 last convolutions and a pass-through pool.

`factorize` is the one place where a large nxn convolution is written in one of the three ways the
papers compare:
  'nxn' (alias '5x5')      one nxn convolution (GoogLeNet's 5x5 branch)
  '3x3' (alias '3x3x2')    a stack of (n-1)/2 3x3 convolutions of the same receptive field (two for
                           n=5: BN-Inception's "double 3x3", Szegedy et al. 2015 Fig. 5)
  '1xn'                    a 1xn convolution then an nx1 one (or nx1 then 1xn; Szegedy et al. 2015
                           Fig. 6, n=7 at 17x17)
Intermediate convolutions have `mid_features` outputs, the last one `features` and the stride.

`AuxHead` is the auxiliary classifier of GoogLeNet (§5) and Inception v3 (§7). Families build their aux
heads only when training or initialising (so eval never computes them, yet `init` in eval mode creates
their parameters) and sow the logits into the 'aux' collection only in a training `apply`, never during
`init` (a sown value in the initial variables would be appended to on every later `apply`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from classic.models.layers import ConvBN, he_normal, max_pool, relu


class ConvSpec(NamedTuple):
  """A convolution of a branch. padding 'same': symmetric (k-1)/2 zeros per side; 'valid': none."""

  features: int
  kernel: tuple[int, int] = (1, 1)
  strides: int = 1
  padding: str = "same"


class PoolSpec(NamedTuple):
  """A square max or average pool ('max' | 'avg'); padding as ConvSpec's."""

  kind: str
  window: int = 3
  strides: int = 1
  padding: str = "same"


class Split(NamedTuple):
  """Parallel specs on one input whose outputs are concatenated (Szegedy et al. 2015 Fig. 7)."""

  convs: tuple[ConvSpec, ...]


class Parallel(NamedTuple):
  """Branches, each a sequence of specs, on one input; their outputs concatenated (Inception-v4's
  stems, Szegedy et al. 2016 Fig. 3; TF-slim's 'mixed')."""

  branches: tuple[tuple, ...]


def apply_specs(specs: Sequence, x: jax.Array, train: bool, *, conv_bn: dict, name: Callable[[tuple[int, ...]], str],
                count_include_pad: bool = True) -> jax.Array:
  """`specs` applied one after another to x: the one interpreter of the layer-spec vocabulary.

  Call it inside a module's compact method: each ConvSpec becomes a ConvBN (`conv_bn`: its BN and init
  arguments) of that module named `name(path)`, path being the spec's position (j,) in `specs`, or
  (j, k) for member k of a Split at j. Average pools count padding as `count_include_pad` says.
  """

  def one(spec, y, path):
    if isinstance(spec, ConvSpec):
      return conv_of(spec, name(path), **conv_bn)(y, train)
    if isinstance(spec, PoolSpec):
      return pool_of(spec, y, count_include_pad)
    if isinstance(spec, Split):
      return jnp.concatenate([one(s, y, path + (k,)) for k, s in enumerate(spec.convs)], axis=-1)
    raise ValueError(f"unknown layer spec {spec!r}")

  for j, spec in enumerate(specs):
    x = one(spec, x, (j,))
  return x


# Accepted factorization names, mapped to the canonical ones.
_FACTORIZATION = {"nxn": "nxn", "5x5": "nxn", "3x3": "3x3", "3x3x2": "3x3", "1xn": "1xn"}


def factorize(n: int, features: int, mode: str, mid_features: int | None = None, strides: int = 1,
              first: str = "1xn") -> tuple[ConvSpec, ...]:
  """An nxn convolution ('nxn'), a stack of 3x3s ('3x3'), or 1xn + nx1 ('1xn'); see the docstring.

  `first='nx1'` orders the asymmetric pair nx1 then 1xn. The stride goes on the last convolution.
  """
  if mode not in _FACTORIZATION:
    raise ValueError(f"factorization must be one of {', '.join(_FACTORIZATION)}, got {mode!r}.")
  mode = _FACTORIZATION[mode]
  mid = features if mid_features is None else mid_features
  if mode == "nxn":
    return (ConvSpec(features, (n, n), strides),)
  if mode == "3x3":
    if n < 3 or n % 2 == 0:
      raise ValueError(f"a stack of 3x3 convolutions replaces an odd n >= 3, got n={n}.")
    count = (n - 1) // 2
    return tuple(ConvSpec(mid, (3, 3)) for _ in range(count - 1)) + (ConvSpec(features, (3, 3), strides),)
  if first not in ("1xn", "nx1"):
    raise ValueError(f"first must be '1xn' or 'nx1', got {first!r}.")
  a, b = ((1, n), (n, 1)) if first == "1xn" else ((n, 1), (1, n))
  return (ConvSpec(mid, a), ConvSpec(features, b, strides))


def check_factorization(mode: str, allowed: Sequence[str], family: str) -> None:
  if mode not in allowed:
    raise ValueError(f"{family}: factorization must be one of {', '.join(allowed)}, got {mode!r}.")


def conv_padding(kernel: Sequence[int], padding: str) -> Any:
  """Explicit symmetric padding for 'same' (as Caffe's pad=(k-1)/2), or 'VALID'."""
  if padding == "valid":
    return "VALID"
  if padding != "same":
    raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}.")
  return tuple((k // 2, k // 2) for k in kernel)


def conv_of(spec: ConvSpec, name: str, **conv_bn: Any) -> ConvBN:
  """The ConvBN a ConvSpec describes (`conv_bn`: BN and init arguments)."""
  kernel = tuple(spec.kernel)
  return ConvBN(spec.features, kernel, spec.strides, padding=conv_padding(kernel, spec.padding), name=name,
                **conv_bn)


def pool_of(spec: PoolSpec, x: jax.Array, count_include_pad: bool = True) -> jax.Array:
  """x pooled as a PoolSpec describes (average pools: `count_include_pad` as nn.avg_pool's)."""
  window, strides = (spec.window,) * 2, (spec.strides,) * 2
  padding = conv_padding(window, spec.padding)
  if spec.kind == "max":
    return max_pool(x, window, strides, padding=padding)
  if spec.kind != "avg":
    raise ValueError(f"pool must be 'max' or 'avg', got {spec.kind!r}.")
  return nn.avg_pool(x, window, strides, padding=padding, count_include_pad=count_include_pad)


class InceptionModule(nn.Module):
  """Parallel conv branches plus a 3x3 pool branch, concatenated in that order along channels."""

  branches: tuple[tuple[ConvSpec | Split, ...], ...]
  pool: str = "max"                # 'max' or 'avg'
  pool_strides: int = 1
  pool_padding: str = "same"
  pool_proj: int = 0               # 1x1 conv after the pool; 0 = the pooled input passes through
  count_include_pad: bool = True   # avg pool at borders: /9 (Caffe, PyTorch) or /in-image count (TF)
  bn: bool = True
  bn_group_size: int = 0
  bn_epsilon: float = 1e-5
  kernel_init: Callable[..., Any] = he_normal
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv_bn = dict(bn=self.bn, bn_group_size=self.bn_group_size, bn_epsilon=self.bn_epsilon,
                   kernel_init=self.kernel_init, dtype=self.dtype)
    # branch i's layer j is 'branch{i}_conv{j}', member k of a Split there 'branch{i}_conv{j}{a, b, ...}'
    outputs = [apply_specs(branch, x, train, conv_bn=conv_bn, count_include_pad=self.count_include_pad,
                           name=lambda path, i=i: f"branch{i}_conv{path[0]}" + "".join("abcdefgh"[k] for k in path[1:]))
               for i, branch in enumerate(self.branches)]

    y = pool_of(PoolSpec(self.pool, 3, self.pool_strides, self.pool_padding), x, self.count_include_pad)
    if self.pool_proj:
      y = conv_of(ConvSpec(self.pool_proj), "pool_proj", **conv_bn)(y, train)
    outputs.append(y)
    return jnp.concatenate(outputs, axis=-1)


class AuxHead(nn.Module):
  """Auxiliary classifier: avg pool, convs, (flatten or global pool), ReLU FCs, dropout, linear."""

  num_classes: int
  pool_window: int = 5
  pool_strides: int = 3
  convs: tuple[ConvSpec, ...] = (ConvSpec(128, (1, 1)),)
  hidden: tuple[int, ...] = (1024,)
  dropout: float = 0.7
  global_pool: bool = False        # average the map after the convs (Inception v3) instead of flattening
  shrink_kernels: bool = False     # clip pool/conv windows to the map (TF-slim, inputs below 299)
  bn: bool = True
  bn_group_size: int = 0
  bn_epsilon: float = 1e-5
  kernel_init: Callable[..., Any] = he_normal
  dense_init: Callable[..., Any] = nn.linear.default_kernel_init
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    window = (self.pool_window,) * 2
    if self.shrink_kernels:
      window = (min(window[0], x.shape[1]), min(window[1], x.shape[2]))
    x = nn.avg_pool(x, window, (self.pool_strides,) * 2, padding="VALID")
    for i, spec in enumerate(self.convs):
      kernel = tuple(spec.kernel)
      if self.shrink_kernels:
        kernel = (min(kernel[0], x.shape[1]), min(kernel[1], x.shape[2]))
      x = ConvBN(spec.features, kernel, spec.strides, padding=conv_padding(kernel, spec.padding),
                 bn=self.bn, bn_group_size=self.bn_group_size, bn_epsilon=self.bn_epsilon,
                 kernel_init=self.kernel_init, dtype=self.dtype, name=f"conv{i}")(x, train)
    x = jnp.mean(x, axis=(1, 2)) if self.global_pool else x.reshape(x.shape[0], -1)
    for i, width in enumerate(self.hidden):
      x = relu(nn.Dense(width, kernel_init=self.dense_init, dtype=self.dtype, name=f"fc{i}")(x))
    if self.dropout:
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, kernel_init=self.dense_init, dtype=self.dtype,
                    name="logits")(x).astype(jnp.float32)


def run_aux(module: nn.Module, head: nn.Module, x: jax.Array, train: bool) -> None:
  """Computes `head(x)` when training or initialising; sows its logits only in a training apply."""
  if not (train or module.is_initializing()):
    return
  logits = head(x, train)
  if train and not module.is_initializing():
    module.sow("aux", "logits", logits.astype(jnp.float32))
