"""Every family's train step lowers for GPU (cuda) and TPU, fp32 and bf16, on this CPU-only machine.

`jax.export` lowers for a platform without its device: an op with no CUDA or TPU lowering fails here
with the config, precision, platform and op named (classic/train/lowering.py). Compilation and speed on
the device are `python -m launch.accelerator_check`'s job.
"""

import importlib
import re

import jax
import pytest

from classic import models
from classic.train import lowering

# One case per model class and per structural switch that changes the ops (towers, LRN, aux heads,
# bottlenecks, option-A shortcuts, pre-activation, scanned + rematerialised stages, ghost BN, highway gates).
CASES = [
    ("lenet", "lenet5", {}),
    ("alexnet", "alexnet", {}),
    ("zfnet", "zfnet", {}),
    ("nin", "nin_imagenet", {}),
    ("vgg", "A_lrn", {}),
    ("vgg", "D_bn", {}),
    ("googlenet", "googlenet", {}),
    ("inception_v2", "inception_v2", {}),
    ("inception_v3", "inception_v3", {}),
    ("inception_v4", "inception_v4", {}),
    ("inception_v4", "inception_resnet_v1", {}),
    ("inception_v4", "inception_resnet_v2", {}),
    ("resnet", "resnet50", {"bn_group_size": 1}),
    ("resnet", "resnet20", {}),
    ("resnet", "preact164", {"depth": 29}),        # the same bottleneck units, 3 a stage
    ("resnet", "resnet56", {"scan_blocks": True, "remat": True}),
    ("highway", "highway_fc", {}),
    ("highway", "highway_cifar", {}),
]


def _config(family, variant, model_overrides, half_precision):
  config = importlib.import_module(f"configs.{family}").get_config(variant)
  config.half_precision = half_precision
  for key, value in model_overrides.items():
    config.model[key] = value
  return config


def test_the_cases_cover_every_registered_model():
  covered = {_config(f, v, o, False).model.name for f, v, o in CASES}
  assert covered == set(models.names())


# In the default suite, one small net in each precision; `-m slow` lowers every family in both.
FAST = {("lenet5", False), ("resnet20", True)}


@pytest.mark.parametrize("family, variant, overrides, half_precision", [
    pytest.param(f, v, o, half, marks=() if (v, half) in FAST else pytest.mark.slow,
                 id=f"{f}:{v}-{'bf16' if half else 'fp32'}")
    for f, v, o in CASES for half in (False, True)])
def test_train_step_lowers_for_gpu_and_tpu(family, variant, overrides, half_precision):
  config = _config(family, variant, overrides, half_precision)
  exported = lowering.export_train_step(config, lowering.PLATFORMS)  # LoweringError names the op
  assert exported.platforms == ("cuda", "tpu")
  # the donated state comes back with the same structure, plus the step's 6 metrics; the batch is the
  # image, the label and the colour parameters the recipe draws (PCA lighting, photometric)
  batch = 2 + bool(config.pca_lighting) + bool(config.photometric)
  assert len(exported.out_avals) == len(exported.in_avals) - batch + 6
  if config.model.name != "highway" or variant == "highway_cifar":
    assert "stablehlo.convolution" in exported.mlir_module()


def test_gpu_and_tpu_lowerings_keep_xlas_own_convolutions_and_pool_gradients():
  """The CPU-only forms of classic/models/layers.py (1x1 convolutions as matrix products, max pooling's
  gradient by taps) are CPU-only: ResNet-50 on CUDA/TPU has its 1x1 convolutions as convolutions and
  the stem's max-pool gradient as XLA's select_and_scatter; on CPU they are dot products."""
  config = _config("resnet", "resnet50", {}, False)
  counts = {}
  for platform in ("cpu",) + lowering.PLATFORMS:
    text = lowering.export_train_step(config, platform).mlir_module()
    counts[platform] = {op: len(re.findall(rf"stablehlo\.{op}\b", text))
                        for op in ("convolution", "dot_general", "select_and_scatter")}
  for platform in lowering.PLATFORMS:
    # 53 convolutions, each with a forward, an input-gradient (not the stem's) and a kernel-gradient form
    assert counts[platform]["convolution"] == 53 * 3 - 1
    # the classifier (forward and two gradients) and the PCA lighting's colour shift (the recipe's 0.1)
    assert counts[platform]["dot_general"] == 3 + 1
    assert counts[platform]["select_and_scatter"] >= 1
  assert counts["cpu"]["dot_general"] > 100 and counts["cpu"]["select_and_scatter"] == 0


def test_an_op_without_a_gpu_lowering_is_named():
  from jax.extend.core import Primitive
  from jax.interpreters import mlir
  cpu_only = Primitive("classic_test_cpu_only_op")
  cpu_only.def_impl(lambda x: x)
  cpu_only.def_abstract_eval(lambda x: x)
  mlir.register_lowering(cpu_only, lambda ctx, x: [x], platform="cpu")
  fn = jax.jit(lambda x: cpu_only.bind(x) * 2)
  args = (jax.ShapeDtypeStruct((3,), "float32"),)
  assert lowering.export(fn, args, "cpu", "the test step").platforms == ("cpu",)
  with pytest.raises(lowering.LoweringError, match="op 'classic_test_cpu_only_op' has no tpu lowering"):
    lowering.export(fn, args, "tpu", "the test step")
  with pytest.raises(lowering.LoweringError, match="the test step does not lower for cuda and tpu: "
                                                   "op 'classic_test_cpu_only_op' has no cuda or tpu lowering"):
    lowering.export(fn, args, ("cuda", "tpu"), "the test step")
