"""Inception v3, Szegedy et al. 2015, "Rethinking the Inception Architecture for Computer Vision",
Table 1, Figs. 5, 6, 7 and 10 (efficient grid size reduction), §7 (BN auxiliary classifier).

299x299 input. Stem (all unpadded but the third): conv 3x3/2 32, conv 3x3 32, conv 3x3 64 (padded), max
pool 3x3/2, conv 1x1 80, conv 3x3 192, max pool 3x3/2 -> 35x35x192. Then, in the layout every public
implementation shares (TF-slim, Keras, torchvision; Table 1 of the paper lists the module counts
loosely): three Fig. 5 modules at 35x35 (256, 288, 288 channels; this layout keeps a 1x1-48 -> 5x5-64
branch beside the double 3x3), the Fig. 10 reduction to 17x17x768, four Fig. 6 modules at 17x17 (1x7 +
7x1 factorization, n=7, inner widths 128, 160, 160, 192), the reduction to 8x8x1280, two Fig. 7 modules
at 8x8 (expanded filter bank, 2048 channels); global average pool, dropout, linear. Every convolution is
followed by BatchNorm and ReLU. The auxiliary classifier (§7) sits on the last 17x17 output: avg pool
5x5/3, conv 1x1 128, conv 5x5 768 (BN), linear (its FC is not batch-normalised, as in TF-slim and
torchvision); training only (see classic.models.inception).

Fields:
- `aux_heads`: the auxiliary classifier (27,161,264 parameters with it, 23,834,568 without: the
  torchvision counts, whose BN has a learned scale; TF-slim's BN has none, 17,216 fewer).
- `factorization` of the 17x17 grid's 7x7 convolutions (four modules and the 17 -> 8 reduction):
  '1xn' (paper: 1x7 + 7x1 pairs), 'nxn' (each pair a full 7x7 convolution), '3x3' (each pair three
  stacked 3x3 convolutions). The 35x35 and 8x8 modules keep their published form.
- `dropout` before the classifier: 0.2 (TF-slim/Keras keep_prob 0.8). `bn_epsilon`: 1e-3 (TF).
- `count_include_pad`: average pools inside modules exclude the zero padding from the mean, as
  TensorFlow's SAME pooling (False, default); torchvision's `inception_v3` divides by 9 everywhere (True).
- TF-slim's and Keras' BN has no learned scale: their weights load with scale 1, which is exact.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from classic.models import Reference, register, variant
from classic.models.inception import (AuxHead, ConvSpec, InceptionModule, Split, check_factorization,
                                      conv_padding, factorize, run_aux)
from classic.models.layers import ConvBN, max_pool

FACTORIZATIONS = ("1xn", "nxn", "3x3")
GRID35 = (("mixed_5b", 32), ("mixed_5c", 64), ("mixed_5d", 64))           # pool projection widths
GRID17 = (("mixed_6b", 128), ("mixed_6c", 160), ("mixed_6d", 160), ("mixed_6e", 192))  # 7x7 inner


def module_35(pool_proj: int) -> dict:
  """Fig. 5 (with the 5x5 branch of the public layout): 64 + 64 + 96 + pool_proj channels."""
  return dict(branches=((ConvSpec(64),),
                        (ConvSpec(48), ConvSpec(64, (5, 5))),
                        (ConvSpec(64), ConvSpec(96, (3, 3)), ConvSpec(96, (3, 3)))),
              pool="avg", pool_proj=pool_proj)


def reduction_35_to_17() -> dict:
  """Fig. 10: stride-2 conv branches beside a stride-2 max pool; 384 + 96 + 288 = 768 channels."""
  return dict(branches=((ConvSpec(384, (3, 3), 2, "valid"),),
                        (ConvSpec(64), ConvSpec(96, (3, 3)), ConvSpec(96, (3, 3), 2, "valid"))),
              pool="max", pool_strides=2, pool_padding="valid")


def module_17(c: int, mode: str) -> dict:
  """Fig. 6, n=7: 192 + 192 + 192 + 192 = 768 channels."""
  return dict(branches=((ConvSpec(192),),
                        (ConvSpec(c),) + factorize(7, 192, mode, c),
                        (ConvSpec(c),) + factorize(7, c, mode, c, first="nx1")
                        + factorize(7, 192, mode, c, first="nx1")),
              pool="avg", pool_proj=192)


def reduction_17_to_8(mode: str) -> dict:
  """320 + 192 + 768 (pooled) = 1280 channels."""
  return dict(branches=((ConvSpec(192), ConvSpec(320, (3, 3), 2, "valid")),
                        (ConvSpec(192),) + factorize(7, 192, mode, 192)
                        + (ConvSpec(192, (3, 3), 2, "valid"),)),
              pool="max", pool_strides=2, pool_padding="valid")


def module_8() -> dict:
  """Fig. 7, expanded filter bank: 320 + 768 + 768 + 192 = 2048 channels."""
  split = Split((ConvSpec(384, (1, 3)), ConvSpec(384, (3, 1))))
  return dict(branches=((ConvSpec(320),),
                        (ConvSpec(384), split),
                        (ConvSpec(448), ConvSpec(384, (3, 3)), split)),
              pool="avg", pool_proj=192)


@register("inception_v3")
class InceptionV3(nn.Module):
  """Inception v3 (Szegedy et al. 2015). See the module docstring for the layout and the fields."""

  # Valid values of the enumerated fields (checked by classic.models.check_config before a run starts).
  CHOICES = {"factorization": FACTORIZATIONS}

  num_classes: int = 1000
  aux_heads: bool = True
  factorization: str = "1xn"
  dropout: float = 0.2
  bn_epsilon: float = 1e-3
  count_include_pad: bool = False
  bn_group_size: int = 0
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    check_factorization(self.factorization, FACTORIZATIONS, "Inception v3")
    bn = dict(bn_group_size=self.bn_group_size, bn_epsilon=self.bn_epsilon, dtype=self.dtype)

    def conv(features, k, strides=1, padding="valid", name=None):
      return ConvBN(features, (k, k), strides, padding=conv_padding((k, k), padding), name=name,
                    **bn)

    def mixed(name, spec):
      return InceptionModule(**spec, bn=True, count_include_pad=self.count_include_pad, name=name,
                             **bn)

    def pool(y):
      return max_pool(y, (3, 3), (2, 2), padding="VALID")

    x = conv(32, 3, 2, name="conv_1a")(x, train)                 # 149x149x32
    x = conv(32, 3, name="conv_2a")(x, train)                    # 147x147x32
    x = conv(64, 3, padding="same", name="conv_2b")(x, train)    # 147x147x64
    x = pool(x)                                                   # 73x73x64
    x = conv(80, 1, name="conv_3b")(x, train)                    # 73x73x80
    x = conv(192, 3, name="conv_4a")(x, train)                   # 71x71x192
    x = pool(x)                                                   # 35x35x192
    for name, proj in GRID35:
      x = mixed(name, module_35(proj))(x, train)                  # 35x35x256/288/288
    x = mixed("mixed_6a", reduction_35_to_17())(x, train)         # 17x17x768
    for name, c in GRID17:
      x = mixed(name, module_17(c, self.factorization))(x, train)
    if self.aux_heads:
      head = AuxHead(self.num_classes, convs=(ConvSpec(128), ConvSpec(768, (5, 5), padding="valid")),
                     hidden=(), dropout=0.0, global_pool=True, shrink_kernels=True, bn=True,
                     name="aux", **bn)
      run_aux(self, head, x, train)
    x = mixed("mixed_7a", reduction_17_to_8(self.factorization))(x, train)   # 8x8x1280
    x = mixed("mixed_7b", module_8())(x, train)                              # 8x8x2048
    x = mixed("mixed_7c", module_8())(x, train)
    x = jnp.mean(x, axis=(1, 2))                                  # avg pool 8x8 at 299
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


variant("inception_v3", "inception_v3", (299, 299, 3), reference=Reference(
    "Szegedy et al. 2015 (Rethinking), §6 and Table 3; torchvision's parameter count", params="27.16M", macs="5G",
    top1_err=21.2, top5_err=5.6, protocol="single crop, ILSVRC-2012 val"))
variant("inception_v3_noaux", "inception_v3", (299, 299, 3), aux_heads=False)
variant("inception_v3_nxn", "inception_v3", (299, 299, 3), factorization="nxn")
variant("inception_v3_3x3", "inception_v3", (299, 299, 3), factorization="3x3")
