"""BN-Inception (Ioffe & Szegedy 2015 Figure 5): widths, grids, parameters, switches, one real step."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from classic import models
from classic.models.inception_v2 import FIGURE5, InceptionV2
from configs import inception_v2 as v2_configs
from tests.models.weights import random_variables

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@functools.lru_cache(maxsize=None)
def shapes(size=224, **fields):
  module = InceptionV2(**fields)
  return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, size, size, 3))))


def count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def module_outputs(**fields):
  capture = lambda mdl, _: bool(mdl.name) and mdl.name.startswith("inception_")
  module = InceptionV2(**fields)
  _, state = jax.eval_shape(lambda v: module.apply(v, jnp.zeros((2, 224, 224, 3)),
                                                   capture_intermediates=capture,
                                                   mutable=["intermediates"]), shapes(**fields))
  return {k.removeprefix("inception_"): v["__call__"][0].shape[1:]
          for k, v in state["intermediates"].items()}


def test_figure5_widths_and_grids():
  # Figure 5's per-module widths; 4c/4d sum to 608 (and 4e to 1056) though its output column says 576.
  assert module_outputs() == {
      "3a": (28, 28, 256), "3b": (28, 28, 320), "3c": (14, 14, 576),
      "4a": (14, 14, 576), "4b": (14, 14, 576), "4c": (14, 14, 608), "4d": (14, 14, 608),
      "4e": (7, 7, 1056), "5a": (7, 7, 1024), "5b": (7, 7, 1024)}


def test_slim_widths_match_figure5_output_column():
  outputs = module_outputs(widths="slim")
  assert [outputs[m][2] for m in ("3c", "4a", "4b", "4c", "4d", "4e", "5a", "5b")] == \
      [576] * 5 + [1024] * 3


def test_module_layout_follows_figure5():
  params = shapes()["params"]
  for name, (n1, _, _, _, _, pool, proj, stride) in FIGURE5.items():
    module = params[f"inception_{name}"]
    assert ("branch0_conv0" in module and module["branch0_conv0"]["conv"]["kernel"].shape[-1] == n1) \
        == bool(n1), name   # stride-2 modules have no 1x1 branch
    assert ("pool_proj" in module) == bool(proj), name
    assert (stride == 2) == (proj == 0) and (stride == 2) <= (pool == "max")
  # BN everywhere: no convolution has a bias; every conv has a BN.
  keys = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
  assert not any(k.endswith("['conv']['bias']") for k in keys)
  convs = sum(k.endswith("['conv']['kernel']") for k in keys)
  assert convs == sum(k.endswith("['bn']['scale']") for k in keys)


def test_parameter_totals():
  # Figure 5's widths, BN with scale and bias (2 parameters per channel), no aux heads by default.
  assert count(shapes()["params"]) == 11_285_224
  assert count(shapes(widths="slim")["params"]) == 11_194_984
  assert count(shapes(aux_heads=True)["params"]) == 17_683_640


@pytest.mark.parametrize("factorization,per_branch", [
    # one 5x5 (r -> n) or 1x5 + 5x1 (r -> n -> n) in place of two 3x3 (r -> n -> n); BN: 2 per channel
    ("5x5", lambda r, n: 25 * r * n - 9 * r * n - 9 * n * n - 2 * n),
    ("1xn", lambda r, n: 5 * r * n + 5 * n * n - 9 * r * n - 9 * n * n),
])
def test_factorization_changes_params_by_the_formula(factorization, per_branch):
  diff = count(shapes(factorization=factorization)["params"]) - count(shapes()["params"])
  assert diff == sum(per_branch(rd, nd) for _, _, _, rd, nd, _, _, _ in FIGURE5.values())


def test_no_aux_heads_by_default_and_two_when_on():
  assert not any(k.startswith("aux") for k in shapes()["params"])
  module = InceptionV2(num_classes=10, aux_heads=True)
  x = jnp.zeros((2, 224, 224, 3))
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), x))
  assert {"aux_4a", "aux_4d"} <= set(variables["params"])
  _, state = jax.eval_shape(lambda v: module.apply(
      v, x, train=True, rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats", "aux"]),
                            variables)
  assert [a.shape for a in state["aux"]["logits"]] == [(2, 10), (2, 10)]
  _, state = jax.eval_shape(lambda v: module.apply(v, x, mutable=["batch_stats", "aux"]), variables)
  assert "aux" not in state


def test_ghost_batch_norm_groups_reach_every_layer():
  module = InceptionV2(num_classes=10, bn_group_size=2)
  x = jnp.zeros((4, 224, 224, 3))
  out, _ = jax.eval_shape(lambda v: module.apply(v, x, train=True, mutable=["batch_stats"]),
                          shapes(num_classes=10, bn_group_size=2))
  assert out.shape == (4, 10)
  with pytest.raises(ValueError, match="bn_group_size"):
    jax.eval_shape(lambda v: module.apply(v, x[:3], train=True, mutable=["batch_stats"]),
                   shapes(num_classes=10, bn_group_size=2))




@pytest.mark.slow
def test_forward_backward():
  module = InceptionV2(num_classes=10)
  variables = random_variables(shapes(num_classes=10))
  x = jax.random.normal(jax.random.key(0), (1, 224, 224, 3))

  def loss(params):
    logits, state = module.apply({**variables, "params": params}, x, train=True,
                                 mutable=["batch_stats", "aux"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.array([3])).mean(), state

  step = jax.jit(jax.value_and_grad(loss, has_aux=True)).lower(variables["params"]).compile(FAST_COMPILE)
  (value, state), grads = step(variables["params"])
  assert np.isfinite(float(value)) and "aux" not in state
  grads = jax.device_get(grads)   # numpy: no per-leaf compiles
  for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
    assert np.all(np.isfinite(g)) and np.any(g != 0), jax.tree_util.keystr(path)
  # Training updated the running statistics.
  assert not np.allclose(state["batch_stats"]["conv1"]["bn"]["mean"], 0)


def test_config_sets_every_model_field():
  config = v2_configs.get_config()
  assert config.variant == "inception_v2:inception_v2"
  fields = {f for f in InceptionV2.__dataclass_fields__ if f not in ("parent", "name", "dtype")}
  assert set(config.model) - {"name"} == fields
  assert config.optimizer.lr == 0.045 and config.model.dropout == 0.0


@pytest.mark.parametrize("variant", sorted(v2_configs.VARIANTS))
def test_every_variant_builds(variant):
  assert isinstance(models.build(v2_configs.get_config(variant).model), InceptionV2)


def test_unknown_values_fail_with_the_valid_ones():
  with pytest.raises(ValueError, match="Valid variants: inception_v2, inception_v2_x5"):
    v2_configs.get_config("inception_v2_x7")
  with pytest.raises(ValueError, match="3x3x2, 5x5, 1xn"):
    shapes(factorization="nxn")
  with pytest.raises(ValueError, match="'figure5' or 'slim'"):
    shapes(widths="paper")
