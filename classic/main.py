r"""Train or evaluate a classic network.

  python -m classic.main --config=configs/lenet.py:digits --workdir=/tmp/lenet
  python -m classic.main --config=configs/resnet.py:plain20 \
      --config.dataset=../shared/data/cifar10-jpg.tar.gz --workdir=/tmp/plain20
  python -m classic.main --workdir=/tmp/lenet --mode=eval        # config.json of the workdir

Rerunning a command on the same workdir resumes from its last checkpoint. SIGTERM/SIGINT make the run
finish its step, checkpoint and exit 0. Multi-host: --coordinator=HOST:PORT --num_processes=N
--process_id=I on each host (or nothing under SLURM / on Cloud TPU, where JAX finds its peers).
"""

from __future__ import annotations

import errno
import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file and variant, e.g. configs/resnet.py:resnet20.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and config.json.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"], "train (resumes if possible) or eval only.")
_OVERRIDE = flags.DEFINE_bool("override_config", False, "Continue a workdir whose config.json differs.")
_COORDINATOR = flags.DEFINE_string("coordinator", "", "HOST:PORT of process 0, for multi-host runs.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 1, "Number of processes (hosts) in the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", 0, "This process's index, 0 ... num_processes-1.")
_HEARTBEAT = flags.DEFINE_integer("heartbeat_timeout", 100, "Seconds without a peer's heartbeat after which "
                                  "a multi-host run stops with an error instead of waiting forever.")
flags.mark_flag_as_required("workdir")


class _QuietLibraries:
  """Keeps Orbax's per-save INFO chatter out of the console; its warnings and errors still show."""

  def filter(self, record) -> bool:
    return record.levelno >= 30 or "orbax" not in record.pathname


def _setup_jax(workdir: str) -> None:
  import jax
  from classic.train import mesh
  mesh.cpu_performance_flags()
  cache = os.environ.get("CLASSIC_JAX_CACHE", os.path.join(workdir, "jax_cache"))
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 2.0)


def run(argv) -> int:
  del argv
  from classic.data.sources import DataError
  from classic.train import checkpoint, mesh
  from classic.train.loop import NonFiniteError, Trainer

  import logging as std_logging
  for handler in std_logging.getLogger().handlers + std_logging.getLogger("absl").handlers:
    handler.addFilter(_QuietLibraries())
  workdir = os.path.abspath(os.path.expanduser(_WORKDIR.value))
  _setup_jax(workdir)
  mesh.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                  heartbeat_timeout_s=_HEARTBEAT.value)
  try:
    config = _CONFIG.value if _CONFIG.value is not None else checkpoint.read_config(workdir)
    trainer = Trainer(config, workdir, override_config=_OVERRIDE.value, eval_only=_MODE.value == "eval")
    if _MODE.value == "eval":
      if trainer.checkpointer.latest_step() is None and not config.init_from:
        raise FileNotFoundError(f"Nothing to evaluate: no checkpoint in {workdir}/checkpoints.")
      result = trainer.evaluate_all()
      trainer.checkpointer.close()
    else:
      result = trainer.train()
  except Exception as e:  # noqa: BLE001 - a full disk surfaces as OSError or as Orbax's ValueError
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
    if isinstance(e, (DataError, checkpoint.ConfigMismatch, checkpoint.CheckpointError, NonFiniteError,
                      FileNotFoundError, ValueError)):
      logging.error("%s", e)
      print(f"error: {e}", file=sys.stderr)
      return 1
    if isinstance(e, OSError):  # an unwritable disk: say where, in a sentence
      print(f"error: cannot read or write {getattr(e, 'filename', None) or workdir}: {e.strerror or e}. "
            f"{_complete_checkpoints(workdir)} Fix permissions and rerun to resume.", file=sys.stderr)
      return 1
    raise
  import jax
  if jax.process_index() == 0:
    print(json.dumps({k: v for k, v in result.items() if isinstance(v, (int, float))}))
  return 0


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


def _config_keys(argv: list[str]) -> list[str]:
  """Dotted field names of the config named by --config=FILE[:VARIANT] (for suggestions)."""
  import importlib.util
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if spec is None:
    return []
  path, _, variant = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("_classic_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(variant or None)

  def walk(d, prefix=""):
    for k, v in d.items():
      yield from walk(v, f"{prefix}{k}.") if hasattr(v, "items") else [f"{prefix}{k}"]

  return list(walk(config))


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing, with config errors said in a sentence (and the nearest field) instead of a trace."""
  try:
    remaining = flags.FLAGS(argv)
    if flags.FLAGS["config"].present:
      _ = flags.FLAGS.config.variant  # config files load lazily: fail here, in a sentence
    return remaining
  except flags.Error as e:
    message = str(e)
    if "Traceback (most recent call last)" in message:  # config_flags embeds the config file's trace
      message = message.strip().splitlines()[-1]
  except (AttributeError, KeyError) as e:  # ml_collections: an override names no field
    import difflib
    import re
    field = re.search(r"[A-Za-z_][A-Za-z0-9_]*", str(e)).group(0)
    overrides = [a[len("--config."):].split("=", 1)[0] for a in argv if a.startswith("--config.")]
    bad = [o for o in overrides if field in o.split(".")] or [field]
    try:
      close = difflib.get_close_matches(bad[0], _config_keys(argv), n=3)
    except Exception:  # the suggestion is a courtesy
      close = []
    message = f"the config has no field {bad[0]!r}" + (f"; did you mean {', '.join(close)}?" if close else ".")
  except Exception as e:  # a config file that fails to load, a wrong variant, ...
    message = " ".join(str(e).split()) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def main(argv):
  sys.exit(run(argv))


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
