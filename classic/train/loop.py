"""The training loop: build, restore, train, evaluate, checkpoint; stop cleanly on request.

A batch travels: pipeline (this process's rows) -> global array on the mesh -> jit train step (state
donated) -> metrics kept on device, fetched every `log_every` steps (no per-step host sync) ->
checkpoint every `checkpoint_every` steps with the data position. Evaluation covers the whole split.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from classic import platform
from classic.data import info as data_info, sources
from classic.data.pipeline import Pipeline
from classic.data.sources import DataError
from classic.models import stats
from classic.train import checkpoint, mesh as mesh_lib, setup, state as state_lib, validate
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

  def __init__(self, config, workdir: str, *, override_config: bool = False, eval_only: bool = False):
    self.config = config
    self.workdir = workdir
    os.makedirs(workdir, exist_ok=True)
    validate.check(config, num_devices=jax.device_count())  # before any data loads
    if not eval_only:
      checkpoint.check_config(workdir, config, override=override_config)
    self.mesh = mesh_lib.make_mesh()
    self.repl = mesh_lib.replicated(self.mesh)
    pid, pcount = jax.process_index(), jax.process_count()
    self.eval_data = Pipeline(config, train=False, process_index=pid, process_count=pcount,
                              num_devices=jax.device_count())
    self.train_data = None if eval_only else Pipeline(config, train=True, process_index=pid,
                                                      process_count=pcount)
    sample = self.train_data or self.eval_data
    channels = sources.probe(sample.source, count=1)[0].shape[-1]
    if self.train_data is not None:
      images = getattr(self.train_data.source, "images", None)
      data_info.check(config, self.train_data.source.name, None if images is None else images.shape[1:3], channels)
    if channels != config.channels:
      raise DataError(f"{sample.source.name} has {channels}-channel images but config.channels is "
                      f"{config.channels}: set --config.channels={channels}.")
    for field, example in (("mean", "(0.0,)"), ("std", "(255.0,)")):
      if len(config[field]) not in (1, channels):
        raise DataError(f"config.{field} has {len(config[field])} values for the {channels}-channel images "
                        f"of {sample.source.name}: give {'1' if channels == 1 else f'1 or {channels}'} values, e.g. --config.{field}='{example}'.")
    parts = setup.build(config, self.mesh, channels)
    self.input_shape = parts.input_shape
    self.model, self.tx, self.lr_fn = parts.model, parts.tx, parts.lr_fn
    self.state = parts.init()
    self.checkpointer = checkpoint.Checkpointer(workdir, config.keep_checkpoints)
    self.start_step = 0
    self._window: list[dict[str, float]] = []
    self._warned_input_bound = False
    if self.checkpointer.latest_step() is not None:
      self.state, position = self.checkpointer.restore(checkpoint.abstract(self.state))
      self.start_step = int(position["step"])
      self._window = list(position.get("window", []))
    elif config.init_from:
      self._init_from(config.init_from)
    if not eval_only:  # written once the run has started: a refused start leaves it as it was
      checkpoint.write_config(workdir, config)
    counts = stats.totals(self.model, self.input_shape)
    self.params, self.macs = counts["params"], counts["macs"]
    logging.info("%s: %s parameters, %s multiply-adds per image at %s.", config.variant or config.model.name,
                 f"{self.params:,}", f"{self.macs:,}", self.input_shape[1:])
    logging.info("%s", platform.determinism_note(config.get("deterministic", True)))
    self._inflight = parts.train_step.max_inflight
    self._per_call, self._train_steps = parts.steps_per_call, parts.train_steps
    self._train_step, self._eval_step = parts.train_step, parts.eval_step
    self.replicas = parts.replicas
    self._device_inputs = None   # config.data_on_device: the split and the run's order, held on the devices
    if parts.on_device and not eval_only:
      self._device_inputs = parts.device_inputs(self.train_data.source, config, self.mesh, config.train_steps)

  def _init_from(self, source_workdir: str) -> None:
    """Copies weights of another run; a head whose class count differs is kept freshly initialised."""
    other = checkpoint.Checkpointer(source_workdir, 1, async_save=False)
    if other.latest_step() is None:
      raise FileNotFoundError(f"init_from: no checkpoint in {source_workdir}/checkpoints.")
    restored = other.restore_arrays()
    other.close()
    src_params, src_stats = restored["params"], restored.get("batch_stats", {})

    def merge(mine, theirs, kind):
      flat_mine = jax.tree_util.tree_flatten_with_path(mine)[0]
      flat_theirs = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(theirs)[0]}
      out, fresh = [], []
      for path, leaf in flat_mine:
        key = jax.tree_util.keystr(path)
        src = flat_theirs.get(key)
        if src is not None and tuple(src.shape) == tuple(leaf.shape):
          out.append(jax.device_put(np.asarray(src, leaf.dtype), self.repl))
        else:
          out.append(leaf)
          fresh.append(key)
      if fresh:
        logging.warning("init_from: %d %s tensors kept fresh (absent or differently shaped): %s",
                        len(fresh), kind, ", ".join(fresh[:6]))
      return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(mine), out)

    params = merge(self.state.params, src_params, "parameter")
    self.state = self.state.replace(
        params=params, batch_stats=merge(self.state.batch_stats, src_stats, "batch-stat"),
        opt_state=jax.jit(self.tx.init, out_shardings=self.repl)(params),
        ema_params=params if self.config.ema_decay else {})

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
        group = self._device_inputs if batches is None else [next(batches)[1] for _ in range(k)]
        data_time += time.time() - t
        if batches is None:  # data_on_device: (state, data, order, seeds) -> K steps
          if self._train_steps is None:
            for i in range(k):
              self.state, metrics = self._train_step(self.state, *group)
              pending.append((step + i, metrics, 1))
          else:
            self.state, metrics = self._train_steps(self.state, *group)
            pending.append((step, metrics, k))
        elif self._train_steps is None:  # one dispatch per step (K = 1, or K on the CPU: platform.scan_steps)
          for i, local in enumerate(group):
            self.state, metrics = self._train_step(self.state, mesh_lib.global_batch(self.mesh, local))
            pending.append((step + i, metrics, 1))
        else:  # K batches staged on the device at once, K steps in one call
          self.state, metrics = self._train_steps(self.state, mesh_lib.global_batches(self.mesh, group))
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
