r"""A model's convolutions alone, forward + backward, in JAX (XLA) and in PyTorch (oneDNN), side by side.

  python -m launch.benchmarks.convs --config=configs/resnet.py:resnet20 [--batch=128] [--reps=10] [--json]
  CLASSIC_CPU_KERNELS=0 python -m launch.benchmarks.convs ...     # XLA's own CPU defaults (YNNPACK convolutions)

The convolutions are read from the model's training-mode forward pass (its jaxpr), so the set is exactly
the one the train step runs: every convolution's forward, input gradient (not for the stem, whose input
needs none) and weight gradient, each on its own random operands. Their time is a floor under the train
step's, whatever BatchNorm, ReLU and the optimizer cost on top, so `ceiling_img_per_s` bounds the step's
images/s with these kernels. docs/performance.md compares it with PyTorch's whole step.

JAX runs classic's convolution (layers.conv_general_dilated: XLA's, or matrix products for 1x1 on CPU)
with classic's CPU flags (classic.platform.set_up_xla) unless CLASSIC_CPU_KERNELS=0. PyTorch (where
installed) runs the same shapes channels-last through aten.convolution_backward. Times are medians in ms.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics

PASSES = ("forward", "input_grad", "weight_grad")


@dataclasses.dataclass(frozen=True)
class ConvCall:
  """One convolution of the model: NHWC input, HWIO kernel (classic's layout), as in its jaxpr."""
  input_shape: tuple[int, ...]
  kernel_shape: tuple[int, ...]
  strides: tuple[int, ...]
  padding: tuple[tuple[int, int], ...]
  dilation: tuple[int, ...]
  groups: int
  needs_input_grad: bool  # False for the stem: the image needs no gradient

  def output_shape(self) -> tuple[int, ...]:
    spatial = []
    for size, k, s, (lo, hi), d in zip(self.input_shape[1:3], self.kernel_shape[:2], self.strides,
                                       self.padding, self.dilation):
      spatial.append((size + lo + hi - d * (k - 1) - 1) // s + 1)
    return (self.input_shape[0], *spatial, self.kernel_shape[3])

  def macs(self) -> int:
    """Multiply-accumulates of the forward pass (each gradient pass costs the same)."""
    kh, kw, cin, cout = self.kernel_shape
    n, oh, ow, _ = self.output_shape()
    return n * oh * ow * cout * kh * kw * cin


def model_convs(config, batch: int) -> list[ConvCall]:
  """The convolutions of the config's model in training mode, at this batch size."""
  import jax
  import jax.numpy as jnp
  from jax.extend import core as jex_core

  from classic import models
  model = models.build(config.model)
  shape = (batch, config.image_size, config.image_size, config.channels)
  variables = jax.eval_shape(lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)},
                                                jnp.zeros((1,) + shape[1:]), train=True))
  closed = jax.make_jaxpr(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats", "aux"],
                                                   rngs={"dropout": jax.random.key(2)}))(
      variables, jax.ShapeDtypeStruct(shape, jnp.float32))
  image = closed.jaxpr.invars[-1]
  convs: list[ConvCall] = []

  def walk(jaxpr) -> None:
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "scan":  # a scanned stage runs its convolutions more times than written
        raise ValueError("bench_convs needs scan_blocks=False (it times each convolution the step runs)")
      if eqn.primitive.name == "conv_general_dilated":
        p = eqn.params
        dn = p["dimension_numbers"]
        if (tuple(dn.lhs_spec), tuple(dn.rhs_spec)) != ((0, 3, 1, 2), (3, 2, 0, 1)):
          raise ValueError(f"bench_convs handles NHWC/HWIO convolutions, not {dn}")
        if any(d != 1 for d in p["lhs_dilation"]) or p["batch_group_count"] != 1:
          raise ValueError("bench_convs handles forward convolutions only (no lhs dilation, batch groups)")
        lhs, rhs = eqn.invars
        convs.append(ConvCall(tuple(lhs.aval.shape), tuple(rhs.aval.shape), tuple(p["window_strides"]),
                          tuple(tuple(pad) for pad in p["padding"]), tuple(p["rhs_dilation"]),
                          p["feature_group_count"], needs_input_grad=lhs is not image))
      for value in eqn.params.values():
        for sub in value if isinstance(value, (tuple, list)) else (value,):
          if isinstance(sub, jex_core.ClosedJaxpr):
            walk(sub.jaxpr)
          elif isinstance(sub, jex_core.Jaxpr):
            walk(sub)

  walk(closed.jaxpr)
  if not convs:
    raise ValueError(f"{config.model.name} has no convolutions")
  return convs


def _median_ms(fn, reps: int) -> float:
  from classic.train.timing import call_times
  return 1e3 * statistics.median(call_times(fn, reps, warmup=1))


def jax_times(convs: list[ConvCall], reps: int) -> dict:
  """Median ms of all the convolutions' passes, each pass alone and the three in one program."""
  from classic import platform
  platform.set_up_xla()
  import jax
  import jax.numpy as jnp
  import numpy as np

  from classic.models import layers

  def conv(c: ConvCall, x, w):  # what the model runs: XLA's convolution, or a matrix product for 1x1 on CPU
    return layers.conv_general_dilated(x, w, c.strides, c.padding, rhs_dilation=c.dilation,
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                       feature_group_count=c.groups)

  rng = np.random.default_rng(0)
  operands = [tuple(jnp.asarray(rng.normal(size=s), jnp.float32)
                    for s in (c.input_shape, c.kernel_shape, c.output_shape())) for c in convs]

  def forward(ops):
    return [conv(c, x, w) for c, (x, w, _) in zip(convs, ops)]

  def input_grad(ops):
    return [jax.vjp(lambda v, c=c, w=w: conv(c, v, w), x)[1](g)[0]
            for c, (x, w, g) in zip(convs, ops) if c.needs_input_grad]

  def weight_grad(ops):
    return [jax.vjp(lambda v, c=c, x=x: conv(c, x, v), w)[1](g)[0] for c, (x, w, g) in zip(convs, ops)]

  def all_passes(ops):
    return forward(ops), input_grad(ops), weight_grad(ops)

  def timed(fn) -> float:
    compiled = jax.jit(fn)
    return _median_ms(lambda: jax.block_until_ready(compiled(operands)), reps)

  return {"total_ms": timed(all_passes), **{f"{name}_ms": timed(fn) for name, fn in
                                            zip(PASSES, (forward, input_grad, weight_grad))}}


def torch_times(convs: list[ConvCall], reps: int) -> dict | None:
  """The same passes in PyTorch (oneDNN, channels-last), or None without torch."""
  try:
    import torch
  except ImportError:
    return None
  ops = []
  for c in convs:
    if any(lo != hi for lo, hi in c.padding):
      raise ValueError(f"PyTorch has no asymmetric padding {c.padding}")
    n, h, w, cin = c.input_shape
    kh, kw, cin_g, cout = c.kernel_shape
    _, oh, ow, _ = c.output_shape()
    x = torch.randn(n, cin, h, w).to(memory_format=torch.channels_last)
    k = torch.randn(cout, cin_g, kh, kw).to(memory_format=torch.channels_last)
    g = torch.randn(n, cout, oh, ow).to(memory_format=torch.channels_last)
    ops.append((c, x, k, g))

  def backward(mask):
    with torch.no_grad():
      for c, x, k, g in ops:
        if mask[0] and not c.needs_input_grad and not mask[1]:
          continue
        torch.ops.aten.convolution_backward(
            g, x, k, None, list(c.strides), [lo for lo, _ in c.padding], list(c.dilation), False, [0, 0],
            c.groups, [mask[0] and c.needs_input_grad, mask[1], False])

  def forward():
    with torch.no_grad():
      for c, x, k, _ in ops:
        torch.nn.functional.conv2d(x, k, None, c.strides, [lo for lo, _ in c.padding], c.dilation, c.groups)

  def all_passes():
    forward()
    backward((True, True))

  return {"total_ms": _median_ms(all_passes, reps), "forward_ms": _median_ms(forward, reps),
          "input_grad_ms": _median_ms(lambda: backward((True, False)), reps),
          "weight_grad_ms": _median_ms(lambda: backward((False, True)), reps)}


def run(config, batch: int, reps: int) -> dict:
  convs = model_convs(config, batch)
  macs = sum(c.macs() for c in convs)
  train_macs = sum((3 if c.needs_input_grad else 2) * c.macs() for c in convs)
  result = {"variant": config.variant, "batch": batch, "convolutions": len(convs),
            "conv_macs_per_image": macs // batch, "jax": jax_times(convs, reps), "torch": torch_times(convs, reps)}
  from classic.train.timing import matmul_peak
  peak = matmul_peak()
  for side in ("jax", "torch"):
    if result[side]:
      seconds = result[side]["total_ms"] / 1e3
      result[side].update(ceiling_img_per_s=batch / seconds,
                          fraction_of_matmul_peak=2 * train_macs / seconds / peak)
  result["matmul_peak_flops_per_s"] = peak
  if result["torch"]:
    result["jax_over_torch_time"] = result["jax"]["total_ms"] / result["torch"]["total_ms"]
  return result


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", default="configs/resnet.py:resnet20", help="a classic config and variant")
  parser.add_argument("--batch", type=int, default=None, help="default: the config's batch size")
  parser.add_argument("--reps", type=int, default=10)
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args()
  from configs import common
  config = common.load(args.config)
  result = run(config, args.batch or config.batch_size, args.reps)
  if args.json:
    print(json.dumps(result))
    return
  print(f"{result['variant']}: {result['convolutions']} convolutions, batch {result['batch']}, "
        f"{result['conv_macs_per_image'] / 1e6:.1f} M MACs per image (forward)")
  print(f"{'':8} {'total':>9} {'forward':>9} {'input grad':>11} {'weight grad':>12} {'ceiling img/s':>14} "
        f"{'of peak':>8}")
  for side, label in (("jax", "JAX"), ("torch", "PyTorch")):
    t = result[side]
    if t is None:
      print(f"{label:8} not installed")
      continue
    print(f"{label:8} {t['total_ms']:9.1f} {t['forward_ms']:9.1f} {t['input_grad_ms']:11.1f} "
          f"{t['weight_grad_ms']:12.1f} {t['ceiling_img_per_s']:14.1f} {t['fraction_of_matmul_peak']:8.2f}")
  if "jax_over_torch_time" in result:
    print(f"JAX / PyTorch time: {result['jax_over_torch_time']:.2f}")


if __name__ == "__main__":
  main()
