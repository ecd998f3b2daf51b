r"""Train or evaluate a classic network.

  python -m classic.main --config=configs/lenet.py:digits --workdir=/tmp/lenet
  python -m classic.main --config=configs/resnet.py:plain20 \
      --config.dataset=../shared/data/cifar10-jpg.tar.gz --workdir=/tmp/plain20
  python -m classic.main --workdir=/tmp/lenet --mode=eval        # config.json of the workdir
  python -m classic.main --config=configs/resnet.py:plain34       # workdir runs/resnet/plain34

Without --workdir, a config's run goes to runs/<config file>/<variant> (printed at the start).
Rerunning a command on the same workdir resumes from its last checkpoint. SIGTERM/SIGINT make the run
finish its step, checkpoint and exit 0. Multi-host: --coordinator=HOST:PORT --num_processes=N
--process_id=I on each host (or nothing under SLURM / on Cloud TPU, where JAX finds its peers).
"""

from __future__ import annotations

import errno
import json
import os
import sys

import jax
from absl import app, flags
from ml_collections import config_flags

from classic import command, platform
from classic.train import checkpoint, mesh
from classic.train.loop import Trainer

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file and variant, e.g. configs/resnet.py:resnet20.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and config.json; "
                                "default runs/<config file>/<variant> (e.g. runs/resnet/plain34).")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"], "train (resumes if possible) or eval only.")
_OVERRIDE = flags.DEFINE_bool("override_config", False, "Continue a workdir whose config.json differs.")
_COORDINATOR = flags.DEFINE_string("coordinator", "", "HOST:PORT of process 0, for multi-host runs.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 1, "Number of processes (hosts) in the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", 0, "This process's index, 0 ... num_processes-1.")
_HEARTBEAT = flags.DEFINE_integer("heartbeat_timeout", 100, "Seconds without a peer's heartbeat after which "
                                  "a multi-host run stops with an error instead of waiting forever.")


def default_workdir(config) -> str:
  """runs/<family>/<variant> for config.variant 'family:variant' (runs/<family> without a variant)."""
  family, _, variant = (config.variant or config.model.name or "run").partition(":")
  return os.path.join("runs", family, variant) if variant else os.path.join("runs", family)


def _setup_jax(workdir: str) -> None:
  cache = os.environ.get("CLASSIC_JAX_CACHE", os.path.join(workdir, "jax_cache"))
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 2.0)


def run(argv) -> int:
  del argv
  if _WORKDIR.value is None and _CONFIG.value is None:
    raise app.UsageError("give --config=FILE:VARIANT (a new or resumed run) or --workdir=DIR (eval, resume).")
  workdir = os.path.abspath(os.path.expanduser(_WORKDIR.value or default_workdir(_CONFIG.value)))
  if _WORKDIR.value is None:
    print(f"workdir: {workdir}", flush=True)
  existed = os.path.exists(workdir)
  try:
    return _run(workdir)
  except BaseException:
    if not existed and jax.process_index() == 0:
      _remove_unstarted(workdir)
    raise


def _remove_unstarted(workdir: str) -> None:
  """A run that fails before it starts (a bad config, missing data) leaves no workdir behind: this
  command created it (JAX's compilation cache inside), and nothing of a run is in it yet."""
  import shutil
  if os.path.isdir(workdir) and not os.path.exists(os.path.join(workdir, "config.json")):
    shutil.rmtree(workdir, ignore_errors=True)


def _run(workdir: str) -> int:
  deterministic = (_CONFIG.value if _CONFIG.value is not None else _saved_config(workdir)).get("deterministic", True)
  platform.set_up_determinism(deterministic, workdir)   # before JAX starts its backend
  _setup_jax(workdir)
  mesh.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                  heartbeat_timeout_s=_HEARTBEAT.value)
  try:
    if _CONFIG.value is not None:  # a recipe, with the fields the command line set (it may move it to a data set)
      config, explicit = _CONFIG.value, command.explicit_overrides()
    else:  # a workdir's config.json: what that run trained with
      config, explicit = checkpoint.read_config(workdir), None
    trainer = Trainer(config, workdir, explicit=explicit, override_config=_OVERRIDE.value,
                      eval_only=_MODE.value == "eval")
    if _MODE.value == "eval":
      if trainer.checkpointer.latest_step() is None and not config.init_from:
        raise FileNotFoundError(f"Nothing to evaluate: no checkpoint in {workdir}/checkpoints.")
      result = trainer.evaluate_and_record()
      trainer.checkpointer.close()
    else:
      result = trainer.train()
  except Exception as e:  # noqa: BLE001 - a full disk surfaces as OSError or as Orbax's ValueError
    if isinstance(e, FileNotFoundError) or not isinstance(e, OSError) and not _disk_full(e):
      raise  # classic.command says it in a sentence (or shows the traceback of a bug)
    if _disk_full(e):
      # Orbax's failed write tasks are logged by asyncio when collected ("Task exception was never
      # retrieved"): collect them now and keep their tracebacks from following the sentence below.
      import gc
      import logging as std_logging
      gc.collect()
      std_logging.getLogger("asyncio").setLevel(std_logging.CRITICAL)
      print(f"error: the disk holding {workdir} is full (No space left on device). "
            f"{_complete_checkpoints(workdir)} A partial checkpoint is never loaded: free space and rerun "
            "to resume.", file=sys.stderr)
      return 1
    # an unwritable disk: say where, in a sentence
    print(f"error: cannot read or write {getattr(e, 'filename', None) or workdir}: {e.strerror or e}. "
          f"{_complete_checkpoints(workdir)} Fix permissions and rerun to resume.", file=sys.stderr)
    return 1
  if jax.process_index() == 0:
    print(json.dumps({k: v for k, v in result.items() if isinstance(v, (int, float))}))
  return 0


def _saved_config(workdir: str) -> dict:
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}   # said by checkpoint.read_config below, in a sentence


def _disk_full(e: BaseException) -> bool:
  while e is not None:
    if getattr(e, "errno", None) == errno.ENOSPC or "No space left on device" in str(e):
      return True
    e = e.__cause__ or e.__context__
  return False


def _complete_checkpoints(workdir: str) -> str:
  try:
    steps = sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit())
  except OSError:
    steps = []
  if not steps:
    return "No checkpoint was complete yet."
  return f"Complete checkpoints (steps {', '.join(map(str, steps))}) are intact."


def main(argv):
  sys.exit(run(argv))


if __name__ == "__main__":
  command.run(main)
