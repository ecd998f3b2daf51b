"""GoogLeNet (Szegedy et al. 2014): Table 1's widths, grids and parameters, switches, aux heads, a step."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from classic import models
from classic.models.googlenet import TABLE1, GoogLeNet
from configs import googlenet as googlenet_configs
from tests.models.weights import random_variables

# Compile options for the one real backward pass: XLA's CPU optimisations halve a ~20 s compile.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@functools.lru_cache(maxsize=None)
def shapes(size=224, **fields):
  module = GoogLeNet(**fields)
  return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, size, size, 3))))


def count(tree, only_kernels=False):
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return sum(int(np.prod(x.shape)) for p, x in leaves
             if not only_kernels or jax.tree_util.keystr(p).endswith("['kernel']"))


def module_outputs(module, variables, size=224):
  capture = lambda mdl, _: bool(mdl.name) and mdl.name.startswith("inception_")
  _, state = jax.eval_shape(lambda v: module.apply(v, jnp.zeros((2, size, size, 3)),
                                                   capture_intermediates=capture,
                                                   mutable=["intermediates"]), variables)
  return {k.removeprefix("inception_"): v["__call__"][0].shape[1:]
          for k, v in state["intermediates"].items()}


def test_table1_module_widths_and_grids():
  outputs = module_outputs(GoogLeNet(), shapes())
  assert outputs == {
      "3a": (28, 28, 256), "3b": (28, 28, 480),
      "4a": (14, 14, 512), "4b": (14, 14, 512), "4c": (14, 14, 512), "4d": (14, 14, 528),
      "4e": (14, 14, 832),
      "5a": (7, 7, 832), "5b": (7, 7, 1024)}


def test_ceil_mode_pools_give_the_same_grids():
  module = GoogLeNet(ceil_pool=True, branch5x5_kernel=3)
  outputs = module_outputs(module, shapes(ceil_pool=True, branch5x5_kernel=3))
  assert [outputs[m][:2] for m in ("3a", "4a", "5b")] == [(28, 28), (14, 14), (7, 7)]


# Table 1's "params" column: weights only (no biases), in units of K = 1024.
TABLE1_PARAMS_K = {"conv1": 2.7, "conv2": 112, "3a": 159, "3b": 380, "4a": 364, "4b": 437, "4c": 463,
                   "4d": 580, "4e": 840, "5a": 1072, "5b": 1388, "head": 1000}


def test_table1_parameter_column():
  params = shapes(aux_heads=False)["params"]
  cin = {"3a": 192, "3b": 256, "4a": 480, "4b": 512, "4c": 512, "4d": 512, "4e": 528, "5a": 832,
         "5b": 832}
  ours = {"conv1": count(params["conv1"], True),
          "conv2": count(params["conv2_reduce"], True) + count(params["conv2"], True),
          "head": count(params["head"], True)}
  for name, (n1, r3, n3, r5, n5, proj) in TABLE1.items():
    weights = count(params[f"inception_{name}"], True)
    assert weights == cin[name] * (n1 + r3 + r5 + proj) + 9 * r3 * n3 + 25 * r5 * n5
    ours[name] = weights
  for name, table in TABLE1_PARAMS_K.items():
    # The table's conv1 (7x7x3x64 = 9.2K), 4c (497.5K) and 5a (1018K) entries disagree with its own
    # widths; every other entry is within 2% of the weights the widths imply.
    if name not in ("conv1", "4c", "5a"):
      assert abs(ours[name] / 1024 - table) / table < 0.02, name
  # The column sums to 6,797.7K (the paper's ~6.8M); ours to 6,826.4K.
  total = sum(ours.values())
  assert total == 6_990_272
  assert abs(total / 1024 / sum(TABLE1_PARAMS_K.values()) - 1) < 0.005


def test_parameter_totals():
  assert count(shapes(aux_heads=False)["params"]) == 6_998_552   # weights and biases
  assert count(shapes()["params"]) == 13_378_280                  # with both aux heads


def test_torchvision_variant_matches_torchvision_counts():
  config = googlenet_configs.get_config("googlenet_torchvision")
  for aux_heads, expected in ((True, 13_004_888), (False, 6_624_904)):
    config.model.aux_heads = aux_heads
    module = models.build(config.model)
    variables = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3))))
    assert count(variables["params"]) == expected


@pytest.mark.parametrize("factorization,per_branch", [
    # two 3x3 (r5 -> n5 -> n5, one more bias) or 1x5 + 5x1, in place of one 5x5 (r5 -> n5)
    ("3x3x2", lambda r, n: 9 * r * n + 9 * n * n + n - 25 * r * n),
    ("1xn", lambda r, n: 5 * r * n + 5 * n * n + n - 25 * r * n),
    ("5x5", lambda r, n: 0),
])
def test_factorization_changes_params_by_the_formula(factorization, per_branch):
  base = count(shapes(aux_heads=False)["params"])
  ours = count(shapes(aux_heads=False, factorization=factorization)["params"])
  assert ours - base == sum(per_branch(r5, n5) for _, _, _, r5, n5, _ in TABLE1.values())


def test_branch5x5_kernel_3_is_torchvision_branch():
  base = count(shapes(aux_heads=False)["params"])
  ours = count(shapes(aux_heads=False, branch5x5_kernel=3)["params"])
  assert base - ours == sum(16 * r5 * n5 for _, _, _, r5, n5, _ in TABLE1.values())


def test_aux_heads_sown_only_in_training():
  module = GoogLeNet(num_classes=10)
  x = jnp.zeros((3, 224, 224, 3))
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), x))  # eval-mode init
  assert {"aux_4a", "aux_4d"} <= set(variables["params"])
  assert variables["params"]["aux_4a"]["fc0"]["kernel"].shape == (4 * 4 * 128, 1024)
  out, state = jax.eval_shape(lambda v: module.apply(
      v, x, train=True, rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats", "aux"]),
                              variables)
  aux = state["aux"]["logits"]
  assert out.shape == (3, 10) and out.dtype == jnp.float32
  assert len(aux) == 2 and all(a.shape == (3, 10) and a.dtype == jnp.float32 for a in aux)
  out, state = jax.eval_shape(lambda v: module.apply(v, x, mutable=["batch_stats", "aux"]),
                              variables)
  assert "aux" not in state
  # A training-mode init creates the same parameters and sows nothing into the variables.
  train_vars = jax.eval_shape(lambda: module.init(
      {"params": jax.random.key(0), "dropout": jax.random.key(1)}, x, train=True))
  assert set(train_vars) == {"params"}
  assert count(train_vars["params"]) == count(variables["params"])


def test_aux_heads_off_removes_their_params():
  params = shapes(aux_heads=False)["params"]
  assert not any(k.startswith("aux") for k in params)
  aux = shapes()["params"]
  assert count(aux["aux_4a"]) == 512 * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000
  assert count(aux["aux_4d"]) == 528 * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000


def test_bn_variant_has_batch_stats_and_no_conv_biases():
  variables = shapes(bn=True)
  assert "batch_stats" in variables
  assert "bias" not in variables["params"]["conv1"]["conv"]
  assert "batch_stats" not in shapes()




def test_forward_backward_with_aux_losses():
  module = GoogLeNet(num_classes=10)
  variables = random_variables(shapes(num_classes=10))
  x = jax.random.normal(jax.random.key(0), (1, 224, 224, 3))
  labels = jnp.array([3])

  def loss(params):
    logits, state = module.apply({"params": params}, x, train=True,
                                 rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats", "aux"])
    ce = lambda z: optax.softmax_cross_entropy_with_integer_labels(z, labels).mean()
    return ce(logits) + 0.3 * sum(ce(z) for z in state["aux"]["logits"])

  step = jax.jit(jax.value_and_grad(loss)).lower(variables["params"]).compile(FAST_COMPILE)
  value, grads = step(variables["params"])
  assert np.isfinite(float(value))
  grads = jax.device_get(grads)   # numpy: no per-leaf compiles
  for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
    # Every parameter gets a gradient, the aux heads' included (their losses reach them).
    assert np.all(np.isfinite(g)) and np.any(g != 0), jax.tree_util.keystr(path)
  assert {"aux_4a", "aux_4d"} <= set(grads)


def test_config_sets_every_model_field():
  config = googlenet_configs.get_config()
  assert config.variant == "googlenet:googlenet"
  fields = {f for f in GoogLeNet.__dataclass_fields__ if f not in ("parent", "name", "dtype")}
  assert set(config.model) - {"name"} == fields
  assert config.optimizer.schedule == "exponential" and config.optimizer.factor == 0.96
  assert config.optimizer.decay_every_epochs == 8 and config.optimizer.decay_every == 8 * 5005   # 4 % every 8 epochs


@pytest.mark.parametrize("variant", sorted(googlenet_configs.VARIANTS))
def test_every_variant_builds(variant):
  config = googlenet_configs.get_config(variant)
  assert isinstance(models.build(config.model), GoogLeNet)


def test_unknown_variant_and_factorization_fail_with_the_valid_ones():
  with pytest.raises(ValueError, match="Valid variants: googlenet, googlenet_noaux"):
    googlenet_configs.get_config("googlenet_v9")
  with pytest.raises(ValueError, match="5x5, 3x3x2, 1xn"):
    shapes(factorization="7x7")
