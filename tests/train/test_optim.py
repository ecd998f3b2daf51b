"""Optimizer pieces the papers specify beyond optax's own: ZFNet's filter renormalisation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from classic.train import optim
from configs import zfnet


def rms_per_filter(kernel):
  return np.sqrt(np.mean(np.square(np.asarray(kernel)), axis=(0, 1, 2)))


def test_filters_above_the_radius_are_renormalised_to_it_and_the_rest_left_alone():
  rng = np.random.default_rng(0)
  kernel = rng.normal(0, 0.05, (7, 7, 3, 6)).astype(np.float32)
  kernel[..., :2] *= 10  # RMS ~0.5: above the radius
  params = {"conv1": {"kernel": jnp.asarray(kernel), "bias": jnp.ones(6)},
            "fc": {"kernel": jnp.full((8, 4), 3.0)}}
  updates = jax.tree.map(lambda p: 0.01 * jnp.ones_like(p), params)
  tx = optim.renormalize_filters(0.1)
  out, _ = tx.update(updates, tx.init(params), params)
  new = jax.tree.map(lambda p, u: p + u, params, out)
  rms = rms_per_filter(new["conv1"]["kernel"])
  np.testing.assert_allclose(rms[:2], 0.1, rtol=1e-5)
  np.testing.assert_allclose(new["conv1"]["kernel"][..., 2:], kernel[..., 2:] + 0.01, rtol=1e-6)
  # only convolution filters: biases and dense kernels take their updates unchanged
  np.testing.assert_array_equal(out["conv1"]["bias"], updates["conv1"]["bias"])
  np.testing.assert_array_equal(out["fc"]["kernel"], updates["fc"]["kernel"])
  with pytest.raises(ValueError, match="needs the parameters"):
    tx.update(updates, tx.init(params))


def test_the_zfnet_recipe_renormalises_after_every_step():
  config = zfnet.get_config("zfnet")
  assert config.optimizer.filter_radius == 0.1
  tx, _ = optim.create(config)
  kernel = jnp.full((7, 7, 3, 96), 0.3)   # every filter's RMS 0.3
  params = {"conv1": {"kernel": kernel}}
  state = tx.init(params)
  grads = {"conv1": {"kernel": jnp.zeros_like(kernel)}}
  updates, state = tx.update(grads, state, params)
  np.testing.assert_allclose(rms_per_filter(params["conv1"]["kernel"] + updates["conv1"]["kernel"]), 0.1,
                             rtol=1e-5)


def test_the_scanned_k_step_call_matches_k_single_steps():
  """Off the CPU kernels (what GPUs and TPUs run), steps_per_call=K is one lax.scan over K staged
  batches. On XLA:CPU its kernels differ from the single step's in float order only: checked here to
  float tolerance (the CPU path itself runs K single steps and is bitwise, tests/train/test_main.py)."""
  import jax
  import numpy as np

  from classic import platform
  from classic.data.pipeline import Pipeline
  from classic.train import mesh as mesh_lib, setup
  from configs import common
  c = common.load("configs/lenet.py:digits")
  c.steps_per_call = 4
  mesh = mesh_lib.make_mesh()
  batches = [Pipeline(c, train=True).train_batch(s) for s in range(4)]
  with platform.use_cpu_kernels(False):
    program = setup.build(c, mesh, 1)
    assert program.steps_fn is not None and program.abstract_batch(64, 4)["image"].shape == (4, 64, 32, 32, 1)
    state = program.init()
    singles = []
    for b in batches:
      state, m = program.step_fn(state, mesh_lib.global_batch(mesh, b))
      singles.append(float(m["train/loss"]))
    state2, stacked = program.steps_fn(program.init(), mesh_lib.global_batches(mesh, batches))
  assert stacked["train/loss"].shape == (4,) and int(state2.step) == 4
  np.testing.assert_allclose(np.asarray(stacked["train/loss"]), singles, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(state2.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
