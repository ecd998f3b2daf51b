"""Cropping while decoding (classic/data/decoding.py) gives the papers' crops (classic/data/augment.py)."""

import io

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

from classic.data import augment, decoding, sources


def _jpeg(image: np.ndarray, quality: int = 92) -> bytes:
  out = io.BytesIO()
  Image.fromarray(image).save(out, "JPEG", quality=quality)
  return out.getvalue()


@pytest.fixture(scope="module")
def photo():
  return load_sample_images().images[0]   # china.jpg, 427 x 640


@pytest.fixture(scope="module")
def large_jpeg(photo):
  """The photo at 1,708 x 2,560: large enough for libjpeg to decode at 1/2 or 1/4 scale."""
  return _jpeg(np.asarray(Image.fromarray(photo).resize((2560, 1708), Image.BICUBIC)))


def _mean_abs(a, b):
  return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


@pytest.mark.parametrize("seed", range(6))
def test_scale_augment_takes_the_papers_crop(photo, large_jpeg, seed):
  """Same draws, same region and scale: identical on a normal-size image (no reduced decoding), and
  within JPEG-scaling noise on a large one decoded at reduced size."""
  data = _jpeg(photo)
  ours = decoding.scale_augment(data, np.random.default_rng(seed), 224, (256, 480))
  paper = augment.scale_augment(sources.decode(data, "x"), np.random.default_rng(seed), 224, (256, 480))
  assert ours.shape == paper.shape == (224, 224, 3)
  assert _mean_abs(ours, paper) < 0.5
  ours = decoding.scale_augment(large_jpeg, np.random.default_rng(seed), 224, (256, 480))
  paper = augment.scale_augment(sources.decode(large_jpeg, "x"), np.random.default_rng(seed), 224, (256, 480))
  assert _mean_abs(ours, paper) < 3.0      # a shifted crop would differ by tens of grey levels


@pytest.mark.parametrize("seed", range(6))
def test_inception_crop_takes_the_papers_crop(large_jpeg, seed):
  ours = decoding.inception_crop(large_jpeg, np.random.default_rng(seed), 299)
  paper = augment.inception_crop(sources.decode(large_jpeg, "x"), np.random.default_rng(seed), 299)
  assert ours.shape == paper.shape == (299, 299, 3)
  assert _mean_abs(ours, paper) < 3.0


def test_a_misplaced_crop_would_be_caught(large_jpeg):
  """The tolerance above separates the right crop from a neighbouring one."""
  ours = decoding.scale_augment(large_jpeg, np.random.default_rng(0), 224, (256, 480))
  other = augment.scale_augment(sources.decode(large_jpeg, "x"), np.random.default_rng(1), 224, (256, 480))
  assert _mean_abs(ours, other) > 10.0


def test_center_crop_and_full_decode(photo, large_jpeg):
  for data in (_jpeg(photo), large_jpeg):
    ours = decoding.center_crop(data, 224, 256)
    paper = augment.center_crop(sources.decode(data, "x"), 224, 256)
    assert ours.shape == (224, 224, 3) and _mean_abs(ours, paper) < 3.0
  full = decoding.decoded(large_jpeg, 256)
  assert min(full.shape[:2]) >= 256 and full.shape[1] < 2560     # decoded at reduced scale
  assert decoding.decoded(large_jpeg).shape == (1708, 2560, 3)


def test_large_jpegs_are_decoded_at_reduced_size(large_jpeg):
  image = decoding._open(large_jpeg)
  pixels = decoding._pixels(image, (600, 400))            # 1/4 scale keeps 640 x 427 >= 600 x 400
  assert pixels.size == (640, 427)
  assert decoding._pixels(decoding._open(large_jpeg), (2000, 1500)).size == (2560, 1708)


def test_greyscale_and_png_inputs():
  grey = (np.arange(300 * 400) % 251).astype(np.uint8).reshape(300, 400)
  assert decoding.scale_augment(_jpeg(grey), np.random.default_rng(0), 224, (256, 300)).shape == (224, 224, 1)
  png = io.BytesIO()
  Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(png, "PNG")
  assert decoding.inception_crop(png.getvalue(), np.random.default_rng(0), 64).shape == (64, 64, 3)


def test_undecodable_bytes_raise_decode_error():
  with pytest.raises(decoding.DecodeError):
    decoding.scale_augment(b"\xff\xd8 not a jpeg", np.random.default_rng(0), 224, (256, 480))
