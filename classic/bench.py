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

from absl import flags
from ml_collections import config_flags

from classic import command
from classic.train.timing import input_speed, matmul_peak, train_step_speed


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
