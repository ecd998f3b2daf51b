"""Bad input fails clearly; `python -m classic.convert` writes a workdir the trainer restores.

Numpy state dicts with torchvision's names: no torch needed.
"""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from classic import interop
from classic.interop import ConversionError
from classic.train import checkpoint, state as state_lib
from tests.conftest import REPO
from tests.interop.helpers import classic_logits, images, normalise, resnet18_state_dict


def test_unknown_arch_lists_the_known_ones():
  with pytest.raises(ConversionError, match=r"resnet51.*Known:.*resnet50.*vgg16_bn"):
    interop.from_torchvision("resnet51", {})
  with pytest.raises(ConversionError, match=r"Known: inception_resnet_v2, inception_v4"):
    interop.from_timm("inception_v3", {})


def test_missing_extra_and_misshapen_tensors_are_named():
  sd = resnet18_state_dict()
  del sd["layer1.0.conv1.weight"]
  sd["layer9.0.conv1.weight"] = np.zeros((3, 3), np.float32)
  sd["layer2.0.bn1.running_var"] = np.ones(7, np.float32)
  with pytest.raises(ConversionError) as e:
    interop.from_torchvision("resnet18", sd)
  message = str(e.value)
  assert "missing tensors: layer1.0.conv1.weight" in message
  assert "unexpected tensors" in message and "layer9.0.conv1.weight" in message
  assert "layer2.0.bn1.running_var has shape (7,), expected (128,)" in message


def test_a_conv_of_the_wrong_shape_is_named_in_the_source_layout():
  sd = resnet18_state_dict()
  sd["layer1.0.conv2.weight"] = np.zeros((64, 64, 5, 5), np.float32)
  with pytest.raises(ConversionError, match=r"layer1\.0\.conv2\.weight has shape \(64, 64, 5, 5\), "
                                            r"expected \(64, 64, 3, 3\)"):
    interop.from_torchvision("resnet18", sd)


def test_class_count_is_checked():
  sd = resnet18_state_dict(classes=5)
  config, _ = interop.from_torchvision("resnet18", sd, num_classes=5)
  assert config.model.num_classes == 5
  with pytest.raises(ConversionError, match=r"5 classes \(fc.weight \(5, 512\)\) but num_classes=7"):
    interop.from_torchvision("resnet18", sd, num_classes=7)


def test_the_resnet18_config_is_torchvisions():
  config, variables = interop.from_torchvision("resnet18", resnet18_state_dict())
  assert config.variant == "resnet18" and config.model.stride_on_3x3  # a model variant: no recipe
  assert config.eval_resize == 256 and config.dataset == "imagenet2012"
  assert tuple(config.mean) == (123.675, 116.28, 103.53) and config.image_size == 224
  assert variables["params"]["stem"]["conv"]["kernel"].shape == (7, 7, 3, 64)
  assert variables["params"]["head"]["kernel"].shape == (512, 5)


def _image_folder(root, classes: int, size: int):
  for c in range(classes):
    folder = root / "test" / f"class{c}"
    folder.mkdir(parents=True)
    for i in range(2):
      Image.fromarray(images(1, size, seed=10 * c + i)[0].astype(np.uint8)).save(folder / f"{i}.png")
  return root


def test_convert_command_writes_a_workdir_the_trainer_restores(tmp_path):
  sd = resnet18_state_dict(classes=3)
  weights = tmp_path / "resnet18.npz"
  np.savez(weights, **sd)
  workdir = tmp_path / "converted"
  proc = subprocess.run([sys.executable, "-m", "classic.convert", "--from=torchvision",
                         "--arch=resnet18", f"--weights={weights}", f"--workdir={workdir}"],
                        cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "3 classes" in proc.stdout
  assert (workdir / "config.json").exists() and (workdir / "checkpoints" / "0").is_dir()

  from classic.train.loop import Trainer
  config = checkpoint.read_config(str(workdir))
  config.dataset = str(_image_folder(tmp_path / "data", 3, 40))
  config.eval_split, config.image_size, config.eval_resize, config.batch_size = "test", 32, 32, 6
  trainer = Trainer(config, str(workdir), eval_only=True)
  try:
    assert trainer.start_step == 0
    expected_config, expected = interop.from_torchvision("resnet18", sd)
    x = normalise(expected_config, images(2, 32))
    restored = classic_logits(config, state_lib.variables(trainer.state), x)
    np.testing.assert_array_equal(restored, classic_logits(expected_config, expected, x))
    result = trainer.evaluate()
    assert result["eval/count"] == 6
  finally:
    trainer.checkpointer.close()


def test_convert_command_fails_clearly(tmp_path):
  weights = tmp_path / "bad.npz"
  np.savez(weights, **{"fc.weight": np.zeros((3, 512), np.float32)})
  proc = subprocess.run([sys.executable, "-m", "classic.convert", "--from=torchvision",
                         "--arch=resnet18", f"--weights={weights}", f"--workdir={tmp_path / 'w'}"],
                        cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1
  assert "missing tensors: conv1.weight" in proc.stderr
