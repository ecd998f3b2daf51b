"""Every family trains through the real trainer: two steps of SGD on the bundled digits, then a full
evaluation, at the smallest input each architecture accepts (the digits are resized on device).

Each compiles for 10 s to 3 minutes on 2 CPU cores (the deep Inception nets, ResNet-50 and pre-act
ResNet-164 the longest), so the module is `slow`: `python -m pytest -m slow` runs it. The default
suite trains LeNet, ResNet and the digits end to end elsewhere (tests/train/test_main.py)."""

import importlib
import math

import pytest

pytestmark = pytest.mark.slow
slow = pytest.mark.slow  # (the whole module is slow; kept so the deepest nets stay visibly marked)

from classic.train.loop import Trainer

# (config file, variant, overrides): one per family, and each deviation-free paper form.
CASES = [
    ("lenet", "lenet5", {}),
    ("alexnet", "alexnet", {"image_size": 115}),
    ("alexnet", "alexnet_1tower", {"image_size": 115}),
    ("zfnet", "zfnet", {"image_size": 115}),
    ("nin", "nin_cifar", {}),
    ("vgg", "D_bn", {"image_size": 32, "model.adaptive_pool": 1}),
    pytest.param(*("googlenet", "googlenet", {"image_size": 96}), marks=slow),
    pytest.param(*("inception_v2", "inception_v2", {"image_size": 96}), marks=slow),
    pytest.param(*("inception_v3", "inception_v3", {"image_size": 75}), marks=slow),
    pytest.param(*("inception_v4", "inception_v4", {"image_size": 75}), marks=slow),
    pytest.param(*("inception_v4", "inception_resnet_v2", {"image_size": 75}), marks=slow),
    pytest.param(*("resnet", "resnet50", {"image_size": 64}), marks=slow),
    pytest.param(*("resnet", "preact164", {}), marks=slow),
    ("highway", "highway_cifar", {}),
    ("highway", "highway_fc", {"image_size": 32}),
]


def _id(case):
  family, variant, _ = case.values if hasattr(case, "values") else case
  return f"{family}:{variant}"


@pytest.mark.parametrize("family,variant,overrides", CASES, ids=[_id(c) for c in CASES])
def test_two_training_steps_and_a_full_evaluation(family, variant, overrides, tmp_path):
  config = importlib.import_module(f"configs.{family}").get_config(variant)
  config.dataset, config.channels, config.in_memory, config.eval_split = "digits", 1, True, "test"
  config.augment, config.pca_lighting, config.mean, config.std = "none", 0.0, (127.5,), (127.5,)
  config.photometric = 0.0  # colour distortions need RGB images
  config.batch_size, config.eval_batch_size, config.train_steps = 4, 120, 2
  config.log_every = config.checkpoint_every = config.eval_every = 2
  config.ema_decay = 0.0
  config.model.num_classes = 10
  for key, value in overrides.items():
    node = config
    *path, leaf = key.split(".")
    for p in path:
      node = node[p]
    node[leaf] = value
  result = Trainer(config, str(tmp_path)).train()
  assert result["step"] == 2 and result["eval/count"] == 360
  assert math.isfinite(result["train/loss"]) and result["train/skipped_updates"] == 0
