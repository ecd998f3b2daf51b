"""Network in Network, Lin, Chen & Yan 2014, §3 (mlpconv layers, global average pooling) and Fig. 2.

An mlpconv block is a k x k convolution followed by 1x1 convolutions (the "micro network" shared over
positions), ReLU after each; the last block produces one map per class, which is averaged over space
to give the logits: there is no fully connected layer.

The network is data: `blocks` is a tuple of block specs `(convs, pool, dropout)`, where
- `convs` is a tuple of `(features, kernel, stride, pad)`, symmetric `pad`; `features=0` means
  `num_classes` (the class maps of the last block);
- `pool` is `(kind, window, stride)` with kind 'max' or 'avg' (Caffe's pooling: output size rounded
  up, averages over the part of the window inside the image), or `()` for none;
- `dropout` applies dropout (rate `dropout`) after the block.
The global average pool after the last block is always there.

`CIFAR10` is the authors' CIFAR-10 net (their Caffe model, §4.2): 192@5x5, 160, 96 / max 3/2,
dropout / 192@5x5, 192, 192 / avg 3/2, dropout / 192@3x3, 192, 10 / global average; 966,986 parameters.
`IMAGENET` is the authors' ImageNet net (their Caffe model zoo entry, 224 input): 96@11x11/4, 96, 96 /
max 3/2 / 256@5x5, 256, 256 / max 3/2 / 384@3x3, 384, 384 / max 3/2, dropout / 1024@3x3, 1024, 1000 /
global average (the 6x6 average pool of the Caffe model); 7,595,176 parameters.
Both Caffe models apply ReLU to the class maps too (`final_relu=True`). Weights use He-normal
initialisation (the Caffe models used hand-set Gaussian widths of 0.01 and 0.05).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from classic.models import Reference, register, variant
from classic.models.layers import Conv, caffe_pool, he_normal, relu, symmetric

# Where this differs from the paper (docs/models.md lists them all: python -m classic.summary --deviations).
DEVIATIONS = (
    "He-normal initialisation; the authors' Caffe models used hand-set Gaussian widths (0.01, 0.05).",
)

CIFAR10 = (
    (((192, 5, 1, 2), (160, 1, 1, 0), (96, 1, 1, 0)), ("max", 3, 2), True),
    (((192, 5, 1, 2), (192, 1, 1, 0), (192, 1, 1, 0)), ("avg", 3, 2), True),
    (((192, 3, 1, 1), (192, 1, 1, 0), (0, 1, 1, 0)), (), False),
)

IMAGENET = (
    (((96, 11, 4, 0), (96, 1, 1, 0), (96, 1, 1, 0)), ("max", 3, 2), False),
    (((256, 5, 1, 2), (256, 1, 1, 0), (256, 1, 1, 0)), ("max", 3, 2), False),
    (((384, 3, 1, 1), (384, 1, 1, 0), (384, 1, 1, 0)), ("max", 3, 2), True),
    (((1024, 3, 1, 1), (1024, 1, 1, 0), (0, 1, 1, 0)), (), False),
)


@register("nin")
class NiN(nn.Module):
  """Network in Network: mlpconv blocks from `blocks`, global average pooling head."""

  num_classes: int = 10
  blocks: Any = CIFAR10
  dropout: float = 0.5
  final_relu: bool = True
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if not self.blocks:
      raise ValueError("NiN needs at least one block.")
    last = len(self.blocks) - 1
    for b, spec in enumerate(self.blocks):
      if len(spec) != 3:
        raise ValueError(f"block {b + 1}: expected (convs, pool, dropout), got {spec!r}.")
      convs, pool, drop = spec
      for i, (features, kernel, stride, pad) in enumerate(convs):
        final = b == last and i == len(convs) - 1
        features = features or self.num_classes
        if final and features != self.num_classes:
          raise ValueError(f"the last conv gives the class maps: {features} != num_classes "
                           f"{self.num_classes} (write 0 to follow num_classes).")
        x = Conv(features, (kernel, kernel), stride, padding=symmetric(pad),
                 kernel_init=he_normal, dtype=self.dtype,
                 name=f"block{b + 1}_conv{i + 1}")(x)
        if not final or self.final_relu:
          x = relu(x)
      if pool:
        kind, window, stride = pool
        x = caffe_pool(x, kind, window, stride)
      if drop:
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
      self.sow("intermediates", f"block{b + 1}_out", x)
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


variant("nin_cifar", "nin", (32, 32, 3), reference=Reference(
    "Lin et al. 2014, Table 1", top1_err=8.81, protocol="CIFAR-10 test, with translation and flip augmentation"),
    blocks=CIFAR10, num_classes=10)
variant("nin_imagenet", "nin", blocks=IMAGENET, num_classes=1000)
