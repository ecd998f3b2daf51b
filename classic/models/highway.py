"""Highway networks: Srivastava, Greff & Schmidhuber 2015, "Highway Networks" (arXiv:1505.00387) and
"Training Very Deep Networks" (NIPS 2015).

A highway layer computes y = H(x) * T(x) + x * (1 - T(x)) (Eq. 3) with H an affine map plus
nonlinearity and the transform gate T(x) = sigmoid(W_T x + b_T) (§2). b_T starts negative
(`gate_bias_init`; §2.2 suggests -1, -3 etc., deeper nets further from zero) so that every layer
starts close to carrying its input through. `gated=False` gives the plain net of the same depth,
y = H(x), for the depth comparison of Fig. 1.

- `form='fc'` (the MNIST optimisation experiments of §3.1, Fig. 1): the input is flattened; a first
  fully connected plain layer of `width` units, then `depth - 1` fully connected highway layers (so
  depth 10, 20, 50, 100 are the paper's nets), then a linear softmax layer. The paper's nets have 50
  units per highway layer and 71 per plain layer, which gives both about 5,000 parameters a layer.
- `form='conv'` (the CIFAR experiments of §3.2): per stage i one plain 3x3 conv to `width * 2**i`
  maps, then `stages[i]` 3x3 convolutional highway layers (H and T are both 3x3 convs), with 2x2 max
  pooling between stages, global average pooling and a linear classifier. Its depth is
  len(stages) + sum(stages) + 1 (weight layers, a highway layer counting once; `depth` is not
  used): stages (5, 5, 5) at width 32 (the `highway_cifar` config) is a 19-layer net of 2.0M
  parameters, near the paper's 19-layer highway net (2.3M, Table 2); its plain version has 1.06M.
  The paper's exact CIFAR layouts are in its supplementary material; this stage layout is this
  codebase's stand-in, not a copy of them.

Neither paper used batch normalisation; `bn=True` adds it after H's conv/dense (before the
nonlinearity), as a modern option.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from classic.models import register, variant
from classic.models.layers import ACTIVATIONS, BatchNorm, Conv, activation, he_normal, max_pool

# Where this differs from the paper (docs/models.md lists them all: python -m classic.summary --deviations).
DEVIATIONS = (
    "The CIFAR net (`form='conv'`, stages (5, 5, 5) at width 32, 2.0M parameters) is this codebase's "
    "stand-in for the 19-layer highway net (2.3M, Table 2); the paper's exact layouts are in its "
    "supplementary material.",
)


class HighwayLayer(nn.Module):
  """One highway (or, with gated=False, plain) layer, dense (kernel=None) or convolutional."""

  features: int
  kernel: tuple | None = None
  gated: bool = True
  gate_bias_init: float = -2.0
  activation: str = "relu"
  bn: bool = False
  bn_group_size: int = 0
  dtype: Any = None

  def _linear(self, name, bias_init, use_bias, kernel_init):
    if self.kernel is None:
      return nn.Dense(self.features, use_bias=use_bias, kernel_init=kernel_init, bias_init=bias_init,
                      dtype=self.dtype, name=name)
    return Conv(self.features, self.kernel, padding="SAME", use_bias=use_bias,
                kernel_init=kernel_init, bias_init=bias_init, dtype=self.dtype, name=name)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    act = activation(self.activation)
    h_init = he_normal if self.activation == "relu" else nn.initializers.lecun_normal()
    h = self._linear("H", nn.initializers.zeros, not self.bn, h_init)(x)
    if self.bn:
      h = BatchNorm(group_size=self.bn_group_size, dtype=self.dtype, name="H_bn")(h, train)
    h = act(h)
    if not self.gated:
      return h
    if x.shape[-1] != self.features:
      raise ValueError(f"a highway layer keeps its width: input has {x.shape[-1]} features, "
                       f"the layer {self.features}; put a plain layer in between.")
    t = nn.sigmoid(self._linear("T", nn.initializers.constant(self.gate_bias_init), True,
                                nn.initializers.lecun_normal())(x))
    return h * t + x * (1.0 - t)


@register("highway")
class Highway(nn.Module):
  """Highway network, fully connected or convolutional (see the module docstring)."""

  # Valid values of the enumerated fields (checked by classic.models.check_config before a run starts).
  CHOICES = {"form": ("fc", "conv"), "activation": ACTIVATIONS}

  num_classes: int = 10
  form: str = "fc"               # 'fc' (MNIST, §3.1) or 'conv' (CIFAR, §3.2)
  depth: int = 10                # fc only: hidden layers, the first plain (10/20/50/100, Fig. 1)
  width: int = 50                # fc: units a layer (50 highway, 71 plain); conv: maps of stage 1
  stages: tuple = (5, 5, 5)      # conv: highway layers per stage; depth = len + sum + 1
  gated: bool = True             # False: the plain net of the same depth
  gate_bias_init: float = -2.0
  activation: str = "relu"
  bn: bool = False
  dropout_rate: float = 0.0      # before the classifier
  bn_group_size: int = 0
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    layer = lambda features, kernel, gated, name: HighwayLayer(
        features, kernel, gated, self.gate_bias_init, self.activation, self.bn, self.bn_group_size,
        self.dtype, name=name)
    if self.form == "fc":
      if self.depth < 1:
        raise ValueError(f"fc highway depth must be >= 1, got {self.depth}.")
      x = x.reshape(x.shape[0], -1)
      x = layer(self.width, None, False, "layer1")(x, train)
      for i in range(2, self.depth + 1):
        x = layer(self.width, None, self.gated, f"layer{i}")(x, train)
    elif self.form == "conv":
      if not self.stages:
        raise ValueError("conv highway needs at least one stage.")
      for s, count in enumerate(self.stages):
        if s:
          x = max_pool(x, (2, 2), (2, 2))
        features = self.width * 2**s
        x = layer(features, (3, 3), False, f"stage{s + 1}_plain")(x, train)
        for i in range(count):
          x = layer(features, (3, 3), self.gated, f"stage{s + 1}_layer{i + 1}")(x, train)
      x = jnp.mean(x, axis=(1, 2))
    else:
      raise ValueError(f"form must be 'fc' or 'conv', got {self.form!r}.")
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


variant("highway_fc", "highway", (28, 28, 1))
variant("plain_fc", "highway", (28, 28, 1), gated=False, width=71)     # Fig. 1's plain nets: same depth, 71 units
variant("highway_cifar", "highway", (32, 32, 3), form="conv", depth=0, width=32)
variant("plain_cifar", "highway", (32, 32, 3), form="conv", depth=0, width=32, gated=False)
