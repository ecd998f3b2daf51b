"""Devices, hosts and shardings: one `data` mesh axis over every device of every process.

The same code runs on 1 CPU, 8 GPUs or a multi-host TPU pod: parameters and optimizer state are
replicated (`P()`), batches are split along `data` (`P('data')`). Each process contributes its own
rows of a global batch with `jax.make_array_from_process_local_data`.
"""

from __future__ import annotations

import collections
import os

import jax
import numpy as np
from absl import logging
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P


# On CPU, XLA's YNNPACK library path (jaxlib 0.10.2's default for convolutions, dots and some
# reductions) runs the CIFAR ResNets' 3x3 convolutions and their gradients 1.3x slower than XLA's
# own Eigen path: a chain of ResNet-20's 19 convolutions trained in 162 ms instead of 210 (batch 128;
# session 3, docs/performance.md; `python -m launch.bench_convs` against CLASSIC_XLA_DEFAULTS=1 compares
# the model's convolutions today). An empty YNN fusion list sends them to Eigen. Only applied when no
# accelerator plugin is installed, never over the user's own setting of the flag, and not with
# CLASSIC_XLA_DEFAULTS=1. (The other CPU fix, keeping a residual stream out of the backward transposes,
# is in the model: layers.fusion_barrier.)
CPU_XLA_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=",)


def _accelerator_installed() -> bool:
  import importlib.util
  for name in ("jax_plugins", "libtpu", "jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin"):
    try:
      if importlib.util.find_spec(name) is not None:
        return True
    except (ImportError, ValueError):
      continue
  return False


def cpu_performance_flags() -> str:
  """Adds CPU_XLA_FLAGS to $XLA_FLAGS on CPU-only installs (call before JAX starts a backend)."""
  current = os.environ.get("XLA_FLAGS", "")
  if (os.environ.get("CLASSIC_XLA_DEFAULTS") == "1" or "xla_cpu_experimental_ynn_fusion_type" in current
      or _accelerator_installed()):
    return current
  os.environ["XLA_FLAGS"] = " ".join([current, *CPU_XLA_FLAGS]).strip()
  return os.environ["XLA_FLAGS"]


def _cluster_detected() -> bool:
  """True where `jax.distributed.initialize()` can find its peers by itself (SLURM, Cloud TPU, MPI)."""
  env = os.environ
  return (int(env.get("SLURM_NTASKS", "1")) > 1 or "," in env.get("TPU_WORKER_HOSTNAMES", "")
          or int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1)


def initialize(coordinator: str = "", num_processes: int = 1, process_id: int = 0,
               timeout_s: int = 300, heartbeat_timeout_s: int = 100) -> None:
  """Joins the other processes of a multi-host run, if there are any.

  A peer that dies stops sending heartbeats; after `heartbeat_timeout_s` JAX's coordination service
  ends the surviving processes with an error rather than letting them wait in a collective forever.
  """
  if coordinator:
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id, initialization_timeout=timeout_s,
                               heartbeat_timeout_seconds=heartbeat_timeout_s)
  elif _cluster_detected():
    jax.distributed.initialize(initialization_timeout=timeout_s, heartbeat_timeout_seconds=heartbeat_timeout_s)
  else:
    return
  logging.info("Process %d of %d; %d local / %d global devices.", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


# XLA:CPU with several local devices (forced host devices) deadlocks if the host runs too far ahead
# (jax 0.10.2; "Termination timeout for all reduce ... only N-1 of them arrived"). Every launch of
# a multi-device program runs on the PjRt client's pool of max(cores, devices) threads and first
# takes a slot of its device's max-inflight semaphore (32), held until that execution finishes; a
# running execution holds its pool thread until it ends, all-reduce waits included. Once the host
# is 32 launches ahead on one device, that device's next launch blocks a pool thread on the
# semaphore while the other devices' executions block the rest in the all-reduce, and the one
# execution that would free the semaphore never gets a thread. Synchronous dispatch does not help:
# launches with collectives always go through the thread pool. Keeping fewer than 32 launches per
# device in flight avoids it. GPU/TPU do not run executions on this pool.
CPU_MAX_INFLIGHT = 8


def needs_inflight_bound() -> bool:
  return jax.local_devices()[0].platform == "cpu" and jax.local_device_count() > 1


class BoundedInflight:
  """Calls a jitted `fn` whose result is (donated state, outputs); when `max_inflight` is set, waits
  for the outputs of the call `max_inflight` calls back before returning. `.lower` etc. pass through.
  """

  def __init__(self, fn, max_inflight: int | None):
    self._fn, self.max_inflight = fn, max_inflight
    self._outputs = collections.deque()

  def __call__(self, *args, **kwargs):
    result = self._fn(*args, **kwargs)
    if self.max_inflight:
      self._outputs.append(result[-1])
      if len(self._outputs) > self.max_inflight:
        jax.block_until_ready(self._outputs.popleft())
    return result

  def __getattr__(self, name):
    return getattr(self._fn, name)


def make_mesh() -> Mesh:
  return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def global_batch(mesh: Mesh, local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
  """This process's rows -> global arrays sharded along `data`."""
  sharding = data_sharded(mesh)
  n = jax.process_count()
  return {k: jax.make_array_from_process_local_data(sharding, v, (v.shape[0] * n,) + v.shape[1:])
          for k, v in local.items()}


def check_batch(batch_size: int) -> None:
  if batch_size % jax.device_count():
    raise ValueError(f"batch_size {batch_size} must be a multiple of the {jax.device_count()} devices.")
