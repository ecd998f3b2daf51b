"""Highway networks (Srivastava, Greff & Schmidhuber 2015) configs.

  highway_fc     MNIST (TFDS 'mnist', 28x28, flattened), 1 plain + 9 fully connected highway layers
                 of 50 units (the depth-10 net of Fig. 1); `--config.model.depth=20|50|100` for deeper
  plain_fc       the plain counterpart of Fig. 1: same depth, 71 units a layer, no gates
  highway_cifar  CIFAR-10, the 19-layer convolutional highway net (width 32, stages (5, 5, 5); 2.0M
                 parameters), pad-4 crop + flip augmentation
  plain_cifar    the same layers without gates

The paper found each net's SGD-with-momentum hyperparameters by random search (100 runs per depth)
and does not list them in the main text; the learning rates and schedules here are this codebase's
choices (MNIST: inputs in [0, 1], 400 epochs, cosine decay).
"""

import functools

from configs import common

# Where this differs from the paper (docs/models.md lists them all: python -m classic.summary --deviations).
DEVIATIONS = (
    "The paper found each net's hyperparameters by random search (100 runs per depth) and does not list "
    "them; the learning rates and schedules here are this codebase's choices.",
)


def _mnist(model_variant: str):
  c = common.base(model_variant)
  c.dataset = "mnist"
  c.mean, c.std = (0.0,), (255.0,)
  c.batch_size = 128
  c.eval_batch_size = 1000
  c.train_steps = 400 * 469        # 400 epochs of 60,000
  c.log_every = 469
  c.eval_every = 10 * 469
  c.checkpoint_every = 10 * 469
  c.optimizer.weight_decay = 0.0
  c.optimizer.lr = 0.02
  c.optimizer.schedule = "cosine"
  return c


def _cifar(model_variant: str):
  c = common.cifar10(model_variant, train_steps=64_000)
  c.optimizer.weight_decay = 5e-4
  common.steps_schedule(c, 0.05, [32_000, 48_000])
  return c


VARIANTS = {
    "highway_fc": functools.partial(_mnist, "highway_fc"),
    "plain_fc": functools.partial(_mnist, "plain_fc"),
    "highway_cifar": functools.partial(_cifar, "highway_cifar"),
    "plain_cifar": functools.partial(_cifar, "plain_cifar"),
}


def get_config(arg=None):
  return common.select(arg, VARIANTS, "highway_fc", "highway")
