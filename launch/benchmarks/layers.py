r"""classic's CPU forms of BatchNorm, max pooling and 1x1 convolutions against the textbook ones they replace.

  python -m launch.benchmarks.layers [--reps=10] [--json]

Each row times one jitted function both ways on the shapes docs/performance.md quotes (ResNet-50 at
batch 32 and CIFAR ResNet-20 at batch 128), with classic's CPU flags, and prints the medians in ms:
- BN statistics: the mean and variance as `jnp.mean` does them, against `cpu_kernels.batch_sum`;
- max pool, forward and backward: `flax.linen.max_pool` (XLA's select_and_scatter) against
  `layers.max_pool`;
- a 1x1 convolution's kernel gradient: `lax.conv_general_dilated` against `layers.conv_general_dilated`.
"""

from __future__ import annotations

import argparse
import json
import statistics

BN_SHAPES = [(32, 112, 112, 64), (32, 56, 56, 256), (128, 32, 32, 16)]
POOL_SHAPES = [(32, 112, 112, 64), (128, 32, 32, 16)]  # ResNet-50's stem pool; a CIFAR-sized one
POINTWISE = [(32, 56, 64, 256), (32, 28, 512, 128), (32, 7, 512, 2048)]  # batch, side, in, out


def run(reps: int) -> list[dict]:
  from classic import platform
  platform.set_up_xla()
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  import numpy as np

  from classic.train.timing import call_times
  from classic.models import cpu_kernels, layers

  rng = np.random.default_rng(0)

  def ms(fn, *args) -> float:
    compiled = jax.jit(fn)
    return 1e3 * statistics.median(call_times(lambda: jax.block_until_ready(compiled(*args)), reps, warmup=1))

  rows = []
  for shape in BN_SHAPES:
    x = jnp.asarray(rng.normal(3.0, 2.0, (1,) + shape), jnp.float32)
    axes = (1, 2, 3)
    n = x.size // shape[-1]

    def plain(v):
      mean = jnp.mean(v, axes, keepdims=True)
      return mean, jnp.mean(jnp.square(v - mean), axes, keepdims=True)

    def classic(v):
      mean = cpu_kernels.batch_sum(v, axes) / n
      return mean, cpu_kernels.batch_sum(jnp.square(v - mean), axes) / n
    rows.append({"what": "BN mean and variance", "shape": shape, "textbook_ms": ms(plain, x),
                 "classic_ms": ms(classic, x)})
  for shape in POOL_SHAPES:
    x = jnp.maximum(jnp.asarray(rng.normal(size=shape), jnp.float32), 0.0)  # after a ReLU: many ties

    def pool_grad(pool):
      return lambda v: jax.grad(lambda u: jnp.sum(pool(u, (3, 3), (2, 2), ((1, 1), (1, 1))) ** 2))(v)
    rows.append({"what": "max pool 3x3/2, forward + backward", "shape": shape,
                 "textbook_ms": ms(pool_grad(nn.max_pool), x), "classic_ms": ms(pool_grad(layers.max_pool), x)})
  for batch, side, cin, cout in POINTWISE:
    x = jnp.asarray(rng.normal(size=(batch, side, side, cin)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(batch, side, side, cout)), jnp.float32)
    w = jnp.zeros((1, 1, cin, cout), jnp.float32)

    def kernel_grad(conv):
      return lambda x, g: jax.vjp(lambda k: conv(x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")),
                                  w)[1](g)[0]
    rows.append({"what": f"1x1 conv {cin}->{cout}, kernel gradient", "shape": (batch, side, side, cin),
                 "textbook_ms": ms(kernel_grad(jax.lax.conv_general_dilated), x, g),
                 "classic_ms": ms(kernel_grad(layers.conv_general_dilated), x, g)})
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--reps", type=int, default=10)
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args()
  rows = run(args.reps)
  if args.json:
    print(json.dumps(rows))
    return
  print(f"{'':42} {'shape':>20} {'textbook ms':>12} {'classic ms':>11}")
  for r in rows:
    print(f"{r['what']:42} {'x'.join(map(str, r['shape'])):>20} {r['textbook_ms']:12.2f} {r['classic_ms']:11.2f}")


if __name__ == "__main__":
  main()
