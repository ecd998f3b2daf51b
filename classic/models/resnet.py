"""ResNet v1 and its plain counterparts (He et al. 2015), pre-activation ResNet v2 (He et al. 2016).

One module covers the family; the paper's design choices are fields:
- `depth` picks the layout: ImageNet depths 18/34/50/101/152/200 (He et al. 2015 Table 1) with the
  7x7 stem, or CIFAR depths 6n+2 (20, 32, 44, 56, 110, 1202; §4.2) with 3x3 basic blocks of widths
  16/32/64, or 9n+2 (164, 1001) with bottleneck blocks (He et al. 2016 §4).
- `residual=False` gives the plain net of the same depth: the same layers without the shortcuts.
- `shortcut`: 'A' zero-padded identity, 'B' projection where the shape changes, 'C' all projections.
- `preact=True` gives ResNet v2: BN-ReLU-conv ordering, identity shortcuts kept clean (2016, Fig. 4e).
  The ImageNet stem ends in BN-ReLU and max pooling, so the first block of stage 1 takes its
  activation from the stem and pre-activates nothing ("right after conv1 and before splitting into
  two paths", He et al. 2016 appendix; fb.resnet.torch's preresnet.lua, 'no_preact'); every other
  stage's first block pre-activates before the split (its projection shortcut reads the activation).
  The CIFAR stem is a bare conv, so there stage 1's first block pre-activates too.
- `stride_on_3x3=True` puts the bottleneck's stride on its 3x3 conv (torchvision's "v1.5"); the
  paper puts it on the first 1x1 (default).
- `bn_epsilon`: 1e-5 (Torch, Caffe); Keras' ResNets use 1.001e-5.
- `preact_layout` (with `preact=True`): 'paper' (default, He et al. 2016 and fb.resnet.torch), or
  'keras' for keras.applications' ResNet50V2/101V2/152V2 (after TF-slim's resnet_v2): the stem is a
  7x7/2 conv with a bias and no BN-ReLU, then a 3x3/2 max pool over zero padding; each stage's *last*
  block (not its first; none in the last stage) carries the stride (on the 3x3 conv with
  `stride_on_3x3=True`, as Keras), with a subsampled identity shortcut (Keras' 1x1/stride max
  pool); each stage's first block projects from its pre-activation with a stride-1 1x1 conv; the
  projection and each block's last 1x1 conv have biases. (Keras' v1 ResNets have a bias on every
  conv before a BN: the converters fold it into the BN's running mean, which is exact, so v1 needs
  no switch beyond `bn_epsilon`.)
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from classic.models import Reference, register, variant
from classic.models.layers import (BatchNorm, Conv, ConvBN, fusion_barrier, he_normal, max_pool, relu,
                                   symmetric)

# The enumerated fields' values (ResNet.CHOICES, checked before a run starts).
STEMS = ("imagenet", "cifar")
SHORTCUTS = ("A", "B", "C")        # He et al. 2015 §4.1: zero-padding, projections where needed, all projections
PREACT_LAYOUTS = ("paper", "keras")

IMAGENET_STAGES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}


def layout(depth: int, stem: str) -> tuple[str, tuple[int, ...]]:
  """(block type, blocks per stage) for a depth, as in the papers' tables."""
  if stem == "imagenet":
    if depth not in IMAGENET_STAGES:
      raise ValueError(f"ImageNet ResNet depth must be one of {sorted(IMAGENET_STAGES)}, got {depth}.")
    return IMAGENET_STAGES[depth]
  if stem != "cifar":
    raise ValueError(f"stem must be one of {', '.join(map(repr, STEMS))}, got {stem!r}.")
  if (depth - 2) % 6 == 0 and depth not in (164, 1001):
    return "basic", ((depth - 2) // 6,) * 3
  if (depth - 2) % 9 == 0:
    return "bottleneck", ((depth - 2) // 9,) * 3
  raise ValueError(f"CIFAR ResNet depth must be 6n+2 (basic) or 9n+2 (bottleneck), got {depth}.")


class Block(nn.Module):
  """A basic (two 3x3) or bottleneck (1x1, 3x3, 1x1 x4) block, post- or pre-activation."""

  features: int
  strides: int
  bottleneck: bool
  residual: bool
  shortcut: str
  preact: bool
  first_in_stage: bool
  stride_on_3x3: bool = False
  bn_group_size: int = 0
  zero_init_last_bn: bool = False
  bn_epsilon: float = 1e-5
  keras_v2: bool = False          # ResNet.preact_layout == 'keras'
  stem_activated: bool = False    # preact: the input is already BN-ReLU'd (stage 1's first block after
                                  # the ImageNet stem), so the block pre-activates nothing
  deleted: bool = False           # lesion (Veit et al. 2016): only the shortcut path remains
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    if self.deleted:
      return self._lesioned(x, train)
    conv = functools.partial(ConvBN, bn_group_size=self.bn_group_size, bn_epsilon=self.bn_epsilon,
                             dtype=self.dtype)
    bn = functools.partial(BatchNorm, group_size=self.bn_group_size, epsilon=self.bn_epsilon,
                           dtype=self.dtype)
    out_features = self.features * 4 if self.bottleneck else self.features
    if self.bottleneck:
      s1, s3 = (1, self.strides) if self.stride_on_3x3 else (self.strides, 1)
      specs = [(self.features, 1, s1), (self.features, 3, s3), (out_features, 1, 1)]
    else:
      specs = [(self.features, 3, self.strides), (self.features, 3, 1)]

    if self.preact:
      pre = x if self.stem_activated else relu(bn(name="preact_bn")(x, train))
      shortcut_in = pre if self.first_in_stage else x
      y = pre
      for i, (f, k, s) in enumerate(specs):
        if i:
          y = relu(bn(name=f"bn{i}")(y, train))
        y = Conv(f, (k, k), s, padding=symmetric(k // 2), kernel_init=he_normal, dtype=self.dtype,
                 use_bias=self.keras_v2 and i == len(specs) - 1, name=f"conv{i}")(y)
    else:
      shortcut_in = x
      y = x
      for i, (f, k, s) in enumerate(specs):
        last = i == len(specs) - 1
        y = conv(f, (k, k), s, padding=symmetric(k // 2), act=None if last else relu,
                 bn_scale_init=nn.initializers.zeros if (last and self.zero_init_last_bn)
                 else nn.initializers.ones, name=f"unit{i}")(y, train)

    if not self.residual:
      return y if self.preact else relu(y)
    y = y + self._shortcut(shortcut_in, out_features, train)
    return fusion_barrier(y if self.preact else relu(y))  # see layers.fusion_barrier

  def _lesioned(self, x: jax.Array, train: bool) -> jax.Array:
    """The block with its residual branch deleted (Veit et al. 2016 §4): the shortcut alone. A plain
    block, which has no shortcut, becomes the identity (option A where the shape changes)."""
    out_features = self.features * 4 if self.bottleneck else self.features
    if not self.residual:
      return option_a(x, self.strides, out_features)
    shortcut_in = x
    if self.preact and self.first_in_stage:
      bn = BatchNorm(group_size=self.bn_group_size, epsilon=self.bn_epsilon, dtype=self.dtype,
                     name="preact_bn")
      shortcut_in = relu(bn(x, train))
    y = self._shortcut(shortcut_in, out_features, train)
    return y if self.preact else relu(y)

  def _shortcut(self, x: jax.Array, out_features: int, train: bool) -> jax.Array:
    if self.keras_v2 and x.shape[-1] == out_features and self.shortcut != "C":
      return x[:, :: self.strides, :: self.strides, :]   # Keras' MaxPooling2D(1, strides)
    changes_shape = self.strides != 1 or x.shape[-1] != out_features
    if self.shortcut == "C" or (self.shortcut == "B" and changes_shape):
      if self.preact:
        return Conv(out_features, (1, 1), self.strides, use_bias=self.keras_v2,
                    kernel_init=he_normal, dtype=self.dtype, name="proj")(x)
      return ConvBN(out_features, (1, 1), self.strides, padding="VALID", act=None,
                    bn_group_size=self.bn_group_size, bn_epsilon=self.bn_epsilon, dtype=self.dtype,
                    name="proj")(x, train)
    if not changes_shape:
      return x
    if self.shortcut != "A":
      raise ValueError(f"shortcut must be one of {', '.join(map(repr, SHORTCUTS))}, got {self.shortcut!r}.")
    return option_a(x, self.strides, out_features)


def option_a(x: jax.Array, strides: int, out_features: int) -> jax.Array:
  """Option A: identity on a strided grid, the extra channels zero (He et al. 2015 §3.3)."""
  x = x[:, ::strides, ::strides, :]
  extra = out_features - x.shape[-1]
  return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))


def block_names(depth: int, stem: str) -> list[str]:
  """The blocks' names in order ('stage1_block1', ...), as in the parameter tree."""
  return [f"stage{s + 1}_block{b + 1}" for s, n in enumerate(layout(depth, stem)[1]) for b in range(n)]


@register("resnet")
class ResNet(nn.Module):
  """ResNet v1/v2 or plain net. See the module docstring for the fields' papers and tables."""

  # Valid values of the enumerated fields (checked by classic.models.check_config before a run starts).
  CHOICES = {"stem": STEMS, "shortcut": SHORTCUTS, "preact_layout": PREACT_LAYOUTS}

  @staticmethod
  def unused_fields(fields) -> dict[str, str]:
    """Fields these values of the others make inert: {field: why} (an override of one is refused)."""
    unused = {}
    if not fields["residual"]:
      unused["shortcut"] = "a plain net (residual=False) has no shortcuts"
    if not fields["preact"]:
      unused["preact_layout"] = "it only places the pre-activations of preact=True nets"
    return unused

  depth: int = 50
  num_classes: int = 1000
  stem: str = "imagenet"          # 'imagenet' (7x7/2 conv + 3x3/2 max pool) or 'cifar' (3x3 conv)
  width: int = 0                  # channels of the first stage; 0 = 64 (ImageNet) or 16 (CIFAR)
  residual: bool = True
  shortcut: str = "B"
  preact: bool = False
  stride_on_3x3: bool = False
  zero_init_last_bn: bool = False
  bn_group_size: int = 0
  bn_epsilon: float = 1e-5
  preact_layout: str = "paper"    # with preact=True: 'paper' or 'keras' (see the module docstring)
  remat: bool = False             # recompute each block's activations in the backward pass
  scan_blocks: bool = False       # run each stage's identical blocks as one nn.scan (see _ScanBody)
  lesion: tuple[str, ...] = ()    # blocks ('stage2_block3', ...) whose residual branch is deleted
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    block_type, stages = layout(self.depth, self.stem)
    if self.preact_layout not in PREACT_LAYOUTS:
      raise ValueError(f"preact_layout must be one of {', '.join(map(repr, PREACT_LAYOUTS))}, got {self.preact_layout!r}.")
    keras_v2 = self.preact and self.preact_layout == "keras"
    bn = functools.partial(BatchNorm, group_size=self.bn_group_size, epsilon=self.bn_epsilon,
                           dtype=self.dtype)
    width = self.width or (64 if self.stem == "imagenet" else 16)
    if self.stem == "imagenet":
      if self.preact:
        x = Conv(width, (7, 7), 2, padding=symmetric(3), use_bias=keras_v2, kernel_init=he_normal,
                 dtype=self.dtype, name="stem_conv")(x)
        if keras_v2:  # no BN-ReLU: Keras pools the raw conv output over zero padding
          x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        else:
          x = relu(bn(name="stem_bn")(x, train))
      else:
        x = ConvBN(width, (7, 7), 2, padding=symmetric(3), bn_group_size=self.bn_group_size,
                   bn_epsilon=self.bn_epsilon, dtype=self.dtype, name="stem")(x, train)
      x = max_pool(x, (3, 3), (2, 2), padding="VALID" if keras_v2 else ((1, 1), (1, 1)))
    elif self.preact:
      x = Conv(width, (3, 3), 1, padding=symmetric(1), use_bias=False, kernel_init=he_normal,
               dtype=self.dtype, name="stem_conv")(x)
    else:
      x = ConvBN(width, (3, 3), 1, padding=symmetric(1), bn_group_size=self.bn_group_size,
                 bn_epsilon=self.bn_epsilon, dtype=self.dtype, name="stem")(x, train)

    block_cls = nn.remat(Block, static_argnums=(2,)) if self.remat else Block
    names = block_names(self.depth, self.stem)
    unknown = sorted(set(self.lesion) - set(names))
    if unknown:
      raise ValueError(f"lesion: no block named {unknown}; this net's blocks are {', '.join(names)}.")
    if self.lesion and self.scan_blocks:
      raise ValueError("lesion needs scan_blocks=False (a lesion deletes one block of a scanned run).")
    for stage, blocks in enumerate(stages):
      specs = []
      for b in range(blocks):
        if keras_v2:  # the stride in each stage's last block, the last stage's excepted
          strides = 2 if (stage < len(stages) - 1 and b == blocks - 1) else 1
        else:
          strides = 2 if (stage > 0 and b == 0) else 1
        specs.append(dict(
            features=width * 2**stage, strides=strides,
            bottleneck=block_type == "bottleneck", residual=self.residual, shortcut=self.shortcut,
            preact=self.preact, first_in_stage=b == 0, stride_on_3x3=self.stride_on_3x3,
            bn_group_size=self.bn_group_size, zero_init_last_bn=self.zero_init_last_bn,
            bn_epsilon=self.bn_epsilon, keras_v2=keras_v2, dtype=self.dtype,
            stem_activated=(self.preact and not keras_v2 and self.stem == "imagenet" and stage == 0
                            and b == 0),
            deleted=f"stage{stage + 1}_block{b + 1}" in self.lesion))
      b = 0
      while b < blocks:
        run = 1
        while self.scan_blocks and b + run < blocks and specs[b + run] == specs[b]:
          run += 1
        if run > 1:  # identical blocks: one scanned body, parameters stacked on a leading axis
          x, _ = nn.scan(_ScanBody, variable_axes={"params": 0, "batch_stats": 0},
                         split_rngs={"params": True}, length=run)(
              block=specs[b], remat=self.remat, train=train,
              name=f"stage{stage + 1}_blocks{b + 1}to{b + run}")(x, None)
        else:
          x = block_cls(**specs[b], name=f"stage{stage + 1}_block{b + 1}")(x, train)
        b += run
    if self.preact:
      x = relu(bn(name="final_bn")(x, train))
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


def scan_params(unrolled: dict, scanned_shapes: dict) -> dict:
  """Per-block variables (`stage<s>_block<i>`) stacked into a `scan_blocks=True` model's layout.

  `scanned_shapes` is the scanned model's variable tree (e.g. from `jax.eval_shape(model.init, ...)`);
  each `stage<s>_blocks<i>to<j>/block` entry is filled by stacking blocks i..j of `unrolled`.
  Collections (params, batch_stats) are converted alike.
  """
  import re
  out = {}
  for name, sub in scanned_shapes.items():
    m = re.fullmatch(r"stage(\d+)_blocks(\d+)to(\d+)", name)
    if m:
      s, i, j = map(int, m.groups())
      blocks = [unrolled[f"stage{s}_block{b}"] for b in range(i, j + 1)]
      out[name] = {"block": jax.tree.map(lambda *xs: jnp.stack(xs), *blocks)}
    elif isinstance(sub, dict) and name in unrolled:
      out[name] = scan_params(unrolled[name], sub) if name in ("params", "batch_stats") else unrolled[name]
    else:
      out[name] = unrolled[name]
  return out


class _ScanBody(nn.Module):
  """A run of identical blocks as one `nn.scan` body: compiles once per stage, not once per block.

  Parameters of the run's blocks are stacked on a leading axis under `stage<s>_blocks<i>to<j>`
  (`scan_params` converts a per-block tree into this layout). On XLA:CPU the loop boundary also
  stops the residual stream's element-wise chain from being re-fused into each block's backward
  pass, which otherwise grows quadratically with the blocks per stage.
  """

  block: dict
  remat: bool
  train: bool

  @nn.compact
  def __call__(self, x, _):
    cls = nn.remat(Block, static_argnums=(2,)) if self.remat else Block
    return cls(**self.block, name="block")(x, self.train), None


# Named variants. ImageNet (He et al. 2015 Table 1; 2016 for pre-activation), 1,000 classes.
# He et al. 2015: Table 1's FLOPs (multiply-adds), Table 2's top-1 (plain and option-A nets) and
# Table 3's top-1/top-5 errors, 10-crop testing on ILSVRC-2012 val; Table 6 on CIFAR-10.
_TEN_CROP = "10-crop testing, ILSVRC-2012 val"
_IMAGENET_REFERENCES = {
    "resnet18": Reference("He et al. 2015, Table 1", macs="1.8G"),
    "resnet34": Reference("He et al. 2015, Tables 1 and 3 (option B)", macs="3.6G", top1_err=24.52, top5_err=7.46,
                          protocol=_TEN_CROP),
    "resnet50": Reference("He et al. 2015, Tables 1 and 3", macs="3.8G", top1_err=22.85, top5_err=6.71, protocol=_TEN_CROP),
    "resnet101": Reference("He et al. 2015, Tables 1 and 3", macs="7.6G", top1_err=21.75, top5_err=6.05, protocol=_TEN_CROP),
    "resnet152": Reference("He et al. 2015, Tables 1 and 3", macs="11.3G", top1_err=21.43, top5_err=5.71, protocol=_TEN_CROP),
    "plain18": Reference("He et al. 2015, Tables 1 and 2", macs="1.8G", top1_err=27.94, protocol=_TEN_CROP),
    "plain34": Reference("He et al. 2015, Tables 1 and 2", macs="3.6G", top1_err=28.54, protocol=_TEN_CROP),
    "resnet18_a": Reference("He et al. 2015, Table 2 (option A: plain18's parameters)", macs="1.8G", top1_err=27.88,
                            protocol=_TEN_CROP),
    "resnet34_a": Reference("He et al. 2015, Tables 2 and 3 (option A: plain34's parameters)", macs="3.6G",
                            top1_err=25.03, top5_err=7.76, protocol=_TEN_CROP),
}
_CIFAR_REFERENCES = {  # depth: (params as stated, test error %)
    20: ("0.27M", 8.75), 32: ("0.46M", 7.51), 44: ("0.66M", 7.17), 56: ("0.85M", 6.97), 110: ("1.7M", 6.43),
    1202: ("19.4M", 7.93)}

for _d in (18, 34, 50, 101, 152):
  variant(f"resnet{_d}", "resnet", reference=_IMAGENET_REFERENCES.get(f"resnet{_d}"), depth=_d)
for _d in (18, 34):
  variant(f"plain{_d}", "resnet", reference=_IMAGENET_REFERENCES[f"plain{_d}"], depth=_d, residual=False)
  # Table 2 / Fig. 4's residual twins: option A (zero-padded identity), "no extra parameter compared
  # to the plain counterparts"; Table 3's resnet18/34 use option B.
  variant(f"resnet{_d}_a", "resnet", reference=_IMAGENET_REFERENCES[f"resnet{_d}_a"], depth=_d, shortcut="A")
for _d in (18, 34, 50, 101, 152, 200):
  variant(f"preact{_d}", "resnet", depth=_d, preact=True)
# CIFAR-10 (2015 §4.2: option-A shortcuts; 2016: pre-activation with projections), 10 classes.
for _d in (20, 32, 44, 56, 110, 1202):
  variant(f"resnet{_d}", "resnet", (32, 32, 3), reference=Reference(
      "He et al. 2015, Table 6", params=_CIFAR_REFERENCES[_d][0], top1_err=_CIFAR_REFERENCES[_d][1],
      protocol="CIFAR-10 test" + (": best of 5 runs, mean 6.61 ± 0.16" if _d == 110 else "")),
      depth=_d, stem="cifar", shortcut="A", num_classes=10)
for _d in (20, 32, 44, 56, 110):
  variant(f"plain{_d}", "resnet", (32, 32, 3), depth=_d, stem="cifar", shortcut="A", residual=False, num_classes=10)
_PREACT_REFERENCES = {
    164: Reference("He et al. 2016, Table 2", params="1.7M"),
    1001: Reference("He et al. 2016, Table 2", params="10.2M",
                    differs="10.33M with BatchNorm's scale and bias, 10.18M without: the paper excludes BN")}
for _d in (110, 164, 1001):
  variant(f"preact{_d}", "resnet", (32, 32, 3), reference=_PREACT_REFERENCES.get(_d), depth=_d, stem="cifar",
          preact=True, num_classes=10)
