"""The one wrapper every command runs through (`python -m classic.main`, `.bench`, `.summary`, ...).

`command.run(main)` is absl's `app.run` with what every entry point needs, in one place:
- flags parsed with config errors said in a sentence (the nearest field named), not a traceback;
- the platform set up before JAX starts a backend (classic.platform: XLA flags for the CPU kernels);
- libraries' per-save INFO chatter (Orbax) kept off the console; their warnings and errors still show;
- an expected failure (bad data, config, checkpoint, file, value) printed once, as `error: ...`, exit 1;
- a dead peer of a multi-host run said as one sentence, exit 1, instead of JAX's abort (exit 134).
"""

from __future__ import annotations

import logging as std_logging
import os
import sys
from typing import Callable

from absl import app, flags


class _QuietLibraries(std_logging.Filter):
  """Lets through warnings and errors, and INFO from anything but Orbax and JAX's backend probing
  ("Unable to initialize backend 'tpu'" on every CPU or GPU machine)."""

  def filter(self, record) -> bool:
    if record.levelno >= std_logging.WARNING:
      return True
    return "orbax" not in record.pathname and not record.pathname.endswith("xla_bridge.py")


def quiet_libraries() -> None:
  for handler in std_logging.getLogger().handlers + std_logging.getLogger("absl").handlers:
    if not any(isinstance(f, _QuietLibraries) for f in handler.filters):
      handler.addFilter(_QuietLibraries())


def expected_errors() -> tuple[type[BaseException], ...]:
  """The failures that are the user's to fix: said in a sentence, never with a traceback."""
  from classic.data.sources import DataError
  from classic.train import checkpoint
  from classic.train.loop import NonFiniteError
  return (DataError, checkpoint.ConfigMismatch, checkpoint.CheckpointError, NonFiniteError,
          FileNotFoundError, ValueError)


# What JAX says when the coordination service sees a process of the run die (heartbeats stop).
# (jax 0.10: a collective fails first, e.g. "Gloo AllGather failed ... Connection reset by peer"; the
# coordination service then aborts the process at shutdown, which `fail(hard=True)` skips.)
_PEER_LOST = ("another task died", "heartbeat timeout", "task has died", "coordination service",
              "connection reset by peer", "gloo", "failed to send a heartbeat", "leader task")


def peer_lost(e: BaseException) -> bool:
  if jax_process_count() <= 1:
    return False
  text = f"{type(e).__name__}: {e}".lower()
  return any(marker in text for marker in _PEER_LOST)


def jax_process_count() -> int:
  if "jax" not in sys.modules:
    return 1
  try:
    return sys.modules["jax"].process_count()
  except Exception:  # noqa: BLE001 - no backend: one process
    return 1


def fail(message: str, code: int = 1, hard: bool = False) -> None:
  """Prints `error: message` once and exits; `hard` skips Python's shutdown (a dead peer: JAX's
  coordination client would otherwise abort the process while it shuts down)."""
  sys.stderr.write(f"error: {message}\n")
  sys.stderr.flush()
  if hard:
    sys.stdout.flush()
    os._exit(code)
  sys.exit(code)


def guarded(main: Callable, handlers: Callable[[BaseException], str | None] | None = None) -> Callable:
  """main(argv) with expected failures said once; `handlers(e)` may give a command's own sentence."""

  def wrapped(argv):
    quiet_libraries()
    try:
      return main(argv)
    except (SystemExit, KeyboardInterrupt):
      raise
    except Exception as e:  # noqa: BLE001 - sorted below: said in a sentence, or re-raised
      own = handlers(e) if handlers else None
      if own:
        fail(own)
      if peer_lost(e):
        fail(f"another process of this multi-host run stopped (it died or lost its connection), so this "
             f"one stops too: {' '.join(str(e).split())[:300]}. Rerun every process to resume from the "
             "last checkpoint.", hard=True)
      if isinstance(e, expected_errors()):
        fail(" ".join(str(e).split()) if isinstance(e, OSError) and not isinstance(e, FileNotFoundError)
             else str(e))
      raise

  return wrapped


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


def _config_error(e: BaseException, argv: list[str]) -> str:
  """A config flag's failure in a sentence: the misspelled field (and the nearest), or the cause."""
  if isinstance(e, flags.Error):
    message = str(e)
    if "Traceback (most recent call last)" in message:  # config_flags embeds the config file's trace
      message = message.strip().splitlines()[-1]
    return message
  if isinstance(e, (AttributeError, KeyError)):  # ml_collections: an override names no field
    import difflib
    import re
    field = re.search(r"[A-Za-z_][A-Za-z0-9_]*", str(e)).group(0)
    overrides = [a[len("--config."):].split("=", 1)[0] for a in argv if a.startswith("--config.")]
    bad = [o for o in overrides if field in o.split(".")] or [field]
    try:
      close = difflib.get_close_matches(bad[0], _config_keys(argv), n=3)
    except Exception:  # noqa: BLE001 - the suggestion is a courtesy
      close = []
    return f"the config has no field {bad[0]!r}" + (f"; did you mean {', '.join(close)}?" if close else ".")
  return " ".join(str(e).split()) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"


def repeated_config(argv: list[str]) -> str | None:
  """The error for a command line naming --config more than once (absl would silently keep one)."""
  given = [a.split("=", 1)[1] if "=" in a else (argv[i + 1] if i + 1 < len(argv) else "")
           for i, a in enumerate(argv) if a == "--config" or a.startswith("--config=")]
  if len(given) > 1:
    return (f"--config is given {len(given)} times ({', '.join(given)}): give one config file and variant, "
            "and change its fields with --config.FIELD=VALUE.")
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing, with config errors said in a sentence (and the nearest field) instead of a trace."""
  repeated = repeated_config(argv)
  if repeated:
    print(f"error: {repeated}", file=sys.stderr)
    sys.exit(2)
  try:
    remaining = flags.FLAGS(argv)
    if "config" in flags.FLAGS and flags.FLAGS["config"].present:
      _ = flags.FLAGS.config.variant  # config files load lazily: fail here, in a sentence
    return remaining
  except Exception as e:  # noqa: BLE001 - a bad override, a config file that fails to load, a wrong variant
    message = _config_error(e, argv)
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def explicit_overrides(flag_values=None) -> set[str]:
  """The dotted config fields set on the command line (--config.model.shortcut=B -> 'model.shortcut')."""
  from ml_collections import config_flags
  flag_values = flag_values or flags.FLAGS
  if "config" not in flag_values or not flag_values["config"].present:
    return set()
  return set(config_flags.get_override_values(flag_values["config"]))


def load_config(spec: str, overrides: list[str]):
  """(config, explicit fields) of `--config=spec` with `--config.<override>` flags, parsed exactly as
  classic.main parses them; a bad override or variant raises ValueError in a sentence."""
  from ml_collections import config_flags
  argv = ["classic", f"--config={spec}", *(f"--config.{o}" for o in overrides)]
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=flag_values, lock_config=True, sys_argv=argv)
  try:
    flag_values(argv)
    config = flag_values.config
    _ = config.variant
  except Exception as e:  # noqa: BLE001 - said as the config's error
    raise ValueError(_config_error(e, argv)) from e
  return config, explicit_overrides(flag_values)


def run(main: Callable, handlers: Callable[[BaseException], str | None] | None = None) -> None:
  """Runs a command's `main(argv)` as described in the module docstring; never returns."""
  from classic import platform
  platform.set_up_xla()
  app.run(guarded(main, handlers), flags_parser=parse_flags)
