"""BN-Inception ("Inception v2"), Ioffe & Szegedy 2015, "Batch Normalization: Accelerating Deep Network
Training by Reducing Internal Covariate Shift", §4.2 and the appendix table (Figure 5).

GoogLeNet with BatchNorm before every ReLU and these changes (Figure 5's caption): each 5x5 convolution
is replaced by two stacked 3x3 convolutions ("double 3x3", both with #double-3x3 outputs); there are
three 28x28 modules (3a, 3b, 3c); some modules average-pool and some max-pool (as the table says); no
max pools between stages: modules 3c and 4e reduce the grid themselves (stride-2 last convolutions, a
3x3/2 max pool passed through, no 1x1 branch). No LRN, no dropout (§4.2.1), no auxiliary classifiers.
Stem: conv 7x7/2 64, max pool 3x3/2, conv 1x1 64, conv 3x3 192, max pool 3x3/2 (symmetric padding). 224
input; 28x28 -> 14x14 (after 3c) -> 7x7 (after 4e); global average pool; linear.

Figure 5 lists "avg + 128" pool projections for 4c and 4d, which make them 608 wide (and 4e 1056),
though its output column says 576 (and 1024): `widths='figure5'` (default) builds the per-module widths
as listed, as MXNet's Inception-BN does; `widths='slim'` uses 96-wide pool projections in
4c and 4d so every output matches the output column, as TF-slim's inception_v2.

Fields: `factorization` of the double-3x3 branch ('3x3x2' paper; '5x5': one 5x5, GoogLeNet-style; '1xn':
1x5 then 5x1), `aux_heads` (GoogLeNet's two heads on 4a and 4d, with BN; off, as the paper),
`dropout` before the classifier (0, as the accelerated BN network), `bn_epsilon`, `bn_group_size`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from classic.models import Reference, register, variant
from classic.models.inception import (AuxHead, ConvSpec, InceptionModule, check_factorization,
                                      conv_padding, factorize, run_aux)
from classic.models.layers import ConvBN, max_pool

# Ioffe & Szegedy 2015 Figure 5: #1x1, #3x3 reduce, #3x3, #double 3x3 reduce, #double 3x3, pool,
# pool proj (0: pass through), stride.
FIGURE5 = {
    "3a": (64, 64, 64, 64, 96, "avg", 32, 1),
    "3b": (64, 64, 96, 64, 96, "avg", 64, 1),
    "3c": (0, 128, 160, 64, 96, "max", 0, 2),
    "4a": (224, 64, 96, 96, 128, "avg", 128, 1),
    "4b": (192, 96, 128, 96, 128, "avg", 128, 1),
    "4c": (160, 128, 160, 128, 160, "avg", 128, 1),
    "4d": (96, 128, 192, 160, 192, "avg", 128, 1),
    "4e": (0, 128, 192, 192, 256, "max", 0, 2),
    "5a": (352, 192, 320, 160, 224, "avg", 128, 1),
    "5b": (352, 192, 320, 192, 224, "max", 128, 1),
}
SLIM_POOL_PROJ = {"4c": 96, "4d": 96}
MODULES = tuple(FIGURE5)
AUX_AFTER = ("4a", "4d")
FACTORIZATIONS = ("3x3x2", "5x5", "1xn")


@register("inception_v2")
class InceptionV2(nn.Module):
  """BN-Inception (Ioffe & Szegedy 2015 Figure 5). See the module docstring for the fields."""

  # Valid values of the enumerated fields (checked by classic.models.check_config before a run starts).
  CHOICES = {"factorization": FACTORIZATIONS, "widths": ("figure5", "slim")}

  num_classes: int = 1000
  factorization: str = "3x3x2"
  widths: str = "figure5"          # 'figure5' or 'slim'
  aux_heads: bool = False
  dropout: float = 0.0
  aux_dropout: float = 0.7
  bn_epsilon: float = 1e-3         # TensorFlow's; the paper gives no value
  bn_group_size: int = 0
  dtype: Any = None

  def _inception(self, name: str) -> InceptionModule:
    n1, r3, n3, rd, nd, pool, proj, s = FIGURE5[name]
    if self.widths == "slim":
      proj = SLIM_POOL_PROJ.get(name, proj)
    elif self.widths != "figure5":
      raise ValueError(f"widths must be 'figure5' or 'slim', got {self.widths!r}.")
    branches = ((ConvSpec(n1),),) if n1 else ()
    branches += ((ConvSpec(r3), ConvSpec(n3, (3, 3), s)),
                 (ConvSpec(rd),) + factorize(5, nd, self.factorization, strides=s))
    return InceptionModule(branches=branches, pool=pool, pool_strides=s, pool_proj=proj,
                           bn=True, bn_group_size=self.bn_group_size, bn_epsilon=self.bn_epsilon,
                           dtype=self.dtype, name=f"inception_{name}")

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    check_factorization(self.factorization, FACTORIZATIONS, "Inception v2")

    def conv(features, k, strides=1, name=None):
      return ConvBN(features, (k, k), strides, padding=conv_padding((k, k), "same"),
                    bn_group_size=self.bn_group_size, bn_epsilon=self.bn_epsilon,
                    dtype=self.dtype, name=name)

    def pool(y):
      return max_pool(y, (3, 3), (2, 2), padding=((1, 1), (1, 1)))

    x = pool(conv(64, 7, 2, name="conv1")(x, train))              # 56x56x64
    x = conv(64, 1, name="conv2_reduce")(x, train)
    x = pool(conv(192, 3, name="conv2")(x, train))                # 28x28x192
    for name in MODULES:
      x = self._inception(name)(x, train)
      if self.aux_heads and name in AUX_AFTER:
        head = AuxHead(self.num_classes, dropout=self.aux_dropout, bn=True,
                       bn_group_size=self.bn_group_size, bn_epsilon=self.bn_epsilon,
                       dtype=self.dtype, name=f"aux_{name}")
        run_aux(self, head, x, train)
    x = jnp.mean(x, axis=(1, 2))                                  # avg pool 7x7/1 at 224
    if self.dropout:
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


variant("inception_v2", "inception_v2", reference=Reference(
    "Ioffe & Szegedy 2015, §4.2", params="13.6M",
    differs="11.3M with Figure 5's widths; the paper gives no breakdown of its 13.6M (a named deviation)"))
variant("inception_v2_slim", "inception_v2", widths="slim")
variant("inception_v2_5x5", "inception_v2", factorization="5x5")
