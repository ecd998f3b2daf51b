r"""Train-step speed, compile time, FLOP/s against this machine's matmul peak, memory, input rate.

  python -m classic.bench --config=configs/resnet.py:resnet20 [--batch=128] [--steps=20] [--json]

The train step is the trainer's own (same jit, mesh and shardings) on synthetic uint8 images of the
config's input size, so the number is the model's and the step's, not the disk's. Images/s is the
median over the timed steps after warm-up (each step waited for). Achieved FLOP/s counts a training
step as 3 forward passes (forward + backward ~ 2x forward) of 2 FLOPs per multiply-accumulate; the
peak is an fp32 4096x4096 matrix product measured in the same run. The input pipeline's rate is
measured on the config's real dataset when it is available (else reported as null with the reason).
`xla_*_mib` is XLA's memory plan for the step (temporaries, arguments, outputs), known at compile
time: `--steps=0` gives a deep net's memory without running it. `--profile=N` traces N more steps
with jax.profiler and prints the XLA ops that took the most time per step.

The trainer's options count as it runs them: `steps_per_call=K` times calls of K steps; with
`data_on_device=True` the step also draws, gathers and augments its batch from a split held on the
device (synthetic, CIFAR's 50,000 images), which is all the work of a training step, so img_per_s is
the Trainer's rate; with `replicas=N` img_per_s counts the images of all N replicas.
"""

from __future__ import annotations

import json
import resource
import statistics
import time

from absl import flags
import jax
from ml_collections import config_flags
import numpy as np

from classic import command
from classic.data import augment, sources
from classic.data.pipeline import Pipeline
from classic.data.sources import DataError
from classic.models import stats
from classic.train import mesh as mesh_lib, setup, validate



# data_on_device: the size of the synthetic split the step draws its batches from (CIFAR's).
DEVICE_SPLIT = 50_000


def define_flags() -> None:
  """The command's flags; defined only when it runs as a command, so other commands can import this."""
  config_flags.DEFINE_config_file("config", None, "Config file and variant.", lock_config=False)
  flags.DEFINE_integer("batch", 0, "Global batch size (default: the config's).")
  flags.DEFINE_integer("steps", 20, "Timed train steps (0: compile only).")
  flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")
  flags.DEFINE_integer("data_batches", 20, "Batches timed for the input pipeline (0: skip).")
  flags.DEFINE_bool("json", False, "Print one JSON object.")
  flags.DEFINE_integer("profile", 0, "Trace this many more steps and print the top XLA ops.")
  flags.mark_flag_as_required("config")


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
  validate.check(config, num_devices=jax.device_count())  # what the trainer checks, the batch split included
  parts = setup.build(config, mesh)
  model, state = parts.model, parts.init()
  shape = (config.batch_size,) + parts.input_shape[1:]
  k = parts.steps_per_call if parts.steps_fn is not None else 1   # K steps per call where they are one program
  rng = np.random.default_rng(0)
  one = lambda: {"image": rng.integers(0, 256, shape, dtype=np.uint8),   # the trainer's batch, colour
                 "label": rng.integers(0, config.model.num_classes, shape[:1]).astype(np.int32),  # parameters too
                 **augment.colour_params(config, shape[0], lambda stream: rng)}
  if parts.on_device:   # data_on_device: the step computes its batch from a split held on the device
    split = sources.InMemory(rng.integers(0, 256, (DEVICE_SPLIT,) + shape[1:], dtype=np.uint8),
                             rng.integers(0, config.model.num_classes, DEVICE_SPLIT).astype(np.int32),
                             config.model.num_classes, "synthetic")
    inputs = parts.device_inputs(split, config, mesh, (warmup + steps + profile + 1) * k)
  else:  # steps_per_call: K batches per call, as the trainer stages them
    inputs = (mesh_lib.global_batch(mesh, one()) if k == 1 else
              mesh_lib.global_batches(mesh, [one() for _ in range(k)]),)
  t = time.perf_counter()
  compiled = (parts.steps_fn or parts.step_fn).lower(state, *inputs).compile()
  compile_s = time.perf_counter() - t
  macs = stats.totals(model, (1,) + shape[1:])["macs"]
  result = {"devices": jax.device_count(), "platform": jax.devices()[0].platform, "batch": shape[0],
            "steps_per_call": k, "replicas": parts.replicas, "data_on_device": parts.on_device,
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
  images = shape[0] * parts.replicas       # per step, over all replicas
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
          "input_workers": pipe.workers, "dataset": config.dataset}


def run(config, steps: int, warmup: int, data_batches: int, profile: int = 0) -> dict:
  result = {"variant": config.variant}
  result.update(train_step_speed(config, steps, warmup, profile))
  if "train_flops_per_s" in result:  # the peak only where there is a rate to compare (not --steps=0)
    peak = matmul_peak()
    result["matmul_peak_flops_per_s"] = peak
    result["fraction_of_matmul_peak"] = result["train_flops_per_s"] / peak
  if data_batches and not config.get("data_on_device", False):   # else the input is inside the step
    result.update(input_speed(config, data_batches))
  result["peak_host_memory_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  return result


def main(argv):
  del argv
  f = flags.FLAGS
  config = f.config
  if f.batch:
    config.batch_size = f.batch
  from classic import platform
  platform.set_up_determinism(config.get("deterministic", True), None)   # as the trainer runs it
  result = run(config, f.steps, f.warmup, f.data_batches, f.profile)
  result["deterministic"] = config.get("deterministic", True)
  if f.json:
    print(json.dumps(result))
    return
  profile = result.pop("profile_ms_per_step", None)
  for key, value in result.items():
    shown = f"{value:,.3f}" if isinstance(value, float) and value < 1e6 else (
        f"{value:.3e}" if isinstance(value, float) else value)
    print(f"{key:<28} {shown}")
  if profile:
    print(f"\n{'XLA op (per step)':<44} {'ms':>8} {'calls':>6}")
    for kind, ms, calls in profile:
      print(f"{kind:<44} {ms:8.1f} {calls:6d}")


if __name__ == "__main__":
  define_flags()
  command.run(main)
