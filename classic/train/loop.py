"""The training loop: train, evaluate, checkpoint; stop cleanly on request. Everything before the loop
(config checks, data, model, restore) is classic.train.setup.prepare.

A batch travels: pipeline (this process's rows) -> global array on the mesh -> jit train step (state
donated) -> metrics kept on device, fetched every `log_every` steps (no per-step host sync) ->
checkpoint every `checkpoint_every` steps with the data position. With config.data_on_device the step
draws its batch on the device itself (classic.data.on_device), and with config.steps_per_call a call
runs K steps. Evaluation covers the whole split.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from classic.train import mesh as mesh_lib, setup, state as state_lib
from classic.train.writers import MetricWriter, Progress


# Steps between the processes' agreement on a stop signal (multi-host only): one small all-gather.
STOP_SYNC_EVERY = 10
# Above this fraction of a logging window spent waiting for the next batch, the run warns (once).
INPUT_BOUND_FRAC = 0.10


def input_advice(config, workers: int) -> str:
  """What can speed up this run's input, given how it is read now (only what is not done already)."""
  measure = "Measure the input alone: python -m classic.bench --config=... (input_img_per_s)."
  if config.in_memory:
    return ("The data set is already in memory; its augmentation runs in this process with numpy, one "
            "batch per step, which a step this short outpaces. A larger batch amortises it. " + measure)
  ways = [f"give it more worker processes (--config.data_workers, now {workers})" if workers else
          "decode in worker processes (--config.data_workers=-1: one per core)"]
  ways.append("keep a small data set in memory (--config.in_memory=True)")
  return f"It decodes in {f'{workers} worker processes' if workers else 'this process'}: " + \
      ", or ".join(ways) + ". " + measure


def across_replicas(metrics: dict[str, Any]) -> dict[str, Any]:
  """Scalars as floats; a metric with one value per replica (config.replicas > 1) as its mean under
  its own name, `<name>_std` (sample standard deviation, ddof=1, as "mean ± std over N runs" reports)
  and `<name>_replicas` (the list, replica i = seed + i)."""
  out = {}
  for key, value in metrics.items():
    value = np.asarray(value, np.float64)
    if value.ndim == 0:
      out[key] = float(value)
      continue
    out[key] = float(value.mean())
    out[f"{key}_std"] = float(value.std(ddof=1)) if value.size > 1 else 0.0
    out[f"{key}_replicas"] = value.tolist()
  return out


class NonFiniteError(Exception):
  """The loss or gradient became NaN/inf; the last checkpoint is the last good state."""


class StopRequest:
  """Set by SIGTERM/SIGINT: the loop finishes its step, checkpoints and returns."""

  def __init__(self):
    self.event = threading.Event()
    self.signal = None
    self._previous = {}

  def install(self) -> None:
    if threading.current_thread() is not threading.main_thread():
      return
    for sig in (signal.SIGTERM, signal.SIGINT):
      self._previous[sig] = signal.signal(sig, self._handle)

  def _handle(self, signum, frame):
    del frame
    if self.event.is_set():  # a second signal: give up at once
      raise KeyboardInterrupt
    self.signal = signal.Signals(signum).name
    logging.warning("%s received: finishing this step, writing a checkpoint and exiting.", self.signal)
    self.event.set()

  def uninstall(self) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


class Trainer:
  """Holds what one run needs; `train()` runs it to `config.train_steps`, `evaluate()` once."""

  def __init__(self, config, workdir: str, *, explicit=None, override_config: bool = False, eval_only: bool = False):
    """`explicit`: the fields the command line set on a recipe (classic.main); see setup.prepare."""
    run = setup.prepare(config, workdir, explicit=explicit, eval_only=eval_only, override_config=override_config)
    self.config, self.workdir, self.mesh = run.config, workdir, run.mesh
    self.train_data, self.eval_data, self.checkpointer = run.train_data, run.eval_data, run.checkpointer
    self.state, self.start_step, self._window = run.state, run.start_step, run.window
    self.params, self.macs = run.params, run.macs
    program = run.program
    self.model, self.replicas, self._per_call = program.model, program.replicas, program.steps_per_call
    self._train_step, self._train_steps, self._eval_step = program.train_step, program.train_steps, program.eval_step
    self._inflight = program.train_step.max_inflight
    self._device_inputs = run.device_inputs   # config.data_on_device: the split and the run's order
    self._warned_input_bound = False

  # ------------------------------------------------------------------------------------------
  def evaluate(self, ema: bool = False, model=None) -> dict[str, float]:
    """Top-1/top-5 accuracy and loss over every example of the eval split, each counted once.

    `model`: another module over the same variables (e.g. a lesioned net, classic.lesion).
    """
    eval_step = self._eval_step if model is None else setup.eval_step(model, self.config, self.mesh)
    model_vars = state_lib.variables(self.state, ema=ema)
    totals = None
    for b in range(self.eval_data.num_eval_batches):
      batch = mesh_lib.global_batch(self.mesh, self.eval_data.eval_batch(b))
      out = eval_step(model_vars, batch)
      totals = out if totals is None else jax.tree.map(jnp.add, totals, out)
      if self._inflight and b % self._inflight == self._inflight - 1:
        jax.block_until_ready(totals)  # each batch is 5 launches; see platform.CPU_MAX_INFLIGHT
    totals = {k: np.asarray(v, np.float64) for k, v in jax.device_get(totals).items()}   # (replicas,) each with replicas
    n = totals["count"]
    prefix = "eval_ema" if ema else "eval"
    top1, top5 = totals["correct1"] / n, totals["correct5"] / n
    # Accuracies and errors both, as for training (train/top1 and train/top1_err): one convention.
    out = across_replicas({f"{prefix}/top1": top1, f"{prefix}/top5": top5, f"{prefix}/top1_err": 1.0 - top1,
                           f"{prefix}/top5_err": 1.0 - top5, f"{prefix}/loss": totals["loss"] / n})
    return {**out, f"{prefix}/count": int(np.ravel(n)[0])}

  def evaluate_all(self) -> dict[str, float]:
    out = self.evaluate()
    if self.config.ema_decay:
      out.update(self.evaluate(ema=True))
    return out

  def evaluate_and_record(self) -> dict[str, float]:
    """Evaluates the restored state (`--mode=eval`) and appends the result, under the checkpoint's
    step and marked `"mode": "eval"`, to metrics.jsonl and TensorBoard."""
    t = time.time()
    out = self.evaluate_all()
    out["eval_seconds"] = time.time() - t
    writer = MetricWriter(self.workdir, resume_step=None)
    writer.write(self.start_step, {**out, "mode": "eval", "eval_split": self.config.eval_split})
    writer.close()
    return out

  # ------------------------------------------------------------------------------------------
  def train(self) -> dict[str, Any]:
    c = self.config
    writer = MetricWriter(self.workdir, resume_step=self.start_step)
    stop = StopRequest()
    stop.install()
    step = self.start_step
    pending: list[tuple[int, dict[str, jax.Array], int]] = []   # (first step, metrics of n steps, n): not fetched
    window = self._window                                  # fetched per-step metrics since the last log
    progress = Progress(c.train_steps, step)
    last_log_time, last_log_step = time.time(), step
    last: dict[str, Any] = {}
    k = self._per_call
    if step % k:
      raise ValueError(f"The checkpoint in {self.workdir} is at step {step}, which is not a multiple of "
                       f"steps_per_call={k}: resume with --config.steps_per_call=1 (or a divisor of {step}).")
    # On the device path the steps compute their own batches: no host input at all.
    batches = self.train_data.train_iter(step) if self._device_inputs is None else None
    data_time = 0.0
    try:
      if step >= c.train_steps:
        logging.info("Nothing to do: the run is at step %d of %d.", step, c.train_steps)
      while step < c.train_steps:
        t = time.time()
        group = None if batches is None else [next(batches)[1] for _ in range(k)]
        data_time += time.time() - t
        # data_on_device: every call takes (data, order, seeds) and draws its own batches on the device
        if self._train_steps is None:  # one dispatch per step (K = 1, or K on the CPU: platform.scan_steps)
          for i in range(k):
            args = self._device_inputs if group is None else (mesh_lib.global_batch(self.mesh, group[i]),)
            self.state, metrics = self._train_step(self.state, *args)
            pending.append((step + i, metrics, 1))
        else:  # K steps in one call (K host batches staged on the device at once)
          args = self._device_inputs if group is None else (mesh_lib.global_batches(self.mesh, group),)
          self.state, metrics = self._train_steps(self.state, *args)
          pending.append((step, metrics, k))
        step += k
        stopping = self._agree_to_stop(stop, step)
        log_now = step % c.log_every == 0 or step == c.train_steps
        ckpt_now = step % c.checkpoint_every == 0 or step == c.train_steps or stopping
        if log_now or ckpt_now:
          window += self._fetch(pending)  # raises NonFiniteError before anything is saved
          pending = []
        # A stop between logging steps logs its partial window too, marked `partial_window` (its
        # steps); a resumed run logs the full window again at the next logging step.
        if log_now or stopping and window:
          now = time.time()
          summary = self._summarise(window)
          # Training time only: the evaluation at the end of the last window is timed apart.
          train_time = max(now - last_log_time, 1e-9)
          img_per_s = (step - last_log_step) * c.batch_size * self.replicas / train_time   # all replicas
          summary.update({"img_per_s": img_per_s, "wait_for_data_frac": data_time / train_time})
          if not log_now:
            summary["partial_window"] = len(window)
          window = [] if log_now else window
          self._warn_if_input_bound(summary["wait_for_data_frac"], step)
          data_time = 0.0
          if log_now and (step % c.eval_every == 0 or step == c.train_steps):
            t_eval = time.time()
            summary.update(self.evaluate_all())
            summary["eval_seconds"] = time.time() - t_eval
          last_log_time, last_log_step = time.time(), step
          writer.write(step, summary)
          last = summary
          logging.info(progress.line(step, summary, img_per_s) +
                       (f"  eval top-1 {summary['eval/top1']:.4f}" if "eval/top1" in summary else ""))
        if ckpt_now:
          # The data position is the step; the metrics of a partly logged window travel along so a
          # resumed run logs exactly what the uninterrupted one would have.
          self.checkpointer.save(step, self.state, {"step": step, "seed": c.seed, "window": window})
        if stopping:
          logging.warning("Stopped at step %d by %s; rerun the same command to resume.", step, stop.signal)
          break
    finally:
      if batches is not None:
        batches.close()
      self.checkpointer.close()
      writer.close()
      stop.uninstall()
    return {"step": step, **last}

  def _warn_if_input_bound(self, wait_frac: float, step: int) -> None:
    """Warns once per run when the step waited for the input pipeline more than 10 % of the time."""
    if wait_frac <= INPUT_BOUND_FRAC or self._warned_input_bound:
      return
    self._warned_input_bound = True
    logging.warning("The train step waited for data %.0f%% of the time up to step %d: the input pipeline "
                    "is the bottleneck. %s", 100 * wait_frac, step, input_advice(self.config, self.train_data.workers))

  def _agree_to_stop(self, stop: "StopRequest", step: int) -> bool:
    """Whether every process stops after `step`. A signal may reach one host only (a preempted VM);
    on several processes the flags are combined every STOP_SYNC_EVERY steps, the same steps on
    every host, so all of them checkpoint the same step and exit together."""
    if jax.process_count() == 1:
      return stop.event.is_set()
    if (step // self._per_call) % max(1, STOP_SYNC_EVERY // self._per_call):
      return False
    from jax.experimental import multihost_utils
    flags = multihost_utils.process_allgather(np.int32(stop.event.is_set()))
    if flags.any() and not stop.event.is_set():
      stop.signal = f"a signal to process {int(np.argmax(flags))}"
      logging.warning("Process %d was signalled: stopping at step %d with it.", int(np.argmax(flags)), step)
    return bool(flags.any())

  def _fetch(self, pending) -> list[dict[str, float]]:
    """Fetches the pending steps' metrics (one host sync) and checks that they are finite."""
    fetched = jax.device_get([m for _, m, _ in pending])
    steps = [(s + i, {key: v[i] for key, v in m.items()} if n > 1 else m)
             for (s, _, n), m in zip(pending, fetched) for i in range(n)]
    for s, m in steps:
      if not np.all(m["train/finite"]):
        if self.config.nonfinite == "stop":
          raise NonFiniteError(
              f"Non-finite loss or gradient at step {s + 1} (loss {m['train/total_loss']}, gradient "
              f"norm {m['train/grad_norm']}). The update was not applied; "
              + (f"the last checkpoint, step {self.checkpointer.latest_step()}, is intact. "
                 if self.checkpointer.latest_step() is not None else "no checkpoint had been written. ")
              + "Lower the learning rate, or set --config.nonfinite=skip to skip such updates.")
        logging.warning("Skipped the update of step %d: non-finite loss or gradient.", s + 1)
    # JSON-ready (the window travels in the checkpoint): a float per metric, a list with replicas
    return [{key: np.asarray(v).tolist() for key, v in m.items()} for _, m in steps]

  def _summarise(self, window: list[dict[str, float]]) -> dict[str, float]:
    out = {k: np.mean([m[k] for m in window], axis=0) for k in window[0] if k != "train/finite"}
    out["train/top1"] = 1.0 - out["train/top1_err"]
    skipped = np.asarray(jax.device_get(self.state.skipped))
    out = across_replicas(out)
    out["train/skipped_updates"] = int(skipped.sum())   # over all replicas
    return out
