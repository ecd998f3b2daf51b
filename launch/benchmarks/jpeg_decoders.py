r"""Milliseconds per image, on one core, of the ways to the Inception crop of a JPEG: what chose jpeg_regions.py.

  python -m launch.benchmarks.jpeg_decoders [--images=400] [--folder=DIR]

On the ImageNet-like JPEGs of launch/benchmarks/imagenet_like.py, in this process, one thread, best of 3 passes:
- decoding the whole image: PIL (what decoding.py falls back to), nvImageCodec's CPU decoder, and
  simplejpeg where it is installed (it is not a requirement: it has libjpeg's reduced scales but no window);
- decoding only the windows of the Inception crops' draws (nvImageCodec, jpeg_regions.region);
- the Inception crop to 224 as the pipeline makes it (decoding.inception_crop), through windows and
  through whole images (`config.jpeg_regions`), and PIL's antialiased resize alone.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
from absl import app, flags

_IMAGES = flags.DEFINE_integer("images", 400, "JPEGs to time (from the ImageNet-like folder).")
_FOLDER = flags.DEFINE_string("folder", "", "Where to build (or find) the folder; default: a temporary one.")


def _per_image_ms(fn, datas: list[bytes]) -> float:
  best = float("inf")
  for _ in range(3):
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for d in datas:
      fn(d, rng)
    best = min(best, (time.perf_counter() - t) / len(datas) * 1e3)
  return best


def timings(datas: list[bytes]) -> dict[str, float]:
  from PIL import Image

  from classic.data import augment, decoding, jpeg_regions, sources

  def window(d, rng):
    image = decoding._open(d)
    w, h = image.size
    y, x, ch, cw = augment.inception_box(h, w, rng)
    return jpeg_regions.region(d, x, y, x + cw, y + ch)

  def resize(d, rng):
    del d
    Image.fromarray(crop).resize((224, 224), Image.BILINEAR, box=(3.5, 2.5, 290.5, 280.5))

  crop = np.zeros((300, 320, 3), np.uint8)
  out = {"whole image, PIL": lambda d, rng: sources.decode(d, "x")}
  if jpeg_regions.available():
    out["whole image, nvImageCodec"] = lambda d, rng: jpeg_regions.region(d, 0, 0, *decoding._open(d).size)
    out["Inception crop's window, nvImageCodec"] = window
  try:
    import simplejpeg
    out["whole image, simplejpeg"] = lambda d, rng: simplejpeg.decode_jpeg(d)
  except ImportError:
    pass
  out["Inception crop 224, whole image (jpeg_regions=False)"] = (
      lambda d, rng: decoding.inception_crop(d, rng, 224, regions=False))
  if jpeg_regions.available():
    out["Inception crop 224, window (jpeg_regions=True)"] = lambda d, rng: decoding.inception_crop(d, rng, 224)
  out["PIL antialiased resize, 320x300 to 224x224"] = resize
  return {name: _per_image_ms(fn, datas) for name, fn in out.items()}


def main(argv):
  del argv
  from launch.benchmarks import imagenet_like
  with tempfile.TemporaryDirectory() as tmp:
    root = imagenet_like.build(_FOLDER.value or os.path.join(tmp, "imagenet_like"), max(_IMAGES.value, 20), 20)
    paths = sorted((root / "train").glob("*/*.jpg"))[:_IMAGES.value]
    datas = [p.read_bytes() for p in paths]
  print(f"{len(datas)} ImageNet-like JPEGs, one core, best of 3 passes")
  for name, ms in timings(datas).items():
    print(f"{name:<56} {ms:6.3f} ms")


if __name__ == "__main__":
  app.run(main)
