"""Schedules in epochs: a recipe says what its paper says ("divide by 10 at epochs 30 and 60, 90 epochs"),
and the steps follow from the training split's size and the batch size.

Each step field has an epochs twin (EPOCH_FIELDS); a recipe sets the twin, and `resolve` sets the
step field from it: steps = round(epochs x steps per epoch), one epoch being round(examples / batch)
steps. A recipe's steps are resolved when it is loaded, for its own data set's known size
(TRAIN_EXAMPLES: what `common.load` shows and what a sweep plans with), and again when a run started
from the command line begins (classic.train.setup.prepare), for the training split it actually reads
and the batch it actually uses: a recipe moved to CIFAR keeps its epochs, and --config.batch_size=128
keeps them too. A step field set on the command line wins over its twin, which is then cleared
(`prefer_explicit`); a config built in code, or a workdir's, keeps the steps it holds. Recipes
whose papers count iterations (He et al. on CIFAR: 32k, 48k, 64k; VGG's 370k) leave the twins at 0.
big_vision's `utils.steps()` (epochs, examples or steps -> steps) is the model.
"""

from __future__ import annotations

from typing import Iterable

# (step field, its epochs twin)
EPOCH_FIELDS = (("train_steps", "train_epochs"), ("eval_every", "eval_every_epochs"),
                ("checkpoint_every", "checkpoint_every_epochs"),
                ("optimizer.boundaries", "optimizer.boundary_epochs"),
                ("optimizer.decay_every", "optimizer.decay_every_epochs"))

# Training-split sizes of the recipes' own data sets, known before any data is read.
TRAIN_EXAMPLES = {"imagenet2012": 1_281_167}


def _get(config, dotted: str):
  node = config
  for part in dotted.split("."):
    node = node[part]
  return node


def _set(config, dotted: str, value) -> None:
  node, _, leaf = dotted.rpartition(".")
  (_get(config, node) if node else config)[leaf] = value


def steps_per_epoch(examples: int, batch_size: int) -> int:
  return max(1, round(examples / batch_size))


def steps(epochs: float, examples: int, batch_size: int) -> int:
  """The steps of `epochs` passes over `examples` in batches of `batch_size` (at least 1)."""
  return max(1, round(epochs * steps_per_epoch(examples, batch_size)))


def resolve(config, examples: int | None) -> dict[str, object]:
  """Sets every step field whose epochs twin is set (> 0, or a non-empty tuple) from the twin, for a
  training split of `examples` (None: unknown, nothing is set). Returns {step field: value} set."""
  if not examples:
    return {}
  done = {}
  for field, twin in EPOCH_FIELDS:
    epochs = _get(config, twin)
    if isinstance(epochs, (tuple, list)):
      if not epochs:
        continue
      value = tuple(steps(e, examples, config.batch_size) for e in epochs)
    elif epochs > 0:
      value = steps(epochs, examples, config.batch_size)
    else:
      continue
    _set(config, field, value)
    done[field] = value
  return done


def prefer_explicit(config, explicit: Iterable[str]) -> list[str]:
  """Clears the epochs twin of every step field the command line set (the steps given win); returns
  the twins cleared. A twin set on the command line as well is a contradiction, said in a sentence."""
  explicit = set(explicit)
  cleared = []
  for field, twin in EPOCH_FIELDS:
    if field not in explicit:
      continue
    if twin in explicit:
      raise ValueError(f"--config.{field} and --config.{twin} both set the same length: give one of them.")
    value = _get(config, twin)
    if value:
      _set(config, twin, () if isinstance(value, (tuple, list)) else 0.0)
      cleared.append(twin)
  return cleared
