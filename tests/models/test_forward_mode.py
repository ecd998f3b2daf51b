"""With the CPU kernels off (CLASSIC_CPU_KERNELS=0, always on GPU/TPU), every family is its plain
flax/lax form: forward-mode autodiff (jax.jvp, jax.jacfwd) goes through its forward pass, and its
logits are the ones the CPU kernels compute."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from classic import models, platform

# One variant per family, at the smallest input its layout allows (classes cut to keep heads small).
# Computing takes 5-70 s of compilation each on 2 CPU cores: the default suite computes LeNet-5 and
# ResNet-20 (BatchNorm's backward, the fusion barrier) and traces GoogLeNet; `-m slow` traces every
# family and computes the CASES and two Inception nets.
_TRACED = pytest.mark.slow
# The computed cases hold every CPU kernel: BatchNorm's backward and the fusion barrier (resnet20,
# vgg11_bn), 1x1 convolutions (nin_cifar's mlpconv layers), max pooling (alexnet, zfnet, nin, vgg).
CASES = [("lenet5", 32, {}), ("resnet20", 32, {}), ("alexnet", 227, {}), ("zfnet", 224, {}),
         ("nin_cifar", 32, {}), ("vgg11_bn", 64, {"adaptive_pool": 2}), ("highway_fc", 28, {})]
TRACED = [("resnet50", 32, {}), ("highway_cifar", 32, {"bn": True}),
          ("preact164", 32, {}), ("googlenet", 224, {}), ("googlenet_torchvision", 224, {}),
          ("inception_v2", 224, {}), ("inception_v3", 75, {}), ("inception_v4", 75, {}),
          ("inception_resnet_v1", 75, {}), ("inception_resnet_v2", 75, {})]


def test_the_cases_cover_every_family():
  assert {models.config(v).name for v, _, _ in CASES + TRACED} == set(models.names())


@pytest.mark.parametrize("variant, size, fields",
                         [pytest.param(*c, marks=() if c[0] == "googlenet" else _TRACED) for c in TRACED],
                         ids=[c[0] for c in TRACED])
def test_forward_mode_traces_through_the_other_families(variant, size, fields):
  module = models.build(models.config(variant, num_classes=7, **fields))
  x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
  with platform.use_cpu_kernels(False):
    variables = jax.eval_shape(lambda x: module.init(jax.random.key(0), x, train=False), x)
    for train in (False, True):
      logits = lambda v, x, s: module.apply(v, x * s, train=train, rngs={"dropout": jax.random.key(2)},
                                            mutable=["batch_stats", "aux", "intermediates"])[0]
      tangent = jax.eval_shape(lambda v, x: jax.jvp(lambda s: logits(v, x, s), (1.0,), (1.0,))[1], variables, x)
      per_scale = jax.eval_shape(lambda v, x: jax.jacfwd(lambda s: logits(v, x, s))(1.0), variables, x)
      assert tangent.shape == per_scale.shape == (2, 7)


# Computed: every family of CASES (each CPU kernel among them) and, of the traced ones, the Inception
# layer forms once (googlenet, inception_v3); the other traced nets repeat those layers at 1-2 minutes
# of compilation each, and forward mode, if it failed, would fail in their trace above.
COMPUTED_TRACED = ("googlenet", "inception_v3")


@pytest.mark.parametrize("variant, size, fields",
                         [pytest.param(*c, marks=() if c[0] in ("lenet5", "resnet20") else _TRACED)
                          for c in CASES + [t for t in TRACED if t[0] in COMPUTED_TRACED]],
                         ids=[c[0] for c in CASES] + list(COMPUTED_TRACED))
def test_jvp_and_jacfwd_through_the_forward_pass_and_the_same_logits(variant, size, fields):
  module = models.build(models.config(variant, num_classes=7, **fields))
  channels = models.input_shape(variant)[2]
  x = jax.random.normal(jax.random.key(1), (2, size, size, channels))

  def logits(variables, scale, train=False):
    return module.apply(variables, x * scale, train=train, rngs={"dropout": jax.random.key(2)},
                        mutable=["batch_stats", "aux", "intermediates"])[0]

  @jax.jit
  def plain_form():  # one compilation: the weights, and the logits with their derivative in the scale
    variables = module.init(jax.random.key(0), x, train=False)
    return (variables, *jax.jvp(lambda s: logits(variables, s), (1.0,), (1.0,)),
            logits(variables, 1.01), logits(variables, 0.99))

  with platform.use_cpu_kernels(False):
    variables, plain, tangent, up, down = plain_form()
    # training mode (batch statistics, dropout): traced by jacfwd, not compiled again
    per_scale = jax.eval_shape(jax.jacfwd(lambda s: logits(variables, s, train=True)), 1.0)
  with platform.use_cpu_kernels(True):
    kernels = jax.jit(logits)(variables, 1.0)
  assert plain.shape == tangent.shape == per_scale.shape == (2, 7)
  scale = float(jnp.max(jnp.abs(kernels))) + 1e-6
  np.testing.assert_allclose(np.asarray(plain) / scale, np.asarray(kernels) / scale, rtol=0, atol=2e-5)
  # forward mode's d logits / d scale is the central difference of the plain forward pass
  numeric = np.asarray(up - down) / 0.02
  np.testing.assert_allclose(np.asarray(tangent), numeric, rtol=0, atol=0.05 * np.abs(numeric).max() + 1e-4)


def test_the_kernels_are_the_reason_forward_mode_fails_on_cpu():
  """What the switch is for: through the CPU kernels' custom VJPs JAX refuses forward mode."""
  module = models.build(models.config("resnet20"))
  x = jnp.ones((2, 32, 32, 3))
  variables = module.init(jax.random.key(0), x, train=False)
  with platform.use_cpu_kernels(True), pytest.raises(TypeError, match="custom_vjp"):
    jax.jvp(lambda s: module.apply(variables, x * s, train=False), (1.0,), (1.0,))


def test_the_switch_reads_the_environment(monkeypatch):
  monkeypatch.setenv(platform.ENV, "0")
  assert platform.cpu_kernels() is False
  monkeypatch.setenv(platform.ENV, "1")
  assert platform.cpu_kernels() is True
  monkeypatch.delenv(platform.ENV)
  assert platform.cpu_kernels() is (jax.default_backend() == "cpu")
  monkeypatch.setenv(platform.ENV, "yes")
  with pytest.raises(ValueError, match="CLASSIC_CPU_KERNELS must be 0 or 1"):
    platform.cpu_kernels()
