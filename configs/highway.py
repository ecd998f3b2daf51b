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

from configs import common


def _model(c, form: str, gated: bool, width: int, depth: int, stages: tuple):
  c.model.name = "highway"
  c.model.num_classes = 10
  c.model.form = form
  c.model.depth = depth            # fc form; the conv form's depth follows from `stages`
  c.model.width = width
  c.model.stages = stages          # conv form
  c.model.gated = gated
  c.model.gate_bias_init = -2.0
  c.model.activation = "relu"
  c.model.bn = False
  c.model.dropout_rate = 0.0
  c.model.bn_group_size = 0
  return c


def _mnist(gated: bool):
  c = common.base()
  c.dataset = "mnist"
  c.image_size = 28
  c.channels = 1
  c.pad = 0
  c.mean, c.std = (0.0,), (255.0,)
  c.batch_size = 128
  c.eval_batch_size = 1000
  c.train_steps = 400 * 469        # 400 epochs of 60,000
  c.log_every = 469
  c.eval_every = 10 * 469
  c.checkpoint_every = 10 * 469
  c.optimizer.name = "sgd"
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 0.0
  c.optimizer.lr = 0.02
  c.optimizer.schedule = "cosine"
  return _model(c, "fc", gated, 50 if gated else 71, 10, (5, 5, 5))


def _cifar(gated: bool):
  c = common.cifar10(train_steps=64_000)
  c.optimizer.name = "sgd"
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 5e-4
  common.steps_schedule(c, 0.05, [32_000, 48_000])
  return _model(c, "conv", gated, 32, 0, (5, 5, 5))


VARIANTS = {
    "highway_fc": lambda: _mnist(True),
    "plain_fc": lambda: _mnist(False),
    "highway_cifar": lambda: _cifar(True),
    "plain_cifar": lambda: _cifar(False),
}


def get_config(arg=None):
  return common.select(arg, VARIANTS, "highway_fc", "highway")
