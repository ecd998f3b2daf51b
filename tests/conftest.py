"""Shared test helpers: run `classic.main` as a user would, read what a run wrote."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CIFAR_ARCHIVE = REPO.parent / "shared" / "data" / "cifar10-jpg.tar.gz"


@pytest.fixture(scope="session", autouse=True)
def _shared_cache(tmp_path_factory):
  """One decoded-dataset cache for the whole session (subprocesses inherit it)."""
  if "CLASSIC_CACHE" not in os.environ:
    os.environ["CLASSIC_CACHE"] = str(tmp_path_factory.mktemp("classic-cache"))
  yield


def main_command(*args: str) -> list[str]:
  return [sys.executable, "-m", "classic.main", *args]


def run_main(*args: str, devices: int | None = 1, timeout: float = 600, env: dict | None = None,
             check: bool = True) -> subprocess.CompletedProcess:
  """Runs `python -m classic.main ARGS` in a subprocess on `devices` forced CPU devices (None: the
  devices JAX finds, e.g. a GPU)."""
  full_env = {**os.environ, **(env or {})}
  if devices is not None:
    full_env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  proc = subprocess.run(main_command(*args), cwd=REPO, env=full_env, capture_output=True, text=True,
                        timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f"classic.main {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
  return proc


def run_interrupted(args, workdir, after_step: int, env: dict | None = None, timeout: float = 300) -> int:
  """Starts `python -m classic.main ARGS --workdir=WORKDIR`, sends SIGTERM once metrics.jsonl has
  reached `after_step`, checks the clean exit (0, a checkpoint) and returns the step it stopped at."""
  import signal
  import time
  workdir = Path(workdir)
  proc = subprocess.Popen(main_command(*args, f"--workdir={workdir}"), cwd=REPO, env={**os.environ, **(env or {})},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + timeout
  while time.time() < deadline and proc.poll() is None:
    if (workdir / "metrics.jsonl").exists() and any(m["step"] >= after_step for m in read_metrics(workdir)):
      break
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err[-3000:]
  assert "rerun the same command to resume" in err
  stopped = max(int(d.name) for d in (workdir / "checkpoints").iterdir() if d.name.isdigit())
  assert json.loads(out.strip().splitlines()[-1])["step"] == stopped
  return stopped


def _accelerator_present() -> str | None:
  """The platform of JAX's default backend when it is a GPU or TPU, else None. Asked in a subprocess:
  this process must not start a JAX backend before the tests set up their devices."""
  from classic import platform
  if not platform.accelerator_installed():
    return None
  out = subprocess.run([sys.executable, "-c", "import jax; print(jax.default_backend())"], capture_output=True,
                       text=True, timeout=300).stdout.strip()
  return out if out in ("gpu", "tpu") else None


requires_accelerator = pytest.mark.skipif(_accelerator_present() is None,
                                          reason="no GPU or TPU: JAX's default backend here is the CPU")


def read_metrics(workdir) -> list[dict]:
  path = Path(workdir) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


requires_cifar = pytest.mark.skipif(not CIFAR_ARCHIVE.exists(),
                                    reason=f"the shared CIFAR-10 JPEG archive is not at {CIFAR_ARCHIVE}")
