"""A run's parts, built once from a config: model, optimizer and schedule, initial state, jitted steps.

`Trainer` (loop.py), `classic.bench`, `launch.accelerator_check` and the lowering test
(tests/train/test_lowering.py) all build their train step here, so the step that is timed or lowered
for a GPU/TPU is the one that trains: same jit, shardings, donation and in-flight bound.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from classic import models, platform
from classic.data import augment, on_device
from classic.train import mesh as mesh_lib, optim, state as state_lib, step as step_lib


@dataclasses.dataclass
class Parts:
  model: Any
  tx: optax.GradientTransformation
  lr_fn: Callable[[jax.Array], jax.Array]
  input_shape: tuple[int, int, int, int]     # (1, H, W, C): what the model is initialised with
  init: Callable[[], state_lib.TrainState]   # jitted, state replicated over the mesh
  step_fn: Any                               # jax.jit(train_step): (state, batch) -> (state, metrics)
  train_step: Any                            # step_fn behind the CPU in-flight bound (classic.platform)
  eval_step: Any                             # jax.jit(eval_step): (variables, batch) -> sums
  colour_inputs: dict[str, int] = dataclasses.field(default_factory=dict)  # per-image colour params
  steps_per_call: int = 1                    # config.steps_per_call, K
  steps_fn: Any = None                       # K > 1 off the CPU: jax.jit(train_steps) over K stacked batches
  train_steps: Any = None                    # steps_fn behind the in-flight bound
  # config.data_on_device: the steps take (state, data, order, seeds) instead of (state, batch) and
  # compute their batch on the device (classic.data.on_device); `seeds`: the replicas' (a scalar for one).
  on_device: bool = False
  replicas: int = 1                          # config.replicas: leading axis of the state, the metrics, the sums
  seeds: Any = None

  def device_inputs(self, source, config, mesh: Mesh, steps: int) -> tuple:
    """(data, order, seeds): what the steps take with data_on_device, for a run of `steps` steps."""
    data = on_device.put(source, config.augment, mesh)
    order = on_device.order(jax.device_get(self.seeds), steps, config.batch_size, len(source), mesh)
    return data, order, self.seeds

  def abstract_state(self) -> state_lib.TrainState:
    """The state's shapes and dtypes, without computing it (for lowering and checkpoint restore)."""
    return jax.eval_shape(self.init)

  def abstract_batch(self, batch_size: int, steps: int = 1) -> dict[str, jax.ShapeDtypeStruct]:
    """A training batch's shapes: uint8 images at the config's input size, int32 labels, and the
    per-image colour parameters the config draws (PCA lighting, photometric distortions); with
    `steps` > 1, that many batches stacked on a leading axis (what steps_fn takes)."""
    lead = (steps,) if steps > 1 else ()
    shape = lead + (batch_size,) + self.input_shape[1:]
    return {"image": jax.ShapeDtypeStruct(shape, jnp.uint8),
            "label": jax.ShapeDtypeStruct(shape[:len(lead) + 1], jnp.int32),
            **{k: jax.ShapeDtypeStruct(shape[:len(lead) + 1] + (n,), jnp.float32)
               for k, n in self.colour_inputs.items()}}


def eval_step(model, config, mesh: Mesh):
  """jax.jit(eval_step) for `model` (the run's own, or another over its variables: classic.lesion);
  with config.replicas > 1, over each replica's variables (sums with a leading replica axis)."""
  fn = functools.partial(step_lib.eval_step, model=model, config=config)
  if config.get("replicas", 1) > 1:
    fn = jax.vmap(fn, in_axes=(0, None))
  return jax.jit(fn, out_shardings=mesh_lib.replicated(mesh))


def _device_batch(data, order, seed, step, *, sharding, **batch_args):
  """on_device.batch, its rows laid out along the mesh's `data` axis like a host batch."""
  return jax.lax.with_sharding_constraint(on_device.batch(data, order, seed, step, **batch_args), sharding)


def build(config, mesh: Mesh, channels: int | None = None) -> Parts:
  """The parts of a run of `config` on `mesh`; `channels` defaults to config.channels."""
  repl = mesh_lib.replicated(mesh)
  input_shape = (1, config.image_size, config.image_size, channels or config.channels)
  model = models.build(config.model, dtype=jnp.bfloat16 if config.half_precision else None)
  tx, lr_fn = optim.create(config)
  n = config.get("replicas", 1)
  # Replica i is the run of seed + i: its parameters, dropout and (on the device) data order.
  seeds = jax.device_put(jnp.asarray(config.seed + (np.arange(n) if n > 1 else 0), jnp.int32), repl)
  create = functools.partial(state_lib.create, model, tx, config, input_shape)
  init = jax.jit((lambda: jax.vmap(create)(seeds)) if n > 1 else create, out_shardings=repl)
  step_args = dict(model=model, tx=tx, lr_fn=lr_fn, config=config)
  k = config.get("steps_per_call", 1)
  data_on_device = config.get("data_on_device", False)
  if data_on_device:
    batch_fn = functools.partial(_device_batch, sharding=mesh_lib.data_sharded(mesh), batch_size=config.batch_size,
                                 augment=config.augment)
    one = functools.partial(step_lib.train_step_on_device, batch_fn=batch_fn, **step_args)
    if n > 1:
      one = jax.vmap(one, in_axes=(0, None, 0, 0))   # each replica: its state, order and seed
    many = functools.partial(step_lib.repeat_on_device, one_step=one, steps=k)
  else:
    one = functools.partial(step_lib.train_step, **step_args)
    many = functools.partial(step_lib.train_steps, **step_args)
  step_fn = jax.jit(one, out_shardings=(repl, repl), donate_argnums=0)
  steps_fn = None
  if k > 1 and platform.scan_steps():
    steps_fn = jax.jit(many, out_shardings=(repl, repl), donate_argnums=0)
  bound = platform.max_inflight()
  return Parts(model=model, tx=tx, lr_fn=lr_fn, input_shape=input_shape, init=init, step_fn=step_fn,
               train_step=platform.BoundedInflight(step_fn, bound),
               eval_step=eval_step(model, config, mesh), colour_inputs=augment.colour_widths(config),
               steps_per_call=k, steps_fn=steps_fn,
               train_steps=steps_fn and platform.BoundedInflight(steps_fn, bound),
               on_device=data_on_device, replicas=n, seeds=seeds)
