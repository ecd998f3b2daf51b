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
                    "train_epochs", "eval_every_epochs", "checkpoint_every_epochs",
                    "data_dir", "cache_dir", "eval_batch_size", "nonfinite", "init_from", "deterministic",
                    "steps_per_call"}


class ConfigMismatch(Exception):
  pass


def check_config(workdir: str, config, override: bool = False) -> None:
  """Refuses a workdir whose config.json differs in what is trained, unless `override`."""
  path = os.path.join(workdir, "config.json")
  if os.path.exists(path) and not override:
    with open(path) as f:
      old = json.load(f)
    diffs = differing_fields(old, json.loads(config.to_json_best_effort()))
    if diffs:
      raise ConfigMismatch(
          f"{workdir} holds a run with another config; differing fields: {', '.join(diffs)}. "
          "Use a new --workdir, or pass --override_config to continue this run with the new config.")


def write_config(workdir: str, config) -> None:
  """Writes config.json (atomically, on process 0)."""
  if jax.process_index() == 0:
    path = os.path.join(workdir, "config.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(json.loads(config.to_json_best_effort()), f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def differing_fields(old: dict, new: dict, ignore: set[str] = frozenset()) -> list[str]:
  """Dotted names of the fields in which two configs (as JSON dicts) differ in what is trained: not
  RESUMABLE_FIELDS, nor the names in `ignore`, nor a field that a newer version of the code added
  (absent from `old`) at its default value, which is what the older code did."""
  return sorted(d for d in _diff(old, new) if d.split(".")[0] not in RESUMABLE_FIELDS and d not in ignore
                and not (_lookup(old, d) is _ABSENT and _is_default(d, _lookup(new, d), new)))


_ABSENT = object()


def _lookup(tree: dict, dotted: str):
  for part in dotted.split("."):
    if not isinstance(tree, dict) or part not in tree:
      return _ABSENT
    tree = tree[part]
  return tree


def _is_default(dotted: str, value: Any, config: dict) -> bool:
  """Whether `value` is the default of field `dotted` (run fields: classic.train.defaults; model
  fields: the module's own defaults)."""
  import dataclasses
  from classic import models
  from classic.train import defaults
  if dotted.startswith("model."):
    try:
      default = models.config_fields(models.get_class(config["model"]["name"])).get(dotted[6:], _ABSENT)
    except (KeyError, ValueError):
      return False
    default = None if default is dataclasses.MISSING else default
  else:
    default = _lookup(json.loads(defaults.defaults().to_json_best_effort()), dotted)
  if isinstance(default, tuple):
    default = json.loads(json.dumps(default))
  return default is not _ABSENT and default == value


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


class CheckpointError(Exception):
  pass


class CheckpointMismatch(CheckpointError):
  pass


class Checkpointer:

  def __init__(self, workdir: str, keep: int, async_save: bool = True):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self.manager = ocp.CheckpointManager(
        self.directory,
        item_names=("state", "data"),
        item_handlers={"state": ocp.StandardCheckpointHandler(), "data": ocp.JsonCheckpointHandler()},
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             enable_async_checkpointing=async_save),
    )

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, data_position: dict[str, Any]) -> None:
    self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                    data=ocp.args.JsonSave(data_position)), force=True)

  def restore(self, abstract_state, step: int | None = None):
    """(state, data position) of `step`, by default the latest readable one, onto the target shardings.

    Orbax never finalises a partial write, but a finalised step can still be damaged afterwards
    (a truncated file, a bad disk, a half-copied workdir). Such a step is moved aside to
    `<step>.unreadable` (kept for inspection, never deleted) and the previous one is restored, so a
    run resumes from its last good checkpoint instead of failing or starting over.
    """
    if step is not None:
      return self._restore(abstract_state, step)
    errors = []
    for candidate in sorted(self.manager.all_steps(), reverse=True):
      try:
        saved = self._saved_shapes(candidate)
      except Exception:  # noqa: BLE001 - unreadable metadata: the restore below reports the damage
        saved = None
      if saved is not None:
        self._check_shapes(saved, abstract_state, candidate)
      try:
        restored = self._restore(abstract_state, candidate)
      except Exception as e:  # noqa: BLE001 - whatever the damage, try the step before
        reason = " ".join(str(e).split())[:300]
        errors.append(f"step {candidate}: {type(e).__name__}: {reason}")
        logging.error("Checkpoint step %d in %s is unreadable (%s); trying the one before.",
                      candidate, self.directory, reason)
        self._set_aside(candidate)
        continue
      if errors:
        logging.warning("Resumed from step %d; unreadable later steps were moved to *.unreadable.", candidate)
      return restored
    raise CheckpointError(f"No readable checkpoint in {self.directory}:\n  " + "\n  ".join(errors))

  def restore_arrays(self, step: int | None = None) -> dict[str, Any]:
    """The saved state of `step` (default: the latest) as host arrays in its saved tree, with no
    abstract state to match (another run's weights: Trainer's init_from)."""
    step = self.latest_step() if step is None else step
    return self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]

  def _saved_shapes(self, step: int) -> dict[str, tuple]:
    tree = self.manager.item_metadata(step)["state"]
    return {_path(p): tuple(v.shape) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]
            if hasattr(v, "shape")}

  def _check_shapes(self, saved: dict[str, tuple], abstract_state, step: int) -> None:
    """A checkpoint of another model (e.g. another class count) is a mistake to name, not damage."""
    wanted = {_path(p): tuple(v.shape) for p, v in jax.tree_util.tree_flatten_with_path(abstract_state)[0]}
    differ = [f"{k}: checkpoint {saved[k]}, model {wanted[k]}" for k in wanted
              if k in saved and saved[k] != wanted[k]]
    differ += [f"{k} only in the model" for k in wanted if k not in saved]
    differ += [f"{k} only in the checkpoint" for k in saved if k not in wanted]
    if differ:
      raise CheckpointMismatch(
          f"Checkpoint step {step} in {self.directory} was written by a different model ("
          f"{len(differ)} tensors differ, e.g. {'; '.join(differ[:3])}). A different "
          "model.num_classes or architecture needs a new workdir, or --config.init_from=<this "
          "workdir> to start from these weights with a fresh head.")

  def _restore(self, abstract_state, step: int):
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    logging.info("Restored step %d from %s", step, self.directory)
    return restored["state"], restored["data"]

  def _set_aside(self, step: int) -> None:
    if jax.process_index() == 0:
      src = os.path.join(self.directory, str(step))
      if os.path.isdir(src):
        os.replace(src, f"{src}.unreadable")
    self.manager.reload()

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def _path(keys) -> str:
  """'params/C1/kernel' from a key path, whether its entries are dict keys or dataclass fields."""
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in keys)


def abstract(tree):
  """Shapes, dtypes and shardings of a tree of arrays: the restore target."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)
