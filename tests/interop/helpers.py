"""Shared helpers of the interop tests: random-but-realistic weights, compiled classic forward."""

from __future__ import annotations

import jax
import numpy as np

from classic import models

ATOL = 1e-4


def classic_logits(config, variables, x: np.ndarray) -> np.ndarray:
  """The converted module's eval logits, compiled without XLA's expensive passes (compile time
  dominates on 2 cores)."""
  module = models.build(config.model)
  f = lambda v, x: module.apply(v, x, train=False)  # noqa: E731
  compiled = jax.jit(f).lower(variables, x).compile(
      compiler_options={"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True})
  return np.asarray(compiled(variables, x))


def normalise(config, images: np.ndarray) -> np.ndarray:
  """0-255 RGB images as the converted config's preprocessing feeds them to the net."""
  return ((images - np.asarray(config.mean, np.float32)) / np.asarray(config.std, np.float32))


def assert_same_logits(ours: np.ndarray, reference: np.ndarray, what: str) -> float:
  diff = float(np.abs(ours - reference).max())
  print(f"{what}: max |delta| {diff:.2e} (logits up to {np.abs(reference).max():.2f})")
  assert ours.shape == reference.shape
  assert diff <= ATOL, f"{what}: max |delta| {diff}"
  np.testing.assert_array_equal(ours.argmax(-1), reference.argmax(-1))
  return diff


def images(n: int, size: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def resnet18_state_dict(classes: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
  """torchvision resnet18's names and shapes with random numpy values (no torch needed)."""
  rng = np.random.default_rng(seed)
  sd: dict[str, np.ndarray] = {}

  def conv(name, cout, cin, k):
    sd[f"{name}.weight"] = rng.normal(0, np.sqrt(2 / (cin * k * k)), (cout, cin, k, k)).astype("f")

  def bn(name, c):
    sd[f"{name}.weight"] = rng.uniform(0.5, 1.5, c).astype("f")
    sd[f"{name}.bias"] = rng.normal(0, 0.2, c).astype("f")
    sd[f"{name}.running_mean"] = rng.normal(0, 0.2, c).astype("f")
    sd[f"{name}.running_var"] = rng.uniform(0.5, 1.5, c).astype("f")
    sd[f"{name}.num_batches_tracked"] = np.array(0)

  conv("conv1", 64, 3, 7)
  bn("bn1", 64)
  cin = 64
  for i in range(4):
    width = 64 * 2**i
    for b in range(2):
      p = f"layer{i + 1}.{b}"
      conv(f"{p}.conv1", width, cin if b == 0 else width, 3)
      bn(f"{p}.bn1", width)
      conv(f"{p}.conv2", width, width, 3)
      bn(f"{p}.bn2", width)
      if b == 0 and i > 0:
        conv(f"{p}.downsample.0", width, cin, 1)
        bn(f"{p}.downsample.1", width)
    cin = width
  sd["fc.weight"] = rng.normal(0, 0.05, (classes, 512)).astype("f")
  sd["fc.bias"] = rng.normal(0, 0.1, classes).astype("f")
  return sd
