"""A config's train step lowered for a GPU or TPU on any machine, CPU-only CI included (`jax.export`).

Lowering turns every op of the step into StableHLO for the target platform; an op without a CUDA or
TPU lowering (a CPU-only kernel, a primitive some backend lacks) fails here, named, instead of on the
user's accelerator. It does not compile for the device or run: XLA's GPU/TPU compilation and speed are
measured on the device by `python -m launch.accelerator_check`. A GPU/TPU lowering is traced with the
CPU kernels off (classic.platform), so it holds the plain flax/lax ops the accelerator will run.
"""

from __future__ import annotations

import re

import jax

from classic import platform
from classic.train import mesh as mesh_lib, setup

PLATFORMS = ("cuda", "tpu")


class LoweringError(Exception):
  """The step has an op that does not lower for the platform; the message names config, op, platform."""


def export(fn, args, platforms: str | tuple[str, ...], what: str) -> jax.export.Exported:
  """jax.export.export(fn, platforms=...)(*args), with a failure said as one sentence.

  Several platforms are lowered together, from one trace; an op that lacks one of them names it."""
  platforms = (platforms,) if isinstance(platforms, str) else tuple(platforms)
  try:
    return jax.export.export(fn, platforms=platforms)(*args)
  except Exception as e:  # noqa: BLE001 - any failure to lower is the finding
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    # "MLIR translation rule for primitive 'p' not found for platform cuda" (or "platforms ['cuda', 'tpu']")
    op = re.search(r"primitive '([\w.-]+)' not found for platforms? (.*)$", first)
    lacking = " or ".join(re.findall(r"[a-z]\w*", op.group(2))) if op else ""
    raise LoweringError(f"{what} does not lower for {' and '.join(platforms)}"
                        + (f": op {op.group(1)!r} has no {lacking} lowering" if op else "")
                        + f" ({type(e).__name__}: {first})") from e


def export_train_step(config, platforms: str | tuple[str, ...] = PLATFORMS,
                      batch_size: int = 2) -> jax.export.Exported:
  """The trainer's own train step for `config` (state donated, replicated), exported for `platforms`."""
  platforms = (platforms,) if isinstance(platforms, str) else tuple(platforms)
  program = setup.build(config, mesh_lib.make_mesh())
  precision = "bf16" if config.half_precision else "fp32"
  with platform.use_cpu_kernels(platforms == ("cpu",) and platform.cpu_kernels()):
    return export(program.step_fn, (program.abstract_state(), program.abstract_batch(batch_size)), platforms,
                  f"the train step of {config.variant or config.model.name} ({precision})")
