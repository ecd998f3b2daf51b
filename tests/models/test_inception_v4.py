"""Inception-v4 / Inception-ResNet-v1/v2: parameter counts, grids, block counts, residual scaling, layouts.

Shapes and counts come from `jax.eval_shape` (no compute); the few real passes use weights drawn with
numpy (no initializer compilation), small inputs or trimmed block counts, and XLA's cheapest
optimisation level (compiling these deep graphs, not running them, is the cost on 2 CPU cores).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from classic import models
from configs import inception_v4 as inception_configs


def n_params(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@functools.lru_cache(maxsize=None)
def abstract_run(variant: str, **overrides):
  """(logits, variables) shapes of a variant at 299x299, batch 1, with its intermediates."""
  config = inception_configs.get_config(variant)
  for k, v in overrides.items():
    config.model[k] = v
  module = models.build(config.model)
  return jax.eval_shape(lambda: module.init_with_output(
      jax.random.key(0), jnp.zeros((1, 299, 299, 3)), mutable=True))


def shape_of(variant, key, **overrides):
  return abstract_run(variant, **overrides)[1]["intermediates"][key][0].shape


def run(f, *args):
  """jit(f)(*args), compiled without XLA's expensive optimisations."""
  compiled = jax.jit(f).lower(*args).compile(
      compiler_options={"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True})
  return compiled(*args)


def numpy_variables(module, x):
  """Variables of `module` with He-scaled numpy normals for kernels, BN at its initial state."""
  shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), x))
  rng = np.random.default_rng(0)

  def fill(path, s):
    if len(s.shape) >= 2:
      fan_in = int(np.prod(s.shape[:-1]))
      return jnp.asarray(rng.normal(size=s.shape) * np.sqrt(2.0 / fan_in), jnp.float32)
    key = jax.tree_util.keystr(path)
    return jnp.ones(s.shape) if ("scale" in key or "var" in key) else jnp.zeros(s.shape)

  return jax.tree_util.tree_map_with_path(fill, shapes)


# Inception-v4: 42,679,816 = timm's / Cadene's `inception_v4`. Inception-ResNet-v2 in the TF-slim
# layout: 55,843,464 = timm's `inception_resnet_v2` (no aux head). The paper gives no parameter
# counts; the 'paper' layouts' totals are this implementation's, pinned against silent changes.
@pytest.mark.parametrize("variant,count", [
    ("inception_v4", 42_679_816),
    ("inception_resnet_v2_tf_slim", 55_843_464),
    ("inception_resnet_v1", 22_756_328),
    ("inception_resnet_v2", 32_433_928),
])
def test_parameter_counts(variant, count):
  logits, variables = abstract_run(variant)
  assert logits.shape == (1, 1000)
  assert n_params(variables["params"]) == count


# Figs. 9 and 15: the stem ends at 35x35, Reduction-A at 17x17, Reduction-B at 8x8; channels per Figs.
# 3/14 (stems), 7 (k,l,m,n) and 8/12/18; TF-slim: mixed_5b 320, mixed_6a 1088, mixed_7a 2080.
@pytest.mark.parametrize("variant,channels", [
    ("inception_v4", (384, 1024, 1536)),
    ("inception_resnet_v1", (256, 896, 1792)),
    ("inception_resnet_v2", (384, 1152, 2144)),
    ("inception_resnet_v2_tf_slim", (320, 1088, 2080)),
])
def test_grids_after_stem_and_reductions(variant, channels):
  assert shape_of(variant, "stem_out") == (1, 35, 35, channels[0])
  assert shape_of(variant, "reduction_a_out") == (1, 17, 17, channels[1])
  assert shape_of(variant, "reduction_b_out") == (1, 8, 8, channels[2])


def conv_bn(cin, cout, kh, kw=None):
  return kh * (kw or kh) * cin * cout + 2 * cout  # kernel (no bias) + BN scale and bias


def test_one_more_inception_a_block_adds_one_fig4_module():
  cin = 384
  fig4 = (conv_bn(cin, 96, 1) + conv_bn(cin, 96, 1) + conv_bn(cin, 64, 1) + conv_bn(64, 96, 3)
          + conv_bn(cin, 64, 1) + conv_bn(64, 96, 3) + conv_bn(96, 96, 3))
  more = abstract_run("inception_v4", blocks=(5, 7, 3))[1]["params"]
  assert n_params(more) - 42_679_816 == fig4


def test_block_counts_change_residual_nets_as_expected():
  base = n_params(abstract_run("inception_resnet_v2_tf_slim")[1]["params"])
  # One more block35 at 320 channels: its three branches (Fig. 16) and the 128 -> 320 1x1 with bias.
  block35 = (conv_bn(320, 32, 1) + conv_bn(320, 32, 1) + conv_bn(32, 32, 3) + conv_bn(320, 32, 1)
             + conv_bn(32, 48, 3) + conv_bn(48, 64, 3) + 128 * 320 + 320)
  more = n_params(abstract_run("inception_resnet_v2_tf_slim", blocks=(11, 20, 10))[1]["params"])
  assert more - base == block35
  # The paper layout's (5, 10, 5) vs TF-slim's (10, 20, 10) is most of the 32.4M vs 55.8M gap.
  fewer = n_params(abstract_run("inception_resnet_v2_tf_slim", blocks=(5, 10, 5))[1]["params"])
  assert fewer < base - 20e6


def test_layouts_differ_as_documented():
  paper = abstract_run("inception_resnet_v2")[1]["params"]
  slim = abstract_run("inception_resnet_v2_tf_slim")[1]["params"]
  # TF-slim: stem of 3 convs + max pool + 1x1 80 + 3x3 192 + pool, then mixed_5b; conv2d_7b at the end.
  assert "conv2d_7b" in slim and "conv2d_7b" not in paper
  assert slim["conv2d_7b"]["conv"]["kernel"].shape == (1, 1, 2080, 1536)
  assert slim["stem0"]["conv4"]["conv"]["kernel"].shape == (1, 1, 64, 80)
  assert set(slim["stem1"]) == {"branch0", "branch1", "branch2", "branch3"}  # mixed_5b
  # Paper stem is Fig. 3 (3 branched modules after 3 convs), as Inception-v4's.
  v4 = abstract_run("inception_v4")[1]["params"]
  assert jax.tree.map(lambda a: a.shape, paper["stem3"]) == jax.tree.map(lambda a: a.shape, v4["stem3"])
  # Residual 1x1 widths: the paper layout projects to 384/1152/2144, TF-slim to 320/1088/2080.
  assert paper["block_a1"]["up"]["kernel"].shape == (1, 1, 128, 384)
  assert paper["block_b1"]["up"]["kernel"].shape == (1, 1, 384, 1152)
  assert paper["block_c1"]["up"]["kernel"].shape == (1, 1, 448, 2144)
  assert slim["block_c10"]["up"]["kernel"].shape == (1, 1, 448, 2080)
  assert paper["head"]["kernel"].shape == (2144, 1000) and slim["head"]["kernel"].shape == (1536, 1000)


def test_residual_scale_changes_outputs_not_parameters():
  x = jax.random.normal(jax.random.key(1), (1, 75, 75, 3))  # the smallest input the stems take
  nets = [models.get_class("inception_resnet_v1")(blocks=(1, 1, 1), residual_scale=s)
          for s in ((0.17, 0.10, 0.20), 1.0)]
  shapes = [jax.eval_shape(lambda m=m: m.init(jax.random.key(0), x)) for m in nets]
  assert jax.tree.map(lambda a: a.shape, shapes[0]) == jax.tree.map(lambda a: a.shape, shapes[1])
  variables = numpy_variables(nets[0], x)
  outs = [run(m.apply, variables, x) for m in nets]
  assert outs[0].shape == (1, 1000) and outs[0].dtype == jnp.float32
  assert np.all(np.isfinite(outs[0])) and not np.allclose(outs[0], outs[1], atol=1e-4)


@pytest.mark.slow
def test_real_forward_at_299():
  module = models.build(inception_configs.get_config("inception_v4").model)
  x = jax.random.normal(jax.random.key(1), (1, 299, 299, 3))
  logits = run(module.apply, numpy_variables(module, x), x)
  assert logits.shape == (1, 1000) and logits.dtype == jnp.float32
  assert np.all(np.isfinite(logits)) and float(jnp.std(logits)) > 0


@pytest.mark.slow
def test_train_step_gradients_reach_every_parameter():
  # TF-slim layout trimmed to one block a stage, 75x75, batch 2: BN in training mode, dropout on.
  module = models.get_class("inception_resnet_v2")(layout="tf_slim", blocks=(1, 1, 1), num_classes=5)
  x = jax.random.normal(jax.random.key(1), (2, 75, 75, 3))
  variables = numpy_variables(module, x)

  def loss(params):
    logits, _ = module.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                             train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.key(2)})
    return -jnp.mean(jax.nn.log_softmax(logits)[:, 0])

  grads = run(jax.grad(loss), variables["params"])
  norms = [float(jnp.abs(g).max()) for g in jax.tree.leaves(grads)]
  assert all(np.isfinite(norms)) and all(n > 0 for n in norms)


def test_config_recipe():
  c = inception_configs.get_config("inception_v4")
  o = c.optimizer
  assert (o.name, o.lr, o.rms_decay, o.eps, o.grad_clip) == ("rmsprop", 0.045, 0.9, 1.0, 2.0)
  assert (c.optimizer.schedule, c.optimizer.decay_every, c.optimizer.factor) == ("exponential", 10010, 0.94)
  assert (c.image_size, c.mean, c.std) == (299, (127.5,) * 3, (127.5,) * 3)
  assert inception_configs.get_config("inception_resnet_v2_tf_slim").model.blocks == (10, 20, 10)


def test_unknown_variant_and_layout_fail_with_the_valid_names():
  with pytest.raises(ValueError, match="inception_resnet_v2_tf_slim"):
    inception_configs.get_config("inception_v5")
  module = models.get_class("inception_resnet_v2")(layout="keras")
  with pytest.raises(ValueError, match="'paper' or 'tf_slim'"):
    jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, 299, 299, 3))))
