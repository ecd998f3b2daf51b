"""The recipes' shared parts (ImageNet, the Inception recipe, CIFAR-10) and the variant lookup.

A config file defines `get_config(arg)`; `--config=configs/resnet.py:plain34` calls it with 'plain34'.
Every config starts from `base(model_variant)`: the run defaults every config has
(classic.train.defaults) and the model variant's block with every field of its module
(classic.models.config), so a recipe sets values only and any field is an override away.
"""

from __future__ import annotations

import difflib
from typing import Callable

import ml_collections

from classic import models
from classic.data import normalization
from classic.train import defaults, epochs

IMAGENET_MEAN, IMAGENET_STD = normalization.IMAGENET_MEAN, normalization.IMAGENET_STD
CIFAR_MEAN, CIFAR_STD = normalization.CIFAR_MEAN, normalization.CIFAR_STD
TF_MEAN, TF_STD = normalization.INCEPTION_MEAN, normalization.INCEPTION_STD  # [-1, 1] input scaling


def base(model_variant: str = "lenet5", **model_fields) -> ml_collections.ConfigDict:
  """The run defaults (classic.train.defaults) with the named model variant's full field set and
  its input size and channels."""
  c = defaults.defaults()
  c.model = models.config(model_variant, **model_fields)
  c.image_size, _, c.channels = models.input_shape(model_variant)
  return c


def select(arg: str | None, variants: dict[str, Callable[[], ml_collections.ConfigDict]],
           default: str, family: str) -> ml_collections.ConfigDict:
  """Returns `variants[arg]()`; an unknown name fails with the valid ones (and the closest)."""
  name = arg or default
  if name not in variants:
    close = difflib.get_close_matches(name, variants, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"Unknown variant {name!r} of configs/{family}.py.{hint} "
                     f"Valid variants: {', '.join(variants)}.")
  config = variants[name]()
  config.variant = f"{family}:{name}"
  epochs.resolve(config, epochs.TRAIN_EXAMPLES.get(config.dataset))  # for its own data; again at the start
  return config


def steps_schedule(c: ml_collections.ConfigDict, lr: float, boundaries: tuple[int, ...] = (),
                   factor: float = 0.1, *, epochs: tuple[float, ...] = ()) -> None:
  """lr multiplied by `factor` at each boundary: given in steps (`boundaries`) or in `epochs`."""
  c.optimizer.lr = lr
  c.optimizer.schedule = "steps"
  c.optimizer.boundaries = tuple(boundaries) or c.optimizer.boundaries
  c.optimizer.boundary_epochs = tuple(epochs)
  c.optimizer.factor = factor


def imagenet(model_variant: str, *, batch_size: int, train_epochs: float = 0.0, train_steps: int = 0,
             eval_every_epochs: float, augment: str = "imagenet", mean=IMAGENET_MEAN, std=IMAGENET_STD,
             eval_resize: int = 256, scale_range: tuple[int, int] | None = None,
             pca_lighting: float = 0.0) -> ml_collections.ConfigDict:
  """ImageNet (ILSVRC-2012 via TFDS): streamed, centre-crop evaluation on 'validation', 1,000 classes.
  The length in epochs (`train_epochs`) or, where the paper counts iterations, in `train_steps`."""
  c = base(model_variant)
  c.dataset = "imagenet2012"
  c.eval_split = "validation"
  c.in_memory = False
  c.augment = augment
  if scale_range:
    c.scale_range = tuple(scale_range)
  c.pca_lighting = pca_lighting
  c.eval_crop = "center"
  c.eval_resize = eval_resize
  c.mean, c.std = tuple(mean), tuple(std)
  c.batch_size = batch_size
  c.train_epochs = train_epochs
  c.train_steps = train_steps or c.train_steps
  c.log_every = 100
  c.eval_every_epochs = eval_every_epochs
  c.checkpoint_every = 2000
  return c


def inception_imagenet(model_variant: str) -> ml_collections.ConfigDict:
  """ImageNet at 299 with the recipe of Szegedy et al. 2015 ("Rethinking", §8) and 2016 (Inception-v4):
  RMSProp (decay 0.9, epsilon 1.0, momentum 0.9), lr 0.045 x 0.94 every 2 epochs, gradient clipping
  2.0, label smoothing 0.1, Polyak averaging; weight decay 4e-5 on kernels (TF-slim), [-1, 1] inputs,
  87.5 % central crop (342 -> 299) for evaluation."""
  c = imagenet(model_variant, batch_size=256, train_epochs=100, eval_every_epochs=5, augment="inception",
               mean=TF_MEAN, std=TF_STD, eval_resize=342)
  o = c.optimizer
  o.name, o.lr, o.rms_decay, o.eps, o.momentum = "rmsprop", 0.045, 0.9, 1.0, 0.9
  o.weight_decay, o.decay_params, o.grad_clip = 4e-5, "kernels", 2.0
  o.schedule, o.decay_every_epochs, o.factor = "exponential", 2, 0.94
  c.label_smoothing = 0.1
  c.ema_decay = 0.9999
  return c


def cifar10(model_variant: str, *, train_steps: int, batch_size: int = 128) -> ml_collections.ConfigDict:
  """CIFAR-10 (TFDS 'cifar10', or the JPEG archive by --config.dataset): in memory, pad-4 crop + flip."""
  c = base(model_variant)
  c.dataset = "cifar10"
  c.augment = "cifar"
  c.mean, c.std = CIFAR_MEAN, CIFAR_STD
  c.batch_size = batch_size
  c.eval_batch_size = 1000
  c.train_steps = train_steps
  c.log_every = 100
  c.eval_every = 2000
  c.checkpoint_every = 2000
  return c


def load(spec: str) -> ml_collections.ConfigDict:
  """The config of 'configs/<family>.py:<variant>' (or '<family>:<variant>'), as --config resolves it."""
  import importlib
  path, _, variant = spec.partition(":")
  family = path.removeprefix("configs/").removesuffix(".py")
  return importlib.import_module(f"configs.{family}").get_config(variant or None)


def config_files() -> list[str]:
  """Names of the family config files in configs/ (those with variants)."""
  import pathlib
  return sorted(p.stem for p in pathlib.Path(__file__).parent.glob("*.py") if p.stem not in ("__init__", "common"))


def all_variants() -> list[tuple[str, str]]:
  """(family, variant) for every named variant of every config file."""
  import importlib
  return [(f, v) for f in config_files() for v in importlib.import_module(f"configs.{f}").VARIANTS]
