"""timm -> classic: `inception_v4` and `inception_resnet_v2` (timm's ports of TF-slim's networks).

`from_timm(arch, state_dict)` takes timm's state dict (names to torch tensors or numpy arrays, e.g.
`safetensors.numpy.load_file("model.safetensors")`, which needs no torch) and returns (config,
variables). Both nets are the `layout='tf_slim'` of classic/models/inception_v4.py (TF-slim's branch
orders; Inception-ResNet-v2 with blocks (10, 20, 10)); BN epsilon 1e-3 as classic's default;
preprocessing x/127.5 - 1 (timm's IMAGENET_INCEPTION_MEAN/STD 0.5 on the 0-1 scale), 299x299.
"""

from __future__ import annotations

from typing import Any, Mapping

from classic.data import normalization
from classic.interop import common

KNOWN = ("inception_v4", "inception_resnet_v2")


def from_timm(arch: str, state_dict: Mapping[str, Any], num_classes: int | None = None):
  """(config, variables) of the classic module equivalent to timm's `arch` with these weights."""
  if arch not in KNOWN:
    raise common.unknown_arch(arch, KNOWN, "timm")
  head = "last_linear" if arch == "inception_v4" else "classif"
  if f"{head}.weight" not in state_dict:
    raise common.ConversionError(f"The weights do not fit timm {arch}: missing tensors: "
                                 f"{head}.weight (the classifier).")
  shape = tuple(common.to_numpy(state_dict[f"{head}.weight"]).shape)
  classes = common.check_classes(shape[0], num_classes, f"{head}.weight {shape}")
  if arch == "inception_v4":
    config = common.get_config("inception_v4", 299, normalization.INCEPTION,
                               num_classes=classes, layout="tf_slim")
  else:
    config = common.get_config("inception_resnet_v2_tf_slim", 299, normalization.INCEPTION,
                               num_classes=classes)
  m = common.Mapper(state_dict, common.abstract_variables(config), "torch")
  (_v4 if arch == "inception_v4" else _irv2)(m)
  m.dense("head", head)
  return config, m.finish(f"timm {arch}")


def _cba(m, dst, src):
  m.conv(f"{dst}/conv", f"{src}.conv")
  m.bn(f"{dst}/bn", f"{src}.bn")


def _branches(m, dst, src, table):
  """table: {classic branch index: [(classic layer name, timm name relative to src)]}."""
  for b, layers in table.items():
    for layer, name in layers:
      _cba(m, f"{dst}/branch{b}/conv{layer}", f"{src}.{name}")


def _seq(branch: str, n: int, start: int = 0):
  return [(str(i + start), f"{branch}.{i}") for i in range(n)]


def _v4(m):
  for i in range(3):
    _cba(m, f"stem0/conv{i}", f"features.{i}")
  _branches(m, "stem1", "features.3", {1: [("0", "conv")]})
  _branches(m, "stem2", "features.4", {0: _seq("branch0", 2), 1: _seq("branch1", 4)})
  _branches(m, "stem3", "features.5", {0: [("0", "conv")]})
  inception_a = {0: [("0", "branch0")], 1: _seq("branch1", 2), 2: _seq("branch2", 3),
                 3: [("1", "branch3.1")]}
  inception_b = {0: [("0", "branch0")], 1: _seq("branch1", 3), 2: _seq("branch2", 5),
                 3: [("1", "branch3.1")]}
  inception_c = {0: [("0", "branch0")],
                 1: [("0", "branch1_0"), ("1_0", "branch1_1a"), ("1_1", "branch1_1b")],
                 2: [("0", "branch2_0"), ("1", "branch2_1"), ("2", "branch2_2"),
                     ("3_0", "branch2_3a"), ("3_1", "branch2_3b")],
                 3: [("1", "branch3.1")]}
  for b in range(4):
    _branches(m, f"inception_a{b + 1}", f"features.{6 + b}", inception_a)
  _branches(m, "reduction_a", "features.10", {0: [("0", "branch0")], 1: _seq("branch1", 3)})
  for b in range(7):
    _branches(m, f"inception_b{b + 1}", f"features.{11 + b}", inception_b)
  _branches(m, "reduction_b", "features.18", {0: _seq("branch0", 2), 1: _seq("branch1", 4)})
  for b in range(3):
    _branches(m, f"inception_c{b + 1}", f"features.{19 + b}", inception_c)


def _irv2(m):
  for i, name in ((0, "conv2d_1a"), (1, "conv2d_2a"), (2, "conv2d_2b"), (4, "conv2d_3b"),
                  (5, "conv2d_4a")):
    _cba(m, f"stem0/conv{i}", name)
  _branches(m, "stem1", "mixed_5b", {0: [("0", "branch0")], 1: _seq("branch1", 2),
                                     2: _seq("branch2", 3), 3: [("1", "branch3.1")]})
  blocks = (("a", "repeat", 10, {0: [("0", "branch0")], 1: _seq("branch1", 2), 2: _seq("branch2", 3)}),
            ("b", "repeat_1", 20, {0: [("0", "branch0")], 1: _seq("branch1", 3)}),
            ("c", "repeat_2", 10, {0: [("0", "branch0")], 1: _seq("branch1", 3)}))
  for letter, seq, count, table in blocks:
    for b in range(count):
      src = "block8" if letter == "c" and b == count - 1 else f"{seq}.{b}"
      _branches(m, f"block_{letter}{b + 1}/mixed", src, table)
      m.conv(f"block_{letter}{b + 1}/up", f"{src}.conv2d")
  _branches(m, "reduction_a", "mixed_6a", {0: [("0", "branch0")], 1: _seq("branch1", 3)})
  _branches(m, "reduction_b", "mixed_7a", {0: _seq("branch0", 2), 1: _seq("branch1", 2),
                                           2: _seq("branch2", 3)})
  _cba(m, "conv2d_7b", "conv2d_7b")
