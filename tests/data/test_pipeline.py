"""The input pipeline: exact per-process sharding, full-split evaluation, determinism, sources."""

import tarfile

import ml_collections
import numpy as np
import pytest
from PIL import Image

from classic.data import augment, sources
from classic.data.pipeline import Pipeline
from configs import lenet


def digits_config(**overrides):
  c = lenet.get_config("digits")
  c.unlock()
  for k, v in overrides.items():
    c[k] = v
  return c


@pytest.fixture(scope="module")
def digits_train():
  return sources.digits("train")


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_eval_visits_every_example_exactly_once(processes):
  c = digits_config(eval_batch_size=48)  # 360 test images: 7.5 batches, the last one padded
  seen = []
  for p in range(processes):
    pipe = Pipeline(c, train=False, process_index=p, process_count=processes)
    for b in range(pipe.num_eval_batches):
      batch = pipe.eval_batch(b)
      positions = b * 48 + p * pipe.local_batch + np.arange(pipe.local_batch)
      seen += list(positions[batch["mask"] > 0])
      assert batch["image"].shape[0] == pipe.local_batch
  assert sorted(seen) == list(range(360))


def test_process_shards_reassemble_the_single_process_batch(digits_train):
  c = digits_config(batch_size=64)
  whole = Pipeline(c, train=True, source=digits_train)
  halves = [Pipeline(c, train=True, process_index=p, process_count=2, source=digits_train) for p in range(2)]
  for step in (0, 7, 23, 100):  # 23 steps of 64 cross the first epoch boundary (1,437 images)
    expected = whole.train_batch(step)
    got = [h.train_batch(step) for h in halves]
    np.testing.assert_array_equal(np.concatenate([g["image"] for g in got]), expected["image"])
    np.testing.assert_array_equal(np.concatenate([g["label"] for g in got]), expected["label"])


def test_batches_are_a_function_of_seed_and_step(digits_train):
  c = digits_config()
  a, b = Pipeline(c, train=True, source=digits_train), Pipeline(c, train=True, source=digits_train)
  np.testing.assert_array_equal(a.train_batch(57)["image"], b.train_batch(57)["image"])
  assert not np.array_equal(a.train_batch(57)["image"], a.train_batch(58)["image"])
  c2 = digits_config(seed=1)
  assert not np.array_equal(Pipeline(c2, train=True, source=digits_train).train_batch(57)["image"],
                            a.train_batch(57)["image"])
  it = a.train_iter(57)
  step, batch = next(it)
  it.close()
  assert step == 57 and np.array_equal(batch["image"], b.train_batch(57)["image"])


def test_an_epoch_visits_every_training_example_once(digits_train):
  c = digits_config(batch_size=1437, augment="none")  # one step = one epoch
  pipe = Pipeline(c, train=True, source=digits_train)
  batch = pipe.train_batch(0)
  order = [np.flatnonzero((digits_train.images == im).all(axis=(1, 2, 3)))[0] for im in batch["image"][:50]]
  assert len(set(order)) == 50
  np.testing.assert_array_equal(np.sort(batch["label"]), np.sort(digits_train.labels))


def test_pad_crop_flip_matches_a_direct_crop():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
  offsets = rng.integers(0, 9, (5, 2))
  flips = np.array([True, False, True, False, False])
  out = augment.pad_crop_flip(images, offsets, flips)
  padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
  for i in range(5):
    crop = padded[i, offsets[i, 0]:offsets[i, 0] + 32, offsets[i, 1]:offsets[i, 1] + 32]
    np.testing.assert_array_equal(out[i], crop[:, ::-1] if flips[i] else crop)


def test_ten_crop_takes_its_corners_from_the_central_square():
  """Krizhevsky et al. 2012 §4.1: the 224 corners of the central 256x256 patch, not of the whole
  rescaled image, and the centre; then their mirrors."""
  image = np.random.default_rng(0).integers(0, 255, (256, 400, 3), dtype=np.uint8)
  assert augment.center_crop(image, 224, 256).shape == (224, 224, 3)
  crops = augment.ten_crop(image, 224, 256)
  assert crops.shape == (10, 224, 224, 3)
  left = (400 - 256) // 2   # the central square starts at column 72
  np.testing.assert_array_equal(crops[0], image[:224, left:left + 224])
  np.testing.assert_array_equal(crops[3], image[32:, left + 32:left + 256])
  np.testing.assert_array_equal(crops[4], image[16:240, left + 16:left + 240])
  np.testing.assert_array_equal(crops[5], crops[0][:, ::-1])


@pytest.mark.parametrize("shape", [(300, 400, 3), (400, 300, 3)], ids=["landscape", "portrait"])
def test_googlenets_144_crops(shape):
  """Szegedy et al. 2015 §7: 4 scales x 3 squares x (4 corners + centre + the square resized) x 2 mirrors."""
  image = np.random.default_rng(1).integers(0, 255, shape, dtype=np.uint8)
  views = augment.multi_crop_144(image, 224)
  assert views.shape == (144, 224, 224, 3)
  np.testing.assert_array_equal(views[72:], views[:72, :, ::-1])
  for s, scale in enumerate(augment.GOOGLENET_144_SCALES):
    scaled = augment.resize_shorter(image, scale)
    long = max(scaled.shape[:2])
    for q, start in enumerate((0, (long - scale) // 2, long - scale)):
      square = scaled[:, start:start + scale] if shape[1] > shape[0] else scaled[start:start + scale]
      first = 18 * s + 6 * q
      np.testing.assert_array_equal(views[first], square[:224, :224])                     # top-left corner
      np.testing.assert_array_equal(views[first + 3], square[-224:, -224:])               # bottom-right
      assert np.abs(views[first + 5].astype(int) - augment._resize(square, 224, 224)).max() == 0  # whole square


def test_a_separate_evaluation_size_crops_and_feeds_the_net_at_that_size():
  """He et al. 2016 test a 224-trained net on 320 crops: eval_image_size sets the crop, and the eval
  step's preprocessing keeps it."""
  import jax.numpy as jnp

  from classic.train import step
  rng = np.random.default_rng(0)
  source = sources.InMemory(rng.integers(0, 255, (6, 64, 80, 3), dtype=np.uint8), np.arange(6, dtype=np.int32) % 2,
                            2, "toy")
  c = digits_config(image_size=32, eval_image_size=48, eval_resize=56, eval_batch_size=6, channels=3,
                    mean=(0.0,), std=(1.0,))
  c.model.num_classes = 2
  batch = Pipeline(c, train=False, source=source).eval_batch(0)
  assert batch["image"].shape == (6, 48, 48, 3)
  np.testing.assert_array_equal(batch["image"][0], augment.center_crop(source.images[0], 48, 56))
  assert step.preprocess({"image": jnp.asarray(batch["image"])}, c, size=step.eval_size(c)).shape == (6, 48, 48, 3)
  c.eval_image_size = 0   # in-memory images as stored; the eval step resizes them to image_size on device
  assert Pipeline(c, train=False, source=source).eval_batch(0)["image"].shape == (6, 64, 80, 3)


# ---------------------------------------------------------------------------------------------
# Image folders, made of real digits written as PNG files.


@pytest.fixture()
def digit_folder(tmp_path, digits_train):
  root = tmp_path / "digits_png"
  for split, count in (("train", 40), ("test", 20)):
    for i in range(count):
      d = root / split / f"class{digits_train.labels[i]}"
      d.mkdir(parents=True, exist_ok=True)
      Image.fromarray(digits_train.images[i, ..., 0]).save(d / f"{i:03d}.png")
  return root


def folder_config(path, **kw):
  c = ml_collections.ConfigDict({"dataset": str(path), "in_memory": True, "cache_dir": "", "corrupt_files": "stop",
                                 "data_dir": "", **kw})
  return c


def test_image_folder_and_its_tarball_read_the_same(digit_folder, tmp_path, digits_train):
  folder = sources.load(folder_config(digit_folder), "train")
  tarball = tmp_path / "digits.tar.gz"
  with tarfile.open(tarball, "w:gz") as tar:
    tar.add(digit_folder, arcname="digits_png")
  packed = sources.load(folder_config(tarball), "train")
  assert len(folder) == len(packed) == 40
  np.testing.assert_array_equal(folder.images, packed.images)
  np.testing.assert_array_equal(folder.labels, packed.labels)
  classes = sorted({f"class{l}" for l in digits_train.labels[:40]})
  assert folder.num_classes == len(classes)


@pytest.mark.parametrize("packed", [False, True], ids=["folder", "tar.gz"])
def test_a_folder_or_archive_with_bad_files_names_them_all_and_skip_skips(digit_folder, tmp_path, packed):
  """Non-image files are ignored; every unreadable image is named at once with the fix, and skipped
  under corrupt_files=skip, the same in a directory and in its .tar.gz, and describing the data set
  (what a run does first) does not stop at the first bad file."""
  from classic.data import info
  train = digit_folder / "train"
  bad = [train / "class0" / "999.png", train / "class1" / "998.png", train / "class0" / "997.jpg"]
  for path in bad:
    path.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
  good = next(train.glob("class2/*.png"))
  truncated = train / "class2" / "996.png"
  truncated.write_bytes(good.read_bytes()[:40])
  (train / "class1" / "notes.txt").write_text("labels checked by hand")
  bad.append(truncated)
  dataset = digit_folder
  if packed:
    dataset = tmp_path / "digits.tar.gz"
    with tarfile.open(dataset, "w:gz") as tar:
      tar.add(digit_folder, arcname="digits_png")
  with pytest.raises(sources.DataError) as error:
    sources.load(folder_config(dataset), "train")
  message = str(error.value)
  assert message.startswith("4 unreadable files in") and "corrupt_files=skip" in message
  assert all(path.name in message for path in bad) and "notes.txt" not in message
  skipped = sources.load(folder_config(dataset, corrupt_files="skip"), "train")
  assert len(skipped) == 40
  assert skipped.class_names == tuple(sorted(d.name for d in (digit_folder / "train").iterdir()))
  if not packed:  # a directory is described from a few probed files: the bad ones among them are passed over
    described = info.describe(folder_config(dataset, train_split="train", corrupt_files="skip"))
    assert described.channels == 1 and described.image_size == (32, 32) and described.train_examples == 44
    assert len(described.channel_stats()[0]) == 1


def test_a_misspelled_tfds_name_suggests_the_nearest():
  message = sources.unknown_dataset("cifar", ["mnist", "cifar10", "cifar100", "imagenet2012"])
  assert "Unknown dataset 'cifar'" in message and "Did you mean cifar10, cifar100?" in message
  assert "Did you mean" not in sources.unknown_dataset("zzzz", ["mnist", "cifar10"])


def test_missing_split_and_missing_path_say_what_exists(digit_folder, tmp_path):
  with pytest.raises(sources.DataError, match="no split 'validation'.*test, train"):
    sources.load(folder_config(digit_folder), "validation")
  with pytest.raises(sources.DataError, match="does not exist"):
    sources.load(folder_config(tmp_path / "nope" / "x.tar.gz"), "train")


def test_unprepared_tfds_dataset_says_how_to_prepare_it(tmp_path):
  c = folder_config("mnist", data_dir=str(tmp_path))
  with pytest.raises(sources.DataError, match="(?s)not prepared.*download_and_prepare"):
    sources.load(c, "train")
  c = folder_config("imagenet2012", data_dir=str(tmp_path))
  with pytest.raises(sources.DataError, match="(?s)ILSVRC2012_img_train.tar.*downloads/manual"):
    sources.load(c, "train")


def test_class_count_mismatch_is_explained(digits_train):
  c = digits_config()
  c.model.num_classes = 1000
  with pytest.raises(sources.DataError, match="has 10 classes but config.model.num_classes is 1000"):
    Pipeline(c, train=True, source=digits_train)


def test_subset_draws_across_a_class_ordered_split():
  """Image folders list a split class by class: the first n would be one or two classes."""
  ordered = sources.InMemory(np.zeros((100, 2, 2, 1), np.uint8), np.repeat(np.arange(10), 10).astype(np.int32),
                             10, "ordered")
  part = sources.subset(ordered, 20)
  assert len(part) == 20 and len(set(part.labels.tolist())) >= 6
  assert np.array_equal(part.labels, sources.subset(ordered, 20).labels)  # fixed
  assert np.all(np.diff(part.labels) >= 0)  # split order kept (sequential reads)
  assert sources.subset(ordered, 500) is ordered
