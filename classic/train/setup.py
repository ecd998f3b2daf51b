"""A run made ready for its loop, once, before it: `prepare` checks the config, moves a recipe to its
data set, checks the data, loads the splits, builds the program and restores the checkpoint.

  prepare(config, workdir, explicit)
    check: epochs.prefer_explicit             a step count set on the command line wins over the recipe's epochs
           validate.check(config, explicit)   every config mistake at once, before any data loads
    data_info.describe + adapt                a recipe moved to --config.dataset (the data describes itself)
    Pipeline(eval), Pipeline(train)           the splits, sharded per process
    epochs.resolve                            command line: a schedule in epochs, in steps of this split and batch
    checkpoint.check_config                   the workdir trains this config, or nothing yet
    _check_data (data_info.check, ...)        augmentation, channels and normalisation against the data
    build(config, mesh) -> Program            model, optimizer, schedule, jitted steps
    Program.init, Checkpointer.restore        the state: fresh, from init_from, or the last checkpoint
    Program.device_inputs                     config.data_on_device: the split and its order on the devices
  -> Prepared, which `Trainer` (loop.py) runs.

`build` alone gives the program for a config without data: `classic.bench`, `launch.accelerator_check`
and the lowering test (tests/train/test_lowering.py) build their train step there, so the step that is
timed or lowered for a GPU/TPU is the one that trains: same jit, shardings, donation and in-flight bound.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

import os

import numpy as np
from absl import logging

from classic import models, platform
from classic.data import augment, info as data_info, on_device, sources
from classic.data.pipeline import Pipeline
from classic.models import counts
from classic.train import (checkpoint, epochs, mesh as mesh_lib, optim, state as state_lib, step as step_lib,
                           validate)


@dataclasses.dataclass
class Program:
  """What a config trains and how, built once (`build`): the model, the optimizer and its schedule,
  and the jitted functions made of them (state init, train step(s), eval step)."""
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


def build(config, mesh: Mesh, channels: int | None = None) -> Program:
  """The program of a run of `config` on `mesh`; `channels` defaults to config.channels."""
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
  return Program(model=model, tx=tx, lr_fn=lr_fn, input_shape=input_shape, init=init, step_fn=step_fn,
               train_step=platform.BoundedInflight(step_fn, bound),
               eval_step=eval_step(model, config, mesh), colour_inputs=augment.colour_widths(config),
               steps_per_call=k, steps_fn=steps_fn,
               train_steps=steps_fn and platform.BoundedInflight(steps_fn, bound),
               on_device=data_on_device, replicas=n, seeds=seeds)


@dataclasses.dataclass
class Prepared:
  """A run ready for its loop (see `prepare`)."""
  config: Any
  mesh: Mesh
  program: Program
  train_data: Pipeline | None          # None for an evaluation only
  eval_data: Pipeline
  checkpointer: checkpoint.Checkpointer
  state: state_lib.TrainState
  start_step: int                      # the restored checkpoint's step (0 for a new run)
  window: list                         # metrics of a partly logged window, from the checkpoint
  device_inputs: tuple | None          # config.data_on_device: (data, order, seeds) on the devices
  params: int                          # parameters and multiply-adds per image, as logged
  macs: int


def check(config, explicit: Any = (), num_devices: int = 1) -> None:
  """The first step of `prepare`, alone (what a sweep plans with and classic.bench times): a step
  count the command line set wins over the recipe's epochs, then every config mistake at once
  (the batch split over `num_devices`; a sweep's launcher leaves the accelerators to its runs)."""
  epochs.prefer_explicit(config, explicit)
  validate.check(config, explicit, num_devices=num_devices)


def prepare(config, workdir: str, *, explicit: Any = None, eval_only: bool = False,
            override_config: bool = False) -> Prepared:
  """Everything before the loop, in order (module docstring). `explicit`: the dotted fields the
  command line set on a recipe (classic.main), which also moves it to a --config.dataset; None for a
  config taken as it is (a workdir's config.json). `eval_only`: no training split, nothing written."""
  os.makedirs(workdir, exist_ok=True)
  check(config, explicit or (), jax.device_count())   # before any data loads
  if explicit and "dataset" in explicit:
    data_info.adapt(config, explicit)
  mesh = mesh_lib.make_mesh()
  pid, pcount = jax.process_index(), jax.process_count()
  eval_data = Pipeline(config, train=False, process_index=pid, process_count=pcount, num_devices=jax.device_count())
  train_data = None if eval_only else Pipeline(config, train=True, process_index=pid, process_count=pcount)
  # A recipe's epochs were resolved for its own data and batch when it loaded; the command line may
  # have changed either (or the epochs): in steps of the split read here and its batch. A config taken
  # as it is (a workdir's, or built in code: explicit None) keeps the steps it has.
  if explicit is not None and train_data is not None and epochs.resolve(config, len(train_data)):
    problems = validate.interval_problems(config)
    if problems:
      raise ValueError(f"In steps of this data set ({len(train_data):,} training examples, batch "
                       f"{config.batch_size}): {problems[0]}.")
  if not eval_only:   # with every step count final
    checkpoint.check_config(workdir, config, override=override_config)
  channels = _check_data(config, train_data, eval_data)
  program = build(config, mesh, channels)
  state = program.init()
  checkpointer = checkpoint.Checkpointer(workdir, config.keep_checkpoints)
  start_step, window = 0, []
  if checkpointer.latest_step() is not None:
    state, position = checkpointer.restore(checkpoint.abstract(state))
    start_step, window = int(position["step"]), list(position.get("window", []))
  elif config.init_from:
    state = init_from(state, config.init_from, program.tx, mesh, ema=bool(config.ema_decay))
  if not eval_only:  # written once the run has started: a refused start leaves it as it was
    checkpoint.write_config(workdir, config)
  totals = counts.totals(program.model, program.input_shape)
  logging.info("%s: %s parameters, %s multiply-adds per image at %s.", config.variant or config.model.name,
               f"{totals['params']:,}", f"{totals['macs']:,}", program.input_shape[1:])
  logging.info("%s", platform.determinism_note(config.get("deterministic", True)))
  device_inputs = None
  if program.on_device and not eval_only:
    device_inputs = program.device_inputs(train_data.source, config, mesh, config.train_steps)
  return Prepared(config=config, mesh=mesh, program=program, train_data=train_data, eval_data=eval_data,
                  checkpointer=checkpointer, state=state, start_step=start_step, window=window,
                  device_inputs=device_inputs, params=totals["params"], macs=totals["macs"])


def _check_data(config, train_data: Pipeline | None, eval_data: Pipeline) -> int:
  """The data checks of a run, in one place: the augmentation against the training images' size,
  the channels and the normalisation against the images (each split's classes are checked where it
  loads, sources.check_classes). Returns the images' channel count."""
  sample = train_data or eval_data
  images = getattr(sample.source, "images", None)   # an in-memory split knows its shape
  channels = images.shape[-1] if images is not None else sources.probe(sample.source, count=1)[0].shape[-1]
  if train_data is not None:
    data_info.check(config, sample.source.name, None if images is None else images.shape[1:3], channels)
  if channels != config.channels:
    raise sources.DataError(f"{sample.source.name} has {channels}-channel images but config.channels is "
                            f"{config.channels}: set --config.channels={channels}.")
  for field, example in (("mean", "(0.0,)"), ("std", "(255.0,)")):
    if len(config[field]) not in (1, channels):
      raise sources.DataError(
          f"config.{field} has {len(config[field])} values for the {channels}-channel images of "
          f"{sample.source.name}: give {'1' if channels == 1 else f'1 or {channels}'} values, e.g. "
          f"--config.{field}='{example}'.")
  return channels


def init_from(state: state_lib.TrainState, source_workdir: str, tx: optax.GradientTransformation, mesh: Mesh,
              ema: bool) -> state_lib.TrainState:
  """`state` with the weights of another run's last checkpoint (config.init_from); a tensor that is
  absent there or shaped differently (a head of another class count) is kept freshly initialised."""
  repl = mesh_lib.replicated(mesh)
  other = checkpoint.Checkpointer(source_workdir, 1, async_save=False)
  if other.latest_step() is None:
    raise FileNotFoundError(f"init_from: no checkpoint in {source_workdir}/checkpoints.")
  restored = other.restore_arrays()
  other.close()

  def merge(mine, theirs, kind):
    flat_theirs = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(theirs)[0]}
    out, fresh = [], []
    for path, leaf in jax.tree_util.tree_flatten_with_path(mine)[0]:
      key = jax.tree_util.keystr(path)
      src = flat_theirs.get(key)
      if src is not None and tuple(src.shape) == tuple(leaf.shape):
        out.append(jax.device_put(np.asarray(src, leaf.dtype), repl))
      else:
        out.append(leaf)
        fresh.append(key)
    if fresh:
      logging.warning("init_from: %d %s tensors kept fresh (absent or differently shaped): %s",
                      len(fresh), kind, ", ".join(fresh[:6]))
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(mine), out)

  params = merge(state.params, restored["params"], "parameter")
  return state.replace(params=params, batch_stats=merge(state.batch_stats, restored.get("batch_stats", {}), "batch-stat"),
                       opt_state=jax.jit(tx.init, out_shardings=repl)(params), ema_params=params if ema else {})
