"""The papers' augmentations and test-time crops, on uint8 HWC numpy images.

Train:
- `pad_crop_flip`: CIFAR, He et al. 2015 §4.2: pad 4, random 32x32 crop, horizontal flip (whole batch
  at once, one gather).
- `scale_augment`: ImageNet, He et al. 2015 §3.4 / Simonyan & Zisserman 2015: shorter side resized
  to S ~ U[256, 480], random 224 crop, flip.
- `inception_crop`: Szegedy et al. 2015: a crop of 8%-100% of the area and aspect ratio 3/4-4/3,
  resized to the input size, flip.
- PCA lighting noise (Krizhevsky et al. 2012 §4.1): `lighting_alphas` draws the per-image weights on
  the host; the train step adds the colour shift on device (see `LIGHTING_EIGVAL`).
Test: `center_crop` (shorter side to `resize`, central crop), `ten_crop` (4 corners + centre of the
central square, and their mirrors), as AlexNet and ResNet report; `multi_crop_144`, GoogLeNet's 144
crops (4 scales x 3 squares x 6 crops x 2 mirrors); `dense_views`, one view per test scale, for VGG's dense
evaluation (the train step's eval adds the mirror images and averages the class score maps).

Randomness comes in as explicit numpy Generators so the pipeline decides it per step and per example.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from classic.data import photometric

# config.augment's and config.eval_crop's values (classic.train.defaults.CHOICES reads them here).
AUGMENTATIONS = ("none", "shift", "cifar", "imagenet", "inception")
BATCHED = ("none", "shift", "cifar")   # the ones computed on whole in-memory batches (host, or on_device)
EVAL_CROPS = ("center", "ten_crop", "multi_crop_144", "full", "dense")

# ImageNet RGB covariance eigen-decomposition on the 0-1 scale (as used with AlexNet's lighting noise).
LIGHTING_EIGVAL = np.array([0.2175, 0.0188, 0.0045], np.float32)
LIGHTING_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009],
                            [-0.5808, -0.0045, -0.8140],
                            [-0.5836, -0.6948, 0.4203]], np.float32)


def pad_crop_flip(images: np.ndarray, offsets: np.ndarray, flips: np.ndarray, pad: int = 4) -> np.ndarray:
  """Zero-pad by `pad`, crop at `offsets` (B, 2) in [0, 2*pad], mirror where `flips`; batched."""
  b, h, w, _ = images.shape
  padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  rows = offsets[:, 0, None] + np.arange(h)[None]                       # (B, H)
  cols = offsets[:, 1, None] + np.arange(w)[None]                       # (B, W)
  cols = np.where(flips[:, None], cols[:, ::-1], cols)
  return padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  out = np.asarray(pil.resize((width, height), Image.BILINEAR))
  return out if out.ndim == 3 else out[..., None]


def shorter_side_size(w: int, h: int, side: int) -> tuple[int, int]:
  """(width, height) of a w x h image resized so that its shorter side is `side`."""
  if min(h, w) == side:
    return w, h
  scale = side / min(h, w)
  return max(side, round(w * scale)), max(side, round(h * scale))


def resize_shorter(image: np.ndarray, side: int) -> np.ndarray:
  h, w = image.shape[:2]
  size = shorter_side_size(w, h, side)
  return image if size == (w, h) else _resize(image, *size)


def scale_augment(image: np.ndarray, rng: np.random.Generator, size: int,
                  scale_range: tuple[int, int]) -> np.ndarray:
  image = resize_shorter(image, int(rng.integers(scale_range[0], scale_range[1] + 1)))
  h, w = image.shape[:2]
  y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
  crop = image[y:y + size, x:x + size]
  return crop[:, ::-1] if rng.random() < 0.5 else crop


def inception_box(h: int, w: int, rng: np.random.Generator, area: tuple[float, float] = (0.08, 1.0),
                  aspect: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
  """(y, x, height, width) of a crop of `area` of the image's area and aspect ratio in `aspect`."""
  for _ in range(10):
    target = h * w * rng.uniform(*area)
    ratio = np.exp(rng.uniform(np.log(aspect[0]), np.log(aspect[1])))
    cw, ch = int(round(np.sqrt(target * ratio))), int(round(np.sqrt(target / ratio)))
    if 0 < cw <= w and 0 < ch <= h:
      return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
  ch = cw = min(h, w)  # fall back to the central square
  return (h - ch) // 2, (w - cw) // 2, ch, cw


def inception_crop(image: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
  h, w = image.shape[:2]
  y, x, ch, cw = inception_box(h, w, rng)
  crop = _resize(np.ascontiguousarray(image[y:y + ch, x:x + cw]), size, size)
  return crop[:, ::-1] if rng.random() < 0.5 else crop


def center_crop(image: np.ndarray, size: int, resize: int) -> np.ndarray:
  image = resize_shorter(image, resize) if resize else image
  h, w = image.shape[:2]
  if h < size or w < size:
    return _resize(image, size, size)
  y, x = (h - size) // 2, (w - size) // 2
  return image[y:y + size, x:x + size]


def _corners_and_centre(square: np.ndarray, size: int) -> list[np.ndarray]:
  h, w = square.shape[:2]
  at = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), ((h - size) // 2, (w - size) // 2)]
  return [square[y:y + size, x:x + size] for y, x in at]


def _central_square(image: np.ndarray) -> np.ndarray:
  h, w = image.shape[:2]
  side = min(h, w)
  y, x = (h - side) // 2, (w - side) // 2
  return image[y:y + side, x:x + side]


def ten_crop(image: np.ndarray, size: int, resize: int) -> np.ndarray:
  """(10, size, size, C): Krizhevsky et al. 2012 §4.1 (and He et al. 2015 Table 3's "10-crop"): the
  shorter side rescaled to `resize`, the central resize x resize patch, its four corners and centre,
  then the same of the mirror image."""
  square = _central_square(resize_shorter(image, resize) if resize else image)
  crops = _corners_and_centre(square, size)
  return np.stack(crops + [c[:, ::-1] for c in crops])


GOOGLENET_144_SCALES = (256, 288, 320, 352)


def multi_crop_144(image: np.ndarray, size: int, scales=GOOGLENET_144_SCALES) -> np.ndarray:
  """(144, size, size, C): Szegedy et al. 2015 §7, GoogLeNet's test: the shorter side rescaled to 4
  scales; of each, the left, centre and right squares (top, centre, bottom for portrait images); of
  each square, the 4 corner and the centre `size` crops and the square resized to `size`; and the
  mirror image of all 72."""
  views = []
  for scale in scales:
    scaled = resize_shorter(image, scale)
    h, w = scaled.shape[:2]
    side = min(h, w)
    starts = (0, (max(h, w) - side) // 2, max(h, w) - side)
    for start in starts:
      square = scaled[:, start:start + side] if w >= h else scaled[start:start + side]
      views += _corners_and_centre(square, size) + [_resize(np.ascontiguousarray(square), size, size)]
  return np.stack(views + [v[:, ::-1] for v in views])


def dense_views(image: np.ndarray, scales) -> list[np.ndarray]:
  """For dense evaluation (Simonyan & Zisserman 2015 §3.2): per test scale Q, the image with its shorter
  side resized to Q and its longer side centre-cropped to Q, so that a batch has one shape per scale
  (a named deviation: the paper's net sees the whole rescaled image)."""
  return [center_crop(image, q, q) for q in scales]


def lighting_alphas(rng: np.random.Generator, n: int, std: float) -> np.ndarray:
  return rng.normal(0.0, std, (n, 3)).astype(np.float32)


def colour_params(config, n: int, rng_for) -> dict[str, np.ndarray]:
  """The per-image colour parameters `config` asks for, as the train step applies them on device:
  {'lighting': (n, 3) PCA weights, 'photometric': (n, 5) distortions}, each drawn from
  `rng_for(stream)`, the Generator of that kind's stream (COLOUR_PARAMS)."""
  return {name: draw(rng_for(stream), n, config.get(field, 0.0))
          for name, (field, _, stream, draw) in COLOUR_PARAMS.items() if config.get(field, 0.0)}


def colour_widths(config) -> dict[str, int]:
  """{name: parameters per image} of the colour parameters `config` draws (the batch's extra keys)."""
  return {name: width for name, (field, width, _, _) in COLOUR_PARAMS.items() if config.get(field, 0.0)}


def lighting_shift(alphas):
  """RGB shift on the 0-255 scale for per-image weights `alphas` (B, 3); works on numpy or jax arrays."""
  return (alphas * LIGHTING_EIGVAL) @ LIGHTING_EIGVEC.T * 255.0


# Per-image colour parameters drawn on the host, applied in the train step: batch key ->
# (config field, parameters per image, the pipeline's random stream, draw(rng, n, strength)).
COLOUR_PARAMS = {"lighting": ("pca_lighting", 3, 4, lighting_alphas),
                 "photometric": ("photometric", 5, 5, photometric.draw)}
