r"""An ImageNet-like JPEG folder for input-pipeline benchmarks, built here from scikit-learn's two sample
photos (china.jpg, flower.jpg; no download).

  python -m launch.benchmarks.imagenet_like --out=/tmp/imagenet_like [--images=2200] [--classes=20]

Each image is a random crop (30-100 % of a photo's area, aspect 1 to 3:2, three in four landscape)
resized to ImageNet's typical size (shorter side 333-400; 440x380 on average), with random brightness,
contrast, saturation and a flip, saved as baseline JPEG at quality 80-95 (about 40 kB).
The layout is an image folder (`train/<class>/<n>.jpg`) that `--config.dataset=DIR` reads. It measures decoding and augmentation cost; it is not data to learn from (labels are arbitrary).
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import pathlib

import numpy as np
from absl import app, flags


def _photos() -> list:
  from PIL import Image
  from sklearn.datasets import load_sample_images
  return [Image.fromarray(a) for a in load_sample_images().images]


def _make_jpeg(photo, rng: np.random.Generator) -> bytes:
  from PIL import Image, ImageEnhance
  w, h = photo.size
  area = rng.uniform(0.3, 1.0) * w * h
  aspect = np.exp(rng.uniform(0.0, np.log(1.5)))     # width / height: 1 to 3:2, mostly landscape
  aspect = aspect if rng.random() < 0.75 else 1 / aspect
  cw, ch = min(w, int(round(np.sqrt(area * aspect)))), min(h, int(round(np.sqrt(area / aspect))))
  x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
  short = rng.uniform(333, 400)
  scale = short / min(cw, ch)
  size = (max(1, int(round(cw * scale))), max(1, int(round(ch * scale))))
  image = photo.resize(size, Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
  for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
    image = enhancer(image).enhance(rng.uniform(0.6, 1.4))
  if rng.random() < 0.5:
    image = image.transpose(Image.FLIP_LEFT_RIGHT)
  out = io.BytesIO()
  image.save(out, "JPEG", quality=int(rng.integers(80, 96)))
  return out.getvalue()


def build(root: str | os.PathLike, images: int = 2200, classes: int = 20, split: str = "train",
          seed: int = 0) -> pathlib.Path:
  """Writes `images` JPEGs into root/split/class_XX/ (round-robin over `classes`) unless they are there
  already; returns root. The same seed gives the same files."""
  root = pathlib.Path(root)
  done = root / split / ".complete"
  if done.exists() and done.read_text() == f"{images} {classes} {seed}":
    return root
  photos = _photos()
  for c in range(classes):
    (root / split / f"class_{c:02d}").mkdir(parents=True, exist_ok=True)

  def write(i: int) -> None:
    rng = np.random.default_rng([seed, i])
    data = _make_jpeg(photos[i % len(photos)], rng)
    (root / split / f"class_{i % classes:02d}" / f"{i:06d}.jpg").write_bytes(data)

  with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
    list(pool.map(write, range(images)))
  done.write_text(f"{images} {classes} {seed}")
  return root


def main(argv):
  del argv
  root = build(flags.FLAGS.out, flags.FLAGS.images, flags.FLAGS.classes)
  files = list(root.rglob("*.jpg"))
  print(f"{len(files)} JPEGs in {root}, {sum(f.stat().st_size for f in files) / len(files) / 1e3:.0f} kB on average")


if __name__ == "__main__":  # flags only as a command: importing the module defines none
  flags.DEFINE_string("out", None, "Folder to write.", required=True)
  flags.DEFINE_integer("images", 2200, "Number of JPEGs.")
  flags.DEFINE_integer("classes", 20, "Number of class folders.")
  app.run(main)
