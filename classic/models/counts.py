"""Per-layer output shapes, parameters and multiply-accumulates of a model, without running it.

Everything is traced with `jax.eval_shape`, so even VGG-E at 224 costs no FLOPs. A layer's MACs are
its output positions times its kernel size (kernel.size counts grouped and sparse kernels right);
counts are trainable parameters only (not BatchNorm running statistics), MACs of one forward pass of
one image in eval mode.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass
class Row:
  path: str
  kind: str
  output_shape: tuple[int, ...]
  params: int
  macs: int


def param_count(params) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


def layer_table(model: nn.Module, input_shape: tuple[int, ...]) -> list[Row]:
  """One row per module call that owns parameters, in call order, for a batch of one."""
  rows: list[Row] = []
  shape = (1,) + tuple(input_shape[1:])

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name != "__call__":
      return out
    module = context.module
    own = module.variables.get("params", {}) if module.scope is not None else {}
    leaves = {k: v for k, v in own.items() if hasattr(v, "shape")}
    if leaves and hasattr(out, "shape"):
      kernel = leaves.get("kernel")
      spatial = int(np.prod(out.shape[1:-1])) if out.ndim > 2 else 1
      macs = spatial * int(np.prod(kernel.shape)) if kernel is not None else 0
      rows.append(Row("/".join(module.path), type(module).__name__, tuple(out.shape[1:]),
                      sum(int(np.prod(v.shape)) for v in leaves.values()), macs))
    return out

  def run():
    variables = model.init(jax.random.key(0), jnp.zeros(shape, jnp.float32), train=True)
    with nn.intercept_methods(interceptor):
      return model.apply(variables, jnp.zeros(shape, jnp.float32), train=False)

  jax.eval_shape(run)
  return rows


def totals(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
  """{'params': trainable parameters (incl. training-only heads), 'macs': eval forward MACs per image}."""
  shape = (1,) + tuple(input_shape[1:])
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=True))
  return {"params": param_count(variables["params"]),
          "macs": sum(r.macs for r in layer_table(model, input_shape))}
