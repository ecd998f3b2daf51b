"""The input pipeline: a pure function of (seed, step), sharded per process, prefetched.

The batch of step s is fixed by the seed alone: global positions [s*B, (s+1)*B) of an endless stream
that visits the training split in a fresh permutation each epoch; process p of P reads only rows
[p*B/P, (p+1)*B/P) of it. Augmentation parameters are drawn per global batch from (seed, step), so a
run gives the same batches on 1 CPU, 8 GPUs or 2 hosts, and the pipeline's position *is* the step:
checkpointing the step checkpoints the data iterator, and a resumed run sees exactly the batches the
uninterrupted one would have seen.

Evaluation visits every example of the split exactly once, in order; the last batch is padded and
carries `mask = 0` on the padding.

Small in-memory sets are augmented a whole batch at a time with numpy. Everything else (encoded
images: ImageNet, image folders with in_memory=False) goes example by example through `ExampleMaker`,
a picklable function of (seed, step, row): in `config.data_workers` grain worker processes (a
MapDataset whose record r is row r % B of step r // B), or in a thread pool of this process with
data_workers=0. Either way the batch of a step is the same.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import re
import threading
from typing import Iterator

import numpy as np
from absl import logging

from classic.data import augment, decoding, sources


class Pipeline:

  def __init__(self, config, *, train: bool, process_index: int = 0, process_count: int = 1,
               num_devices: int = 1, source=None):
    self.config = config
    self.train = train
    self.source = source if source is not None else sources.load(
        config, config.train_split if train else config.eval_split)
    sources.check_classes(self.source, config.model.num_classes)
    self._pad = config.pad
    if isinstance(self.source, sources.InMemory) and config.pad:  # pad once, not per batch
      p = config.pad
      self.source = sources.InMemory(np.pad(self.source.images, ((0, 0), (p, p), (p, p), (0, 0))),
                                     self.source.labels, self.source.num_classes, self.source.name,
                                     self.source.class_names)
      self._pad = 0
    batch = config.batch_size if train else (config.eval_batch_size or config.batch_size)
    if not train:  # eval batches are padded anyway: round up to split evenly over the devices
      batch = -(-batch // num_devices) * num_devices
    if batch % process_count:
      raise ValueError(f"batch size {batch} is not divisible by the {process_count} processes.")
    self.global_batch = batch
    self.local_batch = batch // process_count
    self.row0 = process_index * self.local_batch
    self.seed = config.seed
    self.vectorised = isinstance(self.source, sources.InMemory) and config.augment in augment.BATCHED
    self.maker = ExampleMaker(self.source, config, self._pad, self.global_batch)
    # grain worker processes for encoded sources; in-memory arrays are augmented in threads here
    self.workers = 0 if self.vectorised or isinstance(self.source, sources.InMemory) else data_workers(config)
    self._pool = None if self.vectorised else concurrent.futures.ThreadPoolExecutor(available_cores())

  def __len__(self) -> int:
    return len(self.source)

  @property
  def num_eval_batches(self) -> int:
    return -(-len(self.source) // self.global_batch)

  def _indices(self, step: int) -> np.ndarray:
    return np.array([self.maker.index(step, row) for row in range(self.row0, self.row0 + self.local_batch)])

  def _map(self, fn, items):
    if self._pool is None:
      return [fn(*it) for it in items]
    return list(self._pool.map(lambda it: fn(*it), items))

  # ------------------------------------------------------------------------------------------
  def train_batch(self, step: int) -> dict[str, np.ndarray]:
    """The local rows of the global training batch of `step` (in this process: threads, no workers)."""
    c = self.config
    rows = slice(self.row0, self.row0 + self.local_batch)
    if self.vectorised:
      idx = self._indices(step)
      rng = np.random.default_rng([self.seed, step, 2])
      images = self.source.images[idx]
      labels = self.source.labels[idx]
      if c.augment in ("cifar", "shift"):
        offsets = rng.integers(0, 9, (self.global_batch, 2))[rows]
        flips = (rng.random(self.global_batch) < 0.5)[rows] & (c.augment == "cifar")
        images = augment.pad_crop_flip(images, offsets, flips)
      out = {"image": images, "label": labels}
    else:
      out = stack(self._map(lambda j: self.maker.train(step, j), [(j,) for j in range(rows.start, rows.stop)]))
    return self._with_lighting(step, out)

  def _with_lighting(self, step: int, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Adds the per-image colour parameters the train step applies on device (PCA lighting,
    photometric distortions), drawn for the global batch, so every host draws the same numbers."""
    drawn = augment.colour_params(self.config, self.global_batch,
                                  lambda stream: np.random.default_rng([self.seed, step, stream]))
    out.update({k: v[self.row0:self.row0 + self.local_batch] for k, v in drawn.items()})
    return out

  # ------------------------------------------------------------------------------------------
  def eval_batch(self, b: int) -> dict[str, np.ndarray]:
    """The local rows of eval batch `b`; positions past the end repeat example 0 with mask 0."""
    positions = b * self.global_batch + self.row0 + np.arange(self.local_batch)
    mask = positions < len(self.source)
    idx = np.where(mask, positions, 0)
    if self.config.eval_crop == "dense":  # one image array per test scale
      pairs = self._map(self.maker.eval, [(i,) for i in idx])
      views = {dense_key(k): np.stack([p[0][k] for p in pairs]) for k in range(len(pairs[0][0]))}
      return {**views, "label": np.array([p[1] for p in pairs], np.int32), "mask": mask.astype(np.float32)}
    if (isinstance(self.source, sources.InMemory) and self.config.eval_crop in ("center", "full")
        and self.maker.eval_size == self.config.image_size):
      images, labels = self.source.images[idx], self.source.labels[idx]
    else:
      out = stack(self._map(self.maker.eval, [(i,) for i in idx]))
      images, labels = out["image"], out["label"]
    return {"image": images, "label": labels.astype(np.int32), "mask": mask.astype(np.float32)}

  # ------------------------------------------------------------------------------------------
  def train_iter(self, start_step: int, depth: int = 2) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(step, batch) from `start_step` on, produced ahead of the consumer: by `self.workers` grain
    processes, or with workers=0 by a background thread, `depth` batches ahead."""
    if self.workers:
      return _GrainBatches(self, start_step)
    return _Prefetch(self.train_batch, start_step, depth)

  def close(self) -> None:
    if self._pool is not None:
      self._pool.shutdown(wait=False, cancel_futures=True)


def dense_key(k: int) -> str:
  """The eval batch's key of test scale k of a dense evaluation: 'image', 'image_scale1', ..."""
  return "image" if k == 0 else f"image_scale{k}"


def dense_scales(config) -> tuple[int, ...]:
  return tuple(config.get("eval_scales", ())) or (config.eval_resize,)


def available_cores() -> int:
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except AttributeError:  # not Linux
    return max(1, os.cpu_count() or 1)


def data_workers(config) -> int:
  """config.data_workers, with -1 meaning one per core available to this process."""
  n = config.get("data_workers", -1)
  if n < -1:
    raise ValueError(f"config.data_workers must be -1 (one per core), 0 (threads) or a count, got {n}.")
  return available_cores() if n == -1 else n


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
  """The order in which epoch `epoch` of a run seeded `seed` visits the n examples of its split."""
  return np.random.default_rng([seed, epoch, 1]).permutation(n)


def stack(pairs) -> dict[str, np.ndarray]:
  """[(image, label), ...] -> {'image': (B, H, W, C) uint8, 'label': (B,) int32}."""
  return {"image": np.stack([p[0] for p in pairs]), "label": np.array([p[1] for p in pairs], np.int32)}


class ExampleMaker:
  """Training example (step, row) and eval example i of a source, for any process: picklable.

  Row j of step s is the example at global position s*B + j of an endless stream that visits the
  split in a fresh permutation each epoch, augmented with random draws seeded by (seed, step, j).
  Encoded JPEGs are cropped while decoding (decoding.py); arrays go through augment.py's forms.
  """

  def __init__(self, source, config, pad: int, global_batch: int):
    self.source, self.pad, self.global_batch = source, pad, global_batch
    self.seed = config.seed
    self.augment, self.size = config.augment, config.image_size
    self.scale_range = tuple(config.scale_range)
    self.eval_crop, self.eval_resize = config.eval_crop, config.eval_resize
    self.eval_size = config.get("eval_image_size", 0) or config.image_size
    self.eval_scales = dense_scales(config)
    self.skip_corrupt = config.corrupt_files == "skip"
    self.regions = config.get("jpeg_regions", True)
    self._perm: tuple[int, np.ndarray] | None = None
    if self.augment not in augment.AUGMENTATIONS:
      raise ValueError(f"Unknown augment {self.augment!r}: use one of {', '.join(map(repr, augment.AUGMENTATIONS))}.")

  def __getstate__(self):
    return {**self.__dict__, "_perm": None}

  def _permutation(self, epoch: int) -> np.ndarray:
    if self._perm is None or self._perm[0] != epoch:
      self._perm = (epoch, epoch_order(self.seed, epoch, len(self.source)))
    return self._perm[1]

  def index(self, step: int, row: int, skip: int = 0) -> int:
    """The example at global stream position step*B + row (`skip`: the one that many places later in
    the same epoch's permutation, wrapping around)."""
    epoch, within = divmod(step * self.global_batch + row, len(self.source))
    perm = self._permutation(epoch)
    return int(perm[(within + skip) % len(perm)])

  def train(self, step: int, row: int) -> tuple[np.ndarray, int]:
    rng = np.random.default_rng([self.seed, step, 3, row])
    for attempt in range(len(self.source)):
      index = self.index(step, row, attempt)
      try:
        return self._augmented(index, rng)
      except sources.DataError as e:
        if not self.skip_corrupt:
          raise
        logging.warning("Skipping %s", e)  # corrupt_files=skip: the next example of the permutation
    raise sources.DataError(f"No readable example in {self.source.name}.")

  def _record(self, index: int) -> tuple[object, int]:
    if isinstance(self.source, sources.Encoded):
      return self.source.read(index)
    return self.source.get(index)

  def _augmented(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    data, label = self._record(index)
    kind, size = self.augment, self.size
    try:
      if isinstance(data, bytes) and not self.pad and kind in ("imagenet", "inception"):
        if kind == "imagenet":
          return decoding.scale_augment(data, rng, size, self.scale_range, self.regions), label
        return decoding.inception_crop(data, rng, size, self.regions), label
      image = self._array(data, index)
    except decoding.DecodeError as e:
      raise self._corrupt(index, e) from e
    if kind == "imagenet":
      image = augment.scale_augment(image, rng, size, self.scale_range)
    elif kind == "inception":
      image = augment.inception_crop(image, rng, size)
    elif kind in ("cifar", "shift"):
      flip = (rng.random(1) < 0.5) & (kind == "cifar")
      image = augment.pad_crop_flip(image[None], rng.integers(0, 9, (1, 2)), flip)[0]
    elif image.shape[:2] != (size, size):
      image = augment.center_crop(image, size, size)
    return image, label

  def _array(self, data, index: int) -> np.ndarray:
    if isinstance(data, bytes):
      try:
        image = decoding.decoded(data)
      except decoding.DecodeError as e:
        raise self._corrupt(index, e) from e
    else:
      image = data if data.ndim == 3 else data[..., None]
    if self.pad:
      image = np.pad(image, ((self.pad, self.pad), (self.pad, self.pad), (0, 0)))
    return image

  def _corrupt(self, index: int, e: Exception) -> sources.DataError:
    where = self.source.where(index) if isinstance(self.source, sources.Encoded) else f"{self.source.name}[{index}]"
    return sources.DataError(f"Cannot decode image {where}: {e}. Remove it, or set "
                             "--config.corrupt_files=skip to skip unreadable files.")

  def eval(self, index: int) -> tuple[np.ndarray, int]:
    """The test-time view of example `index` (centre crop, ten or 144 crops, the full image, or the
    dense test scales) at the evaluation size."""
    data, label = self._record(index)
    crop, size = self.eval_crop, self.eval_size
    if crop not in augment.EVAL_CROPS:
      raise ValueError(f"Unknown eval_crop {crop!r}: use one of {', '.join(map(repr, augment.EVAL_CROPS))}.")
    try:
      if isinstance(data, bytes) and not self.pad and crop == "center":
        return decoding.center_crop(data, size, self.eval_resize, self.regions), label
      if isinstance(data, bytes) and not self.pad:
        image = decoding.decoded(data, {"ten_crop": self.eval_resize,
                                        "multi_crop_144": min(augment.GOOGLENET_144_SCALES)}.get(crop, 0))
      else:
        image = self._array(data, index)
    except decoding.DecodeError as e:
      raise self._corrupt(index, e) from e
    if crop == "dense":
      return augment.dense_views(image, self.eval_scales), label
    if crop == "multi_crop_144":
      return augment.multi_crop_144(image, size), label
    if image.shape[0] == image.shape[1] == size and crop != "ten_crop":
      return image, label
    resize = self.eval_resize if max(image.shape[:2]) > size else size
    if crop == "center":
      return augment.center_crop(image, size, resize), label
    if crop == "ten_crop":
      return augment.ten_crop(image, size, resize), label
    return augment.center_crop(image, size, size), label


class _GrainExample:
  """grain map: record r of this process's stream -> row (r % local batch) of step (r // local batch)."""

  def __init__(self, maker: ExampleMaker, local_batch: int, row0: int):
    self.maker, self.local_batch, self.row0 = maker, local_batch, row0

  def __call__(self, r: int) -> tuple[np.ndarray, int]:
    step, j = divmod(int(r), self.local_batch)
    return self.maker.train(step, self.row0 + j)


class _GrainBatches:
  """(step, batch) from grain worker processes: a MapDataset over this process's records from
  `start` on, batched by the local batch size, each batch made in one worker."""

  def __init__(self, pipe: Pipeline, start: int):
    import grain
    from absl import flags
    if not flags.FLAGS.is_parsed():  # grain reads its absl flags; a library caller may not have parsed any
      flags.FLAGS.mark_as_parsed()
    self._pipe, self._step = pipe, start
    local = pipe.local_batch
    records = grain.MapDataset.range(start * local, (start + 2**40) * local)
    batches = records.map(_GrainExample(pipe.maker, local, pipe.row0)).batch(local, batch_fn=stack)
    # One thread a worker: a worker is a core, and data_workers=-1 gives one per core. (Two threads in
    # one worker also fill 2 cores, as PIL releases the GIL: docs/performance.md, "Input pipeline".)
    self._iter = iter(batches.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=1)).mp_prefetch(
        grain.MultiprocessingOptions(num_workers=pipe.workers, per_worker_buffer_size=2)))

  def __iter__(self):
    return self

  def __next__(self) -> tuple[int, dict[str, np.ndarray]]:
    try:
      batch = next(self._iter)
    except RuntimeError as e:
      if "terminated unexpectedly" not in str(e):
        raise
      code = re.search(r"exit code (-?\d+)", str(e))
      why = " (killed: by the out-of-memory killer?)" if code and code.group(1) == "-9" else ""
      raise sources.DataError(f"A data worker process died with exit code {code.group(1) if code else '?'}{why} "
                              f"while making the batch of step {self._step}. Rerun to resume from the last "
                              "checkpoint; with little memory, lower --config.data_workers.") from e
    step, self._step = self._step, self._step + 1
    return step, self._pipe._with_lighting(step, batch)

  def close(self) -> None:
    close = getattr(self._iter, "close", None)
    if close is not None:
      close()


class _Prefetch:
  """Runs `make(step)` for step, step+1, ... in a daemon thread, `depth` ahead of the consumer."""

  def __init__(self, make, start: int, depth: int):
    self._queue: queue.Queue = queue.Queue(maxsize=depth)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, args=(make, start), daemon=True)
    self._thread.start()

  def _run(self, make, step):
    while not self._stop.is_set():
      try:
        item = (step, make(step), None)
      except BaseException as e:  # hand the error to the consumer
        item = (step, None, e)
      while not self._stop.is_set():
        try:
          self._queue.put(item, timeout=0.1)
          break
        except queue.Full:
          continue
      if item[2] is not None:
        return
      step += 1

  def __iter__(self):
    return self

  def __next__(self):
    step, batch, error = self._queue.get()
    if error is not None:
      raise error
    return step, batch

  def close(self):
    self._stop.set()
