"""VGG: Table 2 parameter counts, every configuration, dense evaluation, 5x5 factorisation, BN, LRN."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from classic import models
from classic.models.vgg import CONFIGS, VGG, pair_3x3_into_5x5
from configs import vgg as vgg_configs
from tests.models.weights import pool_fill as fill


def build(variant, **overrides):
  config = vgg_configs.get_config(variant)
  for key, value in overrides.items():
    config.model[key] = value
  return models.build(config.model)


def shapes_of(module, size, batch=1):
  return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((batch, size, size, 3))))


def n_params(module, size=224):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes_of(module, size)["params"]))




# Simonyan & Zisserman 2015 Table 2, "number of parameters (in millions)".
@pytest.mark.parametrize("variant,millions", [("A", 133), ("A_lrn", 133), ("B", 133), ("C", 134),
                                              ("D", 138), ("E", 144)])
def test_param_counts_match_table2(variant, millions):
  assert round(n_params(build(variant)) / 1e6) == millions


@pytest.mark.parametrize("variant,count", [
    ("vgg11", 132_863_336), ("vgg13", 133_047_848), ("vgg16", 138_357_544), ("vgg19", 143_667_240),
    ("C", 133_638_952), ("vgg11_bn", 132_868_840), ("vgg16_bn", 138_365_992),
    ("vgg19_bn", 143_678_248)])
def test_exact_counts_match_torchvision_layout(variant, count):
  assert n_params(build(variant)) == count


@pytest.mark.parametrize("variant", sorted(vgg_configs.VARIANTS))
def test_every_variant_builds_at_224(variant):
  config = vgg_configs.get_config(variant)
  fields = {f.name for f in dataclasses.fields(VGG) if f.init} - {"parent", "name", "dtype", "layers"}
  assert fields <= set(config.model)
  module = models.build(config.model)
  out, state = jax.eval_shape(lambda: module.init_with_output(
      jax.random.key(0), jnp.zeros((2, 224, 224, 3)), train=True, mutable=True))
  assert out.shape == (2, 1000) and out.dtype == jnp.float32
  assert ("batch_stats" in state) == variant.endswith("_bn")
  assert state["params"]["fc6"]["kernel"].shape == (7 * 7 * 512, 4096)


# Real forward + backward for each Table 1 column (A runs forward in the LRN test; D with BN). The adaptive pool to 1x1
# (a field, for torchvision-style inputs of any size) lets a 32x32 input through the full conv stack.
@pytest.mark.parametrize("variant", ["A_lrn", "B", "C", "D_bn", "E"])
def test_forward_backward(variant):
  module = build(variant, adaptive_pool=1)
  x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  variables = fill(shapes_of(module, 32, batch=2))

  def loss(params):
    logits, state = module.apply({**variables, "params": params}, x, train=True,
                                 rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"])
    return -jax.nn.log_softmax(logits)[:, 5].mean(), (logits, state)

  (value, (logits, state)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
  assert logits.shape == (2, 1000) and np.isfinite(value)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert np.abs(grads["conv1_1"]["kernel"]).sum() > 0
  if variant.endswith("_bn"):  # running statistics moved
    assert not np.allclose(state["batch_stats"]["bn1_1"]["mean"], 0.0)


def test_fully_convolutional_form_shares_weights_and_logits():
  fc = build("A")
  dense = dataclasses.replace(fc, fully_conv=True)
  shapes = shapes_of(fc, 224)
  assert jax.tree.map(lambda s: s.shape, shapes) == jax.tree.map(lambda s: s.shape, shapes_of(dense, 224))
  variables = fill(shapes)
  x = jax.random.normal(jax.random.key(1), (1, 224, 224, 3))
  a = jax.jit(fc.apply)(variables, x)
  b = jax.jit(dense.apply)(variables, x)
  scale = np.abs(np.asarray(a)).max()
  np.testing.assert_allclose(np.asarray(b) / scale, np.asarray(a) / scale, rtol=0, atol=1e-5)
  # Dense evaluation takes larger images (a 2x2 class score map at 256, averaged) but not smaller ones.
  out = jax.eval_shape(dense.apply, shapes, jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32))
  assert out.shape == (1, 1000)
  with pytest.raises(ValueError, match="at least 7x7"):
    jax.eval_shape(dense.apply, shapes, jax.ShapeDtypeStruct((1, 192, 192, 3), jnp.float32))


def test_conv5x5_replaces_pairs_of_3x3():
  # §4.1: B with each pair of 3x3 layers replaced by one 5x5 layer: five 5x5 convs.
  params = shapes_of(build("B", conv5x5=True), 224)["params"]
  kernels = {k: v["kernel"].shape for k, v in params.items() if k.startswith("conv")}
  assert kernels == {"conv1_1": (5, 5, 3, 64), "conv2_1": (5, 5, 64, 128), "conv3_1": (5, 5, 128, 256),
                     "conv4_1": (5, 5, 256, 512), "conv5_1": (5, 5, 512, 512)}
  # Unpaired 3x3 and 1x1 layers stay.
  assert pair_3x3_into_5x5(CONFIGS["D"])[2] == ((256, 5), (256, 3))
  assert pair_3x3_into_5x5(CONFIGS["C"])[3] == ((512, 5), (512, 1))
  assert pair_3x3_into_5x5(CONFIGS["A"])[0] == ((64, 3),)
  assert pair_3x3_into_5x5(CONFIGS["E"])[4] == ((512, 5), (512, 5))


def test_lrn_follows_the_name_and_the_switch():
  x = jax.random.normal(jax.random.key(1), (1, 32, 32, 3))
  a_lrn = build("A_lrn", adaptive_pool=1)
  assert a_lrn.lrn is True and VGG(config_name="A_lrn").lrn is None  # None: follows the name
  variables = fill(shapes_of(a_lrn, 32))
  without = dataclasses.replace(a_lrn, lrn=False)
  assert jax.tree.structure(shapes_of(without, 32)) == jax.tree.structure(variables)
  plain_a = build("A", adaptive_pool=1)
  out_lrn, out_without, out_a = (jax.jit(m.apply)(variables, x) for m in (a_lrn, without, plain_a))
  np.testing.assert_allclose(out_without, out_a, rtol=1e-5)
  assert not np.allclose(out_lrn, out_a, rtol=1e-3)


def test_adaptive_pool_is_identity_at_224_and_sizes_the_classifier():
  assert n_params(build("D", adaptive_pool=7)) == n_params(build("D"))
  # Without it the classifier is sized by the input: 7x7 at 224, 1x1 at 32.
  assert shapes_of(build("D"), 32)["params"]["fc6"]["kernel"].shape == (512, 4096)


def test_layers_override_and_unknown_names():
  module = VGG(layers=(((16, 3),), ((32, 3), (32, 1))), adaptive_pool=1, num_classes=10)
  params = shapes_of(module, 32)["params"]
  assert params["conv2_2"]["kernel"].shape == (1, 1, 32, 32)
  with pytest.raises(ValueError, match="known: A, B, C, D, E, A_lrn"):
    shapes_of(VGG(config_name="F"), 224)
  with pytest.raises(ValueError, match="Valid variants: A, A_lrn, B, C, D, E, vgg11"):
    vgg_configs.get_config("vgg17")
