"""AlexNet, Krizhevsky, Sutskever & Hinton 2012, "ImageNet classification with deep convolutional
neural networks", §3 and Fig. 2.

The paper's net (default fields) is the two-tower net of Fig. 2 on a 227x227 input (the figure's "224"
does not divide out; 227 gives its 55x55 conv1 maps): conv1 96@11x11/4, conv2 256@5x5 (groups=2),
conv3 384@3x3 (connects across the towers), conv4 384@3x3 (groups=2), conv5 256@3x3 (groups=2),
FC 4096, FC 4096, FC num_classes. ReLU everywhere; response normalisation (§3.3) after the ReLU of
conv1 and conv2, before their pooling; overlapping max pooling 3x3/2 (§3.4) after conv1, conv2, conv5;
dropout 0.5 on the outputs of the first two FC layers (§4.2). Initialisation as §5: weights N(0, 0.01),
biases 1 in conv2, conv4, conv5 and the hidden FC layers, 0 elsewhere. 60,965,224 parameters at 1000
classes (the paper: "60 million").

Towers. `groups=2` splits conv2/4/5 into two towers; the response normalisation of a tower sums over
that tower's maps only, as each GPU normalised its own maps. The towers are computed as grouped
convolutions on every device; they are not *placed* on two devices as the paper's two GPUs held them
(the trainer's mesh is data parallel only: at AlexNet's size one device holds the whole net).

Switches: `lrn`, `groups`, `overlap_pool=False` (2x2/2 pooling, §3.4's comparison), `dropout`,
`widths`, `conv1_pad`, `adaptive_pool`.

Pooling follows cuda-convnet and Caffe: the output size is rounded up (windows clipped at the edge).
For the 3x3/2 pools of the paper this is the same as rounding down (55->27->13->6); with
`overlap_pool=False` it gives 28->14->7, so the FC input grows to 7x7x256 (the FC layers size
themselves from the actual shape).

The variant `alexnet_1tower` is the single-tower layout of Krizhevsky 2014 ("One weird
trick") as torchvision has it: widths (64, 192, 384, 256, 256), groups=1, no LRN, 224 input with
conv1 padded by 2, and `adaptive_pool=6` (torchvision's adaptive average pool to 6x6 before the FC
layers, the identity at 224).

Feature maps are sown into the 'intermediates' collection (conv1_out ... pool5_out) for inspection.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from classic.models import Reference, register, variant
from classic.models.layers import Conv, LocalResponseNorm, adaptive_avg_pool, caffe_pool, relu, symmetric

# ------------------------------------------------------------------------------------------------
# ------------------------------------------------------------------------------------------------


def _normal(std: float):
  return nn.initializers.normal(std)


@register("alexnet")
class AlexNet(nn.Module):
  """AlexNet (Krizhevsky et al. 2012 Fig. 2); the module docstring lists the fields' meaning."""

  num_classes: int = 1000
  widths: Sequence[int] = (96, 256, 384, 384, 256)
  groups: int = 2                 # towers: conv2, conv4, conv5 are grouped; conv3 is not
  lrn: bool = True
  overlap_pool: bool = True       # 3x3/2 pooling (paper); False: 2x2/2
  dropout: float = 0.5
  conv1_pad: int = 0              # 0: the paper's 227 input; 2: torchvision's 224 input
  adaptive_pool: int = 0          # >0: adaptive average pool to this size before the FC layers
  fc_width: int = 4096
  dtype: Any = None

  def _lrn(self, x: jax.Array) -> jax.Array:
    if not self.lrn:
      return x
    # Within each tower: split the channels into (groups, maps per tower) and normalise the last axis.
    g = self.groups
    y = LocalResponseNorm()(x.reshape(x.shape[:-1] + (g, x.shape[-1] // g)))
    return y.reshape(x.shape)

  def _pool(self, x: jax.Array) -> jax.Array:
    return caffe_pool(x, "max", 3, 2) if self.overlap_pool else caffe_pool(x, "max", 2, 2)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if len(self.widths) != 5:
      raise ValueError(f"AlexNet has 5 conv layers; widths={tuple(self.widths)}.")
    for w in self.widths:
      if w % self.groups:
        raise ValueError(f"width {w} is not divisible by groups={self.groups}.")
    w1, w2, w3, w4, w5 = self.widths
    g = self.groups
    w_init = _normal(0.01)
    one = nn.initializers.ones

    def conv(features, kernel, stride, pad, groups, bias_one, name):
      return Conv(features, (kernel, kernel), stride, padding=symmetric(pad),
                  feature_group_count=groups, kernel_init=w_init,
                  bias_init=one if bias_one else nn.initializers.zeros, dtype=self.dtype,
                  name=name)

    def sow(name, y):
      self.sow("intermediates", f"{name}_out", y)
      return y

    x = sow("conv1", relu(conv(w1, 11, 4, self.conv1_pad, 1, False, "conv1")(x)))
    x = sow("pool1", self._pool(self._lrn(x)))
    x = sow("conv2", relu(conv(w2, 5, 1, 2, g, True, "conv2")(x)))
    x = sow("pool2", self._pool(self._lrn(x)))
    x = sow("conv3", relu(conv(w3, 3, 1, 1, 1, False, "conv3")(x)))
    x = sow("conv4", relu(conv(w4, 3, 1, 1, g, True, "conv4")(x)))
    x = sow("conv5", relu(conv(w5, 3, 1, 1, g, True, "conv5")(x)))
    x = sow("pool5", self._pool(x))
    if self.adaptive_pool:
      x = adaptive_avg_pool(x, self.adaptive_pool)

    x = x.reshape(x.shape[0], -1)
    for i in (6, 7):
      x = nn.Dense(self.fc_width, kernel_init=w_init, bias_init=one, dtype=self.dtype,
                   name=f"fc{i}")(x)
      x = relu(x)
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.Dense(self.num_classes, kernel_init=w_init, dtype=self.dtype, name="fc8")(x)
    return x.astype(jnp.float32)


variant("alexnet", "alexnet", (227, 227, 3),  # Fig. 2's "224" does not divide out
        reference=Reference("Krizhevsky et al. 2012, abstract and Table 1", params="60M", top1_err=37.5,
                            top5_err=17.0, protocol="one CNN, ILSVRC-2010 test"))
# Krizhevsky 2014's single tower as torchvision has it: 224 input (conv1 padded by 2), no LRN.
variant("alexnet_1tower", "alexnet", reference=Reference("torchvision's alexnet", params="61.1M"),
        widths=(64, 192, 384, 256, 256), groups=1, lrn=False, conv1_pad=2, adaptive_pool=6)
