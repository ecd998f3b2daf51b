"""Timing what training runs: the train step as the trainer builds it, the input pipeline as it reads,
and this machine's matrix-product peak. `python -m classic.bench` prints them; launch/benchmarks and
launch.accelerator_check call them.

The train step is the trainer's own (classic.train.setup.build: same jit, mesh and shardings) on
synthetic uint8 images of the config's input size, so the number is the model's and the step's, not
the disk's. Images/s is the median over the timed steps after warm-up (each step waited for).
"""

from __future__ import annotations

import json
import statistics
import time

import jax
import numpy as np

from classic.data import augment, jpeg_regions, sources
from classic.data.pipeline import Pipeline
from classic.data.sources import DataError
from classic.models import counts
from classic.train import mesh as mesh_lib, setup

# data_on_device: the size of the synthetic split the step draws its batches from (CIFAR's).
DEVICE_SPLIT = 50_000


def call_times(fn, calls: int, warmup: int = 0) -> list[float]:
  """Seconds taken by each of `calls` calls of fn(), after `warmup` untimed ones; fn must wait for its
  result. Shared by the benches here and under launch/ (it imports nothing, so the PyTorch side can use it)."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(calls):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return times


def matmul_peak(n: int = 4096, repeats: int = 5, dtype: str = "float32", warmup: int = 1) -> float:
  """FLOP/s of an n x n matrix product in `dtype` on the default device (median of `repeats`)."""
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  f = jax.jit(lambda x, y: x @ y)
  return 2 * n**3 / statistics.median(call_times(lambda: f(a, a).block_until_ready(), repeats, warmup=warmup))


def op_profile(run_step, steps: int, top: int = 15) -> list[tuple[str, float, int]]:
  """(XLA op kind, ms per step, calls per step) of the `top` costliest kinds over `steps` traced steps.

  Kinds are HLO op names without their numeric suffix (`transpose_copy_fusion.12` counts as
  `transpose_copy_fusion`), from the Perfetto trace jax.profiler writes.
  """
  import collections
  import gzip
  import pathlib
  import re
  import tempfile

  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
    for _ in range(steps):
      run_step()
    jax.profiler.stop_trace()
    trace = next(pathlib.Path(trace_dir).rglob("*.trace.json.gz"))
    events = json.loads(gzip.decompress(trace.read_bytes()))["traceEvents"]
  totals = collections.defaultdict(lambda: [0.0, 0])
  for event in events:
    op = event.get("args", {}).get("hlo_op")
    if event.get("ph") == "X" and op:
      kind = re.sub(r"\.\d+$", "", op)
      totals[kind][0] += event["dur"] / 1e3 / steps
      totals[kind][1] += 1
  ranked = sorted(totals.items(), key=lambda kv: -kv[1][0])[:top]
  return [(kind, ms, calls // steps) for kind, (ms, calls) in ranked]


def train_step_speed(config, steps: int, warmup: int, profile: int = 0) -> dict:
  """The trainer's step (classic.train.setup) on random uint8 images: images/s, compile s, XLA's memory plan."""


  mesh = mesh_lib.make_mesh()
  setup.check(config, num_devices=jax.device_count())  # what the trainer checks first, the batch split included
  program = setup.build(config, mesh)
  model, state = program.model, program.init()
  shape = (config.batch_size,) + program.input_shape[1:]
  k = program.steps_per_call if program.steps_fn is not None else 1   # K steps per call where they are one program
  rng = np.random.default_rng(0)
  one = lambda: {"image": rng.integers(0, 256, shape, dtype=np.uint8),   # the trainer's batch, colour
                 "label": rng.integers(0, config.model.num_classes, shape[:1]).astype(np.int32),  # parameters too
                 **augment.colour_params(config, shape[0], lambda stream: rng)}
  if program.on_device:   # data_on_device: the step computes its batch from a split held on the device
    split = sources.InMemory(rng.integers(0, 256, (DEVICE_SPLIT,) + shape[1:], dtype=np.uint8),
                             rng.integers(0, config.model.num_classes, DEVICE_SPLIT).astype(np.int32),
                             config.model.num_classes, "synthetic")
    inputs = program.device_inputs(split, config, mesh, (warmup + steps + profile + 1) * k)
  else:  # steps_per_call: K batches per call, as the trainer stages them
    inputs = (mesh_lib.global_batch(mesh, one()) if k == 1 else
              mesh_lib.global_batches(mesh, [one() for _ in range(k)]),)
  t = time.perf_counter()
  compiled = (program.steps_fn or program.step_fn).lower(state, *inputs).compile()
  compile_s = time.perf_counter() - t
  macs = counts.totals(model, (1,) + shape[1:])["macs"]
  result = {"devices": jax.device_count(), "platform": jax.devices()[0].platform, "batch": shape[0],
            "steps_per_call": k, "replicas": program.replicas, "data_on_device": program.on_device,
            "input": list(shape[1:]), "compile_s": compile_s, "macs_per_image": macs}
  plan = compiled.memory_analysis()
  if plan is not None:
    result.update(xla_temp_mib=plan.temp_size_in_bytes / 2**20,
                  xla_argument_mib=plan.argument_size_in_bytes / 2**20,
                  xla_output_mib=plan.output_size_in_bytes / 2**20)
  if not steps:  # compile only
    return result

  def run_step():
    nonlocal state
    state, metrics = compiled(state, *inputs)
    jax.block_until_ready((state, metrics))

  times = call_times(run_step, steps, warmup)
  step_s = statistics.median(times) / k   # one call runs k steps
  images = shape[0] * program.replicas       # per step, over all replicas
  result.update(step_s_median=step_s, step_s_min=min(times) / k, img_per_s=images / step_s,
                train_flops_per_s=6 * macs * images / step_s)
  if profile:
    result["profile_ms_per_step"] = [list(row) for row in op_profile(run_step, profile)]
  return result


def input_speed(config, batches: int) -> dict:
  """Images/s of the real input pipeline as training runs it (decode + augmentation + batching, in the
  config's data_workers processes where the data is encoded), or why it is unavailable."""
  try:
    t = time.perf_counter()
    pipe = Pipeline(config, train=True)
    load_s = time.perf_counter() - t
  except (DataError, FileNotFoundError) as e:
    return {"input_img_per_s": None, "input_unavailable": str(e).splitlines()[0]}
  stream = pipe.train_iter(0)
  try:
    for _ in range(max(1, pipe.workers)):  # the workers start and fill their first batches
      next(stream)
    t = time.perf_counter()
    for _ in range(batches):
      next(stream)
    elapsed = time.perf_counter() - t
  finally:
    stream.close()
    pipe.close()
  return {"input_img_per_s": batches * config.batch_size / elapsed, "input_load_s": load_s,
          "input_workers": pipe.workers, "dataset": config.dataset,
          "input_jpeg_regions": bool(config.get("jpeg_regions", True) and jpeg_regions.available())}
