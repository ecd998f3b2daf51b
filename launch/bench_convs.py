r"""The convolutions alone: ResNet-20's 19 3x3 convolutions as one chain, forward + backward, in JAX and
(where torch is installed) PyTorch, and one convolution's three passes per stage shape in JAX.

  python -m launch.bench_convs [--batch=128] [--reps=10] [--json]
  CLASSIC_XLA_DEFAULTS=1 python -m launch.bench_convs     # XLA's own CPU defaults (YNNPACK convolutions)

It separates the convolution library from the rest of the train step (docs/performance.md): JAX runs
with classic's CPU flags (mesh.cpu_performance_flags) unless CLASSIC_XLA_DEFAULTS=1. Times are medians
in ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

# (in, out, stride) of ResNet-20's convolutions after the 3->16 stem (He et al. 2015 §4.2)
CHAIN = [(16, 16, 1)] * 6 + [(16, 32, 2)] + [(32, 32, 1)] * 5 + [(32, 64, 2)] + [(64, 64, 1)] * 5
STAGES = [(32, 16), (16, 32), (8, 64)]  # (side, channels) of the three stages


def _median_ms(fn, reps: int) -> float:
  fn()
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return 1e3 * statistics.median(times)


def jax_convs(batch: int, reps: int) -> dict:
  from classic.train import mesh
  mesh.cpu_performance_flags()
  import jax
  import jax.numpy as jnp
  import numpy as np

  def conv(x, w, stride=1):
    return jax.lax.conv_general_dilated(x, w, (stride, stride), ((1, 1), (1, 1)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def chain_loss(ws, x):
    x = conv(x, ws[0])
    for w, (_, _, stride) in zip(ws[1:], CHAIN):
      x = conv(x, w, stride)
    return jnp.sum(x * x)

  rng = np.random.default_rng(0)
  ws = [jnp.asarray(rng.normal(0, 0.1, (3, 3, 3, 16)), jnp.float32)] + [
      jnp.asarray(rng.normal(0, 0.1, (3, 3, i, o)), jnp.float32) for i, o, _ in CHAIN]
  x = jnp.asarray(rng.normal(size=(batch, 32, 32, 3)), jnp.float32)
  grad = jax.jit(jax.grad(chain_loss))
  result = {"chain_ms": _median_ms(lambda: jax.block_until_ready(grad(ws, x)), reps)}
  for side, c in STAGES:
    a = jnp.asarray(rng.normal(size=(batch, side, side, c)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, c, c)), jnp.float32)
    forward = jax.jit(conv)
    input_grad = jax.jit(lambda w, g: jax.vjp(lambda v: conv(v, w), a)[1](g)[0])
    weight_grad = jax.jit(lambda a, g: jax.vjp(lambda v: conv(a, v), w)[1](g)[0])
    result[f"{side}x{side}x{c}"] = {
        "forward_ms": _median_ms(lambda: jax.block_until_ready(forward(a, w)), reps),
        "input_grad_ms": _median_ms(lambda: jax.block_until_ready(input_grad(w, a)), reps),
        "weight_grad_ms": _median_ms(lambda: jax.block_until_ready(weight_grad(a, a)), reps)}
  return result


def torch_chain(batch: int, reps: int) -> float | None:
  try:
    import torch
  except ImportError:
    return None
  convs = [torch.nn.Conv2d(3, 16, 3, padding=1, bias=False)] + [
      torch.nn.Conv2d(i, o, 3, stride=s, padding=1, bias=False) for i, o, s in CHAIN]
  net = torch.nn.Sequential(*convs).to(memory_format=torch.channels_last)
  x = torch.randn(batch, 3, 32, 32).to(memory_format=torch.channels_last)

  def step():
    net.zero_grad(set_to_none=True)
    y = net(x)
    (y * y).sum().backward()
  return _median_ms(step, reps)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--reps", type=int, default=10)
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args()
  result = {"batch": args.batch, "jax": jax_convs(args.batch, args.reps),
            "torch_chain_ms": torch_chain(args.batch, args.reps)}
  if args.json:
    print(json.dumps(result))
    return
  print(f"ResNet-20 conv chain, forward + backward: JAX {result['jax']['chain_ms']:.1f} ms, PyTorch "
        + (f"{result['torch_chain_ms']:.1f} ms" if result["torch_chain_ms"] else "not installed"))
  for shape in (f"{side}x{side}x{c}" for side, c in STAGES):
    t = result["jax"][shape]
    print(f"JAX 3x3 conv {shape}: forward {t['forward_ms']:.2f}, input grad {t['input_grad_ms']:.2f}, "
          f"weight grad {t['weight_grad_ms']:.2f} ms")


if __name__ == "__main__":
  main()
