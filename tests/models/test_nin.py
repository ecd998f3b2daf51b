"""Network in Network: parameter counts, map sizes, blocks as data, forward/backward."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from classic import models
from classic.models.nin import NiN
from configs import nin as nin_configs
from tests.models.weights import pool_fill as fill


def shapes_of(module, size):
  return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, size, size, 3))))


def n_params(module, size):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes_of(module, size)["params"]))




def block_sizes(module, size):
  _, state = jax.eval_shape(lambda: module.init_with_output(
      jax.random.key(0), jnp.zeros((1, size, size, 3)), mutable=["params", "intermediates"]))
  return [v[0].shape[1:] for v in state["intermediates"].values()]


@pytest.mark.parametrize("variant,size,count", [("nin_cifar", 32, 966_986), ("nin_imagenet", 224, 7_595_176)])
def test_param_counts(variant, size, count):
  assert n_params(models.build(nin_configs.get_config(variant).model), size) == count


def test_map_sizes():
  cifar = models.build(nin_configs.get_config("nin_cifar").model)
  assert block_sizes(cifar, 32) == [(16, 16, 96), (8, 8, 192), (8, 8, 10)]
  imagenet = models.build(nin_configs.get_config("nin_imagenet").model)
  # Caffe's rounded-up pooling: 54 -> 27 -> 13 -> 6, the 6x6 map the Caffe model's last pool averages.
  assert block_sizes(imagenet, 224) == [(27, 27, 96), (13, 13, 256), (6, 6, 384), (6, 6, 1000)]


@pytest.mark.parametrize("variant,size,batch", [("nin_cifar", 32, 2), ("nin_imagenet", 224, 1)])
def test_forward_backward(variant, size, batch):
  config = nin_configs.get_config(variant)
  module = models.build(config.model)
  variables = fill(shapes_of(module, size))
  x = jax.random.normal(jax.random.key(1), (batch, size, size, 3))

  def loss(params):
    logits = module.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(2)})
    return -jax.nn.log_softmax(logits)[:, 1].mean(), logits

  (value, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
  assert logits.shape == (batch, config.model.num_classes) and logits.dtype == jnp.float32
  assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  eval_logits = jax.jit(module.apply)(variables, x)
  assert np.all(eval_logits >= 0)  # the class maps pass through a ReLU, as in the Caffe models
  assert not np.allclose(eval_logits, logits, rtol=1e-3)  # dropout in training only


def test_final_relu_switch():
  module = NiN()
  variables = fill(shapes_of(module, 32), seed=3)
  x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  linear = jax.jit(dataclasses.replace(module, final_relu=False).apply)(variables, x)
  assert np.any(linear < 0)
  rectified = jax.jit(module.apply)(variables, x)
  assert np.all(rectified >= 0) and not np.allclose(rectified, linear)


def test_blocks_are_data():
  # A two-block variant written as a spec, with the class maps following num_classes (0).
  blocks = ((((32, 3, 1, 1), (32, 1, 1, 0)), ("max", 3, 2), True),
            (((64, 3, 1, 1), (0, 1, 1, 0)), (), False))
  module = NiN(blocks=blocks, num_classes=100)
  out = jax.eval_shape(lambda: module.init_with_output(jax.random.key(0), jnp.zeros((2, 32, 32, 3)))[0])
  assert out.shape == (2, 100)
  # JSON-style lists work as well as tuples.
  as_lists = [[[list(c) for c in convs], list(pool), drop] for convs, pool, drop in blocks]
  config = nin_configs.get_config("nin_cifar")
  config.model.blocks = as_lists
  config.model.num_classes = 100
  assert n_params(models.build(config.model), 32) == n_params(module, 32)
  # A fixed class count that disagrees with num_classes is refused.
  with pytest.raises(ValueError, match="num_classes"):
    shapes_of(NiN(num_classes=100, blocks=blocks[:1] + ((((64, 3, 1, 1), (10, 1, 1, 0)), (), False),)), 32)


@pytest.mark.parametrize("variant", sorted(nin_configs.VARIANTS))
def test_configs_set_every_field(variant):
  config = nin_configs.get_config(variant)
  fields = {f.name for f in dataclasses.fields(NiN) if f.init} - {"parent", "name", "dtype"}
  assert fields <= set(config.model)
  config.model.dropout = 0.3
  assert models.build(config.model).dropout == 0.3


def test_unknown_variant_lists_valid_ones():
  with pytest.raises(ValueError, match="Valid variants: nin_cifar, nin_imagenet"):
    nin_configs.get_config("nin")


def test_cifar_schedule_lowers_the_rate_twice_to_one_percent():
  """Lin et al. 2014 §4.1: lowered by 10 when training accuracy stops improving, "repeated once such
  that the final learning rate is one percent of the initial value"."""
  from classic.train import optim
  c = nin_configs.get_config("nin_cifar")
  assert len(c.optimizer.boundaries) == 2
  lr = optim.schedule(c)
  assert float(lr(0)) == pytest.approx(0.01)
  assert float(lr(c.train_steps - 1)) == pytest.approx(0.01 * 0.01)
