"""The shared layers' fast paths compute the same function as their textbook forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from classic.models import layers


def _textbook_bn(x, axes, epsilon):
  """Two-pass statistics, backward by autodiff: the reference for layers.normalize."""
  mean = jnp.mean(x, axes, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axes, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + epsilon), mean, var


@pytest.mark.parametrize("shape, axes", [((1, 8, 5, 5, 3), (1, 2, 3)),   # whole batch, NHWC
                                         ((4, 2, 5, 5, 3), (1, 2, 3)),   # 4 ghost-BN groups of 2
                                         ((1, 16, 7), (1,))])            # dense features
def test_normalize_values_and_gradients_match_the_textbook_form(shape, axes):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(3.0, 2.0, shape), jnp.float32)
  weights = jnp.asarray(rng.normal(size=shape), jnp.float32)
  fast = lambda x: layers.normalize(x, axes, 1e-5)
  slow = lambda x: _textbook_bn(x, axes, 1e-5)
  for a, b in zip(fast(x), slow(x)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

  def loss(fn):  # every output gets a cotangent: y, and the statistics the running averages use
    return lambda x: jnp.sum(fn(x)[0] * weights) + 0.3 * jnp.sum(fn(x)[1]) + 0.7 * jnp.sum(fn(x)[2])
  np.testing.assert_allclose(jax.grad(loss(fast))(x), jax.grad(loss(slow))(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 4096, 8), (1, 4, 1, 1, 8)])  # a large batch; 4 examples at 1x1
def test_normalize_variance_is_accurate_when_the_mean_dwarfs_the_spread(shape):
  """One-pass E[x^2] - E[x]^2 (flax's fast variance) loses the variance here; the two-pass form keeps it."""
  x = jnp.asarray(np.random.default_rng(1).normal(1e4, 1.0, shape), jnp.float32)
  axes = tuple(range(1, len(shape) - 1))
  _, mean, var = layers.normalize(x, axes, 1e-5)
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
