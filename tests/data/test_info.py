"""A data set describes itself, `--config.dataset=X` alone moves a recipe to X, and an augmentation
that cannot work at the data's image size is refused with the fix."""

import json

import numpy as np
import pytest

from classic.data import info, sources
from configs import common
from tests.conftest import CIFAR_ARCHIVE, read_metrics, requires_cifar, run_main


def test_the_digits_describe_themselves():
  d = info.describe(common.load("configs/lenet.py:digits"))
  assert (d.splits, d.num_classes, d.channels, d.image_size, d.train_examples) == (("train", "test"), 10, 1, (32, 32), 1437)
  assert d.class_names == tuple("0123456789") and d.fits_in_memory
  images = sources.digits("train").images.astype(np.float64)
  mean, std = d.channel_stats()
  assert mean == pytest.approx((images.mean(),), abs=0.01) and std == pytest.approx((images.std(),), abs=0.01)


@pytest.mark.slow
@requires_cifar
def test_the_cifar_archive_describes_itself():
  d = info.describe(_with(common.load("configs/resnet.py:resnet20"), dataset=str(CIFAR_ARCHIVE)))
  assert (d.splits, d.num_classes, d.channels, d.image_size, d.train_examples) == (("test", "train"), 10, 3, (32, 32), 50000)
  assert d.class_names[:3] == ("airplane", "automobile", "bird") and d.needs_memory
  mean, _ = d.channel_stats()
  assert mean == pytest.approx((125.3, 122.9, 113.9), abs=0.1)  # CIFAR-10's published channel means


def _with(config, **fields):
  for k, v in fields.items():
    config[k] = v
  return config


def test_an_imagenet_recipe_moved_to_the_digits_takes_what_the_command_line_leaves_from_the_data():
  config = _with(common.load("configs/resnet.py:resnet34"), dataset="digits", eval_split="test")
  d = info.describe(config)
  derived = info.adapt(config, {"dataset", "std"}, d)   # the command line set dataset and std
  assert derived == {"model.num_classes": 10, "channels": 1, "in_memory": True, "mean": d.channel_stats()[0],
                     "augment": "cifar", "pca_lighting": 0.0}
  assert config.std == common.IMAGENET_STD and config.eval_split == "test"   # set by hand: kept
  assert config.derived_from_data == tuple(sorted(derived))
  assert info.adapt(common.load("configs/resnet.py:resnet34"), {"optimizer.lr"}) == {}  # not moved: nothing


def test_the_paper_s_border_follows_the_data():
  """LeNet's MNIST recipe pads 28-px digits to 32 (pad=2): moved to 32-px images it pads nothing."""
  mnist = common.load("configs/lenet.py:mnist")
  assert mnist.pad == 2
  assert info.adapt(mnist, {"dataset"}, info.describe(_with(mnist, dataset="digits")))["pad"] == 0
  digits = common.load("configs/lenet.py:digits")
  assert "pad" not in info.adapt(digits, {"dataset"})   # 32-px digits for a 32-px net: no border, as set


def test_an_augmentation_that_would_train_on_upscaled_pixels_is_refused_with_the_fix():
  config = common.load("configs/resnet.py:resnet34")
  config.image_size = 32
  with pytest.raises(sources.DataError) as e:
    info.check(config, "cifar10", (32, 32))
  assert "scales 32-px images of cifar10 to 256-480 px (8x and more) and crops 32 px" in str(e.value)
  assert "--config.augment=cifar" in str(e.value) and "--config.scale_range='(37, 69)'" in str(e.value)
  config.scale_range = (37, 69)
  info.check(config, "cifar10", (32, 32))              # the ImageNet augmentation at the data's scale
  info.check(common.load("configs/resnet.py:resnet34"), "imagenet2012", None)  # sizes vary: fine
  inception = common.load("configs/googlenet.py:googlenet")
  with pytest.raises(sources.DataError, match="enlarges the crops to 224 px"):
    info.check(inception, "cifar10", (32, 32))
  with pytest.raises(sources.DataError, match=r"--config.photometric=1.0 distort RGB colours.*1-channel"):
    info.check(_with(inception, augment="cifar"), "digits", (32, 32), channels=1)


@pytest.mark.slow
def test_the_readme_route_an_imagenet_recipe_on_the_digits_by_one_override(tmp_path):
  proc = run_main("--config=configs/alexnet.py:alexnet", "--config.dataset=digits", "--config.batch_size=16",
                  "--config.train_steps=2", "--config.log_every=1", "--config.eval_every=2",
                  f"--workdir={tmp_path}")
  assert "from the data: model.num_classes=10, channels=1" in proc.stderr
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["model"]["num_classes"] == 10 and saved["augment"] == "cifar" and saved["eval_split"] == "test"
  assert "mean" in saved["derived_from_data"] and len(saved["mean"]) == 1
  assert read_metrics(tmp_path)[-1]["eval/count"] == 360


def test_a_tfds_data_set_describes_itself(tmp_path):
  from tests.data import tiny_tfds
  name = tiny_tfds.prepare(tmp_path)
  config = _with(common.load("configs/lenet.py:digits"), dataset=name, data_dir=str(tmp_path))
  d = info.describe(config)
  assert (d.splits, d.num_classes, d.channels, d.image_size, d.train_examples) == (("train", "test"), 10, 1, (8, 8), 100)
  assert d.class_names[:2] == ("digit0", "digit1") and d.fits_in_memory
  images = np.stack([sources.tfds_source(name, "train", data_dir=str(tmp_path), in_memory=False).get(i)[0]
                     for i in range(100)]).astype(np.float64)
  assert d.channel_stats() == ((round(images.mean(), 2),), (round(images.std(), 2),))
  derived = info.adapt(config, {"dataset", "data_dir"}, d)
  assert derived["mean"] == d.channel_stats()[0] and config.eval_split == "test" and config.channels == 1
