"""Random weights for model tests, without compiling `init` (which costs 10-40 s per net on CPU)."""

import jax
import jax.numpy as jnp
import numpy as np


def random_variables(tree, seed=0):
  """He-scaled normal kernels, unit BN scale/variance, zero biases/means, for a tree of shapes."""
  rng = np.random.default_rng(seed)

  def fill(path, s):
    key = jax.tree_util.keystr(path)
    if key.endswith("['kernel']"):
      return (rng.standard_normal(s.shape) * np.sqrt(2.0 / np.prod(s.shape[:-1]))).astype(np.float32)
    if key.endswith("['scale']") or key.endswith("['var']"):
      return np.ones(s.shape, np.float32)
    return np.zeros(s.shape, np.float32)

  return jax.tree_util.tree_map_with_path(fill, tree)


def pool_fill(shapes, seed=0):
  """He-scaled pseudo-random values cut from one pool of 1M normals: fast even for 140M parameters.
  BatchNorm statistics get mean 0, variance 1."""
  pool = np.random.default_rng(seed).standard_normal(1 << 20).astype(np.float32)
  flat, treedef = jax.tree_util.tree_flatten_with_path(shapes)
  out = []
  for i, (path, s) in enumerate(flat):
    name = jax.tree_util.keystr(path)
    n = int(np.prod(s.shape))
    if "batch_stats" in name:
      out.append(jnp.full(s.shape, 1.0 if "var" in name else 0.0, jnp.float32))
      continue
    scale = np.sqrt(2.0 / (n // s.shape[-1])) if len(s.shape) > 1 else 0.1
    out.append(jnp.asarray(np.resize(np.roll(pool, 7919 * i), n).reshape(s.shape) * scale))
  return jax.tree.unflatten(treedef, out)
