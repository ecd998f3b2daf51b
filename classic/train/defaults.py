"""The fields every run config has, with their defaults: what the trainer, the data pipeline and the
converters read. Training recipes (configs/<family>.py) start from `defaults()` and a model variant's
block (`classic.models.config`), and change values only, so `--config.x=v` overrides are typed and
checked the same way for every family.
"""

from __future__ import annotations

import ml_collections

from classic.data import augment
from classic.train import optim


def defaults() -> ml_collections.ConfigDict:
  """Every field of a run config with its default; recipes (configs/) change values, never add fields."""
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
  c.photometric = 0.0          # Inception's brightness/saturation/hue/contrast distortions, strength (1)
  c.eval_crop = "center"       # 'center', 'ten_crop', 'multi_crop_144' (GoogLeNet), 'full', 'dense' (VGG §3.2)
  c.eval_image_size = 0        # side of the evaluation crop; 0 = image_size (He et al. 2016 test at 320)
  c.eval_resize = 256          # shorter side before the centre/10 crops of large images
  c.eval_scales = ()           # 'dense': the test scales Q (shorter sides); () = (eval_resize,)
  c.pad = 0                    # pad images by this many zero pixels at load (MNIST 28 -> 32: 2)
  c.mean = (0.0,)              # per-channel normalisation on the 0-255 scale
  c.std = (255.0,)
  c.in_memory = True           # decode the split once into RAM (small data sets)
  c.corrupt_files = "stop"     # image folder with an unreadable file: 'stop' or 'skip'
  c.data_workers = -1          # grain processes decoding encoded images: -1 = one per core, 0 = threads here
  c.jpeg_regions = True        # decode only the window of a JPEG that a crop reads (classic.data.jpeg_regions)
  c.data_on_device = False     # in-memory split held on the accelerator, pad-crop-flip there (classic.data.on_device)
  c.derived_from_data = ()     # fields a moved recipe took from the data set (classic.data.info), not set by hand
  # Schedule of the run.
  c.batch_size = 128           # global, over all devices and hosts
  c.eval_batch_size = 0        # 0 = batch_size
  c.train_steps = 1000
  c.train_epochs = 0.0         # > 0: the run's length in epochs; train_steps follows (classic.train.epochs)
  c.seed = 0
  c.log_every = 50
  c.eval_every = 500
  c.eval_every_epochs = 0.0    # > 0: eval_every in epochs
  c.checkpoint_every = 500
  c.checkpoint_every_epochs = 0.0
  c.keep_checkpoints = 3
  c.steps_per_call = 1         # train steps per jitted call (lax.scan over K batches): fewer dispatches
  c.replicas = 1               # N runs of seeds seed..seed+N-1 in one program (jax.vmap; needs data_on_device)
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
  c.optimizer.filter_radius = 0.0         # >0: conv filters' RMS capped after each step (ZFNet: 0.1)
  c.optimizer.schedule = "constant"       # 'constant', 'steps', 'exponential', 'cosine'
  c.optimizer.boundaries = (0,)           # 'steps': lr is multiplied by `factor` at each boundary
  c.optimizer.boundary_epochs = ()        # 'steps': the boundaries in epochs (the boundaries follow)
  c.optimizer.factor = 0.1
  c.optimizer.scales = ()                 # 'steps': per-boundary multipliers instead of `factor`
  c.optimizer.decay_every = 0             # 'exponential': lr *= factor every this many steps
  c.optimizer.decay_every_epochs = 0.0    # 'exponential': decay_every in epochs
  c.optimizer.warmup_steps = 0
  c.label_smoothing = 0.0
  c.aux_weight = 0.3                      # weight of auxiliary classifiers' losses, where a model has them
  c.ema_decay = 0.0                       # Polyak averaging of the weights; 0 = off
  c.half_precision = False                # bf16 compute, fp32 parameters and optimizer state
  c.deterministic = True                  # GPU: XLA's deterministic ops, autotuning kept in the workdir
  c.nonfinite = "stop"                    # non-finite loss/gradient: 'stop' or 'skip' the update
  c.init_from = ""                        # a workdir whose checkpoint initialises the weights
  c.model = ml_collections.ConfigDict()
  c.model.name = ""
  c.model.num_classes = 10               # checked against the data set
  return c


# The enumerated fields' valid values (classic.train.validate checks them before anything loads).
# Each list lives with the code that reads the field; the model's own fields are the model classes' CHOICES.
CHOICES = {
    "augment": augment.AUGMENTATIONS,
    "eval_crop": augment.EVAL_CROPS,
    "corrupt_files": ("stop", "skip"),
    "nonfinite": ("stop", "skip"),
    "optimizer.name": optim.OPTIMIZERS,
    "optimizer.schedule": optim.SCHEDULES,
    "optimizer.weight_decay_style": optim.WEIGHT_DECAY_STYLES,
    "optimizer.decay_params": optim.DECAY_PARAMS,
}

# Fields that count only under a value of another: {field: (the other, its values that use the field)}.
# Overriding one where it is inert is refused (classic.train.validate).
USED_ONLY_WITH = {
    "scale_range": ("augment", ("imagenet",)),
    "optimizer.boundaries": ("optimizer.schedule", ("steps",)),
    "optimizer.boundary_epochs": ("optimizer.schedule", ("steps",)),
    "optimizer.scales": ("optimizer.schedule", ("steps",)),
    "optimizer.factor": ("optimizer.schedule", ("steps", "exponential")),
    "optimizer.decay_every": ("optimizer.schedule", ("exponential",)),
    "optimizer.decay_every_epochs": ("optimizer.schedule", ("exponential",)),
    "optimizer.momentum": ("optimizer.name", ("sgd", "rmsprop")),
    "optimizer.nesterov": ("optimizer.name", ("sgd",)),
    "optimizer.rms_decay": ("optimizer.name", ("rmsprop",)),
    "optimizer.eps": ("optimizer.name", ("rmsprop",)),
    "eval_resize": ("eval_crop", ("center", "ten_crop", "dense")),
    "eval_image_size": ("eval_crop", ("center", "ten_crop", "multi_crop_144", "full")),
    "eval_scales": ("eval_crop", ("dense",)),
}

