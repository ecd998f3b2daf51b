r"""The input pipeline's images/s on ImageNet-sized JPEGs: classic (grain workers) beside tf.data at its best.

  python -m launch.benchmarks.input_pipeline [--workers=0,1,2] [--recipes=imagenet,inception] [--rounds=2]
      [--tf_python=PYTHON]      # a Python with tensorflow, for the tf.data side (not a requirement)
      [--whole=1]               # also classic with config.jpeg_regions=False (PIL decodes whole images)
  python -m launch.benchmarks.input_pipeline --list_files=1281167   # also: time listing an ImageNet-sized folder

Builds the ImageNet-like folder of launch/benchmarks/imagenet_like.py (2,200 JPEGs, 20 classes, from scikit-learn's
photos; no download), then times training batches of 128 on it, each pipeline in its own process, the
pipelines alternating for `--rounds`; the table has the median of each. The crops are the same on both
sides, a bilinear resize to 224 and a flip, with no colour distortions (photometric=0, pca_lighting=0):
- imagenet: He et al. 2015's scale augmentation (shorter side S ~ U[256, 480], random 224 crop),
  classic's configs/resnet.py:resnet50 recipe;
- inception: the Inception crop (8-100 % of the area, aspect 3/4-4/3) resized to 224, GoogLeNet's recipe.
tf.data runs both as its users do at their best: the crop's window in the source image is found from the
JPEG's header (`extract_jpeg_shape`; `sample_distorted_bounding_box` for the Inception crop), only that
window is decoded (`decode_and_crop_jpeg`) and resized, with AUTOTUNE parallelism. It runs twice:
`tf.image.resize(antialias=True)`, the same filter as classic's (PIL's antialiased bilinear: the
like-for-like comparison), and antialias=False, tf.image.resize's default (plain bilinear
interpolation: cheaper, and a different, aliased image where the crop is downscaled).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

from absl import app, flags

BATCH = 128
TF_PIPELINE = textwrap.dedent(r"""
    import glob, json, sys, time
    import tensorflow as tf
    folder, recipe, batch, batches = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    antialias = sys.argv[5] == "1"
    files = sorted(glob.glob(folder + "/train/*/*.jpg"))

    def crop_and_flip(data, window):
      image = tf.io.decode_and_crop_jpeg(data, window, channels=3)
      image = tf.image.resize(image, [224, 224], "bilinear", antialias=antialias)
      return tf.cast(tf.image.random_flip_left_right(image), tf.uint8)

    def imagenet(data):
      # the 224 crop of the image resized to shorter side S, located in the source image
      shape = tf.io.extract_jpeg_shape(data)
      h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
      side = tf.cast(tf.random.uniform([], 256, 481, tf.int32), tf.float32)
      scale = side / tf.minimum(h, w)
      rh, rw = tf.maximum(side, tf.round(h * scale)), tf.maximum(side, tf.round(w * scale))
      oy = tf.cast(tf.random.uniform([], 0, tf.cast(rh, tf.int32) - 223, tf.int32), tf.float32)
      ox = tf.cast(tf.random.uniform([], 0, tf.cast(rw, tf.int32) - 223, tf.int32), tf.float32)
      y0, x0 = tf.floor(oy * h / rh), tf.floor(ox * w / rw)
      y1, x1 = tf.minimum(h, tf.math.ceil((oy + 224) * h / rh)), tf.minimum(w, tf.math.ceil((ox + 224) * w / rw))
      return crop_and_flip(data, tf.cast(tf.stack([y0, x0, y1 - y0, x1 - x0]), tf.int32))

    def inception(data):
      shape = tf.io.extract_jpeg_shape(data)
      begin, size, _ = tf.image.sample_distorted_bounding_box(
          shape, tf.zeros([1, 0, 4]), min_object_covered=0.0, aspect_ratio_range=(3 / 4, 4 / 3),
          area_range=(0.08, 1.0), max_attempts=10, use_image_if_no_bounding_boxes=True)
      return crop_and_flip(data, tf.stack([begin[0], begin[1], size[0], size[1]]))

    fn = {"imagenet": imagenet, "inception": inception}[recipe]
    ds = (tf.data.Dataset.from_tensor_slices(files).repeat().shuffle(len(files))
          .map(tf.io.read_file, num_parallel_calls=tf.data.AUTOTUNE)
          .map(fn, num_parallel_calls=tf.data.AUTOTUNE).batch(batch).prefetch(tf.data.AUTOTUNE))
    it = iter(ds)
    for _ in range(3):
      next(it)
    t = time.perf_counter()
    for _ in range(batches):
      next(it)
    print(json.dumps({"img_per_s": batch * batches / (time.perf_counter() - t), "tensorflow": tf.__version__}))
""")
TF_RUNS = {"tf.data, antialiased": "1", "tf.data, no antialias": "0"}


def classic_rate(folder: str, recipe: str, workers: int, batches: int, regions: bool = True) -> dict:
  """Images/s of classic's own pipeline for the recipe, as training runs it (classic.train.timing.input_speed)."""
  from classic.train import timing
  from configs import googlenet, resnet
  config = resnet.get_config("resnet50") if recipe == "imagenet" else googlenet.get_config("googlenet")
  config.dataset, config.model.num_classes, config.in_memory = folder, 20, False
  config.batch_size, config.data_workers, config.jpeg_regions = BATCH, workers, regions
  config.photometric, config.pca_lighting = 0.0, 0.0
  r = timing.input_speed(config, batches)
  return {"img_per_s": r["input_img_per_s"], "workers": r["input_workers"],
          "regions": r.get("input_jpeg_regions")}


def _run(cmd: list[str]) -> dict:
  try:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
  except OSError as e:  # e.g. no such --tf_python
    return {"error": str(e)}
  if out.returncode:
    return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
  return json.loads(out.stdout.strip().splitlines()[-1])


def list_files_seconds(n: int) -> dict:
  """Seconds for sources.list_folder on a tree of n empty files in 1,000 class folders (ImageNet's shape)."""
  from classic.data import sources
  with tempfile.TemporaryDirectory() as root:
    per_class = -(-n // 1000)
    t = time.perf_counter()
    for c in range(1000):
      d = os.path.join(root, f"n{c:08d}")
      os.mkdir(d)
      for i in range(min(per_class, n - c * per_class)):
        open(os.path.join(d, f"n{c:08d}_{i}.JPEG"), "wb").close()
    made = time.perf_counter() - t
    t = time.perf_counter()
    _, paths, labels = sources.list_folder(root)
    return {"files": len(paths), "list_s": time.perf_counter() - t, "make_tree_s": made,
            "classes": int(labels.max()) + 1}


_WORKERS = flags.DEFINE_list("workers", ["0", "1", "2"], "classic's data_workers values to time.")
_RECIPES = flags.DEFINE_list("recipes", ["imagenet", "inception"], "imagenet and/or inception.")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Alternating rounds; the table shows medians.")
_BATCHES = flags.DEFINE_integer("batches", 12, "Timed batches of 128 per measurement.")
_IMAGES = flags.DEFINE_integer("images", 2200, "JPEGs in the ImageNet-like folder.")
_FOLDER = flags.DEFINE_string("folder", "", "Where to build (or find) the folder; default: a temporary one.")
_TF_PYTHON = flags.DEFINE_string("tf_python", sys.executable, "Python with tensorflow for the tf.data side.")
_LIST_FILES = flags.DEFINE_integer("list_files", 0, "Also time listing a folder of this many empty files.")
_WHOLE = flags.DEFINE_bool("whole", False, "Also time classic with jpeg_regions=False (whole-image decoding).")
_ONE = flags.DEFINE_string("one", "", "(internal) folder:recipe:workers:regions: one classic measurement, as JSON.")
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object instead of the table.")


def main(argv):
  del argv
  if _ONE.value:
    folder, recipe, workers, regions = _ONE.value.rsplit(":", 3)
    print(json.dumps(classic_rate(folder, recipe, int(workers), _BATCHES.value, regions == "1")))
    return
  from launch.benchmarks import imagenet_like
  with tempfile.TemporaryDirectory() as tmp:
    folder = str(imagenet_like.build(_FOLDER.value or os.path.join(tmp, "imagenet_like"), _IMAGES.value, 20))
    results: dict[str, list[float]] = {}
    tf_version, regions = None, None
    for _ in range(_ROUNDS.value):
      for recipe in _RECIPES.value:
        for w in _WORKERS.value:
          for whole in ((False, True) if _WHOLE.value else (False,)):
            r = _run([sys.executable, "-m", "launch.benchmarks.input_pipeline",
                      f"--one={folder}:{recipe}:{w}:{int(not whole)}", f"--batches={_BATCHES.value}"])
            if not whole:
              regions = r.get("regions", regions)
            key = f"{recipe}/classic, {w} workers" + (", whole images" if whole else "")
            results.setdefault(key, []).append(r.get("img_per_s") or float("nan"))
        for name, antialias in TF_RUNS.items():
          r = _run([_TF_PYTHON.value, "-c", TF_PIPELINE, folder, recipe, str(BATCH), str(_BATCHES.value), antialias])
          if "error" not in r:
            tf_version = r["tensorflow"]
            results.setdefault(f"{recipe}/{name}", []).append(r["img_per_s"])
    report = {"cores": os.cpu_count(), "images": _IMAGES.value, "batch": BATCH, "tensorflow": tf_version,
              "jpeg_regions": regions, "img_per_s": {k: statistics.median(v) for k, v in results.items()}}
  if _LIST_FILES.value:
    report["listing"] = list_files_seconds(_LIST_FILES.value)
  if _JSON.value:
    print(json.dumps(report))
    return
  print(f"{report['images']} ImageNet-like JPEGs, batches of {BATCH}, {report['cores']} cores, "
        f"median of {_ROUNDS.value} alternating rounds; classic decodes "
        + ("only the crops' windows (nvImageCodec)" if report["jpeg_regions"] else "whole images (PIL)")
        + (f"; tensorflow {tf_version}" if tf_version else "; tf.data: no tensorflow (--tf_python)"))
  print(f"{'recipe / pipeline':<44} {'images/s':>9} {'vs tf.data antialiased':>23} {'vs no antialias':>16}")
  for key, rate in report["img_per_s"].items():
    recipe = key.split("/")[0]
    ratios = [rate / t if t else float("nan")
              for t in (report["img_per_s"].get(f"{recipe}/{name}") for name in TF_RUNS)]
    print(f"{key:<44} {rate:9.0f} {ratios[0]:23.2f} {ratios[1]:16.2f}")
  if "listing" in report:
    l = report["listing"]
    print(f"listing {l['files']:,} files in {l['classes']} class folders: {l['list_s']:.1f} s")


if __name__ == "__main__":
  app.run(main)
