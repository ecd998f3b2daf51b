"""Inception-v4, Inception-ResNet-v1 and Inception-ResNet-v2: Szegedy, Ioffe, Vanhoucke & Alemi 2016,
"Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning".

- 'inception_v4' (Fig. 9): the Fig. 3 stem (299x299 -> 35x35x384), 4x Inception-A (Fig. 4),
  Reduction-A (Fig. 7, k,l,m,n = 192,224,256,384; -> 17x17x1024), 7x Inception-B (Fig. 5),
  Reduction-B (Fig. 8; -> 8x8x1536), 3x Inception-C (Fig. 6), average pooling, dropout (keep 0.8),
  softmax. 42,679,816 parameters with 1000 classes, the count of timm's / Cadene's `inception_v4`.
  Its field `layout`: 'paper' (default) concatenates the branches in the figures' order, pooling
  branch first; 'tf_slim' is TF-slim's `inception_v4.py` as timm ports it, the same layers with the
  pooling branch last in every module and reduction, and the other order of some asymmetric pairs
  (the stem's 1x7/7x1 pair; Inception-B's double branch 7x1 first; Inception-C's second branch
  3x1 then 1x3, its final pair 1x3 beside 3x1). The orders matter only to load weights.
- 'inception_resnet_v1' (Fig. 15): the Fig. 14 stem (-> 35x35x256), 5x Inception-ResNet-A (Fig. 10),
  Reduction-A (k,l,m,n = 192,192,256,384; -> 17x17x896), 10x Inception-ResNet-B (Fig. 11),
  Reduction-B (Fig. 12; -> 8x8x1792), 5x Inception-ResNet-C (Fig. 13), pool, dropout, softmax.
- 'inception_resnet_v2' (Fig. 15) in two layouts, the field `layout`:
  * 'paper': the Fig. 3 stem (-> 35x35x384), 5x IR-A (Fig. 16), Reduction-A (k,l,m,n =
    256,256,384,384; -> 17x17x1152), 10x IR-B (Fig. 17), Reduction-B (Fig. 18; -> 8x8x2144),
    5x IR-C (Fig. 19), pool, dropout, softmax. Figs. 17 and 19 print the residual branch's last 1x1 as
    1154 and 2048 channels, which cannot be added to the 1152 and 2144 channels that Figs. 7 and 18
    produce; here every residual branch's 1x1 projects back to its input width.
  * 'tf_slim': the network of TF-slim's `inception_resnet_v2.py`, which timm and Keras also build: stem
    conv 3x3/2 32, 3x3 32, 3x3 64, max pool, 1x1 80, 3x3 192, max pool, then the 'mixed_5b' Inception
    module (-> 35x35x320); block35 (IR-A) to 320 channels, Reduction-A ('mixed_6a', -> 1088), block17
    (IR-B) at 1088, Reduction-B ('mixed_7a', -> 2080), block8 (IR-C) at 2080 with the last one
    unscaled and without ReLU, then 'conv2d_7b' 1x1 conv to 1536 channels before the pool. Its
    reductions concatenate the pooling branch last, as TF-slim does (the paper layout: first). With
    `blocks=(10, 20, 10)`, as those implementations use (the `inception_resnet_v2_tf_slim` config), it
    has 55,843,464 parameters with 1000 classes: timm's `inception_resnet_v2` (no auxiliary head).

Residual branches end in a linear 1x1 conv (with bias, no BN, as TF-slim) whose output is multiplied
by `residual_scale` before the addition (§3.3: 0.1-0.3 stabilises training of wide residual Inceptions);
a float scales every block, a 3-tuple scales A, B and C blocks separately (TF-slim: 0.17, 0.10, 0.20).
BN (epsilon 1e-3, as TF) follows every other conv; ReLU everywhere. The auxiliary classifier of
TF-slim's versions is not in the paper's figures and is not built.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from classic.models import Reference, register, variant
from classic.models.inception import ConvSpec, Parallel, PoolSpec, Split, apply_specs
from classic.models.layers import Conv, ConvBN, fusion_barrier, global_avg_pool, relu


# The layer specs of classic/models/inception.py (ConvSpec, PoolSpec, Split), written short as the
# figures print them: conv(features, kh, kw, stride, padding), the stems' and reductions' 3x3/2 'V'
# max pool, the modules' 3x3/1 average pool, and fork(...) for a Split.
def conv(features: int, kh: int, kw: int | None = None, stride: int = 1, padding: str = "same") -> ConvSpec:
  return ConvSpec(features, (kh, kh if kw is None else kw), stride, padding)


def fork(*specs) -> Split:
  return Split(tuple(specs))


LAYOUTS = ("paper", "tf_slim")   # the enumerated `layout` field's values (CHOICES)
MAX_POOL = PoolSpec("max", 3, 2, "valid")   # the 3x3/2 'V' max pool of the stems and reductions
AVG_POOL = PoolSpec("avg", 3, 1, "same")    # the 3x3/1 average pool of the Inception modules
VALID = "valid"


class Chain(nn.Module):
  """Layer specs applied one after another; the building unit of every branch and of the stems."""

  specs: tuple
  bn_group_size: int = 0
  bn_epsilon: float = 1e-3
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    # layer j is 'conv{j}', member k of a Split there 'conv{j}_{k}'; average pools as TF's (padding not counted)
    return apply_specs(self.specs, x, train, count_include_pad=False,
                       conv_bn=dict(bn_group_size=self.bn_group_size, bn_epsilon=self.bn_epsilon, dtype=self.dtype),
                       name=lambda path: "conv" + "_".join(map(str, path)))


class Mixed(nn.Module):
  """Parallel branches (each a Chain of layer specs) concatenated along channels (TF-slim's 'mixed')."""

  branches: tuple
  bn_group_size: int = 0
  bn_epsilon: float = 1e-3
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    return jnp.concatenate(
        [Chain(b, self.bn_group_size, self.bn_epsilon, self.dtype, name=f"branch{i}")(x, train)
         for i, b in enumerate(self.branches)], axis=-1)


class ResidualInception(nn.Module):
  """x + scale * W_1x1 [branches(x)], then ReLU (Figs. 10-13, 16-19)."""

  branches: tuple
  scale: float = 1.0
  activate: bool = True
  bn_group_size: int = 0
  bn_epsilon: float = 1e-3
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    y = Mixed(self.branches, self.bn_group_size, self.bn_epsilon, self.dtype, name="mixed")(x, train)
    y = Conv(x.shape[-1], (1, 1), use_bias=True, dtype=self.dtype, name="up")(y)
    x = x + self.scale * y
    return fusion_barrier(relu(x) if self.activate else x)  # see layers.fusion_barrier


# ---- Inception-v4 (Figs. 3-9) ----
STEM_V4 = (  # Fig. 3: 299x299x3 -> 35x35x384
    (conv(32, 3, stride=2, padding=VALID), conv(32, 3, padding=VALID), conv(64, 3)),
    Parallel(((MAX_POOL,), (conv(96, 3, stride=2, padding=VALID),))),
    Parallel(((conv(64, 1), conv(96, 3, padding=VALID)),
              (conv(64, 1), conv(64, 7, 1), conv(64, 1, 7), conv(96, 3, padding=VALID)))),
    Parallel(((conv(192, 3, stride=2, padding=VALID),), (MAX_POOL,))),
)
INCEPTION_A = ((AVG_POOL, conv(96, 1)), (conv(96, 1),), (conv(64, 1), conv(96, 3)),
               (conv(64, 1), conv(96, 3), conv(96, 3)))                                   # Fig. 4
INCEPTION_B = ((AVG_POOL, conv(128, 1)), (conv(384, 1),),
               (conv(192, 1), conv(224, 1, 7), conv(256, 7, 1)),
               (conv(192, 1), conv(192, 1, 7), conv(224, 7, 1), conv(224, 1, 7), conv(256, 7, 1)))  # Fig. 5
INCEPTION_C = ((AVG_POOL, conv(256, 1)), (conv(256, 1),),
               (conv(384, 1), fork(conv(256, 1, 3), conv(256, 3, 1))),
               (conv(384, 1), conv(448, 1, 3), conv(512, 3, 1),
                fork(conv(256, 3, 1), conv(256, 1, 3))))                                  # Fig. 6
REDUCTION_B_V4 = ((MAX_POOL,), (conv(192, 1), conv(192, 3, stride=2, padding=VALID)),
                  (conv(256, 1), conv(256, 1, 7), conv(320, 7, 1),
                   conv(320, 3, stride=2, padding=VALID)))                                    # Fig. 8


def reduction_a(k: int, l: int, m: int, n: int) -> tuple:
  """Fig. 7: max pool | 3x3/2 n | 1x1 k, 3x3 l, 3x3/2 m."""
  return ((MAX_POOL,), (conv(n, 3, stride=2, padding=VALID),),
          (conv(k, 1), conv(l, 3), conv(m, 3, stride=2, padding=VALID)))


# ---- Inception-ResNet-v1 (Figs. 10-15) ----
STEM_RESNET_V1 = ((conv(32, 3, stride=2, padding=VALID), conv(32, 3, padding=VALID), conv(64, 3),
                   MAX_POOL, conv(80, 1), conv(192, 3, padding=VALID),
                   conv(256, 3, stride=2, padding=VALID)),)                                    # Fig. 14
IR_A_V1 = ((conv(32, 1),), (conv(32, 1), conv(32, 3)), (conv(32, 1), conv(32, 3), conv(32, 3)))  # Fig. 10
IR_B_V1 = ((conv(128, 1),), (conv(128, 1), conv(128, 1, 7), conv(128, 7, 1)))           # Fig. 11
IR_C_V1 = ((conv(192, 1),), (conv(192, 1), conv(192, 1, 3), conv(192, 3, 1)))           # Fig. 13
REDUCTION_B_V1 = ((MAX_POOL,), (conv(256, 1), conv(384, 3, stride=2, padding=VALID)),
                  (conv(256, 1), conv(256, 3, stride=2, padding=VALID)),
                  (conv(256, 1), conv(256, 3), conv(256, 3, stride=2, padding=VALID)))       # Fig. 12

# ---- Inception-ResNet-v2 (Figs. 16-19; Fig. 3 stem) ----
IR_A_V2 = ((conv(32, 1),), (conv(32, 1), conv(32, 3)), (conv(32, 1), conv(48, 3), conv(64, 3)))  # Fig. 16
IR_B_V2 = ((conv(192, 1),), (conv(128, 1), conv(160, 1, 7), conv(192, 7, 1)))           # Fig. 17
IR_C_V2 = ((conv(192, 1),), (conv(192, 1), conv(224, 1, 3), conv(256, 3, 1)))           # Fig. 19
REDUCTION_B_V2 = ((MAX_POOL,), (conv(256, 1), conv(384, 3, stride=2, padding=VALID)),
                  (conv(256, 1), conv(288, 3, stride=2, padding=VALID)),
                  (conv(256, 1), conv(288, 3), conv(320, 3, stride=2, padding=VALID)))       # Fig. 18
STEM_TF_SLIM = (  # TF-slim's stem up to and including 'mixed_5b': 299x299x3 -> 35x35x320
    (conv(32, 3, stride=2, padding=VALID), conv(32, 3, padding=VALID), conv(64, 3), MAX_POOL,
     conv(80, 1, padding=VALID), conv(192, 3, padding=VALID), MAX_POOL),
    Parallel(((conv(96, 1),), (conv(48, 1), conv(64, 5)), (conv(64, 1), conv(96, 3), conv(96, 3)),
              (AVG_POOL, conv(64, 1)))),
)


# ---- TF-slim's branch orders (timm, Keras): the pooling branch last; see the module docstring ----
STEM_V4_TF_SLIM = STEM_V4[:2] + (
    Parallel(((conv(64, 1), conv(96, 3, padding=VALID)),
              (conv(64, 1), conv(64, 1, 7), conv(64, 7, 1), conv(96, 3, padding=VALID)))),
    STEM_V4[3])
INCEPTION_A_TF_SLIM = INCEPTION_A[1:] + INCEPTION_A[:1]
INCEPTION_B_TF_SLIM = (INCEPTION_B[1], INCEPTION_B[2],
                       (conv(192, 1), conv(192, 7, 1), conv(224, 1, 7), conv(224, 7, 1),
                        conv(256, 1, 7)),
                       INCEPTION_B[0])
INCEPTION_C_TF_SLIM = (INCEPTION_C[1], INCEPTION_C[2],
                       (conv(384, 1), conv(448, 3, 1), conv(512, 1, 3),
                        fork(conv(256, 1, 3), conv(256, 3, 1))),
                       INCEPTION_C[0])


def pool_last(branches: tuple) -> tuple:
  """A reduction's branches with the pooling branch (the paper's first) moved last, as TF-slim."""
  return branches[1:] + branches[:1]


def _scales(residual_scale: Any) -> tuple[float, float, float]:
  if isinstance(residual_scale, (int, float)):
    return (float(residual_scale),) * 3
  scales = tuple(float(s) for s in residual_scale)
  if len(scales) != 3:
    raise ValueError(f"residual_scale must be a float or 3 floats (A, B, C), got {residual_scale!r}.")
  return scales


class _Inception(nn.Module):
  """Shared plumbing: stem, three stages separated by two reductions, pooled dropout classifier."""

  def _stem(self, stages, x, train, common):
    """A stem: stages that are a sequence of specs (a Chain) or a Parallel (a Mixed)."""
    for i, stage in enumerate(stages):
      module = Mixed(stage.branches, **common, name=f"stem{i}") if isinstance(stage, Parallel) else \
          Chain(stage, **common, name=f"stem{i}")
      x = module(x, train)
    self.sow("intermediates", "stem_out", x)
    return x

  def _common(self):
    return dict(bn_group_size=self.bn_group_size, bn_epsilon=self.bn_epsilon, dtype=self.dtype)

  def _classify(self, x, train):
    self.sow("intermediates", "features_out", x)
    x = global_avg_pool(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)

  def _check(self):
    if len(self.blocks) != 3 or len(self.reduction_a) != 4:
      raise ValueError(f"blocks needs 3 counts and reduction_a 4 widths (k, l, m, n); got "
                       f"{self.blocks!r} and {self.reduction_a!r}.")


@register("inception_v4")
class InceptionV4(_Inception):
  """Inception-v4 (Fig. 9). `blocks`: Inception-A/B/C repeats; `reduction_a`: Fig. 7's k, l, m, n."""

  # Valid values of the enumerated fields (checked by classic.models.check_config before a run starts).
  CHOICES = {"layout": LAYOUTS}

  num_classes: int = 1000
  layout: str = "paper"            # or 'tf_slim' (timm's branch orders; see the module docstring)
  blocks: tuple = (4, 7, 3)
  reduction_a: tuple = (192, 224, 256, 384)
  dropout_rate: float = 0.2        # keep probability 0.8
  bn_group_size: int = 0
  bn_epsilon: float = 1e-3
  remat: bool = False              # recompute each module's activations in the backward pass
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    self._check()
    if self.layout not in ("paper", "tf_slim"):
      raise ValueError(f"layout must be 'paper' or 'tf_slim', got {self.layout!r}.")
    common = self._common()
    mixed = nn.remat(Mixed, static_argnums=(2,)) if self.remat else Mixed
    if self.layout == "tf_slim":
      x = self._stem(STEM_V4_TF_SLIM, x, train, common)
      stages = ((INCEPTION_A_TF_SLIM, pool_last(reduction_a(*self.reduction_a)), "reduction_a"),
                (INCEPTION_B_TF_SLIM, pool_last(REDUCTION_B_V4), "reduction_b"),
                (INCEPTION_C_TF_SLIM, None, None))
    else:
      x = self._stem(STEM_V4, x, train, common)
      stages = ((INCEPTION_A, reduction_a(*self.reduction_a), "reduction_a"),
                (INCEPTION_B, REDUCTION_B_V4, "reduction_b"), (INCEPTION_C, None, None))
    for (module, reduction, rname), (letter, count) in zip(stages, zip("abc", self.blocks)):
      for b in range(count):
        x = mixed(module, **common, name=f"inception_{letter}{b + 1}")(x, train)
      if reduction is not None:
        x = mixed(reduction, **common, name=rname)(x, train)
        self.sow("intermediates", f"{rname}_out", x)
    return self._classify(x, train)


class _InceptionResNet(_Inception):
  """Stem, residual stages A/B/C with reductions between, optional final 1x1 conv, classifier."""

  def _residual_net(self, x, train, stem, blocks_abc, reduction_b, tf_slim=False):
    self._check()
    common = self._common()
    block = nn.remat(ResidualInception, static_argnums=(2,)) if self.remat else ResidualInception
    mixed = nn.remat(Mixed, static_argnums=(2,)) if self.remat else Mixed
    scales = _scales(self.residual_scale)
    x = self._stem(stem, x, train, common)
    red_a = reduction_a(*self.reduction_a)
    if tf_slim:
      red_a, reduction_b = pool_last(red_a), pool_last(reduction_b)
    reductions = ((red_a, "reduction_a"), (reduction_b, "reduction_b"), None)
    for stage, (branches, count, scale, red) in enumerate(
        zip(blocks_abc, self.blocks, scales, reductions)):
      letter = "abc"[stage]
      for b in range(count):
        last = tf_slim and stage == 2 and b == count - 1  # TF-slim: last block8 unscaled, no ReLU
        x = block(branches, 1.0 if last else scale, not last, **common,
                  name=f"block_{letter}{b + 1}")(x, train)
      if red is not None:
        x = mixed(red[0], **common, name=red[1])(x, train)
        self.sow("intermediates", f"{red[1]}_out", x)
    if tf_slim:
      x = ConvBN(1536, (1, 1), **common, name="conv2d_7b")(x, train)
    return self._classify(x, train)


@register("inception_resnet_v1")
class InceptionResNetV1(_InceptionResNet):
  """Inception-ResNet-v1 (Fig. 15 with Figs. 14, 10, 7, 11, 12, 13)."""

  num_classes: int = 1000
  blocks: tuple = (5, 10, 5)
  reduction_a: tuple = (192, 192, 256, 384)
  residual_scale: Any = (0.17, 0.10, 0.20)   # float, or (A, B, C)
  dropout_rate: float = 0.2
  bn_group_size: int = 0
  bn_epsilon: float = 1e-3
  remat: bool = False
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return self._residual_net(x, train, STEM_RESNET_V1, (IR_A_V1, IR_B_V1, IR_C_V1), REDUCTION_B_V1)


@register("inception_resnet_v2")
class InceptionResNetV2(_InceptionResNet):
  """Inception-ResNet-v2: `layout='paper'` (Figs. 3, 15-19) or 'tf_slim' (see the module docstring)."""

  CHOICES = {"layout": LAYOUTS}

  num_classes: int = 1000
  layout: str = "paper"
  blocks: tuple = (5, 10, 5)                 # TF-slim / timm / Keras: (10, 20, 10)
  reduction_a: tuple = (256, 256, 384, 384)
  residual_scale: Any = (0.17, 0.10, 0.20)
  dropout_rate: float = 0.2
  bn_group_size: int = 0
  bn_epsilon: float = 1e-3
  remat: bool = False
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if self.layout not in ("paper", "tf_slim"):
      raise ValueError(f"layout must be 'paper' or 'tf_slim', got {self.layout!r}.")
    tf_slim = self.layout == "tf_slim"
    return self._residual_net(x, train, STEM_TF_SLIM if tf_slim else STEM_V4,
                              (IR_A_V2, IR_B_V2, IR_C_V2), REDUCTION_B_V2, tf_slim=tf_slim)


_SINGLE_CROP = "single crop, ILSVRC-2012 val"
variant("inception_v4", "inception_v4", (299, 299, 3), reference=Reference(
    "Szegedy et al. 2016, Table 2; timm's parameter count", params="42.68M", top1_err=20.0, top5_err=5.0,
    protocol=_SINGLE_CROP))
variant("inception_resnet_v1", "inception_resnet_v1", (299, 299, 3), reference=Reference(
    "Szegedy et al. 2016, Table 2", top1_err=21.3, top5_err=5.5, protocol=_SINGLE_CROP))
variant("inception_resnet_v2", "inception_resnet_v2", (299, 299, 3), reference=Reference(
    "Szegedy et al. 2016, Table 2", top1_err=19.9, top5_err=4.9, protocol=_SINGLE_CROP))
variant("inception_resnet_v2_tf_slim", "inception_resnet_v2", (299, 299, 3),
        reference=Reference("timm's inception_resnet_v2", params="55.84M"), layout="tf_slim", blocks=(10, 20, 10))
