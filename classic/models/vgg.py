"""VGG, Simonyan & Zisserman 2015, "Very deep convolutional networks for large-scale image
recognition", Table 1 (configurations A, A-LRN, B, C, D, E), Table 2 (parameter counts), §2-3.

224x224 input; five stages of 3x3 convolutions (stride 1, pad 1) each followed by a 2x2/2 max pool;
FC-4096, FC-4096, FC-num_classes; ReLU after every hidden layer, dropout 0.5 on the two hidden FC
layers. C puts a 1x1 convolution third in stages 3-5; A-LRN adds AlexNet's response normalisation
(k=2, n=5, alpha=1e-4, beta=0.75) after the first conv. Parameters at 1000 classes: A 132.86M,
B 133.05M, C 133.64M, D 138.36M, E 143.67M (Table 2: 133, 133, 134, 138, 144 million).
Weights use Glorot initialisation, which the paper's final version notes trains without A's
pre-training; biases 0.

Fields:
- `config_name` picks a Table 1 column; `layers` (if not empty) overrides it with explicit stages, a
  tuple of stages each a tuple of `(features, kernel)`.
- `lrn`: response normalisation after the first conv; None follows the name (on for 'A_lrn').
- `bn=True`: VGG-BN (BatchNorm after each conv, before the ReLU). The conv keeps its bias, as
  torchvision's vgg*_bn do, so their weights load as they are.
- `fully_conv=True`: the dense evaluation of §3.2. The FC layers become a 7x7 convolution and two
  1x1 convolutions over the last feature map, and the class score map is averaged over space. The
  parameters are the *same arrays* in both forms (fc6's kernel is stored as a (7*7*512, 4096)
  matrix and reshaped to 7x7x512x4096 here), so a net trained with FC layers is evaluated densely on
  any image of at least 224 pixels by flipping the flag. The FC form flattens the 7x7x512 map in
  (row, column, channel) order, which is what the reshape assumes.
- `conv5x5=True`: the factorisation study of §3.1/§4.1 (B against a shallow net of 5x5 layers). In
  each stage, consecutive 3x3 convs are taken in pairs from the first; each pair becomes one 5x5 conv
  (pad 2) with the pair's second width, the same receptive field with one non-linearity fewer. A 3x3
  conv left without a partner (A's single convs, the third of D's) and 1x1 convs stay as they are, so
  B gives the paper's five 5x5 layers.
- `adaptive_pool=k`: torchvision's adaptive average pool to k x k before the classifier (7 for
  torchvision interop; it is the identity at 224). In the dense form fc6's window is then k.

Pools round their output size up, as Caffe did (the same as rounding down for the even sizes of
224-pixel inputs).
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from classic.models import Reference, register, variant
from classic.models.layers import (BatchNorm, Conv, LocalResponseNorm, adaptive_avg_pool, caffe_pool, relu,
                                   symmetric)

# Where this differs from the paper (docs/models.md lists them all: python -m classic.summary --deviations).
DEVIATIONS = (
    "Every configuration is initialised with Glorot's scheme, biases 0; the paper trained A from "
    "N(0, 0.01) and initialised the deeper nets' first four convolutions and FC layers from A (§3.1; "
    "its final version notes that Glorot's initialisation works without that pre-training).",
)


def _stage(*widths: int, last_kernel: int = 3) -> tuple[tuple[int, int], ...]:
  return tuple((w, last_kernel if i == len(widths) - 1 else 3) for i, w in enumerate(widths))


# Simonyan & Zisserman 2015 Table 1: stages of (features, kernel).
CONFIGS = {
    "A": (_stage(64), _stage(128), _stage(256, 256), _stage(512, 512), _stage(512, 512)),
    "B": (_stage(64, 64), _stage(128, 128), _stage(256, 256), _stage(512, 512), _stage(512, 512)),
    "C": (_stage(64, 64), _stage(128, 128), _stage(256, 256, 256, last_kernel=1),
          _stage(512, 512, 512, last_kernel=1), _stage(512, 512, 512, last_kernel=1)),
    "D": (_stage(64, 64), _stage(128, 128), _stage(256, 256, 256), _stage(512, 512, 512),
          _stage(512, 512, 512)),
    "E": (_stage(64, 64), _stage(128, 128), _stage(256, 256, 256, 256), _stage(512, 512, 512, 512),
          _stage(512, 512, 512, 512)),
}
CONFIGS["A_lrn"] = CONFIGS["A"]


def stages_for(config_name: str, layers: Any = ()) -> tuple[tuple[tuple[int, int], ...], ...]:
  if layers:
    return tuple(tuple((int(f), int(k)) for f, k in stage) for stage in layers)
  if config_name not in CONFIGS:
    raise ValueError(f"Unknown VGG configuration {config_name!r}; known: {', '.join(CONFIGS)}.")
  return CONFIGS[config_name]


def pair_3x3_into_5x5(stages):
  """Each pair of consecutive 3x3 convs in a stage -> one 5x5 conv (see the module docstring)."""
  out = []
  for stage in stages:
    new, pending = [], None
    for features, kernel in stage:
      if kernel != 3:
        if pending:
          new.append(pending)
          pending = None
        new.append((features, kernel))
      elif pending is None:
        pending = (features, 3)
      else:
        new.append((features, 5))
        pending = None
    if pending:
      new.append(pending)
    out.append(tuple(new))
  return tuple(out)


class FC(nn.Module):
  """A fully connected layer over a window x window x C map, or the same weights as a convolution.

  The kernel is stored as a (window*window*C, features) matrix either way. `conv=False` takes the
  flattened map; `conv=True` slides it over an NHWC map as a window x window VALID convolution.
  """

  features: int
  window: int = 1
  conv: bool = False
  kernel_init: Callable[..., Any] = nn.initializers.glorot_uniform()
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.conv:
      if min(x.shape[1:3]) < self.window:
        raise ValueError(f"dense evaluation needs a map of at least {self.window}x{self.window}, got "
                         f"{x.shape[1]}x{x.shape[2]} (input too small).")
      fan_in = self.window * self.window * x.shape[-1]
    else:
      fan_in = x.shape[-1]
    kernel = self.param("kernel", self.kernel_init, (fan_in, self.features), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
    dtype = self.dtype or x.dtype
    x, kernel, bias = x.astype(dtype), kernel.astype(dtype), bias.astype(dtype)
    if not self.conv:
      return x @ kernel + bias
    kernel = kernel.reshape(self.window, self.window, x.shape[-1], self.features)
    y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias


@register("vgg")
class VGG(nn.Module):
  """VGG A-E (Simonyan & Zisserman 2015 Table 1); fields described in the module docstring."""

  # Valid values of the enumerated fields (checked by classic.models.check_config before a run starts).
  CHOICES = {"config_name": tuple(CONFIGS)}

  num_classes: int = 1000
  config_name: str = "D"
  layers: Any = ()
  bn: bool = False
  lrn: bool | None = None
  fully_conv: bool = False
  conv5x5: bool = False
  adaptive_pool: int = 0
  dropout: float = 0.5
  bn_group_size: int = 0
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    stages = stages_for(self.config_name, self.layers)
    if self.conv5x5:
      stages = pair_3x3_into_5x5(stages)
    lrn = self.config_name == "A_lrn" if self.lrn is None else self.lrn
    init = nn.initializers.glorot_uniform()
    for s, stage in enumerate(stages):
      for j, (features, kernel) in enumerate(stage):
        x = Conv(features, (kernel, kernel), padding=symmetric(kernel // 2), kernel_init=init,
                 dtype=self.dtype, name=f"conv{s + 1}_{j + 1}")(x)
        if self.bn:
          x = BatchNorm(group_size=self.bn_group_size, dtype=self.dtype,
                        name=f"bn{s + 1}_{j + 1}")(x, train)
        x = relu(x)
        if lrn and s == 0 and j == 0:
          x = LocalResponseNorm()(x)
      x = caffe_pool(x, "max", 2, 2)
      self.sow("intermediates", f"stage{s + 1}_out", x)
    if self.adaptive_pool:
      x = adaptive_avg_pool(x, self.adaptive_pool)

    conv = self.fully_conv
    if not conv:
      x = x.reshape(x.shape[0], -1)
    window = self.adaptive_pool or 7
    for i, (features, w) in enumerate([(4096, window), (4096, 1), (self.num_classes, 1)]):
      x = FC(features, w, conv, init, self.dtype, name=f"fc{i + 6}")(x)
      if i < 2:
        x = nn.Dropout(self.dropout, deterministic=not train)(relu(x))
    if conv:
      x = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    return x.astype(jnp.float32)


# Table 1's columns; the depth names as torchvision and Keras use them (C has none: vgg16_1x1).
# Table 2's parameters; Table 3's errors at one training and test scale, S = Q = 256 (the recipe's S).
_REFERENCES = {"A": ("133M", 29.6, 10.4), "A_lrn": ("133M", 29.7, 10.5), "B": ("133M", 28.7, 9.9),
               "C": ("134M", 28.1, 9.4), "D": ("138M", 27.0, 8.8), "E": ("144M", 27.3, 9.0)}
for _name, _column in (("vgg11", "A"), ("vgg11_lrn", "A_lrn"), ("vgg13", "B"), ("vgg16_1x1", "C"),
                       ("vgg16", "D"), ("vgg19", "E")):
  _params, _top1, _top5 = _REFERENCES[_column]
  variant(_name, "vgg", reference=Reference("Simonyan & Zisserman 2015, Tables 2 and 3", params=_params, top1_err=_top1,
                                            top5_err=_top5, protocol="single scale S = Q = 256, ILSVRC-2012 val"),
          config_name=_column, lrn=_column == "A_lrn")
  variant(f"{_name}_bn", "vgg", config_name=_column, lrn=_column == "A_lrn", bn=True)
