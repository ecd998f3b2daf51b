"""One encoded example to the network's input, decoding only what the augmentation needs.

The papers' augmentations (augment.py) resize a whole decoded image and then crop it. Here the same
random draws, in the same order, give the crop's box in the source image first; then
- a colour JPEG's window under the box (and the resampling filter's margin) is decoded alone, at full
  scale, through libjpeg-turbo's partial decoding (jpeg_regions.py, `config.jpeg_regions`), or
- where that is not cheaper, or not available, PIL decodes the whole image, at reduced size where the box
  allows it (libjpeg's DCT scaling through PIL's draft mode: 1/2, 1/4 or 1/8, never below the
  resolution the output needs),
- and the box is resampled straight to the output size (PIL's `resize(box=...)`), instead of resizing
  the whole image and cutting the crop out of it.
The result is the paper's crop of the same region at the same scale (tests/data/test_decoding.py
checks the boxes against augment.py's forms; tests/data/test_jpeg_regions.py the two decodings against
each other, to 1 grey level). docs/performance.md has the costs.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from classic.data import augment, jpeg_regions


class DecodeError(Exception):
  """An encoded image that PIL cannot read."""


def _open(data: bytes) -> Image.Image:
  try:
    image = Image.open(io.BytesIO(data))
    image.size  # noqa: B018 - the header is parsed here, the pixels later
  except Exception as e:
    raise DecodeError(str(e)) from e
  return image


def _whole_pixels(needed: tuple[float, float]) -> tuple[int, int]:
  """The (width, height) asked of PIL's draft mode for at least `needed` pixels."""
  return max(1, int(np.ceil(needed[0]))), max(1, int(np.ceil(needed[1])))


def _pixels(image: Image.Image, needed: tuple[float, float]) -> Image.Image:
  """`image` decoded at the smallest JPEG scale that keeps at least `needed` (width, height) pixels."""
  try:
    if image.format == "JPEG":
      image.draft(image.mode if image.mode in ("L", "RGB") else "RGB", _whole_pixels(needed))
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


def _window(image: Image.Image, box: tuple[float, float, float, float], out: tuple[int, int],
            needed: tuple[float, float], regions: bool = True) -> tuple[int, int, int, int] | None:
  """The pixels (x0, y0, x1, y1) that resampling `box` to `out` reads, where decoding only them is the
  cheaper way to them; None where the whole image is decoded instead (`regions` off, not a colour JPEG,
  no region decoder, or libjpeg's reduced scales make the whole image cheaper than the window)."""
  if not regions or image.format != "JPEG" or image.mode != "RGB" or not jpeg_regions.available():
    return None
  w, h = image.size
  # PIL's bilinear filter reads `support` pixels either side of the box, more when it downscales
  support_x = max((box[2] - box[0]) / out[0], 1.0)
  support_y = max((box[3] - box[1]) / out[1], 1.0)
  x0, y0 = max(0, int(np.floor(box[0] - support_x)) - 1), max(0, int(np.floor(box[1] - support_y)) - 1)
  x1, y1 = min(w, int(np.ceil(box[2] + support_x)) + 1), min(h, int(np.ceil(box[3] + support_y)) + 1)
  draft_w, draft_h = _whole_pixels(needed)   # the reduced scale _pixels' draft mode would take:
  scale = next((s for s in (8, 4, 2) if min(w // draft_w, h // draft_h) >= s), 1)
  return (x0, y0, x1, y1) if (x1 - x0) * (y1 - y0) * scale * scale < w * h else None


def _resampled(data: bytes, image: Image.Image, box: tuple[float, float, float, float],
               out: tuple[int, int], regions: bool) -> np.ndarray:
  """The region `box` (x0, y0, x1, y1 in the image's pixels) of the encoded image, resampled (bilinear,
  antialiased) to `out` (w, h): from a decode of only the pixels the filter reads where that is cheaper
  (jpeg_regions.py), else from the whole image decoded at the smallest scale that keeps the detail."""
  w, h = image.size
  needed = (w * out[0] / (box[2] - box[0]), h * out[1] / (box[3] - box[1]))
  window = _window(image, box, out, needed, regions)
  if window is None:
    return _box_resize(_pixels(image, needed), (w, h), box, out)
  x0, y0, x1, y1 = window
  pixels = jpeg_regions.region(data, x0, y0, x1, y1)
  if pixels is None:
    raise DecodeError(f"libjpeg-turbo cannot decode the region {window} of this {w} x {h} JPEG "
                      "(corrupt or truncated data)")
  shifted = (box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0)
  return _box_resize(Image.fromarray(pixels), (x1 - x0, y1 - y0), shifted, out)


def _crop_of_resized(data: bytes, image: Image.Image, resized: tuple[int, int], x: int, y: int,
                     size: int, regions: bool) -> np.ndarray:
  """The size x size crop at (x, y) of `image` resized to `resized` (w, h), resampling only the crop's box."""
  (w, h), (rw, rh) = image.size, resized
  sx, sy = rw / w, rh / h
  return _resampled(data, image, (x / sx, y / sy, (x + size) / sx, (y + size) / sy), (size, size), regions)


def scale_augment(data: bytes, rng: np.random.Generator, size: int, scale_range: tuple[int, int],
                  regions: bool = True) -> np.ndarray:
  """augment.scale_augment on encoded bytes: shorter side to S ~ U[lo, hi], random size x size crop, flip."""
  image = _open(data)
  w, h = image.size
  side = int(rng.integers(scale_range[0], scale_range[1] + 1))
  rw, rh = augment.shorter_side_size(w, h, side)
  y, x = int(rng.integers(0, rh - size + 1)), int(rng.integers(0, rw - size + 1))
  flip = rng.random() < 0.5
  crop = _crop_of_resized(data, image, (rw, rh), x, y, size, regions)
  return crop[:, ::-1] if flip else crop


def inception_crop(data: bytes, rng: np.random.Generator, size: int, regions: bool = True) -> np.ndarray:
  """augment.inception_crop on encoded bytes: 8-100 % of the area, aspect 3/4-4/3, resized, flip."""
  image = _open(data)
  w, h = image.size
  y, x, ch, cw = augment.inception_box(h, w, rng)
  flip = rng.random() < 0.5
  crop = _resampled(data, image, (x, y, x + cw, y + ch), (size, size), regions)
  return crop[:, ::-1] if flip else crop


def center_crop(data: bytes, size: int, resize: int, regions: bool = True) -> np.ndarray:
  """augment.center_crop on encoded bytes: shorter side to `resize`, the central size x size."""
  image = _open(data)
  w, h = image.size
  rw, rh = augment.shorter_side_size(w, h, resize) if resize else (w, h)
  if rw < size or rh < size:
    return _resampled(data, image, (0, 0, w, h), (size, size), regions)
  return _crop_of_resized(data, image, (rw, rh), (rw - size) // 2, (rh - size) // 2, size, regions)


def decoded(data: bytes, shorter_side: int = 0) -> np.ndarray:
  """The whole image, at the smallest JPEG scale whose shorter side is still >= `shorter_side`."""
  image = _open(data)
  w, h = image.size
  needed = augment.shorter_side_size(w, h, shorter_side) if shorter_side and min(w, h) > shorter_side else (w, h)
  array = np.asarray(_pixels(image, needed))
  return array if array.ndim == 3 else array[..., None]
