"""torchvision / timm -> classic: the same logits on the same images, each side preprocessed its way.

The reference models (tests/interop/torch_reference.py) have torchvision's and timm's exact parameter
names; they run in eval mode with random weights and random BN statistics. Skipped without torch.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch to run these)")

from classic import interop  # noqa: E402
from tests.interop import torch_reference as R  # noqa: E402
from tests.interop.helpers import assert_same_logits, classic_logits, images, normalise  # noqa: E402

IMAGENET = (np.array([0.485, 0.456, 0.406], "f"), np.array([0.229, 0.224, 0.225], "f"))
INCEPTION = (np.array([0.5] * 3, "f"), np.array([0.5] * 3, "f"))

TORCHVISION = {  # arch: (reference model, input size of the numeric test)
    "resnet18": (lambda: R.ResNet(18, 10), 64),
    "resnet34": (lambda: R.ResNet(34, 10), 64),
    "resnet50": (lambda: R.ResNet(50, 10), 64),
    "resnet101": (lambda: R.ResNet(101, 10), 64),
    "resnet152": (lambda: R.ResNet(152, 10), 64),
    **{f"vgg{d}{bn}": ((lambda d=d, bn=bn: R.VGG(d, bool(bn), 10)), 32)
       for d in (11, 13, 16, 19) for bn in ("", "_bn")},
    "alexnet": (lambda: R.AlexNet(10), 224),
    "googlenet": (lambda: R.GoogLeNet(10), 224),
    "inception_v3": (lambda: R.Inception3(10), 75),
}
TIMM = {"inception_v4": (lambda: R.InceptionV4(10), 75),
        "inception_resnet_v2": (lambda: R.InceptionResnetV2(10), 75)}


def reference_logits(model, x, stats):
  mean, std = stats
  with torch.no_grad():
    inputs = torch.from_numpy(((x / 255 - mean) / std).transpose(0, 3, 1, 2).copy())
    return model(inputs).numpy()


@pytest.mark.parametrize("arch", sorted(TORCHVISION))
def test_torchvision_same_logits(arch):
  make, size = TORCHVISION[arch]
  torch.manual_seed(0)
  model = R.randomize(make())
  x = images(2, size)
  config, variables = interop.from_torchvision(arch, model.state_dict())
  assert_same_logits(classic_logits(config, variables, normalise(config, x)),
                     reference_logits(model, x, IMAGENET), f"torchvision {arch}")


@pytest.mark.parametrize("arch", sorted(TIMM))
def test_timm_same_logits(arch):
  make, size = TIMM[arch]
  torch.manual_seed(0)
  model = R.randomize(make())
  x = images(2, size)
  config, variables = interop.from_timm(arch, R.timm_state_dict(model))
  assert config.model.layout == "tf_slim"
  assert_same_logits(classic_logits(config, variables, normalise(config, x)),
                     reference_logits(model, x, INCEPTION), f"timm {arch}")


def _meta_state_dict(model_fn):
  """Names and shapes of a reference model without its memory: zero-strided numpy arrays."""
  with torch.device("meta"):
    model = model_fn()
  return {k: np.broadcast_to(np.float32(0), v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("arch,make", [
    ("resnet34", lambda: R.ResNet(34, 10)), ("resnet101", lambda: R.ResNet(101, 10)),
    ("resnet152", lambda: R.ResNet(152, 10)), ("vgg13", lambda: R.VGG(13, False, 10)),
    ("vgg16", lambda: R.VGG(16, False, 10)), ("vgg19_bn", lambda: R.VGG(19, True, 10))])
def test_other_depths_map_every_tensor(arch, make):
  # Same converter code as the numeric tests; this checks the name map covers every tensor.
  config, variables = interop.from_torchvision(arch, _meta_state_dict(make))
  assert config.model.num_classes == 10


def test_aux_heads_load_when_present_and_are_dropped_when_absent():
  sd = _meta_state_dict(lambda: R.GoogLeNet(10, aux_logits=True))
  config, variables = interop.from_torchvision("googlenet", sd)
  assert config.model.aux_heads and variables["params"]["aux_4a"]["fc0"]["kernel"].shape == (2048, 1024)
  sd = {k: v for k, v in sd.items() if not k.startswith("aux")}
  config, variables = interop.from_torchvision("googlenet", sd)
  assert not config.model.aux_heads and "aux_4a" not in variables["params"]
  config, variables = interop.from_torchvision("inception_v3",
                                               _meta_state_dict(lambda: R.Inception3(10)))
  assert config.model.aux_heads and config.model.count_include_pad
  assert tuple(config.mean) == (127.5,) * 3   # transform_input folded into the preprocessing


def test_transform_input_false_keeps_imagenet_statistics():
  torch.manual_seed(0)
  model = R.randomize(R.GoogLeNet(10, aux_logits=False, transform_input=False))
  x = images(1, 96)
  config, variables = interop.from_torchvision("googlenet", model.state_dict(), transform_input=False)
  assert tuple(config.mean) == (123.675, 116.28, 103.53)
  assert_same_logits(classic_logits(config, variables, normalise(config, x)),
                     reference_logits(model, x, IMAGENET), "torchvision googlenet, no transform_input")


def test_timm_mismatches_are_named():
  sd = R.timm_state_dict(R.InceptionResnetV2(10))
  sd["block8.conv2d.bias"] = torch.zeros(3)
  with pytest.raises(interop.ConversionError, match=r"block8\.conv2d\.bias has shape \(3,\)"):
    interop.from_timm("inception_resnet_v2", sd)
  sd = R.timm_state_dict(R.InceptionV4(10))
  with pytest.raises(interop.ConversionError, match="unexpected tensors .*last_linear"):
    interop.from_timm("inception_resnet_v2", {**sd, "classif.weight": sd["last_linear.weight"]})


def test_pth_file_through_the_convert_command_reader(tmp_path):
  from classic import convert
  torch.manual_seed(0)
  model = R.randomize(R.ResNet(18, 4))
  torch.save({"state_dict": model.state_dict()}, tmp_path / "r18.pth")
  config, variables = convert.convert("torchvision", "resnet18", str(tmp_path / "r18.pth"))
  x = images(1, 64)
  assert_same_logits(classic_logits(config, variables, normalise(config, x)),
                     reference_logits(model, x, IMAGENET), "torchvision resnet18 from .pth")
  safetensors = pytest.importorskip("safetensors.torch")
  safetensors.save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                        str(tmp_path / "r18.safetensors"))
  config, variables2 = convert.convert("torchvision", "resnet18", str(tmp_path / "r18.safetensors"))
  np.testing.assert_array_equal(variables2["params"]["head"]["kernel"],
                                variables["params"]["head"]["kernel"])
