"""Where examples come from: scikit-learn's digits, an image folder (or its .tar.gz), or TFDS.

Every source is random access: `len(source)`, `source.get(i) -> (HWC uint8 image, label)`. Small
data sets are decoded once into a uint8 array (`InMemory`) and cached on disk, so a run starts in a
second and the pipeline augments whole batches with numpy; large ones (ImageNet) stay encoded and are
decoded per example (`Encoded`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tarfile
from typing import Callable

import numpy as np
from absl import logging
from PIL import Image

from classic.data import decoding

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".webp")
MAX_LISTED = 20  # unreadable files named in one error


def is_image_name(name: str) -> bool:
  return name.lower().endswith(IMAGE_SUFFIXES)


def warn_ignored(where: str, names: list[str]) -> None:
  """Files of an image folder or archive that are not images by their names: ignored, and said once."""
  if names:
    shown = ", ".join(names[:5]) + (f", ... ({len(names) - 5} more)" if len(names) > 5 else "")
    logging.warning("Ignoring %d files of %s that are not images (%s): %s", len(names), where,
                    "/".join(IMAGE_SUFFIXES), shown)


class DataError(Exception):
  """A data set that is missing, malformed or does not fit the config: the message says what to do."""


@dataclasses.dataclass
class InMemory:
  """A split decoded into one uint8 array (N, H, W, C) with int32 labels."""

  images: np.ndarray
  labels: np.ndarray
  num_classes: int
  name: str
  class_names: tuple[str, ...] = ()

  def __len__(self) -> int:
    return len(self.labels)

  def get(self, i: int) -> tuple[np.ndarray, int]:
    return self.images[i], int(self.labels[i])


@dataclasses.dataclass
class Encoded:
  """A split kept as encoded records, decoded on access. `records[i] -> (bytes or array, label)` and
  `records.where(i)` (a file name, for errors) must pickle: grain's worker processes get a copy."""

  records: object
  num_classes: int
  name: str
  class_names: tuple[str, ...] = ()

  def __len__(self) -> int:
    return len(self.records)

  def read(self, i: int) -> tuple[object, int]:
    return self.records[int(i)]

  def where(self, i: int) -> str:
    return self.records.where(int(i))

  def get(self, i: int) -> tuple[np.ndarray, int]:
    image, label = self.read(i)
    return decode(image, self.where(i)), label


def probe(source, count: int = 8) -> list[np.ndarray]:
  """Up to `count` decoded images spread over `source`, passing over unreadable ones: what a data set
  looks like (size, channels) is learnt from readable files; the unreadable ones are named, or
  skipped, by whatever reads them all (the in-memory load, or the pipeline under corrupt_files)."""
  if not len(source):
    raise DataError(f"{source.name} has no images.")
  found, problems = [], []
  for i in np.unique(np.linspace(0, len(source) - 1, min(4 * count, len(source))).astype(int)):
    try:
      found.append(source.get(int(i))[0])
    except DataError as e:
      problems.append(str(e))
    if len(found) == count:
      return found
  if not found:
    raise DataError(f"None of the {len(problems)} images tried in {source.name} can be read, e.g. {problems[0]}")
  return found


class FolderFiles:
  """The image files of one split of a folder: paths relative to it, labels; a copy is cheap to pickle."""

  def __init__(self, root: str, paths: np.ndarray, labels: np.ndarray):
    self.root, self.paths, self.labels = root, paths, labels

  def __len__(self) -> int:
    return len(self.labels)

  def where(self, i: int) -> str:
    return os.path.join(self.root, self.paths[i].decode())

  def __getitem__(self, i: int) -> tuple[bytes, int]:
    with open(self.where(i), "rb") as f:
      return f.read(), int(self.labels[i])


class TfdsRecords:
  """A tfds.data_source split as (encoded image, label) records, each read once."""

  def __init__(self, source, name: str):
    self.source, self.name = source, name

  def __len__(self) -> int:
    return len(self.source)

  def where(self, i: int) -> str:
    return f"{self.name}[{i}]"

  def __getitem__(self, i: int) -> tuple[object, int]:
    example = self.source[i]
    return example["image"], int(example["label"])


class SubsetRecords:
  """Records `keep[i]` of another record set."""

  def __init__(self, records, keep: np.ndarray):
    self.records, self.keep = records, keep

  def __len__(self) -> int:
    return len(self.keep)

  def where(self, i: int) -> str:
    return self.records.where(int(self.keep[i]))

  def __getitem__(self, i: int) -> tuple[object, int]:
    return self.records[int(self.keep[i])]


def decode(image: object, where: str) -> np.ndarray:
  """Encoded bytes or an array -> HWC uint8 RGB or greyscale array."""
  if isinstance(image, np.ndarray):
    return image if image.ndim == 3 else image[..., None]
  try:
    return decoding.decoded(image)
  except decoding.DecodeError as e:
    raise DataError(f"Cannot decode image {where}: {e}") from e


def load(config, split: str):
  """The source for `config.dataset` and `split`."""
  name = config.dataset
  if name == "digits":
    return digits(split)
  if os.sep in name or name.endswith(".tar.gz") or os.path.isdir(name):
    return image_folder(name, split, in_memory=config.in_memory, cache_dir=config.cache_dir,
                        corrupt=config.corrupt_files)
  return tfds_source(name, split, data_dir=config.data_dir or None, in_memory=config.in_memory,
                     cache_dir=config.cache_dir)


# ----------------------------------------------------------------------------------------------
# scikit-learn digits: 1,797 real 8x8 handwritten digits with 16 grey levels, bundled with sklearn.


def digits(split: str) -> InMemory:
  """UCI handwritten digits upsampled to 32x32; a fixed stratified 80/20 train/test split."""
  from sklearn.datasets import load_digits
  from sklearn.model_selection import train_test_split

  data = load_digits()
  images = (data.images * (255.0 / 16.0)).astype(np.uint8)
  idx_train, idx_test = train_test_split(np.arange(len(images)), test_size=0.2, random_state=0,
                                         stratify=data.target)
  splits = {"train": idx_train, "test": idx_test}
  if split not in splits:
    raise DataError(f"digits has splits 'train' and 'test', not {split!r}.")
  idx = np.sort(splits[split])
  big = np.stack([np.asarray(Image.fromarray(images[i]).resize((32, 32), Image.BILINEAR))
                  for i in idx])
  return InMemory(big[..., None], data.target[idx].astype(np.int32), 10, f"digits/{split}",
                  tuple(str(d) for d in range(10)))


# ----------------------------------------------------------------------------------------------
# Image folders: ROOT/<split>/<class>/<file>.jpg|png, as a directory or a .tar.gz of one.


def _cache_path(cache_dir: str, key: str) -> str:
  root = cache_dir or os.environ.get("CLASSIC_CACHE") or os.path.expanduser("~/.cache/classic")
  os.makedirs(root, exist_ok=True)
  return os.path.join(root, hashlib.sha1(key.encode()).hexdigest()[:16] + ".npz")


def _save_cache(cache: str, **arrays) -> None:
  """Writes the decoded cache atomically; concurrent runs (sweeps) each write their own file, then rename."""
  tmp = f"{cache}.{os.getpid()}.tmp.npz"
  np.savez(tmp, **arrays)
  os.replace(tmp, cache)


def _split_members(path: str, split: str) -> tuple[list[str], list[tuple[str, str]], Callable[[str], bytes]]:
  """(class names, [(member, class)], reader) of a split of a folder or tar archive."""
  if os.path.isdir(path):
    split_dir = _split_dir(path, split)
    classes, paths, labels = list_folder(split_dir)
    members = [(os.path.join(split_dir, p.decode()), classes[label]) for p, label in zip(paths, labels)]

    def reader(member: str) -> bytes:
      with open(member, "rb") as f:
        return f.read()

    return classes, members, reader
  if not os.path.exists(path):
    raise DataError(f"Dataset path {path} does not exist. Give a directory laid out as "
                    "<split>/<class>/<image>.jpg, or a .tar.gz of one.")
  # A .tar.gz has no random access (every backward seek decompresses from the start): read the
  # split's members in one sequential pass.
  found: dict[str, list[str]] = {}
  contents: dict[str, bytes] = {}
  splits, others = set(), []
  try:
    with tarfile.open(path, "r:*") as archive:
      for m in archive:
        parts = m.name.split("/")
        if not m.isfile() or len(parts) < 3:
          continue
        splits.add(parts[-3])
        if parts[-3] == split and not parts[-1].startswith("."):
          if not is_image_name(parts[-1]):
            others.append(m.name)
            continue
          found.setdefault(parts[-2], []).append(m.name)
          contents[m.name] = archive.extractfile(m).read()
  except (tarfile.TarError, OSError, EOFError) as e:
    raise DataError(f"Cannot read archive {path}: {e}") from e
  warn_ignored(f"{path}/{split}", others)
  if not found:
    raise DataError(f"Archive {path} has no split {split!r} (it has: {', '.join(sorted(splits)) or 'none'}). "
                    "Expected members <split>/<class>/<image>.jpg.")
  classes = sorted(found)
  members = [(n, c) for c in classes for n in sorted(found[c])]
  return classes, members, contents.pop


def archive_splits(path: str) -> tuple[str, ...]:
  """The split names (<split>/<class>/<file> members) of a .tar.gz, listed once and cached by its size
  and modification time."""
  import json
  stat = os.stat(path)
  cache = _cache_path("", f"splits:{path}:{stat.st_size}:{stat.st_mtime}")[:-len(".npz")] + ".json"
  if os.path.exists(cache):
    with open(cache) as f:
      return tuple(json.load(f))
  splits = set()
  try:
    with tarfile.open(path, "r:*") as archive:
      for m in archive:
        parts = m.name.split("/")
        if m.isfile() and len(parts) >= 3:
          splits.add(parts[-3])
  except (tarfile.TarError, OSError, EOFError) as e:
    raise DataError(f"Cannot read archive {path}: {e}") from e
  with open(cache + f".{os.getpid()}.tmp", "w") as f:
    json.dump(sorted(splits), f)
  os.replace(cache + f".{os.getpid()}.tmp", cache)
  return tuple(sorted(splits))


def folder_splits(path: str) -> tuple[str, ...]:
  """The split names (visible sub-directories) of an image-folder directory, sorted."""
  return tuple(sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)) and not d.startswith(".")))


def _split_dir(path: str, split: str) -> str:
  split_dir = os.path.join(path, split)
  if not os.path.isdir(split_dir):
    have = folder_splits(path)
    raise DataError(f"Image folder {path} has no split {split!r} (it has: {', '.join(have) or 'none'}). "
                    f"Expected layout: {path}/<split>/<class>/<image>.jpg")
  return split_dir


def list_folder(split_dir: str) -> tuple[list[str], np.ndarray, np.ndarray]:
  """(sorted class names, relative paths 'class/file' as bytes, int32 labels) of `split_dir`/<class>/*.

  One os.scandir per class folder and a label per class, not per file: ImageNet's 1.28 M training
  files list in seconds. Files are sorted within each class; hidden entries are skipped, and so are
  files whose names are not images' (a notes.txt: named in a warning).
  """
  with os.scandir(split_dir) as entries:
    classes = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
  paths, labels, others = [], [], []
  for label, c in enumerate(classes):
    with os.scandir(os.path.join(split_dir, c)) as entries:
      names = sorted(e.name for e in entries if not e.name.startswith("."))
    others += [f"{c}/{n}" for n in names if not is_image_name(n)]
    names = [n for n in names if is_image_name(n)]
    paths.extend(f"{c}/{n}" for n in names)
    labels.append(np.full(len(names), label, np.int32))
  warn_ignored(split_dir, others)
  return (classes, np.array(paths, dtype=np.bytes_) if paths else np.zeros(0, "S1"),
          np.concatenate(labels) if labels else np.zeros(0, np.int32))


def image_folder(path: str, split: str, *, in_memory: bool, cache_dir: str = "",
                 corrupt: str = "stop"):
  """A split of an image folder; class labels are the sorted class-folder names' indices."""
  path = os.path.abspath(os.path.expanduser(path))
  if not in_memory and not os.path.isdir(path):
    raise DataError(f"in_memory=False needs random access: extract {path} into a directory first.")
  stat = os.stat(path) if os.path.exists(path) else None
  key = f"folder-v2:{path}:{split}:{stat.st_size if stat else 0}:{stat.st_mtime if stat else 0}"
  cache = _cache_path(cache_dir, key) if in_memory else None
  if cache and os.path.exists(cache):
    try:
      with np.load(cache) as z:
        return InMemory(z["images"], z["labels"], int(z["num_classes"]), f"{os.path.basename(path)}/{split}",
                        tuple(str(c) for c in z["classes"]))
    except Exception as e:  # a cache written by a killed run (or before class names were kept): rebuild it
      logging.warning("Ignoring unreadable cache %s (%s)", cache, e)
  if not in_memory:
    classes, paths, labels = list_folder(_split_dir(path, split))
    return Encoded(FolderFiles(os.path.join(path, split), paths, labels), len(classes),
                   f"{os.path.basename(path)}/{split}", tuple(classes))
  classes, members, reader = _split_members(path, split)
  images, labels, skipped = [], [], []
  index = {c: i for i, c in enumerate(classes)}
  for member, c in members:
    try:
      images.append(decode(reader(member), member))
      labels.append(index[c])
    except DataError as e:
      skipped.append(str(e))
      if corrupt == "skip":
        logging.warning("Skipping: %s", e)
  if skipped and corrupt != "skip":  # every bad file of the split at once, not one per attempt
    listed = "\n  ".join(skipped[:MAX_LISTED])
    more = f"\n  ... and {len(skipped) - MAX_LISTED} more" if len(skipped) > MAX_LISTED else ""
    raise DataError(f"{len(skipped)} unreadable files in {path}/{split}:\n  {listed}{more}\nRemove them, or set "
                    "--config.corrupt_files=skip to skip unreadable files.")
  shapes = {im.shape for im in images}
  if len(shapes) != 1:
    raise DataError(f"Images of {path}/{split} differ in size ({sorted(shapes)[:3]} ...): "
                    "set --config.in_memory=False to decode them per example.")
  out = InMemory(np.stack(images), np.array(labels, np.int32), len(classes),
                 f"{os.path.basename(path)}/{split}", tuple(classes))
  if skipped:
    logging.warning("Skipped %d unreadable files of %s/%s.", len(skipped), path, split)
  _save_cache(cache, images=out.images, labels=out.labels, num_classes=out.num_classes,
              classes=np.array(classes))
  return out


# ----------------------------------------------------------------------------------------------
# TensorFlow Datasets: random access through tfds.data_source over array_record files.

_PREPARE_HINT = {
    "imagenet2012": ("ImageNet needs a manual download: put ILSVRC2012_img_train.tar and "
                     "ILSVRC2012_img_val.tar (from image-net.org) in {manual}, then run\n  python -c "
                     "\"import tensorflow_datasets as tfds; tfds.builder('imagenet2012', data_dir={data_dir!r}, "
                     "file_format='array_record').download_and_prepare()\" (needs tensorflow-cpu)."),
}
_DEFAULT_HINT = ("Prepare it once on a machine with internet (needs tensorflow-cpu):\n  python -c "
                 "\"import tensorflow_datasets as tfds; tfds.builder({name!r}, data_dir={data_dir!r}, "
                 "file_format='array_record').download_and_prepare()\"\nor give an image folder "
                 "(--config.dataset=/path/to/folder_or.tar.gz) instead.")


def unknown_dataset(name: str, tfds_names: list[str]) -> str:
  """One sentence for a data set name that is neither 'digits', a path, nor a TFDS name."""
  import difflib
  base = name.split(":")[0].split("/")[0]
  close = difflib.get_close_matches(base, ["digits", *tfds_names], n=5, cutoff=0.6)
  hint = f" Did you mean {', '.join(close)}?" if close else ""
  return (f"Unknown dataset {name!r}: not 'digits', an existing image folder or .tar.gz, nor a TFDS "
          f"data set.{hint} (python -c \"import tensorflow_datasets as tfds; print(tfds.list_builders())\" "
          "lists TFDS's.)")


def tfds_builder(name: str, data_dir: str | None):
  """The TFDS builder of a prepared data set; an unknown or unprepared one says how to get it."""
  import tensorflow_datasets as tfds

  try:
    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
  except tfds.core.registered.DatasetNotFoundError as e:  # its message lists every data set TFDS has
    raise DataError(unknown_dataset(name, tfds.list_builders(with_community_datasets=False))) from None
  except Exception as e:  # noqa: BLE001 - a known name TFDS cannot open (a bad version or config)
    raise DataError(f"TFDS cannot open dataset {name!r}: {' '.join(str(e).split())[:500]}") from e
  if not builder.is_prepared():
    manual = os.path.join(builder.data_dir_root, "downloads", "manual")
    hint = _PREPARE_HINT.get(name.split("/")[0], _DEFAULT_HINT).format(
        name=name, data_dir=str(builder.data_dir_root), manual=manual)
    raise DataError(f"TFDS dataset {name!r} is not prepared in {builder.data_dir_root} "
                    f"(as array_record).\n{hint}")
  return builder


def tfds_source(name: str, split: str, *, data_dir: str | None, in_memory: bool, cache_dir: str = ""):
  import tensorflow_datasets as tfds

  builder = tfds_builder(name, data_dir)
  try:
    source = tfds.data_source(name, split=split, data_dir=data_dir)
  except Exception as e:
    raise DataError(f"Cannot open split {split!r} of {name!r}: {e}. Its splits: "
                    f"{', '.join(builder.info.splits)}") from e
  num_classes = builder.info.features["label"].num_classes
  names = tuple(builder.info.features["label"].names)
  encoded = Encoded(TfdsRecords(source, f"{name}/{split}"), num_classes, f"{name}/{split}", names)
  if not in_memory:
    return encoded
  cache = _cache_path(cache_dir, f"tfds:{builder.data_dir}:{split}")
  if os.path.exists(cache):
    with np.load(cache) as z:
      return InMemory(z["images"], z["labels"], num_classes, f"{name}/{split}", names)
  pairs = [encoded.get(i) for i in range(len(encoded))]
  out = InMemory(np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs], np.int32),
                 num_classes, f"{name}/{split}", names)
  _save_cache(cache, images=out.images, labels=out.labels)
  return out


def subset(source, n: int, seed: int = 0):
  """n examples of a split drawn uniformly without replacement (fixed by `seed`), in split order.

  Not the first n: image folders and many TFDS splits are ordered by class.
  """
  if n >= len(source):
    return source
  keep = np.sort(np.random.default_rng(seed).permutation(len(source))[:n])
  if isinstance(source, InMemory):
    return InMemory(source.images[keep], source.labels[keep], source.num_classes, f"{source.name}[{n} of]",
                    source.class_names)
  return Encoded(SubsetRecords(source.records, keep), source.num_classes, f"{source.name}[{n} of]",
                 source.class_names)


def check_classes(source, num_classes: int, what: str = "config.model.num_classes") -> None:
  if source.num_classes != num_classes:
    raise DataError(f"{source.name} has {source.num_classes} classes but {what} is {num_classes}: "
                    f"set --config.model.num_classes={source.num_classes}.")

