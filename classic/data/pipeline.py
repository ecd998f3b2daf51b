"""The input pipeline: a pure function of (seed, step), sharded per process, prefetched.

The batch of step s is fixed by the seed alone: global positions [s*B, (s+1)*B) of an endless stream
that visits the training split in a fresh permutation each epoch; process p of P reads only rows
[p*B/P, (p+1)*B/P) of it. Augmentation parameters are drawn per global batch from (seed, step), so a
run gives the same batches on 1 CPU, 8 GPUs or 2 hosts, and the pipeline's position *is* the step:
checkpointing the step checkpoints the data iterator, and a resumed run sees exactly the batches the
uninterrupted one would have seen.

Evaluation visits every example of the split exactly once, in order; the last batch is padded and
carries `mask = 0` on the padding.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import queue
import threading
from typing import Iterator

import numpy as np

from classic.data import augment, sources

VECTORISED = ("none", "cifar", "shift")  # augmentations done on whole in-memory batches


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
                                     self.source.labels, self.source.num_classes, self.source.name)
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
    self._perm_cache: tuple[int, np.ndarray] | None = None
    self._pool = None if isinstance(self.source, sources.InMemory) and config.augment in VECTORISED \
        else concurrent.futures.ThreadPoolExecutor(max(1, os.cpu_count() or 1))

  def __len__(self) -> int:
    return len(self.source)

  @property
  def num_eval_batches(self) -> int:
    return -(-len(self.source) // self.global_batch)

  def _permutation(self, epoch: int) -> np.ndarray:
    if self._perm_cache is None or self._perm_cache[0] != epoch:
      self._perm_cache = (epoch, np.random.default_rng([self.seed, epoch, 1]).permutation(len(self.source)))
    return self._perm_cache[1]

  def _indices(self, step: int) -> np.ndarray:
    n = len(self.source)
    positions = step * self.global_batch + self.row0 + np.arange(self.local_batch)
    epochs, within = np.divmod(positions, n)
    return np.array([self._permutation(int(e))[w] for e, w in zip(epochs, within)])

  def _map(self, fn, items):
    if self._pool is None:
      return [fn(*it) for it in items]
    return list(self._pool.map(lambda it: fn(*it), items))

  # ------------------------------------------------------------------------------------------
  def train_batch(self, step: int) -> dict[str, np.ndarray]:
    """The local rows of the global training batch of `step`."""
    c = self.config
    idx = self._indices(step)
    rng = np.random.default_rng([self.seed, step, 2])
    rows = slice(self.row0, self.row0 + self.local_batch)
    out: dict[str, np.ndarray] = {}
    if isinstance(self.source, sources.InMemory) and c.augment in VECTORISED:
      images = self.source.images[idx]
      labels = self.source.labels[idx]
      if c.augment in ("cifar", "shift"):
        offsets = rng.integers(0, 9, (self.global_batch, 2))[rows]
        flips = (rng.random(self.global_batch) < 0.5)[rows] & (c.augment == "cifar")
        images = augment.pad_crop_flip(images, offsets, flips)
    else:
      seeds = rng.integers(0, 2**63 - 1, self.global_batch)[rows]
      fn = functools.partial(self._augment_one, c.augment)
      pairs = self._map(lambda i, s: fn(i, np.random.default_rng(s)), list(zip(idx, seeds)))
      images = np.stack([p[0] for p in pairs])
      labels = np.array([p[1] for p in pairs], np.int32)
    out["image"], out["label"] = images, labels
    if c.pca_lighting:
      out["lighting"] = augment.lighting_alphas(rng, self.global_batch, c.pca_lighting)[rows]
    return out

  def _augment_one(self, kind: str, i: int, rng: np.random.Generator):
    c = self.config
    image, label = self.source.get(i)
    if self._pad:
      image = np.pad(image, ((self._pad, self._pad), (self._pad, self._pad), (0, 0)))
    if kind == "imagenet":
      image = augment.scale_augment(image, rng, c.image_size, tuple(c.scale_range))
    elif kind == "inception":
      image = augment.inception_crop(image, rng, c.image_size)
    elif kind in ("cifar", "shift"):
      flip = (rng.random(1) < 0.5) & (kind == "cifar")
      image = augment.pad_crop_flip(image[None], rng.integers(0, 9, (1, 2)), flip)[0]
    elif kind != "none":
      raise ValueError(f"Unknown augment {kind!r}: use 'none', 'shift', 'cifar', 'imagenet' or 'inception'.")
    elif image.shape[:2] != (c.image_size, c.image_size):
      image = augment.center_crop(image, c.image_size, c.image_size)
    return image, label

  # ------------------------------------------------------------------------------------------
  def eval_batch(self, b: int) -> dict[str, np.ndarray]:
    """The local rows of eval batch `b`; positions past the end repeat example 0 with mask 0."""
    positions = b * self.global_batch + self.row0 + np.arange(self.local_batch)
    mask = positions < len(self.source)
    idx = np.where(mask, positions, 0)
    if isinstance(self.source, sources.InMemory) and self.config.eval_crop != "ten_crop":
      images, labels = self.source.images[idx], self.source.labels[idx]
    else:
      crop = self.config.eval_crop
      pairs = self._map(lambda i: (self._eval_view(self.source.get(i)[0], crop), self.source.get(i)[1]),
                        [(i,) for i in idx])
      images = np.stack([p[0] for p in pairs])
      labels = np.array([p[1] for p in pairs], np.int32)
    return {"image": images, "label": labels.astype(np.int32), "mask": mask.astype(np.float32)}

  def _eval_view(self, image: np.ndarray, crop: str) -> np.ndarray:
    c = self.config
    if self._pad:
      image = np.pad(image, ((self._pad, self._pad), (self._pad, self._pad), (0, 0)))
    if image.shape[0] == image.shape[1] == c.image_size and crop != "ten_crop":
      return image
    resize = c.eval_resize if max(image.shape[:2]) > c.image_size else c.image_size
    if crop == "center":
      return augment.center_crop(image, c.image_size, resize)
    if crop == "ten_crop":
      return augment.ten_crop(image, c.image_size, resize)
    if crop == "full":
      return augment.center_crop(image, c.image_size, c.image_size)
    raise ValueError(f"Unknown eval_crop {crop!r}: use 'center', 'ten_crop' or 'full'.")

  # ------------------------------------------------------------------------------------------
  def train_iter(self, start_step: int, depth: int = 2) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(step, batch) from `start_step` on, produced `depth` batches ahead by a background thread."""
    return _Prefetch(self.train_batch, start_step, depth)

  def close(self) -> None:
    if self._pool is not None:
      self._pool.shutdown(wait=False, cancel_futures=True)


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
