"""The training split held on the device (config.data_on_device): its order is the host path's (a fresh
permutation each epoch), and its pad-4 crop and flip have the host path's distribution (offsets, flip
rate, zero borders)."""

import jax
import numpy as np
import pytest

from classic.data import on_device, sources
from classic.data.pipeline import Pipeline
from classic.train import defaults, mesh as mesh_lib

SIDE = 32


def coordinate_images(n: int) -> sources.InMemory:
  """Image i: channel 0 holds row+1, channel 1 column+1, channel 2 i+1: a crop shows where it was cut."""
  rows, cols = np.meshgrid(np.arange(1, SIDE + 1), np.arange(1, SIDE + 1), indexing="ij")
  images = np.zeros((n, SIDE, SIDE, 3), np.uint8)
  images[..., 0], images[..., 1] = rows, cols
  images[..., 2] = (np.arange(n) + 1)[:, None, None]
  return sources.InMemory(images, np.arange(n, dtype=np.int32) % 10, 10, "coordinates")


def crop_geometry(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(offsets (B, 2) in [0, 8], flipped (B,)) of pad-4 crops of coordinate images."""
  flipped = images[:, 4, 4, 1].astype(int) > images[:, 4, 5, 1].astype(int)
  images = np.where(flipped[:, None, None, None], images[:, :, ::-1], images)
  offsets = images[:, 4, 4, :2].astype(int) - 1   # crop pixel (4, 4) is image pixel (offset_row, offset_col)
  return offsets, flipped


def device_batches(source, augment: str, steps: int, batch_size: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
  mesh = mesh_lib.make_mesh()
  data = on_device.put(source, augment, mesh)
  order = on_device.order(np.int32(seed), steps, batch_size, len(source), mesh)
  fn = jax.jit(lambda d, o, s, t: on_device.batch(d, o, s, t, batch_size=batch_size, augment=augment))
  return [jax.device_get(fn(data, order, seed, np.int32(step))) for step in range(steps)]


def test_each_epoch_visits_every_example_once_in_a_fresh_order():
  source = coordinate_images(100)   # batches of 32 straddle the epoch boundary at position 100
  batches = device_batches(source, "none", 7, 32)
  stream = np.concatenate([b["image"][:, 0, 0, 2].astype(int) - 1 for b in batches])
  first, second = stream[:100], stream[100:200]
  assert sorted(first) == list(range(100)) and sorted(second) == list(range(100))
  assert not np.array_equal(first, second) and not np.array_equal(first, np.arange(100))
  assert np.array_equal(np.concatenate([b["label"] for b in batches]), stream % 10)   # labels travel along
  again = device_batches(source, "none", 2, 32)         # a function of (seed, step): a resumed run's batches
  assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(again, batches))
  other_seed = device_batches(source, "none", 1, 32, seed=1)
  assert not np.array_equal(other_seed[0]["image"], batches[0]["image"])
  c = defaults.defaults()   # the host pipeline's order: the same examples at every step
  c.batch_size = 32
  pipe = Pipeline(c, train=True, source=source)
  assert np.array_equal(np.concatenate([pipe.train_batch(s)["image"] for s in range(7)]),
                        np.concatenate([b["image"] for b in batches]))


@pytest.mark.parametrize("augment", ["cifar", "shift"])
def test_crop_and_flip_have_the_host_paths_distribution(augment):
  source = coordinate_images(64)
  steps, batch = 100, 64                                # 6,400 crops on each path
  device = np.concatenate([b["image"] for b in device_batches(source, augment, steps, batch)])
  c = defaults.defaults()
  c.augment, c.batch_size = augment, batch
  pipe = Pipeline(c, train=True, source=source)
  host = np.concatenate([pipe.train_batch(s)["image"] for s in range(steps)])
  pipe.close()
  assert device.shape == host.shape == (steps * batch, SIDE, SIDE, 3) and device.dtype == host.dtype
  for images in (device, host):
    offsets, flipped = crop_geometry(images)
    for axis in (0, 1):   # uniform over the 9 offsets 0..8: 1/9 each, +-0.02 (about 5 standard errors)
      counts = np.bincount(offsets[:, axis], minlength=9) / len(offsets)
      assert counts.shape == (9,) and np.all(np.abs(counts - 1 / 9) < 0.02), counts
    assert abs(flipped.mean() - (0.5 if augment == "cifar" else 0.0)) < 0.03
    # the border the crop brings in is zero in every channel: offset o shows 4 - o zero rows on top
    top = offsets[:, 0] == 0
    assert np.all(images[top, :4] == 0) and np.all(images[top, 4:, 4:-4] != 0)
    assert np.all(images[offsets[:, 0] == 8, -4:] == 0)
