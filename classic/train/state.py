"""The training state: everything a checkpoint must hold to continue a run bit for bit."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array            # number of updates applied
  params: Any
  batch_stats: Any           # BatchNorm running statistics ({} for nets without BN)
  opt_state: Any
  ema_params: Any            # Polyak average of params ({} when config.ema_decay == 0)
  rng: jax.Array             # raw key data (uint32) for dropout; folded with the step each update
  skipped: jax.Array         # updates skipped for a non-finite loss or gradient


def create(model, tx: optax.GradientTransformation, config, input_shape: tuple[int, ...],
           seed: jax.Array | int | None = None) -> TrainState:
  """Initialises parameters from `seed`, default config.seed (the data order has its own stream of the
  same seed); a traced seed gives one state per replica under jax.vmap (config.replicas)."""
  init_key, dropout_key = jax.random.split(jax.random.key(config.seed if seed is None else seed))
  variables = model.init({"params": init_key, "dropout": dropout_key}, jnp.zeros(input_shape, jnp.float32),
                         train=True)
  params = variables["params"]
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      batch_stats=variables.get("batch_stats", {}),
      opt_state=tx.init(params),
      ema_params=jax.tree.map(jnp.copy, params) if config.ema_decay else {},
      rng=jax.random.key_data(dropout_key),
      skipped=jnp.zeros((), jnp.int32),
  )


def variables(state: TrainState, ema: bool = False) -> dict[str, Any]:
  out = {"params": state.ema_params if ema else state.params}
  if state.batch_stats:
    out["batch_stats"] = state.batch_stats
  return out
