"""A run config checked before anything is loaded or built: every mistake said at once, with the fix.

`check(config, explicit)` refuses, in one error listing all of them:
- a value outside an enumerated field's choices (classic.train.defaults.CHOICES; the model's own
  fields through classic.models.check_config: `model.shortcut=D`, an unknown factorization, ...);
- a command-line override (`explicit`: the dotted names set with --config.x=v) of a field the rest of
  the config makes inert (defaults.USED_ONLY_WITH, the model's `unused_fields`): `scale_range` without
  the 'imagenet' augmentation, `optimizer.boundaries` with a constant schedule, a plain net's shortcut;
- counts that cannot work: non-positive steps or intervals, batch sizes that do not split evenly over
  the devices.
"""

from __future__ import annotations

from typing import Iterable

from classic import models
from classic.data import on_device
from classic.train import defaults

POSITIVE = ("batch_size", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints")


def get(config, dotted: str):
  """config['a.b'] for a dotted field name."""
  value = config
  for part in dotted.split("."):
    value = value[part]
  return value


def check(config, explicit: Iterable[str] = (), num_devices: int = 1) -> None:
  """Raises ValueError naming every problem of `config` (see the module docstring)."""
  explicit = set(explicit)
  problems = []
  for field, choices in defaults.CHOICES.items():
    value = get(config, field)
    if value not in choices:
      problems.append(f"{field} must be one of {', '.join(map(repr, choices))}, got {value!r}")
  for field, (other, users) in defaults.USED_ONLY_WITH.items():
    if field in explicit and get(config, other) not in users:
      problems.append(f"--config.{field} does nothing with {other}={get(config, other)!r} (it counts only with "
                      f"{' or '.join(map(repr, users))}): drop it, or set --config.{other}")
  for field in POSITIVE:
    if config[field] <= 0:
      problems.append(f"{field} must be positive, got {config[field]}")
  if config.train_steps < 0:
    problems.append(f"train_steps must be >= 0, got {config.train_steps}")
  problems += interval_problems(config)
  if config.get("replicas", 1) < 1:
    problems.append(f"replicas must be >= 1, got {config.replicas}")
  elif config.get("replicas", 1) > 1:
    if not config.get("data_on_device", False):
      problems.append(f"replicas={config.replicas} draws each replica's data order on the device: set "
                      "--config.data_on_device=True (in-memory data sets with the 'none', 'shift' or 'cifar' augmentation)")
    if config.init_from:
      problems.append("replicas > 1 starts each replica from its own seed: init_from cannot set them; drop one")
  device_problem = on_device.problem(config)
  if device_problem:
    problems.append(device_problem)
  for field in ("batch_size", "eval_batch_size"):
    size = config[field]
    if size < 0 or size and size % num_devices:
      lower, upper = size // num_devices * num_devices, -(-size // num_devices) * num_devices
      fix = " or ".join(str(n) for n in (lower, upper) if n > 0)
      problems.append(f"{field} {size} must be a multiple of the {num_devices} devices: use {fix}"
                      + (" (0: the batch_size)" if field == "eval_batch_size" else ""))
  if config.eval_crop == "dense" and not config.model.get("fully_conv", True):
    problems.append("eval_crop='dense' runs the net over whole images of any size: set "
                    "--config.model.fully_conv=True (its FC layers as convolutions)")
  if config.get("eval_image_size", 0) and config.eval_image_size != config.image_size:
    problem = _input_size_problem(config, config.eval_image_size)
    if problem:
      problems.append(problem)
  try:
    models.check_config(config.model, explicit)
  except ValueError as e:
    problems.append(str(e).rstrip("."))
  if problems:
    raise ValueError("The config cannot run:\n  - " + "\n  - ".join(problems) + ".")


def interval_problems(config) -> list[str]:
  """Why the run's intervals cannot run with its steps_per_call (checked again once epochs are steps)."""
  k = config.get("steps_per_call", 1)
  if k < 1:
    return [f"steps_per_call must be >= 1, got {k}"]
  uneven = [f"{f} {config[f]}" for f in ("train_steps", "log_every", "eval_every", "checkpoint_every") if config[f] % k]
  if uneven:
    return [f"with steps_per_call={k} the run logs, evaluates, checkpoints and stops only between calls "
            f"of {k} steps, so {', '.join(uneven)} must be multiples of {k}"]
  return []


def _input_size_problem(config, size: int) -> str | None:
  """Why the model cannot evaluate size x size inputs (its classifier needs the training size), or None."""
  import jax
  import jax.numpy as jnp
  module = models.build(config.model)
  shape = (1, config.image_size, config.image_size, config.get("channels", 3))
  try:
    variables = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(shape), train=False))
    jax.eval_shape(lambda v: module.apply(v, jnp.zeros((1, size, size, shape[-1])), train=False), variables)
  except Exception:  # noqa: BLE001 - a shape error of the model at that size
    return (f"eval_image_size {size} does not fit {config.model.name}: its classifier takes the training size "
            f"{config.image_size} only (fully connected layers); leave eval_image_size at 0, or set "
            "--config.model.fully_conv=True where the model has it")
  return None
