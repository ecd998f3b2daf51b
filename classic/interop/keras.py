"""keras.applications -> classic: VGG16/19, ResNet50/101/152 (v1), ResNet50V2/101V2/152V2, InceptionV3,
InceptionResNetV2.

`from_keras(model_or_path)` takes a Keras model (any backend; Keras 3) built with `include_top=True`,
or a `.keras` / `.h5` file: a saved model (keras.models.load_model), or a weights-only file of
keras.applications (then `arch=` names the application, built with weights=FILE). The architecture is
read from the model's name ('vgg16', 'resnet50v2', 'inception_v3', ...) unless `arch=` is given.

What the converted config carries besides the weights:
- Preprocessing. VGG and ResNet v1 are 'caffe' models: Keras flips RGB to BGR and subtracts the BGR
  mean (103.939, 116.779, 123.68) without scaling. The converted net takes RGB with mean
  (123.68, 116.779, 103.939), std 1: the BGR flip is folded into the first conv (its input channels
  reversed), which is exact, so no channel-order option is needed. ResNetV2 and the Inceptions are
  'tf' models: x / 127.5 - 1, i.e. mean = std = 127.5.
- Deviations: ResNet v1 has a bias on every conv before a BN (folded into the BN's running mean,
  exact) and BN epsilon 1.001e-5 (`bn_epsilon`); ResNetV2 is `preact_layout='keras'` with
  `stride_on_3x3=True` (see
  classic/models/resnet.py); InceptionV3's BN has no scale (loaded as 1) and no aux head;
  InceptionResNetV2 is `layout='tf_slim'`, blocks (10, 20, 10).
- The classic module returns logits; Keras' 'predictions' layer applies softmax by default
  (classifier_activation), which does not change the top-1.
- `config.image_size` is the Keras model's input size (VGG's FC layers depend on it).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from classic.data import normalization
from classic.interop import common

ResNetDepth = {"resnet50": 50, "resnet101": 101, "resnet152": 152}

# application name (as keras.applications spells it) -> model name Keras gives it
APPLICATIONS = {
    "VGG16": "vgg16", "VGG19": "vgg19",
    "ResNet50": "resnet50", "ResNet101": "resnet101", "ResNet152": "resnet152",
    "ResNet50V2": "resnet50v2", "ResNet101V2": "resnet101v2", "ResNet152V2": "resnet152v2",
    "InceptionV3": "inception_v3", "InceptionResNetV2": "inception_resnet_v2",
}
KNOWN = tuple(APPLICATIONS.values())


def _keras():
  os.environ.setdefault("KERAS_BACKEND", "jax")
  import keras
  return keras


def load(path: str, arch: str | None = None):
  """A Keras model from a .keras/.h5 file: a saved model, or weights for keras.applications[arch]."""
  keras = _keras()
  if not os.path.exists(path):
    raise FileNotFoundError(f"No such Keras file: {path}")
  try:
    return keras.models.load_model(path, compile=False)
  except Exception as e:  # a weights-only file: build the application around it
    if arch is None:
      raise common.ConversionError(
          f"{path} is not a saved Keras model ({type(e).__name__}: {e}); for a weights-only file "
          f"name the application with arch= (one of {', '.join(APPLICATIONS)}).") from e
  app = _application_name(arch)
  return getattr(keras.applications, app)(weights=path, classifier_activation=None)


def _application_name(arch: str) -> str:
  by_lower = {k.lower(): k for k in APPLICATIONS}
  by_lower.update({v: k for k, v in APPLICATIONS.items()})
  key = arch.lower()
  if key not in by_lower:
    raise common.unknown_arch(arch, APPLICATIONS, "Keras")
  return by_lower[key]


def from_keras(model_or_path: Any, arch: str | None = None, num_classes: int | None = None):
  """(config, variables) of the classic equivalent of a keras.applications model or file."""
  model = load(model_or_path, arch) if isinstance(model_or_path, (str, os.PathLike)) else model_or_path
  name = APPLICATIONS[_application_name(arch)] if arch else model.name
  if name not in KNOWN:
    raise common.unknown_arch(name, KNOWN, "Keras")
  layers = {layer.name: layer for layer in model.layers}
  if "predictions" not in layers:
    raise common.ConversionError(
        f"The Keras {name} model has no 'predictions' layer: build it with include_top=True.")
  weights = {f"{layer.name}/{w.name}": np.asarray(w.numpy()) for layer in model.layers
             for w in layer.weights}
  classes = common.check_classes(weights["predictions/kernel"].shape[-1], num_classes,
                                 f"predictions/kernel {weights['predictions/kernel'].shape}")
  size = model.input_shape[1]
  if size is None or model.input_shape[2] != size:
    raise common.ConversionError(f"a square input size is needed, the model has {model.input_shape}")
  if name in ("vgg16", "vgg19"):
    return _vgg(name, weights, classes, size)
  if name in ResNetDepth:
    return _resnet_v1(ResNetDepth[name], weights, classes, size)
  if name.endswith("v2") and name.startswith("resnet"):
    return _resnet_v2(int(name[6:-2]), weights, classes, size)
  if name == "inception_v3":
    config = common.get_config("inception_v3", size, normalization.INCEPTION,
                               num_classes=classes, aux_heads=False)
  else:
    config = common.get_config("inception_resnet_v2_tf_slim", size, normalization.INCEPTION,
                               num_classes=classes)
  return config, _ordered(model, weights, config, name)


# ---------------------------------------------------------------------------------------------
def _vgg(name, weights, classes, size):
  config = common.get_config(name, size, normalization.CAFFE, num_classes=classes)
  m = common.Mapper(weights, common.abstract_variables(config), "keras")
  from classic.models.vgg import stages_for
  for s, stage in enumerate(stages_for(config.model.config_name)):
    for j in range(len(stage)):
      m.conv(f"conv{s + 1}_{j + 1}", f"block{s + 1}_conv{j + 1}", flip_input_channels=s == j == 0)
  for dst, src in (("fc6", "fc1"), ("fc7", "fc2"), ("fc8", "predictions")):
    m.dense(dst, src)
  return config, m.finish(f"Keras {name}")


def _resnet_v1(depth, weights, classes, size):
  config = common.get_config(f"resnet{depth}", size, normalization.CAFFE, num_classes=classes,
                             bn_epsilon=1.001e-5)
  m = common.Mapper(weights, common.abstract_variables(config), "keras")
  m.bn("stem/bn", "conv1_bn", shift=m.conv("stem/conv", "conv1_conv", flip_input_channels=True))
  from classic.models.resnet import layout
  _, stages = layout(depth, "imagenet")
  for s, blocks in enumerate(stages):
    for b in range(blocks):
      dst, src = f"stage{s + 1}_block{b + 1}", f"conv{s + 2}_block{b + 1}"
      for i in range(3):
        m.bn(f"{dst}/unit{i}/bn", f"{src}_{i + 1}_bn",
             shift=m.conv(f"{dst}/unit{i}/conv", f"{src}_{i + 1}_conv"))
      if b == 0:
        m.bn(f"{dst}/proj/bn", f"{src}_0_bn", shift=m.conv(f"{dst}/proj/conv", f"{src}_0_conv"))
  m.dense("head", "predictions")
  return config, m.finish(f"Keras resnet{depth}")


def _resnet_v2(depth, weights, classes, size):
  config = common.get_config(f"preact{depth}", size, normalization.INCEPTION, num_classes=classes,
                             bn_epsilon=1.001e-5, preact_layout="keras", stride_on_3x3=True)
  m = common.Mapper(weights, common.abstract_variables(config), "keras")
  m.conv("stem_conv", "conv1_conv")
  from classic.models.resnet import layout
  _, stages = layout(depth, "imagenet")
  for s, blocks in enumerate(stages):
    for b in range(blocks):
      dst, src = f"stage{s + 1}_block{b + 1}", f"conv{s + 2}_block{b + 1}"
      m.bn(f"{dst}/preact_bn", f"{src}_preact_bn")
      for i in range(3):
        m.conv(f"{dst}/conv{i}", f"{src}_{i + 1}_conv")
        if i < 2:
          m.bn(f"{dst}/bn{i + 1}", f"{src}_{i + 1}_bn")
      if b == 0:
        m.conv(f"{dst}/proj", f"{src}_0_conv")
  m.bn("final_bn", "post_bn")
  m.dense("head", "predictions")
  return config, m.finish(f"Keras resnet{depth}v2")


# ---------------------------------------------------------------------------------------------
def _graph_order(model) -> list[Any]:
  """The model's layers in depth-first post-order from the output: each branch of a concatenation
  whole, in concatenation order, as the classic modules create their layers."""
  seen, order = set(), []
  out = model.outputs[0]._keras_history
  root = out.operation._inbound_nodes[out.node_index]
  stack = [(root, False)]
  while stack:
    node, expanded = stack.pop()
    if expanded:
      if id(node.operation) not in seen:
        seen.add(id(node.operation))
        order.append(node.operation)
      continue
    if id(node.operation) in seen:
      continue
    stack.append((node, True))
    for parent in reversed(node.parent_nodes):
      if id(parent.operation) not in seen:
        stack.append((parent, False))
  return order


def _ordered(model, weights, config, name):
  """Inception nets, whose Keras layers are not named per module: matched by graph order."""
  keras = _keras()
  units = []  # (conv layer name, bn layer name or None)
  for layer in _graph_order(model):
    if isinstance(layer, keras.layers.Conv2D):
      units.append([layer.name, None])
    elif isinstance(layer, keras.layers.BatchNormalization):
      if not units or units[-1][1] is not None:
        raise common.ConversionError(f"Keras {name}: BatchNormalization {layer.name} follows no conv.")
      units[-1][1] = layer.name
  order: list[str] = []
  m = common.Mapper(weights, common.abstract_variables(config, order), "keras")
  classic_units = m.conv_units(order)
  if len(units) != len(classic_units):
    raise common.ConversionError(
        f"The Keras model has {len(units)} convolutions, classic {config.model.name} "
        f"{len(classic_units)}: not a keras.applications {name} of the standard layout.")
  for (conv, bn), (path, has_bn) in zip(units, classic_units):
    if has_bn != (bn is not None):
      raise common.ConversionError(f"Keras layer {conv} {'lacks' if has_bn else 'has'} a BatchNorm "
                                   f"where classic {path} {'has' if has_bn else 'has none'}.")
    shift = m.conv(path, conv)
    if bn is not None:
      m.bn(m.bn_path(path), bn, shift=shift, scale_optional=True)
  m.dense("head", "predictions")
  return m.finish(f"Keras {name}")
