"""What differs between CPU, GPU and TPU, in one place: the CPU switch, XLA flags, the dispatch bound.

One switch, the environment variable `CLASSIC_CPU_KERNELS`, chooses classic's CPU forms:
- `1`: XLA:CPU flags that send convolutions to Eigen (`CPU_XLA_FLAGS`), and the layer forms of
  classic/models/cpu_kernels.py (BatchNorm's closed-form backward, 1x1 convolutions as matrix
  products, max pooling's gradient by taps, a fusion barrier on residual streams);
- `0`: XLA's defaults and every model in its plain flax/lax form (forward-mode autodiff, `jax.jvp` /
  `jax.jacfwd`, works through it; the CPU kernels are custom VJPs, which JAX cannot differentiate
  forward);
- unset: on where the default backend is the CPU, off on GPU and TPU.
The choice is made in Python when a function is traced (`cpu_kernels()`), so a lowering for another
platform traces the plain forms (`use_cpu_kernels(False)`, classic.train.lowering).

The dispatch bound: XLA:CPU with several local devices deadlocks when the host runs too far ahead
(`CPU_MAX_INFLIGHT`); GPU and TPU need none.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import os

ENV = "CLASSIC_CPU_KERNELS"

# On CPU, XLA's YNNPACK library path (jaxlib 0.10.2's default for convolutions, dots and some
# reductions) runs the CIFAR ResNets' 3x3 convolutions and their gradients 1.3x slower than XLA's
# own Eigen path: a chain of ResNet-20's 19 convolutions trained in 162 ms instead of 210 (batch 128;
# 2026-11-22, docs/performance.md; `python -m launch.benchmarks.convs` against CLASSIC_CPU_KERNELS=0
# compares them on any machine). An empty YNN fusion list sends them to Eigen.
CPU_XLA_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=",)

_override: list[bool] = []   # use_cpu_kernels() contexts, innermost last


def _switch() -> bool | None:
  value = os.environ.get(ENV, "").strip()
  if value in ("", "auto"):
    return None
  if value not in ("0", "1"):
    raise ValueError(f"{ENV} must be 0 or 1 (or unset: on CPU only), got {value!r}.")
  return value == "1"


def accelerator_installed() -> bool:
  """True when a GPU or TPU plugin of JAX is installed (so JAX will not default to the CPU)."""
  for name in ("jax_plugins", "libtpu", "jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin"):
    try:
      if importlib.util.find_spec(name) is not None:
        return True
    except (ImportError, ValueError):
      continue
  return False


def cpu_kernels() -> bool:
  """Whether the model being traced now uses classic's CPU layer forms."""
  if _override:
    return _override[-1]
  switch = _switch()
  if switch is not None:
    return switch
  import jax
  return jax.default_backend() == "cpu"


@contextlib.contextmanager
def use_cpu_kernels(on: bool):
  """Traces inside use (or not) the CPU forms, whatever the switch says (lowering for GPU/TPU)."""
  _override.append(bool(on))
  try:
    yield
  finally:
    _override.pop()


def scan_steps() -> bool:
  """Whether config.steps_per_call runs its K steps as one XLA loop (lax.scan: one dispatch for K steps,
  what a GPU or TPU gains from). With the CPU kernels on it does not: XLA:CPU compiles the step inside
  a loop to other kernels, slower and with another float summation order (the losses of step 2 already
  differ in the last bits), so there the K steps are K dispatches of the one-step program, and the
  numbers equal K=1's bit for bit."""
  return not cpu_kernels()


def set_up_xla() -> str:
  """Adds CPU_XLA_FLAGS to $XLA_FLAGS where the CPU kernels are on (before JAX starts a backend):
  by default on CPU-only installs; never over the user's own setting of the flag."""
  current = os.environ.get("XLA_FLAGS", "")
  switch = _switch()
  on = switch if switch is not None else not accelerator_installed()
  if not on or "xla_cpu_experimental_ynn_fusion_type" in current:
    return current
  os.environ["XLA_FLAGS"] = " ".join([current, *CPU_XLA_FLAGS]).strip()
  return os.environ["XLA_FLAGS"]


# Deterministic GPU execution (config.deterministic): XLA's deterministic-ops mode (no atomics in
# reductions and scatters, only deterministic convolution algorithms, autotuning among those), and
# the autotuner's choices kept in the run's workdir, so that a resumed process runs the kernels the
# first one chose instead of timing them anew (two processes can pick different algorithms when two
# are about as fast). TPUs and the CPU are deterministic without them; XLA ignores GPU flags there.
DETERMINISTIC_XLA_FLAGS = ("--xla_gpu_deterministic_ops=true",)
AUTOTUNE_DIR = "xla_autotune"


def set_up_determinism(deterministic: bool, workdir: str | None) -> str:
  """Adds the flags of a deterministic (or not) run to $XLA_FLAGS: call before JAX starts a backend
  (XLA reads them once). With `workdir`, the autotuning results live in WORKDIR/xla_autotune. A flag
  the user set in $XLA_FLAGS is left as it is."""
  current = os.environ.get("XLA_FLAGS", "")
  added = []
  if deterministic:
    added += [f for f in DETERMINISTIC_XLA_FLAGS if f.split("=")[0] not in current]
    if workdir and "xla_gpu_per_fusion_autotune_cache_dir" not in current:
      added.append(f"--xla_gpu_per_fusion_autotune_cache_dir={os.path.join(workdir, AUTOTUNE_DIR)}")
  if added:
    os.environ["XLA_FLAGS"] = " ".join([current, *added]).strip()
  return os.environ.get("XLA_FLAGS", "")


def determinism_note(deterministic: bool) -> str:
  """What a run's log says about its determinism, on this backend."""
  import jax
  backend = jax.default_backend()
  if backend == "gpu":
    return ("GPU kernels deterministic (XLA deterministic ops, autotuning kept in the workdir): the same "
            "command gives the same numbers, and a resumed run equals an uninterrupted one."
            if deterministic else "GPU kernels not deterministic (--config.deterministic=False): faster, "
            "but two runs of the same command can differ in the last bits, and so can a resumed run.")
  return f"{backend.upper()} execution is deterministic (bit for bit on the same machine and device count)."


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


def max_inflight() -> int | None:
  """The dispatch bound this process needs: CPU_MAX_INFLIGHT on several CPU devices, else None."""
  import jax
  return CPU_MAX_INFLIGHT if jax.local_devices()[0].platform == "cpu" and jax.local_device_count() > 1 else None


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
        import jax
        jax.block_until_ready(self._outputs.popleft())
    return result

  def __getattr__(self, name):
    return getattr(self._fn, name)
