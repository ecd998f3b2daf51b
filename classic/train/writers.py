"""Where metrics go: metrics.jsonl, TensorBoard event files and the console (process 0 only)."""

from __future__ import annotations

import json
import math
import os
import threading
import time

import jax
from absl import logging


# Exceptions in tensorboardX's background writer thread (a full disk): recorded here instead of a
# traceback printed whenever the thread happens to fail, possibly after the run's own one-line error.
_TENSORBOARD_FAILURES: list[str] = []
_default_excepthook = threading.excepthook


def _tensorboard_thread_excepthook(args) -> None:
  if type(args.thread).__module__.startswith("tensorboardX"):
    _TENSORBOARD_FAILURES.append(f"{args.exc_type.__name__}: {args.exc_value}")
    return
  _default_excepthook(args)


class MetricWriter:

  def __init__(self, workdir: str, resume_step: int | None = 0):
    """`resume_step`: a training run's first step; lines past it are dropped (None: append only, as
    an evaluation of a finished run does)."""
    self.enabled = jax.process_index() == 0
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if not self.enabled:
      return
    if resume_step is not None:
      self._truncate_after(resume_step)
    try:
      from tensorboardX import SummaryWriter
      threading.excepthook = _tensorboard_thread_excepthook
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
    except ImportError:  # TensorBoard files are a convenience; metrics.jsonl is the record
      logging.warning("tensorboardX is not installed: no TensorBoard event files.")

  def _truncate_after(self, step: int) -> None:
    """A resumed run logs again what it recomputes: drop lines past the restored step."""
    if not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = f.readlines()
    keep = []
    for line in lines:
      try:
        if json.loads(line)["step"] <= step:
          keep.append(line)
      except (ValueError, KeyError):  # a line cut by a kill
        continue
    with open(self.path + ".tmp", "w") as f:
      f.writelines(keep)
    os.replace(self.path + ".tmp", self.path)

  def write(self, step: int, metrics: dict[str, float]) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
    if self._tb is not None:
      for k, v in record.items():
        if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
          self._tb.add_scalar(k, v, step)

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    """Closes the event file; a failure to write it (a full disk) is a warning, never the run's error."""
    tb, self._tb = self._tb, None
    if tb is None:
      return
    try:
      tb.close()
    except Exception as e:  # noqa: BLE001 - metrics.jsonl is the record; TensorBoard files a convenience
      _TENSORBOARD_FAILURES.append(f"{type(e).__name__}: {e}")
      # Stop its thread and mark it closed, or the thread and tensorboardX's own atexit close fail
      # again later, printing tracebacks after the run's one-line error.
      for writer in (getattr(tb, "all_writers", None) or {}).values():
        events = getattr(writer, "event_writer", None)
        if getattr(events, "_worker", None) is not None:
          events._worker.stop()
        if events is not None:
          events._closed = True
    if _TENSORBOARD_FAILURES:
      logging.warning("TensorBoard event files are incomplete (%s); metrics.jsonl has every logged step.",
                      _TENSORBOARD_FAILURES[-1].splitlines()[0][:200])


def _plain(v):
  v = v.item() if hasattr(v, "item") else v
  return float(v) if isinstance(v, float) or hasattr(v, "__float__") and not isinstance(v, int) else v


class Progress:
  """Console lines with step, loss, images/s and ETA."""

  def __init__(self, total_steps: int, start_step: int):
    self.total = total_steps
    self.t0, self.s0 = time.time(), start_step

  def line(self, step: int, metrics: dict[str, float], img_per_s: float) -> str:
    elapsed = time.time() - self.t0
    rate = (step - self.s0) / elapsed if elapsed > 0 else 0.0
    eta = (self.total - step) / rate if rate > 0 else float("nan")
    return (f"step {step}/{self.total}  loss {metrics.get('train/loss', float('nan')):.4f}  "
            f"train err {metrics.get('train/top1_err', float('nan')):.3f}  {img_per_s:.0f} img/s  "
            f"ETA {_hms(eta)}")


def _hms(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  s = int(seconds)
  return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
