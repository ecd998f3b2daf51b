"""BN-Inception / Inception v2 (Ioffe & Szegedy 2015) configs.

  inception_v2         BN-x30 (§4.2.2): Figure 5's network, initial learning rate 0.045
  inception_v2_x5      BN-x5: initial learning rate 0.0075
  inception_v2_slim    BN-x30 recipe, TF-slim's widths (4c/4d pool projections 96; outputs as Figure 5's
                       output column)
  inception_v2_5x5     BN-x30 recipe, a single 5x5 in place of each double 3x3 (ablation)

Recipe: the accelerated BN network of §4.2.1: the Inception recipe (SGD, momentum 0.9, lr x0.96 every 8
epochs) with a higher learning rate (BN-x5: 5 x 0.0015, BN-x30: 30 x 0.0015 = 0.045), no dropout, L2
weight decay reduced 5x (4e-5: the Caffe GoogLeNet's 2e-4 / 5, also TF-slim's), learning rate decay 6x
faster (x0.96 every 8/6 epochs), no LRN, less photometric distortion. The paper trained with small
asynchronous batches and does not give a batch size or a length: here batch 256 (the learning rate not
rescaled; 8/6 epochs = 6,673 steps) and 100 epochs are our choices. Inputs scaled to [-1, 1] (TF).
"""

import functools

from configs import common

STEPS_PER_EPOCH = 5005  # 1,281,167 / 256


def inception_v2(model_variant: str, lr: float = 0.045):
  c = common.imagenet(model_variant, batch_size=256, train_steps=100 * STEPS_PER_EPOCH,
                      eval_every=5 * STEPS_PER_EPOCH, augment="inception", mean=common.TF_MEAN,
                      std=common.TF_STD)
  c.optimizer.lr = lr
  c.optimizer.weight_decay = 4e-5
  c.optimizer.decay_params = "kernels"
  c.optimizer.schedule = "exponential"
  c.optimizer.decay_every = round(8 / 6 * STEPS_PER_EPOCH)
  c.optimizer.factor = 0.96
  c.aux_weight = 0.3
  return c


VARIANTS = {
    "inception_v2": functools.partial(inception_v2, "inception_v2"),
    "inception_v2_x5": functools.partial(inception_v2, "inception_v2", lr=0.0075),
    "inception_v2_slim": functools.partial(inception_v2, "inception_v2_slim"),
    "inception_v2_5x5": functools.partial(inception_v2, "inception_v2_5x5"),
}


def get_config(arg=None):
  return common.select(arg, VARIANTS, "inception_v2", "inception_v2")
