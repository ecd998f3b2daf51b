"""The shared layers' fast paths compute the same function as their textbook forms."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from classic import platform
from classic.models import cpu_kernels, layers


def _textbook_bn(x, scale, bias, axes, epsilon):
  """Two-pass statistics, backward by autodiff: the reference for cpu_kernels.normalize."""
  mean = jnp.mean(x, axes, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axes, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + epsilon) * scale + bias, mean, var


@pytest.mark.parametrize("shape, axes", [((1, 8, 5, 5, 3), (1, 2, 3)),   # whole batch, NHWC (the fast sums)
                                         ((1, 8, 5, 5, 3), (1, 2)),      # a partial reduction: jnp.sum
                                         ((4, 2, 5, 5, 3), (1, 2, 3)),   # 4 ghost-BN groups of 2
                                         ((1, 7, 5, 5, 3), (1, 2, 3)),   # an odd number of positions
                                         ((1, 16, 7), (1,))])            # dense features
def test_normalize_values_and_gradients_match_the_textbook_form(shape, axes):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(3.0, 2.0, shape), jnp.float32)
  scale, bias = (jnp.asarray(rng.normal(size=shape[-1:]), jnp.float32) for _ in range(2))
  weights = jnp.asarray(rng.normal(size=shape), jnp.float32)
  fast = lambda x, scale, bias: cpu_kernels.normalize(x, scale, bias, axes, 1e-5)
  slow = lambda x, scale, bias: _textbook_bn(x, scale, bias, axes, 1e-5)
  for a, b in zip(fast(x, scale, bias), slow(x, scale, bias)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

  def loss(fn):  # every output gets a cotangent: y, and the statistics the running averages use
    def total(*args):
      y, mean, var = fn(*args)
      return jnp.sum(y * weights) + 0.3 * jnp.sum(mean) + 0.7 * jnp.sum(var)
    return total
  for a, b in zip(jax.grad(loss(fast), (0, 1, 2))(x, scale, bias), jax.grad(loss(slow), (0, 1, 2))(x, scale, bias)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_batch_sums_equal_the_plain_sums():
  """The fast per-channel sums add the same numbers as jnp.sum, in an order XLA:CPU runs faster."""
  x = jnp.asarray(np.random.default_rng(3).normal(3.0, 2.0, (1, 32, 56, 56, 16)), jnp.float32)
  exact = np.asarray(x, np.float64).sum((1, 2, 3), keepdims=True)
  fast = jax.jit(lambda v: cpu_kernels.batch_sum(v, (1, 2, 3)))(x)
  assert fast.shape == (1, 1, 1, 1, 16)
  np.testing.assert_allclose(fast, exact, rtol=1e-6)
  np.testing.assert_allclose(fast, jnp.sum(x, (1, 2, 3), keepdims=True), rtol=1e-6)


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("shape", [(1, 4096, 8), (1, 4, 1, 1, 8)])  # a large batch; 4 examples at 1x1
def test_normalize_variance_is_accurate_when_the_mean_dwarfs_the_spread(shape, kernels):
  """One-pass E[x^2] - E[x]^2 (flax's fast variance) loses the variance here; the two-pass form keeps it."""
  x = jnp.asarray(np.random.default_rng(1).normal(1e4, 1.0, shape), jnp.float32)
  axes = tuple(range(1, len(shape) - 1))
  with platform.use_cpu_kernels(kernels):
    _, mean, var = layers.normalize(x, jnp.ones(shape[-1:]), jnp.zeros(shape[-1:]), axes, 1e-5)
  x64 = np.asarray(x, np.float64)
  np.testing.assert_allclose(var, x64.var(axes, keepdims=True), rtol=1e-4)
  np.testing.assert_allclose(mean, x64.mean(axes, keepdims=True), rtol=1e-6)
  unshifted = np.mean(np.square(x), axes) - np.square(np.mean(x, axes))  # float32, as a one-pass BN would
  assert np.max(np.abs(unshifted - x64.var(axes))) > 10 * np.max(np.abs(var - x64.var(axes, keepdims=True)))


def test_fusion_barrier_is_the_identity_and_survives_xla_cpu():
  x = jnp.asarray(np.random.default_rng(2).normal(size=(4, 6, 6, 8)), jnp.float32).at[0, 0, 0, 0].set(-1.0)
  f = lambda x: jnp.sum(jnp.sin(layers.fusion_barrier(x * 2.0)) * x)
  g = lambda x: jnp.sum(jnp.sin(x * 2.0) * x)
  np.testing.assert_array_equal(jax.jit(f)(x), jax.jit(g)(x))
  np.testing.assert_array_equal(jax.jit(jax.grad(f))(x), jax.jit(jax.grad(g))(x))
  # the barrier is only worth its copy if XLA:CPU keeps it, forward and backward
  hlo = jax.jit(jax.grad(f)).lower(x).compile().as_text()
  assert hlo.count("conditional(") == 2


@pytest.mark.parametrize("window, strides, padding", [((3, 3), (2, 2), ((1, 1), (1, 1))),   # ResNet's stem
                                                      ((3, 3), (2, 2), "VALID"),           # Inception v3
                                                      ((3, 3), (1, 1), "SAME"),            # Inception branches
                                                      ((2, 2), (2, 2), "VALID"),           # VGG, Highway
                                                      ((3, 3), (2, 2), ((0, 1), (0, 1)))])  # Caffe's ceil mode
def test_max_pool_matches_flax_including_ties(window, strides, padding):
  """After a ReLU most windows tie at 0: each window's gradient must go to its first maximum only."""
  rng = np.random.default_rng(4)
  x = jnp.maximum(jnp.asarray(rng.normal(size=(2, 9, 9, 3)), jnp.float32), 0.0)
  x = x.at[0, :3, :3, 0].set(1.0)  # ties at a positive value too
  fast = jax.jit(lambda v: layers.max_pool(v, window, strides, padding))
  slow = jax.jit(lambda v: nn.max_pool(v, window, strides, padding))
  np.testing.assert_array_equal(fast(x), slow(x))
  cotangent = jnp.asarray(rng.normal(size=slow(x).shape), jnp.float32)
  grad = lambda f: jax.jit(jax.grad(lambda v: jnp.sum(f(v) * cotangent)))(x)
  np.testing.assert_allclose(grad(fast), grad(slow), rtol=1e-6, atol=1e-6)
  assert np.count_nonzero(grad(fast)) == np.count_nonzero(grad(slow))


@pytest.mark.parametrize("kernel, strides, padding", [((1, 1), (1, 1), "SAME"),            # bottleneck 1x1
                                                      ((1, 1), (2, 2), ((0, 0), (0, 0))),  # projection shortcut
                                                      ((1, 1), (2, 2), "SAME"),
                                                      ((3, 3), (2, 2), ((1, 1), (1, 1)))])  # not pointwise: lax
def test_conv_matches_flax_values_and_gradients(kernel, strides, padding):
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.normal(size=(4, 6, 6, 8)), jnp.float32)
  ours, theirs = (cls(5, kernel, strides, padding=padding) for cls in (layers.Conv, nn.Conv))
  params = theirs.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.key(0), x)) == jax.tree.map(jnp.shape, params)
  np.testing.assert_allclose(ours.apply(params, x), theirs.apply(params, x), rtol=1e-6, atol=1e-6)  # sum order
  cotangent = jnp.asarray(rng.normal(size=theirs.apply(params, x).shape), jnp.float32)
  grads = [jax.jit(jax.grad(lambda p, v: jnp.sum(m.apply(p, v) * cotangent), (0, 1)))(params, x) for m in (ours, theirs)]
  for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
