"""ZFNet, Zeiler & Fergus 2013, "Visualizing and understanding convolutional networks", Fig. 3 and §3.

224x224x3 input; conv1 96@7x7/2 -> 110x110; 3x3/2 max pool -> 55; contrast normalisation across
feature maps; conv2 256@5x5/2 -> 26; 3x3/2 max pool -> 13; contrast normalisation; conv3 384@3x3,
conv4 384@3x3, conv5 256@3x3 (13x13); 3x3/2 max pool -> 6; FC 4096, FC 4096, output. ReLU throughout,
dropout 0.5 on the two hidden FC layers, weights N(0, 0.01) and biases 0 (§3). A single tower: unlike
AlexNet, conv3-5 are dense. 62,357,608 parameters at 1000 classes (the paper gives no total).

Paddings chosen to reproduce Fig. 3's map sizes (110, 55, 26, 13, 13, 13, 6): conv1 pads 1 on every
side, conv2 none, conv3-5 pad 1; the pools round their output size up as cuda-convnet and Caffe do
(`caffe_pool`: 110 -> 55, 26 -> 13, 13 -> 6). The contrast normalisation is taken to be AlexNet's
response normalisation (k=2, n=5, alpha=1e-4, beta=0.75); the paper gives no constants.
The paper's training-time renormalisation of conv filters whose RMS exceeds 0.1 (§3) is an optimiser
step, not part of the model: `optimizer.filter_radius` (0.1 in configs/zfnet.py; classic.train.optim).

Switches: `lrn`, `dropout`. Feature maps are sown into 'intermediates' (conv1_out ... pool5_out).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from classic.models import register, variant
from classic.models.layers import Conv, LocalResponseNorm, caffe_pool, relu, symmetric


@register("zfnet")
class ZFNet(nn.Module):
  """ZFNet (Zeiler & Fergus 2013 Fig. 3)."""

  num_classes: int = 1000
  lrn: bool = True
  dropout: float = 0.5
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    init = nn.initializers.normal(0.01)

    def conv(y, features, kernel, stride, pad, name):
      y = Conv(features, (kernel, kernel), stride, padding=symmetric(pad), kernel_init=init,
               dtype=self.dtype, name=name)(y)
      y = relu(y)
      self.sow("intermediates", f"{name}_out", y)
      return y

    def pool(y, name):
      y = caffe_pool(y, "max", 3, 2)
      self.sow("intermediates", f"{name}_out", y)
      return y

    def norm(y):
      return LocalResponseNorm()(y) if self.lrn else y

    x = norm(pool(conv(x, 96, 7, 2, 1, "conv1"), "pool1"))
    x = norm(pool(conv(x, 256, 5, 2, 0, "conv2"), "pool2"))
    x = conv(x, 384, 3, 1, 1, "conv3")
    x = conv(x, 384, 3, 1, 1, "conv4")
    x = pool(conv(x, 256, 3, 1, 1, "conv5"), "pool5")
    x = x.reshape(x.shape[0], -1)
    for i in (6, 7):
      x = relu(nn.Dense(4096, kernel_init=init, dtype=self.dtype, name=f"fc{i}")(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.Dense(self.num_classes, kernel_init=init, dtype=self.dtype, name="fc8")(x)
    return x.astype(jnp.float32)


variant("zfnet", "zfnet")
