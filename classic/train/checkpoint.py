"""Orbax checkpoints of the train state and the data position, and the workdir's config.json.

Writes are asynchronous and atomic (Orbax finalises a step directory only when every file is
written), so a run killed at any moment, even mid-write, restarts from the last complete step. The
data position is the step itself (the pipeline is a function of seed and step); it is saved beside
the state as JSON so a reader can see where the data stream stands.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging

# Fields that may change when a run is resumed: they do not change what is being trained.
RESUMABLE_FIELDS = {"train_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints",
                    "data_dir", "cache_dir", "eval_batch_size", "nonfinite", "init_from"}


class ConfigMismatch(Exception):
  pass


def write_config(workdir: str, config, override: bool = False) -> None:
  """Writes config.json; refuses a workdir whose config differs in what is trained, unless `override`."""
  path = os.path.join(workdir, "config.json")
  new = json.loads(config.to_json_best_effort())
  if os.path.exists(path) and not override:
    with open(path) as f:
      old = json.load(f)
    diffs = sorted(_diff(old, new))
    diffs = [d for d in diffs if d.split(".")[0] not in RESUMABLE_FIELDS]
    if diffs:
      raise ConfigMismatch(
          f"{workdir} holds a run with another config; differing fields: {', '.join(diffs)}. "
          "Use a new --workdir, or pass --override_config to continue this run with the new config.")
  if jax.process_index() == 0:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(new, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
  if isinstance(a, dict) and isinstance(b, dict):
    out = []
    for k in set(a) | set(b):
      out += _diff(a.get(k), b.get(k), f"{prefix}{k}.") if k in a and k in b else [f"{prefix}{k}"]
    return out
  return [] if a == b else [prefix.rstrip(".")]


def read_config(workdir: str):
  import ml_collections
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"No config.json in {workdir}: give --config, or a workdir of an earlier run.")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


class Checkpointer:

  def __init__(self, workdir: str, keep: int, async_save: bool = True):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self.manager = ocp.CheckpointManager(
        self.directory,
        item_names=("state", "data"),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             enable_async_checkpointing=async_save),
    )

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, data_position: dict[str, Any]) -> None:
    self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                    data=ocp.args.JsonSave(data_position)), force=True)

  def restore(self, abstract_state, step: int | None = None):
    """(state, data position) of `step` (default: the latest complete one) onto the target shardings."""
    step = self.manager.latest_step() if step is None else step
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    logging.info("Restored step %d from %s", step, self.directory)
    return restored["state"], restored["data"]

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def abstract(tree):
  """Shapes, dtypes and shardings of a tree of arrays: the restore target."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)
