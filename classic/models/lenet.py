"""LeNet-5, LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to document
recognition", §II.B and Fig. 2.

32x32 input; C1 6@5x5; S2 trainable subsampling (2x2 sum x coefficient + bias, (1+1)x6 parameters);
C3 16@5x5 over the sparse connection table (Table I, 1,516 parameters); S4; C5 120@5x5 (a convolution
that happens to see a 1x1 map); F6 84; scaled tanh f(a) = 1.7159 tanh(2a/3) (Appendix A); output as
Euclidean RBF units with fixed +-1 codes (the paper drew them as 7x12 bitmaps, which are not published
as data; a fixed seeded code stands in). The paper form has 60,000 trainable parameters.

Switches: `c3='dense'`, `pool='avg'|'max'`, `activation='relu'|'tanh'`, `output='linear'`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from classic.models import Reference, register, variant
from classic.models.layers import ACTIVATIONS, Conv, activation

# LeCun et al. 1998 Table I: which S2 maps (rows 0-5) feed each C3 map (columns 0-15).
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class TrainableSubsampling(nn.Module):
  """S2/S4: the 2x2 sum of each map times a trainable coefficient plus a trainable bias."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    coef = self.param("coefficient", nn.initializers.constant(0.25), (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    summed = nn.avg_pool(x, (2, 2), (2, 2)) * 4.0
    return summed * coef + bias


class SparseConv(nn.Module):
  """C3: a 5x5 convolution whose input maps follow a connection table; only connected weights exist."""

  table: tuple[tuple[int, ...], ...] = C3_TABLE
  in_features: int = 6
  kernel: int = 5

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    rows = np.array([r for col in self.table for r in col])
    cols = np.array([c for c, col in enumerate(self.table) for _ in col])
    k = self.kernel
    fan_in = np.array([len(self.table[c]) for c in cols]) * k * k
    init = lambda key, shape: jax.random.uniform(key, shape, minval=-1, maxval=1) * (2.4 / fan_in)
    w = self.param("kernel", init, (k, k, len(rows)))
    bias = self.param("bias", nn.initializers.zeros, (len(self.table),))
    dense = jnp.zeros((k, k, self.in_features, len(self.table)), w.dtype).at[:, :, rows, cols].set(w)
    y = jax.lax.conv_general_dilated(x, dense, (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias


def rbf_codes(num_classes: int, features: int, seed: int = 1998) -> np.ndarray:
  """Fixed +-1 RBF centres, one per class (a seeded stand-in for the paper's 7x12 bitmaps)."""
  return np.where(np.random.default_rng(seed).random((num_classes, features)) < 0.5, -1.0, 1.0)


@register("lenet")
class LeNet5(nn.Module):
  """LeNet-5 (LeCun et al. 1998 Fig. 2). Returns logits; for `output='rbf'`, minus the RBF distances."""

  # Valid values of the enumerated fields (checked by classic.models.check_config before a run starts).
  CHOICES = {"activation": ACTIVATIONS, "pool": ("trainable", "avg", "max"), "c3": ("sparse", "dense"),
             "output": ("rbf", "linear")}

  num_classes: int = 10
  activation: str = "scaled_tanh"
  pool: str = "trainable"   # 'trainable' (paper), 'avg', 'max'
  c3: str = "sparse"        # 'sparse' (Table I) or 'dense'
  output: str = "rbf"       # 'rbf' (paper, fixed codes) or 'linear'
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    if x.shape[1:3] != (32, 32):
      raise ValueError(f"LeNet-5 takes 32x32 inputs, got {x.shape[1:3]}.")
    act = activation(self.activation)

    def subsample(y, name):
      if self.pool == "trainable":
        return act(TrainableSubsampling(name=name)(y))
      if self.pool in ("avg", "max"):
        return getattr(nn, f"{self.pool}_pool")(y, (2, 2), (2, 2))
      raise ValueError(f"pool must be 'trainable', 'avg' or 'max', got {self.pool!r}.")

    x = act(Conv(6, (5, 5), padding="VALID", dtype=self.dtype, name="C1")(x))
    x = subsample(x, "S2")
    if self.c3 == "sparse":
      x = act(SparseConv(name="C3")(x))
    elif self.c3 == "dense":
      x = act(Conv(16, (5, 5), padding="VALID", dtype=self.dtype, name="C3")(x))
    else:
      raise ValueError(f"c3 must be 'sparse' or 'dense', got {self.c3!r}.")
    x = subsample(x, "S4")
    x = act(Conv(120, (5, 5), padding="VALID", dtype=self.dtype, name="C5")(x))
    x = act(nn.Dense(84, dtype=self.dtype, name="F6")(x.reshape(x.shape[0], -1)))
    x = x.astype(jnp.float32)
    if self.output == "linear":
      return nn.Dense(self.num_classes, name="output")(x)
    if self.output != "rbf":
      raise ValueError(f"output must be 'rbf' or 'linear', got {self.output!r}.")
    codes = jnp.asarray(rbf_codes(self.num_classes, x.shape[-1]), jnp.float32)
    return -jnp.sum(jnp.square(x[:, None, :] - codes[None]), axis=-1)


variant("lenet5", "lenet", (32, 32, 1), reference=Reference(
    "LeCun et al. 1998, §II.B and §III.C", params="60,000", top1_err=0.95, protocol="MNIST test, no distortions"))
