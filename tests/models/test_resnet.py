"""ResNet v1 / plain / pre-activation v2: layouts, parameter counts of the papers, shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from classic import models
from configs import resnet as resnet_configs


def n_params(config, size):
  module = models.build(config.model)
  shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, size, size, 3))))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["params"]))


# He et al. 2015 Table 6 (CIFAR-10, option A): 0.27M, 0.46M, 0.66M, 0.85M, 1.7M, 19.4M.
@pytest.mark.parametrize("variant,millions", [("resnet20", 0.27), ("resnet32", 0.46), ("resnet44", 0.66),
                                              ("resnet56", 0.85), ("resnet110", 1.7),
                                              pytest.param("resnet1202", 19.4, marks=pytest.mark.slow)])
def test_cifar_param_counts_match_paper(variant, millions):
  config = resnet_configs.get_config(variant)
  assert round(n_params(config, 32) / 1e6, 2 if millions < 1 else 1) == millions


# He et al. 2016 Table 2 / §4: pre-activation ResNet-164 1.7M.
def test_preact164_param_count_matches_paper():
  assert round(n_params(resnet_configs.get_config("preact164"), 32) / 1e6, 1) == 1.7


@pytest.mark.parametrize("depth,count", [(18, 11_689_512), (34, 21_797_672), (50, 25_557_032),
                                         (101, 44_549_160), (152, 60_192_808)])
def test_imagenet_param_counts(depth, count):
  # The canonical ImageNet counts (option B), as every reimplementation of He et al. 2015 Table 1 has.
  assert n_params(resnet_configs.get_config(f"resnet{depth}"), 224) == count


def test_imagenet_option_a_twins_have_the_plain_nets_counts_and_the_degradation_sweep_pairs_them():
  """He et al. 2015 Table 2 / Fig. 4: plain-18/34 against residual nets with option A, "no extra
  parameter compared to the plain counterparts"; resnet18/34 keep option B (Table 3)."""
  from classic.models import counts
  from launch import sweep
  for depth, plain_count in ((18, 11_515_688), (34, 21_623_848)):
    plain, twin = (resnet_configs.get_config(v) for v in (f"plain{depth}", f"resnet{depth}_a"))
    assert twin.model.shortcut == "A" and twin.model.residual and not plain.model.residual
    totals = [counts.totals(models.build(c.model), (1, 224, 224, 3)) for c in (plain, twin)]
    assert totals[0] == totals[1] and totals[0]["params"] == plain_count
  from tests.conftest import REPO
  runs = [r["config"].split(":")[1] for r in sweep.load(str(REPO / "launch/sweeps/degradation.py"))]
  assert runs[-4:] == ["plain18", "resnet18_a", "plain34", "resnet34_a"]


# The deepest variants (1,202 and 1,001 layers) take 15-20 s each to trace: `-m slow`.
@pytest.mark.parametrize("variant", [pytest.param(v, marks=pytest.mark.slow) if v in ("resnet1202", "preact1001")
                                     else v for v in sorted(resnet_configs.VARIANTS)])
def test_every_variant_builds_with_the_right_output_shape(variant):
  config = resnet_configs.get_config(variant)
  size = 32 if config.model.stem == "cifar" else 64  # small input: shapes only, fast
  module = models.build(config.model)
  out = jax.eval_shape(lambda: module.init_with_output(
      jax.random.key(0), jnp.zeros((2, size, size, 3)), train=True, mutable=True)[0])
  assert out.shape == (2, config.model.num_classes)


def test_plain_net_has_the_same_layers_without_shortcuts():
  residual = resnet_configs.get_config("resnet20")
  plain = resnet_configs.get_config("plain20")
  # Option A shortcuts have no parameters: the plain net's parameter count is identical.
  assert n_params(residual, 32) == n_params(plain, 32)
  x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  m_res, m_plain = models.build(residual.model), models.build(plain.model)
  variables = m_res.init(jax.random.key(0), x)
  assert not np.allclose(m_res.apply(variables, x), m_plain.apply(variables, x))


@pytest.mark.parametrize("shortcut,extra", [("A", 0), ("B", 2), ("C", 9)])
def test_shortcut_options_add_projections(shortcut, extra):
  config = resnet_configs.get_config("resnet20")
  config.model.shortcut = shortcut
  module = models.build(config.model)
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  projections = [k for k in jax.tree_util.tree_flatten_with_path(variables["params"])[0]
                 if "proj" in jax.tree_util.keystr(k[0]) and "kernel" in jax.tree_util.keystr(k[0])]
  assert len(projections) == extra


def test_ghost_batchnorm_normalises_each_group_alone():
  from classic.models.layers import BatchNorm
  x = jnp.concatenate([jnp.zeros((4, 1, 1, 2)), 10 + jnp.ones((4, 1, 1, 2)) * jnp.arange(4)[:, None, None, None]])
  bn = BatchNorm(group_size=4)
  variables = bn.init(jax.random.key(0), x, train=True)
  y, _ = bn.apply(variables, x, train=True, mutable=["batch_stats"])
  # Second group normalised on its own: zero mean, unit variance within it; first group all zeros.
  np.testing.assert_allclose(y[4:].mean(), 0.0, atol=1e-5)
  np.testing.assert_allclose(y[:4], 0.0, atol=1e-5)
  y_global, _ = BatchNorm().apply(variables, x, train=True, mutable=["batch_stats"])
  assert not np.allclose(y_global[:4], 0.0)


def test_unknown_depth_fails_clearly():
  config = resnet_configs.get_config("resnet20")
  config.model.depth = 21
  with pytest.raises(ValueError, match="6n\\+2"):
    models.build(config.model).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


@pytest.mark.parametrize("variant,overrides", [("resnet20", {}),
                                               pytest.param("preact34", {"num_classes": 10}, marks=pytest.mark.slow),
                                               pytest.param("resnet50", {"num_classes": 10}, marks=pytest.mark.slow)])
def test_scan_blocks_computes_the_same_function(variant, overrides):
  """`scan_blocks=True` runs a stage's identical blocks as one nn.scan (compile time of deep nets);
  with the per-block variables stacked by `scan_params` it gives the same logits and BN updates."""
  from classic.models.resnet import scan_params
  config = resnet_configs.get_config(variant)
  x = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
  plain = models.build(config.model, **overrides)
  scanned = models.build(config.model, scan_blocks=True, **overrides)
  variables = plain.init(jax.random.key(0), x[:1])
  shapes = jax.eval_shape(lambda: scanned.init(jax.random.key(0), x[:1]))
  assert any("to" in name for name in shapes["params"])  # some stage really is scanned
  stacked = scan_params(variables, shapes)
  assert jax.tree.structure(stacked) == jax.tree.structure(shapes)
  y_plain, upd_plain = plain.apply(variables, x, train=True, mutable=["batch_stats"])
  y_scan, upd_scan = scanned.apply(stacked, x, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(y_scan, y_plain, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(upd_scan), jax.tree.leaves(scan_params(upd_plain, upd_scan))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_preact_imagenet_takes_stage_1s_activation_from_the_stem():
  """He et al. 2016 appendix / fb.resnet.torch preresnet.lua: conv1-BN-ReLU-pool, then stage 1's first
  unit without a BN-ReLU of its own; CIFAR's bare 3x3 stem leaves it to that unit."""
  imagenet = jax.eval_shape(lambda: models.build(models.config("preact50")).init(
      jax.random.key(0), jnp.zeros((1, 64, 64, 3))))["params"]
  assert "stem_bn" in imagenet and "preact_bn" not in imagenet["stage1_block1"]
  assert all("preact_bn" in imagenet[f"stage{s}_block1"] for s in (2, 3, 4))
  assert "preact_bn" in imagenet["stage1_block2"]
  cifar = jax.eval_shape(lambda: models.build(models.config("preact164")).init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3))))["params"]
  assert "preact_bn" in cifar["stage1_block1"] and "stem_bn" not in cifar
  # 25,549,480 with the extra 64-channel BN (scale, bias) this layout once had
  assert sum(int(np.prod(v.shape)) for v in jax.tree.leaves(imagenet)) == 25_549_352
