"""keras.applications -> classic: the same logits on the same images, each side preprocessed its way.

Keras 3 on the JAX backend, weights=None with random BN statistics and biases; small inputs (32 for
VGG and ResNets, 75 for the Inceptions, their minimum), 10 classes.
"""

import os

os.environ["KERAS_BACKEND"] = "jax"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

from classic import interop  # noqa: E402
from classic.interop import ConversionError  # noqa: E402
from tests.interop.helpers import assert_same_logits, classic_logits, images, normalise  # noqa: E402

PREPROCESS = {"VGG16": "vgg16", "VGG19": "vgg19", "ResNet50": "resnet", "ResNet101": "resnet",
              "ResNet152": "resnet", "ResNet50V2": "resnet_v2", "ResNet101V2": "resnet_v2",
              "ResNet152V2": "resnet_v2",
              "InceptionV3": "inception_v3", "InceptionResNetV2": "inception_resnet_v2"}


def build(app: str, size: int, classes: int = 10, seed: int = 0):
  """keras.applications.<app> with random weights, random BN statistics and biases."""
  keras.utils.set_random_seed(seed)
  model = getattr(keras.applications, app)(weights=None, input_shape=(size, size, 3), classes=classes,
                                           classifier_activation=None)
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    values = layer.get_weights()
    if isinstance(layer, keras.layers.BatchNormalization):  # [gamma,] beta, mean, variance
      values = [rng.normal(0, 0.2, v.shape).astype("f") for v in values[:-1]] + \
               [rng.uniform(0.5, 1.5, values[-1].shape).astype("f")]
      if layer.scale:
        values[0] = rng.uniform(0.5, 1.5, values[0].shape).astype("f")
      layer.set_weights(values)
    elif len(values) == 2:  # kernel, bias
      layer.set_weights([values[0], rng.normal(0, 0.1, values[1].shape).astype("f")])
  return model


def keras_logits(model, app, x):
  preprocess = getattr(keras.applications, PREPROCESS[app]).preprocess_input
  return np.asarray(model(preprocess(x.copy()), training=False))


# The default suite converts one net per converter path (VGG, ResNet v1, ResNet v2); `-m slow` all of them.
@pytest.mark.parametrize("app,size", [("VGG16", 32), ("ResNet50", 32), ("ResNet50V2", 32)] + [
    pytest.param(app, size, marks=pytest.mark.slow) for app, size in (
        ("VGG19", 32), ("ResNet101", 32), ("ResNet152", 32), ("ResNet101V2", 32), ("InceptionV3", 75),
        ("InceptionResNetV2", 75))])
def test_same_logits(app, size):
  model = build(app, size)
  x = images(2, size)
  # Random weights inflate activations with depth (ResNet152's logits reach ~150, where fp32 rounding
  # alone exceeds 1e-4). A trained net's logits are O(10): scale the classifier so these are too; the
  # same scaled weights go to both sides, so the comparison is as strict as before.
  peak = float(np.abs(keras_logits(model, app, x)).max())
  if peak > 10:
    head = model.layers[-1]
    head.set_weights([w * (10 / peak) for w in head.get_weights()])
  config, variables = interop.from_keras(model)
  assert config.image_size == size and config.model.num_classes == 10
  assert_same_logits(classic_logits(config, variables, normalise(config, x)),
                     keras_logits(model, app, x), f"keras {app}")


@pytest.mark.slow
def test_deeper_resnets_share_the_converter_path():
  # ResNet101/152 (v1 and V2) differ from 50 only in blocks per stage: the name map's loop.
  for app, blocks in (("ResNet101", 23), ("ResNet152V2", 36)):
    model = build(app, 32, classes=4)
    config, variables = interop.from_keras(model)
    key = "stage3_block%d" % blocks
    assert key in variables["params"] and "stage3_block%d" % (blocks + 1) not in variables["params"]
    assert config.model.depth == int(app[6:9])
  # and the V2 one numerically, its per-stage stride placement included
  x = images(1, 32)
  assert_same_logits(classic_logits(config, variables, normalise(config, x)),
                     keras_logits(model, "ResNet152V2", x), "keras ResNet152V2")


def test_configs_carry_the_preprocessing_and_switches():
  config, _ = interop.from_keras(build("ResNet50", 32, classes=3))
  assert tuple(config.mean) == (123.68, 116.779, 103.939) and tuple(config.std) == (1.0, 1.0, 1.0)
  assert config.model.bn_epsilon == 1.001e-5 and not config.model.preact
  config, _ = interop.from_keras(build("ResNet50V2", 32, classes=3))
  assert config.model.preact and config.model.preact_layout == "keras"
  assert tuple(config.mean) == (127.5,) * 3 and tuple(config.std) == (127.5,) * 3


def test_bad_models_fail_clearly():
  headless = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
  with pytest.raises(ConversionError, match="include_top=True"):
    interop.from_keras(headless)
  other = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)], name="mynet")
  with pytest.raises(ConversionError, match=r"Unknown Keras architecture 'mynet'.*resnet50v2"):
    interop.from_keras(other)
  with pytest.raises(ConversionError, match=r"3 classes .* but num_classes=10"):
    interop.from_keras(build("VGG16", 32, classes=3), num_classes=10)
  with pytest.raises(ConversionError, match="Unknown Keras architecture 'ResNet18'"):
    interop.from_keras(build("VGG16", 32, classes=3), arch="ResNet18")


@pytest.mark.slow
def test_saved_model_converts_to_a_workdir_the_trainer_restores(tmp_path):
  from PIL import Image

  from classic import convert
  from classic.train import state as state_lib
  from classic.train.loop import Trainer

  model = build("ResNet50", 32, classes=3)
  path = str(tmp_path / "resnet50.keras")
  model.save(path)
  config, variables = convert.convert("keras", None, path)
  workdir = str(tmp_path / "workdir")
  convert.write_workdir(workdir, config, variables)

  for c in range(3):  # a 3-class image folder to evaluate on
    folder = tmp_path / "data" / "test" / f"c{c}"
    folder.mkdir(parents=True)
    Image.fromarray(images(1, 32, seed=c)[0].astype(np.uint8)).save(folder / "0.png")
  from classic.train import checkpoint
  config = checkpoint.read_config(workdir)
  config.dataset, config.eval_split, config.batch_size = str(tmp_path / "data"), "test", 3
  trainer = Trainer(config, workdir, eval_only=True)
  try:
    x = images(2, 32, seed=5)
    ours = classic_logits(config, state_lib.variables(trainer.state), normalise(config, x))
    assert_same_logits(ours, keras_logits(model, "ResNet50", x), "keras ResNet50 via workdir")
    assert trainer.evaluate()["eval/count"] == 3
  finally:
    trainer.checkpointer.close()
