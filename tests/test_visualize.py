"""`python -m classic.visualize` (Zeiler & Fergus 2014) on a real ZFNet run: deconvnet projections
land exactly in the receptive field of the projected unit, occlusion maps equal direct evaluation."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, run_main

# The ImageNet recipe moved to the digits by --config.dataset alone (classes, channels, splits and
# statistics come from the data), at 64 px.
ZFNET_ON_DIGITS = ["--config=configs/zfnet.py", "--config.dataset=digits", "--config.image_size=64",
                   "--config.eval_resize=64", "--config.augment=none", "--config.batch_size=32", "--config.train_steps=20",
                   "--config.log_every=10", "--config.eval_every=20", "--config.checkpoint_every=20"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("zfnet")
  run_main(*ZFNET_ON_DIGITS, f"--workdir={workdir}")
  return workdir


def visualize(*args):
  return subprocess.run([sys.executable, "-m", "classic.visualize", *args], cwd=REPO, capture_output=True,
                        text=True, timeout=600)


@pytest.mark.slow
def test_deconvnet_projection_is_the_receptive_field(run, tmp_path):
  proc = visualize(f"--workdir={run}", "--layer=conv1_out", "--images=16", "--channels=3", "--top=4",
                   f"--out={tmp_path}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.loads(proc.stdout.strip().splitlines()[-1])["written"] == str(tmp_path / "deconv_conv1_out.png")
  saved = np.load(tmp_path / "deconv_conv1_out.npz")
  maps = sorted({k.split("_")[0] for k in saved})
  assert len(maps) == 3
  for m in maps:
    proj, pos = saved[f"{m}_projections"], saved[f"{m}_positions"]
    assert proj.shape == (4, 64, 64, 1) and np.all(np.diff(saved[f"{m}_activations"]) <= 0)
    for p, (r, c) in zip(proj, pos):
      support = np.argwhere(np.abs(p[..., 0]) > 0)
      # conv1 is 7x7, stride 2, padding 1: unit (r, c) sees input rows 2r-1 .. 2r+5 (clipped)
      lo, hi = np.maximum([2 * r - 1, 2 * c - 1], 0), np.minimum([2 * r + 5, 2 * c + 5], 63)
      assert len(support) and np.all(support.min(0) >= lo) and np.all(support.max(0) <= hi)
  width, height = Image.open(tmp_path / "deconv_conv1_out.png").size
  assert width == int(0.9 * 8 * 80) and height == int((0.9 * 3 + 0.4) * 80)


@pytest.mark.slow
def test_deconvnet_through_pools_and_lrn_and_bad_layer(run, tmp_path):
  proc = visualize(f"--workdir={run}", "--layer=pool5_out", "--images=8", "--channels=2", "--top=2",
                   f"--out={tmp_path}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  proj = [v for k, v in np.load(tmp_path / "deconv_pool5_out.npz").items() if k.endswith("projections")]
  assert all(p.shape == (2, 64, 64, 1) for p in proj)
  proc = visualize(f"--workdir={run}", "--layer=conv9_out", f"--out={tmp_path}")
  assert proc.returncode == 1 and "no feature map 'conv9_out'" in proc.stderr and "conv5_out" in proc.stderr


@pytest.mark.slow
def test_occlusion_map_equals_direct_evaluation(run, tmp_path):
  proc = visualize(f"--workdir={run}", "--occlusion", "--indices=0,3", "--patch=16", "--stride=8",
                   f"--out={tmp_path}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  saved = np.load(tmp_path / "occlusion.npz")
  assert saved["maps"].shape == (2, 7, 7) and list(saved["indices"]) == [0, 3]
  assert list(saved["classes"]) == [str(label) for label in saved["labels"]]  # the digits' names: '0' ... '9'
  assert Image.open(tmp_path / "occlusion.png").size == (320, 320)
  # One cell by hand: image 3 with the grey (zero after normalisation) square at rows 8-23, cols 40-55.
  from classic import visualize as vis
  config, model, variables, pipe = vis.load(str(run))
  inputs, _, labels = vis.eval_images(pipe, config, 4)
  assert labels[3] == saved["labels"][1]
  x = inputs[3].at[8:24, 40:56].set(0)[None]
  p = jax.nn.softmax(model.apply(variables, x, train=False))[0, int(labels[3])]
  assert float(p) == pytest.approx(float(saved["maps"][1, 1, 5]), rel=1e-4)


def _googlenet_at_96():
  from classic import models
  from tests.models.weights import pool_fill
  module = models.build(models.config("googlenet", lrn=False, num_classes=10))
  x = jax.random.normal(jax.random.key(0), (1, 96, 96, 3))  # every layer of Table 1 runs at 96 too
  shapes = jax.eval_shape(lambda: module.init(jax.random.key(1), x, train=False))
  return module, pool_fill(shapes), x


def test_the_deconvnet_rule_reaches_every_relu_of_googlenet():
  """ConvBN binds its activation when the class is defined; the rule must still reach it (it once
  replaced flax's nn.relu globally and missed GoogLeNet and the Inception nets)."""
  import pathlib
  import re

  from classic.models import layers
  for path in pathlib.Path(REPO, "classic", "models").glob("*.py"):
    code = "\n".join(l for l in path.read_text().splitlines() if not l.lstrip().startswith(("#", '"')))
    assert not re.search(r"(?<![\w.])(jax\.)?nn\.relu\(", code) or path.name == "layers.py", path
  module, variables, x = _googlenet_at_96()
  calls = []
  with layers.relu_rule(lambda v: calls.append(v.shape) or jnp.maximum(v, 0)):
    jax.eval_shape(lambda: module.apply(variables, x, train=False))
  assert len(calls) == 57  # every conv of Table 1 (3 in the stem, 6 in each of the 9 modules)


@pytest.mark.slow
def test_the_deconvnet_rule_changes_googlenets_gradient():
  from classic.visualize import deconvnet_mode
  module, variables, x = _googlenet_at_96()
  grad = lambda: jax.jit(jax.grad(lambda v: module.apply(variables, v, train=False)[0, 3]))(x)
  plain = grad()
  with deconvnet_mode():
    deconv = grad()
  assert plain.shape == deconv.shape and not np.allclose(plain, deconv)
