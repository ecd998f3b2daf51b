"""ZFNet: Fig. 3's feature-map sizes, parameter count, forward/backward, switches."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from classic import models
from classic.models.zfnet import ZFNet
from configs import zfnet as zfnet_configs
from tests.models.weights import pool_fill as fill


def shapes_of(module, size):
  return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, size, size, 3))))




@pytest.fixture(scope="module")
def net():
  module = models.build(zfnet_configs.get_config("zfnet").model)
  return module, fill(shapes_of(module, 224))


def test_param_count():
  module = models.build(zfnet_configs.get_config().model)
  n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes_of(module, 224)["params"]))
  assert n == 62_357_608


def test_feature_map_sizes_match_fig3():
  _, state = jax.eval_shape(lambda: ZFNet().init_with_output(
      jax.random.key(0), jnp.zeros((1, 224, 224, 3)), mutable=["params", "intermediates"]))
  sizes = {k: v[0].shape[1:] for k, v in state["intermediates"].items()}
  assert sizes == {
      "conv1_out": (110, 110, 96), "pool1_out": (55, 55, 96), "conv2_out": (26, 26, 256),
      "pool2_out": (13, 13, 256), "conv3_out": (13, 13, 384), "conv4_out": (13, 13, 384),
      "conv5_out": (13, 13, 256), "pool5_out": (6, 6, 256)}


def test_forward_backward(net):
  module, variables = net
  x = jax.random.normal(jax.random.key(1), (1, 224, 224, 3))

  def loss(params):
    logits = module.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(2)})
    return -jax.nn.log_softmax(logits)[0, 7], logits

  (value, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
  assert logits.shape == (1, 1000) and logits.dtype == jnp.float32 and np.isfinite(value)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert np.abs(grads["conv1"]["kernel"]).sum() > 0
  assert not np.allclose(jax.jit(module.apply)(variables, x), logits, rtol=1e-3)  # dropout


def test_lrn_switch_keeps_params_changes_outputs(net):
  module, variables = net
  no_lrn = dataclasses.replace(module, lrn=False)
  assert jax.tree.structure(shapes_of(no_lrn, 224)) == jax.tree.structure(variables)
  x = jax.random.normal(jax.random.key(1), (1, 224, 224, 3))
  assert not np.allclose(jax.jit(module.apply)(variables, x), jax.jit(no_lrn.apply)(variables, x),
                         rtol=1e-3)


def test_config_sets_every_field():
  config = zfnet_configs.get_config("zfnet")
  fields = {f.name for f in dataclasses.fields(ZFNet) if f.init} - {"parent", "name", "dtype"}
  assert fields <= set(config.model)
  assert (config.image_size, config.batch_size, config.dataset) == (224, 128, "imagenet2012")
  config.model.lrn = False
  assert models.build(config.model).lrn is False


def test_unknown_variant_lists_valid_ones():
  with pytest.raises(ValueError, match="Valid variants: zfnet"):
    zfnet_configs.get_config("zf")
