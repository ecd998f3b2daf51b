"""A config is checked before anything loads: every bad enumerated value, inert override and batch size
that cannot split is named at once, with the valid values or the fix."""

import pytest

from classic.train import validate
from configs import common
from tests.conftest import run_main


def test_every_problem_is_named_at_once_with_the_valid_values():
  c = common.load("configs/resnet.py:resnet20")
  c.optimizer.name, c.augment, c.eval_crop, c.model.shortcut = "adamw", "autoaugment", "multi", "D"
  with pytest.raises(ValueError) as e:
    validate.check(c)
  message = str(e.value)
  for expected in ("optimizer.name must be one of 'sgd', 'rmsprop', 'adam', got 'adamw'",
                   "augment must be one of 'none', 'shift', 'cifar', 'imagenet', 'inception', got 'autoaugment'",
                   "eval_crop must be one of 'center', 'ten_crop', 'multi_crop_144', 'full', 'dense', got 'multi'",
                   "model.shortcut of resnet must be one of 'A', 'B', 'C'; got 'D'"):
    assert expected in message


def test_an_evaluation_size_the_classifier_cannot_take_is_refused():
  preact = common.load("configs/resnet.py:preact50")
  assert preact.eval_image_size == 320 and preact.eval_resize == 320   # He et al. 2016 Table 5
  validate.check(preact)                       # global average pooling takes any size
  alexnet = common.load("configs/alexnet.py:alexnet")
  alexnet.eval_image_size = 320
  with pytest.raises(ValueError, match="eval_image_size 320 does not fit alexnet: its classifier takes the training "
                                       "size 227 only"):
    validate.check(alexnet)


def test_overrides_the_rest_of_the_config_makes_inert_are_refused():
  c = common.load("configs/resnet.py:plain20")
  validate.check(c, {"optimizer.lr"})
  with pytest.raises(ValueError) as e:
    validate.check(c, {"model.shortcut", "scale_range", "optimizer.decay_every"})
  message = str(e.value)
  assert "a plain net (residual=False) has no shortcuts" in message
  assert "--config.scale_range does nothing with augment='cifar'" in message
  assert "--config.optimizer.decay_every does nothing with optimizer.schedule='steps'" in message
  validate.check(common.load("configs/resnet.py:resnet20"), {"model.shortcut"})  # residual: it counts


def test_batch_sizes_must_split_over_the_devices():
  c = common.load("configs/resnet.py:resnet20")
  validate.check(c, num_devices=8)   # 128 and 1000
  c.eval_batch_size = 500
  with pytest.raises(ValueError, match="eval_batch_size 500 must be a multiple of the 8 devices: use 496 or 504"):
    validate.check(c, num_devices=8)
  c.eval_batch_size, c.batch_size = 0, 3
  with pytest.raises(ValueError, match="batch_size 3 must be a multiple of the 2 devices: use 2 or 4"):
    validate.check(c, num_devices=2)


def test_classic_main_says_it_before_looking_at_the_data(tmp_path):
  # The data set does not exist: had the config been checked after loading, that would be the error.
  proc = run_main("--config=configs/resnet.py:resnet20", "--config.dataset=/nonexistent/cifar",
                  "--config.optimizer.name=adamw", f"--workdir={tmp_path}", check=False)
  assert proc.returncode == 1
  assert "optimizer.name must be one of 'sgd', 'rmsprop', 'adam', got 'adamw'" in proc.stderr
  assert "nonexistent" not in proc.stderr and "Traceback" not in proc.stderr
  assert not (tmp_path / "config.json").exists()


def test_a_field_added_by_a_newer_version_at_its_default_is_no_change():
  """Upgrading the code must not make every earlier workdir 'another config' (classic.main refusing
  to resume it, a sweep calling it a conflict): a field absent from the old config.json counts only
  when the new config gives it a value other than its default."""
  import json
  from classic.train import checkpoint
  new = json.loads(common.load("configs/resnet.py:resnet20").to_json_best_effort())
  old = json.loads(json.dumps(new))
  del old["eval_scales"], old["model"]["preact_layout"]
  assert checkpoint.differing_fields(old, new) == []
  new["eval_scales"], new["model"]["preact_layout"] = [256], "keras"
  assert checkpoint.differing_fields(old, new) == ["eval_scales", "model.preact_layout"]


def test_replicas_and_data_on_the_device_say_what_they_need():
  c = common.load("configs/resnet.py:resnet20")
  c.replicas = 5
  with pytest.raises(ValueError, match="replicas=5 draws each replica's data order on the device: set "
                                       "--config.data_on_device=True"):
    validate.check(c)
  c.data_on_device = True
  validate.check(c)                           # CIFAR's pad-crop-flip runs on the device
  c.init_from = "/some/run"
  with pytest.raises(ValueError, match="init_from cannot set them"):
    validate.check(c)
  imagenet = common.load("configs/resnet.py:resnet50")
  imagenet.data_on_device = True
  with pytest.raises(ValueError) as e:
    validate.check(imagenet)
  assert "data_on_device computes the 'none', 'shift', 'cifar' augmentations on the device, not 'imagenet'" in str(e.value)
  assert "set --config.in_memory=True" not in str(e.value)   # one problem, one sentence
