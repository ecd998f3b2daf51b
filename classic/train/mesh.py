"""Devices, hosts and shardings: one `data` mesh axis over every device of every process.

The same code runs on 1 CPU, 8 GPUs or a multi-host TPU pod: parameters and optimizer state are
replicated (`P()`), batches are split along `data` (`P('data')`). Each process contributes its own
rows of a global batch with `jax.make_array_from_process_local_data`.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import logging
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P


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


def make_mesh() -> Mesh:
  return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def global_batches(mesh: Mesh, group: list[dict[str, np.ndarray]]) -> dict[str, jax.Array]:
  """K batches of this process's rows -> global arrays (K, global batch, ...), stacked on a leading
  axis and sharded along `data` on their second (config.steps_per_call)."""
  sharding = NamedSharding(mesh, P(None, "data"))
  n = jax.process_count()
  stacked = {k: np.stack([b[k] for b in group]) for k in group[0]}
  return {k: jax.make_array_from_process_local_data(sharding, v, (v.shape[0], v.shape[1] * n) + v.shape[2:])
          for k, v in stacked.items()}


def global_batch(mesh: Mesh, local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
  """This process's rows -> global arrays sharded along `data`."""
  sharding = data_sharded(mesh)
  n = jax.process_count()
  return {k: jax.make_array_from_process_local_data(sharding, v, (v.shape[0] * n,) + v.shape[1:])
          for k, v in local.items()}
