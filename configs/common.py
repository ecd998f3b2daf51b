"""Fields every config has, and the variant lookup each `configs/<family>.py` uses.

A config file defines `get_config(arg)`; `--config=configs/resnet.py:plain34` calls it with 'plain34'.
Every field below exists in every config, so `--config.x=v` overrides are typed and checked the same
way for every family.
"""

from __future__ import annotations

import difflib
from typing import Callable

import ml_collections

# ImageNet channel statistics on the 0-255 scale (the values torchvision and most papers' code use).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
CIFAR_MEAN = (125.31, 122.95, 113.87)
CIFAR_STD = (62.99, 62.09, 66.70)


def base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.variant = ""
  # Data. `dataset`: 'digits' (scikit-learn, bundled), a TFDS name ('mnist', 'cifar10', 'cifar100',
  # 'imagenet2012', ...), or an image folder (a directory or .tar.gz with split/label/*.jpg|png).
  c.dataset = "digits"
  c.data_dir = ""              # TFDS data_dir; '' = TFDS's default (~/tensorflow_datasets)
  c.cache_dir = ""             # decoded in-memory copies of small data sets; '' = ~/.cache/classic
  c.train_split = "train"
  c.eval_split = "test"
  c.image_size = 32            # side of the (square) network input
  c.channels = 3               # input channels (1 for the greyscale digit sets); checked against the data
  c.augment = "none"           # 'none', 'shift' (pad-4 crop), 'cifar' (+ flip), 'imagenet', 'inception'
  c.scale_range = (256, 480)   # 'imagenet' augmentation: shorter side sampled in this range
  c.pca_lighting = 0.0         # AlexNet's PCA colour noise, std of the eigenvalue weights (0.1)
  c.eval_crop = "center"       # 'center', 'ten_crop', 'full'
  c.eval_resize = 256          # shorter side before the centre/10 crops of large images
  c.pad = 0                    # pad images by this many zero pixels at load (MNIST 28 -> 32: 2)
  c.mean = (0.0,)              # per-channel normalisation on the 0-255 scale
  c.std = (255.0,)
  c.in_memory = True           # decode the split once into RAM (small data sets)
  c.corrupt_files = "stop"     # image folder with an unreadable file: 'stop' or 'skip'
  c.data_workers = -1          # grain processes decoding encoded images: -1 = one per core, 0 = threads here
  # Schedule of the run.
  c.batch_size = 128           # global, over all devices and hosts
  c.eval_batch_size = 0        # 0 = batch_size
  c.train_steps = 1000
  c.seed = 0
  c.log_every = 50
  c.eval_every = 500
  c.checkpoint_every = 500
  c.keep_checkpoints = 3
  # Optimisation.
  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "sgd"     # 'sgd', 'rmsprop', 'adam'
  c.optimizer.lr = 0.1
  c.optimizer.momentum = 0.9
  c.optimizer.nesterov = False
  c.optimizer.weight_decay = 1e-4
  c.optimizer.weight_decay_style = "l2"   # 'l2' (added to the gradient, as the papers) or 'decoupled'
  c.optimizer.decay_params = "all"        # 'all' or 'kernels' (not biases, BN)
  c.optimizer.rms_decay = 0.9
  c.optimizer.eps = 1.0
  c.optimizer.grad_clip = 0.0             # global-norm clipping, 0 = off
  c.optimizer.schedule = "constant"       # 'constant', 'steps', 'exponential', 'cosine'
  c.optimizer.boundaries = (0,)           # 'steps': lr is multiplied by `factor` at each boundary
  c.optimizer.factor = 0.1
  c.optimizer.scales = ()                 # 'steps': per-boundary multipliers instead of `factor`
  c.optimizer.decay_every = 0             # 'exponential': lr *= factor every this many steps
  c.optimizer.warmup_steps = 0
  c.label_smoothing = 0.0
  c.aux_weight = 0.3                      # weight of auxiliary classifiers' losses, where a model has them
  c.ema_decay = 0.0                       # Polyak averaging of the weights; 0 = off
  c.half_precision = False                # bf16 compute, fp32 parameters and optimizer state
  c.nonfinite = "stop"                    # non-finite loss/gradient: 'stop' or 'skip' the update
  c.init_from = ""                        # a workdir whose checkpoint initialises the weights
  c.model = ml_collections.ConfigDict()
  c.model.name = ""
  c.model.num_classes = 10               # checked against the data set
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
  return config


def steps_schedule(c: ml_collections.ConfigDict, lr: float, boundaries: tuple[int, ...],
                   factor: float = 0.1) -> None:
  c.optimizer.lr = lr
  c.optimizer.schedule = "steps"
  c.optimizer.boundaries = tuple(boundaries)
  c.optimizer.factor = factor


TF_MEAN, TF_STD = (127.5,) * 3, (127.5,) * 3  # the Inception nets' [-1, 1] input scaling


def imagenet(*, image_size: int, batch_size: int, train_steps: int, eval_every: int,
             augment: str = "imagenet", mean=IMAGENET_MEAN, std=IMAGENET_STD, eval_resize: int = 256,
             scale_range: tuple[int, int] | None = None, pca_lighting: float = 0.0) -> ml_collections.ConfigDict:
  """ImageNet (ILSVRC-2012 via TFDS): streamed, centre-crop evaluation on 'validation', 1,000 classes."""
  c = base()
  c.dataset = "imagenet2012"
  c.eval_split = "validation"
  c.in_memory = False
  c.image_size = image_size
  c.augment = augment
  if scale_range:
    c.scale_range = tuple(scale_range)
  c.pca_lighting = pca_lighting
  c.eval_crop = "center"
  c.eval_resize = eval_resize
  c.mean, c.std = tuple(mean), tuple(std)
  c.batch_size = batch_size
  c.train_steps = train_steps
  c.log_every = 100
  c.eval_every = eval_every
  c.checkpoint_every = 2000
  c.model.num_classes = 1000
  return c


def inception_imagenet(steps_per_epoch: int = 5005) -> ml_collections.ConfigDict:
  """ImageNet at 299 with the recipe of Szegedy et al. 2015 ("Rethinking", §8) and 2016 (Inception-v4):
  RMSProp (decay 0.9, epsilon 1.0, momentum 0.9), lr 0.045 x 0.94 every 2 epochs, gradient clipping
  2.0, label smoothing 0.1, Polyak averaging; weight decay 4e-5 on kernels (TF-slim), [-1, 1] inputs,
  87.5 % central crop (342 -> 299) for evaluation."""
  c = imagenet(image_size=299, batch_size=256, train_steps=100 * steps_per_epoch,
               eval_every=5 * steps_per_epoch, augment="inception", mean=TF_MEAN, std=TF_STD,
               eval_resize=342)
  o = c.optimizer
  o.name, o.lr, o.rms_decay, o.eps, o.momentum = "rmsprop", 0.045, 0.9, 1.0, 0.9
  o.weight_decay, o.decay_params, o.grad_clip = 4e-5, "kernels", 2.0
  o.schedule, o.decay_every, o.factor = "exponential", 2 * steps_per_epoch, 0.94
  c.label_smoothing = 0.1
  c.ema_decay = 0.9999
  return c


def cifar10(*, train_steps: int, batch_size: int = 128) -> ml_collections.ConfigDict:
  """CIFAR-10 (TFDS 'cifar10', or the JPEG archive by --config.dataset): in memory, pad-4 crop + flip."""
  c = base()
  c.dataset = "cifar10"
  c.image_size = 32
  c.augment = "cifar"
  c.mean, c.std = CIFAR_MEAN, CIFAR_STD
  c.batch_size = batch_size
  c.eval_batch_size = 500
  c.train_steps = train_steps
  c.log_every = 100
  c.eval_every = 2000
  c.checkpoint_every = 2000
  c.model.num_classes = 10
  return c


def config_files() -> list[str]:
  """Names of the family config files in configs/ (those with variants)."""
  import pathlib
  return sorted(p.stem for p in pathlib.Path(__file__).parent.glob("*.py") if p.stem not in ("__init__", "common"))


def all_variants() -> list[tuple[str, str]]:
  """(family, variant) for every named variant of every config file."""
  import importlib
  return [(f, v) for f in config_files() for v in importlib.import_module(f"configs.{f}").VARIANTS]
