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


def run_main(*args: str, devices: int = 1, timeout: float = 600, env: dict | None = None,
             check: bool = True) -> subprocess.CompletedProcess:
  """Runs `python -m classic.main ARGS` in a subprocess on `devices` forced CPU devices."""
  full_env = {**os.environ, **(env or {})}
  full_env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  proc = subprocess.run(main_command(*args), cwd=REPO, env=full_env, capture_output=True, text=True,
                        timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f"classic.main {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
  return proc


def read_metrics(workdir) -> list[dict]:
  path = Path(workdir) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


requires_cifar = pytest.mark.skipif(not CIFAR_ARCHIVE.exists(),
                                    reason=f"the shared CIFAR-10 JPEG archive is not at {CIFAR_ARCHIVE}")
