"""VGG's dense evaluation (Simonyan & Zisserman 2015 §3.2): the fully-convolutional net over each test
scale Q, class score maps averaged over space, the mirror image too, softmax averaged over scales and
flips. Shapes on synthetic images; the numbers against the same computation written out by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from classic import models
from classic.data.pipeline import Pipeline
from classic.train import step as step_lib, validate
from configs import vgg

TINY = tuple(((8, 3),) for _ in range(5))  # five one-conv stages of 8 maps: VGG's /32 geometry, cheap


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """Landscape and portrait images of several sizes, as ImageNet's are."""
  root = tmp_path_factory.mktemp("dense")
  rng = np.random.default_rng(0)
  for i, (w, h) in enumerate([(500, 375), (333, 500), (640, 480), (400, 400)]):
    d = root / "val" / f"c{i % 2}"
    d.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / f"{i}.jpg")
  return root


def dense_config(folder):
  c = vgg.get_config("A")
  c.dataset, c.in_memory, c.eval_split, c.train_split = str(folder), False, "val", "val"
  c.model.layers, c.model.num_classes, c.model.fully_conv = TINY, 2, True
  c.eval_crop, c.eval_scales, c.eval_batch_size = "dense", (256, 384, 512), 4
  return c


def test_each_scale_gives_its_own_score_map(folder):
  c = dense_config(folder)
  batch = Pipeline(c, train=False).eval_batch(0)
  assert {k: v.shape for k, v in batch.items() if k.startswith("image")} == {
      "image": (4, 256, 256, 3), "image_scale1": (4, 384, 384, 3), "image_scale2": (4, 512, 512, 3)}
  model = models.build(c.model)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3)))
  for key, side in (("image", 2), ("image_scale1", 6), ("image_scale2", 10)):  # Q/32 - 6: fc6 is a 7x7 conv
    _, inter = model.apply(variables, jnp.asarray(batch[key][:1], jnp.float32), capture_intermediates=True,
                           mutable=["intermediates"])
    assert inter["intermediates"]["fc8"]["__call__"][0].shape == (1, side, side, 2)


def test_the_eval_step_averages_softmax_over_scales_and_mirror_images(folder):
  c = dense_config(folder)
  batch = Pipeline(c, train=False).eval_batch(0)
  model = models.build(c.model)
  variables = model.init(jax.random.key(1), jnp.zeros((1, 224, 224, 3)))
  sums = step_lib.eval_step(variables, {k: jnp.asarray(v) for k, v in batch.items()}, model=model, config=c)
  probs = []
  for key in ("image", "image_scale1", "image_scale2"):
    x = (batch[key].astype(np.float32) - np.asarray(c.mean)) / np.asarray(c.std)
    for view in (x, x[:, :, ::-1]):
      probs.append(jax.nn.softmax(model.apply(variables, jnp.asarray(view))))
  probs = np.mean(probs, 0)
  nll = -np.log(probs[np.arange(4), batch["label"]] + 1e-12)
  assert float(sums["loss"]) == pytest.approx(float(nll.sum()), rel=1e-5)
  assert int(sums["correct1"]) == int((probs.argmax(-1) == batch["label"]).sum())
  # The mirror images count: without them the loss differs.
  unflipped = np.mean([jax.nn.softmax(model.apply(variables, jnp.asarray(
      (batch[k].astype(np.float32) - np.asarray(c.mean)) / np.asarray(c.std)))) for k in
      ("image", "image_scale1", "image_scale2")], 0)
  assert float(sums["loss"]) != pytest.approx(float(-np.log(unflipped[np.arange(4), batch["label"]]).sum()), rel=1e-5)


def test_dense_evaluation_needs_the_fully_convolutional_form(folder):
  c = dense_config(folder)
  c.model.fully_conv = False
  with pytest.raises(ValueError, match="set --config.model.fully_conv=True"):
    validate.check(c)
  with pytest.raises(ValueError, match="eval_scales does nothing with eval_crop='center'"):
    validate.check(vgg.get_config("A"), {"eval_scales"})
