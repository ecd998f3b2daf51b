"""GoogLeNet, Szegedy et al. 2014, "Going deeper with convolutions", Table 1 and §5.

224x224 input. Stem: conv 7x7/2 64, max pool 3x3/2, LRN, conv 1x1 64, conv 3x3 192, LRN, max pool 3x3/2;
Inception modules 3a, 3b (28x28), max pool, 4a-4e (14x14), max pool, 5a, 5b (7x7), with Table 1's
widths (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj); average pool (7x7 at 224, global here),
dropout 0.4, linear. Two auxiliary classifiers on the outputs of 4a and 4d (§5: avg pool 5x5/3, 1x1 conv
128, FC 1024 + ReLU, dropout 0.7, linear), trained with weight 0.3 (`config.aux_weight`), discarded at
inference. Table 1's parameter column (weights only, K = 1024) sums to ~6.8M without the aux heads.

Switches (fields):
- `aux_heads`: the two auxiliary classifiers (training only; see classic.models.inception).
- `lrn`: the two local response normalisations of the stem. The paper gives no constants; those of the
  Caffe reference model (bvlc_googlenet: n=5, alpha=1e-4 divided by n, beta=0.75, k=1) are used.
- `bn`: BatchNorm after every convolution (convolutions then lose their bias), as torchvision's variant.
- `factorization` of the 5x5 branch: '5x5' (paper), '3x3x2' (two stacked 3x3 convolutions, each with
  #5x5 outputs, as Inception v2), '1xn' (a 1xn then an nx1 convolution, each with #5x5 outputs, n =
  `branch5x5_kernel`, Inception v3's asymmetric factorization).
- `branch5x5_kernel`: 5 (paper); torchvision's GoogLeNet has a 3x3 convolution in the "5x5" branch (3).
- `ceil_pool`: stride-2 max pools without padding in ceil mode (Caffe, torchvision); the default pads
  one pixel on each side, symmetric, which gives the same Table 1 shapes (112 -> 56 -> 28 -> 14 -> 7).
- `bn_epsilon`: the BN epsilon with `bn=True`; 1e-5 by default, torchvision's BasicConv2d uses 1e-3.
- `pool4_window`: the window of the stride-2 max pool between 4e and 5a: 3 (Table 1), 2 (torchvision).
torchvision's model is `bn=True, lrn=False, branch5x5_kernel=3, ceil_pool=True, bn_epsilon=1e-3,
pool4_window=2` (6,624,904 parameters without its aux heads). Its aux heads pool adaptively to 4x4
(here a 5x5/3 average pool, the same at 224 only in shape), which matters for training losses only.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from classic.models import Reference, register, variant
from classic.models.inception import (AuxHead, ConvSpec, InceptionModule, check_factorization,
                                      conv_padding, factorize, run_aux)
from classic.models.layers import ConvBN, LocalResponseNorm, max_pool

# Szegedy et al. 2014 Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
TABLE1 = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
STAGES = (("3a", "3b"), ("4a", "4b", "4c", "4d", "4e"), ("5a", "5b"))
AUX_AFTER = ("4a", "4d")
FACTORIZATIONS = ("5x5", "3x3x2", "1xn")

# Caffe's "xavier" filler (variance 1/fan_in, uniform), which the reference GoogLeNet used.
caffe_xavier = nn.initializers.variance_scaling(1.0, "fan_in", "uniform")


def stride2_max_pool(x: jax.Array, ceil: bool, window: int = 3) -> jax.Array:
  """window x window /2 max pool: symmetric padding (window 3: 1 pixel), or Caffe's ceil mode (pad
  only the far side)."""
  if not ceil:
    p = (window - 1) // 2
    return max_pool(x, (window, window), (2, 2), padding=((p, p), (p, p)))
  pads = []
  for n in x.shape[1:3]:
    out = math.ceil((n - window) / 2) + 1
    pads.append((0, max((out - 1) * 2 + window - n, 0)))
  return max_pool(x, (window, window), (2, 2), padding=tuple(pads))


@register("googlenet")
class GoogLeNet(nn.Module):
  """GoogLeNet (Szegedy et al. 2014 Table 1). See the module docstring for the switches."""

  # Valid values of the enumerated fields (checked by classic.models.check_config before a run starts).
  CHOICES = {"factorization": FACTORIZATIONS}

  num_classes: int = 1000
  aux_heads: bool = True
  bn: bool = False
  lrn: bool = True
  factorization: str = "5x5"
  branch5x5_kernel: int = 5
  ceil_pool: bool = False
  bn_epsilon: float = 1e-5
  pool4_window: int = 3
  dropout: float = 0.4
  aux_dropout: float = 0.7
  bn_group_size: int = 0
  dtype: Any = None

  def _inception(self, name: str) -> InceptionModule:
    n1, r3, n3, r5, n5, proj = TABLE1[name]
    k = self.branch5x5_kernel
    return InceptionModule(
        branches=((ConvSpec(n1),),
                  (ConvSpec(r3), ConvSpec(n3, (3, 3))),
                  (ConvSpec(r5),) + factorize(k, n5, self.factorization)),
        pool="max", pool_proj=proj, bn=self.bn, bn_group_size=self.bn_group_size,
        bn_epsilon=self.bn_epsilon, kernel_init=caffe_xavier, dtype=self.dtype, name=f"inception_{name}")

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    check_factorization(self.factorization, FACTORIZATIONS, "GoogLeNet")
    if self.branch5x5_kernel < 1 or self.branch5x5_kernel % 2 == 0:
      raise ValueError(f"branch5x5_kernel must be odd, got {self.branch5x5_kernel}.")

    def conv(features, k, strides=1, name=None):
      return ConvBN(features, (k, k), strides, padding=conv_padding((k, k), "same"), bn=self.bn,
                    bn_group_size=self.bn_group_size, bn_epsilon=self.bn_epsilon,
                    kernel_init=caffe_xavier, dtype=self.dtype,
                    name=name)

    def lrn(y):
      if not self.lrn:
        return y
      return LocalResponseNorm(size=5, k=1.0, alpha=1e-4, beta=0.75, alpha_per_size=True)(y)

    x = conv(64, 7, 2, name="conv1")(x, train)                   # 112x112x64
    x = lrn(stride2_max_pool(x, self.ceil_pool))                  # 56x56x64
    x = conv(64, 1, name="conv2_reduce")(x, train)
    x = conv(192, 3, name="conv2")(x, train)                      # 56x56x192
    x = stride2_max_pool(lrn(x), self.ceil_pool)                  # 28x28x192
    for s, stage in enumerate(STAGES):
      if s:
        x = stride2_max_pool(x, self.ceil_pool, self.pool4_window if s == 2 else 3)
      for name in stage:
        x = self._inception(name)(x, train)
        if self.aux_heads and name in AUX_AFTER:
          head = AuxHead(self.num_classes, dropout=self.aux_dropout, bn=self.bn,
                         bn_group_size=self.bn_group_size, bn_epsilon=self.bn_epsilon,
                         kernel_init=caffe_xavier,
                         dense_init=caffe_xavier, dtype=self.dtype, name=f"aux_{name}")
          run_aux(self, head, x, train)
    x = jnp.mean(x, axis=(1, 2))                                  # avg pool 7x7/1 at 224
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.Dense(self.num_classes, kernel_init=caffe_xavier, dtype=self.dtype, name="head")(x)
    return x.astype(jnp.float32)


variant("googlenet", "googlenet", reference=Reference(
    "Szegedy et al. 2014, §5 and Table 5", macs="1.5G", top5_err=10.07, protocol="1 model, 1 crop, ILSVRC-2014 val"))
variant("googlenet_noaux", "googlenet", reference=Reference(
    "Szegedy et al. 2014, Table 1 (summed)", params="6.8M",
    differs="7.0M with biases: Table 1 counts weights only, in units of 1,024"), aux_heads=False)
variant("googlenet_3x3x2", "googlenet", factorization="3x3x2")
variant("googlenet_1xn", "googlenet", factorization="1xn")
# torchvision's GoogLeNet: BN after every conv, no LRN, 3x3 in the "5x5" branch, ceil-mode pools.
variant("googlenet_torchvision", "googlenet", bn=True, lrn=False, branch5x5_kernel=3, ceil_pool=True,
        bn_epsilon=1e-3, pool4_window=2)
