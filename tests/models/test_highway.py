"""Highway networks: layer counts and parameters, gate initialisation, the plain ablation, training."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from classic import models
from classic.models.highway import HighwayLayer
from configs import highway as highway_configs

INPUT = {"fc": (2, 28, 28, 1), "conv": (2, 32, 32, 3)}


def n_params(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def run(f, *args):
  """jit(f)(*args), compiled without XLA's expensive optimisations (compiling is the cost here)."""
  compiled = jax.jit(f).lower(*args).compile(
      compiler_options={"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True})
  return compiled(*args)


def abstract_params(config):
  module = models.build(config.model)
  return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(INPUT[config.model.form])))["params"]


def test_fc_counts_follow_the_papers_layer_sizes():
  # §3.1: 50-unit highway layers and 71-unit plain layers have ~5,000 parameters each.
  highway = 2 * (50 * 50 + 50)
  plain = 71 * 71 + 71
  assert (highway, plain) == (5100, 5112)
  # Depth 10 on MNIST: 784 -> 50 plain layer, 9 highway layers, 50 -> 10 softmax layer.
  count = lambda variant: n_params(abstract_params(highway_configs.get_config(variant)))
  assert count("highway_fc") == 784 * 50 + 50 + 9 * highway + 510
  assert count("plain_fc") == 784 * 71 + 71 + 9 * plain + 720
  deep = highway_configs.get_config("highway_fc")
  deep.model.depth = 100
  assert n_params(abstract_params(deep)) == 784 * 50 + 50 + 99 * highway + 510


def test_conv_form_is_a_19_layer_net():
  params = abstract_params(highway_configs.get_config("highway_cifar"))
  layers = [k for k in params if k.startswith("stage")] + ["head"]
  assert len(layers) == 19  # 3 plain stage convs + 15 highway layers + the classifier
  expected = 0
  cin = 3
  for width in (32, 64, 128):
    expected += 9 * cin * width + width + 5 * 2 * (9 * width * width + width)
    cin = width
  expected += 128 * 10 + 10
  assert n_params(params) == expected == 2_032_138  # paper's 19-layer highway net: 2.3M (Table 2)


@pytest.mark.parametrize("form", ["fc", "conv"])
def test_plain_net_has_the_same_layers_without_gates(form):
  gated = highway_configs.get_config(f"highway_{'fc' if form == 'fc' else 'cifar'}")
  plain = highway_configs.get_config(f"highway_{'fc' if form == 'fc' else 'cifar'}")
  plain.model.gated = False
  p_gated, p_plain = abstract_params(gated), abstract_params(plain)
  assert set(p_gated) == set(p_plain)
  gates = [k for k, v in p_gated.items() if "T" in v]
  assert gates and all("T" not in v for v in p_plain.values())
  assert n_params(p_gated) - n_params(p_plain) == sum(n_params(p_gated[k]["T"]) for k in gates)


@pytest.mark.parametrize("bias", [-1.0, -3.0])
def test_gate_bias_starts_where_set(bias):
  config = highway_configs.get_config("highway_fc")
  config.model.gate_bias_init = bias
  module = models.build(config.model)
  params = run(module.init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)))["params"]
  gate_biases = [params[k]["T"]["bias"] for k in params if "T" in params[k]]
  assert len(gate_biases) == 9
  assert all(np.all(b == bias) for b in gate_biases)


def test_closed_gates_carry_the_input_through():
  x = jax.random.normal(jax.random.key(0), (4, 16))
  layer = HighwayLayer(16, gate_bias_init=-30.0)
  y = layer.apply(layer.init(jax.random.key(1), x, train=False), x, train=False)
  np.testing.assert_allclose(y, x, atol=1e-5)
  open_layer = HighwayLayer(16, gate_bias_init=30.0)
  variables = open_layer.init(jax.random.key(1), x, train=False)
  h = jax.nn.relu(x @ variables["params"]["H"]["kernel"] + variables["params"]["H"]["bias"])
  np.testing.assert_allclose(open_layer.apply(variables, x, train=False), h, atol=1e-5)


@pytest.mark.parametrize("variant", sorted(highway_configs.VARIANTS))
def test_forward_and_backward(variant):
  config = highway_configs.get_config(variant)
  config.model.dropout_rate = 0.1
  module = models.build(config.model)
  x = jax.random.normal(jax.random.key(1), INPUT[config.model.form])
  params = run(module.init, jax.random.key(0), x)["params"]

  def loss(p):
    logits = module.apply({"params": p}, x, train=True, rngs={"dropout": jax.random.key(2)})
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32
    return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.array([3, 7])).mean()

  value, grads = run(jax.value_and_grad(loss), params)
  assert np.isfinite(value)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert float(jnp.abs(grads["head"]["kernel"]).sum()) > 0
  first = "layer1" if config.model.form == "fc" else "stage1_plain"
  assert float(jnp.abs(grads[first]["H"]["kernel"]).sum()) > 0  # the gradient reaches the bottom


def test_bn_option_adds_batch_stats():
  config = highway_configs.get_config("highway_cifar")
  config.model.bn = True
  config.model.stages = (1, 1)
  module = models.build(config.model)
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3))))
  assert "batch_stats" in variables and "H_bn" in variables["params"]["stage1_layer1"]
  assert "bias" not in variables["params"]["stage1_layer1"]["H"]


def train_on_digits(gated: bool, steps: int = 80):
  """`steps` of SGD with momentum on scikit-learn's 8x8 digits; (loss before, loss after, accuracy)."""
  from sklearn.datasets import load_digits
  digits = load_digits()
  images = digits.images[..., None] / 16.0
  x = jnp.asarray((images - images.mean()) / images.std(), jnp.float32)  # as the pipeline normalises
  y = jnp.asarray(digits.target)
  config = highway_configs.get_config("highway_fc")
  config.model.depth = 20
  config.model.gated = gated
  module = models.build(config.model)
  params = run(module.init, jax.random.key(0), x[:1])["params"]
  opt = optax.sgd(0.1, momentum=0.9)
  state = opt.init(params)

  def loss(p, xb, yb):
    return optax.softmax_cross_entropy_with_integer_labels(module.apply({"params": p}, xb), yb).mean()

  @jax.jit
  def step(p, s, xb, yb):
    updates, s = opt.update(jax.grad(loss)(p, xb, yb), s, p)
    return optax.apply_updates(p, updates), s

  full_loss = jax.jit(loss)
  before = float(full_loss(params, x, y))
  order = np.random.default_rng(0).permutation(len(y))
  for i in range(steps):
    start = (i * 128) % 1664
    params, state = step(params, state, x[order[start:start + 128]], y[order[start:start + 128]])
  accuracy = float(jnp.mean(jnp.argmax(module.apply({"params": params}, x), -1) == y))
  return before, float(full_loss(params, x, y)), accuracy


def test_depth_20_fc_highway_trains_on_digits():
  before, after, accuracy = train_on_digits(gated=True)
  assert after < 0.3 * before and accuracy > 0.9, (before, after, accuracy)
  # Fig. 1's point at this depth: the plain net of the same layers, same steps, lags far behind.
  _, plain_after, _ = train_on_digits(gated=False)
  assert plain_after > 2 * after, (after, plain_after)


def test_unknown_variant_and_form_fail_clearly():
  with pytest.raises(ValueError, match="highway_cifar"):
    highway_configs.get_config("highway_imagenet")
  module = models.get_class("highway")(form="recurrent")
  with pytest.raises(ValueError, match="'fc' or 'conv'"):
    module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
