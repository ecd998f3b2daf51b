"""The deviation switches the converters use: defaults unchanged, each switch does what it says."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from classic import models


def n_params(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def shapes(module, size):
  return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, size, size, 3))))


def _fast(f, *args):
  """jit(f)(*args) without XLA's expensive passes (compilation is the cost here)."""
  return jax.jit(f).lower(*args).compile(compiler_options={
      "xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True})(*args)


def forward(module, size, variables=None, seed=0):
  x = jax.random.normal(jax.random.key(seed), (1, size, size, 3))
  if variables is None:
    abstract = shapes(module, size)
    rng = np.random.default_rng(seed)
    variables = jax.tree.map(lambda s: jnp.asarray(rng.uniform(0.5, 1.5, s.shape) if len(s.shape) == 1
                                                   else rng.normal(0, np.sqrt(2 / np.prod(s.shape[:-1])),
                                                                   s.shape), jnp.float32), abstract)
  return variables, np.asarray(_fast(lambda v, x: module.apply(v, x), variables, x))


def test_resnet_bn_epsilon():
  resnet = models.get_class("resnet")
  assert resnet().bn_epsilon == 1e-5 and resnet().preact_layout == "paper"
  variables, a = forward(resnet(depth=18, num_classes=5), 32)
  stats = jax.tree.map(lambda v: v * 0 + 1e-4, variables["batch_stats"])   # tiny variances
  variables = {**variables, "batch_stats": stats}
  _, a = forward(resnet(depth=18, num_classes=5), 32, variables)
  _, b = forward(resnet(depth=18, num_classes=5, bn_epsilon=1e-3), 32, variables)
  assert not np.allclose(a, b)


def test_resnet_keras_preact_layout():
  resnet = models.get_class("resnet")
  paper = shapes(resnet(depth=50, preact=True), 64)["params"]
  keras = shapes(resnet(depth=50, preact=True, preact_layout="keras", stride_on_3x3=True), 64)["params"]
  assert "stem_bn" in paper and "stem_bn" not in keras and "bias" in keras["stem_conv"]
  # every stage's first block projects (stride 1), the strided last blocks keep identity shortcuts
  assert all("proj" in keras[f"stage{s}_block1"] for s in range(1, 5))
  assert "proj" not in keras["stage1_block3"] and "bias" in keras["stage1_block1"]["proj"]
  assert "bias" in keras["stage2_block1"]["conv2"] and "bias" not in keras["stage2_block1"]["conv1"]
  # the same count but for the biases: Keras has no stem BN but pre-activates stage 1's first block;
  # the paper's layout has the stem's BN instead (64 channels either way)
  assert "preact_bn" in keras["stage1_block1"] and "preact_bn" not in paper["stage1_block1"]
  biases = sum(int(np.prod(v["conv2"]["bias"].shape)) for k, v in keras.items() if "conv2" in v) + \
      sum(int(np.prod(v["proj"]["bias"].shape)) for k, v in keras.items() if "proj" in v) + 64
  assert n_params(keras) == n_params(paper) + biases
  with pytest.raises(ValueError, match="preact_layout must be one of 'paper', 'keras', got 'tf'"):
    shapes(resnet(depth=50, preact=True, preact_layout="tf"), 64)


def test_googlenet_pool4_window_and_bn_epsilon():
  googlenet = models.get_class("googlenet")
  assert googlenet().pool4_window == 3 and googlenet().bn_epsilon == 1e-5
  common = dict(bn=True, lrn=False, branch5x5_kernel=3, ceil_pool=True, aux_heads=False, num_classes=4)
  variables, a = forward(googlenet(**common), 96)
  _, b = forward(googlenet(**common, pool4_window=2), 96, variables)
  _, c = forward(googlenet(**common, bn_epsilon=1e-3), 96, variables)
  assert a.shape == b.shape == c.shape and not np.allclose(a, b) and not np.allclose(a, c)


def test_inception_v3_count_include_pad():
  v3 = models.get_class("inception_v3")
  assert not v3().count_include_pad
  variables, a = forward(v3(aux_heads=False, num_classes=4), 75)
  _, b = forward(v3(aux_heads=False, num_classes=4, count_include_pad=True), 75, variables)
  assert not np.allclose(a, b)


def test_inception_v4_tf_slim_layout_has_the_same_layers_in_timms_order():
  v4 = models.get_class("inception_v4")
  assert v4().layout == "paper"
  paper = shapes(v4(), 299)["params"]
  slim = shapes(v4(layout="tf_slim"), 299)["params"]
  assert n_params(paper) == n_params(slim) == 42_679_816
  # the pooling branch last: Inception-A's avg-pool + 1x1 is branch 3, reductions' max pool last
  assert slim["inception_a1"]["branch3"]["conv1"]["conv"]["kernel"].shape == (1, 1, 384, 96)
  assert paper["inception_a1"]["branch0"]["conv1"]["conv"]["kernel"].shape == (1, 1, 384, 96)
  assert set(slim["reduction_a"]) == {"branch0", "branch1"}
  assert slim["stem2"]["branch1"]["conv1"]["conv"]["kernel"].shape[:2] == (1, 7)
  assert paper["stem2"]["branch1"]["conv1"]["conv"]["kernel"].shape[:2] == (7, 1)
  assert slim["inception_b1"]["branch2"]["conv1"]["conv"]["kernel"].shape[:2] == (7, 1)
  with pytest.raises(ValueError, match="'paper' or 'tf_slim'"):
    shapes(v4(layout="keras"), 299)


def test_inception_resnet_v2_tf_slim_reductions_pool_last():
  irv2 = models.get_class("inception_resnet_v2")
  slim = shapes(irv2(layout="tf_slim", blocks=(1, 1, 1)), 299)["params"]
  assert set(slim["reduction_a"]) == {"branch0", "branch1"}           # max pool is branch 2
  assert slim["reduction_a"]["branch0"]["conv0"]["conv"]["kernel"].shape == (3, 3, 320, 384)
  assert set(slim["reduction_b"]) == {"branch0", "branch1", "branch2"}  # max pool is branch 3
