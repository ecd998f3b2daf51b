"""Inception v3 (Szegedy et al. 2015): 35/17/8 grids, parameter counts, factorization, aux head, a step."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from classic import models
from classic.models.inception_v3 import GRID17, InceptionV3
from configs import inception_v3 as v3_configs
from tests.models.weights import random_variables

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@functools.lru_cache(maxsize=None)
def shapes(size=299, **fields):
  module = InceptionV3(**fields)
  return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, size, size, 3))))


def count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_grids_35_17_8():
  capture = lambda mdl, _: bool(mdl.name) and (mdl.name.startswith("mixed_") or mdl.name == "conv_4a")
  module = InceptionV3()
  _, state = jax.eval_shape(lambda v: module.apply(v, jnp.zeros((2, 299, 299, 3)),
                                                   capture_intermediates=capture,
                                                   mutable=["intermediates"]), shapes())
  outputs = {k: v["__call__"][0].shape[1:] for k, v in state["intermediates"].items()}
  assert outputs == {
      "conv_4a": (71, 71, 192),
      "mixed_5b": (35, 35, 256), "mixed_5c": (35, 35, 288), "mixed_5d": (35, 35, 288),
      "mixed_6a": (17, 17, 768), "mixed_6b": (17, 17, 768), "mixed_6c": (17, 17, 768),
      "mixed_6d": (17, 17, 768), "mixed_6e": (17, 17, 768),
      "mixed_7a": (8, 8, 1280), "mixed_7b": (8, 8, 2048), "mixed_7c": (8, 8, 2048)}


def test_parameter_counts():
  # torchvision's counts for this layout (BN with scale and bias); TF-slim/Keras have no BN scale.
  assert count(shapes()["params"]) == 27_161_264
  assert count(shapes(aux_heads=False)["params"]) == 23_834_568
  assert count(shapes()["params"]["aux"]) == (768 * 128 + 2 * 128 + 25 * 128 * 768 + 2 * 768
                                              + 768 * 1000 + 1000)


def pair_to_nxn(cin, mid, out):
  """A 7x7 (cin -> out) in place of 1x7 (cin -> mid) + 7x1 (mid -> out), BN 2 parameters a channel."""
  return 49 * cin * out - 7 * cin * mid - 7 * mid * out - 2 * mid


def pair_to_3x3(cin, mid, out):
  """Three 3x3 (cin -> mid -> mid -> out) in place of 1x7 + 7x1."""
  return 9 * (cin * mid + mid * mid + mid * out) + 2 * mid - 7 * cin * mid - 7 * mid * out


@pytest.mark.parametrize("factorization,pair", [("nxn", pair_to_nxn), ("3x3", pair_to_3x3)])
def test_factorization_of_the_17x17_grid(factorization, pair):
  # Each 17x17 module has three 1x7 + 7x1 pairs; the 17 -> 8 reduction has one (192 wide).
  expected = sum(pair(c, c, 192) + pair(c, c, c) + pair(c, c, 192) for _, c in GRID17)
  expected += pair(192, 192, 192)
  diff = count(shapes(factorization=factorization)["params"]) - count(shapes()["params"])
  assert diff == expected


def test_aux_head_sown_only_in_training():
  module = InceptionV3(num_classes=10)
  x = jnp.zeros((2, 299, 299, 3))
  variables = shapes(num_classes=10)
  assert "aux" in variables["params"]
  out, state = jax.eval_shape(lambda v: module.apply(
      v, x, train=True, rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats", "aux"]),
                              variables)
  assert out.shape == (2, 10) and out.dtype == jnp.float32
  assert [(a.shape, a.dtype) for a in state["aux"]["logits"]] == [((2, 10), jnp.float32)]
  _, state = jax.eval_shape(lambda v: module.apply(v, x, mutable=["batch_stats", "aux"]), variables)
  assert "aux" not in state
  assert "aux" not in shapes(aux_heads=False)["params"]


def test_smaller_inputs_shrink_the_aux_windows():
  # TF-slim clips the aux head's 5x5 pool and convolution to the map for inputs below 299.
  assert shapes(size=224)["params"]["aux"]["conv1"]["conv"]["kernel"].shape == (3, 3, 128, 768)
  module = InceptionV3(num_classes=10)
  x = jnp.zeros((2, 75, 75, 3))   # the smallest input: 3x3 at "17x17", 1x1 at "8x8"
  _, state = jax.eval_shape(lambda v: module.apply(
      v, x, train=True, rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats", "aux"]),
                            shapes(size=75, num_classes=10))
  assert [a.shape for a in state["aux"]["logits"]] == [(2, 10)]


def test_half_precision_returns_float32_logits():
  module = InceptionV3(num_classes=10, dtype=jnp.bfloat16)
  out = jax.eval_shape(lambda v: module.apply(v, jnp.zeros((1, 299, 299, 3))),
                       shapes(num_classes=10, dtype=jnp.bfloat16))
  assert out.dtype == jnp.float32




@pytest.mark.slow
def test_forward_backward_with_aux_loss():
  # Batch 2: the aux head's 5x5 conv sees a 1x1 map, and BN over a single value has no gradient.
  module = InceptionV3(num_classes=10)
  variables = random_variables(shapes(num_classes=10))
  x = jax.random.normal(jax.random.key(0), (2, 299, 299, 3))
  labels = jnp.array([3, 7])

  def loss(params):
    logits, state = module.apply({**variables, "params": params}, x, train=True,
                                 rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats", "aux"])
    ce = lambda z: optax.softmax_cross_entropy_with_integer_labels(z, labels).mean()
    return ce(logits) + 0.4 * sum(ce(z) for z in state["aux"]["logits"])

  step = jax.jit(jax.value_and_grad(loss)).lower(variables["params"]).compile(FAST_COMPILE)
  value, grads = step(variables["params"])
  assert np.isfinite(float(value))
  grads = jax.device_get(grads)   # numpy: no per-leaf compiles
  for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
    assert np.all(np.isfinite(g)) and np.any(g != 0), jax.tree_util.keystr(path)


def test_config_sets_every_model_field():
  config = v3_configs.get_config()
  assert config.variant == "inception_v3:inception_v3"
  fields = {f for f in InceptionV3.__dataclass_fields__ if f not in ("parent", "name", "dtype")}
  assert set(config.model) - {"name"} == fields
  assert config.optimizer.name == "rmsprop" and config.optimizer.eps == 1.0
  assert config.optimizer.decay_every_epochs == 2 and config.optimizer.decay_every == 10_010   # 0.94 every 2 epochs
  assert config.label_smoothing == 0.1 and config.optimizer.grad_clip == 2.0


@pytest.mark.parametrize("variant", sorted(v3_configs.VARIANTS))
def test_every_variant_builds(variant):
  assert isinstance(models.build(v3_configs.get_config(variant).model), InceptionV3)


def test_unknown_values_fail_with_the_valid_ones():
  with pytest.raises(ValueError, match="Valid variants: inception_v3, inception_v3_noaux"):
    v3_configs.get_config("inception_v4x")
  with pytest.raises(ValueError, match="1xn, nxn, 3x3"):
    shapes(factorization="5x5")
