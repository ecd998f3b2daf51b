"""A data set describes itself; `--config.dataset=X` alone moves any recipe to X.

`describe(config)` reads what the data says about itself, without decoding a large split: its splits,
classes (and their names), channels, native image size (when every image has it), the size of its
training split and whether it fits in memory, and (on demand) its channel statistics.

`adapt(config, explicit)` moves a recipe to the data set that `--config.dataset` names. A recipe's
data fields describe its paper's data (ImageNet: 1,000 classes, a 'validation' split, streamed,
ImageNet's channel statistics, scale augmentation from 256-480 px); when the command line names
another data set, every such field it does not set too is taken from the data (DATA_FIELDS), logged,
and recorded in `config.derived_from_data`. An augmentation made for large images is replaced by the
CIFAR one when the images are small (AUGMENT_FOR_SMALL_IMAGES). `check(config, info)` then refuses
what cannot work at the data's image size, with the fix.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Iterable

import numpy as np
from absl import logging

from classic.data import normalization, sources

# Fields a recipe sets for its paper's data; moved to another data set, they come from the data.
DATA_FIELDS = ("model.num_classes", "channels", "train_split", "eval_split", "in_memory", "mean", "std",
               "augment", "pca_lighting", "photometric", "pad", "eval_image_size")
COLOUR_FIELDS = ("pca_lighting", "photometric")   # RGB only: off on greyscale data
# Decoded splits up to this size are kept in memory when a recipe is moved to them.
IN_MEMORY_BYTES = 4 << 30
# Known channel statistics of data sets too large to measure at start.
KNOWN_STATS = {"imagenet2012": normalization.IMAGENET}
# An augmentation may upscale images at most this much (a 32-px image scaled to 256-480 px is not
# ImageNet's augmentation any more, it is a blur): beyond, it is refused or, for a moved recipe, replaced.
MAX_UPSCALE = 2.0
AUGMENT_FOR_SMALL_IMAGES = "cifar"   # pad-4 crop + flip at the native size; resized on device
MAX_BORDER = 4                        # `pad`: a zero border up to this wide brings images to the input
                                      # size (LeNet: MNIST's 28 px to 32); bigger gaps are resized
EVAL_SPLITS = ("validation", "val", "test")
STATS_SAMPLE = 1000                   # images measured for the channel statistics of an encoded split


@dataclasses.dataclass
class DatasetInfo:
  name: str
  splits: tuple[str, ...]
  num_classes: int
  class_names: tuple[str, ...]
  channels: int
  image_size: tuple[int, int] | None   # (height, width) of every image; None where they differ
  train_examples: int
  fits_in_memory: bool                 # the decoded training split is small enough to keep in RAM
  needs_memory: bool = False           # an archive: it has no random access
  _channel_stats: object = None        # () -> (mean, std) on the 0-255 scale

  def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the training split (0-255 scale), rounded to 2 decimals."""
    return self._channel_stats()


def _round(values) -> tuple[float, ...]:
  return tuple(round(float(v), 2) for v in values)


def _array_channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
  flat = images.reshape(-1, images.shape[-1]).astype(np.float64)
  return _round(flat.mean(0)), _round(flat.std(0))


def _readable(source, i: int) -> np.ndarray | None:
  try:
    return source.get(i)[0]
  except sources.DataError:  # named or skipped by the load, as config.corrupt_files says
    return None


def _sample_channel_stats(get, n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Channel statistics over up to STATS_SAMPLE images get(i) of n, a fixed sample."""
  keep = np.random.default_rng(0).permutation(n)[:STATS_SAMPLE]
  s1 = s2 = count = 0
  for i in np.sort(keep):
    image = get(int(i))
    if image is None:
      continue
    image = image.astype(np.float64)
    x = image.reshape(-1, image.shape[-1])
    s1, s2, count = s1 + x.sum(0), s2 + (x * x).sum(0), count + len(x)
  mean = s1 / count
  return _round(mean), _round(np.sqrt(np.maximum(s2 / count - mean * mean, 0)))


def _in_memory(source, name: str, splits: Iterable[str], needs_memory: bool = False) -> DatasetInfo:
  shape = source.images.shape
  return DatasetInfo(name=name, splits=tuple(splits), num_classes=source.num_classes,
                     class_names=tuple(source.class_names), channels=shape[-1], image_size=tuple(shape[1:3]),
                     train_examples=len(source), fits_in_memory=True, needs_memory=needs_memory,
                     _channel_stats=functools.partial(_array_channel_stats, source.images))


def describe(config) -> DatasetInfo:
  """What `config.dataset` says about itself (its training split: config.train_split, else 'train')."""
  name = config.dataset
  if name == "digits":
    return _in_memory(sources.digits("train"), name, ("train", "test"))
  if os.sep in name or name.endswith(".tar.gz") or os.path.isdir(name):
    return _describe_folder(config)
  return _describe_tfds(config)


def _train_split(config, splits: tuple[str, ...]) -> str:
  if config.train_split in splits:
    return config.train_split
  if "train" in splits:
    return "train"
  raise sources.DataError(f"{config.dataset} has no split {config.train_split!r} (it has: {', '.join(splits)}): "
                          "set --config.train_split.")


def _describe_folder(config) -> DatasetInfo:
  path = os.path.abspath(os.path.expanduser(config.dataset))
  if not os.path.exists(path):
    raise sources.DataError(f"Dataset path {path} does not exist. Give a directory laid out as "
                            "<split>/<class>/<image>.jpg, or a .tar.gz of one.")
  if not os.path.isdir(path):  # an archive: read into memory (cached), the only way it can be read
    splits = sources.archive_splits(path)
    train = sources.image_folder(path, _train_split(config, splits), in_memory=True, cache_dir=config.cache_dir,
                                 corrupt=config.corrupt_files)
    return _in_memory(train, os.path.basename(path), splits, needs_memory=True)
  splits = sources.folder_splits(path)
  split = _train_split(config, splits)
  classes, paths, labels = sources.list_folder(os.path.join(path, split))
  if not len(paths):
    raise sources.DataError(f"{path}/{split} has no images: expected {path}/{split}/<class>/<image>.jpg.")
  files = sources.Encoded(sources.FolderFiles(os.path.join(path, split), paths, labels), len(classes),
                          f"{path}/{split}")
  probe = sources.probe(files)
  shapes = {p.shape for p in probe}
  fixed = shapes.pop() if len(shapes) == 1 else None
  decoded_bytes = len(files) * int(np.prod(fixed)) if fixed else None
  return DatasetInfo(
      name=os.path.basename(path), splits=splits, num_classes=len(classes), class_names=tuple(classes),
      channels=probe[0].shape[-1], image_size=tuple(fixed[:2]) if fixed else None, train_examples=len(files),
      fits_in_memory=bool(decoded_bytes and decoded_bytes <= IN_MEMORY_BYTES),
      _channel_stats=lambda: _sample_channel_stats(lambda i: _readable(files, i), len(files)))


def _describe_tfds(config) -> DatasetInfo:
  builder = sources.tfds_builder(config.dataset, config.data_dir or None)
  splits = tuple(builder.info.splits)
  split = _train_split(config, splits)
  image, label = builder.info.features["image"], builder.info.features["label"]
  shape = tuple(image.shape)
  fixed = None not in shape[:2]
  n = builder.info.splits[split].num_examples
  known = KNOWN_STATS.get(config.dataset.split("/")[0])

  def channel_stats():
    if known:
      return tuple(known[0]), tuple(known[1])
    source = sources.tfds_source(config.dataset, split, data_dir=config.data_dir or None, in_memory=False)
    return _sample_channel_stats(lambda i: source.get(i)[0], len(source))

  return DatasetInfo(name=config.dataset, splits=splits, num_classes=label.num_classes,
                     class_names=tuple(label.names), channels=shape[-1], image_size=shape[:2] if fixed else None,
                     train_examples=n, fits_in_memory=fixed and n * int(np.prod(shape)) <= IN_MEMORY_BYTES,
                     _channel_stats=channel_stats)


def _upscale(config, image_size: tuple[int, int] | None) -> float:
  """How much the training augmentation enlarges images of `image_size` (1 where unknown)."""
  if image_size is None:
    return 1.0
  side = min(image_size)
  if config.augment == "imagenet":
    return config.scale_range[0] / side
  if config.augment == "inception":
    return config.image_size / side
  return 1.0


def adapt(config, explicit: Iterable[str], info: DatasetInfo | None = None) -> dict[str, object]:
  """Moves `config` (in place) to the data set its `dataset` names, when the command line set
  `dataset` (in `explicit`): every DATA_FIELDS entry not in `explicit` is taken from the data.
  Returns {field: value} of what was derived (also logged and kept in config.derived_from_data)."""
  explicit = set(explicit)
  if "dataset" not in explicit:
    return {}
  info = info or describe(config)
  free = [f for f in DATA_FIELDS if f not in explicit]
  derived: dict[str, object] = {}

  def derive(field, value):
    node, _, leaf = field.rpartition(".")
    target = config[node] if node else config
    if target[leaf] != value:
      target[leaf] = value
      derived[field] = value

  if "model.num_classes" in free:
    derive("model.num_classes", info.num_classes)
  if "channels" in free:
    derive("channels", info.channels)
  if "train_split" in free:
    derive("train_split", _train_split(config, info.splits))
  if "eval_split" in free and config.eval_split not in info.splits:
    options = [s for s in EVAL_SPLITS if s in info.splits]
    if not options:
      raise sources.DataError(f"{info.name} has no evaluation split among {', '.join(EVAL_SPLITS)} (it has: "
                              f"{', '.join(info.splits)}): set --config.eval_split.")
    derive("eval_split", options[0])
  if "in_memory" in free:
    derive("in_memory", info.needs_memory or info.fits_in_memory)
  if "mean" in free or "std" in free:
    mean, std = info.channel_stats()
    if "mean" in free:
      derive("mean", mean)
    if "std" in free:
      derive("std", std)
  if "augment" in free and _upscale(config, info.image_size) > MAX_UPSCALE:
    derive("augment", AUGMENT_FOR_SMALL_IMAGES)
  for field in COLOUR_FIELDS:
    if field in free and info.channels != 3:
      derive(field, 0.0)
  if "eval_image_size" in free and config.eval_image_size and info.image_size \
      and min(info.image_size) < config.image_size:   # a larger test crop of images smaller than the net's input
    derive("eval_image_size", 0)
  if "pad" in free:
    gap = config.image_size - min(info.image_size) if info.image_size else 0
    derive("pad", gap // 2 if 0 < gap <= 2 * MAX_BORDER else 0)
  if derived:
    config.derived_from_data = tuple(sorted(derived))
    logging.info("Moved to %s; from the data: %s.", info.name,
                 ", ".join(f"{k}={v!r}" for k, v in derived.items()))
  return derived


def check(config, name: str, image_size: tuple[int, int] | None, channels: int = 3) -> None:
  """Refuses an augmentation that cannot work on data `name` whose images all have `image_size`
  (None: they differ) and `channels`, naming the fix."""
  colour = [f"--config.{f}={config[f]}" for f in COLOUR_FIELDS if config[f] and channels != 3]
  if colour:
    raise sources.DataError(f"{' and '.join(colour)} distort RGB colours, but {name} has {channels}-channel "
                            f"images: set {' '.join(c.split('=')[0] + '=0' for c in colour)}.")
  if config.augment == "imagenet" and config.image_size > config.scale_range[0]:
    raise sources.DataError(
        f"The 'imagenet' augmentation crops {config.image_size} px from images scaled to a shorter side of "
        f"{config.scale_range[0]}-{config.scale_range[1]} px: the crop does not fit. Set --config.scale_range "
        f"to start at {config.image_size} px or more.")
  factor = _upscale(config, image_size)
  if factor <= MAX_UPSCALE:
    return
  side = min(image_size)
  lo, hi = (round(s * side / 224) for s in (256, 480))
  if config.augment == "imagenet":
    what = (f"scales {side}-px images of {name} to {config.scale_range[0]}-{config.scale_range[1]} px "
            f"({factor:.0f}x and more) and crops {config.image_size} px")
  else:
    what = f"crops {side}-px images of {name} and enlarges the crops to {config.image_size} px ({factor:.0f}x)"
  raise sources.DataError(
      f"The '{config.augment}' augmentation {what}: it would train on blurred upscaled pixels. Use "
      f"--config.augment=cifar (pad-4 crop and flip at {side} px; the train step resizes to the net's "
      f"{config.image_size} px), or, for the ImageNet augmentation at the data's scale, "
      f"--config.image_size={side} --config.scale_range='({lo}, {hi})' where the net allows that input.")
