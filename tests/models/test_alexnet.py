"""AlexNet: the paper's parameter count and map sizes, towers, switches."""

import dataclasses

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from classic import models
from classic.models.alexnet import AlexNet, adaptive_avg_pool, caffe_pool
from configs import alexnet as alexnet_configs
from tests.models.weights import pool_fill as fill

def build(variant, **overrides):
  config = alexnet_configs.get_config(variant)
  for key, value in overrides.items():
    config.model[key] = value
  return models.build(config.model)


def shapes_of(module, size):
  return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, size, size, 3))))


def n_params(module, size):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes_of(module, size)["params"]))


def feature_shapes(module, size):
  _, state = jax.eval_shape(lambda: module.init_with_output(
      jax.random.key(0), jnp.zeros((1, size, size, 3)), mutable=["params", "intermediates"]))
  return {k: v[0].shape[1:] for k, v in state["intermediates"].items()}




@pytest.fixture(scope="module")
def paper():
  module = build("alexnet")
  return module, fill(shapes_of(module, 227))


def test_paper_param_count():
  # §1/§3: "60 million parameters"; with the two towers' grouped conv2/4/5 exactly 60,965,224.
  n = n_params(build("alexnet"), 227)
  assert n == 60_965_224
  assert round(n / 1e7) * 10 == 60


def test_groups_change_param_count():
  # One tower: conv2, conv4, conv5 see all input maps, twice the weights (307,200+663,552+442,368 more).
  assert n_params(build("alexnet", groups=1), 227) == 60_965_224 + 1_413_120


def test_one_tower_layout_matches_torchvision_count():
  assert n_params(build("alexnet_1tower"), 224) == 61_100_840


def test_paper_feature_map_sizes():
  assert feature_shapes(build("alexnet"), 227) == {
      "conv1_out": (55, 55, 96), "pool1_out": (27, 27, 96), "conv2_out": (27, 27, 256),
      "pool2_out": (13, 13, 256), "conv3_out": (13, 13, 384), "conv4_out": (13, 13, 384),
      "conv5_out": (13, 13, 256), "pool5_out": (6, 6, 256)}
  assert feature_shapes(build("alexnet_1tower"), 224)["pool5_out"] == (6, 6, 256)


def test_non_overlapping_pool_changes_feature_size_and_fc6():
  module = build("alexnet", overlap_pool=False)
  sizes = feature_shapes(module, 227)
  assert (sizes["pool1_out"], sizes["pool2_out"], sizes["pool5_out"]) == (
      (28, 28, 96), (14, 14, 256), (7, 7, 256))
  assert shapes_of(module, 227)["params"]["fc6"]["kernel"].shape == (7 * 7 * 256, 4096)
  assert n_params(module, 227) == 60_965_224 + (49 - 36) * 256 * 4096


def test_paper_net_forward_backward(paper):
  module, variables = paper
  x = jax.random.normal(jax.random.key(1), (1, 227, 227, 3))

  def loss(params):
    logits = module.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(2)})
    return -jax.nn.log_softmax(logits)[0, 3], logits

  (value, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
  assert logits.shape == (1, 1000) and logits.dtype == jnp.float32
  assert np.isfinite(value)
  for g in jax.tree.leaves(grads):
    assert np.all(np.isfinite(g))
  assert np.abs(grads["conv1"]["kernel"]).sum() > 0
  # Dropout is active in training only.
  eval_logits = jax.jit(module.apply)(variables, x)
  assert not np.allclose(eval_logits, logits, rtol=1e-3)


def test_lrn_switch_keeps_params_changes_outputs(paper):
  module, variables = paper
  no_lrn = dataclasses.replace(module, lrn=False)
  assert jax.tree.structure(shapes_of(no_lrn, 227)) == jax.tree.structure(variables)
  x = jax.random.normal(jax.random.key(1), (1, 227, 227, 3))
  assert not np.allclose(jax.jit(module.apply)(variables, x), jax.jit(no_lrn.apply)(variables, x),
                         rtol=1e-3)


def test_response_normalisation_stays_within_a_tower():
  # Perturbing tower 2's conv1 maps leaves tower 1's normalised maps alone when groups=2; with one
  # tower the normalisation window crosses the middle. Small widths: only the wiring matters here.
  x = jax.random.normal(jax.random.key(1), (1, 67, 67, 3))
  for groups, untouched in ((2, True), (1, False)):
    module = AlexNet(widths=(16,) * 5, groups=groups, fc_width=32)
    variables = fill(shapes_of(module, 67))
    pool1 = jax.jit(lambda v: module.apply(v, x, mutable=["intermediates"])[1]["intermediates"]["pool1_out"][0])
    bumped = {"params": {**variables["params"], "conv1": {
        "kernel": variables["params"]["conv1"]["kernel"],
        "bias": variables["params"]["conv1"]["bias"].at[8:].add(5.0)}}}
    a, b = pool1(variables), pool1(bumped)
    assert np.allclose(a[..., :8], b[..., :8]) == untouched
    assert not np.allclose(a[..., 8:], b[..., 8:])


def test_one_tower_forward_backward_and_adaptive_pool():
  module = build("alexnet_1tower")
  variables = fill(shapes_of(module, 224))
  x = jax.random.normal(jax.random.key(1), (1, 224, 224, 3))
  grads = jax.jit(jax.grad(lambda p: module.apply({"params": p}, x).sum()))(variables["params"])
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  # The adaptive pool makes the classifier independent of the input size, as torchvision's ...
  small = jax.eval_shape(module.apply, variables, jax.ShapeDtypeStruct((2, 127, 127, 3), jnp.float32))
  assert small.shape == (2, 1000)
  # ... while the paper net's FC layers are sized by the 6x6 map of a 227 input.
  paper = build("alexnet")
  with pytest.raises(flax.errors.ScopeParamShapeError):
    jax.eval_shape(paper.apply, shapes_of(paper, 227), jax.ShapeDtypeStruct((1, 195, 195, 3), jnp.float32))


def test_pooling_helpers():
  x = jnp.arange(25.0).reshape(1, 5, 5, 1)
  np.testing.assert_array_equal(caffe_pool(x, "max", 3, 2)[0, ..., 0], [[12, 14], [22, 24]])
  # Caffe rounds the output size up: 2x2/2 on 5 gives 3 windows, the last clipped to the image and
  # averaged over what is inside it.
  np.testing.assert_array_equal(caffe_pool(x, "avg", 2, 2)[0, ..., 0],
                                [[3, 5, 6.5], [13, 15, 16.5], [20.5, 22.5, 24]])
  # PyTorch's adaptive pooling bins: 5 -> 3 uses [0,2), [1,4), [3,5) in each direction.
  np.testing.assert_allclose(adaptive_avg_pool(x, 3)[0, 0, :, 0], [3.0, 4.5, 6.0])
  assert adaptive_avg_pool(x, 5) is x


def test_bfloat16_compute_returns_float32_logits():
  module = build("alexnet", dtype=jnp.bfloat16)
  out = jax.eval_shape(lambda: module.init_with_output(jax.random.key(0), jnp.zeros((1, 227, 227, 3)))[0])
  assert out.dtype == jnp.float32


@pytest.mark.parametrize("variant", sorted(alexnet_configs.VARIANTS))
def test_configs_set_every_field_and_build(variant):
  config = alexnet_configs.get_config(variant)
  fields = {f.name for f in dataclasses.fields(AlexNet) if f.init} - {"parent", "name", "dtype"}
  assert fields <= set(config.model) - {"name"}
  config.model.lrn = not config.model.lrn  # overridable: the field exists
  module = models.build(config.model)
  out = jax.eval_shape(lambda: module.init_with_output(
      jax.random.key(0), jnp.zeros((2, config.image_size, config.image_size, 3)))[0])
  assert out.shape == (2, 1000)
  assert config.dataset == "imagenet2012" and config.optimizer.weight_decay == 5e-4


def test_unknown_variant_lists_valid_ones():
  with pytest.raises(ValueError, match="Valid variants: alexnet, alexnet_1tower"):
    alexnet_configs.get_config("alexnet2")
