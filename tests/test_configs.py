"""Every config file's variants resolve; unknown ones fail with the valid list; overrides are typed."""

import importlib

import ml_collections
import pytest
from absl import flags
from ml_collections import config_flags

from classic import models
from configs import common

CONFIG_FILES = common.config_files()
COMMON_FIELDS = ("dataset", "batch_size", "train_steps", "seed", "eval_every", "checkpoint_every",
                 "optimizer", "model")


def variants(family):
  module = importlib.import_module(f"configs.{family}")
  with pytest.raises(ValueError) as info:
    module.get_config("no_such_variant")
  listed = str(info.value).split("Valid variants: ")[1].rstrip(".").split(", ")
  assert listed == list(module.VARIANTS)
  return module, listed


@pytest.mark.parametrize("family", CONFIG_FILES)
def test_every_variant_resolves_with_the_common_fields_and_a_known_model(family):
  module, names = variants(family)
  assert names
  for name in names:
    config = module.get_config(name)
    for field in COMMON_FIELDS:
      assert field in config, f"{family}:{name} lacks {field}"
    assert config.model.name in models.names()
    models.build(config.model)  # every model field the config sets is a field of the module


@pytest.mark.parametrize("family", CONFIG_FILES)
def test_config_model_fields_are_the_module_fields_both_ways(family):
  """A recipe starts from its model variant's full field set: every module field is overridable from
  the command line (none is missing) and the config restates nothing the module lacks."""
  module, names = variants(family)
  for name in names:
    config = module.get_config(name)
    fields = models.config_fields(models.get_class(config.model.name))
    assert set(config.model) - {"name"} == set(fields), f"{family}:{name}"
    assert all(value is not None for value in config.model.values()), f"{family}:{name}"


def test_every_model_variant_has_every_field_and_builds():
  import dataclasses
  names = models.variant_names()
  assert {"resnet50", "plain56", "preact1001", "googlenet_torchvision", "inception_resnet_v2_tf_slim",
          "vgg16_1x1_bn", "alexnet_1tower", "lenet5", "highway_cifar", "nin_imagenet"} <= set(names)
  for name in names:
    block = models.config(name)
    module = models.build(block)
    for field, value in block.items():
      if field != "name":
        assert getattr(module, field) == value, (name, field)
    assert set(block) - {"name"} == {f.name for f in dataclasses.fields(module) if f.init} - {
        "parent", "name", "dtype"}


def test_model_variants_overrides_and_their_errors():
  assert models.config("resnet50", stride_on_3x3=True).stride_on_3x3 is True
  with pytest.raises(ValueError, match=r"Unknown model variant 'resnet51'.*Did you mean .*resnet50"):
    models.config("resnet51")
  with pytest.raises(ValueError, match="did you mean 'stride_on_3x3'"):
    models.config("resnet50", stride_on_3x33=True)


def test_every_module_field_is_one_override_away():
  """The README's promise for fields that configs once restated by hand and missed."""
  c = parse("--config=configs/resnet.py:resnet50", "--config.model.stride_on_3x3=True",
            "--config.model.zero_init_last_bn=True", "--config.model.bn_epsilon=1e-3",
            "--config.model.width=32")
  assert (c.model.stride_on_3x3, c.model.zero_init_last_bn, c.model.bn_epsilon, c.model.width) == (
      True, True, 1e-3, 32)
  c = parse("--config=configs/vgg.py:D", "--config.model.layers=(((64,3),),((128,3),))")
  assert models.build(c.model).layers == (((64, 3),), ((128, 3),))


def test_unknown_variant_lists_the_valid_ones_and_the_closest():
  from configs import resnet
  with pytest.raises(ValueError, match=r"Unknown variant 'resnet21'.*Did you mean .*resnet20.*Valid variants: .*plain34"):
    resnet.get_config("resnet21")


def test_unknown_model_lists_known_models():
  with pytest.raises(ValueError, match="Known models: .*resnet"):
    models.build(ml_collections.ConfigDict({"name": "resnett"}))


def test_unknown_model_field_suggests_the_nearest():
  with pytest.raises(ValueError, match="did you mean 'shortcut'"):
    models.build(ml_collections.ConfigDict({"name": "resnet", "shortcuts": "A"}))


def parse(*argv):
  """Parses argv as classic.main does (config_flags reads the overrides from the argv it is given)."""
  argv = ["prog", *argv]
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, flag_values=flag_values, lock_config=True, sys_argv=argv)
  flag_values(argv)
  return flag_values.config


def test_command_line_overrides_are_typed():
  c = parse("--config=configs/resnet.py:plain20", "--config.optimizer.lr=0.2",
            "--config.model.residual=True", "--config.optimizer.boundaries=(100,200)")
  assert c.variant == "resnet:plain20" and c.optimizer.lr == 0.2 and c.model.residual is True
  assert tuple(c.optimizer.boundaries) == (100, 200)
  with pytest.raises(flags.IllegalFlagValueError):
    parse("--config=configs/resnet.py:plain20", "--config.batch_size=big")


@pytest.mark.parametrize("family", CONFIG_FILES)
def test_config_json_round_trip_builds_the_same_module(family):
  """--mode=eval rebuilds the model from config.json, where tuples (even nested) come back as lists."""
  import dataclasses
  import json
  module, names = variants(family)
  for name in names:
    config = module.get_config(name)
    again = ml_collections.ConfigDict(json.loads(config.to_json_best_effort()))
    a, b = models.build(config.model), models.build(again.model)
    fields = [f.name for f in dataclasses.fields(a) if f.init and f.name not in ("parent", "name")]
    assert {f: getattr(a, f) for f in fields} == {f: getattr(b, f) for f in fields}, f"{family}:{name}"
