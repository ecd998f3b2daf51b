"""An in-memory training split held on the accelerator and augmented there: no per-step host work.

`config.data_on_device=True` (in-memory sets with the 'none', 'shift' or 'cifar' augmentation: CIFAR,
MNIST, the digits). The split is put on every device once, zero-padded for the crop, with the order
of the whole run; the batch of step s is then computed inside the jitted train step:

- order: the host pipeline's own (classic.data.pipeline.epoch_order: a fresh permutation of the split
  each epoch, from the seed), so step s trains on the same examples on either path. It is computed on
  the host once, for every epoch of the run: train_steps x batch x 4 bytes (CIFAR's 64k x 128: 33 MB);
  permuting 50,000 examples inside the step would cost more than the step itself on a CPU.
- augmentation (He et al. 2016 §4.2): 4 zero pixels on each side, a random crop of the image's size
  (offsets uniform in [0, 8] per axis) and a horizontal flip with probability 1/2 ('cifar'; 'shift'
  does not flip), drawn from (seed, step) with jax.random: the host path's distribution
  (augment.pad_crop_flip), from another random stream.

A resumed run recomputes exactly the batches it would have seen: the step in the restored state is the
data position. The split is replicated, not sharded, over the devices: each device gathers the rows of
its slice of the global batch from its own copy, so the batches do not depend on the device count and
no collective runs per step. A split of up to a few hundred MB (CIFAR-100 padded: 240 MB) fits any
accelerator; larger sets stay on the host path.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from classic.data import augment, sources
from classic.data.pipeline import epoch_order

CROP_PAD = 4                                 # the 'shift'/'cifar' crop's zero border (augment.pad_crop_flip)


def put(source: sources.InMemory, augment: str, mesh: Mesh) -> dict[str, jax.Array]:
  """The split's images (as the Pipeline holds them: config.pad applied; padded for the crop here) and
  labels, as arrays replicated over `mesh`."""
  if not isinstance(source, sources.InMemory):
    raise sources.DataError(f"data_on_device needs {source.name} decoded in memory: set --config.in_memory=True.")
  images = source.images
  if augment in ("shift", "cifar"):
    images = np.pad(images, ((0, 0), (CROP_PAD, CROP_PAD), (CROP_PAD, CROP_PAD), (0, 0)))
  return {"image": _replicated(np.ascontiguousarray(images), mesh), "label": _replicated(source.labels.astype(np.int32), mesh)}


def order(seeds: np.ndarray, steps: int, batch_size: int, n: int, mesh: Mesh) -> jax.Array:
  """The run's order, (epochs, n) int32 (with a leading replica axis where `seeds` has one): row e is
  epoch e's permutation of the n examples, for as many epochs as `steps` batches reach into."""
  epochs = (steps * batch_size) // n + 1
  seeds = np.asarray(seeds)
  host = np.stack([np.stack([epoch_order(int(seed), e, n) for e in range(epochs)]).astype(np.int32)
                   for seed in seeds.reshape(-1)]).reshape(seeds.shape + (epochs, n))
  return _replicated(host, mesh)


def _replicated(host: np.ndarray, mesh: Mesh) -> jax.Array:
  """A host array as one global array held whole by every device of `mesh` (on every process)."""
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def batch(data: dict[str, jax.Array], order_: jax.Array, seed: jax.Array, step: jax.Array, *,
          batch_size: int, augment: str) -> dict[str, jax.Array]:
  """The training batch of `step`: {'image': (B, H, W, C) uint8 at the split's own size (after
  config.pad), 'label': (B,) int32}, from the run's `order_` (see `order`) and its `seed`."""
  n = data["label"].shape[0]
  position = step.astype(jnp.int32) * batch_size + jnp.arange(batch_size)
  rows = order_[position // n, position % n]
  images, labels = data["image"][rows], data["label"][rows]
  if augment in ("shift", "cifar"):
    key = jax.random.fold_in(jax.random.key(seed), step)
    offset_key, flip_key = jax.random.split(key)
    offsets = jax.random.randint(offset_key, (batch_size, 2), 0, 2 * CROP_PAD + 1)
    _, h, w, channels = images.shape
    crop = (h - 2 * CROP_PAD, w - 2 * CROP_PAD, channels)
    images = jax.vmap(lambda x, o: jax.lax.dynamic_slice(x, (o[0], o[1], 0), crop))(images, offsets)
    if augment == "cifar":
      flips = jax.random.bernoulli(flip_key, 0.5, (batch_size,))
      images = jnp.where(flips[:, None, None, None], images[:, :, ::-1], images)
  return {"image": images, "label": labels}


def problem(config) -> str | None:
  """Why `config` cannot use data_on_device (one sentence with the fix), or None."""
  if not config.get("data_on_device", False):
    return None
  if config.augment not in augment.BATCHED:
    return (f"data_on_device computes the {', '.join(map(repr, augment.BATCHED))} augmentations on the device, not "
            f"{config.augment!r}: set --config.data_on_device=False")
  if not config.in_memory:
    return "data_on_device holds the split in memory: set --config.in_memory=True (or data_on_device=False)"
  if config.pca_lighting or config.photometric:
    return ("data_on_device draws no colour augmentation: set --config.pca_lighting=0 and "
            "--config.photometric=0, or data_on_device=False")
  return None
