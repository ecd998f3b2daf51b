"""One encoded example to the network's input, decoding only what the augmentation needs.

The papers' augmentations (augment.py) resize a whole decoded image and then crop it. Here the same
random draws, in the same order, give the crop's box in the source image first; then
- JPEGs are decoded at reduced size where the box allows it (libjpeg's DCT scaling through PIL's draft
  mode: 1/2, 1/4 or 1/8, never below the resolution the output needs), and
- the box is resampled straight to the output size (PIL's `resize(box=...)`), instead of resizing the
  whole image and cutting the crop out of it.
The result is the paper's crop of the same region at the same scale (tests/data/test_decoding.py
checks the boxes against augment.py's forms). Per image of ImageNet's size this is about 2-3x less
work than decode + full resize + crop (docs/performance.md).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from classic.data import augment


class DecodeError(Exception):
  """An encoded image that PIL cannot read."""


def _open(data: bytes) -> Image.Image:
  try:
    image = Image.open(io.BytesIO(data))
    image.size  # noqa: B018 - the header is parsed here, the pixels later
  except Exception as e:
    raise DecodeError(str(e)) from e
  return image


def _pixels(image: Image.Image, needed: tuple[float, float]) -> Image.Image:
  """`image` decoded at the smallest JPEG scale that keeps at least `needed` (width, height) pixels."""
  try:
    if image.format == "JPEG":
      image.draft(image.mode if image.mode in ("L", "RGB") else "RGB",
                  (max(1, int(np.ceil(needed[0]))), max(1, int(np.ceil(needed[1])))))
    mode = "L" if image.mode in ("L", "1", "I;16") else "RGB"
    if image.mode != mode:
      return image.convert(mode)
    image.load()
    return image
  except Exception as e:
    raise DecodeError(str(e)) from e


def _box_resize(image: Image.Image, original: tuple[int, int], box: tuple[float, float, float, float],
                out: tuple[int, int]) -> np.ndarray:
  """The region `box` of the original-size image, resampled (bilinear, antialiased) to `out` (w, h)."""
  sx, sy = image.size[0] / original[0], image.size[1] / original[1]
  scaled = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
  array = np.asarray(image.resize(out, Image.BILINEAR, box=scaled))
  return array if array.ndim == 3 else array[..., None]


def _crop_of_resized(image: Image.Image, resized: tuple[int, int], x: int, y: int, size: int) -> np.ndarray:
  """The size x size crop at (x, y) of `image` resized to `resized` (w, h), resampling only the crop's box."""
  (w, h), (rw, rh) = image.size, resized
  sx, sy = rw / w, rh / h
  return _box_resize(_pixels(image, resized), (w, h), (x / sx, y / sy, (x + size) / sx, (y + size) / sy),
                     (size, size))


def scale_augment(data: bytes, rng: np.random.Generator, size: int, scale_range: tuple[int, int]) -> np.ndarray:
  """augment.scale_augment on encoded bytes: shorter side to S ~ U[lo, hi], random size x size crop, flip."""
  image = _open(data)
  w, h = image.size
  side = int(rng.integers(scale_range[0], scale_range[1] + 1))
  rw, rh = augment.shorter_side_size(w, h, side)
  y, x = int(rng.integers(0, rh - size + 1)), int(rng.integers(0, rw - size + 1))
  flip = rng.random() < 0.5
  crop = _crop_of_resized(image, (rw, rh), x, y, size)
  return crop[:, ::-1] if flip else crop


def inception_crop(data: bytes, rng: np.random.Generator, size: int) -> np.ndarray:
  """augment.inception_crop on encoded bytes: 8-100 % of the area, aspect 3/4-4/3, resized, flip."""
  image = _open(data)
  w, h = image.size
  y, x, ch, cw = augment.inception_box(h, w, rng)
  flip = rng.random() < 0.5
  crop = _box_resize(_pixels(image, (w * size / cw, h * size / ch)), (w, h), (x, y, x + cw, y + ch), (size, size))
  return crop[:, ::-1] if flip else crop


def center_crop(data: bytes, size: int, resize: int) -> np.ndarray:
  """augment.center_crop on encoded bytes: shorter side to `resize`, the central size x size."""
  image = _open(data)
  w, h = image.size
  rw, rh = augment.shorter_side_size(w, h, resize) if resize else (w, h)
  if rw < size or rh < size:
    return _box_resize(_pixels(image, (size, size)), (w, h), (0, 0, w, h), (size, size))
  return _crop_of_resized(image, (rw, rh), (rw - size) // 2, (rh - size) // 2, size)


def decoded(data: bytes, shorter_side: int = 0) -> np.ndarray:
  """The whole image, at the smallest JPEG scale whose shorter side is still >= `shorter_side`."""
  image = _open(data)
  w, h = image.size
  needed = augment.shorter_side_size(w, h, shorter_side) if shorter_side and min(w, h) > shorter_side else (w, h)
  array = np.asarray(_pixels(image, needed))
  return array if array.ndim == 3 else array[..., None]
