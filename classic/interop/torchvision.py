"""torchvision -> classic: alexnet, vgg11/13/16/19 (and _bn), googlenet, inception_v3, resnet18/34/50/101/152.

`from_torchvision(arch, state_dict)` takes the state dict of torchvision's model (a mapping of names to
torch tensors or numpy arrays: `torch.load(...)`, or `safetensors.numpy.load_file(...)`, which needs
no torch) and returns (config, variables) of the classic module that computes the same logits.

What the converted configs set (torchvision's deviations from the papers):
- resnet: `stride_on_3x3=True` (torchvision's "v1.5": the bottleneck's stride on its 3x3 conv;
  resnet18/34 have no bottleneck, the field is set all the same).
- vgg: `adaptive_pool=7` (torchvision's adaptive average pool before the classifier); the _bn forms
  keep the conv biases, as classic's VGG-BN does. The FC weights are re-ordered from PyTorch's
  (C, H, W) flatten to classic's (H, W, C).
- alexnet: the `alexnet_1tower` variant (Krizhevsky 2014, as torchvision has it). PyTorch pools round
  down and classic's Caffe pools round up: the same at 224 (55 -> 27 -> 13 -> 6), not at every size.
- googlenet: `googlenet_torchvision` (BN with epsilon 1e-3, no LRN, 3x3 "5x5" branches, ceil-mode
  pools, a 2x2 pool before 5a), dropout 0.2. The aux heads load when the state dict has them
  (`aux1.*`, `aux2.*`; `aux_heads=False` otherwise).
- inception_v3: `count_include_pad=True` (torchvision's avg pools divide by 9 at the border), the
  aux head ('AuxLogits.*') when present.
- Preprocessing: ImageNet mean/std (0-255 scale). torchvision's pretrained googlenet and inception_v3
  have `transform_input=True`, which maps ImageNet-normalised inputs to x/127.5 - 1; their configs
  then use mean = std = 127.5 (`transform_input=False` keeps the ImageNet statistics).
"""

from __future__ import annotations

from typing import Any, Mapping

from classic.data import normalization
from classic.interop import common

RESNETS = {f"resnet{d}": d for d in (18, 34, 50, 101, 152)}
VGGS = {f"vgg{n}{bn}": (f"vgg{n}{bn}", n) for n in (11, 13, 16, 19) for bn in ("", "_bn")}
KNOWN = (*RESNETS, *VGGS, "alexnet", "googlenet", "inception_v3")


def from_torchvision(arch: str, state_dict: Mapping[str, Any], num_classes: int | None = None,
                     transform_input: bool = True):
  """(config, variables) of the classic module equivalent to torchvision's `arch` with these weights."""
  if arch not in KNOWN:
    raise common.unknown_arch(arch, KNOWN, "torchvision")
  head = {"alexnet": "classifier.6", "googlenet": "fc", "inception_v3": "fc"}.get(
      arch, "classifier.6" if arch in VGGS else "fc")
  weight = f"{head}.weight"
  if weight not in state_dict:
    raise common.ConversionError(f"The weights do not fit torchvision {arch}: missing tensors: "
                                 f"{weight} (the classifier).")
  shape = tuple(common.to_numpy(state_dict[weight]).shape)
  classes = common.check_classes(shape[0], num_classes, f"{weight} {shape}")
  if arch in RESNETS:
    return _resnet(RESNETS[arch], state_dict, classes)
  if arch in VGGS:
    return _vgg(arch, state_dict, classes)
  if arch == "alexnet":
    return _alexnet(state_dict, classes)
  if arch == "googlenet":
    return _googlenet(state_dict, classes, transform_input)
  return _inception_v3(state_dict, classes, transform_input)


def _resnet(depth, sd, classes):
  config = common.get_config(f"resnet{depth}", 224, normalization.IMAGENET,
                             num_classes=classes, stride_on_3x3=True)
  m = common.Mapper(sd, common.abstract_variables(config), "torch")
  m.conv("stem/conv", "conv1")
  m.bn("stem/bn", "bn1")
  from classic.models.resnet import layout
  kind, stages = layout(depth, "imagenet")
  for s, blocks in enumerate(stages):
    for b in range(blocks):
      dst, src = f"stage{s + 1}_block{b + 1}", f"layer{s + 1}.{b}"
      for i in range(3 if kind == "bottleneck" else 2):
        m.conv(f"{dst}/unit{i}/conv", f"{src}.conv{i + 1}")
        m.bn(f"{dst}/unit{i}/bn", f"{src}.bn{i + 1}")
      if m.target_has(f"{dst}/proj/conv/kernel"):
        m.conv(f"{dst}/proj/conv", f"{src}.downsample.0")
        m.bn(f"{dst}/proj/bn", f"{src}.downsample.1")
  m.dense("head", "fc")
  return config, m.finish(f"torchvision resnet{depth}")


def _vgg(arch, sd, classes):
  bn = arch.endswith("_bn")
  config = common.get_config(arch, 224, normalization.IMAGENET,
                             num_classes=classes, adaptive_pool=7)
  m = common.Mapper(sd, common.abstract_variables(config), "torch")
  from classic.models.vgg import stages_for
  index = 0
  for s, stage in enumerate(stages_for(config.model.config_name)):
    for j in range(len(stage)):
      m.conv(f"conv{s + 1}_{j + 1}", f"features.{index}")
      if bn:
        m.bn(f"bn{s + 1}_{j + 1}", f"features.{index + 1}")
      index += 3 if bn else 2       # conv, (bn,) relu
    index += 1                      # max pool
  m.dense("fc6", "classifier.0", chw=(512, 7, 7))
  m.dense("fc7", "classifier.3")
  m.dense("fc8", "classifier.6")
  return config, m.finish(f"torchvision {arch}")


def _alexnet(sd, classes):
  config = common.get_config("alexnet_1tower", 224, normalization.IMAGENET,
                             num_classes=classes)
  m = common.Mapper(sd, common.abstract_variables(config), "torch")
  for i, index in enumerate((0, 3, 6, 8, 10)):
    m.conv(f"conv{i + 1}", f"features.{index}")
  m.dense("fc6", "classifier.1", chw=(256, 6, 6))
  m.dense("fc7", "classifier.4")
  m.dense("fc8", "classifier.6")
  return config, m.finish("torchvision alexnet")


def _preprocessing(config, transform_input: bool) -> None:
  """transform_input maps ImageNet-normalised inputs to x/127.5 - 1: the net sees the latter."""
  if transform_input:
    config.mean, config.std = normalization.INCEPTION_MEAN, normalization.INCEPTION_STD
  else:
    config.mean, config.std = normalization.IMAGENET_MEAN, normalization.IMAGENET_STD


def _conv_bn(m, dst, src):
  m.conv(f"{dst}/conv", f"{src}.conv")
  m.bn(f"{dst}/bn", f"{src}.bn")


def _googlenet(sd, classes, transform_input):
  aux = any(k.startswith("aux1.") for k in sd)
  config = common.get_config("googlenet_torchvision", 224, normalization.IMAGENET,
                             num_classes=classes,
                             aux_heads=aux, dropout=0.2)
  _preprocessing(config, transform_input)
  m = common.Mapper(sd, common.abstract_variables(config), "torch")
  for dst, src in (("conv1", "conv1"), ("conv2_reduce", "conv2"), ("conv2", "conv3")):
    _conv_bn(m, dst, src)
  from classic.models.googlenet import TABLE1
  for name in TABLE1:
    dst, src = f"inception_{name}", f"inception{name}"
    _conv_bn(m, f"{dst}/branch0_conv0", f"{src}.branch1")
    for j in range(2):
      _conv_bn(m, f"{dst}/branch1_conv{j}", f"{src}.branch2.{j}")
      _conv_bn(m, f"{dst}/branch2_conv{j}", f"{src}.branch3.{j}")
    _conv_bn(m, f"{dst}/pool_proj", f"{src}.branch4.1")
  if aux:
    for dst, src in (("aux_4a", "aux1"), ("aux_4d", "aux2")):
      _conv_bn(m, f"{dst}/conv0", f"{src}.conv")
      m.dense(f"{dst}/fc0", f"{src}.fc1", chw=(128, 4, 4))
      m.dense(f"{dst}/logits", f"{src}.fc2")
  m.dense("head", "fc")
  return config, m.finish("torchvision googlenet")


# classic (module, branch layer) -> torchvision submodule, per Inception v3 module type
_V3_A = {"branch0_conv0": "branch1x1", "branch1_conv0": "branch5x5_1", "branch1_conv1": "branch5x5_2",
         "branch2_conv0": "branch3x3dbl_1", "branch2_conv1": "branch3x3dbl_2",
         "branch2_conv2": "branch3x3dbl_3", "pool_proj": "branch_pool"}
_V3_B = {"branch0_conv0": "branch3x3", "branch1_conv0": "branch3x3dbl_1",
         "branch1_conv1": "branch3x3dbl_2", "branch1_conv2": "branch3x3dbl_3"}
_V3_C = {"branch0_conv0": "branch1x1", **{f"branch1_conv{i}": f"branch7x7_{i + 1}" for i in range(3)},
         **{f"branch2_conv{i}": f"branch7x7dbl_{i + 1}" for i in range(5)}, "pool_proj": "branch_pool"}
_V3_D = {"branch0_conv0": "branch3x3_1", "branch0_conv1": "branch3x3_2",
         **{f"branch1_conv{i}": f"branch7x7x3_{i + 1}" for i in range(4)}}
_V3_E = {"branch0_conv0": "branch1x1", "branch1_conv0": "branch3x3_1", "branch1_conv1a": "branch3x3_2a",
         "branch1_conv1b": "branch3x3_2b", "branch2_conv0": "branch3x3dbl_1",
         "branch2_conv1": "branch3x3dbl_2", "branch2_conv2a": "branch3x3dbl_3a",
         "branch2_conv2b": "branch3x3dbl_3b", "pool_proj": "branch_pool"}
_V3_MODULES = {"5b": _V3_A, "5c": _V3_A, "5d": _V3_A, "6a": _V3_B, "6b": _V3_C, "6c": _V3_C,
               "6d": _V3_C, "6e": _V3_C, "7a": _V3_D, "7b": _V3_E, "7c": _V3_E}


def _inception_v3(sd, classes, transform_input):
  aux = any(k.startswith("AuxLogits.") for k in sd)
  config = common.get_config("inception_v3", 299, normalization.IMAGENET, num_classes=classes, aux_heads=aux,
                             count_include_pad=True, dropout=0.5)
  _preprocessing(config, transform_input)
  m = common.Mapper(sd, common.abstract_variables(config), "torch")
  for dst, src in (("conv_1a", "Conv2d_1a_3x3"), ("conv_2a", "Conv2d_2a_3x3"),
                   ("conv_2b", "Conv2d_2b_3x3"), ("conv_3b", "Conv2d_3b_1x1"),
                   ("conv_4a", "Conv2d_4a_3x3")):
    _conv_bn(m, dst, src)
  for name, table in _V3_MODULES.items():
    for dst, src in table.items():
      _conv_bn(m, f"mixed_{name}/{dst}", f"Mixed_{name}.{src}")
  if aux:
    _conv_bn(m, "aux/conv0", "AuxLogits.conv0")
    _conv_bn(m, "aux/conv1", "AuxLogits.conv1")
    m.dense("aux/logits", "AuxLogits.fc")
  m.dense("head", "fc")
  return config, m.finish("torchvision inception_v3")
